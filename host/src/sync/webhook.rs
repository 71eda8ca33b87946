//! The receiver of finops data events: `POST /events/{system}` with one
//! event as JSON, authenticated by the system's shared secret (header
//! `X-Dualwrite-Secret`, or query parameter `code`). The event is queued
//! for every map reading that entity, flushed, and only then answered
//! 2xx; anything else is answered 4xx or 5xx so the sender retries.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::{SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::checkpoint::{Action, Activity, Change, Operation};
use crate::connector::Key;

use super::capture::key_text_of;
use super::shape::Side;
use super::{Shared, SyncError, record};

/// The header carrying the shared secret.
pub const SECRET_HEADER: &str = "x-dualwrite-secret";

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

#[derive(Debug, Deserialize)]
struct Secret {
    code: Option<String>,
}

/// Binds `addr` and serves the receiver until shutdown.
pub(super) async fn serve(
    shared: Arc<Shared>,
    addr: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(SocketAddr, JoinHandle<()>), SyncError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|error| SyncError::Setup {
            detail: format!(
                "the webhook receiver cannot listen on {addr} (engine.listen): {error}; choose a free address"
            ),
        })?;
    let bound = listener.local_addr().map_err(|error| SyncError::Setup {
        detail: format!("the webhook receiver has no address: {error}"),
    })?;
    let app = Router::new()
        .route("/events/{system}", post(receive))
        .with_state(shared);
    let task = tokio::spawn(async move {
        let stop = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(%error, "The webhook receiver stopped.");
        }
    });
    Ok((bound, task))
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    Path(system): Path<String>,
    Query(query): Query<Secret>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let Some(plan) = shared.plan.systems.get(&system) else {
        return (
            StatusCode::NOT_FOUND,
            format!("no system `{system}` in the config: post to /events/<system name>"),
        );
    };
    let Some((variable, Some(expected))) = &plan.events_secret else {
        return (
            StatusCode::NOT_FOUND,
            format!("system `{system}` takes no data events: set `events_secret_env` for it"),
        );
    };
    let given = headers
        .get(SECRET_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(query.code);
    let valid =
        given.is_some_and(|given| constant_time_eq(given.as_bytes(), expected.expose().as_bytes()));
    if !valid {
        return (
            StatusCode::UNAUTHORIZED,
            format!(
                "the shared secret is missing or wrong: send the value of `{variable}` in the {SECRET_HEADER} header or the `code` parameter"
            ),
        );
    }
    let event: Event = match serde_json::from_slice(&body) {
        Ok(event) => event,
        Err(error) => {
            return (
                StatusCode::BAD_REQUEST,
                format!(
                    "the body is not a data event (EntityName, EventType, ControlNumber, Key, Row): {error}"
                ),
            );
        }
    };
    match queue(&shared, &system, event) {
        Ok(()) => (StatusCode::OK, String::new()),
        Err((status, message)) => (status, message),
    }
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
