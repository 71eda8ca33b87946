//! Dataverse webhooks: the body of `POST /events/{system}` for a Dataverse
//! system, a `RemoteExecutionContext` its registered steps send
//! (`sync/push.rs`). The context is a hint only: it names a table and a
//! row id, and the row is read again from Dataverse with the map's
//! `$select`, then queued as change tracking would queue it (its version
//! the row's `versionnumber`); a row that is gone is a delete of the key
//! the host knows for that id. Nothing of the context's values is written,
//! so a forged context can cause a read, never a write of what it says.

use std::sync::atomic::Ordering;

use axum::http::StatusCode;
use chrono::{SecondsFormat, Utc};
use serde_json::Value;

use crate::checkpoint::{Action, Activity, Change, Operation, Phase};
use crate::map::{MapPlan, SystemKind};

use super::super::runtime::MapRuntime;
use super::super::shape::{self, Side};
use super::super::system::{Connector, primary_id};
use super::super::{Shared, capture, record};
use super::context::{ExecutionContext, Message};

type Refusal = (StatusCode, String);

pub(super) fn unavailable(error: impl std::fmt::Display) -> Refusal {
    (StatusCode::SERVICE_UNAVAILABLE, error.to_string())
}

/// Reads `body` as a webhook context of `system` and queues what the
/// row now is for every map reading that table.
pub(super) async fn accept(
    shared: &std::sync::Arc<Shared>,
    system: &str,
    body: &[u8],
) -> Result<(), Refusal> {
    let context =
        ExecutionContext::parse(body).map_err(|error| (StatusCode::BAD_REQUEST, error))?;
    let Some(message) = context.message() else {
        // Not a data change (a step the host did not register): nothing to
        // read, and a 2xx so the service does not send it again.
        return Ok(());
    };
    let id = context
        .primary_entity_id
        .clone()
        .or_else(|| context.target().and_then(|target| target.id))
        .ok_or_else(|| {
            (
                StatusCode::BAD_REQUEST,
                format!(
                    "the {} context of {} names no row: it has neither PrimaryEntityId nor a Target Id",
                    context.message_name, context.primary_entity_name
                ),
            )
        })?;
    let id = uuid::Uuid::parse_str(&id).map_err(|_| {
        (
            StatusCode::BAD_REQUEST,
            format!("PrimaryEntityId `{id}` is not a GUID"),
        )
    })?;
    if context.synchronous() {
        return super::live::accept(shared, system, &context, message, id).await;
    }
    for runtime in maps_of(shared, system, &context.primary_entity_name) {
        for side in Side::BOTH {
            let plan_side = runtime.plan.side(side);
            if plan_side.system == system
                && plan_side.kind == SystemKind::Dataverse
                && runtime.side(side).flows
                && logical_name(&runtime, side) == context.primary_entity_name
            {
                queue(shared, &runtime, side, id, message).await?;
            }
        }
    }
    Ok(())
}

/// The enabled maps with a side on `system` whose table is `logical`.
pub(super) fn maps_of(
    shared: &Shared,
    system: &str,
    logical: &str,
) -> Vec<std::sync::Arc<MapRuntime>> {
    shared
        .plan()
        .maps
        .iter()
        .filter(|m| m.enabled)
        .filter(|m| {
            Side::BOTH
                .into_iter()
                .any(|side| m.side(side).system == system)
        })
        .filter_map(|m| shared.map(&m.name))
        .filter(|runtime| {
            Side::BOTH
                .into_iter()
                .any(|side| logical_name(runtime, side) == logical)
        })
        .collect()
}

/// The logical name of a side's table: as registered, else by the
/// platform's naming (the primary id column without `id`).
pub(super) fn logical_name(runtime: &MapRuntime, side: Side) -> String {
    match runtime.registration(side) {
        Some(registration) => registration.logical_name,
        None => {
            let id = primary_id(&runtime.plan.side(side).table);
            id.strip_suffix("id").unwrap_or(&id).to_owned()
        }
    }
}

/// Reads the row `id` of `side` again and queues what it is now.
async fn queue(
    shared: &Shared,
    runtime: &MapRuntime,
    side: Side,
    id: uuid::Uuid,
    message: Message,
) -> Result<(), Refusal> {
    let plan = &runtime.plan;
    let table = &plan.side(side).table;
    let system = shared.system(plan, side);
    let Connector::Dataverse(connector) = &system.connector else {
        return Ok(());
    };
    let read_at = shared.store.stamp().map_err(unavailable)?;
    let row = connector
        .get_selected(table, id, &runtime.side(side).select)
        .await
        .map_err(unavailable)?;
    let id_text = id.to_string();
    let change = match row {
        Some(raw) => match upsert(shared, plan, side, raw, read_at).await? {
            Ok(change) => change,
            Err(detail) => return skipped(shared, runtime, side, detail),
        },
        None => {
            let key = shared
                .store
                .key_of_id(&plan.name, side.name(), &id_text)
                .map_err(unavailable)?;
            let Some(key) = key else {
                if message != Message::Delete {
                    // Made and deleted again before the read: the host
                    // never saw it, and there is nothing to do.
                    return Ok(());
                }
                return skipped(
                    shared,
                    runtime,
                    side,
                    format!(
                        "a delete of {table} row {id_text} is not synced: the host never synced that row, so the {} side has nothing to delete",
                        side.other().name()
                    ),
                );
            };
            // As change tracking reports the delete, so it is queued once.
            deleted(key, format!("deleted:{id_text}"), read_at)
        }
    };
    enqueue(shared, runtime, side, change, id).map(drop)
}

/// Queues a pushed `change` of row `id` (an upsert also remembers the
/// row's key by its id), counts it and wakes the map's worker; false when
/// its version was queued already.
pub(super) fn enqueue(
    shared: &Shared,
    runtime: &MapRuntime,
    side: Side,
    change: Change,
    id: uuid::Uuid,
) -> Result<bool, Refusal> {
    let direction = side.direction();
    let id = id.to_string();
    let key = change.key.clone();
    let ids = match change.operation {
        Operation::Delete => Vec::new(),
        _ => vec![(side.name(), id.as_str(), key.as_str())],
    };
    let added = shared
        .store
        .capture_page(&runtime.plan.name, direction, &[change], None, &ids)
        .map_err(unavailable)?;
    if added > 0 {
        runtime
            .counters(direction)
            .captured
            .fetch_add(added as u64, Ordering::Relaxed);
        runtime.wake.notify_one();
    }
    Ok(added > 0)
}

/// The delete of `key` a push reports, as `version`.
pub(super) fn deleted(key: String, version: String, read_at: u64) -> Change {
    Change {
        key,
        version,
        operation: Operation::Delete,
        row: shape::Row::new(),
        modified: Some(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)),
        read_at,
        unreadable: None,
        phase: Phase::Live,
    }
}

/// A row read again as the upsert change tracking would queue (its
/// `versionnumber` the version), or why it is not synced.
pub(super) async fn upsert(
    shared: &Shared,
    plan: &MapPlan,
    side: Side,
    raw: shape::Row,
    read_at: u64,
) -> Result<Result<Change, String>, Refusal> {
    let version = match raw.get("versionnumber") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    let modified = raw
        .get("modifiedon")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true));
    let upsert = capture::upsert_of(shared, plan, side, raw, version, modified, read_at)
        .await
        .map_err(unavailable)?;
    Ok(upsert.map(|(change, _)| change))
}

/// Logs a pushed change that is not synced, and acknowledges it.
pub(super) fn skipped(
    shared: &Shared,
    runtime: &MapRuntime,
    side: Side,
    detail: String,
) -> Result<(), Refusal> {
    let line = Activity::new(
        &runtime.plan.name,
        side.direction(),
        "",
        Action::Skipped,
        detail,
    )
    .step(crate::checkpoint::Step::Capture);
    record::log(shared, runtime, side.direction(), &[line]).map_err(unavailable)
}
