//! Live maps: the synchronous step of a Dataverse save (`Mode` 0, stage
//! PostOperation), which Dataverse calls inside the save's transaction and
//! whose failure rolls the save back and shows the caller the answer's
//! message (<https://learn.microsoft.com/power-apps/developer/data-platform/use-webhooks>).
//!
//! For each live map reading the table, the change is taken from the
//! step's PostImage (the row as the save will commit it: no read can see
//! it yet), queued as any change, and the call waits until the map's
//! worker recorded its outcome: the same pipeline, ordering, echo records
//! and activity log as an asynchronous change. Then:
//! - written (or nothing to write: an echo, filtered, skipped): 200, after
//!   finops confirmed;
//! - parked (finops or the pipeline refused it): the parked change is
//!   dropped (the save is rolled back, so nothing of it may stay) and the
//!   answer is 400 `dualwrite: finops refused <map> <key>: <message>`;
//! - no outcome within [`LIVE_DEADLINE`]: 500 (not 502, 503 or 504, which
//!   Dataverse would send again), well under the 60 s Dataverse gives a
//!   webhook. The change is still queued, and the save rolled back: once
//!   it reaches finops it is put back as Dataverse holds the row; once it
//!   is parked, it is dropped.
//!
//! A map that is not running refuses the save (409), unless its
//! `live_fallback` is `queue`: then the change is queued, the save goes on,
//! and catch-up writes it.
//!
//! A `$batch` change set is one Dataverse transaction: its rows arrive one
//! call each, with one `CorrelationId`. The rows written for a correlation
//! are remembered ([`Transactions`]); when one of its rows is refused, the
//! rows already written are put back as Dataverse has them once the
//! transaction rolled back (a row it created is deleted from finops), so
//! the change set's rows end written together or not at all.
//!
//! Deletes carry no image: the key is the one the host recorded for the
//! row's id, and a row the host never synced has nothing to delete.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::checkpoint::{Action, Change};
use crate::connector::POST_IMAGE;
use crate::map::{LiveFallback, SyncMode, SystemKind};

use super::super::runtime::{MapRuntime, MapState};
use super::super::shape::{self, Side};
use super::super::system::primary_id;
use super::super::{Shared, SyncEvent};
use super::context::{EntityImage, ExecutionContext, Message};
use super::dataverse::{deleted, enqueue, logical_name, maps_of, skipped, unavailable, upsert};

type Refusal = (StatusCode, String);

/// How long a live save waits for its write to finops.
pub const LIVE_DEADLINE: Duration = Duration::from_secs(20);

/// How long a change refused for its deadline is followed to its outcome.
const LATE_OUTCOME: Duration = Duration::from_secs(600);

/// How long the rows written for a correlation are remembered: past the
/// 60 s Dataverse gives one call, its transaction has ended.
const REMEMBERED: Duration = Duration::from_secs(120);

/// A row written to finops inside a Dataverse transaction not known to
/// have committed yet.
#[derive(Debug, Clone)]
struct Written {
    map: String,
    side: Side,
    key: String,
    id: uuid::Uuid,
    version: String,
}

/// The rows written per correlation (one Dataverse transaction), and when
/// the ones older than [`REMEMBERED`] were last dropped.
#[derive(Debug, Default)]
pub(crate) struct Transactions {
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    rows: HashMap<String, (Instant, Vec<Written>)>,
    pruned: Option<Instant>,
}

impl Transactions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self, correlation: &str, written: Written) {
        let mut open = self.lock();
        // At most once a second, so a busy host does not scan every save.
        if open
            .pruned
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(1))
        {
            open.rows
                .retain(|_, (since, _)| since.elapsed() < REMEMBERED);
            open.pruned = Some(Instant::now());
        }
        open.rows
            .entry(correlation.to_owned())
            .or_insert_with(|| (Instant::now(), Vec::new()))
            .1
            .push(written);
    }

    fn take(&self, correlation: &str) -> Vec<Written> {
        self.lock()
            .rows
            .remove(correlation)
            .map(|(_, rows)| rows)
            .unwrap_or_default()
    }
}

/// Runs a synchronous context through every live map reading its table.
pub(super) async fn accept(
    shared: &std::sync::Arc<Shared>,
    system: &str,
    context: &ExecutionContext,
    message: Message,
    id: uuid::Uuid,
) -> Result<(), Refusal> {
    for runtime in maps_of(shared, system, &context.primary_entity_name) {
        for side in Side::BOTH {
            let plan = &runtime.plan;
            let SyncMode::Live { fallback } = plan.mode else {
                continue;
            };
            if plan.side(side).system == system
                && plan.side(side).kind == SystemKind::Dataverse
                && plan.side(side.other()).kind == SystemKind::Finops
                && runtime.side(side).flows
                && logical_name(&runtime, side) == context.primary_entity_name
            {
                let result = one(shared, &runtime, side, fallback, context, message, id).await;
                if let Err(refusal) = result {
                    if let Some(correlation) = &context.correlation_id {
                        roll_back(shared, correlation);
                    }
                    return Err(refusal);
                }
            }
        }
    }
    Ok(())
}

/// One live map's part of a save.
async fn one(
    shared: &std::sync::Arc<Shared>,
    runtime: &MapRuntime,
    side: Side,
    fallback: LiveFallback,
    context: &ExecutionContext,
    message: Message,
    id: uuid::Uuid,
) -> Result<(), Refusal> {
    let name = runtime.name();
    let direction = side.direction();
    let Some(change) = change_of(shared, runtime, side, context, message, id).await? else {
        return Ok(());
    };
    let state = runtime.state();
    if state != MapState::Running {
        if fallback == LiveFallback::Queue && state != MapState::Stopped {
            enqueue(shared, runtime, side, change, id)?;
            return Ok(());
        }
        return Err((
            StatusCode::CONFLICT,
            format!(
                "dualwrite: {name} is {}, so this save is refused: start or resume the map (dualwrite map resume {name}), or set live_fallback = \"queue\" to queue saves while it does not run",
                state.lifecycle().as_str()
            ),
        ));
    }
    let parked = shared
        .store
        .parked_key(name, direction, &change.key)
        .map_err(unavailable)?;
    if let Some(parked) = parked {
        let key = &change.key;
        return Err((
            StatusCode::CONFLICT,
            format!(
                "dualwrite: {name} {key} has an earlier change parked ({}), so this save is refused: retry or dismiss it first (dualwrite errors list --map {name})",
                parked.reason
            ),
        ));
    }
    let key = change.key.clone();
    let version = change.version.clone();
    let mut events = shared.events.subscribe();
    if !enqueue(shared, runtime, side, change, id)? {
        // This version is queued or written already (the same save sent
        // again): its outcome is on its way or recorded.
        return Ok(());
    }
    let outcome =
        tokio::time::timeout(LIVE_DEADLINE, outcome(&mut events, name, direction, &key)).await;
    let written = Written {
        map: name.to_owned(),
        side,
        key: key.clone(),
        id,
        version: version.clone(),
    };
    match outcome {
        Ok(Ok(())) => {
            if let Some(correlation) = &context.correlation_id {
                shared.live.add(correlation, written);
            }
            Ok(())
        }
        Ok(Err(message)) => {
            shared
                .store
                .refuse_live(name, direction, &key, &version)
                .map_err(unavailable)?;
            Err((
                StatusCode::BAD_REQUEST,
                format!("dualwrite: finops refused {name} {key}: {message}"),
            ))
        }
        Err(_) => {
            tracing::warn!(map = name, key = %key, "A live save was not confirmed by finops in time; the save is refused, and what finops gets of it later is put back.");
            late(shared.clone(), events, written);
            Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "dualwrite: finops did not confirm {name} {key} within {} s, so this save is refused; try again once finops answers",
                    LIVE_DEADLINE.as_secs()
                ),
            ))
        }
    }
}

/// A change whose save was refused for its deadline may still reach
/// finops: once it does, it is put back as Dataverse holds the row (which
/// the refusal rolled back); once it is parked, it is dropped.
fn late(shared: std::sync::Arc<Shared>, mut events: broadcast::Receiver<SyncEvent>, row: Written) {
    tokio::spawn(async move {
        let direction = row.side.direction();
        let waited = tokio::time::timeout(
            LATE_OUTCOME,
            outcome(&mut events, &row.map, direction, &row.key),
        )
        .await;
        let result = match waited {
            Ok(Ok(())) => put_back(&shared, &row).await,
            Ok(Err(_)) => shared
                .store
                .refuse_live(&row.map, direction, &row.key, &row.version)
                .map_err(unavailable),
            Err(_) => Ok(()),
        };
        if let Err((_, error)) = result {
            tracing::error!(map = %row.map, key = %row.key, %error, "A late live change could not be put back; compare the two sides.");
        }
    });
}

/// The change the context makes, or `None` when the map has nothing to
/// do (a delete of a row it never synced, a row it does not sync).
async fn change_of(
    shared: &Shared,
    runtime: &MapRuntime,
    side: Side,
    context: &ExecutionContext,
    message: Message,
    id: uuid::Uuid,
) -> Result<Option<Change>, Refusal> {
    let plan = &runtime.plan;
    let read_at = shared.store.stamp().map_err(unavailable)?;
    if message == Message::Delete {
        let key = shared
            .store
            .key_of_id(&plan.name, side.name(), &id.to_string())
            .map_err(unavailable)?;
        return Ok(key.map(|key| deleted(key, format!("deleted:{id}"), read_at)));
    }
    let image = context.post_image(POST_IMAGE).ok_or_else(|| {
        (
            StatusCode::BAD_REQUEST,
            format!(
                "the synchronous {} context of {} has no PostImage `{POST_IMAGE}`, so the row it saves is unknown: register the map's steps again (restart the host)",
                context.message_name, context.primary_entity_name
            ),
        )
    })?;
    let raw = raw_row(runtime, side, image, id);
    match upsert(shared, plan, side, raw, read_at).await? {
        Ok(change) => Ok(Some(change)),
        Err(detail) => {
            skipped(shared, runtime, side, detail)?;
            Ok(None)
        }
    }
}

/// The image as the Web API row capture reads: each column the side
/// selects, a lookup as `_<name>_value`, an attribute the image leaves out
/// (the service omits null ones) as null.
fn raw_row(runtime: &MapRuntime, side: Side, image: EntityImage, id: uuid::Uuid) -> shape::Row {
    let mut attributes = image.attributes;
    let mut row = shape::Row::new();
    for column in &runtime.side(side).select {
        let name = column
            .strip_prefix('_')
            .and_then(|c| c.strip_suffix("_value"))
            .unwrap_or(column);
        let value = attributes.remove(name).unwrap_or(Value::Null);
        row.insert(column.clone(), value);
    }
    row.insert(
        primary_id(&runtime.plan.side(side).table),
        Value::String(id.to_string()),
    );
    row
}

/// Waits for the outcome of `key`'s change: `Ok` once it is written (or
/// needs no write), `Err` with the reason once it is parked.
async fn outcome(
    events: &mut broadcast::Receiver<SyncEvent>,
    map: &str,
    direction: crate::checkpoint::Direction,
    key: &str,
) -> Result<(), String> {
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => {
                return Err("the host is shutting down".into());
            }
        };
        if event.map != map || event.direction != direction || event.key != key {
            continue;
        }
        match event.what {
            Action::Written
            | Action::Deleted
            | Action::Echo
            | Action::Filtered
            | Action::Skipped
            | Action::ConflictLost => return Ok(()),
            Action::Parked => return Err(event.detail),
            _ => continue,
        }
    }
}

/// A row of a correlation was refused, so Dataverse rolls the transaction
/// back: the rows already written for it are put back in finops as
/// Dataverse holds them once the rollback is done.
fn roll_back(shared: &std::sync::Arc<Shared>, correlation: &str) {
    let written = shared.live.take(correlation);
    if written.is_empty() {
        return;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        // The refusal is answered first; the rollback follows it.
        tokio::time::sleep(Duration::from_millis(200)).await;
        for row in written.into_iter().rev() {
            if let Err((_, error)) = put_back(&shared, &row).await {
                tracing::error!(map = %row.map, key = %row.key, %error, "A row of a rolled-back Dataverse transaction could not be put back in finops; compare the two sides.");
            }
        }
    });
}

/// Queues what Dataverse now holds for `row` (a delete when the row is
/// gone), over the version the rolled-back save had.
async fn put_back(shared: &Shared, row: &Written) -> Result<(), Refusal> {
    let Some(runtime) = shared.map(&row.map) else {
        return Ok(());
    };
    let side = row.side;
    let direction = side.direction();
    shared
        .store
        .forget_version(&row.map, direction, &row.key, &row.version)
        .map_err(unavailable)?;
    let plan = &runtime.plan;
    let super::super::system::Connector::Dataverse(connector) =
        &shared.system(plan, side).connector
    else {
        return Ok(());
    };
    let read_at = shared.store.stamp().map_err(unavailable)?;
    let now = connector
        .get_selected(&plan.side(side).table, row.id, &runtime.side(side).select)
        .await
        .map_err(unavailable)?;
    let change = match now {
        Some(raw) => match upsert(shared, plan, side, raw, read_at).await? {
            Ok(change) if change.version == row.version => return Ok(()),
            Ok(change) => change,
            Err(detail) => return skipped(shared, &runtime, side, detail),
        },
        None => deleted(
            row.key.clone(),
            format!("rolled-back:{}:{}", row.id, row.version),
            read_at,
        ),
    };
    enqueue(shared, &runtime, side, change, row.id).map(drop)
}
