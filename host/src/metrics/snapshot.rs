//! [`Snapshot`]: what the engine counts anyway, read once per scrape and
//! encoded as constant metrics (a `prometheus-client` collector): each
//! map direction's outcome counters, backlog and oldest waiting change,
//! and each system's requests, 429s and errors. Reading them at scrape
//! time keeps one count of each thing (the engine's), exact, and costs the
//! hot path nothing.

use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

use super::FlowLabels;
use crate::checkpoint::Direction;

/// The counts of one map's direction at a scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowSample {
    /// The map.
    pub map: String,
    /// The direction.
    pub direction: Direction,
    /// Changes captured from the source into the queue.
    pub captured: u64,
    /// Rows upserted on the target.
    pub written: u64,
    /// Rows deleted on the target.
    pub deleted: u64,
    /// Changes dropped by a filter or a plugin, or skipped.
    pub skipped: u64,
    /// Changes parked (their key held for an admin).
    pub parked: u64,
    /// Changes recognised as the host's own writes coming back.
    pub echoes: u64,
    /// Changes that lost a conflict.
    pub conflicts: u64,
    /// Changes queued now (parked ones included).
    pub backlog: u64,
    /// How long ago the oldest change still waiting to be written (not of
    /// a parked key) was queued; `Some(ZERO)` when none waits, `None` when
    /// it is not known (an entry queued by a build that did not record
    /// the time).
    pub oldest: Option<Duration>,
}

/// The counts of one system's connector at a scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemSample {
    /// The system's name in the config.
    pub system: String,
    /// HTTP requests sent (every attempt; token requests excluded).
    pub requests: u64,
    /// 429 answers.
    pub throttled: u64,
    /// Attempts that failed: no answer (connection, timeout, TLS) or a 5xx.
    pub errors: u64,
}

/// Everything read at one scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Every map direction of the engine.
    pub flows: Vec<FlowSample>,
    /// Every system of the engine.
    pub systems: Vec<SystemSample>,
    /// Every alert rule and map it fires for now: `(rule, map)`.
    pub firing: Vec<(String, String)>,
    /// Notifications waiting in the outbox, per webhook.
    pub notifications: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FiringLabels {
    rule: String,
    map: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    webhook: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SystemLabels {
    system: String,
}

/// A flow counter: its name (without `_total`), help (ending with a
/// period, as the registry's own metrics get one) and value.
type FlowCounter = (&'static str, &'static str, fn(&FlowSample) -> u64);

const FLOW_COUNTERS: [FlowCounter; 7] = [
    (
        "captured",
        "Changes captured from the source into the map's queue.",
        |f| f.captured,
    ),
    ("written", "Rows upserted on the target.", |f| f.written),
    ("deleted", "Rows deleted on the target.", |f| f.deleted),
    (
        "skipped",
        "Changes dropped by a filter or a plugin, or skipped (no mapped field changed, a copied row superseded).",
        |f| f.skipped,
    ),
    (
        "parked",
        "Changes parked: their key is held until an admin resubmits or discards it.",
        |f| f.parked,
    ),
    (
        "echoes",
        "Changes recognised as the host's own writes coming back, dropped.",
        |f| f.echoes,
    ),
    (
        "conflicts",
        "Changes that lost a conflict to the other side's change of the same key.",
        |f| f.conflicts,
    ),
];

impl Snapshot {
    fn flows(&self) -> impl Iterator<Item = (FlowLabels, &FlowSample)> {
        self.flows
            .iter()
            .map(|flow| (FlowLabels::new(&flow.map, flow.direction), flow))
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, value) in FLOW_COUNTERS {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (labels, flow) in self.flows() {
                ConstCounter::new(value(flow)).encode(metric.encode_family(&labels)?)?;
            }
        }
        let mut backlog = encoder.encode_descriptor(
            "backlog",
            "Changes queued, waiting to be written (parked ones included).",
            None,
            MetricType::Gauge,
        )?;
        for (labels, flow) in self.flows() {
            ConstGauge::new(flow.backlog).encode(backlog.encode_family(&labels)?)?;
        }
        let seconds = Unit::Seconds;
        let mut oldest = encoder.encode_descriptor(
            "oldest_unsynced_age",
            "Age of the oldest change queued and not yet written (a parked key's excepted), since the host captured it; 0 when none waits.",
            Some(&seconds),
            MetricType::Gauge,
        )?;
        for (labels, flow) in self.flows() {
            if let Some(age) = flow.oldest {
                ConstGauge::new(age.as_secs_f64()).encode(oldest.encode_family(&labels)?)?;
            }
        }
        type SystemCounter = (&'static str, &'static str, fn(&SystemSample) -> u64);
        let system_counters: [SystemCounter; 3] = [
            (
                "http_requests",
                "HTTP requests sent to the system (every attempt, retries included; token requests excluded).",
                |s| s.requests,
            ),
            (
                "http_throttled",
                "429 Too Many Requests answers from the system (service protection limits).",
                |s| s.throttled,
            ),
            (
                "http_errors",
                "Requests to the system that failed: no answer (connection refused or lost, timeout, TLS) or a 5xx answer.",
                |s| s.errors,
            ),
        ];
        for (name, help, value) in system_counters {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for system in &self.systems {
                let labels = SystemLabels {
                    system: system.system.clone(),
                };
                ConstCounter::new(value(system)).encode(metric.encode_family(&labels)?)?;
            }
        }
        let mut firing = encoder.encode_descriptor(
            "alert_firing",
            "1 while an alert rule fires for a map (its condition holds).",
            None,
            MetricType::Gauge,
        )?;
        for (rule, map) in &self.firing {
            let labels = FiringLabels {
                rule: rule.clone(),
                map: map.clone(),
            };
            ConstGauge::new(1).encode(firing.encode_family(&labels)?)?;
        }
        let mut waiting = encoder.encode_descriptor(
            "notifications_waiting",
            "Alert notifications not delivered yet to the webhook (its receiver down, or on their way).",
            None,
            MetricType::Gauge,
        )?;
        for (webhook, count) in &self.notifications {
            let labels = WebhookLabels {
                webhook: webhook.clone(),
            };
            ConstGauge::new(*count as i64).encode(waiting.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
