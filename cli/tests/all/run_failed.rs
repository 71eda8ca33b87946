//! `dualwrite run` when no map can run: its only map fails (a corrupt
//! checkpoint entry), the host says which map failed and why, and exits
//! with an error instead of idling; a data directory it cannot use is
//! named in its error.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dualwrite_emulators::{self as emulator, EmulatorConfig, ServiceKind};

use crate::hosts::systems;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_exits_with_an_error_naming_the_failed_map_when_no_map_can_run() {
    let finops = emulator::start(ServiceKind::Finops, EmulatorConfig::empty())
        .await
        .expect("finops");
    let dataverse = emulator::start(ServiceKind::Dataverse, EmulatorConfig::empty())
        .await
        .expect("dataverse");
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = dir.path().join("sync.toml");
    let systems = systems(&finops, &dataverse);
    std::fs::write(
        &config,
        format!(
            r#"
[engine]
data = "data"
poll_interval = "100ms"
{systems}
[[maps]]
name = "legal-entities"
left = {{ system = "finops", table = "LegalEntities" }}
right = {{ system = "dataverse", table = "cdm_companies" }}
key = ["LegalEntityId > cdm_companycode"]
fields = ["Name > cdm_name"]
"#
        ),
    )
    .expect("config written");
    // A store of this layout whose queue holds an entry that is not a change.
    {
        let db = sled::open(dir.path().join("data")).expect("the store opens");
        db.open_tree("meta")
            .and_then(|meta| meta.insert("layout", dualwrite::checkpoint::LAYOUT))
            .expect("layout");
        let mut key = b"legal-entities\0>\0".to_vec();
        key.extend_from_slice(&1u64.to_be_bytes());
        db.open_tree("queue")
            .and_then(|queue| queue.insert(key, &b"not a change"[..]))
            .expect("queued");
        db.flush().expect("flushed");
    }
    let mut host = Command::new(env!("CARGO_BIN_EXE_dualwrite"))
        .args(["run", "-c"])
        .arg(&config)
        .env("FO_SECRET", "dualwrite-secret")
        .env("DV_SECRET", "dualwrite-secret")
        .env("DUALWRITE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dualwrite run starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = host.try_wait().expect("waited") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            host.kill().expect("killed");
            panic!("dualwrite run kept running with its only map failed");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stderr = std::io::read_to_string(host.stderr.take().expect("stderr")).expect("stderr");
    assert!(!status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains("map `legal-entities` failed") && stderr.contains("corrupt"),
        "{stderr}"
    );
    assert!(stderr.contains("no map can run"), "{stderr}");
    finops.shutdown().await.expect("finops stops");
    dataverse.shutdown().await.expect("dataverse stops");
}

#[test]
fn run_names_a_data_directory_it_cannot_use() {
    let dir = tempfile::tempdir().expect("temporary directory");
    // `data` names a file, not a directory.
    std::fs::write(dir.path().join("data"), "not a directory").expect("file written");
    let config = dir.path().join("sync.toml");
    std::fs::write(&config, "[engine]\ndata = \"data\"\n").expect("config written");
    let output = Command::new(env!("CARGO_BIN_EXE_dualwrite"))
        .args(["run", "-c"])
        .arg(&config)
        .output()
        .expect("dualwrite run runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{}", dir.path().join("data").display()))
            && stderr.contains("engine.data"),
        "the message names the directory and the key: {stderr}"
    );
}
