//! `dualwrite run --log-format json`: the host's own log as JSON lines, one
//! object per line, for log shippers.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::admin_host::{TOKEN, World};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_logs_json_lines_when_told() {
    let world = World::new(true, "").await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_dualwrite"))
        .args(["run", "--log-format", "json", "-c"])
        .arg(&world.file)
        .env("FO_SECRET", "dualwrite-secret")
        .env("DV_SECRET", "dualwrite-secret")
        .env("DUALWRITE_ADMIN_TOKEN", TOKEN)
        .env_remove("DUALWRITE_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dualwrite run starts");
    let stderr = child.stderr.take().expect("stderr");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    // Until the engine says it runs.
    let started = std::time::Instant::now();
    loop {
        let line = lines_rx
            .recv_timeout(Duration::from_secs(60).saturating_sub(started.elapsed()))
            .expect("the host logs that it runs");
        if line.contains("INFO") || line.contains("\"level\":\"INFO\"") {
            break;
        }
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    let status = child.wait().expect("exits");
    let log = reader.join().expect("the log is read");
    assert!(status.success(), "{status}: {log}");
    let lines: Vec<Value> = log
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"))
        })
        .collect();
    assert!(!lines.is_empty(), "the host logged");
    for line in &lines {
        assert!(line["timestamp"].is_string(), "{line}");
        assert!(line["level"].is_string(), "{line}");
        assert!(line["target"].is_string(), "{line}");
        assert!(line["fields"]["message"].is_string(), "{line}");
    }
    assert!(
        lines.iter().any(|line| line["level"] == "INFO"
            && line["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("dualwrite"))),
        "the engine's own lines are there: {log}"
    );
    world.shutdown().await;
}
