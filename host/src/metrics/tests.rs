use std::time::Duration;

use super::*;

fn flow(map: &str, direction: Direction, written: u64) -> FlowSample {
    FlowSample {
        map: map.to_owned(),
        direction,
        captured: written + 1,
        written,
        deleted: 2,
        skipped: 3,
        parked: 4,
        echoes: 5,
        conflicts: 6,
        backlog: 7,
        oldest: Some(Duration::from_millis(1500)),
    }
}

#[test]
fn a_snapshot_and_the_live_families_render_as_prometheus_text() {
    let plugins = PluginMetrics::default();
    let metrics = Metrics::new(plugins.clone());
    let latency = metrics.write_latency("customers", Direction::LeftToRight);
    observe_latency(&latency, Duration::from_millis(40));
    observe_latency(&latency, Duration::from_secs(2));
    let meter = plugins.meter("party-name-split", Some("1.0.0"));
    meter.call(Duration::from_micros(300));
    meter.trap("timeout");
    let mut unknown_age = flow("customers", Direction::RightToLeft, 0);
    unknown_age.oldest = None;
    let text = metrics.render(Snapshot {
        flows: vec![flow("customers", Direction::LeftToRight, 10), unknown_age],
        systems: vec![SystemSample {
            system: "finops".into(),
            requests: 12,
            throttled: 1,
            errors: 2,
        }],
        firing: vec![("application-errors".into(), "customers".into())],
        notifications: vec![("ops".into(), 3)],
    });
    for line in [
        "# TYPE dualwrite_written_total counter",
        r#"dualwrite_written_total{map="customers",direction="left-to-right"} 10"#,
        r#"dualwrite_written_total{map="customers",direction="right-to-left"} 0"#,
        r#"dualwrite_captured_total{map="customers",direction="left-to-right"} 11"#,
        r#"dualwrite_deleted_total{map="customers",direction="left-to-right"} 2"#,
        r#"dualwrite_skipped_total{map="customers",direction="left-to-right"} 3"#,
        r#"dualwrite_parked_total{map="customers",direction="left-to-right"} 4"#,
        r#"dualwrite_echoes_total{map="customers",direction="left-to-right"} 5"#,
        r#"dualwrite_conflicts_total{map="customers",direction="left-to-right"} 6"#,
        "# TYPE dualwrite_backlog gauge",
        r#"dualwrite_backlog{map="customers",direction="left-to-right"} 7"#,
        "# TYPE dualwrite_oldest_unsynced_age_seconds gauge",
        r#"dualwrite_oldest_unsynced_age_seconds{map="customers",direction="left-to-right"} 1.5"#,
        "# TYPE dualwrite_write_latency_seconds histogram",
        r#"dualwrite_write_latency_seconds_bucket{map="customers",direction="left-to-right",le="0.05"} 1"#,
        r#"dualwrite_write_latency_seconds_bucket{map="customers",direction="left-to-right",le="2.5"} 2"#,
        r#"dualwrite_write_latency_seconds_count{map="customers",direction="left-to-right"} 2"#,
        "# TYPE dualwrite_plugin_call_duration_seconds histogram",
        r#"dualwrite_plugin_call_duration_seconds_count{plugin="party-name-split",version="1.0.0"} 1"#,
        r#"dualwrite_plugin_traps_total{plugin="party-name-split",version="1.0.0",kind="timeout"} 1"#,
        r#"dualwrite_http_requests_total{system="finops"} 12"#,
        r#"dualwrite_http_throttled_total{system="finops"} 1"#,
        r#"dualwrite_http_errors_total{system="finops"} 2"#,
        "# TYPE dualwrite_alert_firing gauge",
        r#"dualwrite_alert_firing{rule="application-errors",map="customers"} 1"#,
        r#"dualwrite_notifications_waiting{webhook="ops"} 3"#,
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }
    assert!(
        !text.contains(
            r#"dualwrite_oldest_unsynced_age_seconds{map="customers",direction="right-to-left"}"#
        ),
        "an unknown age is not reported as a number: {text}"
    );
    assert!(
        !text.contains("# EOF"),
        "the Prometheus text format has no EOF marker (OpenMetrics has)"
    );
}

#[test]
fn two_loads_of_one_plugin_version_share_its_metrics() {
    let plugins = PluginMetrics::default();
    plugins.meter("p", Some("1")).call(Duration::from_millis(1));
    plugins.meter("p", Some("1")).call(Duration::from_millis(1));
    plugins.meter("p", None).call(Duration::from_millis(1));
    let text = Metrics::new(plugins).render(Snapshot::default());
    assert!(
        text.contains(r#"dualwrite_plugin_call_duration_seconds_count{plugin="p",version="1"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"dualwrite_plugin_call_duration_seconds_count{plugin="p",version=""} 1"#),
        "{text}"
    );
}

#[test]
fn direction_labels_are_the_directions_stored_names() {
    for direction in [Direction::LeftToRight, Direction::RightToLeft] {
        assert_eq!(
            serde_json::to_value(direction).ok(),
            Some(serde_json::Value::from(direction.name()))
        );
    }
}
