//! The config file: TOML parsed into raw structs ([`Config`]), then built
//! into a validated [`Plan`](crate::map::Plan) before any I/O.
//!
//! - [`Config`] mirrors the file: `[systems.NAME]` ([`SystemConfig`],
//!   [`AuthConfig`]) and `[[maps]]` ([`MapConfig`], [`SideConfig`],
//!   [`PluginConfig`]). Every struct denies unknown keys.
//! - [`Config::build`] checks everything it can without a network (the
//!   systems' tables come from a [`Catalogue`](crate::map::Catalogue)) and
//!   returns the `Plan` or every [`Problem`](crate::map::Problem) it found.
//! - [`validate_file`] reads, parses and builds, turning read and parse
//!   failures into problems too, as `dualwrite map validate` prints them.
//!
//! ```
//! use dualwrite::config::{BuildOptions, Config};
//! use dualwrite::map::{Direction, EmulatorCatalogue};
//!
//! let text = r#"
//! [systems.finops]
//! kind = "finops"
//! url = "http://127.0.0.1:8081"
//!
//! [systems.dataverse]
//! kind = "dataverse"
//! url = "http://127.0.0.1:8082"
//!
//! [[maps]]
//! name = "currencies"
//! left = { system = "finops", table = "Currencies" }
//! right = { system = "dataverse", table = "transactioncurrencies" }
//! key = ["CurrencyCode = isocurrencycode"]
//! fields = ["Name = currencyname", "> exchangerate default 1.0"]
//! "#;
//! let config = Config::from_toml("maps.toml", text).unwrap();
//! let catalogue = EmulatorCatalogue::builtin().unwrap();
//! let plan = config
//!     .build(&BuildOptions {
//!         registry: Default::default(),
//!         file: "maps.toml".into(),
//!         base_dir: ".".into(),
//!         catalogue: &catalogue,
//!         env: &|name| std::env::var(name).ok(),
//!     })
//!     .unwrap();
//! let currencies = plan.map("currencies").unwrap();
//! assert_eq!(currencies.fields[0].direction, Direction::Both);
//! assert_eq!(currencies.fields[1].left, None);
//! ```
//!
//! Invariants:
//! - A secret is never in the file: `auth.client_secret_env` names the
//!   environment variable, read once in `build`, kept in a `Secret` whose
//!   `Debug` is redacted. A certificate's private key is read from its PEM
//!   file once in `build` and never printed.
//! - `build` reports every problem, not the first.
//!
//! Boundary: no HTTP, no sled; the only files read are the config and the
//! files it names (plugin components, `ca_file`, client certificates).

mod alerts;
#[cfg(test)]
mod alerts_tests;
mod auth;
mod build;
mod checks;
mod error;
mod in_force;
#[cfg(test)]
mod initial_sync_tests;
mod live;
#[cfg(test)]
mod live_tests;
mod log;
mod lookups;
mod plugins;
mod queue;
mod receiver;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::map::{
    Catalogue, ConflictPolicy, Direction, FilterExit, Plan, PluginKind, Problem, ProblemCode,
    SystemKind,
};
use crate::plugin::PluginLimits;

pub use alerts::{AlertsConfig, WebhookConfig};
pub use build::{BuildOptions, PluginRegistry};
pub use error::ConfigError;
pub use in_force::{InForce, in_force};
pub use log::LogConfig;
pub use queue::QueueConfig;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Systems by name.
    #[serde(default)]
    pub systems: BTreeMap<String, SystemConfig>,
    /// Table maps, in file order.
    #[serde(default)]
    pub maps: Vec<MapConfig>,
    /// How the sync engine runs; every key has a default.
    #[serde(default)]
    pub engine: EngineConfig,
    /// `[alerts]`: rules, webhooks, how often they are evaluated.
    #[serde(default)]
    pub alerts: AlertsConfig,
}

/// `[engine]`: where the host keeps its checkpoints and how often it looks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// The sled directory; relative paths are relative to the config file.
    #[serde(default = "default_data")]
    pub data: PathBuf,
    /// How often Dataverse change tracking is polled, and finops reconciled
    /// when no data events arrive (`1s`).
    #[serde(default = "default_poll", with = "humantime_serde")]
    pub poll_interval: std::time::Duration,
    /// How often a side is polled when its changes arrive by webhook (finops
    /// data events, Dataverse steps): the catch-all for an event lost on
    /// the way (`30s`).
    #[serde(default = "default_catch_all", with = "humantime_serde")]
    pub catch_all_interval: std::time::Duration,
    /// Most changes one write batch carries: from 1 to 1,000, what one
    /// `$batch` carries; any other value is a `DW022 batch-size` error.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Write batches of one map and direction in flight at once (`4`);
    /// changes of one key still apply in capture order.
    #[serde(default = "default_batches_in_flight")]
    pub batches_in_flight: usize,
    /// How long a row waits for the row its lookup points at before it is
    /// parked (`5m`).
    #[serde(default = "default_lookup_wait", with = "humantime_serde")]
    pub lookup_wait: std::time::Duration,
    /// The share of each system's `request_limit` that polls of all maps
    /// may use together (`0.1`); polls are spread to stay within it.
    #[serde(default = "default_polling_share")]
    pub polling_share: f64,
    /// Address of the webhook receiver (`POST /events/{system}`): finops
    /// data events and Dataverse webhooks; absent for none.
    #[serde(default)]
    pub listen: Option<std::net::SocketAddr>,
    /// The receiver's certificate chain (PEM) when it serves HTTPS, as the
    /// services require of a webhook; with `tls_private_key_file`.
    #[serde(default)]
    pub tls_certificate_file: Option<PathBuf>,
    /// The private key of `tls_certificate_file` (PEM); absent when that
    /// file holds it too.
    #[serde(default)]
    pub tls_private_key_file: Option<PathBuf>,
    /// The URL the services reach the receiver at (`https://…`, or
    /// `http://` to a loopback host; `DW038 public-url` otherwise): a
    /// Dataverse system with `events_secret_env` gets its webhook
    /// registered at `{public_url}/events/{system}`. Absent: no webhook is
    /// registered and Dataverse is polled.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Address of the admin API (`/api/v1`, for `dualwrite map …`), such
    /// as `127.0.0.1:7070`; its bearer token comes from
    /// `DUALWRITE_ADMIN_TOKEN`. An address other than loopback needs TLS
    /// (`tls_certificate_file`). Absent: no admin API.
    #[serde(default)]
    pub admin: Option<std::net::SocketAddr>,
    /// `[engine.queue]`: how much each map's queue may hold per direction
    /// before capture waits (the source keeps the changes).
    #[serde(default)]
    pub queue: QueueConfig,
    /// `[engine.log]`: how much of the activity log is kept.
    #[serde(default)]
    pub log: LogConfig,
    /// An ed25519 public key (PEM): the admin API imports only packages
    /// whose signature verifies with it. Absent: a package's hashes and
    /// contract are checked, its signature by `dualwrite import --key`.
    #[serde(default)]
    pub package_key_file: Option<PathBuf>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            data: default_data(),
            poll_interval: default_poll(),
            catch_all_interval: default_catch_all(),
            batch_size: default_batch(),
            batches_in_flight: default_batches_in_flight(),
            lookup_wait: default_lookup_wait(),
            polling_share: default_polling_share(),
            listen: None,
            tls_certificate_file: None,
            tls_private_key_file: None,
            public_url: None,
            admin: None,
            queue: QueueConfig::default(),
            log: LogConfig::default(),
            package_key_file: None,
        }
    }
}

fn default_data() -> PathBuf {
    PathBuf::from("dualwrite-data")
}

fn default_poll() -> std::time::Duration {
    std::time::Duration::from_secs(1)
}

fn default_polling_share() -> f64 {
    0.1
}

fn default_catch_all() -> std::time::Duration {
    std::time::Duration::from_secs(30)
}

fn default_batch() -> usize {
    500
}

fn default_batches_in_flight() -> usize {
    4
}

fn default_lookup_wait() -> std::time::Duration {
    std::time::Duration::from_secs(300)
}

/// `[systems.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemConfig {
    /// `finops` or `dataverse`.
    pub kind: SystemKind,
    /// Base URL of the service.
    pub url: String,
    /// OAuth2 client credentials.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// The environment variable holding the shared secret webhooks must
    /// present (`X-Dualwrite-Secret` header or `code` query parameter).
    /// finops: its data events arrive by webhook and row versions are
    /// polled at `engine.catch_all_interval`. Dataverse, with
    /// `engine.listen` and `engine.public_url`: the host registers its own
    /// webhook (a service endpoint sending the secret in the header) and
    /// steps for the maps it runs, and change tracking is read at
    /// `engine.catch_all_interval`.
    #[serde(default)]
    pub events_secret_env: Option<String>,
    /// A PEM file of the private CA that signed the service's certificate,
    /// trusted besides the system roots; relative paths are relative to the
    /// config file.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Most requests in flight at once against this system, from 1 to 52
    /// (`52`, what Dataverse allows per user); throttling lowers it for a
    /// while. Any other value is a `DW033 concurrency` error.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// Requests this system allows the application user in 5 minutes
    /// (`6000`, Dataverse's service protection limit); the engine's polls
    /// of all maps stay within `engine.polling_share` of it.
    #[serde(default = "default_request_limit")]
    pub request_limit: u32,
}

fn default_max_concurrency() -> usize {
    MAX_CONCURRENCY
}

fn default_request_limit() -> u32 {
    REQUEST_LIMIT
}

/// Requests one user may send Dataverse in 5 minutes: "6,000 within the
/// 5 minute sliding window"
/// (<https://learn.microsoft.com/power-apps/developer/data-platform/api-limits>).
/// finops publishes no such number for its resource-based limits; the
/// retired user-based ones were the same.
pub const REQUEST_LIMIT: u32 = 6000;

/// The window of [`REQUEST_LIMIT`].
pub const REQUEST_WINDOW: std::time::Duration = std::time::Duration::from_secs(300);

/// The most requests in flight one system may be given: Dataverse allows
/// 52 concurrent requests per user
/// (<https://learn.microsoft.com/power-apps/developer/data-platform/api-limits>);
/// finops documented the same number for its user-based limits
/// (<https://learn.microsoft.com/dynamics365/fin-ops-core/dev-itpro/data-entities/service-protection-api-limits>).
pub const MAX_CONCURRENCY: usize = 52;

/// The most write batches of one map and direction in flight at once.
pub const MAX_BATCHES_IN_FLIGHT: usize = 32;

/// `auth`: the client credentials grant of the Microsoft identity platform
/// (see the `auth` module of the connectors for the pages it follows).
///
/// The token endpoint is `token_url` when set (the emulators), else
/// `{authority_host}/{tenant}/oauth2/v2.0/token`. The client proves who it
/// is with a secret (`client_secret_env`) or a certificate
/// (`certificate_file`, with `private_key_file` or the key in the same
/// PEM), never both.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The directory (tenant) id, a GUID or a domain such as
    /// `contoso.onmicrosoft.com`.
    #[serde(default)]
    pub tenant: Option<String>,
    /// The Microsoft Entra authority host of the tenant's cloud
    /// (default `https://login.microsoftonline.com`; national clouds have
    /// their own).
    #[serde(default)]
    pub authority_host: Option<String>,
    /// The token endpoint itself; overrides the tenant's.
    #[serde(default)]
    pub token_url: Option<String>,
    /// The application (client) id.
    pub client_id: String,
    /// The environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// The certificate registered for the application (PEM; the first
    /// certificate of the file is the client's); relative paths are
    /// relative to the config file.
    #[serde(default)]
    pub certificate_file: Option<PathBuf>,
    /// The certificate's RSA private key (PEM, unencrypted PKCS#8 or
    /// PKCS#1); absent when `certificate_file` holds it too.
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
}

/// One `[[maps]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapConfig {
    /// Unique name.
    pub name: String,
    /// The entry as written, as JSON with its keys sorted: what the map's
    /// version is the fingerprint of (set by [`Config::from_toml`]).
    #[serde(skip)]
    pub definition: serde_json::Value,
    /// Left side.
    pub left: SideConfig,
    /// Right side.
    pub right: SideConfig,
    /// Integration key pairs, `"LEFT = right"`.
    #[serde(default)]
    pub key: Vec<String>,
    /// Field mappings (see `map::field` for the grammar).
    #[serde(default)]
    pub fields: Vec<String>,
    /// Maps that must run first.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Company striping: the legal entities (`dataAreaId` values) this map
    /// syncs; empty for all.
    #[serde(default)]
    pub companies: Vec<String>,
    /// `left-wins`, `right-wins` or `last-writer-wins` (the default).
    #[serde(default)]
    pub conflict: ConflictPolicy,
    /// `delete` (the default) or `keep`.
    #[serde(default)]
    pub on_filter_exit: FilterExit,
    /// Whether the map starts with the host (default `true`).
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// What the map's first start copies: `left` or `right` (copy both
    /// sides' rows, the named side's values winning on keys both hold) or
    /// `none` (only later changes). Default `left`, or the side that flows
    /// on a one-way map; checked in `build` (`DW040 initial-sync`).
    #[serde(default)]
    pub initial_sync: Option<String>,
    /// `async` (the default) or `live`: a Dataverse save commits only
    /// after its change was written to finops; checked in `build`
    /// (`DW045 live-mode`).
    #[serde(default)]
    pub mode: Option<String>,
    /// A live map's saves while it is not running: `fail` (the default)
    /// or `queue`.
    #[serde(default)]
    pub live_fallback: Option<String>,
    /// Plugin chain.
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
}

fn enabled_by_default() -> bool {
    true
}

/// `left = { system, table, filter }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SideConfig {
    /// A name from `[systems]`.
    pub system: String,
    /// Entity set or data entity.
    pub table: String,
    /// OData `$filter` text; empty or absent for every row.
    #[serde(default)]
    pub filter: Option<String>,
}

/// One plugin step: a component file (`path`) or a registry plugin
/// (`plugin`), not both.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The component file; relative paths are relative to the config file.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// A plugin of the host's registry: `name`, `name@version`, or
    /// `name@REQ` with a semver requirement (`^1.2`); the highest version
    /// that meets it runs.
    #[serde(default)]
    pub plugin: Option<String>,
    /// `>` or `<` (or `=` for both pipelines).
    pub direction: Direction,
    /// Settings handed to the plugin.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// `filter` or `transform`; absent runs whatever it exports.
    #[serde(default)]
    pub kind: Option<PluginKind>,
    /// Call budget; absent for the defaults.
    #[serde(default)]
    pub limits: Option<PluginLimits>,
}

impl Config {
    /// Parses TOML text; `path` names the file in errors.
    pub fn from_toml(path: &str, text: &str) -> Result<Self, ConfigError> {
        let mut config: Config = parse_toml(path, text)?;
        set_definitions(&mut config.maps, text);
        Ok(config)
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&path.display().to_string(), &text)
    }
}

/// Reads, parses and builds `path` against `catalogue`, with secrets from
/// the process environment. Read and parse failures come back as
/// `DW000 config-syntax` problems. A map naming a registry plugin is
/// resolved against the store in `[engine] data`, opened for the purpose:
/// a store a running host holds cannot be, which is a `DW044` problem.
pub fn validate_file(path: &Path, catalogue: &dyn Catalogue) -> Result<Plan, Vec<Problem>> {
    let config = load_file(path)?;
    let base_dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    if !config.uses_registry() {
        return build_file(path, &config, catalogue, PluginRegistry::Absent);
    }
    let data = config.data_dir(&base_dir);
    match crate::checkpoint::Checkpoints::open(&data) {
        Ok(store) => build_file(path, &config, catalogue, PluginRegistry::Store(&store)),
        Err(error) => {
            let mut problem = Problem::new(
                ProblemCode::PluginReference,
                format!(
                    "a map names a registry plugin, and the host's store in {} cannot be opened to resolve it: {error}",
                    data.display()
                ),
                "a running host holds its store: check the maps through it with `dualwrite map apply --dry-run FILE`",
            );
            problem.file = path.display().to_string();
            Err(vec![problem])
        }
    }
}

/// [`validate_file`] with the registry given.
pub fn validate_file_in(
    path: &Path,
    catalogue: &dyn Catalogue,
    registry: PluginRegistry<'_>,
) -> Result<Plan, Vec<Problem>> {
    build_file(path, &load_file(path)?, catalogue, registry)
}

/// Reads and parses `path`; a failure as a `DW000 config-syntax` problem.
pub fn load_file(path: &Path) -> Result<Config, Vec<Problem>> {
    Config::load(path).map_err(|error| {
        let mut problem = Problem::new(
            ProblemCode::ConfigSyntax,
            error.to_string(),
            "fix the file; every key is listed in the config section of the README",
        );
        problem.file = path.display().to_string();
        vec![problem]
    })
}

/// Builds `config`, read from `path` (which names it in problems and
/// whose folder its relative paths start from), against `catalogue` and
/// `registry`, with secrets from the process environment: a config with
/// the applied map versions in force ([`in_force`]).
pub fn validate_config_in(
    path: &Path,
    config: &Config,
    catalogue: &dyn Catalogue,
    registry: PluginRegistry<'_>,
) -> Result<Plan, Vec<Problem>> {
    build_file(path, config, catalogue, registry)
}

fn build_file(
    path: &Path,
    config: &Config,
    catalogue: &dyn Catalogue,
    registry: PluginRegistry<'_>,
) -> Result<Plan, Vec<Problem>> {
    let base_dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let env = |name: &str| std::env::var(name).ok();
    config.build(&BuildOptions {
        registry,
        file: path.display().to_string(),
        base_dir,
        catalogue,
        env: &env,
    })
}

/// A file of `[[maps]]` entries only (`dualwrite map apply FILE`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MapsFile {
    #[serde(default)]
    maps: Vec<MapConfig>,
}

/// Parses the `[[maps]]` entries of `text` (`path` names the file in
/// errors), each with its definition as [`Config::from_toml`] sets it.
pub fn parse_maps(path: &str, text: &str) -> Result<Vec<MapConfig>, ConfigError> {
    let mut file: MapsFile = parse_toml(path, text)?;
    set_definitions(&mut file.maps, text);
    Ok(file.maps)
}

/// `text` read as a `T`; an error names `path`, its line and column.
fn parse_toml<T: serde::de::DeserializeOwned>(path: &str, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|error| {
        let (line, column) = error
            .span()
            .map(|span| line_column(text, span.start))
            .unwrap_or((0, 0));
        ConfigError::Parse {
            path: path.to_string(),
            line,
            column,
            message: error.message().to_string(),
        }
    })
}

/// Sets each map's definition: its entry of `text` as written, its keys
/// sorted (TOML tables read into sorted maps).
fn set_definitions(maps: &mut [MapConfig], text: &str) {
    let raw: toml::Value = toml::from_str(text).unwrap_or(toml::Value::Boolean(false));
    if let Some(entries) = raw.get("maps").and_then(toml::Value::as_array) {
        for (map, entry) in maps.iter_mut().zip(entries) {
            map.definition = serde_json::to_value(entry).unwrap_or_default();
        }
    }
}

impl MapConfig {
    /// The map a stored definition (a map version's JSON) describes.
    pub fn from_definition(definition: &serde_json::Value) -> Result<MapConfig, String> {
        let mut map: MapConfig =
            serde_json::from_value(definition.clone()).map_err(|error| error.to_string())?;
        map.definition = definition.clone();
        Ok(map)
    }
}

impl Config {
    /// Puts each of `maps` in place of the entry of its name, or after the
    /// last when there is none.
    pub fn merge_maps(&mut self, maps: &[MapConfig]) {
        for map in maps {
            match self.maps.iter_mut().find(|m| m.name == map.name) {
                Some(slot) => *slot = map.clone(),
                None => self.maps.push(map.clone()),
            }
        }
    }

    /// Whether a map names a registry plugin (`plugin = "name@…"`).
    pub fn uses_registry(&self) -> bool {
        self.maps
            .iter()
            .flat_map(|map| &map.plugins)
            .any(|step| step.plugin.is_some())
    }

    /// The store's directory, `[engine] data`, relative paths from
    /// `base_dir` (the config file's folder).
    pub fn data_dir(&self, base_dir: &Path) -> PathBuf {
        match self.engine.data.is_relative() {
            true => base_dir.join(&self.engine.data),
            false => self.engine.data.clone(),
        }
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |at| at + 1) + 1;
    (line, column)
}
