//! The axum server: routes, the request guard middleware, start and
//! graceful shutdown.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Form, Request, State as AxumState};
use axum::http::{StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use bytes::Bytes;
use futures_util::stream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::auth::{Auth, TokenRequest};
use super::guard::{Guard, ThrottleCodes};
use super::http::{ApiError, ApiRequest};
use super::{
    EmulatorConfig, EmulatorError, Metadata, ServiceKind, SharedState, State, admin, dataverse,
    finops, seed,
};

/// Largest request body accepted (a `$batch` of 1,000 requests fits).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// A started emulator.
#[derive(Debug)]
pub struct RunningEmulator {
    addr: SocketAddr,
    state: SharedState,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    /// HTTPS: the CA file and its PEM.
    ca: Option<(PathBuf, String)>,
    /// Holds the CA file when there is no data directory.
    _ca_dir: Option<tempfile::TempDir>,
}

impl RunningEmulator {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, or `https://…` when it serves TLS.
    pub fn url(&self) -> String {
        self.state.base_url.clone()
    }

    /// HTTPS: the file holding the PEM of the CA that signed its
    /// certificate (what a config names as `ca_file`).
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca.as_ref().map(|(path, _)| path.as_path())
    }

    /// HTTPS: the PEM of the CA that signed its certificate.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca.as_ref().map(|(_, pem)| pem.as_str())
    }

    /// Service requests received so far, of every client (token requests
    /// and `/admin` routes excluded).
    pub fn requests(&self) -> u64 {
        self.state.guard.admitted()
    }

    /// How many committed writes (creates, updates, deletes) each row of
    /// `table` has received, with the row as it is now: what a test counts
    /// to show each row written once. A row never written is not listed.
    pub fn writes(&self, table: &str) -> Result<Vec<super::RowWrites>, super::StoreError> {
        self.state.store.row_writes(table)
    }

    /// How many committed writes `table` has received in all: the sum of
    /// [`RunningEmulator::writes`], without reading the rows.
    pub fn write_count(&self, table: &str) -> Result<u64, super::StoreError> {
        Ok(self
            .state
            .store
            .writes(table)?
            .iter()
            .map(|(_, writes)| writes)
            .sum())
    }

    /// The service root: `…/api/data/v9.2` or `…/data`.
    pub fn service_url(&self) -> String {
        match self.state.kind {
            ServiceKind::Dataverse => format!("{}/api/data/v9.2", self.url()),
            ServiceKind::Finops => format!("{}/data", self.url()),
        }
    }

    /// The OAuth2 token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/common/oauth2/v2.0/token", self.url())
    }

    /// Replaces the faults in force.
    pub fn set_faults(&self, faults: super::FaultConfig) {
        self.state.guard.set_faults(faults);
    }

    /// Replaces the service protection limits.
    pub fn set_limits(&self, limits: super::ProtectionLimits) {
        self.state.guard.set_limits(limits);
    }

    /// Sets (or with `None` removes) the pre-commit hook of a table.
    pub fn set_hook(&self, table: &str, url: Option<String>) {
        self.state.hooks.set(table, url);
    }

    /// Subscribes a webhook to data events (finops; Dataverse emits none).
    pub fn subscribe(&self, subscription: super::Subscription) {
        if let Err(error) = self.state.events.subscribe(subscription) {
            tracing::error!(%error, "Could not store a data event subscription.");
        }
    }

    /// How many data events wait to be delivered (0 when every subscriber
    /// has answered each event with 2xx).
    pub fn undelivered_events(&self) -> usize {
        self.state.store.queued_events()
    }

    /// Stops accepting requests, lets requests in flight finish, flushes the
    /// store. Waits for the server; cancelling this future leaves the server
    /// stopping in the background.
    pub async fn shutdown(mut self) -> Result<(), EmulatorError> {
        self.stop().await
    }

    async fn stop(&mut self) -> Result<(), EmulatorError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(result) => result.map_err(EmulatorError::Serve)?,
                Err(join) => {
                    return Err(EmulatorError::Serve(std::io::Error::other(
                        join.to_string(),
                    )));
                }
            }
        }
        self.state.events.shutdown().await;
        self.state.webhooks.shutdown().await;
        self.state.store.flush()?;
        Ok(())
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.state.events.stop();
        self.state.webhooks.stop();
        let _ = self.state.store.flush();
    }
}

pub(super) async fn start(
    kind: ServiceKind,
    config: EmulatorConfig,
) -> Result<RunningEmulator, EmulatorError> {
    let auth =
        Auth::new(config.clients.clone()).map_err(|detail| EmulatorError::Clients { detail })?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| EmulatorError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| EmulatorError::Bind {
            addr: config.listen,
            source,
        })?;
    let store = Arc::new(super::store::Store::open(config.data_dir.as_deref())?);
    let client = super::events::delivery_client(config.trusted_ca.as_deref())
        .map_err(|detail| EmulatorError::Tls { detail })?;
    let events = super::events::DataEvents::start(store.clone(), client.clone())?;
    let webhooks = dataverse::webhooks::Webhooks::start(store.clone(), "emulator".into(), client)?;
    let builtin = match kind {
        ServiceKind::Dataverse => dualwrite::schema::DATAVERSE_TABLES,
        ServiceKind::Finops => dualwrite::schema::FINOPS_TABLES,
    };
    let mut metadata = Metadata::from_toml(builtin)?;
    if let Some(path) = &config.metadata_file {
        metadata.merge(Metadata::from_file(path)?);
    }
    if kind == ServiceKind::Finops {
        // Only public data entities are exposed by the OData service.
        metadata.retain(|table| table.public);
    }
    let codes = match kind {
        ServiceKind::Dataverse => ThrottleCodes {
            requests: "0x80072322",
            concurrent: "0x80072326",
        },
        ServiceKind::Finops => ThrottleCodes {
            requests: "TooManyRequests",
            concurrent: "TooManyRequests",
        },
    };
    let state = Arc::new(State {
        kind,
        store,
        metadata,
        auth,
        security: super::security::Security::new(
            kind,
            config.roles.clone(),
            config.clients.iter().map(|c| c.client_id.clone()).collect(),
        ),
        guard: Guard::new(config.limits, config.faults.clone(), codes),
        hooks: Default::default(),
        events,
        webhooks,
        step_deadline: std::time::Duration::from_millis(config.synchronous_step_timeout_ms),
        base_url: format!("{}://{addr}", if config.tls { "https" } else { "http" }),
        default_company: config.default_company.to_lowercase(),
    });
    seed::seed(&state, config.seed, config.rows)?;
    let router = router(state.clone());
    let (tx, rx) = oneshot::channel::<()>();
    let (task, ca, ca_dir) = if config.tls {
        let (task, ca, ca_dir) =
            serve_tls(listener, router, rx, config.data_dir.as_deref()).await?;
        (task, Some(ca), ca_dir)
    } else {
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
        });
        (task, None, None)
    };
    tracing::info!(%addr, ?kind, tls = config.tls, "Emulator listening.");
    Ok(RunningEmulator {
        addr,
        state,
        shutdown: Some(tx),
        task: Some(task),
        ca,
        _ca_dir: ca_dir,
    })
}

type Served = (
    JoinHandle<std::io::Result<()>>,
    (PathBuf, String),
    Option<tempfile::TempDir>,
);

/// Serves `router` over HTTPS with a certificate made now; writes the CA
/// file into `data_dir` or, without one, a temporary folder.
async fn serve_tls(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: oneshot::Receiver<()>,
    data_dir: Option<&Path>,
) -> Result<Served, EmulatorError> {
    let generated = super::tls::GeneratedTls::generate()?;
    let (folder, ca_dir) = match data_dir {
        Some(dir) => (dir.to_path_buf(), None),
        None => {
            let dir = tempfile::tempdir().map_err(|error| EmulatorError::Tls {
                detail: format!("could not make a folder for the CA certificate: {error}"),
            })?;
            (dir.path().to_path_buf(), Some(dir))
        }
    };
    let ca_path = generated.write_ca(&folder)?;
    let config = axum_server::tls_rustls::RustlsConfig::from_pem(
        generated.server_pem.clone().into_bytes(),
        generated.server_key_pem.clone().into_bytes(),
    )
    .await
    .map_err(|error| EmulatorError::Tls {
        detail: format!("could not load the generated server certificate: {error}"),
    })?;
    let listener = listener.into_std().map_err(EmulatorError::Serve)?;
    let server = axum_server::from_tcp_rustls(listener, config).map_err(EmulatorError::Serve)?;
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    let task = tokio::spawn(async move {
        let graceful = tokio::spawn(async move {
            let _ = stop.await;
            stopper.graceful_shutdown(None);
        });
        let served = server
            .handle(handle)
            .serve(router.into_make_service())
            .await;
        graceful.abort();
        served
    });
    Ok((task, (ca_path, generated.ca_pem), ca_dir))
}

fn router(state: SharedState) -> Router {
    let service = match state.kind {
        // The root itself (`/data/`) answers the service document.
        ServiceKind::Dataverse => Router::new()
            .route("/api/data/v9.2/", any(service_request))
            .route("/api/data/v9.2/{*rest}", any(service_request)),
        ServiceKind::Finops => Router::new()
            .route("/data/", any(service_request))
            .route("/data/{*rest}", any(service_request)),
    }
    .layer(middleware::from_fn_with_state(state.clone(), guard));
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route("/{tenant}/oauth2/token", post(token))
        .merge(admin::routes())
        .merge(service)
        .with_state(state)
}

async fn token(
    AxumState(state): AxumState<SharedState>,
    uri: Uri,
    Form(form): Form<TokenRequest>,
) -> Response {
    // The endpoint asked, which a client assertion's `aud` must name.
    let token_url = format!("{}{}", state.base_url, uri.path());
    let (status, body) = state.auth.issue(&form, &token_url);
    (status, axum::Json(body)).into_response()
}

/// Faults, the bearer token, then the client's protection limits.
/// The client a request's bearer token was issued to, set by the guard.
#[derive(Debug, Clone)]
struct Client(String);

async fn guard(
    AxumState(state): AxumState<SharedState>,
    mut request: Request,
    next: Next,
) -> Response {
    let admission = match state.guard.faults_for_request() {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let token_url = format!("{}/common/oauth2/v2.0/token", state.base_url);
    let client = match state.auth.check(request.headers(), &token_url) {
        Ok(client) => client,
        Err(e) => return e.into_response(),
    };
    let _in_flight = match state.guard.admit(&client) {
        Ok(slot) => slot,
        Err(e) => return e.into_response(),
    };
    request.extensions_mut().insert(Client(client.clone()));
    if !admission.latency.is_zero() {
        tokio::time::sleep(admission.latency).await;
    }
    let response = next.run(request).await;
    if admission.drop_connection {
        return drop_mid_body(response).await;
    }
    response
}

/// Sends the head and half the body, then breaks the connection.
async fn drop_mid_body(response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let bytes = to_bytes(body, MAX_BODY).await.unwrap_or_default();
    let half = bytes.slice(..bytes.len() / 2);
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(half),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected connection drop",
        )),
    ];
    let mut parts = parts;
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from_stream(stream::iter(chunks)))
}

async fn service_request(AxumState(state): AxumState<SharedState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "0x80040216",
                "the request body is too large",
            )
            .into_response();
        }
    };
    let root = match state.kind {
        ServiceKind::Dataverse => "/api/data/v9.2/",
        ServiceKind::Finops => "/data/",
    };
    let raw_path = parts.uri.path().strip_prefix(root).unwrap_or_default();
    let path = percent_decode(raw_path);
    let request = ApiRequest {
        method: parts.method,
        path,
        query: parts.uri.query().unwrap_or_default().to_string(),
        headers: parts.headers,
        body,
        client: parts.extensions.get::<Client>().map(|c| c.0.clone()),
    };
    match state.kind {
        ServiceKind::Dataverse => dataverse::handle(&state, request).await.into_response(),
        ServiceKind::Finops => finops::handle(&state, request).await.into_response(),
    }
}

/// Percent-decodes a path (keys may carry encoded quotes and spaces); an
/// invalid escape stays as it is, invalid UTF-8 becomes U+FFFD.
pub(crate) fn percent_decode(path: &str) -> String {
    percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn paths_are_percent_decoded_and_bad_escapes_kept() {
        for (raw, decoded) in [
            (
                "accounts(name='it''s%2F%23%3F')",
                "accounts(name='it''s/#?')",
            ),
            (
                "Customers(CustomerAccount='US%20001')",
                "Customers(CustomerAccount='US 001')",
            ),
            ("a%zzb%4", "a%zzb%4"),
            ("%C3%A9t%C3%A9", "été"),
            ("%FF", "\u{FFFD}"),
        ] {
            assert_eq!(percent_decode(raw), decoded, "{raw}");
        }
    }
}
