//! The world of the admin API's end-to-end tests: two emulators, a config
//! of two maps (`customers` depending on `legal-entities`), a real
//! `dualwrite run` process serving the API, and `dualwrite map …` run
//! against it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use dualwrite::connector::{ConnectorOptions, DataverseConnector, FinopsConnector, Key, Query};
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
