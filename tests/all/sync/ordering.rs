//! Per-key order with several batches in flight: changes of one key reach
//! the target in capture order while other keys' batches run beside them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dualwrite::checkpoint::Direction;
use dualwrite::connector::Key;
use dualwrite::sync::MapCommand;
use serde_json::json;

use super::{MAPS, Sync, eventually, hook, settle, text};

const KEYS: usize = 20;
const VERSIONS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_to_twenty_keys_over_concurrent_batches_arrive_in_per_key_order() {
    // Batches of 5 changes, 4 of them in flight: the 20 keys are spread
    // over concurrent batches. finops events are pushed, each read again
    // (a change queued when the row read is not the one last seen);
    // reconciliation only every hour.
    let sync = Sync::start(
        MAPS,
        "listen = \"127.0.0.1:0\"\npoll_interval = \"1h\"\ncatch_all_interval = \"1h\"\nbatch_size = 5\nbatches_in_flight = 4",
    )
    .await;
    sync.company_id("usmf").await;
    sync.push_finops_events();
    let account = |i: usize| format!("ORD-{i:02}");
    // Every account the host writes to Dataverse, in commit order.
    let seen: Arc<Mutex<BTreeMap<String, Vec<String>>>> = Arc::default();
    let record = seen.clone();
    sync.dataverse.set_hook(
        "accounts",
        Some(
            hook(move |change| {
                let record = record.clone();
                async move {
                    let number = change["row"]["accountnumber"].as_str().map(str::to_owned);
                    let name = change["row"]["name"].as_str().map(str::to_owned);
                    if let (Some(number), Some(name)) = (number, name) {
                        let mut seen = record.lock().unwrap_or_else(|e| e.into_inner());
                        seen.entry(number).or_default().push(name);
                    }
                    // A little time in the commit, so batches overlap.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    (axum::http::StatusCode::NO_CONTENT, "")
                }
            })
            .await,
        ),
    );
    // The map is paused while the changes are made: they queue up, then
    // are written from the backlog by concurrent batches.
    sync.engine()
        .command("customers", MapCommand::Pause)
        .await
        .expect("the map pauses");
    // Each round queued before the next is made: every event's re-read
    // then finds its own version, so each key has VERSIONS changes queued.
    let queued_at = |version: usize| {
        let sync = &sync;
        async move {
            (0..KEYS).all(|i| {
                let key = format!("{}|usmf", account(i));
                sync.engine()
                    .checkpoints()
                    .pending("customers", Direction::LeftToRight, &key)
                    .expect("pending")
                    .last()
                    .is_some_and(|queued| {
                        text(&queued.change.row, "OrganizationName") == format!("v{version:03}")
                    })
            })
        }
    };
    for version in 1..=VERSIONS {
        for i in 0..KEYS {
            sync.fo_upsert(
                "CustomersV3",
                &[("dataAreaId", "usmf"), ("CustomerAccount", &account(i))],
                json!({"OrganizationName": format!("v{version:03}"), "PartyType": "Organization"}),
            )
            .await;
        }
        eventually(&format!("version {version} of every key queued"), || {
            queued_at(version)
        })
        .await;
    }
    sync.engine()
        .command(
            "customers",
            MapCommand::Resume(dualwrite::sync::Queued::Replay),
        )
        .await
        .expect("the map resumes");
    eventually("the last version of every key in Dataverse", || async {
        let mut all = true;
        for i in 0..KEYS {
            let row = sync
                .dv_get("accounts", Key::single("accountnumber", &account(i)))
                .await;
            all &= row.is_some_and(|row| text(&row, "name") == format!("v{VERSIONS:03}"));
        }
        all
    })
    .await;
    settle(&sync).await;
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(seen.len(), KEYS, "every key was written: {:?}", seen.keys());
    for (key, names) in &seen {
        // Strictly: a version written twice means two batches carried
        // the same change at once.
        assert!(
            names.windows(2).all(|pair| pair[0] < pair[1]),
            "{key} was written out of capture order, or twice: {names:?}"
        );
        assert_eq!(
            names.last().map(String::as_str),
            Some(format!("v{VERSIONS:03}").as_str()),
            "{key} ends at its last version"
        );
    }
    let written = sync
        .engine()
        .stats("customers", Direction::LeftToRight)
        .written;
    assert!(
        written >= (KEYS * 2) as u64,
        "the backlog was written in several rounds per key ({written} writes)"
    );
    sync.shutdown().await;
}
