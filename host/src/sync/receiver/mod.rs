//! The receiver of finops data events: `POST /events/{system}` with one
//! event as JSON, authenticated by the system's shared secret (header
//! `X-Dualwrite-Secret`, or query parameter `code`). The event is queued
//! for every map reading that entity, flushed, and only then answered
//! 2xx; anything else is answered 4xx or 5xx so the sender retries.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Shared, SyncError};

mod context;
mod finops;

/// The header carrying the shared secret.
pub const SECRET_HEADER: &str = "x-dualwrite-secret";

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
    match finops::accept(&shared, &system, &body).await {
        Ok(()) => (StatusCode::OK, String::new()),
        Err((status, message)) => (status, message),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
