//! Live-map latency: what a live map (`mode = "live"`) adds to a Dataverse
//! save. The same saves (an account upserted through the Web API, one at a
//! time) are timed twice in one run: while the customers map is live, so
//! each save waits for the synchronous step that writes it to finops, and
//! after the map stopped, which removes its steps, so the save is Dataverse
//! alone.
//!
//! Run with `cargo bench -p dualwrite-tests --bench live`
//! (`LIVE_BENCH_SAVES`, default 200 per series; `LIVE_BENCH_LATENCY_MS`,
//! default 0, added by both emulators to every request, for a service's
//! latency); prints p50, p95 and p99 of each series and the lines
//! `live/<p>-ms <series> <n>` and `live/ratio-p50 <r>` (live ÷ no step).

use std::time::{Duration, Instant};

use dualwrite::connector::{ConnectorOptions, DataverseConnector, FinopsConnector, Key};
use dualwrite::sync::{Engine, EngineOptions, MapCommand};
use dualwrite_emulators::{self as emulator, Seed, ServiceKind};
use serde_json::json;

#[allow(dead_code, reason = "each benchmark uses part of it")]
mod support;

use support::{credentials, object};

fn config(systems: &str, port: u16) -> String {
    format!(
        r#"
[engine]
data = "data"
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
poll_interval = "1s"
catch_all_interval = "1h"
{systems}{legal}
[[maps]]
name = "customers"
mode = "live"
left = {{ system = "finops", table = "CustomersV3" }}
right = {{ system = "dataverse", table = "accounts" }}
key = ["CustomerAccount = accountnumber", "dataAreaId = msdyn_company.cdm_companycode"]
depends_on = ["legal-entities"]
fields = ["OrganizationName = name", "CreditLimit = creditlimit"]
"#,
        legal = support::LEGAL_ENTITIES_MAP,
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Times `saves` upserts of accounts `<prefix>-<n>`, one at a time.
async fn series(dv: &DataverseConnector, prefix: &str, saves: usize) -> Vec<Duration> {
    let mut times = Vec::with_capacity(saves);
    for n in 0..saves {
        let mut row = object(json!({"name": format!("Save {n}"), "creditlimit": n}));
        DataverseConnector::bind(
            &mut row,
            "msdyn_company",
            "cdm_companies",
            &Key::single("cdm_companycode", "usmf"),
        );
        let key = Key::single("accountnumber", &format!("{prefix}-{n}"));
        let started = Instant::now();
        dv.upsert("accounts", &key, &row)
            .await
            .unwrap_or_else(|error| panic!("save {prefix}-{n}: {error}"));
        times.push(started.elapsed());
    }
    times.sort();
    times
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let number = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(default)
    };
    let saves = number("LIVE_BENCH_SAVES", 200).max(1);
    let latency = number("LIVE_BENCH_LATENCY_MS", 0) as u64;
    let emulator_config = support::emulator_config(Seed::None, 0, latency);
    let finops = emulator::start(ServiceKind::Finops, emulator_config.clone())
        .await
        .expect("finops");
    let dataverse = emulator::start(ServiceKind::Dataverse, emulator_config)
        .await
        .expect("dataverse");
    let fo = FinopsConnector::new(
        &finops.service_url(),
        credentials(&finops),
        ConnectorOptions::default(),
    );
    let dv = DataverseConnector::new(
        &dataverse.service_url(),
        credentials(&dataverse),
        ConnectorOptions::default(),
    );
    fo.upsert(
        "LegalEntities",
        &Key::single("LegalEntityId", "usmf"),
        &object(json!({"Name": "Contoso"})),
    )
    .await
    .expect("legal entity");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = support::plan(
        &config(&support::systems(&finops, &dataverse, true), port),
        dir.path(),
    );
    let engine = Engine::start(plan, EngineOptions::default())
        .await
        .expect("the engine starts");
    let company = Key::single("cdm_companycode", "usmf");
    let started = Instant::now();
    while !engine.initialized()
        || dv
            .get("cdm_companies", &company)
            .await
            .expect("read")
            .is_none()
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the legal entity reaches Dataverse"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let live = series(&dv, "LIVE", saves).await;
    let customer = Key::new()
        .text("dataAreaId", "usmf")
        .text("CustomerAccount", &format!("LIVE-{}", saves - 1));
    assert!(
        fo.get("CustomersV3", &customer)
            .await
            .expect("read")
            .is_some(),
        "a live save is in finops when it returns"
    );
    engine
        .command("customers", MapCommand::Stop)
        .await
        .expect("the map stops and its steps go");
    let plain = series(&dv, "PLAIN", saves).await;
    engine.shutdown().await.expect("the engine stops");

    println!("{saves} saves per series, {latency} ms added per request");
    println!(
        "{:10} {:>9} {:>9} {:>9}",
        "series", "p50 ms", "p95 ms", "p99 ms"
    );
    for (name, times) in [("live", &live), ("no-step", &plain)] {
        let (p50, p95, p99) = (
            percentile(times, 0.50),
            percentile(times, 0.95),
            percentile(times, 0.99),
        );
        println!(
            "{name:10} {:>9.2} {:>9.2} {:>9.2}",
            ms(p50),
            ms(p95),
            ms(p99)
        );
        for (p, value) in [("p50", p50), ("p95", p95), ("p99", p99)] {
            println!("live/{p}-ms {name} {:.3}", ms(value));
        }
    }
    for (p, q) in [("p50", 0.50), ("p95", 0.95), ("p99", 0.99)] {
        println!(
            "live/added-{p}-ms {:.3}",
            ms(percentile(&live, q)) - ms(percentile(&plain, q))
        );
    }
    println!(
        "live/ratio-p50 {:.2}",
        ms(percentile(&live, 0.5)) / ms(percentile(&plain, 0.5)).max(0.001)
    );
    finops.shutdown().await.expect("finops stops");
    dataverse.shutdown().await.expect("dataverse stops");
}
