//! Races between the two sides and the host: an edit that lands while the
//! host's write to the same row is in flight, a value set back to what the
//! host once wrote, a row deleted and made again between two reads, and a
//! shutdown during an outage.

use dualwrite::checkpoint::Action;
use std::time::{Duration, Instant};

use dualwrite::connector::Key;
use dualwrite_emulators::FaultConfig;
use serde_json::json;

use super::{MAPS, Sync, eventually, hook, in_usmf, settle, text};

const KEY: &[(&str, &str)] = &[("dataAreaId", "usmf"), ("CustomerAccount", "Q-1")];

fn account() -> Key {
    Key::single("accountnumber", "Q-1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_landing_while_the_host_writes_the_row_does_not_split_the_sides() {
    let sync = Sync::start(MAPS, "").await;
    sync.company_id("usmf").await;
    sync.fo_upsert(
        "CustomersV3",
        KEY,
        json!({"OrganizationName": "A", "PartyType": "Organization"}),
    )
    .await;
    eventually("Q-1 in Dataverse", || async {
        sync.dv_get("accounts", account()).await.is_some()
    })
    .await;
    settle(&sync).await;
    // finops says X; the host's write of X to Dataverse is held 1.5 s
    // before it commits, and meanwhile a user's Y commits in Dataverse and
    // is read by change tracking.
    sync.dataverse.set_hook(
        "accounts",
        // Holds every write of a row named X for 1.5 s before it commits.
        Some(
            hook(|change| async move {
                if change["row"]["name"] == "X" {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                }
                (axum::http::StatusCode::NO_CONTENT, "")
            })
            .await,
        ),
    );
    sync.fo_upsert("CustomersV3", KEY, json!({"OrganizationName": "X"}))
        .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    sync.dv_upsert("accounts", account(), json!({"name": "Y"}))
        .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    settle(&sync).await;
    let left = sync
        .fo_get("CustomersV3", KEY)
        .await
        .expect("Q-1 is still in finops");
    let right = sync
        .dv_get("accounts", account())
        .await
        .expect("Q-1 is still in Dataverse");
    // Both sides end on one of the two edits, never on the original A or
    // an empty name. On a machine that is not loaded it is X: the host's X
    // commits in Dataverse after the user's Y, and Y, read before X
    // landed, is superseded by it; a host slow to read finops may see Y
    // first and settle on Y instead.
    let names = (text(&left, "OrganizationName"), text(&right, "name"));
    let conflicts = sync.activity("customers", Action::ConflictLost);
    assert_eq!(
        names.0, names.1,
        "both sides hold the same name: {conflicts:?}"
    );
    assert!(
        names.0 == "X" || names.0 == "Y",
        "the name is one of the two edits, not {:?}: {conflicts:?}",
        names.0
    );
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_set_back_to_an_old_write_of_the_host_is_an_edit_not_an_echo() {
    // Dataverse is read at start only; finops arrives by webhook.
    let mut sync = Sync::start_pushed().await;
    // The host writes A to Dataverse; a user makes it B before the host
    // ever reads the row back, so A never echoes.
    sync.fo_upsert(
        "CustomersV3",
        KEY,
        json!({"OrganizationName": "A", "PartyType": "Organization"}),
    )
    .await;
    eventually("A in Dataverse", || async {
        sync.dv_get("accounts", account())
            .await
            .is_some_and(|row| text(&row, "name") == "A")
    })
    .await;
    sync.dv_upsert("accounts", account(), json!({"name": "B"}))
        .await;
    sync.stop_engine().await;
    sync.start_engine().await;
    eventually("B in finops", || async {
        sync.fo_get("CustomersV3", KEY)
            .await
            .is_some_and(|row| text(&row, "OrganizationName") == "B")
    })
    .await;
    // The user sets it back to A: an edit, to sync like any other.
    sync.dv_upsert("accounts", account(), json!({"name": "A"}))
        .await;
    sync.stop_engine().await;
    sync.start_engine().await;
    eventually("A back in finops", || async {
        sync.fo_get("CustomersV3", KEY)
            .await
            .is_some_and(|row| text(&row, "OrganizationName") == "A")
    })
    .await;
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_deleted_and_made_again_between_two_reads_is_made_again() {
    let mut sync = Sync::start(MAPS, "").await;
    sync.company_id("usmf").await;
    sync.fo_upsert(
        "CustomersV3",
        KEY,
        json!({"OrganizationName": "Original", "PartyType": "Organization"}),
    )
    .await;
    eventually("Q-1 in Dataverse", || async {
        sync.dv_get("accounts", account()).await.is_some()
    })
    .await;
    settle(&sync).await;
    sync.stop_engine().await;
    sync.dv_delete("accounts", account()).await;
    sync.dv_upsert(
        "accounts",
        account(),
        in_usmf(json!({"name": "Made again", "customertypecode": 3})),
    )
    .await;
    sync.start_engine().await;
    settle(&sync).await;
    let left = sync.fo_get("CustomersV3", KEY).await;
    assert_eq!(
        left.map(|row| text(&row, "OrganizationName")),
        Some("Made again".to_owned()),
        "the delete of the old row comes before the new row"
    );
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_an_outage_does_not_wait_for_the_retries() {
    let mut sync = Sync::start(MAPS, "").await;
    sync.company_id("usmf").await;
    settle(&sync).await;
    sync.dataverse.set_faults(FaultConfig {
        error_share: 1.0,
        ..FaultConfig::default()
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    // A read in retries would hold shutdown for the retry budget (minutes);
    // the bound leaves room for a loaded machine.
    let started = Instant::now();
    sync.stop_engine().await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "shutdown took {:?}",
        started.elapsed()
    );
    sync.dataverse.set_faults(FaultConfig::default());
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_back_to_an_older_write_while_a_newer_one_is_unread_is_an_edit() {
    // finops pushes its events; Dataverse is read at start only.
    let mut sync = Sync::start_pushed().await;
    // The host writes B1, then B2, to Dataverse; neither has been read back.
    for name in ["B1", "B2"] {
        sync.fo_upsert(
            "CustomersV3",
            KEY,
            json!({"OrganizationName": name, "PartyType": "Organization"}),
        )
        .await;
        eventually(name, || async {
            sync.dv_get("accounts", account())
                .await
                .is_some_and(|row| text(&row, "name") == name)
        })
        .await;
    }
    // A user sets Dataverse back to B1, which the host wrote once, then the
    // host reads Dataverse.
    sync.dv_upsert("accounts", account(), json!({"name": "B1"}))
        .await;
    sync.stop_engine().await;
    sync.start_engine().await;
    eventually("B1 in finops", || async {
        sync.fo_get("CustomersV3", KEY)
            .await
            .is_some_and(|row| text(&row, "OrganizationName") == "B1")
    })
    .await;
    sync.shutdown().await;
}
