//! An initial copy of 100,000 rows by a real `dualwrite run` process,
//! killed with SIGKILL twice while its `$batch`es are being committed and
//! started again each time, writes each row once.
//!
//! "Once" is counted per row on the target: the Dataverse emulator counts
//! the writes each row receives (`RunningEmulator::writes`), since an
//! upsert by key never makes a second row and a row count cannot show a
//! row written twice. Without the write-ahead intents of the checkpoint
//! store, the rows of the batches a kill interrupts (committed by the
//! service, not yet recorded by the host) are sent again by the restarted
//! host; with them, the host reads those rows back, finds them holding the
//! write and records them without sending it again. The map goes one way
//! (finops to Dataverse), so no echo read back from Dataverse can settle
//! such a row instead. The host's activity log must agree: one outcome per
//! key, `written`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dualwrite::checkpoint::{Action, Checkpoints, Direction};
use dualwrite::connector::{ConnectorOptions, FinopsConnector, Key};
use dualwrite_emulators::{self as emulator, EmulatorConfig, RunningEmulator, ServiceKind};
use serde_json::json;

use crate::hosts::{credentials, systems};
use crate::support::empty_config;

/// Customers seeded in finops (`BULK-0000000` …, across three companies).
const ROWS: usize = 100_000;

/// The companies the seeded customers belong to.
const COMPANIES: [&str; 3] = ["USMF", "DEMF", "GBSI"];

fn config(finops: &RunningEmulator, dataverse: &RunningEmulator) -> String {
    let systems = systems(finops, dataverse);
    format!(
        r#"
[engine]
data = "data"
poll_interval = "200ms"
polling_share = 1.0
batch_size = 1000
batches_in_flight = 4
{systems}
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
key = ["CustomerAccount > accountnumber", "dataAreaId > msdyn_company.cdm_companycode"]
depends_on = ["legal-entities"]
fields = ["OrganizationName > name", "CreditLimit > creditlimit"]
"#
    )
}

/// A `dualwrite run` process, killed if the test ends before it stopped.
struct Host(Child);

impl Drop for Host {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn spawn(config: &Path) -> Host {
    let child = Command::new(env!("CARGO_BIN_EXE_dualwrite"))
        .args(["run", "-c"])
        .arg(config)
        .env("FO_SECRET", "dualwrite-secret")
        .env("DV_SECRET", "dualwrite-secret")
        .env("DUALWRITE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("dualwrite run starts");
    Host(child)
}

/// How many writes Dataverse's accounts have received (each a row
/// committed, unless one is written twice).
fn committed(dataverse: &RunningEmulator) -> usize {
    let count = dataverse
        .write_count("accounts")
        .expect("the emulator's writes read");
    usize::try_from(count).unwrap_or(usize::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_initial_copy_writes_each_row_once() {
    let started = Instant::now();
    let finops = emulator::start(
        ServiceKind::Finops,
        EmulatorConfig {
            rows: ROWS,
            ..empty_config()
        },
    )
    .await
    .expect("finops");
    let dataverse = emulator::start(ServiceKind::Dataverse, empty_config())
        .await
        .expect("dataverse");
    let fo = FinopsConnector::new(
        &finops.service_url(),
        credentials(&finops),
        ConnectorOptions::default(),
    );
    for code in COMPANIES {
        let row = json!({"Name": format!("Contoso {code}")});
        fo.upsert(
            "LegalEntities",
            &Key::single("LegalEntityId", code),
            row.as_object().expect("an object"),
        )
        .await
        .expect("legal entity");
    }
    let seeded = started.elapsed();
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("sync.toml");
    std::fs::write(&file, config(&finops, &dataverse)).expect("config written");

    // The map's first start is its initial copy. Kill it twice while
    // Dataverse is committing rows (its count moved since the last look),
    // so that batches are cut between the service's commit and the host's
    // checkpoint, and start it again each time.
    let mut host = spawn(&file);
    let mut kills = Vec::new();
    for (kill, share) in [3, 6].into_iter().enumerate() {
        let threshold = ROWS * share / 10;
        let mut last = committed(&dataverse);
        let waiting = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = committed(&dataverse);
            if now >= threshold && now > last {
                break;
            }
            last = now;
            if let Some(status) = host.0.try_wait().expect("the host's status") {
                panic!("dualwrite run exited with {status}");
            }
            assert!(
                waiting.elapsed() < Duration::from_secs(600),
                "timed out at {now} of {threshold} rows before kill {}",
                kill + 1
            );
        }
        host.0.kill().expect("SIGKILL");
        host.0.wait().expect("reaped");
        kills.push(committed(&dataverse));
        host = spawn(&file);
    }

    let waiting = Instant::now();
    loop {
        let held = dataverse
            .writes("accounts")
            .expect("the emulator's writes read")
            .iter()
            .filter(|row| row.row.is_some())
            .count();
        if held >= ROWS {
            break;
        }
        assert!(
            waiting.elapsed() < Duration::from_secs(600),
            "timed out with {held} of {ROWS} rows in Dataverse"
        );
        if let Some(status) = host.0.try_wait().expect("the host's status") {
            panic!("dualwrite run exited with {status}");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // A clean stop: batches in flight finish; any row sent twice is
    // counted by the time the process is gone.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Command::new("kill")
        .args(["-TERM", &host.0.id().to_string()])
        .status()
        .expect("kill -TERM");
    let status = host.0.wait().expect("exits");
    assert!(status.success(), "{status}");
    let copied = started.elapsed();

    // Each key written once on the target, with the source's values.
    let rows = dataverse.writes("accounts").expect("the emulator's writes");
    assert_eq!(rows.len(), ROWS, "one row per key");
    let mut doubled = Vec::new();
    for written in &rows {
        let row = written.row.as_ref().expect("no account deleted");
        let number = row["accountnumber"].as_str().expect("account number");
        let n: usize = number["BULK-".len()..].parse().expect("a seeded number");
        let limit: f64 = row["creditlimit"].to_string().parse().expect("a number");
        assert_eq!(limit, ((n % 50) * 1000) as f64, "{number}");
        if written.writes != 1 {
            doubled.push((number.to_owned(), written.writes));
        }
    }
    assert!(
        doubled.is_empty(),
        "{} of {ROWS} accounts were written more than once (kills at {kills:?} rows), e.g. {:?}",
        doubled.len(),
        &doubled[..doubled.len().min(10)]
    );
    let companies = dataverse.writes("cdm_companies").expect("companies");
    assert_eq!(companies.len(), COMPANIES.len());
    assert!(companies.iter().all(|c| c.writes == 1), "{companies:?}");

    // The host's own log agrees: one outcome per key, `written`.
    let store = Checkpoints::open(&dir.path().join("data")).expect("the stopped host's store");
    let mut outcomes: BTreeMap<String, Vec<(Action, String)>> = BTreeMap::new();
    for entry in store.activity().expect("the activity log reads") {
        if entry.map == "customers" {
            assert_eq!(entry.direction, Some(Direction::LeftToRight), "{entry:?}");
            outcomes
                .entry(entry.key)
                .or_default()
                .push((entry.what, entry.detail));
        }
    }
    assert_eq!(outcomes.len(), ROWS, "an outcome for every key");
    let mut recovered = 0;
    for (key, all) in &outcomes {
        match all.as_slice() {
            [(Action::Written, detail)] => {
                recovered += usize::from(detail.contains("not sent again"));
            }
            other => panic!("{key}: not written exactly once: {other:?}"),
        }
    }
    eprintln!(
        "{ROWS} rows: seeded in {:.1} s, copied with two kills (at {kills:?} rows) in {:.1} s; {recovered} rows found written after a kill",
        seeded.as_secs_f64(),
        (copied - seeded).as_secs_f64()
    );
    assert!(
        recovered > 0,
        "each kill cut a batch Dataverse was committing, so some rows must have been found written"
    );
    finops.shutdown().await.expect("finops stops");
    dataverse.shutdown().await.expect("dataverse stops");
}
