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
use dualwrite::connector::{ConnectorOptions, DataverseConnector, FinopsConnector, Key, Write};
use dualwrite::sync::{Engine, EngineOptions};
use dualwrite_emulators::{self as emulator, RunningEmulator, Seed, ServiceKind};
use serde_json::json;

#[allow(dead_code, reason = "each benchmark uses part of it")]
mod support;

use support::{Target, account, burst, credentials, object, rate};

fn config(finops: &RunningEmulator, dataverse: &RunningEmulator) -> String {
    format!(
        r#"
[engine]
data = "data"
polling_share = 1.0
batch_size = 1000
{systems}{legal}
[[maps]]
name = "customers"
left = {{ system = "finops", table = "CustomersV3" }}
right = {{ system = "dataverse", table = "accounts" }}
key = ["CustomerAccount = accountnumber", "dataAreaId = msdyn_company.cdm_companycode"]
depends_on = ["legal-entities"]
fields = ["OrganizationName = name", "CreditLimit = creditlimit"]
"#,
        systems = support::systems(finops, dataverse, false),
        legal = support::LEGAL_ENTITIES_MAP,
    )
}

/// The best raw `$batch` rate of `rows` accounts into an empty Dataverse.
async fn raw_rate(rows: usize) -> f64 {
    let dataverse = emulator::start(
        ServiceKind::Dataverse,
        support::emulator_config(Seed::None, 0, 0),
    )
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
        &object(json!({"cdm_name": "Contoso"})),
    )
    .await
    .expect("company");
    let target = Target::Dataverse(dv);
    let mut best = 0f64;
    let mut next = 0;
    for depth in [1, 4, 8] {
        let writes: Vec<Write> = (next..next + rows).map(account).collect();
        next += rows;
        best = best.max(rate(rows, burst(&target, &writes, 1000, depth).await));
    }
    dataverse.shutdown().await.expect("dataverse stops");
    best
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let rows: usize = std::env::var("SYNC_BENCH_INITIAL_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let seeding = Instant::now();
    let finops = emulator::start(
        ServiceKind::Finops,
        support::emulator_config(Seed::None, rows, 0),
    )
    .await
    .expect("finops emulator starts");
    let seeded = seeding.elapsed();
    let fo = FinopsConnector::new(
        &finops.service_url(),
        credentials(&finops),
        ConnectorOptions::default(),
    );
    for code in ["USMF", "DEMF", "GBSI"] {
        fo.upsert(
            "LegalEntities",
            &Key::single("LegalEntityId", code),
            &object(json!({"Name": format!("Contoso {code}")})),
        )
        .await
        .expect("legal entity");
    }
    let dataverse = emulator::start(
        ServiceKind::Dataverse,
        support::emulator_config(Seed::None, 0, 0),
    )
    .await
    .expect("dataverse emulator starts");
    let dir = tempfile::tempdir().expect("temporary directory");
    let plan = support::plan(&config(&finops, &dataverse), dir.path());
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
    let sync = rate(rows, took);
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
