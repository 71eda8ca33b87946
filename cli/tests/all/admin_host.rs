//! The world of the admin API's end-to-end tests: two emulators, a config
//! of two maps (`customers` depending on `legal-entities`), a real
//! `dualwrite run` process serving the API, and `dualwrite map …` run
//! against it; seeding and counting many rows, and a pre-commit [`Hook`]
//! that refuses and records writes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use dualwrite::connector::{
    BatchMode, ConnectorOptions, DataverseConnector, FinopsConnector, Key, Query, Write,
    WriteOutcome,
};
use dualwrite_emulators::{self as emulator, RunningEmulator, ServiceKind};
use serde_json::{Value, json};

use crate::hosts::{credentials, systems};
use crate::support::empty_config;

pub use crate::hosts::{ADMIN_TOKEN as TOKEN, Host, map_cli};

/// Two maps, `customers` depending on `legal-entities`; `enabled` and
/// `engine` lines as the test needs.
pub fn config(
    finops: &RunningEmulator,
    dataverse: &RunningEmulator,
    enabled: bool,
    engine: &str,
) -> String {
    let systems = systems(finops, dataverse);
    format!(
        r#"
[engine]
data = "data"
poll_interval = "100ms"
polling_share = 1.0
admin = "127.0.0.1:0"
{engine}
{systems}
[[maps]]
name = "legal-entities"
enabled = {enabled}
left = {{ system = "finops", table = "LegalEntities" }}
right = {{ system = "dataverse", table = "cdm_companies" }}
key = ["LegalEntityId > cdm_companycode"]
fields = ["Name > cdm_name"]

[[maps]]
name = "customers"
enabled = {enabled}
left = {{ system = "finops", table = "CustomersV3" }}
right = {{ system = "dataverse", table = "accounts" }}
key = ["CustomerAccount = accountnumber", "dataAreaId = msdyn_company.cdm_companycode"]
depends_on = ["legal-entities"]
fields = ["OrganizationName = name"]
"#
    )
}

/// Each map's state, from `map status --json` (a host or a store).
pub fn states(output: &str) -> Vec<(String, String)> {
    let all: Value = serde_json::from_str(output).expect("status --json prints JSON");
    all.as_array()
        .expect("a list")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_owned(),
                s["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

pub fn state_of(host: &Host, map: &str) -> String {
    let (code, out, err) = host.map(&["status", map, "--json"]);
    assert_eq!(code, 0, "{err}");
    states(&out)
        .into_iter()
        .find(|(name, _)| name == map)
        .map(|(_, state)| state)
        .unwrap_or_default()
}

pub async fn wait_for(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub struct World {
    pub finops: RunningEmulator,
    pub dataverse: RunningEmulator,
    pub fo: FinopsConnector,
    pub dv: DataverseConnector,
    pub dir: tempfile::TempDir,
    pub file: PathBuf,
}

impl World {
    pub async fn new(enabled: bool, engine: &str) -> World {
        World::with_dataverse(empty_config(), enabled, engine).await
    }

    /// A world whose Dataverse emulator runs with `dataverse` (its roles,
    /// say).
    pub async fn with_dataverse(
        dataverse: emulator::EmulatorConfig,
        enabled: bool,
        engine: &str,
    ) -> World {
        let finops = emulator::start(ServiceKind::Finops, empty_config())
            .await
            .expect("finops");
        let dataverse = emulator::start(ServiceKind::Dataverse, dataverse)
            .await
            .expect("dataverse");
        let options = ConnectorOptions::default();
        let fo = FinopsConnector::new(&finops.service_url(), credentials(&finops), options.clone());
        let dv =
            DataverseConnector::new(&dataverse.service_url(), credentials(&dataverse), options);
        let dir = tempfile::tempdir().expect("temporary directory");
        let file = dir.path().join("sync.toml");
        std::fs::write(&file, config(&finops, &dataverse, enabled, engine))
            .expect("config written");
        let world = World {
            finops,
            dataverse,
            fo,
            dv,
            dir,
            file,
        };
        world.legal_entity("usmf").await;
        world
    }

    pub async fn legal_entity(&self, id: &str) {
        self.fo
            .upsert(
                "LegalEntities",
                &Key::single("LegalEntityId", id),
                &row(json!({"Name": format!("Company {id}")})),
            )
            .await
            .expect("legal entity");
    }

    pub async fn customer(&self, company: &str, account: &str, name: &str) {
        self.fo
            .upsert(
                "CustomersV3",
                &Key::new()
                    .text("dataAreaId", company)
                    .text("CustomerAccount", account),
                &row(json!({"OrganizationName": name})),
            )
            .await
            .expect("customer");
    }

    pub async fn account_name(&self, account: &str) -> Option<String> {
        let rows = self
            .dv
            .query_all("accounts", &Query::default())
            .await
            .unwrap_or_default();
        rows.iter()
            .find(|r| r["accountnumber"] == account)
            .and_then(|r| r["name"].as_str().map(str::to_owned))
    }

    pub async fn shutdown(self) {
        self.finops.shutdown().await.expect("finops stops");
        self.dataverse.shutdown().await.expect("dataverse stops");
    }
}

pub fn row(value: Value) -> serde_json::Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

/// Seeding and reading many rows, for the tests that count writes.
impl World {
    /// Creates finops customers of `usmf`, `(account, name)`, 500 to a
    /// `$batch`.
    pub async fn customers(&self, rows: &[(String, String)]) {
        for chunk in rows.chunks(500) {
            let writes: Vec<Write> = chunk
                .iter()
                .map(|(account, name)| Write::Upsert {
                    table: "CustomersV3".into(),
                    key: customer_key(account),
                    row: row(json!({"OrganizationName": name})),
                })
                .collect();
            applied(
                self.fo
                    .write_batch(&writes, BatchMode::ContinueOnError)
                    .await,
            );
        }
    }

    /// Creates Dataverse accounts of `usmf`, `(account, name)`, 500 to a
    /// `$batch`.
    pub async fn accounts(&self, rows: &[(String, String)]) {
        for chunk in rows.chunks(500) {
            let writes: Vec<Write> = chunk
                .iter()
                .map(|(account, name)| Write::Upsert {
                    table: "accounts".into(),
                    key: Key::single("accountnumber", account),
                    row: account_row(name),
                })
                .collect();
            applied(
                self.dv
                    .write_batch(&writes, BatchMode::ContinueOnError)
                    .await,
            );
        }
    }

    /// Sets the name of Dataverse account `account` (made in `usmf` when
    /// missing).
    pub async fn account(&self, account: &str, name: &str) {
        self.dv
            .upsert(
                "accounts",
                &Key::single("accountnumber", account),
                &account_row(name),
            )
            .await
            .expect("account");
    }

    /// Deletes finops customer `account` of `usmf`.
    pub async fn delete_customer(&self, account: &str) {
        self.fo
            .delete("CustomersV3", &customer_key(account))
            .await
            .expect("customer deleted");
    }

    /// Deletes Dataverse account `account`.
    pub async fn delete_account(&self, account: &str) {
        self.dv
            .delete("accounts", &Key::single("accountnumber", account))
            .await
            .expect("account deleted");
    }

    /// Customer `account`'s name in finops (company `usmf`) and in
    /// Dataverse, read by key; `None` where it is missing.
    pub async fn names_of(&self, account: &str) -> (Option<String>, Option<String>) {
        let name = |row: Option<serde_json::Map<String, Value>>, field: &str| {
            row.and_then(|r| r[field].as_str().map(str::to_owned))
        };
        let finops = self.fo.get("CustomersV3", &customer_key(account)).await;
        let dataverse = self
            .dv
            .get("accounts", &Key::single("accountnumber", account))
            .await;
        (
            name(finops.expect("a finops read"), "OrganizationName"),
            name(dataverse.expect("a Dataverse read"), "name"),
        )
    }

    /// Every customer's name on each side, by account: finops's
    /// `CustomersV3`, Dataverse's `accounts`.
    pub async fn names(&self) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let read = |rows: Vec<serde_json::Map<String, Value>>, key: &str, name: &str| {
            rows.iter()
                .map(|r| {
                    let text = |field: &str| r[field].as_str().unwrap_or_default().to_owned();
                    (text(key), text(name))
                })
                .collect()
        };
        let finops = self.fo.query_all("CustomersV3", &Query::default()).await;
        let dataverse = self.dv.query_all("accounts", &Query::default()).await;
        (
            read(
                finops.expect("finops customers"),
                "CustomerAccount",
                "OrganizationName",
            ),
            read(
                dataverse.expect("Dataverse accounts"),
                "accountnumber",
                "name",
            ),
        )
    }

    /// The writes each customer's row received on each side, as the
    /// emulators count them (creates, updates and deletes committed), by
    /// account; rows deleted since are left out.
    pub fn writes(&self) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
        let count = |emulator: &RunningEmulator, table: &str, key: &str| {
            emulator
                .writes(table)
                .expect("the emulator's writes")
                .into_iter()
                .filter_map(|written| {
                    let row = written.row?;
                    Some((row[key].as_str()?.to_owned(), written.writes))
                })
                .collect()
        };
        (
            count(&self.finops, "CustomersV3", "CustomerAccount"),
            count(&self.dataverse, "accounts", "accountnumber"),
        )
    }
}

fn customer_key(account: &str) -> Key {
    Key::new()
        .text("dataAreaId", "usmf")
        .text("CustomerAccount", account)
}

/// An account of `usmf` named `name`.
fn account_row(name: &str) -> serde_json::Map<String, Value> {
    let mut row = row(json!({"name": name}));
    DataverseConnector::bind(
        &mut row,
        "msdyn_company",
        "cdm_companies",
        &Key::single("cdm_companycode", "usmf"),
    );
    row
}

fn applied(outcomes: Result<Vec<WriteOutcome>, dualwrite::connector::ConnectorError>) {
    let outcomes = outcomes.expect("a $batch of seeded rows");
    assert!(
        outcomes.iter().all(WriteOutcome::is_applied),
        "{outcomes:?}"
    );
}

/// The message of a write a [`Hook`] refuses, as a business rule on the
/// service would word it.
pub const RULE: &str = "names on the blocklist may not be saved";

/// A pre-commit hook on a customer table of an emulator (`CustomersV3` or
/// `accounts`, [`RunningEmulator::set_hook`]), served on 127.0.0.1:0: it
/// sees each write the service is about to commit, and refuses, with
/// [`RULE`], those whose name holds a marker it was given. The writes it
/// let through are its commit log: `(account, name)` in the order the
/// service prepared them, `deleted` for a delete.
#[derive(Clone, Default)]
pub struct Hook {
    log: Arc<Mutex<Vec<(String, String)>>>,
    refused: Arc<Mutex<Vec<String>>>,
}

impl Hook {
    /// Serves a hook and sets it on `table` of `emulator`.
    pub async fn install(emulator: &RunningEmulator, table: &str) -> Hook {
        let hook = Hook::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the hook listens");
        let url = format!("http://{}/", listener.local_addr().expect("its address"));
        let answering = hook.clone();
        let app = axum::Router::new().route(
            "/",
            axum::routing::post(move |axum::Json(change): axum::Json<Value>| {
                let hook = answering.clone();
                async move { hook.answer(&change) }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        emulator.set_hook(table, Some(url));
        hook
    }

    fn answer(&self, change: &Value) -> (StatusCode, &'static str) {
        let row = &change["row"];
        let name = match change["operation"].as_str() {
            Some("delete") => "deleted",
            _ => row["name"]
                .as_str()
                .or(row["OrganizationName"].as_str())
                .unwrap_or_default(),
        };
        if lock(&self.refused)
            .iter()
            .any(|m| name.contains(m.as_str()))
        {
            return (StatusCode::BAD_REQUEST, RULE);
        }
        // finops: the key's fields (a create: the row's); Dataverse: the
        // row's alternate key field, or the key as the service words it,
        // `accountnumber = "…"`.
        let account = change["key"]["CustomerAccount"]
            .as_str()
            .or(row["CustomerAccount"].as_str())
            .or(row["accountnumber"].as_str())
            .map(str::to_owned)
            .or_else(|| {
                let key = change["key"].as_str()?;
                let (_, rest) = key.split_once("accountnumber = \"")?;
                rest.split('"').next().map(str::to_owned)
            })
            .unwrap_or_default();
        lock(&self.log).push((account, name.to_owned()));
        (StatusCode::NO_CONTENT, "")
    }

    /// Refuses the writes whose name holds `marker`.
    pub fn refuse(&self, marker: &str) {
        lock(&self.refused).push(marker.to_owned());
    }

    /// Lets every write through again.
    pub fn accept_all(&self) {
        lock(&self.refused).clear();
    }

    /// What was written to `account`, in order.
    pub fn of(&self, account: &str) -> Vec<String> {
        lock(&self.log)
            .iter()
            .filter(|(a, _)| a == account)
            .map(|(_, name)| name.clone())
            .collect()
    }

    /// Forgets the writes seen so far.
    pub fn clear(&self) {
        lock(&self.log).clear();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The component `cargo xtask plugins` built of plugin `name`.
pub fn component(name: &str) -> PathBuf {
    let path = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join(format!("plugins/{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing; build the plugins with `cargo xtask plugins`",
        path.display()
    );
    path
}

/// `dualwrite ARGS` against the host at `url` (none: no admin URL): exit
/// code, stdout, stderr.
pub fn dualwrite_at(url: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_dualwrite"));
    command
        .args(args)
        .env("DUALWRITE_ADMIN_TOKEN", TOKEN)
        .env_remove("DUALWRITE_ADMIN_URL");
    if let Some(url) = url {
        command.env("DUALWRITE_ADMIN_URL", url);
    }
    let output = command.output().expect("dualwrite runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

impl World {
    /// Waits until Dataverse holds `account` named `name`.
    pub async fn arrives(&self, account: &str, name: &str) {
        wait_for(
            &format!("{account} as {name}"),
            Duration::from_secs(30),
            async || self.account_name(account).await.as_deref() == Some(name),
        )
        .await;
    }
}

/// The world's customers map (`[[maps]]`, for `map apply`) with `step`,
/// one plugin step's inline table, on its way to Dataverse.
pub fn customers_with(step: &str) -> String {
    format!(
        r#"[[maps]]
name = "customers"
left = {{ system = "finops", table = "CustomersV3" }}
right = {{ system = "dataverse", table = "accounts" }}
key = ["CustomerAccount = accountnumber", "dataAreaId = msdyn_company.cdm_companycode"]
depends_on = ["legal-entities"]
fields = ["OrganizationName = name"]
plugins = [{step}]
"#
    )
}
