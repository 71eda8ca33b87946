//! Who the caller is and what it may do: `WhoAmI`, the privileges a table
//! defines (`EntityDefinitions` `Privileges`), the privileges a user holds
//! (`RetrieveUserSetOfPrivilegesByNames`), and security roles refusing
//! reads and writes on both emulators.

use dualwrite_emulators::{
    Access, ClientCredentials, Depth, EmulatorConfig, SecurityRole, ServiceKind, TableAccess,
};
use serde_json::{Value, json};

use crate::support::{Harness, empty_config, error_message, send_json};

/// A client `reader` / `reader-secret` whose role grants `grants`, beside
/// the default client, which holds everything.
fn with_reader(grants: Vec<TableAccess>) -> EmulatorConfig {
    EmulatorConfig {
        clients: vec![
            ClientCredentials::default(),
            ClientCredentials {
                client_id: "reader".into(),
                client_secret: "reader-secret".into(),
                certificates: Vec::new(),
            },
        ],
        roles: vec![SecurityRole {
            client_id: "reader".into(),
            privileges: grants,
        }],
        ..empty_config()
    }
}

/// A token of the `reader` client.
async fn reader_token(h: &Harness) -> String {
    let (status, body) = send_json(h.client.post(h.emulator.token_url()).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", "reader"),
        ("client_secret", "reader-secret"),
        ("scope", "https://contoso.crm.dynamics.com/.default"),
    ]))
    .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().expect("a token").to_string()
}

async fn get_as(h: &Harness, token: &str, path: &str) -> (reqwest::StatusCode, Value) {
    send_json(
        h.client
            .get(format!("{}/{path}", h.emulator.service_url()))
            .bearer_auth(token),
    )
    .await
}

fn accounts(access: Vec<Access>, depth: Depth) -> TableAccess {
    TableAccess {
        table: "accounts".into(),
        access,
        depth,
    }
}

#[tokio::test]
async fn who_am_i_names_a_stable_user_per_client() {
    let h = Harness::start(ServiceKind::Dataverse, with_reader(Vec::new())).await;
    let (status, me) = h.get_json("WhoAmI").await;
    assert_eq!(status, 200, "{me}");
    assert!(
        me["@odata.context"]
            .as_str()
            .is_some_and(|c| c.ends_with("$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse")),
        "{me}"
    );
    for id in ["UserId", "BusinessUnitId", "OrganizationId"] {
        assert!(
            me[id]
                .as_str()
                .is_some_and(|v| uuid::Uuid::parse_str(v).is_ok()),
            "{id}: {me}"
        );
    }
    let (_, again) = h.get_json("WhoAmI()").await;
    assert_eq!(again["UserId"], me["UserId"]);
    let reader = reader_token(&h).await;
    let (_, other) = get_as(&h, &reader, "WhoAmI").await;
    assert_ne!(other["UserId"], me["UserId"], "one user per client");
    assert_eq!(other["BusinessUnitId"], me["BusinessUnitId"]);
    let anonymous = h
        .client
        .get(format!("{}/WhoAmI", h.emulator.service_url()))
        .send()
        .await
        .expect("sent");
    assert_eq!(anonymous.status(), 401);
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn tables_define_privileges_and_users_hold_them_by_role() {
    let h = Harness::start(
        ServiceKind::Dataverse,
        with_reader(vec![accounts(vec![Access::Read], Depth::Basic)]),
    )
    .await;
    let (status, account) = h
        .get_json("EntityDefinitions(LogicalName='account')?$select=SchemaName,Privileges")
        .await;
    assert_eq!(status, 200, "{account}");
    let privileges = account["Privileges"].as_array().expect("Privileges");
    let types: Vec<&str> = privileges
        .iter()
        .filter_map(|p| p["PrivilegeType"].as_str())
        .collect();
    assert_eq!(
        types,
        [
            "Create", "Read", "Write", "Delete", "Assign", "Share", "Append", "AppendTo"
        ]
    );
    let name = |kind: &str| -> String {
        privileges
            .iter()
            .find(|p| p["PrivilegeType"] == kind)
            .and_then(|p| p["Name"].as_str())
            .expect("a privilege name")
            .to_string()
    };
    let (read, write) = (name("Read"), name("Write"));
    assert_eq!(
        read,
        format!("prvRead{}", account["SchemaName"].as_str().unwrap_or(""))
    );

    let ask = |user: &str| {
        let names = serde_json::to_string(&[&read, &write, "prvReadnothing"]).expect("json");
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("@p1", &names)
            .finish();
        format!(
            "systemusers({user})/Microsoft.Dynamics.CRM.RetrieveUserSetOfPrivilegesByNames(PrivilegeNames=@p1)?{query}"
        )
    };
    let held = |body: &Value| -> Vec<(String, String)> {
        body["RolePrivileges"]
            .as_array()
            .expect("RolePrivileges")
            .iter()
            .map(|p| {
                assert!(p["PrivilegeId"].is_string() && p["BusinessUnitId"].is_string());
                (
                    p["PrivilegeName"].as_str().unwrap_or("").to_string(),
                    p["Depth"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let (_, admin) = h.get_json("WhoAmI").await;
    let (status, body) = h
        .get_json(&ask(admin["UserId"].as_str().unwrap_or("")))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        held(&body),
        [
            (read.clone(), "Global".into()),
            (write.clone(), "Global".into())
        ],
        "no role: everything at organization depth"
    );
    let reader = reader_token(&h).await;
    let (_, me) = get_as(&h, &reader, "WhoAmI").await;
    let (status, body) = h.get_json(&ask(me["UserId"].as_str().unwrap_or(""))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        held(&body),
        [(read.clone(), "Basic".into())],
        "only what the role grants"
    );

    let everything = format!(
        "systemusers({})/Microsoft.Dynamics.CRM.RetrieveUserPrivileges()",
        me["UserId"].as_str().unwrap_or("")
    );
    let (_, all) = h.get_json(&everything).await;
    assert_eq!(held(&all), [(read.clone(), "Basic".into())]);

    let nobody = uuid::Uuid::nil();
    let (status, missing) = h.get_json(&ask(&nobody.to_string())).await;
    assert_eq!(status, 404);
    assert!(error_message(&missing, "0x80040217").contains(&nobody.to_string()));
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_role_without_a_privilege_is_refused_reads_and_writes() {
    let h = Harness::start(
        ServiceKind::Dataverse,
        with_reader(vec![accounts(vec![Access::Read], Depth::Global)]),
    )
    .await;
    let reader = reader_token(&h).await;
    let (status, body) = get_as(&h, &reader, "accounts?$select=name").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get_as(&h, &reader, "contacts").await;
    assert_eq!(status, 403, "{body}");
    let message = error_message(&body, "0x80040220");
    assert!(
        message.contains("missing prvReadcontact privilege") && message.contains("'contact'"),
        "{message}"
    );
    let write = h
        .client
        .patch(format!(
            "{}/accounts(accountnumber='R-1')",
            h.emulator.service_url()
        ))
        .bearer_auth(&reader)
        .json(&json!({"name": "Refused"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(write.status(), 403);
    let (_, rows) = h.get_json("accounts").await;
    assert_eq!(
        rows["value"].as_array().map(Vec::len),
        Some(0),
        "nothing written"
    );
    h.emulator.shutdown().await.expect("shutdown");

    let h = Harness::start(
        ServiceKind::Finops,
        with_reader(vec![TableAccess {
            table: "Currencies".into(),
            access: vec![Access::Read],
            depth: Depth::Global,
        }]),
    )
    .await;
    let reader = reader_token(&h).await;
    let (status, _) = get_as(&h, &reader, "Currencies?cross-company=true&$top=1").await;
    assert_eq!(status, 200);
    let (status, body) = get_as(&h, &reader, "CustomersV3?cross-company=true&$top=1").await;
    assert_eq!(status, 403, "{body}");
    assert!(error_message(&body, "Forbidden").contains("CustomersV3"));
    let (status, _) = h.get_json("CustomersV3?cross-company=true&$top=1").await;
    assert_eq!(status, 200, "the default client holds everything");
    h.emulator.shutdown().await.expect("shutdown");
}
