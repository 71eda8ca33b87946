//! The host's Prometheus metrics, served as `GET /metrics` on the admin
//! listener in the Prometheus text exposition format (version 0.0.4),
//! encoded with `prometheus-client`.
//!
//! - [`Metrics`]: the engine's live metric families: the write latency
//!   of each map and direction, and the plugins' [`PluginMetrics`].
//!   [`Metrics::render`] encodes them with a [`Snapshot`] of the counts
//!   the engine keeps anyway (each map's outcome counters, queue sizes,
//!   each system's requests), read at scrape time.
//! - [`PluginMetrics`] (`plugins.rs`): per plugin version, a histogram of
//!   call latency and a counter of traps; each loaded plugin holds its
//!   [`PluginMeter`], its label set resolved once.
//! - [`Snapshot`] (`snapshot.rs`): the counts read at scrape time, encoded
//!   as constant counters and gauges.
//!
//! Every name starts with `dualwrite_`:
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `captured_total`, `written_total`, `deleted_total`, `skipped_total`, `parked_total`, `echoes_total`, `conflicts_total` | counter | `map`, `direction` |
//! | `backlog` | gauge | `map`, `direction` |
//! | `oldest_unsynced_age_seconds` | gauge | `map`, `direction` |
//! | `write_latency_seconds` | histogram | `map`, `direction` |
//! | `plugin_call_duration_seconds` | histogram | `plugin`, `version` |
//! | `plugin_traps_total` | counter | `plugin`, `version`, `kind` |
//! | `http_requests_total`, `http_throttled_total`, `http_errors_total` | counter | `system` |
//! | `alert_firing` | gauge | `rule`, `map` |
//! | `notifications_waiting` | gauge | `webhook` |
//!
//! `direction` is `left-to-right` or `right-to-left`, as the activity log
//! names it. The write latency runs from when the host queued a change
//! (`QueuedChange::captured`) to when the target confirmed its write or
//! delete and the batch was recorded: both ends on the host's clock, so no
//! skew between a service and the host counts, and an initial copy's rows
//! (changed long ago) do not read as late. The oldest age is measured
//! from the same capture time.
//!
//! The hot path only observes histograms (one lock inside
//! `prometheus-client` per observation, on a histogram cached per map
//! and direction or per plugin); everything else is read when scraped.
//!
//! Boundary: data only. It knows neither the engine nor HTTP: the sync
//! engine hands it a [`Snapshot`], the admin API serves the text.

mod plugins;
mod snapshot;

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::checkpoint::Direction;

pub use plugins::{PluginMeter, PluginMetrics};
pub use snapshot::{FlowSample, Snapshot, SystemSample};

/// The `Content-Type` of what [`Metrics::render`] writes.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The prefix of every metric's name.
pub const PREFIX: &str = "dualwrite";

/// Bucket bounds of the write latency, in seconds: from a change queued
/// and written at once (tens of milliseconds) to one that waited an hour
/// (a paused map, a target down).
const WRITE_LATENCY_BUCKETS: [f64; 17] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    1800.0, 3600.0,
];

/// The label set of a map's direction.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FlowLabels {
    /// The map's name.
    pub map: String,
    /// `left-to-right` or `right-to-left`.
    pub direction: &'static str,
}

impl FlowLabels {
    pub fn new(map: &str, direction: Direction) -> FlowLabels {
        FlowLabels {
            map: map.to_owned(),
            direction: direction.name(),
        }
    }
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The engine's live metric families. Cheap to clone: clones share them.
#[derive(Debug, Clone)]
pub struct Metrics {
    write_latency: HistogramFamily<FlowLabels>,
    plugins: PluginMetrics,
}

impl Metrics {
    /// The families of an engine whose plugins report to `plugins` (the
    /// plugin runtime's, [`crate::plugin::Runtime::metrics`]).
    pub fn new(plugins: PluginMetrics) -> Metrics {
        Metrics {
            write_latency: Family::new_with_constructor(|| Histogram::new(WRITE_LATENCY_BUCKETS)),
            plugins,
        }
    }

    /// The write latency histogram of `map`'s `direction`, to be kept and
    /// observed with [`observe_latency`].
    pub fn write_latency(&self, map: &str, direction: Direction) -> Histogram {
        self.write_latency
            .get_or_create_owned(&FlowLabels::new(map, direction))
    }

    /// The metrics in the Prometheus text format: the live families and
    /// `snapshot`.
    pub fn render(&self, snapshot: Snapshot) -> String {
        let mut registry = Registry::with_prefix(PREFIX);
        registry.register_collector(Box::new(snapshot));
        registry.register_with_unit(
            "write_latency",
            "Time from when the host queued a change (captured it) to when its write or delete was confirmed by the target and recorded",
            Unit::Seconds,
            self.write_latency.clone(),
        );
        self.plugins.register(&mut registry);
        let mut text = String::new();
        // Writing into a String does not fail; an encoder error would be a
        // bug of the encoder, and is reported in the text.
        if let Err(error) =
            prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
        {
            text.push_str(&format!("# the metrics could not be encoded: {error}\n"));
        }
        text
    }
}

/// Observes `elapsed` in `histogram`, in seconds.
pub fn observe_latency(histogram: &Histogram, elapsed: Duration) {
    histogram.observe(elapsed.as_secs_f64());
}

#[cfg(test)]
mod tests;
