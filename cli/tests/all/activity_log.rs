//! `dualwrite logs`, end to end: a follower started before any change
//! prints each entry as it happens, with its step, an error's class and
//! message; the filters by map, key, errors and time; a stopped host's
//! store; and `[engine.log] max_age` pruning the log in the background.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::admin_host::{Hook, Host, RULE, TOKEN, World, wait_for};

/// `dualwrite logs ARGS --json`: the exit code and each entry printed.
fn logs(args: &[&str]) -> (i32, Vec<Value>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_dualwrite"))
        .arg("logs")
        .args(args)
        .arg("--json")
        .env("DUALWRITE_ADMIN_TOKEN", TOKEN)
        .env_remove("DUALWRITE_ADMIN_URL")
        .output()
        .expect("dualwrite logs runs");
    let entries = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    (
        output.status.code().unwrap_or(-1),
        entries,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn about<'a>(entries: &'a [Value], key: &str, action: &str) -> Option<&'a Value> {
    entries
        .iter()
        .find(|e| e["key"] == key && e["action"] == action)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_follows_filters_and_reads_a_stopped_host() {
    let world = World::new(true, "").await;
    let rule = Hook::install(&world.dataverse, "accounts").await;
    rule.refuse("Blocked");
    let host = Host::start(&world.file);
    // Followed before any customer exists.
    let mut follower = Command::new(env!("CARGO_BIN_EXE_dualwrite"))
        .args([
            "logs",
            "--follow",
            "--json",
            "--map",
            "customers",
            "--admin",
            &host.url,
        ])
        .env("DUALWRITE_ADMIN_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .spawn()
        .expect("dualwrite logs --follow starts");
    let stdout = follower.stdout.take().expect("stdout");
    let (lines, followed) = mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(entry) = serde_json::from_str(&line) {
                let _ = lines.send(entry);
            }
        }
    });
    // Whether its stream is open yet or not: it lists what is there
    // first, then streams what comes after.
    world.customer("usmf", "C-1", "Fine").await;
    world.customer("usmf", "C-2", "Blocked two").await;
    let mut seen = Vec::new();
    let started = std::time::Instant::now();
    while about(&seen, "C-1|usmf", "written").is_none()
        || about(&seen, "C-2|usmf", "parked").is_none()
    {
        let left = Duration::from_secs(60).saturating_sub(started.elapsed());
        match followed.recv_timeout(left) {
            Ok(entry) => seen.push(entry),
            Err(_) => panic!("the follower printed no written C-1 and parked C-2: {seen:?}"),
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();
    let written = about(&seen, "C-1|usmf", "written").expect("written");
    assert_eq!(written["step"], "write");
    assert_eq!(written["direction"], "left-to-right");
    assert!(written["class"].is_null(), "{written}");
    assert_eq!(
        written["row"]["OrganizationName"], "Fine",
        "the row as it was: {written}"
    );
    let parked = about(&seen, "C-2|usmf", "parked").expect("parked");
    assert_eq!(parked["step"], "write");
    assert_eq!(parked["class"], "application");
    assert!(
        parked["message"].as_str().is_some_and(|m| m.contains(RULE)),
        "{parked}"
    );
    assert!(
        seen.iter().all(|e| e["map"] == "customers"),
        "--map customers: {seen:?}"
    );

    let online = ["--admin", host.url.as_str()];
    let (code, errors, err) = logs(&[&["--errors"][..], &online].concat());
    assert_eq!(code, 0, "{err}");
    assert!(
        errors.iter().all(|e| !e["class"].is_null())
            && about(&errors, "C-2|usmf", "parked").is_some(),
        "{errors:?}"
    );
    let (_, by_key, _) =
        logs(&[&["--map", "customers", "--key", "C-1|usmf"][..], &online].concat());
    assert!(
        !by_key.is_empty() && by_key.iter().all(|e| e["key"] == "C-1|usmf"),
        "{by_key:?}"
    );
    let (_, recent, _) = logs(&[&["--since", "1h"][..], &online].concat());
    assert!(
        about(&recent, "C-1|usmf", "written").is_some(),
        "{recent:?}"
    );
    let (_, later, _) = logs(&[&["--since", "2100-01-01T00:00:00Z"][..], &online].concat());
    assert!(later.is_empty(), "{later:?}");
    let (code, _, err) = logs(&[&["--since", "yesterday-ish"][..], &online].concat());
    assert_eq!(code, 2, "a time that does not parse is refused: {err}");
    assert!(err.contains("RFC 3339"), "{err}");

    host.stop();
    let data = world.dir.path().join("data");
    let (code, stopped, err) =
        logs(&["--data", data.to_str().expect("UTF-8"), "--key", "C-1|usmf"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        about(&stopped, "C-1|usmf", "written").is_some(),
        "{stopped:?}"
    );
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_pruned_by_age_in_the_background() {
    let world = World::new(true, "").await;
    let config = std::fs::read_to_string(&world.file).expect("config");
    let config = config.replacen(
        "[systems.finops]",
        "[engine.log]\nmax_age = \"2s\"\n\n[systems.finops]",
        1,
    );
    std::fs::write(&world.file, config).expect("config written");
    let host = Host::start(&world.file);
    let online = ["--admin", host.url.as_str()];
    world.customer("usmf", "C-1", "Soon gone").await;
    wait_for("C-1 in the log", Duration::from_secs(60), async || {
        let (_, entries, _) = logs(&[&["--key", "C-1|usmf"][..], &online].concat());
        about(&entries, "C-1|usmf", "written").is_some()
    })
    .await;
    wait_for("C-1 pruned", Duration::from_secs(30), async || {
        let (_, entries, _) = logs(&[&["--key", "C-1|usmf"][..], &online].concat());
        entries.is_empty()
    })
    .await;
    assert_eq!(
        world.account_name("C-1").await.as_deref(),
        Some("Soon gone"),
        "pruning the log touches no row"
    );
    host.stop();
    world.shutdown().await;
}
