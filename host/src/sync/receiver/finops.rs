//! finops data events: the body of `POST /events/{system}` for a finops
//! system, a `RemoteExecutionContext` ([`ExecutionContext`]) whose
//! `MessageName` is `Create`, `Update` or `Delete`, whose
//! `PrimaryEntityName` is the data entity and whose `InputParameters`
//! carry the `Target` (the entity's fields) and, for updates and deletes,
//! the `PreImage`. Page:
//! <https://learn.microsoft.com/dynamics365/fin-ops-core/dev-itpro/business-events/data-events>.
//!
//! An event is a hint: for every map reading that entity, the key fields
//! of the map are taken from the `Target` (the `PreImage` when there is no
//! `Target`), the row is read again by key, and what the read shows is
//! compared and queued as reconciliation does: an upsert of the row read,
//! a delete when it is gone (of a row the host knew), nothing when the row
//! is as the host last saw it. So a forged or replayed event can cause a
//! read, never a write of its contents. The change's version and
//! `read_at` are the host's stamp taken before the read. A row the event
//! names whose initial-copy change still waits is queued as a live change
//! even when it reads as the copy read it: the event says it changed
//! during the copy (finops gives no change time to tell otherwise).

use axum::http::StatusCode;

use crate::checkpoint::{Action, Activity};
use crate::connector::Key;
use crate::map::MapPlan;

use super::super::capture::{self, Compared};
use super::super::error::FlowError;
use super::super::runtime::MapRuntime;
use super::super::shape::{self, Side};
use super::super::{Shared, initial, record};
use super::context::{EntityImage, ExecutionContext, Message};

/// What the receiver answers when an event cannot be taken now.
type Refusal = (StatusCode, String);

/// Reads `body` as a data event and queues what a read of its row shows,
/// for every map of its entity; flushed before it returns. Cancelled (the
/// sender hung up), the reads done so far may have queued their changes;
/// the sender's retry reads again and finds them unchanged.
pub(super) async fn accept(shared: &Shared, system: &str, body: &[u8]) -> Result<(), Refusal> {
    let context =
        ExecutionContext::parse(body).map_err(|error| (StatusCode::BAD_REQUEST, error))?;
    let entity = context.primary_entity_name.as_str();
    let Some(message) = context.message() else {
        tracing::debug!(system, entity, message = %context.message_name, "A data event that is no data change was ignored.");
        return Ok(());
    };
    let target = context.target().or_else(|| context.pre_image()).ok_or_else(|| {
        (
            StatusCode::BAD_REQUEST,
            format!(
                "the {} event of {entity} carries no Target (nor PreImage) in InputParameters: send the entity's fields as an Entity",
                context.message_name
            ),
        )
    })?;
    for map in shared.plan().maps.iter().filter(|m| {
        m.enabled && m.left.system == system && m.left.table.eq_ignore_ascii_case(entity)
    }) {
        let Some(runtime) = shared.map(&map.name) else {
            continue;
        };
        read_again(shared, &runtime, message, &target)
            .await
            .map_err(|error| match error {
                FlowError::Checkpoint(error) => {
                    (StatusCode::SERVICE_UNAVAILABLE, error.to_string())
                }
                error => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the row the event names could not be read again: {error}"),
                ),
            })?;
    }
    Ok(())
}

/// Reads the row `target` names on the left side of `map` again and queues
/// what the read shows.
async fn read_again(
    shared: &Shared,
    map: &MapRuntime,
    message: Message,
    target: &EntityImage,
) -> Result<(), FlowError> {
    let plan = &map.plan;
    let side = Side::Left;
    let table = &plan.side(side).table;
    let skipped = |why: String| -> Result<(), FlowError> {
        log(
            shared,
            map,
            format!("a {message:?} event of {table} is not synced: {why}"),
        )
    };
    let key_fields = match key_fields(plan, side, target) {
        Ok(fields) => fields,
        Err(why) => return skipped(why),
    };
    let (key, text) = match (
        Key::from_json(&key_fields),
        shape::key_text(plan, side, &key_fields),
    ) {
        (Ok(key), Ok(text)) => (key, text),
        (Err(problem), _) | (_, Err(problem)) => {
            return skipped(format!(
                "its Target's key: {problem}; send the entity's full key"
            ));
        }
    };
    let stamp = shared.store.stamp()?;
    let system = shared.system(plan, side);
    let select = &map.side(side).select;
    let read = match system.get(table, &key).await {
        Ok(read) => read,
        // The service refuses the key itself (a field of the wrong type, a
        // key that is not the entity's): a retry would be refused again.
        Err(error) if error.refusal().is_some() => {
            return skipped(format!("the row {key} could not be read again: {error}"));
        }
        Err(error) => return Err(error.into()),
    };
    let (changes, keyless) = match read {
        Some(raw) => match capture::compare(shared, plan, side, select, &raw, stamp)? {
            Compared::Changed(seen) => (vec![*seen], Vec::new()),
            // As the initial copy read it, which still waits: the event
            // says the row changed during the copy, so what the read shows
            // goes as a live change, and the copy's is retired.
            Compared::Same(key) if initial::queued_initial(shared, map, side, &key)? => {
                match capture::seen_of(plan, side, select, &raw, stamp) {
                    Ok(seen) => (vec![*seen], Vec::new()),
                    Err(why) => (Vec::new(), vec![why]),
                }
            }
            Compared::Same(_) => (Vec::new(), Vec::new()),
            Compared::Keyless(why) => (Vec::new(), vec![why]),
        },
        None => {
            let known = shared
                .store
                .row_hash(&plan.name, side.name(), &text)?
                .is_some()
                || shared
                    .store
                    .image(&plan.name, side.name(), &text)?
                    .is_some();
            if !known {
                return skipped(format!(
                    "the row {key} is gone and the host never synced it, so the {} side has nothing to delete",
                    side.other().name()
                ));
            }
            (vec![capture::gone(text, stamp)], Vec::new())
        }
    };
    capture::queue(shared, map, side, &changes, keyless)?;
    Ok(())
}

/// The map's key fields on `side` from the event's image, or why not.
fn key_fields(
    plan: &MapPlan,
    side: Side,
    target: &EntityImage,
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let mut fields = serde_json::Map::new();
    for pair in &plan.key {
        let Some(field) = shape::field_on(pair, side) else {
            continue;
        };
        match target.attributes.get(field) {
            Some(value) if !value.is_null() => {
                fields.insert(field.to_owned(), value.clone());
            }
            _ => {
                return Err(format!(
                    "its Target lacks the map's key field `{field}`; send the entity's fields"
                ));
            }
        }
    }
    Ok(fields)
}

/// Logs why an event was acknowledged without a change: a resend would
/// carry the same, so it is never silently dropped.
fn log(shared: &Shared, map: &MapRuntime, detail: String) -> Result<(), FlowError> {
    let line = Activity::new(
        map.name(),
        Side::Left.direction(),
        "",
        Action::Skipped,
        detail,
    )
    .step(crate::checkpoint::Step::Capture);
    record::log(shared, map, Side::Left.direction(), &[line])?;
    Ok(())
}
