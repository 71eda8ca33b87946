//! The activity log of a running host: read through
//! [`RunningEngine::log`], and pruned in the background by
//! [`spawn_pruner`] as `[engine.log]` says (every tenth of `max_age`,
//! between 100 ms and a minute).

use std::time::Duration;

use tokio::task::JoinHandle;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::checkpoint::{CheckpointError, Checkpoints, LogFilter, LogLine, Retention};

use super::RunningEngine;

/// `since` as `dualwrite logs --since` and the API take it: a time in RFC
/// 3339 (`2026-12-01T08:00:00Z`), or a duration ago as `humantime` reads
/// it (`15m`, `2h`, `1d`).
pub fn parse_since(since: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(since) {
        return Ok(at.with_timezone(&chrono::Utc));
    }
    let ago = humantime::parse_duration(since).map_err(|_| {
        format!(
            "since `{since}` is neither a time (RFC 3339, such as 2026-12-01T08:00:00Z) nor a duration ago (such as 15m or 2h)"
        )
    })?;
    let ago = chrono::Duration::from_std(ago).unwrap_or(chrono::Duration::MAX);
    Ok(chrono::Utc::now()
        .checked_sub_signed(ago)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC))
}

/// How often the pruner runs for `retention`.
fn every(retention: Retention) -> Duration {
    (retention.max_age / 10).clamp(Duration::from_millis(100), Duration::from_secs(60))
}

/// Prunes `store`'s activity log to `retention`, now and then every
/// [`every`], until aborted.
pub(super) fn spawn_pruner(store: Checkpoints, retention: Retention) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let pruning = store.clone();
            match tokio::task::spawn_blocking(move || pruning.prune_activity(retention)).await {
                Ok(Ok(pruned)) if pruned.by_age + pruned.by_size > 0 => {
                    tracing::debug!(
                        by_age = pruned.by_age,
                        by_size = pruned.by_size,
                        "The activity log was pruned."
                    );
                }
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    tracing::warn!(%error, "The activity log could not be pruned; it is tried again.");
                }
                Err(error) => {
                    tracing::warn!(%error, "The activity log's pruner stopped abnormally; it is started again.");
                }
            }
            tokio::time::sleep(every(retention)).await;
        }
    })
}

impl RunningEngine {
    /// The activity log's lines `filter` names, oldest first, at most
    /// `limit` (the newest `limit` when `newest`).
    pub fn log(
        &self,
        filter: &LogFilter,
        limit: usize,
        newest: bool,
    ) -> Result<Vec<LogLine>, CheckpointError> {
        self.shared.store.log(filter, limit, newest)
    }
}

/// One entry of the activity log, as the API and `dualwrite logs --json`
/// give it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LogEntry {
    /// Its place in the timeline: `--follow` goes on after it.
    pub seq: u64,
    /// When (RFC 3339).
    pub at: Option<String>,
    /// The map.
    pub map: String,
    /// The version of the map's definition that produced it.
    pub map_version: Option<u32>,
    /// The plugins (`name@version`) of that version's chain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<String>,
    /// `left-to-right` or `right-to-left`; none for a line of no flow
    /// (an alert fired or resolved, a notification delivered or not).
    pub direction: Option<String>,
    /// The row's key (empty for a row without one).
    pub key: String,
    /// The outcome: `written`, `deleted`, `echo`, `filtered`, `skipped`,
    /// `conflict-lost`, `parked`, `discarded`, `retried`, `dismissed`.
    pub action: String,
    /// The step that decided it: `capture`, `echo`, `conflict`, `filter`,
    /// `mapping`, `plugin NAME@VERSION`, `lookup`, `write` or `admin`.
    pub step: Option<String>,
    /// For an error: `application`, `system`, `concurrency` or `conflict`.
    pub class: Option<String>,
    /// What happened, for people; for an error, its message.
    pub message: String,
    /// The row as it was, capped.
    #[schema(value_type = Object)]
    pub row: Option<serde_json::Value>,
}

impl From<LogLine> for LogEntry {
    fn from(line: LogLine) -> LogEntry {
        let LogLine { seq, line } = line;
        LogEntry {
            seq,
            at: line.at,
            map: line.map,
            map_version: line.map_version,
            plugins: line.plugins,
            direction: line.direction.map(|direction| direction.name().to_owned()),
            key: line.key,
            action: line.what.as_str().to_owned(),
            step: line.step.map(|step| step.to_string()),
            class: line.class.map(|class| class.as_str().to_owned()),
            message: line.detail,
            row: line.row,
        }
    }
}
