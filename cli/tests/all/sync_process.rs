//! `dualwrite run` as a real process between two emulators: killed with
//! SIGKILL in the middle of a stream of changes and started again, it
//! loses and doubles nothing; sent SIGTERM, it stops cleanly. A map's
//! plugin with a fuel budget is stopped by that budget.
//!
//! "Doubles nothing" is counted per key in the host's own activity log, read
//! from its checkpoint store once it has stopped, not in rows: an upsert by
//! key can never make a second row, so a row count cannot show a change
//! delivered twice.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dualwrite::checkpoint::{Action, Checkpoints, Direction};
use dualwrite::connector::{
    BatchMode, ConnectorOptions, DataverseConnector, FinopsConnector, Key, Query, Write,
};
use dualwrite_emulators::{self as emulator, RunningEmulator, ServiceKind};
use serde_json::{Value, json};

use crate::hosts::{credentials, systems};
use crate::support::empty_config;

const ROWS: usize = 400;

/// `[engine] batch_size` of the config.
const BATCH: usize = 50;

/// `[engine] batches_in_flight` of the config.
const IN_FLIGHT: usize = 4;

fn config(finops: &RunningEmulator, dataverse: &RunningEmulator) -> String {
    let systems = systems(finops, dataverse);
    format!(
        r#"
[engine]
data = "data"
poll_interval = "100ms"
polling_share = 1.0
batch_size = {BATCH}
batches_in_flight = {IN_FLIGHT}
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
key = ["CustomerAccount = accountnumber", "dataAreaId = msdyn_company.cdm_companycode"]
depends_on = ["legal-entities"]
fields = ["OrganizationName = name", "CreditLimit = creditlimit"]
"#
    )
}

fn spawn(config: &Path) -> Child {
    spawn_with(config, Stdio::inherit())
}

fn spawn_with(config: &Path, stderr: Stdio) -> Child {
    Command::new(env!("CARGO_BIN_EXE_dualwrite"))
        .args(["run", "-c"])
        .arg(config)
        .env("FO_SECRET", "dualwrite-secret")
        .env("DV_SECRET", "dualwrite-secret")
        .env("DUALWRITE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("dualwrite run starts")
}

/// The `hostile-loop` component, built by `cargo xtask plugins`.
fn looping_plugin() -> String {
    let path = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("plugins/hostile-loop.wasm");
    assert!(
        path.exists(),
        "{} is missing; build the plugins with `cargo xtask plugins`",
        path.display()
    );
    path.display().to_string().replace('\\', "/")
}

async fn accounts(dv: &DataverseConnector) -> Vec<dualwrite::connector::Row> {
    dv.query_all("accounts", &Query::default())
        .await
        .unwrap_or_default()
}

async fn wait_for(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_host_resumes_without_losing_or_doubling() {
    let finops = emulator::start(ServiceKind::Finops, empty_config())
        .await
        .expect("finops");
    let dataverse = emulator::start(ServiceKind::Dataverse, empty_config())
        .await
        .expect("dataverse");
    let options = ConnectorOptions::default();
    let fo = FinopsConnector::new(&finops.service_url(), credentials(&finops), options.clone());
    let dv = DataverseConnector::new(&dataverse.service_url(), credentials(&dataverse), options);
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("sync.toml");
    std::fs::write(&file, config(&finops, &dataverse)).expect("config written");
    fo.upsert(
        "LegalEntities",
        &Key::single("LegalEntityId", "usmf"),
        &json!({"Name": "Contoso"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    )
    .await
    .expect("legal entity");

    let mut host = spawn(&file);
    let writes: Vec<Write> = (0..ROWS)
        .map(|n| Write::Upsert {
            table: "CustomersV3".into(),
            key: Key::new()
                .text("dataAreaId", "usmf")
                .text("CustomerAccount", &format!("K-{n:04}")),
            row: json!({"OrganizationName": format!("Customer {n}"), "CreditLimit": n})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        })
        .collect();
    for chunk in writes.chunks(100) {
        let outcomes = fo
            .write_batch(chunk, BatchMode::ContinueOnError)
            .await
            .expect("batch");
        assert!(outcomes.iter().all(|o| o.is_applied()), "{outcomes:?}");
    }
    // Each finops row's ETag, which changes with every write to it.
    let etags = async || -> Vec<(Value, Value)> {
        let mut etags: Vec<(Value, Value)> = fo
            .query_all("CustomersV3", &Query::default())
            .await
            .expect("customers")
            .into_iter()
            .map(|row| (row["CustomerAccount"].clone(), row["@odata.etag"].clone()))
            .collect();
        etags.sort_by_key(|(account, _)| account.to_string());
        etags
    };
    let before = etags().await;

    // Kill the host mid-stream, twice, and start it again each time.
    for round in 1..=2 {
        let at_least = round * ROWS / 4;
        wait_for("part of the stream", Duration::from_secs(60), async || {
            accounts(&dv).await.len() >= at_least
        })
        .await;
        host.kill().expect("SIGKILL");
        host.wait().expect("reaped");
        host = spawn(&file);
    }
    wait_for(
        "every row in Dataverse",
        Duration::from_secs(90),
        async || accounts(&dv).await.len() >= ROWS,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let rows = accounts(&dv).await;
    assert_eq!(rows.len(), ROWS, "one row per key");
    for row in &rows {
        let number = row["accountnumber"].as_str().expect("account number");
        let n: usize = number[2..].parse().expect("number");
        assert_eq!(
            row["name"],
            Value::String(format!("Customer {n}")),
            "{number}"
        );
        assert_eq!(row["creditlimit"].to_string(), n.to_string(), "{number}");
    }
    let after = etags().await;
    assert_eq!(after.len(), ROWS);
    assert!(after == before, "no echo written back to finops");

    // SIGTERM: a clean stop.
    let stdout = host.stdout.take().expect("stdout");
    Command::new("kill")
        .args(["-TERM", &host.id().to_string()])
        .status()
        .expect("kill -TERM");
    let status = host.wait().expect("exits");
    assert!(status.success(), "{status}");
    let printed: Vec<String> = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .collect();
    assert!(
        printed
            .iter()
            .any(|l| l.starts_with("dualwrite is running 2 maps")),
        "{printed:?}"
    );
    assert!(
        printed.iter().any(|l| l.starts_with("stopped")),
        "{printed:?}"
    );

    // Nothing doubled, counted in the host's own log: each captured change
    // leaves its queue once, in the transaction that records its outcome,
    // so each key has one left-to-right outcome. It is `written`, or, for
    // a change of the batch in flight at a SIGKILL, whose write landed but
    // was not recorded, `skipped` because Dataverse holds it already when
    // the restarted host delivers the change again (its echo, read back
    // first, agrees with it), or `written` without being sent again (its
    // write-ahead intent found in Dataverse). A change captured or
    // delivered twice would show as two outcomes of one key.
    // `initial_copy_crash.rs` counts the writes per row on the target.
    let data = dir.path().join("data");
    assert!(
        printed
            .iter()
            .any(|l| l.ends_with(&format!("checkpoints in {}", data.display()))),
        "`data = \"data\"` is relative to the config file's folder: {printed:?}"
    );
    let store = Checkpoints::open(&data).expect("the stopped host's checkpoint store opens");
    let mut outcomes: BTreeMap<String, Vec<(Action, String)>> = BTreeMap::new();
    for entry in store.activity().expect("the activity log reads") {
        if entry.map == "customers" && entry.direction == Some(Direction::LeftToRight) {
            outcomes
                .entry(entry.key)
                .or_default()
                .push((entry.what, entry.detail));
        }
    }
    // A row captured again after a restart, unchanged, is decided "no
    // mapped field changed" and sends nothing: more work, no record
    // doubled. Every other second outcome of a key is a change delivered
    // twice.
    let doubled: Vec<_> = outcomes
        .iter()
        .filter(|(_, all)| {
            all.iter()
                .filter(|(what, detail)| {
                    !(*what == Action::Skipped && detail.ends_with("no mapped field changed"))
                })
                .count()
                != 1
                && all.len() > 1
        })
        .collect();
    assert!(
        doubled.is_empty(),
        "keys delivered more than once: {doubled:?}"
    );
    let missing: Vec<String> = (0..ROWS)
        .map(|n| format!("K-{n:04}|usmf"))
        .filter(|key| !outcomes.contains_key(key))
        .collect();
    assert!(missing.is_empty(), "keys with no outcome: {missing:?}");
    assert_eq!(outcomes.len(), ROWS, "no other key: {outcomes:?}");
    let mut landed_before_a_kill = 0;
    for (key, all) in &outcomes {
        match all.as_slice() {
            [(Action::Written, _)] => {}
            [(Action::Skipped, detail)]
                if detail.contains("both sides already hold the same values") =>
            {
                landed_before_a_kill += 1;
            }
            other => panic!("{key}: neither written nor already in Dataverse: {other:?}"),
        }
    }
    assert!(
        landed_before_a_kill <= 2 * IN_FLIGHT * BATCH,
        "at most {IN_FLIGHT} batches of {BATCH} were in flight at each of the two kills, but {landed_before_a_kill} changes were in Dataverse unrecorded"
    );
    finops.shutdown().await.expect("finops stops");
    dataverse.shutdown().await.expect("dataverse stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fuel_budget_in_a_map_stops_a_looping_plugin() {
    let finops = emulator::start(ServiceKind::Finops, empty_config())
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
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("sync.toml");
    // The loop would run to its 60 s deadline; the budget of a million
    // instructions stops it in milliseconds, but only if it is counted.
    let plugins = format!(
        "plugins = [{{ path = \"{}\", direction = \">\", kind = \"transform\", limits = {{ fuel = 1000000, timeout = \"60s\" }} }}]\n",
        looping_plugin()
    );
    std::fs::write(&file, config(&finops, &dataverse) + &plugins).expect("config written");
    for (table, key, row) in [
        (
            "LegalEntities",
            Key::single("LegalEntityId", "usmf"),
            json!({"Name": "Contoso"}),
        ),
        (
            "CustomersV3",
            Key::new()
                .text("dataAreaId", "usmf")
                .text("CustomerAccount", "K-0001"),
            json!({"OrganizationName": "Customer 1", "CreditLimit": 1}),
        ),
    ] {
        fo.upsert(table, &key, &row.as_object().cloned().unwrap_or_default())
            .await
            .expect("finops row");
    }

    let mut host = spawn_with(&file, Stdio::piped());
    let stderr = host.stderr.take().expect("stderr");
    let (lines, logged) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Drains stderr to the end, so the host never blocks on a full pipe.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let started = Instant::now();
    let mut seen = Vec::new();
    let stopped = loop {
        match logged.recv_timeout(Duration::from_millis(200)) {
            Ok(line) if line.contains("used up its fuel") => break line,
            Ok(line) => seen.push(line),
            Err(_) => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "the loop was not stopped by its fuel budget within 40 s: {seen:?}"
        );
        if let Some(status) = host.try_wait().expect("the host's status") {
            panic!("dualwrite run exited with {status}: {seen:?}");
        }
    };
    assert!(
        stopped.contains("hostile-loop@0.1.0") && stopped.contains("customers"),
        "{stopped}"
    );

    Command::new("kill")
        .args(["-TERM", &host.id().to_string()])
        .status()
        .expect("kill -TERM");
    let status = host.wait().expect("exits");
    assert!(status.success(), "{status}");
    finops.shutdown().await.expect("finops stops");
    dataverse.shutdown().await.expect("dataverse stops");
}
