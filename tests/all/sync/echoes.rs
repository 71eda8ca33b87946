//! No ping-pong: every write the host makes comes back from the other side
//! as a change, is recognised as its own, and is not synced again. The
//! write counts are exactly what the changes require, and once the systems
//! go quiet nothing moves.

use dualwrite::checkpoint::Action;
use std::time::Duration;

use dualwrite::checkpoint::Direction;
use dualwrite::connector::Key;
use serde_json::json;

use super::{MAPS, Sync, eventually, settle, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_not_echoed_back_and_the_systems_go_quiet() {
    let sync = Sync::start(MAPS, "").await;
    sync.company_id("usmf").await;
    let key = [("dataAreaId", "usmf"), ("CustomerAccount", "E-1")];
    let account = || Key::single("accountnumber", "E-1");
    sync.fo_upsert(
        "CustomersV3",
        &key,
        json!({"OrganizationName": "Echo", "PartyType": "Organization", "CreditLimit": 10}),
    )
    .await;
    eventually("E-1 in Dataverse", || async {
        sync.dv_get("accounts", account()).await.is_some()
    })
    .await;
    // Edits on alternate sides, each waiting for the other side to show it.
    for round in 1..=3 {
        let limit = round * 100;
        sync.fo_upsert("CustomersV3", &key, json!({"CreditLimit": limit}))
            .await;
        eventually("the finops edit in Dataverse", || async {
            sync.dv_get("accounts", account())
                .await
                .is_some_and(|row| text(&row, "creditlimit") == limit.to_string())
        })
        .await;
        let name = format!("Echo {round}");
        sync.dv_upsert("accounts", account(), json!({"name": name}))
            .await;
        eventually("the Dataverse edit in finops", || async {
            sync.fo_get("CustomersV3", &key)
                .await
                .is_some_and(|row| text(&row, "OrganizationName") == name)
        })
        .await;
    }
    settle(&sync).await;
    let ltr = sync.engine().stats("customers", Direction::LeftToRight);
    let rtl = sync.engine().stats("customers", Direction::RightToLeft);
    assert_eq!(ltr.written, 4, "the create and three finops edits: {ltr:?}");
    assert_eq!(rtl.written, 3, "three Dataverse edits: {rtl:?}");
    assert!(
        ltr.echoes >= 1 && rtl.echoes >= 1,
        "echoes seen and dropped: {ltr:?} {rtl:?}"
    );

    // Quiet: neither side changes any more.
    let version = |row: Option<dualwrite::connector::Row>| row.map(|r| text(&r, "versionnumber"));
    let before = version(sync.dv_get("accounts", account()).await);
    // A finops row's ETag changes with every write to it.
    let etag = |row: Option<dualwrite::connector::Row>| row.map(|r| text(&r, "@odata.etag"));
    let fo_before = etag(sync.fo_get("CustomersV3", &key).await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        version(sync.dv_get("accounts", account()).await),
        before,
        "no write to Dataverse after quiet"
    );
    let fo_after = etag(sync.fo_get("CustomersV3", &key).await);
    assert_eq!(fo_before, fo_after, "no write to finops after quiet");
    assert_eq!(
        sync.engine()
            .stats("customers", Direction::LeftToRight)
            .written,
        4
    );
    assert_eq!(
        sync.engine()
            .stats("customers", Direction::RightToLeft)
            .written,
        3
    );
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_company_code_in_another_case_is_the_same_company() {
    // finops writes dataAreaId in lower case; the legal entity and so the
    // Dataverse company code are upper case. Both services compare keys
    // without case, and so must the engine, or every row loops.
    let sync = Sync::start(MAPS, "").await;
    sync.fo_upsert(
        "LegalEntities",
        &[("LegalEntityId", "DEMF")],
        json!({"Name": "Contoso Germany"}),
    )
    .await;
    sync.company_id("DEMF").await;
    sync.fo_upsert(
        "CustomerGroups",
        &[("dataAreaId", "demf"), ("CustomerGroupId", "20")],
        json!({"Description": "Wholesale"}),
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
    settle(&sync).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let ltr = sync
        .engine()
        .stats("customer-groups", Direction::LeftToRight);
    let rtl = sync
        .engine()
        .stats("customer-groups", Direction::RightToLeft);
    assert_eq!(ltr.written, 1, "{ltr:?}");
    assert_eq!(
        rtl.written, 0,
        "the echo of `20|DEMF` is the write of `20|demf`: {rtl:?}"
    );
    assert_eq!(rtl.echoes, 1, "{rtl:?}");
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_of_an_unmapped_column_writes_nothing() {
    let sync = Sync::start(MAPS, "").await;
    sync.company_id("usmf").await;
    let key = [("dataAreaId", "usmf"), ("CustomerAccount", "U-1")];
    let account = || Key::single("accountnumber", "U-1");
    sync.fo_upsert(
        "CustomersV3",
        &key,
        json!({"OrganizationName": "Unmapped", "PartyType": "Organization"}),
    )
    .await;
    eventually("U-1 in Dataverse", || async {
        sync.dv_get("accounts", account()).await.is_some()
    })
    .await;
    settle(&sync).await;
    // A finops row's ETag changes with every write to it.
    let etag = || async {
        sync.fo_get("CustomersV3", &key)
            .await
            .map(|row| text(&row, "@odata.etag"))
    };
    let finops_before = etag().await;
    // address1_city is not in the map: Dataverse still reports the row.
    sync.dv_upsert("accounts", account(), json!({"address1_city": "Redmond"}))
        .await;
    eventually("the change seen and skipped", || async {
        sync.activity("customers", Action::Skipped)
            .iter()
            .any(|a| a.detail.contains("no mapped field changed"))
    })
    .await;
    settle(&sync).await;
    assert_eq!(etag().await, finops_before, "nothing written to finops");
    assert_eq!(
        sync.engine()
            .stats("customers", Direction::RightToLeft)
            .written,
        0
    );
    sync.shutdown().await;
}
