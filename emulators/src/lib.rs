//! Emulated Dataverse Web API and Finance and Operations OData services.
//!
//! Real HTTP servers (axum) over real storage (sled), speaking enough of each
//! documented protocol that a connector written against them works against
//! the real service. They carry the demo, the end-to-end tests and the
//! benchmarks.
//!
//! - [`start`] (or [`DataverseEmulator::start`], [`FinopsEmulator::start`])
//!   binds the configured address (`127.0.0.1:0` by default) and returns a
//!   [`RunningEmulator`] with its address and a graceful [`RunningEmulator::shutdown`].
//! - [`EmulatorConfig`]: data directory (or a temporary one), seed, metadata
//!   file for custom tables, OAuth2 clients, protection limits, faults.
//! - `server`: the axum router, the guard middleware, start and shutdown;
//!   `http`: the request/response/error types every handler uses and
//!   query option parsing; `auth`: the token endpoint and bearer checks;
//!   `guard`: protection limits (per client) and injected faults;
//!   `security`: the clients' security roles, reported and enforced; `tls`:
//!   the CA and server certificate of an HTTPS emulator (`tls = true`).
//! - `dataverse` and `finops`: the two protocols, each a router over
//!   reads and writes; writes go through prepare → apply (in a sled
//!   transaction) → respond, which `batch` reuses for `$batch` change sets.
//! - `store`: sled storage with a versioned key layout, a change log per
//!   table (Dataverse delta links read it) and the data event
//!   queues; `rows`: key segments, key encoding, `$select` and query runs;
//!   `metadata`: tables, fields and keys (built-in TOML plus a custom file).
//! - `hooks`: pre-commit hooks; `events`: finops data events to webhooks;
//!   `dataverse::webhooks`: the contexts of the Dataverse webhook steps
//!   registered through `dataverse::steps` (with their images,
//!   `dataverse::images`), queued after the commit for asynchronous steps
//!   and, for synchronous ones, sent during the write by
//!   `dataverse::synchronous`;
//!   `seed`: demo data and `--rows N`; `admin`: the `/admin` routes.
//!
//! Boundary: the emulators use [`dualwrite::odata`] and nothing else of the
//! crate; nothing else of the crate depends on them except the CLI.
//!
//! Routes common to both: `POST /{tenant}/oauth2/v2.0/token` (client
//! credentials, with a secret or a certificate's client assertion) and the admin API under `/admin` (no token, never throttled):
//! `GET|PUT /admin/faults`, `PUT /admin/limits`, `PUT|DELETE /admin/hooks/{table}`,
//! `POST /admin/purge-changes/{table}`, `GET /admin/writes/{table}` (the
//! writes each row received, [`RunningEmulator::writes`]), finops
//! `GET|POST|DELETE /admin/subscriptions`.
//!
//! Invariants: bad input never panics, it gets the service's OData error
//! JSON; a write (or a whole `$batch` change set) commits in one sled
//! transaction, after its pre-commit hook agreed and, under the writer
//! lock, its synchronous webhook steps agreed to a dry run of it; the store is flushed when
//! the server shuts down. A client that disconnects mid-request cancels its
//! handler: a write is then either fully committed or not at all, and a
//! data event is published only for a committed write.

mod admin;
mod auth;
mod batch;
pub mod dataverse;
mod delivery;
mod events;
pub mod finops;
mod guard;
mod hooks;
mod http;

mod rows;
mod security;
mod seed;
pub(crate) mod server;
mod store;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use auth::ClientCredentials;
pub use dualwrite::schema::{FieldType, Metadata, MetadataError, TableDef};
pub use events::Subscription;
pub use guard::{FaultConfig, MAX_OUTAGE_SECONDS, ProtectionLimits};
pub use security::{Access, Depth, SecurityRole, TableAccess};
pub use server::RunningEmulator;
pub use store::{RowWrites, StoreError};
pub use tls::{CA_FILE_NAME, GeneratedTls};

/// Which service an emulator speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    /// Dataverse Web API under `/api/data/v9.2/`.
    Dataverse,
    /// Finance and Operations OData under `/data/`.
    Finops,
}

/// What data an emulator starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Seed {
    /// Legal entities, currencies, units, groups, terms, customers, vendors,
    /// contacts and products (only when the store is empty).
    #[default]
    Demo,
    /// Nothing.
    None,
}

/// How to start an emulator; every field has a default, so a config file
/// may name only what it changes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmulatorConfig {
    /// Address to bind; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Data directory; `None` uses a temporary directory removed on shutdown.
    pub data_dir: Option<PathBuf>,
    /// Seed data for an empty store.
    pub seed: Seed,
    /// Extra customers generated deterministically (for benchmarks).
    pub rows: usize,
    /// Metadata file with custom tables.
    pub metadata_file: Option<PathBuf>,
    /// Clients allowed to get tokens, with a secret or a registered
    /// certificate.
    pub clients: Vec<ClientCredentials>,
    /// Service protection limits.
    pub limits: ProtectionLimits,
    /// Faults in force from the start.
    pub faults: FaultConfig,
    /// Finops: the company seen without `cross-company=true`.
    pub default_company: String,
    /// Serve HTTPS with a certificate signed by a CA made at start; the
    /// CA's PEM is written to [`CA_FILE_NAME`] in the data directory (or a
    /// temporary one): [`RunningEmulator::ca_file`].
    pub tls: bool,
    /// Security roles of the clients' application users; a client without
    /// one holds every privilege (see [`SecurityRole`]).
    pub roles: Vec<SecurityRole>,
    /// A CA certificate (PEM) the emulator trusts, besides the system's
    /// roots, when it posts data events and webhook contexts: a receiver
    /// serving HTTPS with a private certificate.
    pub trusted_ca: Option<String>,
    /// Dataverse: how long, in milliseconds, a synchronous webhook step's
    /// endpoint has to answer before the write it was called for fails;
    /// the service gives a webhook 60 s
    /// (<https://learn.microsoft.com/power-apps/developer/data-platform/use-webhooks>),
    /// the default. Tests set a short one.
    pub synchronous_step_timeout_ms: u64,
}

/// The service's limit for a webhook's answer, in milliseconds: the
/// default of [`EmulatorConfig::synchronous_step_timeout_ms`].
pub const SYNCHRONOUS_STEP_TIMEOUT_MS: u64 = 60_000;

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: None,
            seed: Seed::Demo,
            rows: 0,
            metadata_file: None,
            clients: vec![ClientCredentials::default()],
            limits: ProtectionLimits::default(),
            faults: FaultConfig::default(),
            default_company: "usmf".into(),
            tls: false,
            roles: Vec::new(),
            trusted_ca: None,
            synchronous_step_timeout_ms: SYNCHRONOUS_STEP_TIMEOUT_MS,
        }
    }
}

impl EmulatorConfig {
    /// No seed data and no protection limits: a blank service for tests and
    /// benchmarks, which add the rows they need.
    pub fn empty() -> Self {
        Self {
            seed: Seed::None,
            limits: ProtectionLimits::UNLIMITED,
            ..Self::default()
        }
    }
}

/// Errors starting or stopping an emulator.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The address could not be bound.
    #[error("could not listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The metadata file is not valid.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// The server task failed.
    #[error("the emulator server failed")]
    Serve(#[source] std::io::Error),
    /// The certificate could not be made or its CA file written.
    #[error("{detail}")]
    Tls {
        /// What failed.
        detail: String,
    },
    /// A client of `clients` is not valid (a certificate that is not a
    /// PEM RSA certificate).
    #[error("the emulator's clients are not valid: {detail}")]
    Clients {
        /// Which client and why.
        detail: String,
    },
    /// Seeding failed.
    #[error("seeding {table} failed: {message}")]
    Seed {
        /// The table.
        table: String,
        /// Why.
        message: String,
    },
}

/// Starts an emulator of `kind`.
pub async fn start(
    kind: ServiceKind,
    config: EmulatorConfig,
) -> Result<RunningEmulator, EmulatorError> {
    server::start(kind, config).await
}

/// The Dataverse emulator.
#[derive(Debug)]
pub struct DataverseEmulator;

impl DataverseEmulator {
    /// Starts a Dataverse emulator.
    pub async fn start(config: EmulatorConfig) -> Result<RunningEmulator, EmulatorError> {
        start(ServiceKind::Dataverse, config).await
    }
}

/// The Finance and Operations emulator.
#[derive(Debug)]
pub struct FinopsEmulator;

impl FinopsEmulator {
    /// Starts a Finance and Operations emulator.
    pub async fn start(config: EmulatorConfig) -> Result<RunningEmulator, EmulatorError> {
        start(ServiceKind::Finops, config).await
    }
}

/// Shared state of a running emulator.
#[derive(Debug)]
pub(crate) struct State {
    pub kind: ServiceKind,
    pub store: Arc<store::Store>,
    pub metadata: Metadata,
    pub auth: auth::Auth,
    pub security: security::Security,
    pub guard: guard::Guard,
    pub hooks: hooks::Hooks,
    pub events: events::DataEvents,
    /// Dataverse: the deliveries of the registered webhooks.
    pub webhooks: dataverse::webhooks::Webhooks,
    /// Dataverse: how long a synchronous step's endpoint has to answer.
    pub step_deadline: std::time::Duration,
    pub base_url: String,
    pub default_company: String,
}

pub(crate) type SharedState = Arc<State>;
