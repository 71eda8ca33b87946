//! The sync engine end to end, in-process over real HTTP and real sled:
//!
//! - throughput, each direction: a backlog of rows written to one
//!   emulator while the engine is stopped, timed from the engine's start
//!   until it has written them all to the other (capture, queue, checks,
//!   `$batch` writes, checkpoints, echoes read back), against the best raw
//!   `$batch` rate into the target in the same run (batches of 500 or
//!   1,000, 1 to 8 in flight, all within the connectors' concurrency
//!   limit);
//! - latency from a commit on one side to the engine's confirmed write on
//!   the other (p50/p95/p99), at a steady pace: with push capture both
//!   ways (finops data events, Dataverse webhook steps the engine
//!   registers), and finops by reconciliation alone.
//!
//! Run with `cargo bench -p dualwrite-tests --bench sync`; prints tables,
//! and per direction the lines `sync/raw <direction> <ratio>` and
//! `sync/push-p95-ms <direction> <ms>` for scripts.
//! `SYNC_BENCH_ROWS` (default 5000) sets the backlog; `SYNC_BENCH_IN_FLIGHT`
//! the engine's `batches_in_flight`; `SYNC_BENCH_VERBOSE=1` prints every raw run;
//! `SYNC_BENCH_LATENCY_MS` adds that latency to every emulator request (as
//! a real service's round trip); `SYNC_BENCH_THROUGHPUT_ONLY=1` skips the
//! latency runs.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dualwrite::checkpoint::{Action, Direction};
use dualwrite::connector::{ConnectorOptions, DataverseConnector, FinopsConnector, Key, Write};
use dualwrite::sync::{Engine, EngineOptions, RunningEngine};
use dualwrite_emulators::{self as emulator, RunningEmulator, Seed, ServiceKind, Subscription};
use serde_json::json;

#[allow(dead_code, reason = "each benchmark uses part of it")]
mod support;

use support::{Target, account, burst, credentials, object, rate};

/// Throughput rounds; the median is reported.
const ROUNDS: usize = 3;
/// Changes per second of the latency runs.
const PACE: u32 = 20;
/// Length of each latency run.
const LATENCY_RUN: Duration = Duration::from_secs(15);

struct World {
    finops: RunningEmulator,
    dataverse: RunningEmulator,
    fo: FinopsConnector,
    dv: DataverseConnector,
    engine: Option<RunningEngine>,
    plan: Option<dualwrite::map::Plan>,
    _dir: tempfile::TempDir,
}

impl World {
    /// Starts the engine of the world's plan, without waiting.
    async fn start_engine(&mut self) -> &RunningEngine {
        let plan = self.plan.clone().expect("the world has a plan");
        let engine = Engine::start(plan, EngineOptions::default())
            .await
            .expect("engine starts");
        self.engine.insert(engine)
    }

    async fn stop_engine(&mut self) {
        if let Some(engine) = self.engine.take() {
            engine.shutdown().await.expect("engine stops");
        }
    }

    /// The raw `$batch` target on one side.
    fn target(&self, to_finops: bool) -> Target {
        if to_finops {
            Target::Finops(self.fo.clone())
        } else {
            Target::Dataverse(self.dv.clone())
        }
    }
}

/// Milliseconds of latency added to every emulator request.
fn latency_ms() -> u64 {
    std::env::var("SYNC_BENCH_LATENCY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn emulators() -> (RunningEmulator, RunningEmulator) {
    let config = || support::emulator_config(Seed::None, 0, latency_ms());
    let finops = emulator::start(ServiceKind::Finops, config())
        .await
        .expect("finops emulator starts");
    let dataverse = emulator::start(ServiceKind::Dataverse, config())
        .await
        .expect("dataverse emulator starts");
    (finops, dataverse)
}

/// Both emulators with the legal entity `usmf`, and (when `engine` is
/// given: the `[engine]` lines) the engine on the customers map.
async fn world(engine: Option<&str>) -> World {
    let (finops, dataverse) = emulators().await;
    let options = ConnectorOptions::default();
    let fo = FinopsConnector::new(&finops.service_url(), credentials(&finops), options.clone());
    let dv = DataverseConnector::new(&dataverse.service_url(), credentials(&dataverse), options);
    fo.upsert(
        "LegalEntities",
        &Key::single("LegalEntityId", "usmf"),
        &object(json!({"Name": "Contoso"})),
    )
    .await
    .expect("legal entity");
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut world = World {
        finops,
        dataverse,
        fo,
        dv,
        engine: None,
        plan: None,
        _dir: dir,
    };
    if let Some(lines) = engine {
        let text = format!(
            r#"
[engine]
data = "data"
polling_share = 1.0
{lines}
{systems}{legal}
[[maps]]
name = "customers"
left = {{ system = "finops", table = "CustomersV3" }}
right = {{ system = "dataverse", table = "accounts" }}
key = ["CustomerAccount = accountnumber", "dataAreaId = msdyn_company.cdm_companycode"]
depends_on = ["legal-entities"]
fields = ["OrganizationName = name", "CreditLimit = creditlimit", "PrimaryContactPhone = telephone1"]
"#,
            systems = support::systems(&world.finops, &world.dataverse, true),
            legal = support::LEGAL_ENTITIES_MAP,
        );
        let plan = support::plan(&text, world._dir.path());
        world.plan = Some(plan);
        let engine = world.start_engine().await;
        wait(Duration::from_secs(60), || engine.initialized()).await;
    }
    world
}

/// Waits until the engine has written `target` rows in `direction`;
/// panics with what it did when a minute passes without progress.
async fn written(engine: &RunningEngine, direction: Direction, target: usize) {
    let mut last = (0, Instant::now());
    loop {
        let stats = engine.stats("customers", direction);
        if stats.written as usize >= target {
            return;
        }
        if stats.written != last.0 {
            last = (stats.written, Instant::now());
        }
        if last.1.elapsed() > Duration::from_secs(60) {
            let parked = engine
                .checkpoints()
                .parked("customers", direction)
                .unwrap_or_default();
            panic!(
                "the engine stalled at {stats:?} of {target}: {} queued, parked {:?}",
                engine.queued(),
                parked.first()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn wait(limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "the benchmark stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn customer(n: usize) -> Write {
    Write::Upsert {
        table: "CustomersV3".into(),
        key: Key::new()
            .text("dataAreaId", "usmf")
            .text("CustomerAccount", &format!("C{n:06}")),
        row: object(json!({"OrganizationName": format!("Customer {n}"), "CreditLimit": n})),
    }
}

/// The best raw `$batch` rate into the target over batch sizes and depths.
async fn best_raw(
    world: &World,
    to_finops: bool,
    make: impl Fn(usize) -> Write,
    next: &mut usize,
    rows: usize,
) -> f64 {
    let mut best = 0f64;
    for chunk in [500, 1000] {
        for depth in [1, 4, 8] {
            let writes: Vec<Write> = (*next..*next + rows).map(&make).collect();
            *next += rows;
            let target = world.target(to_finops);
            let rate = rate(rows, burst(&target, &writes, chunk, depth).await);
            if std::env::var_os("SYNC_BENCH_VERBOSE").is_some() {
                let target = target.name();
                println!(
                    "raw into {target}: batches of {chunk}, {depth} in flight: {rate:.0} rows/s"
                );
            }
            best = best.max(rate);
        }
    }
    best
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(at).copied().unwrap_or_default()
}

/// Paced single writes on one side, timed to the engine's write on the
/// other; returns the sorted latencies.
async fn latency(world: &World, to_finops: bool) -> Vec<Duration> {
    let engine = world.engine.as_ref().expect("engine");
    let mut events = engine.subscribe();
    let direction = if to_finops {
        Direction::RightToLeft
    } else {
        Direction::LeftToRight
    };
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let mut took = Vec::new();
    let total = (PACE as u64 * LATENCY_RUN.as_secs()) as usize;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / PACE);
    let mut n = 0;
    let deadline = Instant::now() + LATENCY_RUN + Duration::from_secs(30);
    while took.len() < total && Instant::now() < deadline {
        tokio::select! {
            _ = tick.tick(), if n < total => {
                let (key, write) = if to_finops {
                    (format!("A{n:06}|usmf"), account(n))
                } else {
                    (format!("C{n:06}|usmf"), customer(n))
                };
                let Write::Upsert { table, key: row_key, row } = write else { continue };
                if to_finops {
                    world.dv.upsert(&table, &row_key, &row).await.expect("upsert");
                } else {
                    world.fo.upsert(&table, &row_key, &row).await.expect("upsert");
                }
                sent.insert(key, Instant::now());
                n += 1;
            }
            event = events.recv() => {
                let Ok(event) = event else { continue };
                if event.what == Action::Written && event.direction == direction
                    && let Some(at) = sent.remove(&event.key)
                {
                    took.push(at.elapsed());
                }
            }
        }
    }
    took.sort();
    took
}

fn print_latency(label: &str, took: &[Duration]) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "| {label} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
        took.len(),
        ms(percentile(took, 0.50)),
        ms(percentile(took, 0.95)),
        ms(percentile(took, 0.99)),
        ms(took.last().copied().unwrap_or_default()),
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let rows: usize = std::env::var("SYNC_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let added = latency_ms();
    println!(
        "## Throughput ({rows} rows a backlog, {ROUNDS} rounds, median; {added} ms added per request)\n"
    );
    let raw = world(None).await;
    // The accounts need their company.
    raw.dv
        .upsert(
            "cdm_companies",
            &Key::single("cdm_companycode", "usmf"),
            &object(json!({"cdm_name": "Contoso"})),
        )
        .await
        .expect("company");
    // `SYNC_BENCH_IN_FLIGHT` sets the engine's batches in flight (default:
    // the engine's default).
    let in_flight = std::env::var("SYNC_BENCH_IN_FLIGHT")
        .map(|n| format!("\nbatches_in_flight = {n}"))
        .unwrap_or_default();
    let mut synced = world(Some(&format!("poll_interval = \"100ms\"{in_flight}"))).await;
    // Rounds alternate raw and synced runs, so that both see the same
    // machine; each run writes new keys.
    let mut measured: [Vec<f64>; 4] = Default::default();
    let mut next = 0;
    for _ in 0..ROUNDS {
        measured[0].push(best_raw(&raw, false, account, &mut next, rows).await);
        measured[1].push(best_raw(&raw, true, customer, &mut next, rows).await);
        for (index, to_finops, direction) in [
            (2, true, Direction::LeftToRight),
            (3, false, Direction::RightToLeft),
        ] {
            // The backlog is written while the engine is stopped, then
            // the engine is timed from its start.
            synced.stop_engine().await;
            let writes: Vec<Write> = (next..next + rows)
                .map(|n| if to_finops { customer(n) } else { account(n) })
                .collect();
            next += rows;
            burst(&synced.target(to_finops), &writes, 1000, 4).await;
            let started = Instant::now();
            let engine = synced.start_engine().await;
            written(engine, direction, rows).await;
            measured[index].push(rate(rows, started.elapsed()));
        }
    }
    // Each round's sync rate against the same round's raw rate.
    let ratios = |sync: &[f64], raw: &[f64]| {
        let mut ratios: Vec<f64> = sync.iter().zip(raw).map(|(s, r)| s / r).collect();
        ratios.sort_by(f64::total_cmp);
        ratios
    };
    let ltr_ratios = ratios(&measured[2], &measured[0]);
    let rtl_ratios = ratios(&measured[3], &measured[1]);
    let [raw_dv, raw_fo, ltr, rtl] = measured.map(|mut rates| {
        rates.sort_by(f64::total_cmp);
        rates
    });
    let median = |rates: &[f64]| rates[rates.len() / 2];
    println!(
        "| what | rows/s (median) | ratio to the best raw `$batch` into the target (median; lowest–highest) |"
    );
    println!("|---|---|---|");
    println!(
        "| best raw `$batch` into Dataverse | {:.0} | 1.00 |",
        median(&raw_dv)
    );
    println!(
        "| best raw `$batch` into finops | {:.0} | 1.00 |",
        median(&raw_fo)
    );
    for (label, sync, r) in [
        ("sync finops → Dataverse", &ltr, &ltr_ratios),
        ("sync Dataverse → finops", &rtl, &rtl_ratios),
    ] {
        println!(
            "| {label} | {:.0} | {:.2} ({:.2}–{:.2}) |",
            median(sync),
            median(r),
            r[0],
            r[r.len() - 1]
        );
    }
    println!();
    println!("sync/raw finops-to-dataverse {:.2}", median(&ltr_ratios));
    println!("sync/raw dataverse-to-finops {:.2}", median(&rtl_ratios));

    if std::env::var_os("SYNC_BENCH_THROUGHPUT_ONLY").is_some() {
        return;
    }
    println!(
        "\n## Latency, commit to confirmed write on the other side ({PACE} changes/s for {}s)\n",
        LATENCY_RUN.as_secs()
    );
    println!("| path | samples | p50 ms | p95 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    // Both sides push: finops data events to the receiver, Dataverse
    // webhooks the engine registers at `public_url`.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let pushed = world(Some(&format!(
        "listen = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\""
    )))
    .await;
    let url = pushed
        .engine
        .as_ref()
        .and_then(|e| e.webhook_url("finops"))
        .expect("webhook receiver");
    pushed.finops.subscribe(Subscription {
        url,
        entities: vec!["CustomersV3".into()],
        headers: [(
            "x-dualwrite-secret".to_owned(),
            support::EVENTS_SECRET.to_owned(),
        )]
        .into(),
    });
    let to_dataverse = latency(&pushed, false).await;
    print_latency("finops → Dataverse, data events (webhook)", &to_dataverse);
    let to_finops = latency(&pushed, true).await;
    print_latency("Dataverse → finops, webhook steps", &to_finops);
    let polled = world(Some("")).await;
    print_latency(
        "finops → Dataverse, reconciliation every 1 s",
        &latency(&polled, false).await,
    );

    println!();
    let p95 = |took: &[Duration]| percentile(took, 0.95).as_secs_f64() * 1000.0;
    println!(
        "sync/push-p95-ms finops-to-dataverse {:.0}",
        p95(&to_dataverse)
    );
    println!(
        "sync/push-p95-ms dataverse-to-finops {:.0}",
        p95(&to_finops)
    );

    for world in [raw, synced, pushed, polled] {
        if let Some(engine) = world.engine {
            engine.shutdown().await.expect("engine stops");
        }
        world.finops.shutdown().await.expect("finops stops");
        world.dataverse.shutdown().await.expect("dataverse stops");
    }
}
