//! Swap latency: a running engine's customers map, its chain one
//! registry plugin (value-map), swapped between two versions of it again
//! and again while finops keeps changing customers (a row every 10 ms).
//! Each swap is timed from the request (`RunningEngine::swap_plugin`) to
//! the first batch on the new version: the first activity line a batch
//! wrote stamped with the new map version. Two series in one run: with
//! the compiled artifact cached (the registry compiled each version when
//! it was added), and with the compile cache emptied before each swap, so
//! that the swap compiles the component with Cranelift.
//!
//! Run with `cargo bench -p dualwrite-tests --bench swap`
//! (`SWAP_BENCH_SWAPS`, default 30 per series); prints p50 and p99 of
//! each series and the lines `swap/p50-ms <series> <n>`,
//! `swap/p99-ms <series> <n>` and `swap/ratio <r>` (the p50 compiled ÷
//! cached).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dualwrite::checkpoint::{Action, Checkpoints, Direction, LogFilter};
use dualwrite::config::Config;
use dualwrite::connector::{ConnectorOptions, FinopsConnector, Key};
use dualwrite::map::EmulatorCatalogue;
use dualwrite::registry;
use dualwrite::sync::{ConfigSource, Engine, EngineOptions, RunningEngine};
use dualwrite_emulators::{self as emulator, Seed, ServiceKind};
use serde_json::json;

#[allow(dead_code, reason = "each benchmark uses part of it")]
mod support;

use support::{credentials, object};

fn config(systems: &str, plugin: &str) -> String {
    format!(
        r#"
[engine]
data = "data"
poll_interval = "20ms"
polling_share = 1.0
{systems}{legal}
[[maps]]
name = "customers"
left = {{ system = "finops", table = "CustomersV3" }}
right = {{ system = "dataverse", table = "accounts" }}
key = ["CustomerAccount = accountnumber", "dataAreaId = msdyn_company.cdm_companycode"]
depends_on = ["legal-entities"]
fields = ["OrganizationName = name"]
{plugin}
"#,
        legal = support::LEGAL_ENTITIES_MAP,
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Waits for the first written line of `map_version`; the time from
/// `since`.
async fn first_batch_on(engine: &RunningEngine, version: u32, since: Instant) -> Duration {
    let filter = LogFilter {
        map: Some("customers".into()),
        ..LogFilter::default()
    };
    let mut after = None;
    loop {
        let lines = engine
            .log(
                &LogFilter {
                    after,
                    ..filter.clone()
                },
                10_000,
                false,
            )
            .expect("the log");
        if let Some(last) = lines.last() {
            after = Some(last.seq);
        }
        if lines.iter().any(|l| {
            l.line.what == Action::Written
                && l.line.direction == Some(Direction::LeftToRight)
                && l.line.map_version == Some(version)
        }) {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(60),
            "no batch ran on version {version}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let swaps: usize = std::env::var("SWAP_BENCH_SWAPS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(30);
    let config_empty = support::emulator_config(Seed::None, 0, 0);
    let finops = emulator::start(ServiceKind::Finops, config_empty.clone())
        .await
        .expect("finops");
    let dataverse = emulator::start(ServiceKind::Dataverse, config_empty)
        .await
        .expect("dataverse");
    let fo = FinopsConnector::new(
        &finops.service_url(),
        credentials(&finops),
        ConnectorOptions::default(),
    );
    fo.upsert(
        "LegalEntities",
        &Key::single("LegalEntityId", "usmf"),
        &object(json!({"Name": "Contoso"})),
    )
    .await
    .expect("legal entity");
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let store = Checkpoints::open(&data).expect("the store");
    let bytes = std::fs::read(dualwrite_tests::VALUE_MAP)
        .expect("build the plugins first: cargo xtask plugins");
    let compiled = registry::compiled_dir(&data);
    for version in ["1.0.0", "1.1.0"] {
        registry::add(
            &store,
            &compiled,
            "value-map.wasm",
            &dualwrite_tests::restamped(&bytes, None, version),
            None,
            None,
        )
        .expect("added");
    }
    let systems = support::systems(&finops, &dataverse, false);
    let plugin = r#"plugins = [{ plugin = "value-map@1.0.0", direction = ">", settings = { field = "name", values = "none:none", default = "swapped" } }]"#;
    let text = config(&systems, plugin);
    let parsed = Config::from_toml("bench.toml", &text).expect("parses");
    let catalogue = Arc::new(EmulatorCatalogue::builtin().expect("catalogue"));
    let env = |name: &str| (name == "SECRET").then(|| "dualwrite-secret".to_owned());
    let plan = parsed
        .build(&dualwrite::config::BuildOptions {
            registry: dualwrite::config::PluginRegistry::Store(&store),
            file: "bench.toml".into(),
            base_dir: dir.path().to_path_buf(),
            catalogue: &*catalogue,
            env: &env,
        })
        .expect("valid");
    let source = ConfigSource {
        config: parsed,
        file: "bench.toml".into(),
        base_dir: dir.path().to_path_buf(),
        catalogue,
        env: Arc::new(env),
    };
    let engine = Arc::new(
        Engine::start(
            plan,
            EngineOptions {
                store: Some(store),
                source: Some(Arc::new(std::sync::Mutex::new(Some(source)))),
                ..EngineOptions::default()
            },
        )
        .await
        .expect("the engine starts"),
    );
    while !engine.initialized() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = Key::new()
                    .text("dataAreaId", "usmf")
                    .text("CustomerAccount", &format!("S-{i}"));
                let _ = fo
                    .upsert(
                        "CustomersV3",
                        &key,
                        &object(json!({"OrganizationName": "x"})),
                    )
                    .await;
                i += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let mut series = Vec::new();
    let mut next = "1.1.0";
    for cached in [true, false] {
        let mut times = Vec::new();
        for _ in 0..swaps {
            if !cached {
                for entry in std::fs::read_dir(&compiled).into_iter().flatten().flatten() {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
            let started = Instant::now();
            let swapped = engine
                .swap_plugin("customers", &format!("value-map@{next}"))
                .await
                .expect("swapped");
            let version = swapped.to.expect("a version");
            times.push(first_batch_on(&engine, version, started).await);
            next = if next == "1.1.0" { "1.0.0" } else { "1.1.0" };
        }
        times.sort();
        series.push((if cached { "cached" } else { "compiled" }, times));
    }
    stop.store(true, Ordering::Relaxed);
    let _ = writer.await;
    println!(
        "{:<10} {:>6} {:>10} {:>10}",
        "series", "swaps", "p50 ms", "p99 ms"
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for (name, times) in &series {
        println!(
            "{:<10} {:>6} {:>10.1} {:>10.1}",
            name,
            times.len(),
            ms(percentile(times, 0.5)),
            ms(percentile(times, 0.99))
        );
    }
    for (name, times) in &series {
        println!("swap/p50-ms {name} {:.1}", ms(percentile(times, 0.5)));
        println!("swap/p99-ms {name} {:.1}", ms(percentile(times, 0.99)));
    }
    let ratio = ms(percentile(&series[1].1, 0.5)) / ms(percentile(&series[0].1, 0.5));
    println!("swap/ratio {ratio:.2}");
    match Arc::try_unwrap(engine) {
        Ok(engine) => engine.shutdown().await.expect("stops"),
        Err(_) => eprintln!("the engine is still shared"),
    }
}
