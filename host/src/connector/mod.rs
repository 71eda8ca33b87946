//! Connectors: HTTP clients of the Dataverse Web API and the Finance and
//! Operations OData service, speaking rows as JSON objects.
//!
//! - [`DataverseConnector`]: queries with `$select`/`$filter` paged by
//!   `@odata.nextLink`; change tracking ([`DataverseConnector::start_tracking`],
//!   then [`DataverseConnector::changes`] on the delta link); upsert and
//!   delete by alternate key; lookups with [`DataverseConnector::bind`].
//! - [`FinopsConnector`]: queries with `cross-company=true`; upsert, create
//!   and delete by the full compound key (`dataAreaId` included); no change
//!   feed: its OData documents none, so the engine reads pages and compares
//!   them with what it stored, and takes data events as hints.
//! - Both: [`write_batch`](DataverseConnector::write_batch) of up to
//!   [`MAX_BATCH`] [`Write`]s in one `$batch`, atomic or continue-on-error,
//!   with a [`WriteOutcome`] per write (an atomic change set that fails at
//!   commit without naming the write at fault is one
//!   [`ConnectorError::Rejected`]: nothing was applied; resend with
//!   [`BatchMode::ContinueOnError`] to learn the row). Dataverse reads
//!   changes as a [`ChangePage`].
//! - `auth`: the Microsoft identity platform's client credentials grant
//!   ([`ClientAuth`]: a secret, [`Credentials`], or a certificate,
//!   [`CertificateCredentials`]; [`tenant_token_url`]); the token is cached
//!   and refreshed before expiry and after a 401 (a second 401 is
//!   [`ConnectorError::Unauthorized`]).
//! - `transport`: the token, a semaphore capping requests in flight
//!   ([`ConnectorOptions::max_in_flight`]), a timeout per attempt, retries
//!   with backoff and jitter on 429, 5xx and connection failures that honour
//!   `Retry-After` within a budget ([`RetryPolicy`]).
//! - [`backoff`]: the one exponential backoff with jitter, which the
//!   transport, the sync engine and the emulators share.
//! - `error`: [`ConnectorError`], with system, URL, table, key, status and
//!   the service's OData error code and message.
//! - `count`: how many rows a table holds ([`DataverseConnector::count`],
//!   capped by the service at [`DATAVERSE_COUNT_LIMIT`];
//!   [`FinopsConnector::count`], `/$count`), for an initial copy's progress.
//! - Asking about the identity (the preflight): [`probe`] (does the
//!   service answer, over verified TLS), [`DataverseConnector::who_am_i`],
//!   [`DataverseConnector::user_privileges`],
//!   [`MetadataReader::privileges`], [`FinopsConnector::read_one`].
//!
//! Invariants: a write is idempotent by its key (an upsert by key applied
//! twice leaves one row; deleting a row already gone succeeds), so the
//! engine may resend a batch after a crash. A cursor is only ever followed
//! on the service it came from, so the token never leaves that service. The
//! client secret and tokens are never logged or printed. Values pass through
//! as the services send them; the connectors never convert a number through
//! `f64`, and the workspace builds serde_json with `arbitrary_precision`, so
//! a decimal keeps every digit and its scale from one service to the other.
//!
//! Boundary: connectors know HTTP, OData and rows; not sled, queues, maps,
//! plugins or echo suppression (the sync engine's). Connector calls may be
//! cancelled (dropped in a `select!`): a write is then applied or not, and
//! is safe to send again.

mod auth;
mod backoff;
mod batch;
mod count;
mod csdl;
mod dataverse;
mod error;
mod finops;
mod key;
mod limit;
mod metadata;
mod probe;
mod steps;
mod tls;
mod transport;

pub use auth::{
    ASSERTION_LIFETIME, AUTHORITY_HOST, CertificateCredentials, CertificateError, ClientAuth,
    ClientCertificate, Credentials, TOKEN_CONNECT_TIMEOUT, TOKEN_TIMEOUT, tenant_token_url,
};
pub use backoff::backoff;
pub use batch::{BatchMode, MAX_BATCH, WriteOutcome};
pub use count::{DATAVERSE_COUNT_LIMIT, RowCount};
pub use dataverse::{DataverseConnector, HeldPrivilege, WhoAmI};
pub use error::{ConnectorError, ServiceError, SystemKind};
pub use finops::FinopsConnector;
pub use key::{Key, KeyValue};
pub use metadata::{ENTITY_DEFINITIONS, MetadataReader, TablePrivilege};
pub use probe::probe;
pub use steps::{POST_IMAGE, REGISTRATION_PRIVILEGES, StepMode, WEBHOOK_MESSAGES, WebhookSteps};
pub use tls::TrustedCa;
pub(crate) use tls::{client_builder, tls_failure};
pub use transport::{ConnectorOptions, ConnectorStats, Failing, MAX_RETRY_AFTER, RetryPolicy};

/// A row as the services send it: field name to JSON value, in order.
pub type Row = serde_json::Map<String, serde_json::Value>;

/// What to read: `$select` and `$filter`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Fields to read; empty reads every field.
    pub select: Vec<String>,
    /// An OData `$filter` expression.
    pub filter: Option<String>,
}

/// One page of a query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryPage {
    /// The rows.
    pub rows: Vec<Row>,
    /// The `@odata.nextLink` to read the next page with, if any.
    pub next_link: Option<String>,
}

/// A deleted row as a service reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    /// Dataverse: the primary id (GUID) of the deleted row.
    Id(String),
}

/// One page of changes. Each row appears once, in its latest state: a row
/// deleted and recreated within the page is an upsert.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChangePage {
    /// Rows created or changed.
    pub upserts: Vec<Row>,
    /// The source version of each upsert, in order (Dataverse:
    /// `versionnumber`), or empty.
    pub upsert_versions: Vec<String>,
    /// When each upsert was committed (RFC 3339), in order, or empty when
    /// the service does not say (Dataverse: `modifiedon`).
    pub upsert_times: Vec<String>,
    /// Rows deleted.
    pub deletes: Vec<Deleted>,
    /// The source version of each delete, in order (Dataverse, which gives
    /// none: `deleted:<row id>`, so that a key deleted, made again and
    /// deleted again is two changes).
    pub delete_versions: Vec<String>,
    /// When each delete was committed, in order, or empty.
    pub delete_times: Vec<String>,
    /// Where to read next: store it with these changes, then pass it to
    /// `changes`. Opaque: a Dataverse next or delta link.
    pub next_cursor: String,
    /// True when more changes are ready now (a next page): read again at
    /// once rather than after the polling interval.
    pub more: bool,
}

/// One write of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Create or update the row with this key.
    Upsert {
        /// Entity set (Dataverse) or entity (finops).
        table: String,
        /// The key.
        key: Key,
        /// The fields to write.
        row: Row,
    },
    /// Create the row with this key, which the caller believes is new
    /// (an upsert that tries the create first: finops then needs one request
    /// rather than two); a row that exists after all is updated.
    Insert {
        /// Entity set (Dataverse) or entity (finops).
        table: String,
        /// The key.
        key: Key,
        /// The fields to write.
        row: Row,
    },
    /// Delete the row with this key; a row already gone counts as deleted.
    Delete {
        /// Entity set or entity.
        table: String,
        /// The key.
        key: Key,
    },
}

impl Write {
    /// The table written.
    pub fn table(&self) -> &str {
        match self {
            Self::Upsert { table, .. }
            | Self::Insert { table, .. }
            | Self::Delete { table, .. } => table,
        }
    }

    /// The key written.
    pub fn key(&self) -> &Key {
        match self {
            Self::Upsert { key, .. } | Self::Insert { key, .. } | Self::Delete { key, .. } => key,
        }
    }
}
