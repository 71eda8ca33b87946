//! No ping-pong: every write the host makes comes back from the other side
//! as a change, is recognised as its own, and is not synced again. The
//! write counts are exactly what the changes require, and once the systems
//! go quiet nothing moves.

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
    let fo_before = sync
        .fo
        .changes("CustomersV3", "0")
        .await
        .expect("changes")
        .next_cursor;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        version(sync.dv_get("accounts", account()).await),
        before,
        "no write to Dataverse after quiet"
    );
    let fo_after = sync
        .fo
        .changes("CustomersV3", "0")
        .await
        .expect("changes")
        .next_cursor;
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
