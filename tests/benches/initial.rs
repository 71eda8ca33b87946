//! The initial sync, finops to Dataverse: for each size of
//! `SYNC_BENCH_INITIAL_ROWS` (a comma-separated list, default
//! `100000,1000000`; `SYNC_BENCH_INITIAL_ROWS=100000` leaves out the run of
//! a million, which takes more than half an hour on two cores), a finops
//! emulator holding that many customers across three companies, an empty
//! Dataverse, and the engine started on a fresh data directory on the
//! legal entities and customers maps (batches of 1,000), timed from
//! `Engine::start` until `RunningEngine::initialized()`. Every account must
//! then have been written exactly once (the emulator's writes per row). A
//! copy takes about 20 KB of disk per row in the temporary directory (sled
//! stores); a size it has no room for is skipped with a line saying so.
//!
//! Beside it, in the same run, the Dataverse emulator's raw `$batch` rate:
//! the rows of the first copy, exactly as the engine writes them (upserts
//! by the accounts' alternate key with the company's id, the company
//! bound), sent straight to an empty Dataverse emulator with the connector
//! in batches of 1,000, a third of them with 1, 4 and 8 batches in flight;
//! the best of the three.
//!
//! Run with `cargo bench -p dualwrite-tests --bench initial`; prints a
//! table and the lines `initial/rows-per-second <rows> <n>`,
//! `initial/raw-batch-rows-per-second <n>` and `initial/ratio <rows> <r>`
//! (copy ÷ raw).

use std::time::{Duration, Instant};

use dualwrite::checkpoint::Direction;
use dualwrite::connector::{
    ConnectorOptions, DataverseConnector, FinopsConnector, Key, Row, Write,
};
use dualwrite::sync::{Engine, EngineOptions};
use dualwrite_emulators::{self as emulator, RunningEmulator, Seed, ServiceKind};
use serde_json::{Value, json};

#[allow(dead_code, reason = "each benchmark uses part of it")]
mod support;

use support::{Target, burst, credentials, object, rate};

/// The companies the emulator's generated customers belong to.
const COMPANIES: [&str; 3] = ["USMF", "DEMF", "GBSI"];

/// The disk one copy's stores take per row, with room to spare: about
/// 15 KB were measured at 100,000 rows (the finops and Dataverse
/// emulators' stores and the checkpoint store, all sled, in the temporary
/// directory). A size the temporary directory has no room for is skipped
/// with a line saying so, rather than filling a shared disk.
const DISK_PER_ROW: u64 = 20_000;

/// How long the copy may go without capturing or confirming a row before
/// the run is called stalled.
const STALL: Duration = Duration::from_secs(300);

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

/// One initial copy.
struct Copy {
    rows: usize,
    seeding: Duration,
    /// From the start until every customer was captured (read from finops
    /// and queued).
    read: Duration,
    took: Duration,
}

/// Seeds a finops emulator with `rows` customers and copies them into an
/// empty Dataverse; returns the timings and the finops emulator (its rows
/// are the raw baseline's).
async fn initial_copy(rows: usize) -> (Copy, RunningEmulator) {
    let seeding = Instant::now();
    let finops = emulator::start(
        ServiceKind::Finops,
        support::emulator_config(Seed::None, rows, 0),
    )
    .await
    .expect("finops emulator starts");
    let seeding = seeding.elapsed();
    let fo = FinopsConnector::new(
        &finops.service_url(),
        credentials(&finops),
        ConnectorOptions::default(),
    );
    for code in COMPANIES {
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
    let mut last = ((0, 0), Instant::now());
    let mut read = None;
    while !engine.initialized() {
        let stats = engine.stats("customers", Direction::LeftToRight);
        let progress = (stats.captured, stats.written);
        if progress != last.0 {
            last = (progress, Instant::now());
        }
        if read.is_none() && stats.captured as usize >= rows {
            read = Some(started.elapsed());
        }
        assert!(
            last.1.elapsed() < STALL,
            "the initial copy of {rows} rows stalled at {} captured, {} written",
            stats.captured,
            stats.written
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    let read = read.unwrap_or(took);
    engine.shutdown().await.expect("engine stops");
    let accounts = dataverse.writes("accounts").expect("the emulator's writes");
    assert_eq!(accounts.len(), rows, "every customer copied");
    let doubled = accounts.iter().filter(|a| a.writes != 1).count();
    assert_eq!(doubled, 0, "every account written exactly once");
    dataverse.shutdown().await.expect("dataverse stops");
    drop(dir);
    let copy = Copy {
        rows,
        seeding,
        read,
        took,
    };
    (copy, finops)
}

/// The best raw `$batch` rate of `customers` (finops rows) written as the
/// engine writes them into an empty Dataverse emulator.
async fn raw_rate(customers: &[Row]) -> f64 {
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
    let mut companies = Vec::new();
    for code in COMPANIES {
        let key = Key::single("cdm_companycode", code);
        dv.upsert(
            "cdm_companies",
            &key,
            &object(json!({"cdm_name": format!("Contoso {code}")})),
        )
        .await
        .expect("company");
        let row = dv.get("cdm_companies", &key).await.expect("company read");
        let id = row
            .and_then(|row| {
                row.get("cdm_companyid")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .and_then(|id| uuid::Uuid::parse_str(&id).ok())
            .expect("the company's id");
        companies.push((code.to_lowercase(), id));
    }
    let writes: Vec<Write> = customers
        .iter()
        .map(|customer| {
            let text = |field: &str| {
                customer
                    .get(field)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let number = text("CustomerAccount");
            let company = text("dataAreaId").to_lowercase();
            let id = companies
                .iter()
                .find(|(code, _)| *code == company)
                .map(|(_, id)| *id)
                .expect("a seeded company");
            let row = object(json!({
                "accountnumber": number,
                "msdyn_company@odata.bind": format!("/cdm_companies({id})"),
                "name": customer.get("OrganizationName").cloned().unwrap_or(Value::Null),
                "creditlimit": customer.get("CreditLimit").cloned().unwrap_or(Value::Null),
            }));
            Write::Upsert {
                table: "accounts".into(),
                key: Key::new()
                    .text("accountnumber", &number)
                    .guid("_msdyn_company_value", id),
                row,
            }
        })
        .collect();
    let target = Target::Dataverse(dv);
    let third = writes.len().div_ceil(3).max(1);
    let mut best = 0f64;
    for (depth, part) in [1, 4, 8].into_iter().zip(writes.chunks(third)) {
        best = best.max(rate(part.len(), burst(&target, part, 1000, depth).await));
    }
    let stored = dataverse
        .write_count("accounts")
        .expect("the emulator's writes");
    assert_eq!(stored, writes.len() as u64, "every raw write applied once");
    dataverse.shutdown().await.expect("dataverse stops");
    best
}

/// Why a copy of `rows` would not fit in the temporary directory, if it
/// would not.
fn no_room_for(rows: usize) -> Option<String> {
    let dir = std::env::temp_dir();
    let needed = DISK_PER_ROW.saturating_mul(rows as u64);
    #[cfg(unix)]
    let free = rustix::fs::statvfs(&dir)
        .ok()
        .map(|fs| fs.f_bavail.saturating_mul(fs.f_frsize));
    #[cfg(not(unix))]
    let free: Option<u64> = None;
    let free = free?;
    let gb = |bytes: u64| bytes as f64 / 1e9;
    (free < needed).then(|| {
        format!(
            "initial copy of {rows} rows skipped: it needs about {:.0} GB free in {}, which has {:.1} GB (set TMPDIR to a larger disk, or leave the size out of SYNC_BENCH_INITIAL_ROWS)",
            gb(needed),
            dir.display(),
            gb(free)
        )
    })
}

/// The sizes to run, from `SYNC_BENCH_INITIAL_ROWS`.
fn sizes() -> Vec<usize> {
    let sizes = std::env::var("SYNC_BENCH_INITIAL_ROWS").unwrap_or_default();
    let parsed: Vec<usize> = sizes
        .split(',')
        .filter_map(|size| size.trim().parse().ok())
        .filter(|size| *size > 0)
        .collect();
    if parsed.is_empty() {
        vec![100_000, 1_000_000]
    } else {
        parsed
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut copies = Vec::new();
    let mut raw = None;
    for rows in sizes() {
        if let Some(why) = no_room_for(rows) {
            println!("{why}");
            continue;
        }
        let (copy, finops) = initial_copy(rows).await;
        eprintln!(
            "initial copy of {rows} rows: {:.1} s ({:.1} s to read them all)",
            copy.took.as_secs_f64(),
            copy.read.as_secs_f64()
        );
        if raw.is_none() {
            let customers: Vec<Row> = finops
                .writes("CustomersV3")
                .expect("the finops emulator's rows")
                .into_iter()
                .filter_map(|customer| customer.row)
                .collect();
            raw = Some(raw_rate(&customers).await);
        }
        finops.shutdown().await.expect("finops stops");
        copies.push(copy);
    }
    let raw = raw.unwrap_or(f64::NAN);
    println!(
        "| rows | seeding the emulator s | all read s | initial copy s | copy rows/s | raw $batch rows/s | ratio |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for copy in &copies {
        let sync = rate(copy.rows, copy.took);
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {sync:.0} | {raw:.0} | {:.2} |",
            copy.rows,
            copy.seeding.as_secs_f64(),
            copy.read.as_secs_f64(),
            copy.took.as_secs_f64(),
            sync / raw
        );
    }
    println!();
    for copy in &copies {
        println!(
            "initial/rows-per-second {} {:.0}",
            copy.rows,
            rate(copy.rows, copy.took)
        );
    }
    println!("initial/raw-batch-rows-per-second {raw:.0}");
    for copy in &copies {
        println!(
            "initial/ratio {} {:.2}",
            copy.rows,
            rate(copy.rows, copy.took) / raw
        );
    }
}
