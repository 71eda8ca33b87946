//! The map model: a validated [`Plan`] of systems and table maps, the field
//! string grammar, and the problems validation reports.
//!
//! - [`Plan`] is what the sync engine runs: [`SystemPlan`]s (with the secret
//!   read from the environment, redacted in `Debug`) and [`MapPlan`]s in
//!   dependency order, each with typed [`FieldMapping`]s, parsed filters,
//!   resolved lookups and checked plugin steps.
//! - [`FieldMapping::parse`] reads `"LEFT = right"` strings (see [`field`]
//!   for the grammar).
//! - [`Problem`] carries a stable [`ProblemCode`] (`DW001 unknown-system`),
//!   a [`Severity`], the file, map and field, and what to do.
//! - [`Catalogue`] says which tables and fields each system has;
//!   [`EmulatorCatalogue`] serves the emulators' built-in tables offline.
//!
//! A `Plan` is built by `config::Config::build`.
//!
//! Invariants:
//! - A `Plan` exists only for a config without error-level problems: every
//!   map's systems exist, its key is non-empty and flows the way its fields
//!   do, every lookup names an existing map, `depends_on` has no cycle, and
//!   `Plan::maps` lists each map after the maps it depends on.
//! - Codes never change meaning; a new check gets a new code.
//!
//! Boundary: this module knows nothing of HTTP, sled or the sync engine;
//! it reads plugin files only to inspect them.

pub mod catalogue;
mod error;
pub mod field;
mod live;
mod order;
mod problem;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use crate::odata::Filter;
use crate::plugin::{Inspection, PluginLimits};

pub use catalogue::{Catalogue, EmulatorCatalogue, NoCatalogue, TableLookup};
pub use error::FieldSyntaxError;
pub use field::{Direction, FieldMapping, Literal, Lookup};
pub use live::LiveCatalogue;
pub(crate) use order::dependency_order;
pub use problem::{Problem, ProblemCode, Severity};

/// Which service a system is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SystemKind {
    /// Finance and Operations apps (OData data entities).
    Finops,
    /// Dataverse (Web API).
    Dataverse,
}

/// What wins when both sides changed one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictPolicy {
    /// The left side's change wins.
    LeftWins,
    /// The right side's change wins.
    RightWins,
    /// The change captured last wins.
    #[default]
    LastWriterWins,
}

/// How a map's first start treats the rows the sides hold already: the
/// initial sync. Dual-write copies the pre-existing data of both sides
/// when a table map initializes
/// (<https://learn.microsoft.com/dynamics365/fin-ops-core/dev-itpro/data-entities/dual-write/enable-entity-map>)
/// and asks which app is the "Master for initial sync", finance and
/// operations apps or Dataverse
/// (<https://learn.microsoft.com/training/modules/deploy-project-operations/7-exercise>);
/// Microsoft's guidance loads data into finance and operations apps first
/// and syncs it to Dataverse from there
/// (<https://learn.microsoft.com/dynamics365/fin-ops-core/dev-itpro/data-entities/dual-write/initial-sync-guidance>).
/// So the left side, usually finops, is the master unless the config says
/// otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InitialSync {
    /// Copy the rows of both sides; on a key both hold with different
    /// values, the left side's values win.
    #[default]
    Left,
    /// Copy the rows of both sides; on a key both hold with different
    /// values, the right side's values win.
    Right,
    /// Copy nothing: only changes made after the map's first read sync.
    None,
}

impl InitialSync {
    /// The master side of the copy, `None` when nothing is copied.
    pub fn master(self) -> Option<Side> {
        match self {
            InitialSync::Left => Some(Side::Left),
            InitialSync::Right => Some(Side::Right),
            InitialSync::None => None,
        }
    }

    /// `left`, `right` or `none`, as the config writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            InitialSync::Left => "left",
            InitialSync::Right => "right",
            InitialSync::None => "none",
        }
    }
}

/// How a map's changes from Dataverse reach finops (`mode`).
///
/// Dataverse documents synchronous webhook steps, called inside the
/// operation's transaction, whose failure rolls the operation back and
/// shows the caller the endpoint's error
/// (<https://learn.microsoft.com/power-apps/developer/data-platform/use-webhooks>).
/// finops documents no synchronous outbound hook, so a live map is live
/// from Dataverse only: its finops changes flow asynchronously.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "mode")]
pub enum SyncMode {
    /// Changes are captured and written after the source committed.
    #[default]
    Async,
    /// A Dataverse save commits only once its change was written to finops.
    Live {
        /// What a save does while the map is not running.
        fallback: LiveFallback,
    },
}

impl SyncMode {
    /// True for a live map.
    pub fn is_live(self) -> bool {
        matches!(self, SyncMode::Live { .. })
    }
}

/// What a live map's Dataverse save does while the map is not running
/// (`live_fallback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LiveFallback {
    /// The save fails with a message that says why (dual-write's
    /// behaviour).
    #[default]
    Fail,
    /// The change is queued and the save goes on; catch-up writes it.
    Queue,
}

impl std::str::FromStr for InitialSync {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "left" => Ok(InitialSync::Left),
            "right" => Ok(InitialSync::Right),
            "none" => Ok(InitialSync::None),
            other => Err(format!(
                "`{other}` is not an initial sync: write `left` or `right` (the master side, whose values win on keys both sides hold) or `none` (copy nothing)"
            )),
        }
    }
}

/// What happens on the other side when a row stops matching a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterExit {
    /// Delete the row on the other side.
    #[default]
    Delete,
    /// Leave it there, no longer synced.
    Keep,
}

/// What a plugin step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// Keeps or skips rows.
    Filter,
    /// Changes rows.
    Transform,
}

/// A secret read from the environment; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// OAuth2 client credentials of a system, read and checked at build time.
#[derive(Debug, Clone)]
pub struct AuthPlan {
    /// The token endpoint: `token_url`, or the tenant's v2.0 endpoint.
    pub token_url: String,
    /// The application (client) id.
    pub client_id: String,
    /// The environment variable the secret came from; empty when the client
    /// authenticates with a certificate.
    pub client_secret_env: String,
    /// The secret, `None` when the variable was unset at build time (or the
    /// client authenticates with a certificate).
    pub client_secret: Option<Secret>,
    /// The certificate and its private key, when the client authenticates
    /// with a certificate.
    pub certificate: Option<crate::connector::ClientCertificate>,
}

impl AuthPlan {
    /// What a connector of system `system` authenticates with, asking for
    /// `scope` (the service URL with `/.default`); the error says what is
    /// missing and what to do.
    pub fn client_auth(
        &self,
        system: &str,
        scope: String,
    ) -> Result<crate::connector::ClientAuth, String> {
        use crate::connector::{CertificateCredentials, Credentials};
        if let Some(certificate) = &self.certificate {
            return Ok(CertificateCredentials {
                token_url: self.token_url.clone(),
                client_id: self.client_id.clone(),
                certificate: certificate.clone(),
                scope,
            }
            .into());
        }
        let secret = self.client_secret.as_ref().ok_or_else(|| {
            format!(
                "system `{system}`: the environment variable `{}` is not set; set it to the client secret",
                self.client_secret_env
            )
        })?;
        Ok(Credentials {
            token_url: self.token_url.clone(),
            client_id: self.client_id.clone(),
            client_secret: secret.expose().to_owned(),
            scope,
        }
        .into())
    }
}

/// One connected system.
#[derive(Debug, Clone)]
pub struct SystemPlan {
    /// Its name in `[systems.NAME]`.
    pub name: String,
    /// Which service it is.
    pub kind: SystemKind,
    /// The service's base URL.
    pub url: String,
    /// Client credentials, if the service needs them.
    pub auth: Option<AuthPlan>,
    /// finops data events: the variable named and the shared secret
    /// webhooks must present (`None` when unset at build time).
    pub events_secret: Option<(String, Option<Secret>)>,
    /// The private CA of `ca_file`, read and checked at build time.
    pub ca: Option<crate::connector::TrustedCa>,
    /// Most requests in flight at once (`max_concurrency`).
    pub max_concurrency: usize,
    /// Requests allowed in 5 minutes (`request_limit`).
    pub request_limit: u32,
}

/// One side of a map.
#[derive(Debug, Clone)]
pub struct SidePlan {
    /// The system's name.
    pub system: String,
    /// The system's kind.
    pub kind: SystemKind,
    /// Entity set or data entity.
    pub table: String,
    /// Only rows matching this filter sync.
    pub filter: Option<Filter>,
}

/// Where a plugin step's component came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// A file the config names.
    File(PathBuf),
    /// A version of the host's registry, resolved from the step's
    /// reference.
    Registry(crate::checkpoint::PluginEntry),
}

/// One plugin in a map's chain.
#[derive(Debug, Clone)]
pub struct PluginStep {
    /// Where the component came from.
    pub source: PluginSource,
    /// The component, as read when the plan was built.
    pub bytes: std::sync::Arc<[u8]>,
    /// Which direction's pipeline runs it.
    pub direction: Direction,
    /// Filter or transform; `None` runs whatever it exports.
    pub kind: Option<PluginKind>,
    /// The plugin's settings.
    pub settings: BTreeMap<String, String>,
    /// Its call budget.
    pub limits: PluginLimits,
    /// What the component is, as inspected.
    pub inspection: Inspection,
}

impl PluginStep {
    /// The step's component as messages name it: its file, or its
    /// registry `name@version`.
    pub fn shown(&self) -> String {
        match &self.source {
            PluginSource::File(path) => path.display().to_string(),
            PluginSource::Registry(entry) => entry.id(),
        }
    }

    /// The registry version the step runs, if it came from the registry.
    pub fn registry_id(&self) -> Option<String> {
        match &self.source {
            PluginSource::File(_) => None,
            PluginSource::Registry(entry) => Some(entry.id()),
        }
    }
}

/// One validated table map.
#[derive(Debug, Clone)]
pub struct MapPlan {
    /// The map's name.
    pub name: String,
    /// Its `[[maps]]` entry as written (JSON, keys sorted): the store
    /// numbers each distinct definition of a map as its version.
    pub definition: serde_json::Value,
    /// Left side (usually finops).
    pub left: SidePlan,
    /// Right side (usually Dataverse).
    pub right: SidePlan,
    /// The integration key, in order.
    pub key: Vec<FieldMapping>,
    /// The field mappings, lookups resolved to maps where known.
    pub fields: Vec<FieldMapping>,
    /// Maps that must be running first.
    pub depends_on: Vec<String>,
    /// Legal entities this map syncs; empty for all.
    pub companies: Vec<String>,
    /// Conflict policy.
    pub conflict: ConflictPolicy,
    /// What a filter exit does.
    pub on_filter_exit: FilterExit,
    /// Whether the map starts with the host.
    pub enabled: bool,
    /// Plugin chain, in config order.
    pub plugins: Vec<PluginStep>,
    /// What the map's first start copies (`initial_sync`); the engine reads
    /// it when a side of the map has never been read.
    pub initial_sync: InitialSync,
    /// Async, or live from Dataverse (`mode`, `live_fallback`).
    pub mode: SyncMode,
}

/// One side of a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The left table (usually finops).
    Left,
    /// The right table (usually Dataverse).
    Right,
}

impl Side {
    /// Both sides, left first.
    pub const BOTH: [Side; 2] = [Side::Left, Side::Right];

    /// `left` or `right`, as the checkpoint store names sides.
    pub fn name(self) -> &'static str {
        match self {
            Side::Left => "left",
            Side::Right => "right",
        }
    }

    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Left => Side::Right,
            Side::Right => Side::Left,
        }
    }

    /// The side a direction reads from.
    pub fn source_of(direction: crate::checkpoint::Direction) -> Side {
        match direction {
            crate::checkpoint::Direction::LeftToRight => Side::Left,
            crate::checkpoint::Direction::RightToLeft => Side::Right,
        }
    }

    /// The direction that reads from this side.
    pub fn direction(self) -> crate::checkpoint::Direction {
        match self {
            Side::Left => crate::checkpoint::Direction::LeftToRight,
            Side::Right => crate::checkpoint::Direction::RightToLeft,
        }
    }

    /// 0 for left, 1 for right: an index into per-side arrays.
    pub fn index(self) -> usize {
        match self {
            Side::Left => 0,
            Side::Right => 1,
        }
    }
}

/// The company field of every company-specific finops data entity.
pub const COMPANY_FIELD: &str = "dataAreaId";

impl MapPlan {
    /// The plan of one side.
    pub fn side(&self, side: Side) -> &SidePlan {
        match side {
            Side::Left => &self.left,
            Side::Right => &self.right,
        }
    }

    /// The key pair that stripes the map by company (`dataAreaId = …`,
    /// usually through the `msdyn_company` lookup), if the map has one.
    pub fn company_pair(&self) -> Option<&FieldMapping> {
        self.key
            .iter()
            .find(|pair| pair.left.as_deref() == Some(COMPANY_FIELD))
    }
}

/// The webhook receiver's certificate chain and private key (PEM), read
/// from `[engine] tls_certificate_file` and `tls_private_key_file`.
#[derive(Clone)]
pub struct ReceiverTls {
    /// The certificate chain, PEM.
    pub certificate_pem: Vec<u8>,
    /// The private key, PEM.
    pub key_pem: Vec<u8>,
    /// Where they were read from, for messages.
    pub files: String,
}

impl fmt::Debug for ReceiverTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceiverTls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// A validated config: what the sync engine runs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Systems by name.
    pub systems: BTreeMap<String, SystemPlan>,
    /// Maps, each after the maps it depends on.
    pub maps: Vec<MapPlan>,
    /// How the engine runs (`data` made absolute against the config file).
    pub engine: crate::config::EngineConfig,
    /// The webhook receiver's certificate and key, read at build, when it
    /// serves HTTPS.
    pub receiver_tls: Option<ReceiverTls>,
    /// `[alerts]`: the config's rules and the webhooks they notify.
    pub alerts: crate::alerts::AlertsPlan,
    /// Warning-level problems found while building.
    pub warnings: Vec<Problem>,
}

impl Plan {
    /// The map named `name`.
    pub fn map(&self, name: &str) -> Option<&MapPlan> {
        self.maps.iter().find(|map| map.name == name)
    }
}
