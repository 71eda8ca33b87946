//! The webhook receiver: `POST /events/{system}`, where the services push
//! their changes (finops data events, Dataverse webhooks), one event per
//! request. The event is queued for every map reading that table, flushed,
//! and only then answered 2xx; anything else is answered 4xx or 5xx so the
//! sender retries.
//!
//! Hardened, since it faces whatever can reach it:
//! - the shared secret travels in the `x-dualwrite-secret` header only (the
//!   `HttpHeader` authentication of a Dataverse service endpoint, see
//!   <https://learn.microsoft.com/power-apps/developer/data-platform/use-webhooks>),
//!   and is compared in constant time before the body is read;
//! - a body is read up to [`MAX_BODY`] bytes (413 beyond), at most
//!   [`MAX_CONCURRENT`] requests are handled at once (503 with
//!   `Retry-After` beyond), and a request gets [`REQUEST_TIMEOUT`] (408);
//! - with `[engine] tls_certificate_file` it serves HTTPS only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use subtle::ConstantTimeEq;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tower_http::timeout::TimeoutLayer;

use super::{Shared, SyncError};
use crate::map::ReceiverTls;

mod context;
mod dataverse;
mod finops;
pub(crate) mod live;

/// The header carrying the shared secret.
pub const SECRET_HEADER: &str = "x-dualwrite-secret";

/// The largest body read (1 MiB): a context of one row is a few KiB.
pub const MAX_BODY: usize = 1024 * 1024;

/// Requests handled at once; more are answered 503 to be retried.
pub const MAX_CONCURRENT: usize = 64;

/// The time one request may take, reading its body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The receiver's state: the engine's, and the permits of requests in
/// progress.
struct Receiver {
    shared: Arc<Shared>,
    permits: Semaphore,
}

/// Binds `addr` and serves the receiver until shutdown: over HTTPS when
/// the plan names the receiver's certificate.
pub(super) async fn serve(
    shared: Arc<Shared>,
    addr: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(SocketAddr, JoinHandle<()>), SyncError> {
    let setup = |detail: String| SyncError::Setup { detail };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|error| {
        setup(format!(
            "the webhook receiver cannot listen on {addr} (engine.listen): {error}; choose a free address"
        ))
    })?;
    let bound = listener
        .local_addr()
        .map_err(|error| setup(format!("the webhook receiver has no address: {error}")))?;
    let tls = shared.plan().receiver_tls.clone();
    let app = Router::new()
        .route("/events/{system}", post(receive))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(Arc::new(Receiver {
            shared,
            permits: Semaphore::new(MAX_CONCURRENT),
        }));
    let stop = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    let task = match tls {
        None => tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!(%error, "The webhook receiver stopped.");
            }
        }),
        Some(tls) => serve_tls(listener, app, stop, &tls, "webhook receiver")
            .await
            .map_err(setup)?,
    };
    Ok((bound, task))
}

/// Serves `app` (the `what` of error messages) over HTTPS with the plan's
/// certificate and key.
pub(crate) async fn serve_tls(
    listener: tokio::net::TcpListener,
    app: Router,
    stop: impl Future<Output = ()> + Send + 'static,
    tls: &ReceiverTls,
    what: &str,
) -> Result<JoinHandle<()>, String> {
    let config = axum_server::tls_rustls::RustlsConfig::from_pem(
        tls.certificate_pem.clone(),
        tls.key_pem.clone(),
    )
    .await
    .map_err(|error| {
        format!(
            "the {what} cannot use the certificate and key of {}: {error}; name a certificate chain and its own private key (engine.tls_certificate_file, engine.tls_private_key_file)",
            tls.files
        )
    })?;
    let listener = listener
        .into_std()
        .map_err(|error| format!("the {what} cannot serve HTTPS: {error}"))?;
    let server = axum_server::from_tcp_rustls(listener, config)
        .map_err(|error| format!("the {what} cannot serve HTTPS: {error}"))?;
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    let what = what.to_owned();
    Ok(tokio::spawn(async move {
        let graceful = tokio::spawn(async move {
            stop.await;
            stopper.graceful_shutdown(Some(Duration::from_secs(5)));
        });
        if let Err(error) = server.handle(handle).serve(app.into_make_service()).await {
            tracing::error!(%error, "The {what} stopped.");
        }
        graceful.abort();
    }))
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    Path(system): Path<String>,
    request: Request,
) -> Response {
    let Ok(_permit) = receiver.permits.try_acquire() else {
        let mut response = (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the receiver is handling {MAX_CONCURRENT} events already; send again"),
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    let shared = &receiver.shared;
    let whole = shared.plan();
    let Some(plan) = whole.systems.get(&system) else {
        return (
            StatusCode::NOT_FOUND,
            format!("no system `{system}` in the config: post to /events/<system name>"),
        )
            .into_response();
    };
    let (variable, expected) = match &plan.events_secret {
        Some((variable, Some(expected))) => (variable, expected),
        Some((variable, None)) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "system `{system}` takes events, but the host's environment has no `{variable}`: set it and restart the host"
                ),
            )
                .into_response();
        }
        None => {
            return (
                StatusCode::NOT_FOUND,
                format!("system `{system}` takes no events: set `events_secret_env` for it"),
            )
                .into_response();
        }
    };
    // The secret first, in constant time: nothing of an unauthenticated
    // request's body is read.
    let given = request
        .headers()
        .get(SECRET_HEADER)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    if !bool::from(given.ct_eq(expected.expose().as_bytes())) {
        return (
            StatusCode::UNAUTHORIZED,
            format!(
                "the shared secret is missing or wrong: send the value of `{variable}` in the {SECRET_HEADER} header"
            ),
        )
            .into_response();
    }
    let body = match read_body(request.into_body()).await {
        Ok(body) => body,
        Err(refusal) => return refusal.into_response(),
    };
    let accepted = match plan.kind {
        crate::map::SystemKind::Dataverse => dataverse::accept(shared, &system, &body).await,
        crate::map::SystemKind::Finops => finops::accept(shared, &system, &body).await,
    };
    match accepted {
        Ok(()) => StatusCode::OK.into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

/// The body, up to [`MAX_BODY`] bytes.
async fn read_body(body: Body) -> Result<axum::body::Bytes, (StatusCode, String)> {
    axum::body::to_bytes(body, MAX_BODY).await.map_err(|error| {
        let too_large = std::error::Error::source(&error)
            .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if too_large {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is over {MAX_BODY} bytes; send one event per request"),
            )
        } else {
            (
                StatusCode::BAD_REQUEST,
                format!("the body could not be read: {error}"),
            )
        }
    })
}
