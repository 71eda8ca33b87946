//! The admin API of a running host: JSON under `/api/v1` on
//! `[engine] admin`, for `dualwrite map …` and scripts, and the Prometheus
//! metrics at `/metrics`. Every route but
//! `/api/v1/health` needs `Authorization: Bearer <token>` with the token of
//! `DUALWRITE_ADMIN_TOKEN` (compared in constant time); the API does not
//! start without a token, and not on an address other than loopback
//! without TLS (the receiver's certificate, `[engine] tls_certificate_file`).
//!
//! - `routes`: the handlers, each documented for the OpenAPI document
//!   (`utoipa`), and [`router`], which registers them and records what it
//!   registered, so a test compares the routes with the document both
//!   ways.
//! - `auth`: the bearer check.
//! - `metrics`: `GET /metrics`, the engine's metrics as Prometheus text.
//!
//! Boundary: the API drives the engine only through `RunningEngine`'s
//! public operations; it holds no state of its own.

mod alerts;
mod auth;
mod errors;
mod logs;
mod metrics;
mod package;
mod routes;
mod swap;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::map::ReceiverTls;
use crate::sync::RunningEngine;

pub use routes::{ApiDoc, ApiError, Done, PauseRequest, ResumeRequest, StartRequest, StopRequest};
pub use routes::{openapi, registered_routes, router};

/// The environment variable the token comes from.
pub const TOKEN_ENV: &str = "DUALWRITE_ADMIN_TOKEN";

/// Why the admin API does not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No token.
    #[error(
        "the admin API (engine.admin = {addr}) needs a token: set {TOKEN_ENV} in the host's environment to a long random secret, or remove `admin` from [engine]"
    )]
    NoToken {
        /// The address configured.
        addr: SocketAddr,
    },
    /// A network address without TLS.
    #[error(
        "the admin API would listen on {addr} in plain HTTP: its token would cross the network in clear; listen on 127.0.0.1 or ::1, or serve TLS with [engine] tls_certificate_file and tls_private_key_file"
    )]
    Plaintext {
        /// The address configured.
        addr: SocketAddr,
    },
    /// The address cannot be bound.
    #[error(
        "the admin API cannot listen on {addr} (engine.admin): {detail}; choose a free address"
    )]
    Bind {
        /// The address configured.
        addr: SocketAddr,
        /// What the system said.
        detail: String,
    },
    /// TLS cannot be served.
    #[error("the admin API cannot serve HTTPS: {0}")]
    Tls(String),
}

/// A running admin API; [`Admin::stop`] ends it.
#[derive(Debug)]
pub struct Admin {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Whether it serves HTTPS.
    pub https: bool,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Admin {
    /// The API's base URL, `http(s)://ADDR`.
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Stops serving; requests in flight finish.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "The admin API ended abnormally.");
        }
    }
}

/// What [`serve`] checks before it listens: a token that is not blank,
/// and TLS on an address other than loopback. Gives the token.
pub fn check(addr: SocketAddr, tls: bool, token: Option<String>) -> Result<String, AdminError> {
    let token = token
        .filter(|t| !t.trim().is_empty())
        .ok_or(AdminError::NoToken { addr })?;
    if !tls && !addr.ip().is_loopback() {
        return Err(AdminError::Plaintext { addr });
    }
    Ok(token)
}

/// Serves the admin API of `engine` on `addr` with `token`, over TLS when
/// `tls` is given. Refuses an empty token, and plain HTTP on an address
/// that is not loopback.
pub async fn serve(
    engine: Arc<RunningEngine>,
    addr: SocketAddr,
    tls: Option<&ReceiverTls>,
    token: Option<String>,
) -> Result<Admin, AdminError> {
    let token = check(addr, tls.is_some(), token)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|error| AdminError::Bind {
            addr,
            detail: error.to_string(),
        })?;
    let bound = listener.local_addr().map_err(|error| AdminError::Bind {
        addr,
        detail: error.to_string(),
    })?;
    let app = router(engine, token);
    let (stop, mut stopped) = watch::channel(false);
    let shutdown = async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let task = match tls {
        None => tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(%error, "The admin API stopped.");
            }
        }),
        Some(tls) => crate::sync::receiver::serve_tls(listener, app, shutdown, tls, "admin API")
            .await
            .map_err(AdminError::Tls)?,
    };
    Ok(Admin {
        addr: bound,
        https: tls.is_some(),
        stop,
        task,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_needs_a_token_and_tls_off_loopback() {
        let loopback: SocketAddr = "127.0.0.1:7070".parse().expect("an address");
        let everywhere: SocketAddr = "0.0.0.0:7070".parse().expect("an address");
        assert!(matches!(
            check(loopback, false, None),
            Err(AdminError::NoToken { .. })
        ));
        assert!(matches!(
            check(loopback, false, Some("  ".into())),
            Err(AdminError::NoToken { .. })
        ));
        let plain = check(everywhere, false, Some("token".into()));
        assert!(
            matches!(plain, Err(AdminError::Plaintext { .. })),
            "{plain:?}"
        );
        let message = plain.map_err(|e| e.to_string()).err().unwrap_or_default();
        assert!(message.contains("tls_certificate_file"), "{message}");
        assert_eq!(
            check(everywhere, true, Some("token".into()))
                .ok()
                .as_deref(),
            Some("token")
        );
        assert_eq!(
            check(loopback, false, Some("token".into())).ok().as_deref(),
            Some("token")
        );
    }
}
