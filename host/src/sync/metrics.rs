//! [`RunningEngine::metrics`]: the engine's Prometheus metrics, what
//! `GET /metrics` serves. The counters, queue sizes and connector counts
//! are read here, at scrape time, from what the engine keeps anyway (each
//! map's `FlowCounters`, the store's tallies and oldest waiting change,
//! each connector's `ConnectorStats`); the write latencies and the
//! plugins' metrics are live families, observed as batches are recorded
//! and plugins called.

use chrono::Utc;

use crate::checkpoint::CheckpointError;
use crate::metrics::{FlowSample, Snapshot, SystemSample};

use super::RunningEngine;
use super::system::Connector;

impl RunningEngine {
    /// The metrics in the Prometheus text exposition format (its
    /// `Content-Type` is [`crate::metrics::CONTENT_TYPE`]). Reads each
    /// map direction's oldest waiting change from the store.
    pub fn metrics(&self) -> Result<String, CheckpointError> {
        Ok(self.shared.metrics.render(self.snapshot()?))
    }

    /// What the engine counts now, per map direction and per system.
    fn snapshot(&self) -> Result<Snapshot, CheckpointError> {
        let store = &self.shared.store;
        let now = Utc::now();
        let mut flows = Vec::new();
        for plan in &self.shared.plan().maps {
            let Some(runtime) = self.shared.map(&plan.name) else {
                continue;
            };
            for direction in runtime.directions() {
                let counts = runtime.counters(direction).snapshot();
                let oldest = match store.oldest_queued(&plan.name, direction)? {
                    None => Some(std::time::Duration::ZERO),
                    // A clock set back since the capture counts as no age.
                    Some(oldest) => oldest.captured.map(|captured| {
                        now.signed_duration_since(captured)
                            .to_std()
                            .unwrap_or_default()
                    }),
                };
                flows.push(FlowSample {
                    map: plan.name.clone(),
                    direction,
                    captured: counts.captured,
                    written: counts.written,
                    deleted: counts.deleted,
                    skipped: counts.skipped,
                    parked: counts.parked,
                    echoes: counts.echoes,
                    conflicts: counts.conflicts,
                    backlog: store.queued(&plan.name, direction) as u64,
                    oldest,
                });
            }
        }
        let mut systems: Vec<SystemSample> = self
            .shared
            .systems
            .iter()
            .map(|(name, system)| {
                let stats = match &system.connector {
                    Connector::Dataverse(connector) => connector.stats(),
                    Connector::Finops(connector) => connector.stats(),
                };
                SystemSample {
                    system: name.clone(),
                    requests: stats.requests,
                    throttled: stats.throttled,
                    errors: stats.errors,
                }
            })
            .collect();
        systems.sort_by(|a, b| a.system.cmp(&b.system));
        let firing = self.shared.alerts.firing_now().into_iter().collect();
        let notifications = self
            .shared
            .plan()
            .alerts
            .webhooks
            .iter()
            .map(|webhook| {
                let waiting = store.notifications_waiting_for(&webhook.name)?;
                Ok((webhook.name.clone(), waiting as u64))
            })
            .collect::<Result<_, CheckpointError>>()?;
        Ok(Snapshot {
            flows,
            systems,
            firing,
            notifications,
        })
    }
}
