//! Alert rules over a running engine, each condition made true for real:
//! a paused map's backlog, its oldest change and its full queue fire their
//! rules and resolve as the map catches up; a target system down longer
//! than a rule allows pauses the map (`failed`, the rule recorded); a
//! plugin quarantined fires its rule. Every firing and resolution is a
//! line of the activity log, keyed by the rule, of step `alert`.

use std::time::Duration;

use dualwrite::checkpoint::{Action, Activity, Lifecycle, Step};
use dualwrite::connector::{ConnectorOptions, Key, RetryPolicy};
use dualwrite::sync::{EngineOptions, MapState, Queued};
use dualwrite_emulators::FaultConfig;
use serde_json::json;

use super::{MAPS, Sync, eventually};

fn account(number: &str) -> Key {
    Key::single("accountnumber", number)
}

fn customer(number: &str) -> [(&'static str, String); 2] {
    [
        ("dataAreaId", "usmf".into()),
        ("CustomerAccount", number.into()),
    ]
}

async fn add_customer(sync: &Sync, number: &str) {
    let key = customer(number);
    let key: Vec<(&str, &str)> = key.iter().map(|(k, v)| (*k, v.as_str())).collect();
    sync.fo_upsert(
        "CustomersV3",
        &key,
        json!({"OrganizationName": format!("Customer {number}"), "PartyType": "Organization"}),
    )
    .await;
}

/// The alert lines of rule `rule` that say `what`.
fn lines(sync: &Sync, rule: &str, what: Action) -> Vec<Activity> {
    sync.engine()
        .checkpoints()
        .activity()
        .expect("the activity log")
        .into_iter()
        .filter(|line| line.key == rule && line.what == what)
        .collect()
}

fn firing(sync: &Sync, rule: &str) -> Vec<String> {
    sync.engine()
        .alert_rules()
        .into_iter()
        .find(|status| status.rule.name == rule)
        .map(|status| status.firing.into_iter().map(|f| f.map).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_maps_backlog_age_and_full_queue_fire_and_resolve_as_it_catches_up() {
    let maps = format!(
        r#"{MAPS}
[alerts]
interval = "100ms"

[[alerts.rules]]
name = "backlog"
map = "customers"
condition = "backlog"
above = 2

[[alerts.rules]]
name = "stuck"
condition = "oldest-change"
older_than = "300ms"

[[alerts.rules]]
name = "full"
map = "customers"
condition = "queue-full"
"#
    );
    let sync = Sync::start(&maps, "queue = { max_changes = 3 }").await;
    sync.company_id("usmf").await;
    let engine = sync.engine();
    // Only a running map pauses: its initial copy may still be ending.
    eventually("customers running", || async {
        engine.state("customers") == Some(MapState::Running)
    })
    .await;
    engine
        .pause_maps(&["customers".into()], false)
        .await
        .expect("paused");
    for number in ["A-1", "A-2", "A-3", "A-4"] {
        add_customer(&sync, number).await;
    }
    for rule in ["backlog", "stuck", "full"] {
        eventually(&format!("rule `{rule}` to fire"), || async {
            !lines(&sync, rule, Action::Fired).is_empty()
        })
        .await;
    }
    assert_eq!(firing(&sync, "backlog"), ["customers"]);
    let firing_metric = r#"dualwrite_alert_firing{rule="backlog",map="customers"} 1"#;
    let metrics = engine.metrics().expect("metrics");
    assert!(metrics.lines().any(|l| l == firing_metric), "{metrics}");
    assert_eq!(firing(&sync, "stuck"), ["customers"], "no other map waits");
    let fired = &lines(&sync, "full", Action::Fired)[0];
    assert_eq!(fired.map, "customers");
    assert_eq!(fired.direction, None);
    assert_eq!(fired.step, Some(Step::Alert));
    assert!(
        fired.detail.starts_with(
            "a queue full: the left to right queue holds 3 changes, its max_changes 3 (actions: notify)"
        ),
        "{fired:?}"
    );
    let backlog = &lines(&sync, "backlog", Action::Fired)[0];
    assert!(
        backlog
            .detail
            .starts_with("more than 2 changes queued: 3 changes queued"),
        "{backlog:?}"
    );
    // Notify only: the map stays paused, and fires once while it holds.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(engine.state("customers"), Some(MapState::Paused));
    assert_eq!(
        lines(&sync, "backlog", Action::Fired).len(),
        1,
        "fired once"
    );

    engine
        .resume_maps(&["customers".into()], Queued::Replay)
        .await
        .expect("resumed");
    for rule in ["backlog", "stuck", "full"] {
        eventually(&format!("rule `{rule}` to resolve"), || async {
            !lines(&sync, rule, Action::Resolved).is_empty()
        })
        .await;
        assert!(firing(&sync, rule).is_empty(), "{rule} no longer fires");
    }
    let metrics = sync.engine().metrics().expect("metrics");
    assert!(!metrics.contains("dualwrite_alert_firing{"), "{metrics}");
    eventually("A-4 in Dataverse", || async {
        sync.dv_get("accounts", account("A-4")).await.is_some()
    })
    .await;
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_down_longer_than_the_rule_allows_pauses_the_map_until_it_is_started() {
    let maps = format!(
        r#"{MAPS}
[alerts]
interval = "100ms"

[[alerts.rules]]
name = "dataverse-down"
condition = "unreachable"
system = "dataverse"
for = "300ms"
actions = ["pause"]
"#
    );
    let mut sync = Sync::start(&maps, "").await;
    sync.company_id("usmf").await;
    sync.stop_engine().await;
    // Quick retries, so a write gives up on the service soon.
    sync.options = EngineOptions {
        connector: ConnectorOptions {
            retry: RetryPolicy {
                max_attempts: 2,
                base_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(50),
                ..RetryPolicy::default()
            },
            ..ConnectorOptions::default()
        },
        ..EngineOptions::default()
    };
    sync.start_engine().await;
    sync.dataverse.set_faults(FaultConfig {
        outage_seconds: 3600,
        ..FaultConfig::default()
    });
    add_customer(&sync, "D-1").await;
    eventually("the rule to pause customers", || async {
        matches!(sync.engine().state("customers"), Some(MapState::Failed(_)))
    })
    .await;
    let Some(MapState::Failed(reason)) = sync.engine().state("customers") else {
        unreachable!("failed, as waited for");
    };
    assert!(
        reason.contains("alert rule `dataverse-down` paused it: system `dataverse` unreachable for longer than 300ms"),
        "{reason}"
    );
    let record = sync
        .engine()
        .checkpoints()
        .map_record("customers")
        .expect("the store")
        .expect("a record");
    assert_eq!(record.state, Lifecycle::Failed);
    assert_eq!(record.alert.as_deref(), Some("dataverse-down"));
    assert!(!lines(&sync, "dataverse-down", Action::Fired).is_empty());
    // Pause only: no notification was queued.
    assert_eq!(
        sync.engine()
            .checkpoints()
            .notifications_waiting()
            .expect("the outbox"),
        0
    );
    // Back up, an admin's start writes what waited.
    sync.dataverse.set_faults(FaultConfig::default());
    sync.engine()
        .start_maps(&["customers".into()], &Default::default())
        .await
        .expect("started");
    eventually("D-1 in Dataverse", || async {
        sync.dv_get("accounts", account("D-1")).await.is_some()
    })
    .await;
    let record = sync
        .engine()
        .checkpoints()
        .map_record("customers")
        .expect("the store")
        .expect("a record");
    assert_eq!(record.alert, None, "a start clears the rule");
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantined_plugin_fires_its_rule() {
    // hostile-panic panics on every row with a name; quarantined after
    // its first trap.
    let maps = MAPS.replace(
        "  \"PartyType < default Organization\",\n]",
        &format!(
            "  \"PartyType < default Organization\",\n]\nplugins = [{{ path = {:?}, direction = \">\", limits = {{ quarantine_after = 1 }} }}]",
            dualwrite_tests::HOSTILE_PANIC
        ),
    ) + r#"
[alerts]
interval = "100ms"

[[alerts.rules]]
name = "quarantine"
condition = "plugin-quarantined"
plugin = "hostile-panic"
"#;
    let sync = Sync::start(&maps, "").await;
    sync.company_id("usmf").await;
    add_customer(&sync, "Q-1").await;
    eventually("the rule to fire", || async {
        !lines(&sync, "quarantine", Action::Fired).is_empty()
    })
    .await;
    let fired = &lines(&sync, "quarantine", Action::Fired)[0];
    assert_eq!(fired.map, "customers");
    assert!(
        fired
            .detail
            .contains("plugin `hostile-panic` quarantined: plugin hostile-panic@"),
        "{fired:?}"
    );
    assert_eq!(firing(&sync, "quarantine"), ["customers"]);
    sync.shutdown().await;
}
