//! Capture held by its queue's limits (`[engine.queue]`): a side whose
//! flow's queue holds `max_changes` changes, or whose oldest change waiting
//! is older than `max_age`, is not read at all until the queue drains
//! below them. What a read queues is capped by the store
//! ([`Checkpoints::capture`](crate::checkpoint::Checkpoints::capture)): a
//! Dataverse page queued in part keeps its delta link, so it is read again
//! from the old one (Dataverse returns every change since a delta link
//! each time it is followed:
//! <https://learn.microsoft.com/power-apps/developer/data-platform/use-change-tracking-synchronize-data-external-systems>);
//! a finops row left out keeps no new hash, so the next reconciliation pass
//! finds it changed again. Nothing is dropped: the source keeps what was
//! not queued.
//!
//! While held, the side counts as read for the worker's start (what it
//! could take is queued, and the worker must drain it for capture to go
//! on), its polls are not spent, and [`describe`] says why, as
//! `RunningEngine::queue_held` reports it.

use std::time::Duration;

use chrono::SecondsFormat;

use crate::checkpoint::{CheckpointError, QueueHold, QueueLimits};
use crate::config::QueueConfig;

use super::super::Shared;
use super::super::runtime::MapRuntime;
use super::super::shape::Side;

/// How often a held side looks at its queue again, at most.
const RECHECK: Duration = Duration::from_secs(1);

/// The store's limits from `[engine.queue]`.
pub(in crate::sync) fn limits(config: &QueueConfig) -> QueueLimits {
    QueueLimits {
        max_changes: usize::try_from(config.max_changes).unwrap_or(usize::MAX),
        max_age: config.max_age,
    }
}

/// Why a flow's capture waits, for people: what is held, which limit, and
/// what to do.
pub(in crate::sync) fn describe(hold: &QueueHold) -> String {
    match hold {
        QueueHold::Full {
            queued,
            max_changes,
        } => format!(
            "capture waits: {queued} changes are queued, the most `engine.queue.max_changes` ({max_changes}) allows, parked ones included; the source keeps its changes, read once the queue drains: resume the map if it is paused, resubmit or discard its parked rows, or raise the limit"
        ),
        QueueHold::Old { oldest, max_age } => {
            let captured = oldest.captured.map_or_else(
                || "at an unknown time".to_owned(),
                |at| format!("at {}", at.to_rfc3339_opts(SecondsFormat::Secs, true)),
            );
            format!(
                "capture waits: the oldest change waiting (key `{}`, queued {captured}) is older than `engine.queue.max_age` ({}); the source keeps its changes, read once the queue drains: resume the map if it is paused (or wait for its target to answer again), or raise the limit",
                oldest.key,
                humantime::format_duration(*max_age)
            )
        }
    }
}

/// Whether one side's capture is held, remembered so that a hold is logged
/// once when it begins and once when it ends.
#[derive(Debug, Default)]
pub(super) struct Holding {
    held: bool,
}

impl Holding {
    /// Whether `map`'s `side` must wait for its queue to drain now; if so,
    /// the side counts as read (see the module doc).
    pub(super) fn check(
        &mut self,
        shared: &Shared,
        map: &MapRuntime,
        side: Side,
    ) -> Result<bool, CheckpointError> {
        let direction = side.direction();
        let hold = shared.store.queue_hold(map.name(), direction)?;
        match (&hold, self.held) {
            (Some(hold), false) => {
                tracing::warn!(map = %map.name(), side = side.name(), %direction, reason = %describe(hold), "The map's queue is at a limit of [engine.queue]; capture waits, and the source keeps its changes.");
            }
            (None, true) => {
                tracing::info!(map = %map.name(), side = side.name(), %direction, "The queue drained below its limits; capture goes on.");
            }
            _ => {}
        }
        self.held = hold.is_some();
        if self.held {
            map.mark_captured(side);
        }
        Ok(self.held)
    }
}

/// How long a held side waits before it looks again: its interval, at most
/// [`RECHECK`], so that it goes on soon after the queue drains.
pub(super) fn recheck(interval: Duration) -> Duration {
    interval.min(RECHECK)
}
