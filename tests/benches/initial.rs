//! The initial sync: a finops emulator holding `SYNC_BENCH_INITIAL_ROWS`
//! customers (default 100,000; the goal is stated for 1,000,000) across
//! three companies, an empty Dataverse, and the engine started on the
//! legal entities and customers maps, timed until it has confirmed every
//! customer in Dataverse. The baseline, in the same run, is the best raw
//! `$batch` rate of the same kind of rows into an empty Dataverse
//! emulator (batches of 1,000, 1 to 8 in flight, up to 50,000 rows).
//!
//! Run with `cargo bench -p dualwrite-tests --bench initial`; prints a
//! table and the lines `initial-sync/seconds <s>` and
//! `initial-sync/raw finops-to-dataverse <ratio>`.

use std::time::{Duration, Instant};

use dualwrite::checkpoint::Direction;
use dualwrite::config::{BuildOptions, Config};
use dualwrite::connector::{
    BatchMode, ConnectorOptions, Credentials, DataverseConnector, Key, Row, Write,
};
use dualwrite::map::EmulatorCatalogue;
use dualwrite::sync::{Engine, EngineOptions};
use dualwrite_emulators::{
    self as emulator, EmulatorConfig, ProtectionLimits, RunningEmulator, Seed, ServiceKind,
};
use serde_json::json;

fn credentials(emulator: &RunningEmulator) -> Credentials {
    Credentials {
        token_url: emulator.token_url(),
        client_id: "dualwrite".into(),
        client_secret: "dualwrite-secret".into(),
        scope: format!("{}/.default", emulator.url()),
    }
}

fn unlimited(seed: Seed, rows: usize) -> EmulatorConfig {
    EmulatorConfig {
        seed,
        rows,
        limits: ProtectionLimits::UNLIMITED,
        ..EmulatorConfig::default()
    }
}

fn config(finops: &RunningEmulator, dataverse: &RunningEmulator) -> String {
    format!(
        r#"
[engine]
data = "data"
batch_size = 1000

[systems.finops]
kind = "finops"
url = "{}"
auth = {{ token_url = "{}", client_id = "dualwrite", client_secret_env = "SECRET" }}

[systems.dataverse]
kind = "dataverse"
url = "{}"
auth = {{ token_url = "{}", client_id = "dualwrite", client_secret_env = "SECRET" }}

[[maps]]
name = "legal-entities"
left = {{ system = "finops", table = "LegalEntities" }}
right = {{ system = "dataverse", table = "cdm_companies" }}
key = ["LegalEntityId > cdm_companycode"]
fields = ["Name > cdm_name"]

[[maps]]
name = "customers"
left = {{ system = "finops", table = "CustomersV3" }}
right = {{ system = "dataverse", table = "accounts" }}
key = ["CustomerAccount = accountnumber", "dataAreaId = msdyn_company.cdm_companycode"]
depends_on = ["legal-entities"]
fields = ["OrganizationName = name", "CreditLimit = creditlimit"]
"#,
        finops.service_url(),
        finops.token_url(),
        dataverse.service_url(),
        dataverse.token_url()
    )
}

/// The best raw `$batch` rate of `rows` accounts into an empty Dataverse.
async fn raw_rate(rows: usize) -> f64 {
    let dataverse = emulator::start(ServiceKind::Dataverse, unlimited(Seed::None, 0))
        .await
        .expect("dataverse emulator starts");
    let dv = DataverseConnector::new(
        &dataverse.service_url(),
        credentials(&dataverse),
        ConnectorOptions::default(),
    );
    dv.upsert(
        "cdm_companies",
        &Key::single("cdm_companycode", "usmf"),
        &Row::from_iter([("cdm_name".to_owned(), json!("Contoso"))]),
    )
    .await
    .expect("company");
    let mut best = 0f64;
    let mut next = 0;
    for depth in [1, 4, 8] {
        let writes: Vec<Write> = (next..next + rows).map(account).collect();
        next += rows;
        let started = Instant::now();
        let mut flying = tokio::task::JoinSet::new();
        for part in writes.chunks(1000) {
            while flying.len() >= depth {
                applied(flying.join_next().await);
            }
            let (dv, part) = (dv.clone(), part.to_vec());
            flying.spawn(async move { dv.write_batch(&part, BatchMode::ContinueOnError).await });
        }
        while let Some(done) = flying.join_next().await {
            applied(Some(done));
        }
        best = best.max(rows as f64 / started.elapsed().as_secs_f64());
    }
    dataverse.shutdown().await.expect("dataverse stops");
    best
}

type Outcomes =
    Result<Vec<dualwrite::connector::WriteOutcome>, dualwrite::connector::ConnectorError>;

fn applied(done: Option<Result<Outcomes, tokio::task::JoinError>>) {
    let outcomes = done
        .expect("a batch in flight")
        .expect("the batch task ends")
        .expect("batch");
    assert!(
        outcomes.iter().all(|o| o.is_applied()),
        "a raw write failed"
    );
}

fn account(n: usize) -> Write {
    let mut row = Row::from_iter([
        ("name".to_owned(), json!(format!("Account {n}"))),
        ("creditlimit".to_owned(), json!(n % 50 * 1000)),
    ]);
    DataverseConnector::bind(
        &mut row,
        "msdyn_company",
        "cdm_companies",
        &Key::single("cdm_companycode", "usmf"),
    );
    Write::Upsert {
        table: "accounts".into(),
        key: Key::single("accountnumber", &format!("RAW-{n:07}")),
        row,
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let rows: usize = std::env::var("SYNC_BENCH_INITIAL_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let seeding = Instant::now();
    let finops = emulator::start(ServiceKind::Finops, unlimited(Seed::None, rows))
        .await
        .expect("finops emulator starts");
    let seeded = seeding.elapsed();
    let fo = dualwrite::connector::FinopsConnector::new(
        &finops.service_url(),
        credentials(&finops),
        ConnectorOptions::default(),
    );
    for code in ["USMF", "DEMF", "GBSI"] {
        fo.upsert(
            "LegalEntities",
            &Key::single("LegalEntityId", code),
            &Row::from_iter([("Name".to_owned(), json!(format!("Contoso {code}")))]),
        )
        .await
        .expect("legal entity");
    }
    let dataverse = emulator::start(ServiceKind::Dataverse, unlimited(Seed::None, 0))
        .await
        .expect("dataverse emulator starts");
    let dir = tempfile::tempdir().expect("temporary directory");
    let text = config(&finops, &dataverse);
    let plan = Config::from_toml("initial.toml", &text)
        .expect("config parses")
        .build(&BuildOptions {
            file: "initial.toml".into(),
            base_dir: dir.path().to_path_buf(),
            catalogue: &EmulatorCatalogue::builtin().expect("catalogue"),
            env: &|_| Some("dualwrite-secret".to_owned()),
        })
        .expect("config is valid");
    let started = Instant::now();
    let engine = Engine::start(plan, EngineOptions::default())
        .await
        .expect("engine starts");
    let mut last = (0, Instant::now());
    loop {
        let written = engine.stats("customers", Direction::LeftToRight).written;
        if written as usize >= rows {
            break;
        }
        if written != last.0 {
            last = (written, Instant::now());
        }
        assert!(
            last.1.elapsed() < Duration::from_secs(120),
            "the initial sync stalled at {written} of {rows}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    engine.shutdown().await.expect("engine stops");
    let sync = rows as f64 / took.as_secs_f64();
    let raw = raw_rate(rows.min(50_000)).await;
    println!(
        "| rows | seeding the emulator s | initial sync s | sync rows/s | best raw rows/s | ratio |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {rows} | {:.1} | {:.1} | {sync:.0} | {raw:.0} | {:.2} |",
        seeded.as_secs_f64(),
        took.as_secs_f64(),
        sync / raw
    );
    println!();
    println!("initial-sync/seconds {:.1}", took.as_secs_f64());
    println!("initial-sync/raw finops-to-dataverse {:.2}", sync / raw);
    finops.shutdown().await.expect("finops stops");
    dataverse.shutdown().await.expect("dataverse stops");
}
