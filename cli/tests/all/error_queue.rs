//! `dualwrite errors`, end to end: rows a business rule of Dataverse
//! refuses are parked and listed with their phase and the service's
//! message; a later change of a parked row waits behind it; after the rule
//! is fixed, a retried row is written once, before the change behind it;
//! a dismissed row is never written and the log says so; and the same
//! commands work on a stopped host's store, a retry there flowing when the
//! host starts again.

use std::time::Duration;

use dualwrite::checkpoint::{Action, Checkpoints};
use serde_json::Value;

use crate::admin_host::{Hook, Host, RULE, World, state_of, wait_for};

/// `dualwrite errors ARGS --json` with `place` (`--admin URL` or `--data
/// DIR`): the exit code and the JSON printed.
fn errors(args: &[&str], place: &[&str]) -> (i32, Value, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_dualwrite"));
    command
        .arg("errors")
        .args(args)
        .args(place)
        .arg("--json")
        .env("DUALWRITE_ADMIN_TOKEN", crate::admin_host::TOKEN)
        .env_remove("DUALWRITE_ADMIN_URL");
    let output = command.output().expect("dualwrite errors runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (output.status.code().unwrap_or(-1), json, stderr)
}

fn id_of(list: &Value, key: &str) -> u64 {
    list.as_array()
        .and_then(|rows| rows.iter().find(|row| row["key"] == key))
        .and_then(|row| row["id"].as_u64())
        .unwrap_or_else(|| panic!("{key} is in the error queue: {list}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_rows_are_listed_retried_in_order_once_and_dismissed() {
    let world = World::new(true, "").await;
    // A business rule of Dataverse that refuses names holding "Blocked".
    let rule = Hook::install(&world.dataverse, "accounts").await;
    rule.refuse("Blocked");
    let host = Host::start(&world.file);
    let online = ["--admin", host.url.as_str()];
    // The initial copy is done: what follows is live sync.
    wait_for(
        "the customers map to run",
        Duration::from_secs(60),
        async || state_of(&host, "customers") == "running",
    )
    .await;
    world.customer("usmf", "C-1", "Blocked one").await;
    world.customer("usmf", "C-2", "Blocked two").await;
    world.customer("usmf", "C-3", "Fine").await;
    world.customer("usmf", "C-4", "Blocked four").await;
    wait_for("three parked rows", Duration::from_secs(60), async || {
        errors(&["list"], &online).1.as_array().map_or(0, Vec::len) == 3
    })
    .await;
    let (code, list, err) = errors(&["list", "--map", "customers"], &online);
    assert_eq!(code, 0, "{err}");
    for row in list.as_array().expect("a list") {
        assert_eq!(row["map"], "customers");
        assert_eq!(row["direction"], "left-to-right");
        assert_eq!(row["phase"], "live");
        assert!(row["attempts"].as_u64() >= Some(1), "{row}");
        assert!(row["parked_at"].is_string(), "{row}");
        assert!(
            row["reason"].as_str().is_some_and(|r| r.contains(RULE)),
            "the service's message: {row}"
        );
    }
    assert_eq!(world.account_name("C-3").await.as_deref(), Some("Fine"));
    let (c1, c2) = (id_of(&list, "C-1|usmf"), id_of(&list, "C-2|usmf"));
    let (code, shown, err) = errors(&["show", &c1.to_string()], &online);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        shown["change"]["row"]["OrganizationName"], "Blocked one",
        "{shown}"
    );

    // A later change of C-1 waits behind its parked one.
    world.customer("usmf", "C-1", "Second edit").await;
    // The service's rule is fixed; C-2 is dismissed, C-1 retried.
    rule.accept_all();
    let (code, _, err) = errors(&["dismiss", &c2.to_string()], &online);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = errors(&["retry", &c1.to_string()], &online);
    assert_eq!(code, 0, "{err}");
    wait_for("C-1's second edit", Duration::from_secs(60), async || {
        world.account_name("C-1").await.as_deref() == Some("Second edit")
    })
    .await;
    assert_eq!(
        rule.of("C-1"),
        ["Blocked one", "Second edit"],
        "the retried change committed once, then the change behind it"
    );
    assert!(
        rule.of("C-2").is_empty(),
        "C-2 is dismissed: never committed"
    );
    let (code, again, err) = errors(&["retry", &c1.to_string()], &online);
    assert_eq!(code, 2, "a row retried already is refused: {again} {err}");
    assert!(err.contains("errors list"), "{err}");

    // On the stopped host's store: C-4 is still parked; retried there, it
    // flows when the host starts again.
    host.stop();
    let data = world.dir.path().join("data");
    let offline = ["--data", data.to_str().expect("a UTF-8 path")];
    let (code, list, err) = errors(&["list"], &offline);
    assert_eq!(code, 0, "{err}");
    let keys: Vec<&str> = list
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|row| row["key"].as_str())
        .collect();
    assert_eq!(keys, ["C-4|usmf"]);
    // `--map` retries that map's rows only.
    let (code, none, err) = errors(&["retry-all", "--map", "legal-entities"], &offline);
    assert_eq!(code, 0, "{err}");
    assert_eq!(none.as_array().map(Vec::len), Some(0), "{none}");
    let (code, _, err) = errors(&["retry-all", "--map", "orders"], &offline);
    assert_eq!(code, 2, "an unknown map is refused: {err}");
    assert!(err.contains("orders"), "{err}");
    let (code, retried, err) = errors(&["retry-all", "--map", "customers"], &offline);
    assert_eq!(code, 0, "{err}");
    assert_eq!(retried.as_array().map(Vec::len), Some(1), "{retried}");
    let host = Host::start(&world.file);
    wait_for("C-4 written", Duration::from_secs(60), async || {
        world.account_name("C-4").await.as_deref() == Some("Blocked four")
    })
    .await;
    let (_, list, _) = errors(&["list"], &["--admin", host.url.as_str()]);
    assert_eq!(list, Value::Array(Vec::new()), "the error queue is empty");
    host.stop();

    let store = Checkpoints::open(&data).expect("the store opens");
    let log = store.activity().expect("the activity log");
    let keyed = |what: Action| -> Vec<String> {
        log.iter()
            .filter(|line| line.map == "customers" && line.what == what)
            .map(|line| line.key.clone())
            .collect()
    };
    assert_eq!(keyed(Action::Dismissed), ["C-2|usmf"]);
    assert_eq!(keyed(Action::Retried), ["C-1|usmf", "C-4|usmf"]);
    assert!(
        world.account_name("C-2").await.is_none(),
        "C-2 is never written"
    );
    drop(store);
    world.shutdown().await;
}
