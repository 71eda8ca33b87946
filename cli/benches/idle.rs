//! The host's memory with many idle maps: `dualwrite run` as a real
//! process on 50 maps between the two emulators (in this process), nothing
//! to sync; its resident set (`VmRSS` of `/proc/<pid>/status`) once every
//! map has finished its initial copy and a few polls went by.
//!
//! Run with `cargo bench -p dualwrite-cli --bench idle`; prints a table
//! and the lines `host/rss 50-maps-idle <MiB>` and
//! `host/requests-per-second 50-maps-idle <n>` (what the idle maps send
//! both services together: their polls, within each system's polling
//! budget). `IDLE_BENCH_MAPS` sets the number of maps.

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dualwrite_emulators::{self as emulator, EmulatorConfig, ProtectionLimits, Seed, ServiceKind};

fn config(
    maps: usize,
    finops: &emulator::RunningEmulator,
    dataverse: &emulator::RunningEmulator,
) -> String {
    let mut text = format!(
        r#"
[engine]
data = "data"

[systems.finops]
kind = "finops"
url = "{}"
auth = {{ token_url = "{}", client_id = "dualwrite", client_secret_env = "FO_SECRET" }}

[systems.dataverse]
kind = "dataverse"
url = "{}"
auth = {{ token_url = "{}", client_id = "dualwrite", client_secret_env = "DV_SECRET" }}

[[maps]]
name = "legal-entities"
left = {{ system = "finops", table = "LegalEntities" }}
right = {{ system = "dataverse", table = "cdm_companies" }}
key = ["LegalEntityId > cdm_companycode"]
fields = ["Name > cdm_name"]
"#,
        finops.service_url(),
        finops.token_url(),
        dataverse.service_url(),
        dataverse.token_url()
    );
    // The legal entities, then customers maps up to `maps` in all.
    for n in 1..maps {
        let _ = write!(
            text,
            r#"
[[maps]]
name = "customers-{n:02}"
left = {{ system = "finops", table = "CustomersV3" }}
right = {{ system = "dataverse", table = "accounts" }}
key = ["CustomerAccount = accountnumber", "dataAreaId = msdyn_company.cdm_companycode"]
depends_on = ["legal-entities"]
fields = ["OrganizationName = name", "CreditLimit = creditlimit"]
"#
        );
    }
    text
}

/// The resident set of process `pid`, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let maps: usize = std::env::var("IDLE_BENCH_MAPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let config_of = || EmulatorConfig {
        seed: Seed::None,
        limits: ProtectionLimits::UNLIMITED,
        ..EmulatorConfig::default()
    };
    let finops = emulator::start(ServiceKind::Finops, config_of())
        .await
        .expect("finops emulator starts");
    let dataverse = emulator::start(ServiceKind::Dataverse, config_of())
        .await
        .expect("dataverse emulator starts");
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("idle.toml");
    std::fs::write(&file, config(maps, &finops, &dataverse)).expect("config written");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dualwrite"))
        .args(["run", "-c"])
        .arg(&file)
        .env("FO_SECRET", "dualwrite-secret")
        .env("DV_SECRET", "dualwrite-secret")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dualwrite run starts");
    let pid = child.id();
    // Every map reads both sides at start, then polls within the budget:
    // the figures are taken after the start and a few polls.
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let requests = || finops.requests() + dataverse.requests();
    let (before, sampling) = (requests(), Instant::now());
    let mut samples = Vec::new();
    for _ in 0..5 {
        if let Some(kib) = rss_kib(pid) {
            samples.push(kib);
        }
        // 30 s of samples: longer than one turn of the polls (each of 50
        // maps polls a system once in 25 s within the budget).
        tokio::time::sleep(Duration::from_secs(6)).await;
    }
    let per_second = (requests() - before) as f64 / sampling.elapsed().as_secs_f64();
    let alive = child.try_wait().ok().flatten().is_none();
    let _ = child.kill();
    let output = child.wait_with_output().expect("dualwrite run ends");
    assert!(
        alive,
        "dualwrite run ended early: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let peak = samples.iter().copied().max().expect("an RSS sample");
    let mib = peak as f64 / 1024.0;
    println!(
        "| maps | seconds running | RSS (MiB, highest of 5 samples) | requests/s to both services |"
    );
    println!("|---|---|---|---|");
    println!(
        "| {maps} | {} | {mib:.1} | {per_second:.1} |",
        started.elapsed().as_secs()
    );
    println!();
    println!("host/rss {maps}-maps-idle {mib:.1}");
    println!("host/requests-per-second {maps}-maps-idle {per_second:.1}");
    finops.shutdown().await.expect("finops stops");
    dataverse.shutdown().await.expect("dataverse stops");
}
