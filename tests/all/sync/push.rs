//! Dataverse push: with `engine.listen`, `engine.public_url` and a
//! Dataverse `events_secret_env`, the engine registers its own webhook and
//! the steps of its maps in Dataverse, and the changes Dataverse posts
//! reach finops with change tracking read only every hour.

use dualwrite::connector::Key;
use dualwrite::map::Side;
use dualwrite::sync::{MapCommand, Push};
use serde_json::{Value, json};

use super::{MAPS, Sync, eventually, free_port, in_usmf};

/// Both sides polled every hour: only a push can deliver in time.
async fn start() -> Sync {
    let port = free_port();
    let sync = Sync::start_with(
        MAPS,
        &format!(
            "listen = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\npoll_interval = \"1h\"\ncatch_all_interval = \"1h\""
        ),
        false,
        "events_secret_env = \"DATAVERSE_EVENTS_SECRET\"",
    )
    .await;
    sync.company_id("usmf").await;
    sync
}

/// The names of the steps registered in the Dataverse emulator.
async fn step_names(sync: &Sync) -> Vec<String> {
    let mut names: Vec<String> = sync
        .dv
        .query_all("sdkmessageprocessingsteps", &Default::default())
        .await
        .expect("steps listed")
        .iter()
        .filter_map(|row| row.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect();
    names.sort();
    names
}

async fn organization_name(sync: &Sync, account: &str) -> Option<String> {
    sync.fo_get(
        "CustomersV3",
        &[("dataAreaId", "usmf"), ("CustomerAccount", account)],
    )
    .await
    .and_then(|row| {
        row.get("OrganizationName")
            .and_then(Value::as_str)
            .map(str::to_owned)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataverse_pushes_creates_updates_and_deletes_and_a_stopped_map_loses_its_steps() {
    let sync = start().await;
    let endpoints = sync
        .dv
        .query_all("serviceendpoints", &Default::default())
        .await
        .expect("endpoints listed");
    assert_eq!(endpoints.len(), 1, "{endpoints:?}");
    assert_eq!(endpoints[0]["name"], "dualwrite dataverse");
    let addr = sync.engine().webhook_addr().expect("the receiver listens");
    assert_eq!(
        endpoints[0]["url"],
        format!("http://127.0.0.1:{}/events/dataverse", addr.port()).as_str()
    );
    // The maps whose Dataverse side flows have steps; legal entities
    // (finops to Dataverse only) has none.
    assert_eq!(
        step_names(&sync).await,
        [
            "dualwrite customer-groups Create",
            "dualwrite customer-groups Delete",
            "dualwrite customer-groups Update",
            "dualwrite customers Create",
            "dualwrite customers Delete",
            "dualwrite customers Update",
        ]
    );
    assert_eq!(
        sync.engine().push("customers", Side::Right),
        Some(Push::Registered)
    );
    assert_eq!(
        sync.engine().push("legal-entities", Side::Right),
        Some(Push::Off)
    );

    let key = Key::single("accountnumber", "D-1");
    sync.dv_upsert(
        "accounts",
        key.clone(),
        in_usmf(json!({"name": "Pushed", "customertypecode": 3})),
    )
    .await;
    eventually("D-1 in finops by push", || async {
        organization_name(&sync, "D-1").await.as_deref() == Some("Pushed")
    })
    .await;
    sync.dv_upsert("accounts", key.clone(), json!({"name": "Pushed again"}))
        .await;
    eventually("D-1 updated in finops by push", || async {
        organization_name(&sync, "D-1").await.as_deref() == Some("Pushed again")
    })
    .await;
    sync.dv_delete("accounts", key).await;
    eventually("D-1 deleted in finops by push", || async {
        organization_name(&sync, "D-1").await.is_none()
    })
    .await;

    sync.engine()
        .command("customers", MapCommand::Stop)
        .await
        .expect("the map stops");
    assert_eq!(
        step_names(&sync).await,
        [
            "dualwrite customer-groups Create",
            "dualwrite customer-groups Delete",
            "dualwrite customer-groups Update",
        ]
    );
    assert_eq!(
        sync.engine().push("customers", Side::Right),
        Some(Push::Off)
    );
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_context_only_makes_the_engine_read_the_row_and_a_wrong_secret_is_refused() {
    let sync = start().await;
    let key = Key::single("accountnumber", "D-2");
    sync.dv_upsert(
        "accounts",
        key.clone(),
        in_usmf(json!({"name": "Real", "customertypecode": 3})),
    )
    .await;
    eventually("D-2 in finops", || async {
        organization_name(&sync, "D-2").await.as_deref() == Some("Real")
    })
    .await;
    let id = sync
        .dv_get("accounts", key.clone())
        .await
        .and_then(|row| {
            row.get("accountid")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .expect("the account's id");

    // Take the engine's steps away, then change the row: nothing is
    // pushed, and change tracking is an hour away.
    let endpoint = sync
        .dv
        .query_all("serviceendpoints", &Default::default())
        .await
        .expect("endpoints")[0]["serviceendpointid"]
        .as_str()
        .expect("an id")
        .to_owned();
    sync.dv
        .remove_steps(&endpoint, "dualwrite customers")
        .await
        .expect("steps removed");
    sync.dv_upsert("accounts", key.clone(), json!({"name": "Changed quietly"}))
        .await;

    let url = sync.engine().webhook_url("dataverse").expect("receiver");
    let forged = json!({
        "MessageName": "Update", "PrimaryEntityName": "account", "PrimaryEntityId": id,
        "Stage": 40, "Mode": 1, "Depth": 1,
        "InputParameters": [{"key": "Target", "value": {
            "__type": "Entity:http://schemas.microsoft.com/xrm/2011/Contracts",
            "LogicalName": "account", "Id": id,
            "Attributes": [{"key": "name", "value": "Forged"}, {"key": "creditlimit", "value": 1000000}]
        }}]
    });
    let client = reqwest::Client::new();
    let post = |secret: &str, body: &Value| {
        client
            .post(&url)
            .header("x-dualwrite-secret", secret)
            .json(body)
            .send()
    };
    let refused = post("nope", &forged).await.expect("sent");
    assert_eq!(refused.status().as_u16(), 401);
    let unsigned = client.post(&url).json(&forged).send().await.expect("sent");
    assert_eq!(unsigned.status().as_u16(), 401);
    let garbage = client
        .post(&url)
        .header("x-dualwrite-secret", "dataverse-hook-secret")
        .body("{")
        .send()
        .await
        .expect("sent");
    assert_eq!(garbage.status().as_u16(), 400);

    let accepted = post("dataverse-hook-secret", &forged).await.expect("sent");
    assert_eq!(accepted.status().as_u16(), 200);
    // What Dataverse holds reaches finops, never what the context said.
    eventually("the row as Dataverse holds it in finops", || async {
        organization_name(&sync, "D-2").await.as_deref() == Some("Changed quietly")
    })
    .await;
    let customer = sync
        .fo_get(
            "CustomersV3",
            &[("dataAreaId", "usmf"), ("CustomerAccount", "D-2")],
        )
        .await
        .expect("D-2 in finops");
    assert_ne!(customer.get("CreditLimit"), Some(&json!(1000000)));

    // A forged delete of a row that exists is a read of it, not a delete.
    let delete = json!({
        "MessageName": "Delete", "PrimaryEntityName": "account", "PrimaryEntityId": id,
        "InputParameters": [{"key": "Target", "value": {
            "__type": "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts",
            "LogicalName": "account", "Id": id
        }}]
    });
    let accepted = post("dataverse-hook-secret", &delete).await.expect("sent");
    assert_eq!(accepted.status().as_u16(), 200);
    super::settle(&sync).await;
    assert_eq!(
        organization_name(&sync, "D-2").await.as_deref(),
        Some("Changed quietly")
    );
    sync.shutdown().await;
}
