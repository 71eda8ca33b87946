//! The plugins' metrics: per plugin version, a histogram of call latency
//! and a counter of traps by kind. [`PluginMetrics`] holds the families
//! (one per plugin runtime); each loaded plugin keeps a [`PluginMeter`],
//! its label set resolved once at load, so a call observes one histogram
//! and looks nothing up.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::HistogramFamily;

/// Bucket bounds of a plugin call's latency, in seconds: a warm call over
/// a small batch takes tens of microseconds, a call at its deadline
/// seconds.
const CALL_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The label set of a plugin version.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    /// The name in its metadata.
    plugin: String,
    /// The version in its metadata (empty when it has none).
    version: String,
}

/// The label set of a plugin version's traps of one kind.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TrapLabels {
    plugin: String,
    version: String,
    /// [`crate::plugin::TrapKind::name`].
    kind: &'static str,
}

/// The plugin metric families of one plugin runtime. Cheap to clone:
/// clones share them.
#[derive(Debug, Clone)]
pub struct PluginMetrics {
    calls: HistogramFamily<PluginLabels>,
    traps: Family<TrapLabels, Counter>,
}

impl Default for PluginMetrics {
    fn default() -> Self {
        PluginMetrics {
            calls: Family::new_with_constructor(|| Histogram::new(CALL_BUCKETS)),
            traps: Family::default(),
        }
    }
}

impl PluginMetrics {
    /// The meter of plugin `plugin` at `version`. Two loads of one version
    /// (by two maps) share its metrics.
    pub fn meter(&self, plugin: &str, version: Option<&str>) -> PluginMeter {
        let labels = PluginLabels {
            plugin: plugin.to_owned(),
            version: version.unwrap_or_default().to_owned(),
        };
        PluginMeter {
            calls: self.calls.get_or_create_owned(&labels),
            traps: self.traps.clone(),
            labels,
        }
    }

    /// Registers the families with `registry`.
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "plugin_call_duration",
            "Wall-clock time of a plugin call over a batch (a fresh instance's instantiation included), trapped calls included",
            Unit::Seconds,
            self.calls.clone(),
        );
        registry.register(
            "plugin_traps",
            "Plugin calls that trapped: ran past the deadline, out of memory or fuel, overflowed the stack, panicked",
            self.traps.clone(),
        );
    }
}

/// What one loaded plugin version reports to.
#[derive(Debug, Clone)]
pub struct PluginMeter {
    labels: PluginLabels,
    calls: Histogram,
    traps: Family<TrapLabels, Counter>,
}

impl PluginMeter {
    /// A call that ran for `elapsed`.
    pub fn call(&self, elapsed: Duration) {
        self.calls.observe(elapsed.as_secs_f64());
    }

    /// A trap of kind `kind` (rare: the family is looked up each time).
    pub fn trap(&self, kind: &'static str) {
        self.traps
            .get_or_create(&TrapLabels {
                plugin: self.labels.plugin.clone(),
                version: self.labels.version.clone(),
                kind,
            })
            .inc();
    }
}
