//! Restarts: the host resumes from its cursors; changes made while it was
//! down arrive once, none lost, none doubled.

use dualwrite::checkpoint::Direction;
use dualwrite::connector::Key;
use serde_json::json;

use super::{MAPS, Sync, eventually, in_usmf, settle, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_the_host_resumes_from_its_cursors() {
    let mut sync = Sync::start(MAPS, "").await;
    sync.company_id("usmf").await;
    for n in 0..5 {
        let account = format!("R-{n}");
        sync.fo_upsert(
            "CustomersV3",
            &[("dataAreaId", "usmf"), ("CustomerAccount", &account)],
            json!({"OrganizationName": format!("Before {n}"), "PartyType": "Organization"}),
        )
        .await;
    }
    eventually("five accounts", || async {
        sync.dv
            .query_all("accounts", &Default::default())
            .await
            .map(|r| r.len())
            .unwrap_or(0)
            == 5
    })
    .await;
    settle(&sync).await;
    let before_ltr = sync
        .engine()
        .stats("customers", Direction::LeftToRight)
        .written;
    assert_eq!(before_ltr, 5);
    sync.stop_engine().await;

    // While the host is down: edits and a delete on finops, a new account
    // in Dataverse.
    for n in 0..3 {
        let account = format!("R-{n}");
        sync.fo_upsert(
            "CustomersV3",
            &[("dataAreaId", "usmf"), ("CustomerAccount", &account)],
            json!({"OrganizationName": format!("After {n}")}),
        )
        .await;
    }
    sync.fo_delete(
        "CustomersV3",
        &[("dataAreaId", "usmf"), ("CustomerAccount", "R-4")],
    )
    .await;
    sync.dv_upsert(
        "accounts",
        Key::single("accountnumber", "R-9"),
        in_usmf(json!({"name": "Made while down", "customertypecode": 3})),
    )
    .await;

    sync.start_engine().await;
    eventually("the edits in Dataverse", || async {
        let mut all = true;
        for n in 0..3 {
            all &= sync
                .dv_get("accounts", Key::single("accountnumber", &format!("R-{n}")))
                .await
                .is_some_and(|row| text(&row, "name") == format!("After {n}"));
        }
        all
    })
    .await;
    eventually("R-4 deleted", || async {
        sync.dv_get("accounts", Key::single("accountnumber", "R-4"))
            .await
            .is_none()
    })
    .await;
    eventually("R-9 in finops", || async {
        sync.fo_get(
            "CustomersV3",
            &[("dataAreaId", "usmf"), ("CustomerAccount", "R-9")],
        )
        .await
        .is_some()
    })
    .await;
    settle(&sync).await;
    // The counters start again at zero with the new engine: exactly the
    // changes made while down, nothing of before replayed.
    let ltr = sync.engine().stats("customers", Direction::LeftToRight);
    let rtl = sync.engine().stats("customers", Direction::RightToLeft);
    assert_eq!((ltr.written, ltr.deleted), (3, 1), "{ltr:?}");
    assert_eq!((rtl.written, rtl.deleted), (1, 0), "{rtl:?}");
    let rows = sync
        .dv
        .query_all("accounts", &Default::default())
        .await
        .expect("accounts");
    assert_eq!(rows.len(), 5, "R-0..R-3 and R-9, no duplicates");
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_in_finops_while_the_host_is_down_are_found_by_the_first_pass() {
    let mut sync = Sync::start(MAPS, "").await;
    sync.company_id("usmf").await;
    let key = |n: &'static str| [("dataAreaId", "usmf"), ("CustomerAccount", n)];
    sync.fo_upsert(
        "CustomersV3",
        &key("G-1"),
        json!({"OrganizationName": "One", "PartyType": "Organization"}),
    )
    .await;
    eventually("G-1 in Dataverse", || async {
        sync.dv_get("accounts", Key::single("accountnumber", "G-1"))
            .await
            .is_some()
    })
    .await;
    settle(&sync).await;
    sync.stop_engine().await;
    // While the host is down: one customer deleted, a new one made. No
    // event reaches a stopped host; the first pass after the restart
    // compares the entity with the hashes the host kept.
    sync.fo_delete("CustomersV3", &key("G-1")).await;
    sync.fo_upsert(
        "CustomersV3",
        &key("G-2"),
        json!({"OrganizationName": "Two", "PartyType": "Organization"}),
    )
    .await;
    sync.start_engine().await;
    sync.fo_upsert(
        "CustomersV3",
        &key("G-3"),
        json!({"OrganizationName": "Three", "PartyType": "Organization"}),
    )
    .await;
    for number in ["G-2", "G-3"] {
        eventually(number, || async {
            sync.dv_get("accounts", Key::single("accountnumber", number))
                .await
                .is_some()
        })
        .await;
    }
    eventually("G-1 deleted from Dataverse", || async {
        sync.dv_get("accounts", Key::single("accountnumber", "G-1"))
            .await
            .is_none()
    })
    .await;
    settle(&sync).await;
    let ltr = sync.engine().stats("customers", Direction::LeftToRight);
    assert_eq!((ltr.written, ltr.deleted), (2, 1), "{ltr:?}");
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_made_while_a_dataverse_delta_link_expired_reach_finops() {
    let mut sync = Sync::start(MAPS, "").await;
    sync.company_id("usmf").await;
    let account = |n: &str| Key::single("accountnumber", n);
    let customer = |n: &'static str| [("dataAreaId", "usmf"), ("CustomerAccount", n)];
    sync.dv_upsert(
        "accounts",
        account("H-1"),
        in_usmf(json!({"name": "One", "customertypecode": 3})),
    )
    .await;
    eventually("H-1 in finops", || async {
        sync.fo_get("CustomersV3", &customer("H-1")).await.is_some()
    })
    .await;
    settle(&sync).await;
    sync.stop_engine().await;
    // While the host is down: one account deleted, a new one made, then
    // every delta link of accounts expired (the delete's tombstone gone).
    sync.dv_delete("accounts", account("H-1")).await;
    sync.dv_upsert(
        "accounts",
        account("H-2"),
        in_usmf(json!({"name": "Two", "customertypecode": 3})),
    )
    .await;
    let purged = reqwest::Client::new()
        .post(format!(
            "{}/admin/purge-changes/accounts",
            sync.dataverse.url()
        ))
        .send()
        .await
        .expect("purge sent");
    assert!(purged.status().is_success(), "{}", purged.status());
    sync.start_engine().await;
    eventually("H-2 in finops", || async {
        sync.fo_get("CustomersV3", &customer("H-2")).await.is_some()
    })
    .await;
    eventually("H-1 deleted from finops", || async {
        sync.fo_get("CustomersV3", &customer("H-1")).await.is_none()
    })
    .await;
    settle(&sync).await;
    let rtl = sync.engine().stats("customers", Direction::RightToLeft);
    assert_eq!(rtl.deleted, 1, "{rtl:?}");
    let deleted = sync.activity("customers", dualwrite::checkpoint::Action::Deleted);
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataverse_delete_of_a_row_the_host_never_saw_is_logged() {
    let mut sync = Sync::start(MAPS, "").await;
    sync.company_id("usmf").await;
    sync.stop_engine().await;
    // Made and deleted while the host is down: change tracking reports
    // only the delete, by an id the host never saw.
    let account = Key::single("accountnumber", "N-1");
    sync.dv_upsert(
        "accounts",
        account.clone(),
        in_usmf(json!({"name": "Brief", "customertypecode": 3})),
    )
    .await;
    let id = text(
        &sync.dv_get("accounts", account.clone()).await.expect("N-1"),
        "accountid",
    );
    sync.dv_delete("accounts", account).await;
    sync.start_engine().await;
    settle(&sync).await;
    let skipped = sync.activity("customers", dualwrite::checkpoint::Action::Skipped);
    assert!(
        skipped
            .iter()
            .any(|line| line.detail.contains(&id) && line.detail.contains("never synced")),
        "{skipped:?}"
    );
    sync.shutdown().await;
}
