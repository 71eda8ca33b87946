//! Concurrent edits of one row on both sides, settled by the map's policy:
//! the loser is logged with both versions and nothing flips afterwards.

use dualwrite::checkpoint::Action;
use dualwrite::checkpoint::Direction;
use dualwrite::connector::Key;
use serde_json::json;

use axum::http::StatusCode;

use super::{MAPS, Sync, eventually, hook, in_usmf, settle, text};

const KEY: &[(&str, &str)] = &[("dataAreaId", "usmf"), ("CustomerAccount", "K-1")];

fn account() -> Key {
    Key::single("accountnumber", "K-1")
}

/// Syncs K-1, stops the engine, edits it on both sides (finops first),
/// restarts, and waits until both sides agree; returns the agreed name.
async fn edit_both_sides_while_stopped(sync: &mut Sync) -> String {
    sync.fo_upsert(
        "CustomersV3",
        KEY,
        json!({"OrganizationName": "Start", "PartyType": "Organization"}),
    )
    .await;
    eventually("K-1 in Dataverse", || async {
        sync.dv_get("accounts", account()).await.is_some()
    })
    .await;
    settle(sync).await;
    sync.stop_engine().await;
    sync.fo_upsert("CustomersV3", KEY, json!({"OrganizationName": "Left edit"}))
        .await;
    // Modification times compare in whole seconds (Dataverse's grain).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    sync.dv_upsert("accounts", account(), json!({"name": "Right edit"}))
        .await;
    sync.start_engine().await;
    settle(sync).await;
    let left = sync.fo_get("CustomersV3", KEY).await.unwrap_or_default();
    let right = sync.dv_get("accounts", account()).await.unwrap_or_default();
    assert_eq!(
        text(&left, "OrganizationName"),
        text(&right, "name"),
        "both sides agree"
    );
    text(&left, "OrganizationName")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn left_wins_and_right_wins_settle_as_configured() {
    for (policy, winner) in [("left-wins", "Left edit"), ("right-wins", "Right edit")] {
        let maps = MAPS.replace(
            "depends_on = [\"legal-entities\", \"customer-groups\"]",
            &format!(
                "depends_on = [\"legal-entities\", \"customer-groups\"]\nconflict = \"{policy}\""
            ),
        );
        let mut sync = Sync::start(&maps, "").await;
        sync.company_id("usmf").await;
        assert_eq!(
            edit_both_sides_while_stopped(&mut sync).await,
            winner,
            "{policy}"
        );
        let lost = sync.activity("customers", Action::ConflictLost);
        assert_eq!(lost.len(), 1, "{policy}: {lost:?}");
        assert!(
            lost[0].detail.contains("Left edit") && lost[0].detail.contains("Right edit"),
            "both versions logged: {}",
            lost[0].detail
        );
        assert!(lost[0].detail.starts_with(policy), "{}", lost[0].detail);
        sync.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_writer_wins_by_modification_time() {
    // Dataverse reports each row's modifiedon; finops gives no change time
    // through OData, so its change carries the time the host read it: at
    // once when its data event arrives. The map is paused, so both edits
    // queue and meet; the Dataverse edit is the later one.
    let sync = Sync::start(MAPS, "listen = \"127.0.0.1:0\"").await;
    sync.company_id("usmf").await;
    sync.push_finops_events();
    sync.fo_upsert(
        "CustomersV3",
        KEY,
        json!({"OrganizationName": "Start", "PartyType": "Organization"}),
    )
    .await;
    eventually("K-1 in Dataverse", || async {
        sync.dv_get("accounts", account()).await.is_some()
    })
    .await;
    settle(&sync).await;
    sync.engine()
        .command("customers", dualwrite::sync::MapCommand::Pause)
        .await
        .expect("the map pauses");
    sync.fo_upsert("CustomersV3", KEY, json!({"OrganizationName": "Left edit"}))
        .await;
    eventually("the finops edit queued", || async {
        sync.engine().queued() > 0
    })
    .await;
    // Modification times compare in whole seconds (Dataverse's grain).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    sync.dv_upsert("accounts", account(), json!({"name": "Right edit"}))
        .await;
    eventually("the Dataverse edit queued", || async {
        sync.engine().queued() > 1
    })
    .await;
    sync.engine()
        .command(
            "customers",
            dualwrite::sync::MapCommand::Resume(dualwrite::sync::Queued::Replay),
        )
        .await
        .expect("the map resumes");
    settle(&sync).await;
    let left = sync.fo_get("CustomersV3", KEY).await.unwrap_or_default();
    let right = sync.dv_get("accounts", account()).await.unwrap_or_default();
    assert_eq!(text(&left, "OrganizationName"), "Right edit");
    assert_eq!(text(&right, "name"), "Right edit");
    let lost = sync.activity("customers", Action::ConflictLost);
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert!(
        lost[0].detail.starts_with("last-writer-wins: left"),
        "{}",
        lost[0].detail
    );
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_both_sides_already_hold_alike_are_matched_not_written() {
    let mut sync = Sync::start(MAPS, "").await;
    sync.company_id("usmf").await;
    settle(&sync).await;
    sync.stop_engine().await;
    // The same customer made on both sides while the host was down, as an
    // initial sync meets data both systems already share.
    sync.fo_upsert(
        "CustomersV3",
        &[("dataAreaId", "usmf"), ("CustomerAccount", "M-1")],
        json!({"OrganizationName": "Shared", "PartyType": "Organization", "CreditLimit": 250.5}),
    )
    .await;
    sync.dv_upsert(
        "accounts",
        Key::single("accountnumber", "M-1"),
        in_usmf(json!({"name": "Shared", "customertypecode": 3, "creditlimit": 250.50})),
    )
    .await;
    sync.start_engine().await;
    settle(&sync).await;
    let ltr = sync.engine().stats("customers", Direction::LeftToRight);
    let rtl = sync.engine().stats("customers", Direction::RightToLeft);
    assert_eq!((ltr.written, rtl.written), (0, 0), "{ltr:?} {rtl:?}");
    assert_eq!(ltr.skipped + rtl.skipped, 2, "{ltr:?} {rtl:?}");
    assert!(sync.activity("customers", Action::ConflictLost).is_empty());
    // Matched, the row then syncs like any other.
    sync.fo_upsert(
        "CustomersV3",
        &[("dataAreaId", "usmf"), ("CustomerAccount", "M-1")],
        json!({"OrganizationName": "Shared, renamed"}),
    )
    .await;
    eventually("the rename in Dataverse", || async {
        sync.dv_get("accounts", Key::single("accountnumber", "M-1"))
            .await
            .is_some_and(|row| text(&row, "name") == "Shared, renamed")
    })
    .await;
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_loser_waits_until_the_winner_is_written_and_flows_if_it_never_is() {
    let maps = MAPS.replace(
        "depends_on = [\"legal-entities\", \"customer-groups\"]",
        "depends_on = [\"legal-entities\", \"customer-groups\"]\nconflict = \"left-wins\"",
    );
    let mut sync = Sync::start(&maps, "").await;
    sync.company_id("usmf").await;
    sync.fo_upsert(
        "CustomersV3",
        KEY,
        json!({"OrganizationName": "Start", "PartyType": "Organization"}),
    )
    .await;
    eventually("K-1 in Dataverse", || async {
        sync.dv_get("accounts", account()).await.is_some()
    })
    .await;
    settle(&sync).await;
    sync.stop_engine().await;
    // Both sides edit K-1; finops wins by policy, but Dataverse refuses
    // the winner's value, so the winner is parked.
    sync.fo_upsert("CustomersV3", KEY, json!({"OrganizationName": "Refused"}))
        .await;
    sync.dv_upsert("accounts", account(), json!({"name": "Right edit"}))
        .await;
    // A business rule of the service that refuses the name `Refused`.
    let refusing = hook(|change| async move {
        match change["row"]["name"] == "Refused" {
            true => (StatusCode::BAD_REQUEST, "names may not be Refused"),
            false => (StatusCode::NO_CONTENT, ""),
        }
    });
    sync.dataverse.set_hook("accounts", Some(refusing.await));
    sync.start_engine_only().await;
    eventually("the winner parked", || async {
        !sync.activity("customers", Action::Parked).is_empty()
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    // The loser is not closed while the winner is not written.
    assert!(
        sync.activity("customers", Action::ConflictLost).is_empty(),
        "{:?}",
        sync.activity("customers", Action::ConflictLost)
    );
    let store = sync.engine().checkpoints();
    assert_eq!(store.queued("customers", Direction::RightToLeft), 1);
    let (key, _) = store
        .parked("customers", Direction::LeftToRight)
        .expect("parked keys")
        .pop()
        .expect("the winner is parked");
    // The admin drops the refused winner: the other side's edit, kept
    // queued, now syncs, and both sides agree.
    store
        .discard("customers", Direction::LeftToRight, &key)
        .expect("discarded");
    eventually("the right edit in finops", || async {
        sync.fo_get("CustomersV3", KEY)
            .await
            .is_some_and(|row| text(&row, "OrganizationName") == "Right edit")
    })
    .await;
    let right = sync
        .dv_get("accounts", account())
        .await
        .expect("K-1 in Dataverse");
    assert_eq!(text(&right, "name"), "Right edit");
    sync.shutdown().await;
}
