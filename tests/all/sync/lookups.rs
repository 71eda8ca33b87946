//! Lookups: a customer's group and company are bound by id, and a
//! customer that arrives before its group waits for it instead of failing.

use dualwrite::checkpoint::Action;
use dualwrite::connector::Key;
use serde_json::{Value, json};

use super::{MAPS, Sync, eventually, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_arriving_before_its_parent_waits_then_binds() {
    let sync = Sync::start(MAPS, "").await;
    let usmf = sync.company_id("usmf").await;
    let mut events = sync.engine().subscribe();
    sync.fo_upsert(
        "CustomersV3",
        &[("dataAreaId", "usmf"), ("CustomerAccount", "L-1")],
        json!({"OrganizationName": "Early", "PartyType": "Organization", "CustomerGroupId": "90"}),
    )
    .await;
    // The customer waits: its group is not in Dataverse yet.
    let waited = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            match events.recv().await {
                Ok(event) if event.what == Action::Waiting => return event,
                Ok(_) => {}
                Err(error) => panic!("events: {error}"),
            }
        }
    })
    .await
    .expect("the customer waits for its group");
    assert_eq!(waited.key, "L-1|usmf");
    assert!(
        waited.detail.contains("customer-groups"),
        "{}",
        waited.detail
    );
    assert!(
        sync.dv_get("accounts", Key::single("accountnumber", "L-1"))
            .await
            .is_none(),
        "not written before its group"
    );
    assert!(
        sync.engine()
            .checkpoints()
            .parked("customers", dualwrite::checkpoint::Direction::LeftToRight)
            .expect("parked")
            .is_empty(),
        "waiting is not an error"
    );

    // The group arrives; the customer follows with its lookups bound.
    sync.fo_upsert(
        "CustomerGroups",
        &[("dataAreaId", "usmf"), ("CustomerGroupId", "90")],
        json!({"Description": "Late group"}),
    )
    .await;
    eventually("L-1 in Dataverse", || async {
        sync.dv_get("accounts", Key::single("accountnumber", "L-1"))
            .await
            .is_some()
    })
    .await;
    let group = sync
        .dv_get(
            "msdyn_customergroups",
            Key::new()
                .text("msdyn_groupid", "90")
                .guid("_msdyn_company_value", usmf.parse().expect("guid")),
        )
        .await
        .expect("the group synced");
    let account = sync
        .dv_get("accounts", Key::single("accountnumber", "L-1"))
        .await
        .unwrap_or_default();
    assert_eq!(
        account.get("_msdyn_customergroupid_value"),
        group.get("msdyn_customergroupid"),
        "the lookup points at the group"
    );
    assert_eq!(text(&account, "_msdyn_company_value"), usmf);

    // And back: a Dataverse edit of the group lookup reads as the group id.
    let mut edit = serde_json::Map::new();
    dualwrite::connector::DataverseConnector::bind(
        &mut edit,
        "msdyn_customergroupid",
        "msdyn_customergroups",
        &Key::new()
            .text("msdyn_groupid", "90")
            .guid("_msdyn_company_value", usmf.parse().expect("guid")),
    );
    edit.insert("name".into(), json!("Early, renamed"));
    sync.dv_upsert(
        "accounts",
        Key::single("accountnumber", "L-1"),
        Value::Object(edit),
    )
    .await;
    eventually("the rename in finops", || async {
        sync.fo_get(
            "CustomersV3",
            &[("dataAreaId", "usmf"), ("CustomerAccount", "L-1")],
        )
        .await
        .is_some_and(|row| {
            text(&row, "OrganizationName") == "Early, renamed"
                && text(&row, "CustomerGroupId") == "90"
        })
    })
    .await;
    // Clearing the group in finops clears the lookup in Dataverse.
    sync.fo_upsert(
        "CustomersV3",
        &[("dataAreaId", "usmf"), ("CustomerAccount", "L-1")],
        json!({"CustomerGroupId": null}),
    )
    .await;
    eventually("the lookup cleared", || async {
        sync.dv_get("accounts", Key::single("accountnumber", "L-1"))
            .await
            .is_some_and(|row| row.get("_msdyn_customergroupid_value") == Some(&Value::Null))
    })
    .await;
    sync.shutdown().await;
}
