//! What the sync and initial-sync benchmarks share: emulators without
//! service protection limits, the client credentials and the `[systems]`
//! of a config for them, the validated plan, raw `$batch` bursts into
//! either service, and the rows they write.

use std::time::{Duration, Instant};

use dualwrite::config::{BuildOptions, Config};
use dualwrite::connector::{
    BatchMode, ConnectorError, Credentials, DataverseConnector, FinopsConnector, Key, Row, Write,
    WriteOutcome,
};
use dualwrite::map::{EmulatorCatalogue, Plan};
use dualwrite_emulators::{EmulatorConfig, FaultConfig, ProtectionLimits, RunningEmulator, Seed};
use serde_json::{Value, json};

/// The allocator of the `dualwrite` binary (`cli/src/main.rs`), so that
/// the benchmarks measure what the product runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The legal entities map every benchmark config starts with.
pub const LEGAL_ENTITIES_MAP: &str = r#"
[[maps]]
name = "legal-entities"
left = { system = "finops", table = "LegalEntities" }
right = { system = "dataverse", table = "cdm_companies" }
key = ["LegalEntityId > cdm_companycode"]
fields = ["Name > cdm_name"]
"#;

/// The secret the benchmarks' data events carry (`EVENTS`).
pub const EVENTS_SECRET: &str = "bench-secret";

/// An emulator with no protection limits, `seed`, `rows` generated
/// customers and `latency_ms` added to every request.
pub fn emulator_config(seed: Seed, rows: usize, latency_ms: u64) -> EmulatorConfig {
    EmulatorConfig {
        seed,
        rows,
        limits: ProtectionLimits::UNLIMITED,
        faults: FaultConfig {
            latency_ms,
            ..FaultConfig::default()
        },
        ..EmulatorConfig::default()
    }
}

/// The emulators' demo client.
pub fn credentials(emulator: &RunningEmulator) -> Credentials {
    Credentials {
        token_url: emulator.token_url(),
        client_id: "dualwrite".into(),
        client_secret: "dualwrite-secret".into(),
        scope: format!("{}/.default", emulator.url()),
    }
}

/// `[systems.finops]` and `[systems.dataverse]` on the two emulators,
/// their secret in `SECRET`; with `events`, both push their changes to the
/// receiver (finops data events; Dataverse webhooks, registered by the
/// engine when `[engine] public_url` is set).
pub fn systems(finops: &RunningEmulator, dataverse: &RunningEmulator, events: bool) -> String {
    let events = if events {
        "events_secret_env = \"EVENTS\"\n"
    } else {
        ""
    };
    format!(
        r#"
[systems.finops]
kind = "finops"
url = "{}"
auth = {{ token_url = "{}", client_id = "dualwrite", client_secret_env = "SECRET" }}
{events}
[systems.dataverse]
kind = "dataverse"
url = "{}"
auth = {{ token_url = "{}", client_id = "dualwrite", client_secret_env = "SECRET" }}
{events}"#,
        finops.service_url(),
        finops.token_url(),
        dataverse.service_url(),
        dataverse.token_url()
    )
}

/// The validated plan of the config `text`, its data under `dir`.
pub fn plan(text: &str, dir: &std::path::Path) -> Plan {
    let config = Config::from_toml("bench.toml", text).expect("config parses");
    let catalogue = EmulatorCatalogue::builtin().expect("catalogue");
    let env = |name: &str| match name {
        "SECRET" => Some("dualwrite-secret".to_owned()),
        "EVENTS" => Some(EVENTS_SECRET.to_owned()),
        _ => None,
    };
    config
        .build(&BuildOptions {
            registry: Default::default(),
            file: "bench.toml".into(),
            base_dir: dir.to_path_buf(),
            catalogue: &catalogue,
            env: &env,
        })
        .expect("config is valid")
}

/// A service written to in raw `$batch`es.
#[derive(Clone)]
pub enum Target {
    Finops(FinopsConnector),
    Dataverse(DataverseConnector),
}

impl Target {
    async fn write_batch(&self, writes: &[Write]) -> Result<Vec<WriteOutcome>, ConnectorError> {
        match self {
            Target::Finops(fo) => fo.write_batch(writes, BatchMode::ContinueOnError).await,
            Target::Dataverse(dv) => dv.write_batch(writes, BatchMode::ContinueOnError).await,
        }
    }

    /// The service's name.
    pub fn name(&self) -> &'static str {
        match self {
            Target::Finops(_) => "finops",
            Target::Dataverse(_) => "dataverse",
        }
    }
}

/// Writes `writes` into `target` in `$batch`es of `chunk`, `depth` of them
/// in flight at once; returns the time taken. Panics on a write not
/// applied.
pub async fn burst(target: &Target, writes: &[Write], chunk: usize, depth: usize) -> Duration {
    let started = Instant::now();
    let mut flying = tokio::task::JoinSet::new();
    for part in writes.chunks(chunk) {
        while flying.len() >= depth {
            applied(flying.join_next().await);
        }
        let (target, part) = (target.clone(), part.to_vec());
        flying.spawn(async move { target.write_batch(&part).await });
    }
    while let Some(done) = flying.join_next().await {
        applied(Some(done));
    }
    started.elapsed()
}

type Outcomes = Result<Vec<WriteOutcome>, ConnectorError>;

fn applied(done: Option<Result<Outcomes, tokio::task::JoinError>>) {
    let outcomes = done
        .expect("a batch in flight")
        .expect("the batch task ends")
        .expect("batch");
    assert!(
        outcomes.iter().all(|o| o.is_applied()),
        "a batch write failed"
    );
}

/// Rows per second.
pub fn rate(rows: usize, elapsed: Duration) -> f64 {
    rows as f64 / elapsed.as_secs_f64()
}

/// A JSON object as a row.
pub fn object(value: Value) -> Row {
    value.as_object().cloned().unwrap_or_default()
}

/// Account `A{n}` of the company `usmf`.
pub fn account(n: usize) -> Write {
    let mut row = object(json!({"name": format!("Account {n}"), "creditlimit": n}));
    DataverseConnector::bind(
        &mut row,
        "msdyn_company",
        "cdm_companies",
        &Key::single("cdm_companycode", "usmf"),
    );
    Write::Upsert {
        table: "accounts".into(),
        key: Key::single("accountnumber", &format!("A{n:06}")),
        row,
    }
}
