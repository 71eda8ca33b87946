//! Plugins in the pipeline: a transform changes rows on their way, a row
//! it fails is parked with its later changes behind it while other keys
//! flow, and discarding the failed change lets the next one through.

use dualwrite::checkpoint::Direction;
use dualwrite::connector::Key;
use dualwrite_tests::PHONE_NORMALIZE;
use serde_json::json;

use super::{MAPS, Sync, eventually, in_usmf, text};

fn account(number: &str) -> Key {
    Key::single("accountnumber", number)
}

fn key(account: &str) -> [(&str, &str); 2] {
    [("dataAreaId", "usmf"), ("CustomerAccount", account)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_transform_rows_and_failures_park_only_their_key() {
    let maps = MAPS.replace(
        "  \"PartyType < default Organization\",\n]",
        &format!(
            "  \"PartyType < default Organization\",\n]\nplugins = [{{ path = {PHONE_NORMALIZE:?}, direction = \">\", settings = {{ fields = \"telephone1\", region = \"US\" }} }}]"
        ),
    );
    let sync = Sync::start(&maps, "").await;
    sync.company_id("usmf").await;
    sync.fo_upsert(
        "CustomersV3",
        &key("P-1"),
        json!({"OrganizationName": "Good", "PartyType": "Organization", "PrimaryContactPhone": "(206) 709-3400"}),
    )
    .await;
    sync.fo_upsert(
        "CustomersV3",
        &key("P-2"),
        json!({"OrganizationName": "Bad", "PartyType": "Organization", "PrimaryContactPhone": "call the desk"}),
    )
    .await;
    eventually("P-1 in Dataverse", || async {
        sync.dv_get("accounts", account("P-1")).await.is_some()
    })
    .await;
    let row = sync
        .dv_get("accounts", account("P-1"))
        .await
        .unwrap_or_default();
    assert_eq!(
        text(&row, "telephone1"),
        "+12067093400",
        "the plugin normalized it"
    );
    let store = sync.engine().checkpoints();
    eventually("P-2 parked", || async {
        !store
            .parked("customers", Direction::LeftToRight)
            .unwrap_or_default()
            .is_empty()
    })
    .await;
    let parked = store
        .parked("customers", Direction::LeftToRight)
        .expect("parked");
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].0, "P-2|usmf");
    assert!(parked[0].1.reason.contains("call the desk"), "{parked:?}");

    // A later change of the parked key waits behind the failed one; other
    // keys keep flowing.
    sync.fo_upsert(
        "CustomersV3",
        &key("P-2"),
        json!({"PrimaryContactPhone": "212 555 0142"}),
    )
    .await;
    sync.fo_upsert(
        "CustomersV3",
        &key("P-1"),
        json!({"OrganizationName": "Good Two"}),
    )
    .await;
    eventually("P-1 renamed", || async {
        sync.dv_get("accounts", account("P-1"))
            .await
            .is_some_and(|row| text(&row, "name") == "Good Two")
    })
    .await;
    eventually("the failed change and the one behind it queued", || async {
        store.queued("customers", Direction::LeftToRight) == 2
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(sync.dv_get("accounts", account("P-2")).await.is_none());
    assert_eq!(store.queued("customers", Direction::LeftToRight), 2);

    // Discarding the failed change lets the fixed one through.
    store
        .discard("customers", Direction::LeftToRight, "P-2|usmf")
        .expect("discard");
    eventually("P-2 in Dataverse after the discard", || async {
        sync.dv_get("accounts", account("P-2")).await.is_some()
    })
    .await;
    let row = sync
        .dv_get("accounts", account("P-2"))
        .await
        .unwrap_or_default();
    assert_eq!(text(&row, "telephone1"), "+12125550142");
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_plugin_parks_only_the_rows_it_traps_on() {
    // hostile-panic panics on every row with a name; the host finds the
    // rows at fault by calling again row by row.
    let maps = MAPS.replace(
        "  \"PartyType < default Organization\",\n]",
        &format!(
            "  \"PartyType < default Organization\",\n]\nplugins = [{{ path = {:?}, direction = \">\" }}]",
            dualwrite_tests::HOSTILE_PANIC
        ),
    );
    let sync = Sync::start(&maps, "").await;
    sync.company_id("usmf").await;
    let store = sync.engine().checkpoints();
    for (number, name) in [("H-1", "Boom"), ("H-2", ""), ("H-3", "Bang")] {
        sync.fo_upsert(
            "CustomersV3",
            &key(number),
            json!({"OrganizationName": name, "PartyType": "Organization"}),
        )
        .await;
    }
    eventually("H-2 in Dataverse", || async {
        sync.dv_get("accounts", account("H-2")).await.is_some()
    })
    .await;
    eventually("H-1 and H-3 parked", || async {
        store
            .parked("customers", Direction::LeftToRight)
            .unwrap_or_default()
            .len()
            == 2
    })
    .await;
    let parked = store
        .parked("customers", Direction::LeftToRight)
        .expect("parked");
    assert!(
        parked
            .iter()
            .all(|(_, p)| p.reason.contains("hostile plugin gave up on")
                || p.reason.contains("quarantined")),
        "{parked:?}"
    );
    // The other maps keep flowing.
    sync.fo_upsert(
        "CustomerGroups",
        &[("dataAreaId", "usmf"), ("CustomerGroupId", "10")],
        json!({"Description": "Still flowing"}),
    )
    .await;
    eventually("the group in Dataverse", || async {
        sync.dv
            .query_all("msdyn_customergroups", &Default::default())
            .await
            .map(|rows| rows.len())
            .unwrap_or(0)
            == 1
    })
    .await;
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_run_right_to_left_too() {
    let maps = MAPS.replace(
        "  \"PartyType < default Organization\",\n]",
        &format!(
            "  \"PartyType < default Organization\",\n]\nplugins = [{{ path = {PHONE_NORMALIZE:?}, direction = \"<\", settings = {{ fields = \"PrimaryContactPhone\", region = \"DE\" }} }}]"
        ),
    );
    let sync = Sync::start(&maps, "").await;
    sync.company_id("usmf").await;
    for (number, phone) in [("R-1", "030 901820"), ("R-2", "not a number")] {
        sync.dv_upsert(
            "accounts",
            account(number),
            in_usmf(json!({"name": number, "customertypecode": 3, "telephone1": phone})),
        )
        .await;
    }
    eventually("R-1 in finops", || async {
        sync.fo_get("CustomersV3", &key("R-1")).await.is_some()
    })
    .await;
    let row = sync
        .fo_get("CustomersV3", &key("R-1"))
        .await
        .unwrap_or_default();
    assert_eq!(text(&row, "PrimaryContactPhone"), "+4930901820");
    let store = sync.engine().checkpoints();
    eventually("R-2 parked", || async {
        store
            .parked("customers", Direction::RightToLeft)
            .unwrap_or_default()
            .len()
            == 1
    })
    .await;
    let parked = store
        .parked("customers", Direction::RightToLeft)
        .expect("parked");
    assert_eq!(parked[0].0, "R-2|usmf");
    assert!(sync.fo_get("CustomersV3", &key("R-2")).await.is_none());
    sync.shutdown().await;
}
