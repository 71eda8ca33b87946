//! The engine's Prometheus metrics move as rows sync: counted per map and
//! direction as the engine counts them, a write latency observed for each
//! row written, a backlog and an oldest age while a paused map's changes
//! wait, plugin calls and traps per plugin version, and each system's
//! requests, 429s and errors as the emulators throttle and fail. Every
//! scrape is read with a real Prometheus text parser.

use dualwrite::checkpoint::Direction;
use dualwrite::connector::Key;
use dualwrite::sync::{Queued, RunningEngine};
use dualwrite_emulators::FaultConfig;
use dualwrite_tests::{HOSTILE_PANIC, PHONE_NORMALIZE};
use serde_json::json;

use super::{MAPS, Sync, eventually, settle};
use crate::prometheus::{Scrape, parse};

fn scrape(engine: &RunningEngine) -> Scrape {
    parse(&engine.metrics().expect("the store answers"))
}

const CUSTOMERS: [(&str, &str); 2] = [("map", "customers"), ("direction", "left-to-right")];

fn key(account: &str) -> [(&str, &str); 2] {
    [("dataAreaId", "usmf"), ("CustomerAccount", account)]
}

async fn customer(sync: &Sync, account: &str) {
    sync.fo_upsert(
        "CustomersV3",
        &key(account),
        json!({"OrganizationName": account, "PartyType": "Organization", "PrimaryContactPhone": "(206) 709-3400"}),
    )
    .await;
}

async fn in_dataverse(sync: &Sync, accounts: &[&str]) {
    for account in accounts {
        eventually(&format!("{account} in Dataverse"), || async {
            sync.dv_get("accounts", Key::single("accountnumber", account))
                .await
                .is_some()
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_as_rows_sync() {
    // Customers run phone-normalize left to right; customer groups a
    // plugin that panics on every row.
    let maps = MAPS
        .replace(
            "  \"PartyType < default Organization\",\n]",
            &format!(
                "  \"PartyType < default Organization\",\n]\nplugins = [{{ path = {PHONE_NORMALIZE:?}, direction = \">\", settings = {{ fields = \"telephone1\", region = \"US\" }} }}]"
            ),
        )
        .replace(
            "fields = [\"Description = msdyn_description\"]",
            &format!(
                "fields = [\"Description = msdyn_description\"]\nplugins = [{{ path = {HOSTILE_PANIC:?}, direction = \">\" }}]"
            ),
        );
    let sync = Sync::start(&maps, "").await;
    sync.company_id("usmf").await;
    let engine = sync.engine();
    let first = scrape(engine);
    assert_eq!(
        first.get(
            "dualwrite_written_total",
            &[("map", "legal-entities"), ("direction", "left-to-right")]
        ),
        1.0,
        "the legal entity of the initial copy"
    );
    assert_eq!(first.get("dualwrite_written_total", &CUSTOMERS), 0.0);
    let backwards = [("map", "legal-entities"), ("direction", "right-to-left")];
    for metric in [
        "dualwrite_written_total",
        "dualwrite_backlog",
        "dualwrite_write_latency_seconds_count",
    ] {
        assert_eq!(
            first.value(metric, &backwards),
            None,
            "legal entities flow left to right only: no {metric} the other way"
        );
    }

    let accounts = ["M-1", "M-2", "M-3", "M-4", "M-5"];
    for account in accounts {
        customer(&sync, account).await;
    }
    in_dataverse(&sync, &accounts).await;
    settle(&sync).await;
    let synced = scrape(engine);
    let stats = engine.stats("customers", Direction::LeftToRight);
    assert_eq!(stats.written, 5);
    assert_eq!(
        synced.get("dualwrite_written_total", &CUSTOMERS),
        5.0,
        "one write per row synced"
    );
    assert_eq!(
        synced.get("dualwrite_captured_total", &CUSTOMERS),
        stats.captured as f64
    );
    assert!(stats.captured >= 5, "{stats:?}");
    assert_eq!(
        synced.count("dualwrite_write_latency_seconds", &CUSTOMERS),
        5.0,
        "a latency per row written"
    );
    assert!(
        synced.get("dualwrite_write_latency_seconds_sum", &CUSTOMERS) > 0.0,
        "the latencies are not all zero"
    );
    assert_eq!(
        synced.get(
            "dualwrite_echoes_total",
            &[("map", "customers"), ("direction", "right-to-left")]
        ),
        engine.stats("customers", Direction::RightToLeft).echoes as f64
    );
    assert_eq!(synced.get("dualwrite_backlog", &CUSTOMERS), 0.0);
    assert_eq!(
        synced.get("dualwrite_oldest_unsynced_age_seconds", &CUSTOMERS),
        0.0
    );
    let phone = [("plugin", "phone-normalize")];
    assert!(
        synced.count("dualwrite_plugin_call_duration_seconds", &phone) >= 1.0,
        "the plugin ran over the customers' batches"
    );
    assert_eq!(synced.value("dualwrite_plugin_traps_total", &phone), None);
    for system in ["finops", "dataverse"] {
        let requests = synced.get("dualwrite_http_requests_total", &[("system", system)]);
        assert!(
            requests > first.get("dualwrite_http_requests_total", &[("system", system)]),
            "{system} was asked more as rows synced"
        );
    }

    // A panicking plugin's trap is counted for its version, and its row
    // parked.
    sync.fo_upsert(
        "CustomerGroups",
        &[("dataAreaId", "usmf"), ("CustomerGroupId", "10")],
        json!({"Description": "Trapped"}),
    )
    .await;
    let groups = [("map", "customer-groups"), ("direction", "left-to-right")];
    eventually("the group parked", || async {
        scrape(engine).get("dualwrite_parked_total", &groups) == 1.0
    })
    .await;
    let trapped = scrape(engine);
    assert!(
        trapped.get(
            "dualwrite_plugin_traps_total",
            &[("plugin", "hostile-panic"), ("kind", "panic")]
        ) >= 1.0,
        "the panic is counted"
    );
    assert_eq!(trapped.get("dualwrite_written_total", &groups), 0.0);

    // While the map is paused its changes wait: the backlog and the age of
    // the oldest one grow; resumed, both fall back to zero.
    engine
        .pause_maps(&["customers".to_owned()], false)
        .await
        .expect("paused");
    customer(&sync, "M-6").await;
    eventually("M-6 queued", || async {
        scrape(engine).get("dualwrite_backlog", &CUSTOMERS) == 1.0
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let waiting = scrape(engine);
    let age = waiting.get("dualwrite_oldest_unsynced_age_seconds", &CUSTOMERS);
    assert!(age >= 0.3, "M-6 has waited since it was queued: {age}");
    engine
        .resume_maps(&["customers".to_owned()], Queued::Replay)
        .await
        .expect("resumed");
    in_dataverse(&sync, &["M-6"]).await;
    eventually("the backlog drained", || async {
        let now = scrape(engine);
        now.get("dualwrite_backlog", &CUSTOMERS) == 0.0
            && now.get("dualwrite_oldest_unsynced_age_seconds", &CUSTOMERS) == 0.0
    })
    .await;
    let resumed = scrape(engine);
    assert_eq!(resumed.get("dualwrite_written_total", &CUSTOMERS), 6.0);
    let latencies = resumed.count("dualwrite_write_latency_seconds", &CUSTOMERS);
    assert_eq!(latencies, 6.0);
    assert!(
        resumed.get("dualwrite_write_latency_seconds_sum", &CUSTOMERS)
            >= synced.get("dualwrite_write_latency_seconds_sum", &CUSTOMERS) + age,
        "M-6's latency covers its wait in the paused map"
    );

    // Dataverse throttles and finops fails: each system's 429s and errors
    // are counted from its connector's own requests.
    let dv = [("system", "dataverse")];
    let fo = [("system", "finops")];
    assert_eq!(resumed.get("dualwrite_http_throttled_total", &dv), 0.0);
    assert_eq!(resumed.get("dualwrite_http_errors_total", &fo), 0.0);
    sync.dataverse.set_faults(FaultConfig {
        throttle_share: 0.5,
        ..FaultConfig::default()
    });
    sync.finops.set_faults(FaultConfig {
        error_share: 0.5,
        ..FaultConfig::default()
    });
    customer(&sync, "M-7").await;
    eventually("a 429 and a 5xx counted", || async {
        let now = scrape(engine);
        now.get("dualwrite_http_throttled_total", &dv) >= 1.0
            && now.get("dualwrite_http_errors_total", &fo) >= 1.0
    })
    .await;
    sync.dataverse.set_faults(FaultConfig::default());
    sync.finops.set_faults(FaultConfig::default());
    in_dataverse(&sync, &["M-7"]).await;
    let faulted = scrape(engine);
    let dv_stats = engine.system_stats("dataverse").expect("dataverse");
    let fo_stats = engine.system_stats("finops").expect("finops");
    assert!(
        faulted.get("dualwrite_http_throttled_total", &dv) <= dv_stats.throttled as f64
            && dv_stats.throttled >= 1,
        "{dv_stats:?}"
    );
    assert!(
        faulted.get("dualwrite_http_errors_total", &fo) <= fo_stats.errors as f64,
        "{fo_stats:?}"
    );
    assert_eq!(
        faulted.get("dualwrite_http_throttled_total", &fo),
        0.0,
        "finops was not throttled"
    );
    sync.shutdown().await;
}
