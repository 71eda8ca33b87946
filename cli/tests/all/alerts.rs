//! Alerts, end to end, with a real `dualwrite run` process: a rule of the
//! config ("3 application errors within 10m" on `customers`, notify and
//! pause) fires when a business rule of Dataverse refuses three rows, the
//! map goes to `failed` with the rule as its reason and stays there across
//! a restart until an admin starts it; the notification reaches a webhook
//! receiver that was down for its first two attempts, signed as the
//! Standard Webhooks specification says (the receiver checks the HMAC
//! itself), each attempt in the activity log; and `dualwrite alerts
//! list|add|remove|test` work against the host.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use hmac::Mac as _;
use serde_json::Value;

use crate::admin_host::{Hook, Host, TOKEN, World, state_of, wait_for};

/// The signing key, and the secret the host is given: `whsec_` and it in
/// base64, as the specification writes secrets.
const KEY: &[u8] = b"a signing key of thirty-two byte";

fn secret() -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(KEY)
    )
}

/// One request the receiver saw: its headers, its body, and whether it
/// took it.
#[derive(Debug, Clone)]
struct Seen {
    headers: HeaderMap,
    body: String,
    taken: bool,
}

/// A webhook receiver on 127.0.0.1:0 that answers 503 to its first
/// `down` requests, then 200.
#[derive(Clone)]
struct Receiver {
    seen: Arc<Mutex<Vec<Seen>>>,
    url: String,
}

impl Receiver {
    async fn start(down: usize) -> Receiver {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the receiver listens");
        let url = format!(
            "http://{}/hooks/dualwrite",
            listener.local_addr().expect("its address")
        );
        let log = seen.clone();
        let app = axum::Router::new().route(
            "/hooks/dualwrite",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let log = log.clone();
                async move {
                    let mut log = log.lock().expect("the receiver's log");
                    let taken = log.len() >= down;
                    log.push(Seen {
                        headers,
                        body: String::from_utf8_lossy(&body).into_owned(),
                        taken,
                    });
                    match taken {
                        true => StatusCode::OK,
                        false => StatusCode::SERVICE_UNAVAILABLE,
                    }
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { seen, url }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("the receiver's log").clone()
    }

    /// The bodies it took of notifications of `kind`.
    fn taken(&self, kind: &str) -> Vec<Value> {
        self.seen()
            .iter()
            .filter(|s| s.taken)
            .filter_map(|s| serde_json::from_str::<Value>(&s.body).ok())
            .filter(|body| body["type"] == kind)
            .collect()
    }
}

fn header<'a>(seen: &'a Seen, name: &str) -> &'a str {
    seen.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("a delivery carries `{name}`: {:?}", seen.headers))
}

/// What a receiver checks: the signature is the HMAC-SHA256, keyed with
/// the secret, of `{webhook-id}.{webhook-timestamp}.{body}`, and the
/// timestamp is recent (the specification's tolerance: five minutes).
fn verify(seen: &Seen) {
    let id = header(seen, "webhook-id");
    let timestamp = header(seen, "webhook-timestamp");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(KEY).expect("any key length");
    mac.update(format!("{id}.{timestamp}.{}", seen.body).as_bytes());
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    let signatures = header(seen, "webhook-signature");
    assert!(
        signatures.split(' ').any(|s| s == expected),
        "the signature {signatures} is the HMAC of id, timestamp and body ({expected})"
    );
    let at: i64 = timestamp.parse().expect("seconds since 1970");
    let now = chrono::Utc::now().timestamp();
    assert!((now - at).abs() < 300, "a recent timestamp: {at} at {now}");
    assert_eq!(
        header(seen, "content-type"),
        "application/json",
        "{:?}",
        seen.headers
    );
}

/// `dualwrite ARGS` with `env` added: exit code, stdout, stderr.
fn cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_dualwrite"))
        .args(args)
        .env("DUALWRITE_ADMIN_TOKEN", TOKEN)
        .env_remove("DUALWRITE_ADMIN_URL")
        .envs(env.iter().copied())
        .output()
        .expect("dualwrite runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `dualwrite ARGS` against `host`.
fn dualwrite(host: &Host, args: &[&str]) -> (i32, String, String) {
    cli(args, &[("DUALWRITE_ADMIN_URL", &host.url)])
}

/// The config's `[alerts]`: the rule and the receiver as its webhook.
fn alerts(receiver: &Receiver) -> String {
    format!(
        r#"
[alerts]
interval = "200ms"
retry_min = "200ms"
retry_max = "400ms"

[[alerts.webhooks]]
name = "ops"
url = "{}"
secret_env = "ALERT_SECRET"

[[alerts.rules]]
name = "application-errors"
map = "customers"
condition = "errors"
class = "application"
count = 3
within = "10m"
actions = ["notify", "pause"]
"#,
        receiver.url
    )
}

/// The activity log's lines of `map` (newest 1000), as `logs --json`
/// prints them.
fn log_of(host: &Host, map: &str) -> Vec<Value> {
    let (code, out, err) = dualwrite(host, &["logs", "--map", map, "--limit", "1000", "--json"]);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_pauses_the_map_and_its_signed_notification_outlasts_the_receivers_outage() {
    let world = World::new(true, "").await;
    let receiver = Receiver::start(2).await;
    let mut text = std::fs::read_to_string(&world.file).expect("the config");
    text.push_str(&alerts(&receiver));
    std::fs::write(&world.file, text).expect("the config written");
    // A business rule of Dataverse that refuses names holding "Blocked".
    let rule = Hook::install(&world.dataverse, "accounts").await;
    rule.refuse("Blocked");
    let env = [("ALERT_SECRET", secret())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let host = Host::start_with(&world.file, &env);
    wait_for("customers to run", Duration::from_secs(60), async || {
        state_of(&host, "customers") == "running"
    })
    .await;
    world.customer("usmf", "C-1", "Fine").await;
    for n in 1..=3 {
        world
            .customer("usmf", &format!("B-{n}"), &format!("Blocked {n}"))
            .await;
    }
    wait_for(
        "the rule to pause customers",
        Duration::from_secs(60),
        async || state_of(&host, "customers") == "failed",
    )
    .await;
    let (code, out, err) = host.map(&["status", "customers", "--json"]);
    assert_eq!(code, 0, "{err}");
    let status: Value = serde_json::from_str(&out).expect("JSON");
    let reason = status[0]["reason"].as_str().unwrap_or_default().to_owned();
    assert!(
        reason.contains("alert rule `application-errors` paused it")
            && reason.contains("3 application errors within 10m"),
        "the rule is the reason: {status}"
    );
    assert_eq!(
        state_of(&host, "legal-entities"),
        "running",
        "the other map goes on"
    );

    // Two refused attempts, then the receiver takes it.
    wait_for(
        "the notification to be taken",
        Duration::from_secs(30),
        async || !receiver.taken("alert.firing").is_empty(),
    )
    .await;
    let seen = receiver.seen();
    let attempts: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.body.contains("alert.firing"))
        .collect();
    assert_eq!(attempts.len(), 3, "two refused, one taken: {attempts:?}");
    for attempt in &attempts {
        verify(attempt);
    }
    let id = header(attempts[0], "webhook-id");
    assert!(
        attempts.iter().all(|a| header(a, "webhook-id") == id),
        "a retry keeps the message id, so a receiver can drop a replay"
    );
    let body = &receiver.taken("alert.firing")[0];
    assert_eq!(body["data"]["rule"], "application-errors");
    assert_eq!(body["data"]["map"], "customers");
    assert_eq!(body["data"]["status"], "firing");
    assert_eq!(body["data"]["condition"], "3 application errors within 10m");
    assert_eq!(
        body["data"]["actions"],
        serde_json::json!(["notify", "pause"])
    );

    // Each step is in the log: fired, two attempts not delivered, one
    // delivered, all of step `alert` and keyed by the rule.
    let lines: Vec<Value> = log_of(&host, "customers")
        .into_iter()
        .filter(|line| line["step"] == "alert")
        .collect();
    let actions: Vec<&str> = lines.iter().filter_map(|l| l["action"].as_str()).collect();
    assert_eq!(
        actions,
        ["fired", "undelivered", "undelivered", "notified"],
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l["key"] == "application-errors" && l["direction"].is_null())
    );
    assert!(
        lines[1]["message"]
            .as_str()
            .is_some_and(|m| m.contains("503") && m.contains("tried again")),
        "{lines:#?}"
    );
    assert!(
        lines[3]["message"]
            .as_str()
            .is_some_and(|m| m.contains("attempt 3")),
        "{lines:#?}"
    );

    // `alerts list` shows the rule firing for customers.
    let (code, out, err) = dualwrite(&host, &["alerts", "list", "--json"]);
    assert_eq!(code, 0, "{err}");
    let rules: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(rules[0]["rule"]["name"], "application-errors");
    assert_eq!(rules[0]["source"], "config");
    assert_eq!(rules[0]["firing"][0]["map"], "customers", "{rules}");
    let (code, out, _) = dualwrite(&host, &["alerts", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("firing for `customers`"), "{out}");

    // Rules through the API: added, listed, removed; a config rule and a
    // rule that does not check are refused, saying why.
    let (code, out, err) = dualwrite(
        &host,
        &[
            "alerts",
            "add",
            "backlog-high",
            "--condition",
            "backlog",
            "--above",
            "5000",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("backlog-high: added (more than 5000 changes queued)"),
        "{out}"
    );
    let (_, out, _) = dualwrite(&host, &["alerts", "list", "--json"]);
    let rules: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(rules[1]["rule"]["name"], "backlog-high");
    assert_eq!(rules[1]["source"], "api");
    let (code, _, err) = dualwrite(
        &host,
        &["alerts", "add", "slow", "--condition", "oldest-change"],
    );
    assert_eq!(code, 2, "refused: {err}");
    assert!(
        err.contains("condition `oldest-change` needs `older_than`"),
        "{err}"
    );
    let (code, _, err) = dualwrite(&host, &["alerts", "remove", "application-errors"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("comes from the config file"), "{err}");
    let (code, out, err) = dualwrite(&host, &["alerts", "remove", "backlog-high"]);
    assert_eq!((code, out.trim()), (0, "backlog-high: removed"), "{err}");

    // A test notification, signed like the others.
    let (code, out, err) = dualwrite(&host, &["alerts", "test"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ops: delivered (HTTP 200)"), "{out}");
    let tests: Vec<Seen> = receiver
        .seen()
        .into_iter()
        .filter(|s| s.body.contains("alert.test"))
        .collect();
    assert_eq!(tests.len(), 1);
    verify(&tests[0]);

    // Paused by an alert, the map stays failed across a restart, until
    // an admin starts it; its old errors do not pause it again.
    host.stop();
    let host = Host::start_with(&world.file, &env);
    assert_eq!(state_of(&host, "customers"), "failed");
    let (code, _, err) = host.map(&["start", "customers"]);
    assert_eq!(code, 0, "{err}");
    wait_for(
        "customers to run again",
        Duration::from_secs(60),
        async || state_of(&host, "customers") == "running",
    )
    .await;
    world.customer("usmf", "C-2", "Fine too").await;
    wait_for("C-2 to sync", Duration::from_secs(60), async || {
        world.account_name("C-2").await.is_some()
    })
    .await;
    assert_eq!(state_of(&host, "customers"), "running", "not paused again");
    host.stop();
    world.shutdown().await;
}

/// `dualwrite alerts ARGS -c FILE` with no host running: the stopped
/// host's store and the config.
fn offline(config: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let config = config.to_str().expect("a UTF-8 path");
    let secret = secret();
    let args = [&["alerts"], args, &["-c", config]].concat();
    cli(
        &args,
        &[
            ("FO_SECRET", "dualwrite-secret"),
            ("DV_SECRET", "dualwrite-secret"),
            ("ALERT_SECRET", &secret),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_stopped_host_rules_are_kept_in_its_store_and_a_test_is_sent_from_the_cli() {
    let world = World::new(true, "").await;
    let receiver = Receiver::start(0).await;
    let mut text = std::fs::read_to_string(&world.file).expect("the config");
    text.push_str(&alerts(&receiver));
    std::fs::write(&world.file, text).expect("the config written");
    // The host ran once, so its store exists.
    let env = [("ALERT_SECRET", secret())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Host::start_with(&world.file, &env).stop();

    let (code, out, err) = offline(
        &world.file,
        &[
            "add",
            "lagging",
            "--map",
            "customers",
            "--condition",
            "oldest-change",
            "--older-than",
            "10m",
            "--action",
            "notify",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("lagging: added (a change waiting longer than 10m)"),
        "{out}"
    );
    assert!(out.contains("when it starts"), "{out}");
    let (code, _, err) = offline(
        &world.file,
        &[
            "add",
            "bad",
            "--condition",
            "backlog",
            "--map",
            "orders",
            "--above",
            "1",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("`orders`, which is not a map of the config"),
        "{err}"
    );
    let (code, out, err) = offline(&world.file, &["list", "--json"]);
    assert_eq!(code, 0, "{err}");
    let rules: Value = serde_json::from_str(&out).expect("JSON");
    let names: Vec<&str> = rules
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|r| r["rule"]["name"].as_str())
        .collect();
    assert_eq!(names, ["application-errors", "lagging"]);

    // The host that starts again evaluates the stored rule too.
    let host = Host::start_with(&world.file, &env);
    let (code, out, err) = dualwrite(&host, &["alerts", "list", "--json"]);
    assert_eq!(code, 0, "{err}");
    let rules: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(rules[1]["rule"]["name"], "lagging");
    assert_eq!(rules[1]["source"], "api");
    assert_eq!(rules[1]["valid"], true);
    host.stop();

    let (code, out, err) = offline(&world.file, &["remove", "lagging"]);
    assert_eq!((code, out.trim()), (0, "lagging: removed"), "{err}");
    let (code, out, err) = offline(&world.file, &["test"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ops: delivered (HTTP 200)"), "{out}");
    let seen = receiver.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    verify(&seen[0]);
    let (code, _, err) = offline(&world.file, &["test", "--webhook", "pager"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no alert webhook is named `pager`; the webhooks are: ops"),
        "{err}"
    );
    world.shutdown().await;
}
