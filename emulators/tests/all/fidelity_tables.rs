//! The standard tables as their references document them: the principals
//! every environment has (`systemuser`, `businessunit`, `team`), the owner
//! and audit lookups of user-owned tables, and the columns beside the
//! mapped ones. `docs/emulator-fidelity.md` lists each behaviour with its
//! page.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Harness, error_message, send_json};

async fn create(h: &Harness, set: &str, body: Value) -> String {
    let response = h
        .request(Method::POST, set)
        .json(&body)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204, "{set}: {body}");
    let entity = response.headers()["odata-entityid"]
        .to_str()
        .expect("text")
        .to_string();
    entity
        .rsplit_once('(')
        .and_then(|(_, r)| r.strip_suffix(')'))
        .expect("id in OData-EntityId")
        .to_string()
}

/// An environment has one root business unit, its default (owner) team,
/// and the application user `WhoAmI` names, in that unit (systemuser,
/// businessunit and team references:
/// <https://learn.microsoft.com/power-apps/developer/data-platform/reference/entities/systemuser>).
#[tokio::test]
async fn the_principals_are_there_as_in_every_environment() {
    let h = Harness::dataverse().await;
    let (_, me) = h.get_json("WhoAmI").await;
    let user = me["UserId"].as_str().expect("UserId");
    let unit = me["BusinessUnitId"].as_str().expect("BusinessUnitId");

    let (status, row) = h
        .get_json(&format!(
            "systemusers({user})?$select=fullname,accessmode,isdisabled,_businessunitid_value"
        ))
        .await;
    assert_eq!(status, 200, "{row}");
    assert_eq!(
        row["accessmode"], 4,
        "an application user is non-interactive"
    );
    assert_eq!(row["isdisabled"], false);
    assert_eq!(row["_businessunitid_value"], unit);

    let (_, units) = h
        .get_json("businessunits?$select=name&$filter=_parentbusinessunitid_value eq null")
        .await;
    let units = units["value"].as_array().expect("value").clone();
    assert_eq!(units.len(), 1, "one root business unit: {units:?}");
    assert_eq!(units[0]["businessunitid"], unit);

    let (_, teams) = h
        .get_json("teams?$select=name,teamtype,_businessunitid_value&$filter=isdefault eq true")
        .await;
    let teams = teams["value"].as_array().expect("value").clone();
    assert_eq!(teams.len(), 1, "{teams:?}");
    assert_eq!(teams[0]["teamtype"], 0, "the default team is an owner team");
    assert_eq!(teams[0]["_businessunitid_value"], unit);

    let (_, definition) = h
        .get_json(
            "EntityDefinitions(LogicalName='account')?$select=LogicalName&$expand=Attributes($select=LogicalName,AttributeType;$filter=LogicalName eq 'ownerid')",
        )
        .await;
    assert_eq!(
        definition["Attributes"][0]["AttributeType"], "Owner",
        "{definition}"
    );
    h.emulator.shutdown().await.expect("shutdown");
}

/// A new row is owned by the calling user unless `ownerid@odata.bind`
/// names a user or a team; `owninguser`, `owningteam` and
/// `owningbusinessunit` follow the owner, `createdby` and `modifiedby` name
/// the caller, and a client sets none of them (account reference, columns
/// `OwnerId` (Targets systemuser, team), `OwningUser`, `OwningTeam`,
/// `OwningBusinessUnit`, `CreatedBy`, `ModifiedBy`:
/// <https://learn.microsoft.com/power-apps/developer/data-platform/reference/entities/account>).
#[tokio::test]
async fn rows_are_owned_by_a_user_or_a_team() {
    let h = Harness::dataverse().await;
    let (_, me) = h.get_json("WhoAmI").await;
    let user = me["UserId"].as_str().expect("UserId").to_string();
    let unit = me["BusinessUnitId"].as_str().expect("BusinessUnitId");
    let (_, teams) = h.get_json("teams?$select=teamid").await;
    let team = teams["value"][0]["teamid"]
        .as_str()
        .expect("team")
        .to_string();

    let account = create(&h, "accounts", json!({"name": "Owned"})).await;
    let owner_columns = "$select=_ownerid_value,_owninguser_value,_owningteam_value,_owningbusinessunit_value,_createdby_value,_modifiedby_value";
    let (_, row) = h
        .get_json(&format!("accounts({account})?{owner_columns}"))
        .await;
    assert_eq!(row["_ownerid_value"], user.as_str(), "{row}");
    assert_eq!(row["_owninguser_value"], user.as_str());
    assert_eq!(row["_owningteam_value"], Value::Null);
    assert_eq!(row["_owningbusinessunit_value"], unit);
    assert_eq!(row["_createdby_value"], user.as_str());
    assert_eq!(row["_modifiedby_value"], user.as_str());

    let response = h
        .request(Method::PATCH, &format!("accounts({account})"))
        .json(&json!({"ownerid@odata.bind": format!("/teams({team})")}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let (_, row) = h
        .get_json(&format!("accounts({account})?{owner_columns}"))
        .await;
    assert_eq!(row["_ownerid_value"], team.as_str(), "{row}");
    assert_eq!(row["_owningteam_value"], team.as_str());
    assert_eq!(row["_owninguser_value"], Value::Null);
    assert_eq!(row["_owningbusinessunit_value"], unit);

    let contact = create(
        &h,
        "contacts",
        json!({"lastname": "Team-owned", "ownerid@odata.bind": format!("/teams({team})")}),
    )
    .await;
    let (_, row) = h
        .get_json(&format!("contacts({contact})?{owner_columns}"))
        .await;
    assert_eq!(row["_owningteam_value"], team.as_str(), "{row}");
    assert_eq!(row["_createdby_value"], user.as_str());

    for (body, needle) in [
        (
            json!({"ownerid@odata.bind": format!("/contacts({contact})")}),
            "systemusers or teams",
        ),
        (
            json!({"owninguser@odata.bind": format!("/systemusers({user})")}),
            "set by the service",
        ),
        (json!({"createdby": null}), "set by the service"),
    ] {
        let (status, error) = send_json(
            h.request(Method::PATCH, &format!("accounts({account})"))
                .json(&body),
        )
        .await;
        assert_eq!(status, 400, "{body}: {error}");
        let message = error_message(&error, "0x80060888");
        assert!(message.contains(needle), "{body}: {message}");
    }
    h.emulator.shutdown().await.expect("shutdown");
}

/// "Disassociate table rows on update": a single-valued navigation property
/// set to `null` clears the lookup, as `<name>@odata.bind: null` does
/// (<https://learn.microsoft.com/power-apps/developer/data-platform/webapi/associate-disassociate-entities-using-web-api#disassociate-table-rows-on-update>).
#[tokio::test]
async fn a_navigation_property_set_to_null_disassociates() {
    let h = Harness::dataverse().await;
    let contact = create(&h, "contacts", json!({"lastname": "Primary"})).await;
    let parent = create(&h, "accounts", json!({"name": "Parent"})).await;
    let account = create(
        &h,
        "accounts",
        json!({
            "name": "Child",
            "primarycontactid@odata.bind": format!("/contacts({contact})"),
            "parentaccountid@odata.bind": format!("accounts({parent})"),
        }),
    )
    .await;
    let select = "$select=_primarycontactid_value,_parentaccountid_value";
    let (_, row) = h.get_json(&format!("accounts({account})?{select}")).await;
    assert_eq!(row["_primarycontactid_value"], contact.as_str(), "{row}");
    assert_eq!(row["_parentaccountid_value"], parent.as_str());
    let response = h
        .request(Method::PATCH, &format!("accounts({account})"))
        .json(&json!({"parentaccountid": null, "primarycontactid": null}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let (_, row) = h.get_json(&format!("accounts({account})?{select}")).await;
    assert_eq!(row["_primarycontactid_value"], Value::Null, "{row}");
    assert_eq!(row["_parentaccountid_value"], Value::Null);
    h.emulator.shutdown().await.expect("shutdown");
}
