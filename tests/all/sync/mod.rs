//! End-to-end sync: both emulators on `127.0.0.1:0`, the engine between
//! them over real HTTP, checkpoints in real sled on disk, plugins built
//! from `plugins/`.

mod alerts;
mod basics;
mod conflicts;
mod echoes;
mod filters;
mod initial;
mod initial_races;
mod initial_reruns;
mod landed;
mod lifecycle;
mod live;
mod log_vocabulary;
mod lookups;
mod metrics;
mod ordering;
mod plugins;
mod polling;
mod push;
mod queue;
mod races;
mod receiver;
mod reconcile;
mod refusals;
mod replay;
mod restart;
mod striped;
pub(crate) mod swap;
mod tls;
mod versions;
mod webhook;

use std::future::Future;
use std::time::{Duration, Instant};

use dualwrite::checkpoint::Action;
use dualwrite::config::{BuildOptions, Config};
use dualwrite::connector::{
    ConnectorOptions, Credentials, DataverseConnector, FinopsConnector, Key, Row, TrustedCa,
};
use dualwrite::map::{EmulatorCatalogue, Plan};
use dualwrite::sync::{Engine, EngineOptions, RunningEngine};
use dualwrite_emulators::{
    self as emulator, EmulatorConfig, ProtectionLimits, RunningEmulator, Seed, ServiceKind,
};
use serde_json::{Value, json};

/// The maps most tests run: legal entities, customer groups, customers.
pub const MAPS: &str = r#"
[[maps]]
name = "legal-entities"
left = { system = "finops", table = "LegalEntities" }
right = { system = "dataverse", table = "cdm_companies" }
key = ["LegalEntityId > cdm_companycode"]
fields = ["Name > cdm_name"]

[[maps]]
name = "customer-groups"
left = { system = "finops", table = "CustomerGroups" }
right = { system = "dataverse", table = "msdyn_customergroups" }
key = ["CustomerGroupId = msdyn_groupid", "dataAreaId = msdyn_company.cdm_companycode"]
depends_on = ["legal-entities"]
fields = ["Description = msdyn_description"]

[[maps]]
name = "customers"
left = { system = "finops", table = "CustomersV3", filter = "PartyType eq 'Organization'" }
right = { system = "dataverse", table = "accounts", filter = "customertypecode eq 3" }
key = ["CustomerAccount = accountnumber", "dataAreaId = msdyn_company.cdm_companycode"]
depends_on = ["legal-entities", "customer-groups"]
fields = [
  "OrganizationName = name",
  "CreditLimit = creditlimit",
  "CustomerGroupId = msdyn_customergroupid.msdyn_groupid",
  "PrimaryContactPhone = telephone1",
  "> customertypecode default 3",
  "PartyType < default Organization",
]
"#;

/// The secrets of the test config's environment.
fn secret(name: &str) -> Option<String> {
    match name {
        "FINOPS_SECRET" | "DATAVERSE_SECRET" => Some("dualwrite-secret".to_owned()),
        "EVENTS_SECRET" => Some("hook-secret".to_owned()),
        "DATAVERSE_EVENTS_SECRET" => Some("dataverse-hook-secret".to_owned()),
        _ => None,
    }
}

/// Two emulators, connectors to poke them, and an engine between them.
pub struct Sync {
    pub finops: RunningEmulator,
    pub dataverse: RunningEmulator,
    pub fo: FinopsConnector,
    pub dv: DataverseConnector,
    pub dir: tempfile::TempDir,
    pub engine: Option<RunningEngine>,
    maps: String,
    engine_extra: String,
    /// The Dataverse service URL the engine is given, when not the
    /// emulator's own (a proxy in front of it).
    pub dataverse_via: Option<String>,
    /// Lines added to `[systems.dataverse]`.
    pub dataverse_extra: String,
    /// What the engine is started with.
    pub options: EngineOptions,
}

fn emulator_config(tls: bool, trusted_ca: Option<&str>) -> EmulatorConfig {
    EmulatorConfig {
        seed: Seed::None,
        limits: ProtectionLimits::UNLIMITED,
        tls,
        trusted_ca: trusted_ca.map(str::to_owned),
        ..EmulatorConfig::default()
    }
}

/// The CA an emulator serving TLS was made with, as `ca_file` gives it.
fn trusted_ca(emulator: &RunningEmulator) -> Option<TrustedCa> {
    emulator
        .ca_file()
        .map(|file| TrustedCa::read(file).expect("the emulator's CA parses"))
}

/// `ca_file = "…"` for an emulator serving TLS, nothing otherwise.
fn ca_line(emulator: &RunningEmulator) -> String {
    emulator
        .ca_file()
        .map(|file| format!("ca_file = {:?}\n", file.display().to_string()))
        .unwrap_or_default()
}

fn credentials(emulator: &RunningEmulator) -> Credentials {
    Credentials {
        token_url: emulator.token_url(),
        client_id: "dualwrite".into(),
        client_secret: "dualwrite-secret".into(),
        scope: format!("{}/.default", emulator.url()),
    }
}

impl Sync {
    /// Starts both emulators with the legal entity `usmf` in finops, and
    /// the engine on `maps` (plus `engine` lines in `[engine]`).
    pub async fn start(maps: &str, engine: &str) -> Sync {
        Sync::start_serving(maps, engine, false).await
    }

    /// [`Sync::start`] with both emulators serving HTTPS, each system of
    /// the config naming its emulator's CA as `ca_file`.
    pub async fn start_tls(maps: &str, engine: &str) -> Sync {
        Sync::start_serving(maps, engine, true).await
    }

    async fn start_serving(maps: &str, engine: &str, tls: bool) -> Sync {
        Sync::start_with(maps, engine, tls, "").await
    }

    /// [`Sync::start`] with `dataverse` lines in `[systems.dataverse]`.
    pub async fn start_with(maps: &str, engine: &str, tls: bool, dataverse_lines: &str) -> Sync {
        Sync::start_trusting(maps, engine, tls, dataverse_lines, None).await
    }

    /// [`Sync::start_with`], the emulators trusting `receiver_ca` (PEM)
    /// when they post to the engine's receiver.
    pub async fn start_trusting(
        maps: &str,
        engine: &str,
        tls: bool,
        dataverse_lines: &str,
        receiver_ca: Option<&str>,
    ) -> Sync {
        let finops = emulator::start(ServiceKind::Finops, emulator_config(tls, receiver_ca))
            .await
            .expect("finops emulator starts");
        let dataverse = emulator::start(ServiceKind::Dataverse, emulator_config(tls, receiver_ca))
            .await
            .expect("dataverse emulator starts");
        let fo_options = ConnectorOptions {
            ca: trusted_ca(&finops),
            ..ConnectorOptions::default()
        };
        let dv_options = ConnectorOptions {
            ca: trusted_ca(&dataverse),
            ..ConnectorOptions::default()
        };
        let fo = FinopsConnector::new(&finops.service_url(), credentials(&finops), fo_options);
        let dv = DataverseConnector::new(
            &dataverse.service_url(),
            credentials(&dataverse),
            dv_options,
        );
        let mut sync = Sync {
            finops,
            dataverse,
            fo,
            dv,
            dir: tempfile::tempdir().expect("temporary directory"),
            engine: None,
            maps: maps.to_owned(),
            engine_extra: engine.to_owned(),
            dataverse_via: None,
            dataverse_extra: dataverse_lines.to_owned(),
            options: EngineOptions::default(),
        };
        sync.fo_upsert(
            "LegalEntities",
            &[("LegalEntityId", "usmf")],
            json!({"Name": "Contoso USA"}),
        )
        .await;
        sync.start_engine().await;
        sync
    }

    /// [`MAPS`] with finops pushing its events to the engine (on a port kept
    /// across restarts) and Dataverse read at start only: what the engine
    /// sees of Dataverse comes at the restarts the test makes.
    pub async fn start_pushed() -> Sync {
        let port = free_port();
        let sync = Sync::start(
            MAPS,
            &format!("listen = \"127.0.0.1:{port}\"\npoll_interval = \"1h\""),
        )
        .await;
        sync.company_id("usmf").await;
        sync.push_finops_events();
        sync
    }

    /// The config file's text.
    pub fn config_text(&self) -> String {
        // Defaults for the tests, unless the test sets the key itself.
        let mut engine = self.engine_extra.clone();
        // The emulators serve these tests alone: polls may use the whole
        // request limit, so each map polls about as often as it asks.
        for line in [
            "poll_interval = \"100ms\"",
            "lookup_wait = \"30s\"",
            "polling_share = 1.0",
        ] {
            let name = line.split(' ').next().unwrap_or_default();
            if !engine.lines().any(|l| l.starts_with(name)) {
                engine.push('\n');
                engine.push_str(line);
            }
        }
        format!(
            r#"
[engine]
data = "data"
{extra}

[systems.finops]
kind = "finops"
url = "{fo}"
auth = {{ token_url = "{fo_token}", client_id = "dualwrite", client_secret_env = "FINOPS_SECRET" }}
events_secret_env = "EVENTS_SECRET"
{fo_ca}
[systems.dataverse]
kind = "dataverse"
url = "{dv}"
auth = {{ token_url = "{dv_token}", client_id = "dualwrite", client_secret_env = "DATAVERSE_SECRET" }}
{dv_ca}{dv_extra}
{maps}"#,
            extra = engine,
            fo = self.finops.service_url(),
            fo_token = self.finops.token_url(),
            dv = self
                .dataverse_via
                .clone()
                .unwrap_or_else(|| self.dataverse.service_url()),
            dv_token = self.dataverse.token_url(),
            maps = self.maps,
            fo_ca = ca_line(&self.finops),
            dv_ca = ca_line(&self.dataverse),
            dv_extra = self.dataverse_extra,
        )
    }

    /// The validated plan of [`Sync::config_text`].
    pub fn plan(&self) -> Plan {
        let text = self.config_text();
        let config = Config::from_toml("sync.toml", &text).expect("the test config parses");
        let catalogue = EmulatorCatalogue::builtin().expect("catalogue");
        config
            .build(&BuildOptions {
                registry: Default::default(),
                file: "sync.toml".into(),
                base_dir: self.dir.path().to_path_buf(),
                catalogue: &catalogue,
                env: &secret,
            })
            .unwrap_or_else(|problems| panic!("the test config is valid: {problems:#?}"))
    }

    /// Starts the engine and waits for its initial copy.
    pub async fn start_engine(&mut self) {
        self.start_engine_only().await;
        eventually("the initial copy", || async { self.engine().initialized() }).await;
    }

    /// Starts the engine without waiting for anything (a map may never
    /// finish its initial copy: a parked or failed one).
    pub async fn start_engine_only(&mut self) {
        let engine = Engine::start(self.plan(), self.options.clone())
            .await
            .expect("the engine starts");
        self.engine = Some(engine);
    }

    /// Starts the engine with its config, so that it takes hot swaps, on
    /// `store` (whose registry its maps may name).
    pub async fn start_engine_swappable(&mut self, store: dualwrite::checkpoint::Checkpoints) {
        let text = self.config_text();
        let config = Config::from_toml("sync.toml", &text).expect("the test config parses");
        let catalogue = EmulatorCatalogue::builtin().expect("catalogue");
        let source = dualwrite::sync::ConfigSource {
            config,
            file: "sync.toml".into(),
            base_dir: self.dir.path().to_path_buf(),
            catalogue: std::sync::Arc::new(catalogue),
            env: std::sync::Arc::new(secret),
        };
        let options = EngineOptions {
            store: Some(store),
            source: Some(std::sync::Arc::new(std::sync::Mutex::new(Some(source)))),
            ..self.options.clone()
        };
        let engine = Engine::start(self.plan(), options)
            .await
            .expect("the engine starts");
        self.engine = Some(engine);
    }

    pub async fn stop_engine(&mut self) {
        if let Some(engine) = self.engine.take() {
            engine.shutdown().await.expect("the engine stops cleanly");
        }
    }

    /// Has finops push the data events of `CustomersV3` to the engine.
    pub fn push_finops_events(&self) {
        let url = self
            .engine()
            .webhook_url("finops")
            .expect("webhook receiver");
        self.finops.subscribe(emulator::Subscription {
            url,
            entities: vec!["CustomersV3".into()],
            headers: secret_header(),
        });
    }

    pub fn engine(&self) -> &RunningEngine {
        self.engine.as_ref().expect("the engine runs")
    }

    /// Creates or updates a finops row.
    pub async fn fo_upsert(&self, entity: &str, key: &[(&str, &str)], row: Value) {
        let key = key.iter().fold(Key::new(), |k, (f, v)| k.text(f, v));
        self.fo
            .upsert(entity, &key, &object(row))
            .await
            .unwrap_or_else(|e| panic!("finops upsert of {entity}{key}: {e}"));
    }

    pub async fn fo_get(&self, entity: &str, key: &[(&str, &str)]) -> Option<Row> {
        let key = key.iter().fold(Key::new(), |k, (f, v)| k.text(f, v));
        self.fo.get(entity, &key).await.expect("finops get")
    }

    pub async fn fo_delete(&self, entity: &str, key: &[(&str, &str)]) {
        let key = key.iter().fold(Key::new(), |k, (f, v)| k.text(f, v));
        self.fo.delete(entity, &key).await.expect("finops delete");
    }

    /// Creates or updates a Dataverse row by alternate key.
    pub async fn dv_upsert(&self, table: &str, key: Key, row: Value) {
        self.dv
            .upsert(table, &key, &object(row))
            .await
            .unwrap_or_else(|e| panic!("dataverse upsert of {table}{key}: {e}"));
    }

    pub async fn dv_get(&self, table: &str, key: Key) -> Option<Row> {
        self.dv.get(table, &key).await.expect("dataverse get")
    }

    pub async fn dv_delete(&self, table: &str, key: Key) {
        self.dv.delete(table, &key).await.expect("dataverse delete");
    }

    /// The id of company `code` in Dataverse, once legal entities synced.
    pub async fn company_id(&self, code: &str) -> String {
        eventually(&format!("company {code} in Dataverse"), || async {
            self.dv_get("cdm_companies", Key::single("cdm_companycode", code))
                .await
                .is_some()
        })
        .await;
        self.dv_get("cdm_companies", Key::single("cdm_companycode", code))
            .await
            .and_then(|row| {
                row.get("cdm_companyid")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .expect("company id")
    }

    /// The activity lines of `map` whose `what` is `what`.
    pub fn activity(&self, map: &str, what: Action) -> Vec<dualwrite::checkpoint::Activity> {
        self.engine()
            .checkpoints()
            .activity()
            .expect("activity log")
            .into_iter()
            .filter(|a| a.map == map && a.what == what)
            .collect()
    }

    pub async fn shutdown(mut self) {
        if let Some(engine) = &self.engine {
            every_line_says_its_step(engine);
        }
        self.stop_engine().await;
        self.finops.shutdown().await.expect("finops stops");
        self.dataverse.shutdown().await.expect("dataverse stops");
    }
}

/// `fields` of a Dataverse row of company `usmf` (the `msdyn_company`
/// lookup bound by the company code).
pub fn in_usmf(fields: Value) -> Value {
    let mut row = object(fields);
    DataverseConnector::bind(
        &mut row,
        "msdyn_company",
        "cdm_companies",
        &Key::single("cdm_companycode", "usmf"),
    );
    Value::Object(row)
}

/// The header carrying the receiver's shared secret, as a subscription
/// sends it with each delivery.
pub fn secret_header() -> std::collections::BTreeMap<String, String> {
    [("x-dualwrite-secret".to_owned(), "hook-secret".to_owned())].into()
}

/// A free port on `127.0.0.1`, for a receiver that keeps its address
/// across restarts of the engine.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

pub fn object(value: Value) -> Row {
    value.as_object().cloned().unwrap_or_default()
}

/// Serves a Dataverse pre-commit hook (`PUT /admin/hooks/{table}`) on
/// `127.0.0.1:0` that answers each pending change with `answer`; returns
/// its URL.
pub async fn hook<F, Fut>(answer: F) -> String
where
    F: Fn(Value) -> Fut + Clone + Send + std::marker::Sync + 'static,
    Fut: Future<Output = (axum::http::StatusCode, &'static str)> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("hook listens");
    let addr = listener.local_addr().expect("hook address");
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move |axum::Json(change): axum::Json<Value>| answer(change)),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/")
}

/// Waits until `check` holds, up to 30 s; panics naming `what`.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every line the test's engine logged names the step that decided it and
/// says what happened; an error says its class: checked at the end of every
/// sync test, so every outcome any test makes is checked.
fn every_line_says_its_step(engine: &RunningEngine) {
    use dualwrite::checkpoint::{Action, ErrorClass, Step};
    for line in engine.checkpoints().activity().expect("the activity log") {
        assert!(line.step.is_some(), "a line without its step: {line:?}");
        assert!(line.at.is_some(), "a line without its time: {line:?}");
        assert!(
            !line.detail.is_empty(),
            "a line without a message: {line:?}"
        );
        assert!(
            line.map.is_empty() || line.map_version.is_some(),
            "a line without its map's version: {line:?}"
        );
        match line.what {
            // An admin's park (`resume --queued park`) is no error.
            Action::Parked if line.step != Some(Step::Admin) => {
                assert!(line.class.is_some(), "an error without its class: {line:?}");
            }
            Action::ConflictLost => assert_eq!(line.class, Some(ErrorClass::Conflict), "{line:?}"),
            _ => {}
        }
    }
}

/// Waits until the engine has nothing queued and `quiet` has passed with
/// no new capture.
pub async fn settle(sync: &Sync) {
    eventually("the queues to drain", || async {
        sync.engine().queued() == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    eventually("the queues to drain again", || async {
        sync.engine().queued() == 0
    })
    .await;
}

/// A field of a row as text.
pub fn text(row: &Row, field: &str) -> String {
    match row.get(field) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "<missing>".into(),
    }
}

/// A certificate for the engine's receiver, written into `dir`: the
/// `[engine]` lines naming it, and the certificate (whose `ca_pem` a client
/// of the receiver trusts).
pub fn receiver_certificate(dir: &std::path::Path) -> (String, dualwrite_emulators::GeneratedTls) {
    let tls = dualwrite_emulators::GeneratedTls::generate().expect("a certificate");
    let certificate = dir.join("receiver.pem");
    let key = dir.join("receiver-key.pem");
    std::fs::write(&certificate, &tls.server_pem).expect("written");
    std::fs::write(&key, &tls.server_key_pem).expect("written");
    let lines = format!(
        "tls_certificate_file = {:?}\ntls_private_key_file = {:?}",
        certificate.display().to_string(),
        key.display().to_string()
    );
    (lines, tls)
}
