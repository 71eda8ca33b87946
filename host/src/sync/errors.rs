//! The error queue as `dualwrite errors` and `/api/v1/errors` show it:
//! every parked row of every map, live, catch-up and initial-sync alike,
//! each with an id (its failed change's place in the queue, unique in the
//! store), its phase, the service's message and how often it was tried.
//!
//! A retry lets the row's failed change and the changes behind it flow
//! again, in order, through the map and its plugins as they are now, so a
//! fixed map or plugin heals it; the row is written once, and a later
//! change of its key never overtakes it. A dismiss ends the failed change
//! without a write (`dismissed` in the activity log) and lets the changes
//! behind it flow. The same operations work on a stopped host's store
//! ([`error_rows`], [`retry_error`], …); the running host also wakes the
//! map ([`RunningEngine::retry_error`], …).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::checkpoint::{CheckpointError, Checkpoints, ParkedRow};

use super::RunningEngine;

/// One row of the error queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorRow {
    /// Its id: what `errors show|retry|dismiss` take.
    pub id: u64,
    /// The map.
    pub map: String,
    /// `left-to-right` or `right-to-left`.
    #[schema(value_type = String)]
    pub direction: crate::checkpoint::Direction,
    /// The row's key.
    pub key: String,
    /// `live`, `catch-up` or `initial-sync`.
    pub phase: String,
    /// Why it failed: the service's message, or the host's.
    pub reason: String,
    /// How often it was tried (0: parked untried, by `resume --queued
    /// park`).
    pub attempts: u32,
    /// When it was parked (RFC 3339).
    pub parked_at: Option<String>,
    /// The failed change as it waits (`errors show`): `upsert` or
    /// `delete`, and the row read at its source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub change: Option<serde_json::Value>,
}

/// Why an operation on the error queue could not be done.
#[derive(Debug, thiserror::Error)]
pub enum ErrorQueueError {
    /// No map of that name.
    #[error("no map `{map}`: `dualwrite map status` lists the maps")]
    UnknownMap {
        /// The name asked for.
        map: String,
    },
    /// No parked row with that id.
    #[error(
        "no parked row {id}: it was retried, dismissed or written already; `dualwrite errors list` shows the error queue"
    )]
    NoSuchRow {
        /// The id asked for.
        id: u64,
    },
    /// The checkpoint store failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

fn row_of(parked: ParkedRow) -> ErrorRow {
    ErrorRow {
        id: parked.parked.seq,
        phase: parked.parked.phase_name().to_owned(),
        reason: parked.parked.reason,
        attempts: parked.parked.attempts,
        parked_at: parked.parked.at,
        map: parked.map,
        direction: parked.direction,
        key: parked.key,
        change: None,
    }
}

/// The maps of `all` that `map` names (all of them when `None`).
fn chosen<'a>(all: &'a [String], map: Option<&str>) -> Result<Vec<&'a str>, ErrorQueueError> {
    match map {
        None => Ok(all.iter().map(String::as_str).collect()),
        Some(map) => all
            .iter()
            .find(|known| *known == map)
            .map(|known| vec![known.as_str()])
            .ok_or_else(|| ErrorQueueError::UnknownMap {
                map: map.to_owned(),
            }),
    }
}

/// The error queue of the maps `maps` (or of `map` only), oldest first.
pub fn error_rows(
    store: &Checkpoints,
    maps: &[String],
    map: Option<&str>,
) -> Result<Vec<ErrorRow>, ErrorQueueError> {
    Ok(store
        .error_queue(&chosen(maps, map)?)?
        .into_iter()
        .map(row_of)
        .collect())
}

/// The parked row `id`, with its failed change.
pub fn error_row(
    store: &Checkpoints,
    maps: &[String],
    id: u64,
) -> Result<ErrorRow, ErrorQueueError> {
    let parked = find(store, maps, id)?;
    let change = store.parked_change(&parked.map, parked.direction, id)?;
    let mut row = row_of(parked);
    row.change = change.map(|queued| {
        serde_json::json!({
            "operation": queued.change.operation,
            "version": queued.change.version,
            "row": queued.change.row,
        })
    });
    Ok(row)
}

fn find(store: &Checkpoints, maps: &[String], id: u64) -> Result<ParkedRow, ErrorQueueError> {
    store
        .error_queue(&chosen(maps, None)?)?
        .into_iter()
        .find(|row| row.parked.seq == id)
        .ok_or(ErrorQueueError::NoSuchRow { id })
}

/// Retries the parked row `id`: it flows again at the map's next batch.
pub fn retry_error(
    store: &Checkpoints,
    maps: &[String],
    id: u64,
) -> Result<ErrorRow, ErrorQueueError> {
    let parked = find(store, maps, id)?;
    store.retry(&parked.map, parked.direction, &parked.key)?;
    Ok(row_of(parked))
}

/// Retries every parked row of `maps` (or of `map`).
pub fn retry_all(
    store: &Checkpoints,
    maps: &[String],
    map: Option<&str>,
) -> Result<Vec<ErrorRow>, ErrorQueueError> {
    let parked = store.error_queue(&chosen(maps, map)?)?;
    let mut retried = Vec::with_capacity(parked.len());
    for row in parked {
        store.retry(&row.map, row.direction, &row.key)?;
        retried.push(row_of(row));
    }
    Ok(retried)
}

/// Dismisses the parked row `id`.
pub fn dismiss_error(
    store: &Checkpoints,
    maps: &[String],
    id: u64,
) -> Result<ErrorRow, ErrorQueueError> {
    let parked = find(store, maps, id)?;
    store.dismiss(&parked.map, parked.direction, &parked.key)?;
    Ok(row_of(parked))
}

/// Every map a store knows: `config`'s, then those only its records name.
pub fn known_maps(store: &Checkpoints, config: &[String]) -> Result<Vec<String>, CheckpointError> {
    let mut maps = config.to_vec();
    for (name, _) in store.map_records()? {
        if !maps.contains(&name) {
            maps.push(name);
        }
    }
    Ok(maps)
}

impl RunningEngine {
    fn map_names(&self) -> Result<Vec<String>, CheckpointError> {
        let config: Vec<String> = self
            .shared
            .plan()
            .maps
            .iter()
            .map(|m| m.name.clone())
            .collect();
        known_maps(&self.shared.store, &config)
    }

    fn wake(&self, map: &str) {
        if let Some(runtime) = self.shared.map(map) {
            runtime.wake.notify_one();
        }
    }

    /// The error queue (of `map` only, when given), oldest first.
    pub fn errors(&self, map: Option<&str>) -> Result<Vec<ErrorRow>, ErrorQueueError> {
        error_rows(&self.shared.store, &self.map_names()?, map)
    }

    /// The parked row `id`, with its failed change.
    pub fn error(&self, id: u64) -> Result<ErrorRow, ErrorQueueError> {
        error_row(&self.shared.store, &self.map_names()?, id)
    }

    /// Retries the parked row `id`, and wakes its map.
    pub fn retry_error(&self, id: u64) -> Result<ErrorRow, ErrorQueueError> {
        let row = retry_error(&self.shared.store, &self.map_names()?, id)?;
        self.wake(&row.map);
        Ok(row)
    }

    /// Retries every parked row (of `map`), and wakes their maps.
    pub fn retry_all_errors(&self, map: Option<&str>) -> Result<Vec<ErrorRow>, ErrorQueueError> {
        let rows = retry_all(&self.shared.store, &self.map_names()?, map)?;
        for row in &rows {
            self.wake(&row.map);
        }
        Ok(rows)
    }

    /// Dismisses the parked row `id`, and wakes its map.
    pub fn dismiss_error(&self, id: u64) -> Result<ErrorRow, ErrorQueueError> {
        let row = dismiss_error(&self.shared.store, &self.map_names()?, id)?;
        self.wake(&row.map);
        Ok(row)
    }
}
