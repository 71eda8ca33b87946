//! finops data events: the body of `POST /events/{system}` for a finops
//! system, queued for every map reading that entity.

use std::sync::atomic::Ordering;

use axum::http::StatusCode;
use chrono::{SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::checkpoint::{Action, Activity, Change, Operation};
use crate::connector::Key;

use super::super::capture::key_text_of;
use super::super::shape::Side;
use super::super::{Shared, record};

/// A finops data event, as far as the engine reads it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Event {
    entity_name: String,
    event_type: String,
    control_number: Value,
    #[serde(default)]
    event_time: Option<String>,
    key: Map<String, Value>,
    #[serde(default)]
    row: Option<Map<String, Value>>,
}

/// Reads `body` as a data event and queues it.
pub(super) fn accept(
    shared: &Shared,
    system: &str,
    body: &[u8],
) -> Result<(), (StatusCode, String)> {
    let event: Event = serde_json::from_slice(body).map_err(|error| {
        (
            StatusCode::BAD_REQUEST,
            format!(
                "the body is not a data event (EntityName, EventType, ControlNumber, Key, Row): {error}"
            ),
        )
    })?;
    queue(shared, system, event)
}

fn queue(shared: &Shared, system: &str, event: Event) -> Result<(), (StatusCode, String)> {
    let key = Key::from_json(&event.key).map_err(|problem| {
        (
            StatusCode::BAD_REQUEST,
            format!("the event's Key: {problem}"),
        )
    })?;
    let operation = match event.event_type.as_str() {
        "Delete" | "Deleted" => Operation::Delete,
        _ => Operation::Upsert,
    };
    if operation == Operation::Upsert && event.row.is_none() {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("a {} event carries no Row", event.event_type),
        ));
    }
    let version = match &event.control_number {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let modified = event
        .event_time
        .clone()
        .unwrap_or_else(|| Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true));
    for map in shared
        .plan
        .maps
        .iter()
        .filter(|m| m.enabled && m.left.system == system && m.left.table == event.entity_name)
    {
        let Some(key) = key_text_of(map, Side::Left, &key) else {
            // Acknowledged (a resend would carry the same key), never
            // silently: the log says which event and why.
            if let Some(runtime) = shared.maps.get(&map.name) {
                let line = Activity {
                    map: map.name.clone(),
                    direction: Side::Left.direction(),
                    key: String::new(),
                    what: Action::Skipped,
                    detail: format!(
                        "a {} event of {} (control number {version}) is not synced: its Key {key} lacks the map's key fields; send the entity's full key",
                        event.event_type, event.entity_name
                    ),
                };
                record::log(shared, runtime, Side::Left.direction(), &[line])
                    .map_err(|error| (StatusCode::SERVICE_UNAVAILABLE, error.to_string()))?;
            }
            continue;
        };
        let change = Change {
            key,
            version: version.clone(),
            operation,
            row: event.row.clone().unwrap_or_default(),
            modified: Some(modified.clone()),
            // An event may be delivered long after its commit.
            read_at: 0,
            unreadable: None,
        };
        let added = shared
            .store
            .capture_page(&map.name, Side::Left.direction(), &[change], None, &[])
            .map_err(|error| (StatusCode::SERVICE_UNAVAILABLE, error.to_string()))?;
        if added > 0
            && let Some(runtime) = shared.maps.get(&map.name)
        {
            runtime
                .counters(Side::Left.direction())
                .captured
                .fetch_add(added as u64, Ordering::Relaxed);
            runtime.wake.notify_one();
        }
    }
    Ok(())
}
