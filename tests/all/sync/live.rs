//! Live maps (`mode = "live"`): the engine registers synchronous steps in
//! Dataverse, so a Dataverse save commits only once its change is in
//! finops, and fails with dualwrite's message when finops refuses it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dualwrite::checkpoint::Checkpoints;
use dualwrite::config::parse_maps;
use dualwrite::connector::{BatchMode, DataverseConnector, Key, Write, WriteOutcome};
use dualwrite::sync::MapCommand;
use serde_json::{Value, json};

use super::{MAPS, Sync, eventually, free_port, in_usmf};

/// The test maps with `customers` live (and `extra` lines in its entry).
fn live_maps(extra: &str) -> String {
    let maps = MAPS.replace(
        "name = \"customers\"\n",
        &format!("name = \"customers\"\nmode = \"live\"\n{extra}"),
    );
    assert_ne!(maps, MAPS, "the customers map is live");
    maps
}

/// The engine on the live maps, change tracking read every 200 ms.
async fn start(extra: &str) -> Sync {
    start_on(&live_maps(extra)).await
}

/// The engine on `maps`, change tracking read every 200 ms.
async fn start_on(maps: &str) -> Sync {
    let port = free_port();
    let sync = Sync::start_with(
        maps,
        &format!(
            "listen = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\npoll_interval = \"200ms\"\ncatch_all_interval = \"200ms\""
        ),
        false,
        "events_secret_env = \"DATAVERSE_EVENTS_SECRET\"",
    )
    .await;
    sync.company_id("usmf").await;
    sync
}

fn account(number: &str) -> Key {
    Key::single("accountnumber", number)
}

fn customer(name: &str) -> Value {
    in_usmf(json!({"name": name, "customertypecode": 3}))
}

async fn organization_name(sync: &Sync, number: &str) -> Option<String> {
    sync.fo_get(
        "CustomersV3",
        &[("dataAreaId", "usmf"), ("CustomerAccount", number)],
    )
    .await
    .and_then(|row| {
        row.get("OrganizationName")
            .and_then(Value::as_str)
            .map(str::to_owned)
    })
}

/// A save through the Web API, as a user's would be: its error text.
async fn save(sync: &Sync, number: &str, name: &str) -> Result<(), String> {
    let row = match customer(name) {
        Value::Object(row) => row,
        _ => unreachable!("a customer is an object"),
    };
    sync.dv
        .upsert("accounts", &account(number), &row)
        .await
        .map(drop)
        .map_err(|error| error.to_string())
}

/// Serves `app` as the finops pre-commit hook of the customers.
async fn hook(sync: &Sync, app: axum::Router) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("the hook listens");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    sync.finops.set_hook("CustomersV3", Some(url));
}

/// A finops pre-commit hook refusing the customers `refused` names, with
/// the message `credit check failed`; counts what it saw.
async fn refusing_hook(sync: &Sync, refused: &'static [&'static str]) -> Arc<AtomicUsize> {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(change): axum::Json<Value>| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let account = change
                    .pointer("/row/CustomerAccount")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let key = change["key"].as_str().unwrap_or_default().to_owned();
                if refused
                    .iter()
                    .any(|r| account == *r || key.contains(&format!("'{r}'")))
                {
                    (
                        axum::http::StatusCode::BAD_REQUEST,
                        axum::Json(json!({"error": {"message": "credit check failed"}})),
                    )
                } else {
                    (axum::http::StatusCode::OK, axum::Json(json!({})))
                }
            }
        }),
    );
    hook(sync, app).await;
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_save_is_in_finops_when_it_returns_and_is_not_synced_again() {
    let sync = start("").await;
    let steps = sync
        .dv
        .query_all("sdkmessageprocessingsteps", &Default::default())
        .await
        .expect("steps listed");
    let live: Vec<&serde_json::Map<String, Value>> = steps
        .iter()
        .filter(|s| {
            s["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("dualwrite customers "))
        })
        .collect();
    assert_eq!(live.len(), 3, "{steps:?}");
    assert!(
        live.iter().all(|s| s["mode"] == 0 && s["stage"] == 40),
        "{live:?}"
    );
    let status = sync
        .engine()
        .statuses()
        .expect("statuses")
        .into_iter()
        .find(|s| s.name == "customers")
        .expect("customers has a status");
    assert!(
        status.mode.starts_with("live from Dataverse") && status.mode.contains("async from finops"),
        "{}",
        status.mode
    );

    save(&sync, "L-1", "Live").await.expect("the save commits");
    // No waiting: the save returned after finops had the row.
    assert_eq!(
        organization_name(&sync, "L-1").await.as_deref(),
        Some("Live")
    );
    save(&sync, "L-1", "Live again")
        .await
        .expect("the update commits");
    assert_eq!(
        organization_name(&sync, "L-1").await.as_deref(),
        Some("Live again")
    );

    // Change tracking reads the saved rows again, and finops's
    // reconciliation sees the written ones: neither is synced again.
    let writes = sync.finops.write_count("CustomersV3").expect("writes");
    let dv_writes = sync.dataverse.write_count("accounts").expect("writes");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        sync.finops.write_count("CustomersV3").expect("writes"),
        writes,
        "finops is written once per save"
    );
    assert_eq!(
        sync.dataverse.write_count("accounts").expect("writes"),
        dv_writes,
        "the live write is not echoed back to Dataverse"
    );
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_finops_refuses_fails_with_dualwrites_message_and_leaves_nothing() {
    let sync = start("").await;
    refusing_hook(&sync, &["L-2"]).await;
    let error = save(&sync, "L-2", "Refused")
        .await
        .expect_err("the save fails");
    assert!(
        error.contains("dualwrite: finops refused customers")
            && error.contains("credit check failed"),
        "{error}"
    );
    assert!(sync.dv_get("accounts", account("L-2")).await.is_none());
    assert!(organization_name(&sync, "L-2").await.is_none());
    assert!(
        sync.engine().errors(None).expect("errors").is_empty(),
        "nothing stays parked"
    );
    // The refusal left nothing that stops the next save of that key.
    sync.finops.set_hook("CustomersV3", None);
    save(&sync, "L-2", "Accepted")
        .await
        .expect("the next save commits");
    assert_eq!(
        organization_name(&sync, "L-2").await.as_deref(),
        Some("Accepted")
    );
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saves_fail_while_the_map_is_paused_or_the_host_is_down() {
    let mut sync = start("").await;
    sync.engine()
        .command("customers", MapCommand::Pause)
        .await
        .expect("the map pauses");
    let error = save(&sync, "L-3", "Paused")
        .await
        .expect_err("the save fails");
    assert!(
        error.contains("dualwrite: customers is paused") && error.contains("live_fallback"),
        "{error}"
    );
    sync.stop_engine().await;
    let error = save(&sync, "L-3", "Down")
        .await
        .expect_err("the save fails");
    assert!(
        error.contains("could not be reached")
            || error.contains("unreachable")
            || error.contains("error sending request"),
        "{error}"
    );
    assert!(sync.dv_get("accounts", account("L-3")).await.is_none());
    assert!(organization_name(&sync, "L-3").await.is_none());
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_queue_fallback_saves_go_on_while_paused_and_catch_up_on_resume() {
    let sync = start("live_fallback = \"queue\"\n").await;
    sync.engine()
        .command("customers", MapCommand::Pause)
        .await
        .expect("the map pauses");
    save(&sync, "L-4", "Queued")
        .await
        .expect("the save commits while paused");
    assert!(sync.dv_get("accounts", account("L-4")).await.is_some());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(organization_name(&sync, "L-4").await.is_none(), "paused");
    sync.engine()
        .command("customers", MapCommand::Resume(Default::default()))
        .await
        .expect("the map resumes");
    eventually("L-4 in finops after catch-up", || async {
        organization_name(&sync, "L-4").await.as_deref() == Some("Queued")
    })
    .await;
    sync.shutdown().await;
}

/// Ten creates of one change set, `LB-<n>-1` … `LB-<n>-10`.
fn change_set(batch: &str) -> Vec<Write> {
    (1..=10)
        .map(|i| {
            let row = match customer(&format!("Batch {i}")) {
                Value::Object(row) => row,
                _ => unreachable!("a customer is an object"),
            };
            Write::Upsert {
                table: "accounts".into(),
                key: account(&format!("{batch}-{i}")),
                row,
            }
        })
        .collect()
}

async fn in_dataverse(dv: &DataverseConnector, batch: &str) -> usize {
    let mut found = 0;
    for i in 1..=10 {
        if dv
            .get("accounts", &account(&format!("{batch}-{i}")))
            .await
            .expect("dataverse get")
            .is_some()
        {
            found += 1;
        }
    }
    found
}

async fn in_finops(sync: &Sync, batch: &str) -> usize {
    let mut found = 0;
    for i in 1..=10 {
        if organization_name(sync, &format!("{batch}-{i}"))
            .await
            .is_some()
        {
            found += 1;
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_set_of_ten_live_rows_is_written_whole_or_not_at_all() {
    let sync = start("").await;
    let outcomes = sync
        .dv
        .write_batch(&change_set("LB-1"), BatchMode::Atomic)
        .await
        .expect("the change set is answered");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, WriteOutcome::Applied { .. })),
        "{outcomes:?}"
    );
    assert_eq!(
        in_finops(&sync, "LB-1").await,
        10,
        "all ten when it returns"
    );

    refusing_hook(&sync, &["LB-2-7"]).await;
    let outcomes = sync
        .dv
        .write_batch(&change_set("LB-2"), BatchMode::Atomic)
        .await;
    let failed = match outcomes {
        Err(error) => error.to_string(),
        Ok(outcomes) => outcomes
            .iter()
            .find_map(|o| match o {
                WriteOutcome::Failed { service, .. } => Some(service.message.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("the change set fails: {outcomes:?}")),
    };
    assert!(
        failed.contains("dualwrite: finops refused customers"),
        "{failed}"
    );
    assert_eq!(
        in_dataverse(&sync.dv, "LB-2").await,
        0,
        "Dataverse rolled back"
    );
    eventually(
        "the six rows written before the refusal taken back",
        || async { in_finops(&sync, "LB-2").await == 0 },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(in_finops(&sync, "LB-2").await, 0, "and they stay gone");
    assert_eq!(in_dataverse(&sync.dv, "LB-2").await, 0);
    sync.shutdown().await;
}

/// The test maps' customers entry, live.
fn live_customers() -> String {
    let maps = live_maps("");
    let start = maps
        .find("[[maps]]\nname = \"customers\"")
        .expect("the customers entry");
    maps[start..].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_map_swapped_to_more_fields_is_called_with_them() {
    // Live without the phone, then swapped to the entry with it.
    let phone = "  \"PrimaryContactPhone = telephone1\",\n";
    let full = live_customers();
    assert!(full.contains(phone));
    let mut sync = start_on(&live_maps("").replace(phone, "")).await;
    sync.stop_engine().await;
    let store = Checkpoints::open(&sync.dir.path().join("data")).expect("the store");
    sync.start_engine_swappable(store).await;
    let maps = parse_maps("swap.toml", &full).expect("parses");
    sync.engine()
        .apply_maps(maps, false)
        .await
        .expect("the new version is applied");

    let mut row = match customer("Phoned") {
        Value::Object(row) => row,
        _ => unreachable!("a customer is an object"),
    };
    row.insert("telephone1".into(), json!("+1 555 0100"));
    sync.dv
        .upsert("accounts", &account("L-5"), &row)
        .await
        .expect("the save commits");
    let saved = sync
        .fo_get(
            "CustomersV3",
            &[("dataAreaId", "usmf"), ("CustomerAccount", "L-5")],
        )
        .await
        .expect("in finops when the save returns");
    assert_eq!(saved["PrimaryContactPhone"], "+1 555 0100", "{saved:?}");
    sync.shutdown().await;
}

/// A finops pre-commit hook that answers 200 after `delay`, once; at once
/// after that.
async fn slow_hook(sync: &Sync, delay: Duration) {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let calls = calls.clone();
            async move {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    tokio::time::sleep(delay).await;
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    hook(sync, app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_finops_confirms_too_late_fails_and_its_late_write_is_taken_back() {
    let sync = start("").await;
    // finops takes 25 s over the write: past the host's 20 s deadline,
    // within the hook's own 30 s.
    slow_hook(&sync, Duration::from_secs(25)).await;
    let error = save(&sync, "L-6", "Late")
        .await
        .expect_err("the save fails at the deadline");
    assert!(
        error.contains("dualwrite: finops did not confirm customers"),
        "{error}"
    );
    assert!(sync.dv_get("accounts", account("L-6")).await.is_none());
    // The write lands in finops once the hook answers, and is taken back.
    eventually("the late write taken back", || async {
        organization_name(&sync, "L-6").await.is_none()
            && sync.finops.write_count("CustomersV3").expect("writes") >= 2
    })
    .await;
    sync.finops.set_hook("CustomersV3", None);
    save(&sync, "L-6", "On time")
        .await
        .expect("the next save commits");
    assert_eq!(
        organization_name(&sync, "L-6").await.as_deref(),
        Some("On time")
    );
    sync.shutdown().await;
}
