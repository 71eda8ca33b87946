//! finops reconciliation without data events: paged reads of the entity
//! compared with the hashes of what each key last showed find the
//! creates, updates and deletes, and queue nothing for rows unchanged.

use dualwrite::checkpoint::Direction;
use dualwrite::connector::{BatchMode, ConnectorOptions, Key, Query, Write};
use dualwrite::sync::{Engine, EngineOptions};
use serde_json::json;

use super::{MAPS, Sync, eventually, object, settle, text};

/// Restarts the engine reading finops (and Dataverse) `page_size` rows a
/// page, so a pass spans many pages.
async fn restart_with_pages(sync: &mut Sync, page_size: u32) {
    sync.stop_engine().await;
    let options = EngineOptions {
        connector: ConnectorOptions {
            page_size,
            ..ConnectorOptions::default()
        },
        ..EngineOptions::default()
    };
    let engine = Engine::start(sync.plan(), options)
        .await
        .expect("the engine starts");
    sync.engine = Some(engine);
    eventually("the initial copy", || async { sync.engine().initialized() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_alone_finds_a_create_an_update_and_a_delete() {
    // No receiver: finops is read every poll_interval (100 ms here).
    let mut sync = Sync::start(MAPS, "").await;
    sync.company_id("usmf").await;
    restart_with_pages(&mut sync, 2).await;
    let customer = |n: &'static str| [("dataAreaId", "usmf"), ("CustomerAccount", n)];
    let account = |n: &str| Key::single("accountnumber", n);
    for (number, name) in [("R-1", "One"), ("R-2", "Two"), ("R-3", "Three")] {
        sync.fo_upsert(
            "CustomersV3",
            &customer(number),
            json!({"OrganizationName": name, "PartyType": "Organization"}),
        )
        .await;
    }
    for number in ["R-1", "R-2", "R-3"] {
        eventually(number, || async {
            sync.dv_get("accounts", account(number)).await.is_some()
        })
        .await;
    }
    sync.fo_upsert(
        "CustomersV3",
        &customer("R-2"),
        json!({"OrganizationName": "Two, renamed"}),
    )
    .await;
    sync.fo_delete("CustomersV3", &customer("R-1")).await;
    eventually("R-2 renamed in Dataverse", || async {
        sync.dv_get("accounts", account("R-2"))
            .await
            .is_some_and(|row| text(&row, "name") == "Two, renamed")
    })
    .await;
    eventually("R-1 deleted from Dataverse", || async {
        sync.dv_get("accounts", account("R-1")).await.is_none()
    })
    .await;
    settle(&sync).await;
    assert!(sync.dv_get("accounts", account("R-3")).await.is_some());
    let ltr = sync.engine().stats("customers", Direction::LeftToRight);
    assert_eq!((ltr.written, ltr.deleted), (4, 1), "{ltr:?}");
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_over_unchanged_rows_queues_nothing() {
    let mut sync = Sync::start(MAPS, "").await;
    sync.company_id("usmf").await;
    let writes: Vec<Write> = (0..200)
        .map(|i| Write::Upsert {
            table: "CustomersV3".into(),
            key: Key::new()
                .text("dataAreaId", "usmf")
                .text("CustomerAccount", &format!("U-{i:03}")),
            row: object(
                json!({"OrganizationName": format!("Customer {i}"), "PartyType": "Organization"}),
            ),
        })
        .collect();
    let outcomes = sync
        .fo
        .write_batch(&writes, BatchMode::ContinueOnError)
        .await
        .expect("batch");
    assert!(outcomes.iter().all(|o| o.is_applied()), "{outcomes:?}");
    // 25 rows a page: a pass is eight pages.
    restart_with_pages(&mut sync, 25).await;
    eventually("200 accounts in Dataverse", || async {
        sync.dv
            .query_all("accounts", &Query::default())
            .await
            .is_ok_and(|rows| rows.len() == 200)
    })
    .await;
    settle(&sync).await;
    let before = sync.engine().stats("customers", Direction::LeftToRight);
    assert_eq!(before.written, 200, "{before:?}");
    // Some fifteen passes at 100 ms.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    settle(&sync).await;
    let after = sync.engine().stats("customers", Direction::LeftToRight);
    assert_eq!(after, before, "unchanged rows queue nothing");
    // One row changed: one change, of that row.
    sync.fo_upsert(
        "CustomersV3",
        &[("dataAreaId", "usmf"), ("CustomerAccount", "U-123")],
        json!({"OrganizationName": "Changed"}),
    )
    .await;
    eventually("U-123 changed in Dataverse", || async {
        sync.dv_get("accounts", Key::single("accountnumber", "U-123"))
            .await
            .is_some_and(|row| text(&row, "name") == "Changed")
    })
    .await;
    settle(&sync).await;
    let changed = sync.engine().stats("customers", Direction::LeftToRight);
    assert_eq!(
        (changed.captured, changed.written),
        (before.captured + 1, 201),
        "{changed:?}"
    );
    sync.shutdown().await;
}
