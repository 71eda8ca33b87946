//! The admin API and the map lifecycle, end to end: a real `dualwrite run`
//! process between two emulators, driven by real `dualwrite map …`
//! processes and plain HTTP. The API refuses a missing or wrong token and
//! serves the routes its document lists; every transition goes through the
//! CLI, invalid ones are refused with the map's state, and the states
//! survive a restart and are read from a stopped host's store.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use dualwrite::connector::{DataverseConnector, Key, Query};
use serde_json::{Value, json};

use crate::admin_host::{Host, TOKEN, World, map_cli, row, state_of, states, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_a_missing_or_wrong_token_and_serves_what_its_document_lists() {
    let world = World::new(true, "").await;
    let host = Host::start(&world.file);
    let http = reqwest::Client::new();
    let health = http
        .get(format!("{}/api/v1/health", host.url))
        .send()
        .await
        .expect("health answers");
    assert_eq!(health.status(), 200, "the health check needs no token");

    for token in [None, Some("not-the-token")] {
        let mut request = http.get(format!("{}/api/v1/maps", host.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("answers");
        assert_eq!(response.status(), 401, "token {token:?}");
        assert!(
            response
                .headers()
                .get("www-authenticate")
                .is_some_and(|v| v.to_str().unwrap_or_default().starts_with("Bearer")),
            "RFC 6750 challenge"
        );
        let body: Value = response.json().await.expect("a JSON error");
        assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    }

    let document: Value = http
        .get(format!("{}/api/v1/openapi.json", host.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("the document answers")
        .json()
        .await
        .expect("JSON");
    let kept: Value = serde_json::from_str(include_str!("../../../docs/openapi.json"))
        .expect("docs/openapi.json parses");
    assert_eq!(
        document, kept,
        "the host serves the document kept in the repository"
    );
    let paths = document["paths"].as_object().expect("paths");
    assert!(paths.len() >= 9, "{paths:?}");
    // Every documented route is served: none answers 404 or 405.
    for (path, item) in paths {
        let concrete = path.replace("{name}", "customers");
        for method in ["get", "post"] {
            if item.get(method).is_none() {
                continue;
            }
            let url = format!("{}{concrete}", host.url);
            let request = match method {
                "get" => http.get(&url),
                _ => http.post(&url).json(&json!({"maps": []})),
            };
            let response = request.bearer_auth(TOKEN).send().await.expect("answers");
            assert!(
                response.status() != 404 && response.status() != 405,
                "{method} {path}: {}",
                response.status()
            );
        }
    }
    let (code, _, err) = map_cli(
        &["status"],
        &[
            ("DUALWRITE_ADMIN_URL", &host.url),
            ("DUALWRITE_ADMIN_TOKEN", "wrong"),
        ],
    );
    assert_eq!(code, 2, "a wrong token is a refusal: {err}");
    assert!(err.contains("token"), "{err}");
    host.stop();
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transition_goes_through_the_cli_and_the_states_survive_a_restart() {
    let world = World::new(false, "").await;
    world.customer("usmf", "C-1", "First customer").await;
    let host = Host::start(&world.file);

    let (code, out, err) = host.map(&["status", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        states(&out),
        vec![
            ("legal-entities".to_owned(), "not-running".to_owned()),
            ("customers".to_owned(), "not-running".to_owned())
        ],
        "`enabled = false` decides the first state"
    );
    let (code, _, err) = host.map(&["progress", "customers", "--once"]);
    assert_eq!(code, 2, "a map never started has no copy to follow: {err}");
    assert!(
        err.contains("has begun no initial copy") && err.contains("dualwrite map start customers"),
        "{err}"
    );

    let (code, _, err) = host.map(&["start", "customers"]);
    assert_eq!(code, 2, "a map whose parent does not run is refused: {err}");
    assert!(
        err.contains("legal-entities") && err.contains("not-running"),
        "the refusal names the dependency and its state: {err}"
    );
    assert_eq!(
        state_of(&host, "customers"),
        "not-running",
        "nothing started"
    );

    let (code, out, err) = host.map(&[
        "start",
        "customers",
        "--with-dependencies",
        "--initial-sync",
        "left",
    ]);
    assert_eq!(code, 0, "{err}");
    let started: Vec<&str> = out
        .lines()
        .map(|l| l.split(':').next().unwrap_or_default())
        .collect();
    assert_eq!(
        started,
        ["legal-entities", "customers"],
        "parents first: {out}"
    );
    wait_for(
        "the customer in Dataverse",
        Duration::from_secs(60),
        async || world.account_name("C-1").await.as_deref() == Some("First customer"),
    )
    .await;
    wait_for("customers to run", Duration::from_secs(30), async || {
        state_of(&host, "customers") == "running"
    })
    .await;

    let (code, _, err) = host.map(&["start", "customers"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is running"), "{err}");
    let (code, _, err) = host.map(&["resume", "legal-entities"]);
    assert_eq!(code, 2, "only a paused map resumes: {err}");
    assert!(
        err.contains("legal-entities") && err.contains("running"),
        "{err}"
    );

    let (code, _, err) = host.map(&["stop", "customers"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(state_of(&host, "customers"), "stopped");
    // All or nothing: customers does not run, so legal-entities is not
    // paused either.
    let (code, _, err) = host.map(&["pause", "legal-entities", "customers"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("customers") && err.contains("stopped"),
        "{err}"
    );
    assert_eq!(state_of(&host, "legal-entities"), "running");

    let (code, _, err) = host.map(&["pause", "legal-entities"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(state_of(&host, "legal-entities"), "paused");
    let (code, _, err) = host.map(&["pause", "legal-entities"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is paused"), "{err}");
    let (code, out, err) = host.map(&["resume", "legal-entities", "--queued", "replay"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("legal-entities: "), "{out}");
    wait_for(
        "legal-entities to run",
        Duration::from_secs(30),
        async || state_of(&host, "legal-entities") == "running",
    )
    .await;

    let (code, dot, err) = host.map(&["deps", "--dot"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        dot.contains("\"customers\" -> \"legal-entities\";"),
        "{dot}"
    );
    let (code, out, err) = host.map(&["unknown-subcommand"]);
    assert_ne!(code, 0, "{out}{err}");
    let (code, _, err) = host.map(&["stop", "no-such-map"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no-such-map") && err.contains("customers"),
        "the refusal lists the maps: {err}"
    );

    let url = host.url.clone();
    host.stop();
    // A stopped host: unreachable through the API, readable in its store.
    let (code, _, err) = map_cli(&["status"], &[("DUALWRITE_ADMIN_URL", &url)]);
    assert_eq!(code, 3, "{err}");
    let data = world.dir.path().join("data");
    let (code, out, err) = map_cli(
        &["status", "--json", "--data", &data.display().to_string()],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let stored = states(&out);
    assert!(
        stored.contains(&("customers".to_owned(), "stopped".to_owned())),
        "{stored:?}"
    );
    assert!(
        stored.contains(&("legal-entities".to_owned(), "running".to_owned())),
        "{stored:?}"
    );
    let (code, out, err) = map_cli(&["status", "-c", &world.file.display().to_string()], &[]);
    assert_eq!(
        code, 0,
        "the config's data directory is read when its host is down: {err}"
    );
    assert!(
        out.contains("stopped") && out.contains("legal-entities"),
        "{out}"
    );

    // The persisted states rule at the next start, not `enabled`.
    let host = Host::start(&world.file);
    assert_eq!(state_of(&host, "customers"), "stopped");
    assert_eq!(state_of(&host, "legal-entities"), "running");
    host.stop();
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_waits_for_a_paused_parent_without_an_error() {
    // Without the parent's pause counting, a lookup that waits 1 s would
    // park the child's row.
    let world = World::new(true, "lookup_wait = \"1s\"").await;
    let host = Host::start(&world.file);
    world.customer("usmf", "C-1", "Before").await;
    wait_for("the first customer", Duration::from_secs(60), async || {
        world.account_name("C-1").await.is_some()
    })
    .await;
    let (code, _, err) = host.map(&["pause", "legal-entities"]);
    assert_eq!(code, 0, "{err}");
    world.legal_entity("demf").await;
    world.customer("demf", "C-2", "In a new company").await;
    let (code, out, err) = host.map(&["status", "customers", "--json"]);
    assert_eq!(code, 0, "{err}");
    let _ = out;
    wait_for(
        "the child to say what it waits for",
        Duration::from_secs(30),
        async || {
            let (_, out, _) = host.map(&["status", "customers", "--json"]);
            out.contains("waiting for map `legal-entities` (paused)")
        },
    )
    .await;
    // Well past the lookup's wait: still waiting, not parked.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(world.account_name("C-2").await, None);
    let (code, _, err) = host.map(&["resume", "legal-entities"]);
    assert_eq!(code, 0, "{err}");
    wait_for(
        "the child's row once its parent runs",
        Duration::from_secs(60),
        async || world.account_name("C-2").await.as_deref() == Some("In a new company"),
    )
    .await;
    wait_for("both maps to run", Duration::from_secs(30), async || {
        state_of(&host, "legal-entities") == "running" && state_of(&host, "customers") == "running"
    })
    .await;
    // A parent paused with its dependents: the children first.
    let (code, out, err) = host.map(&["pause", "legal-entities", "--with-dependents"]);
    assert_eq!(code, 0, "{err}");
    let paused: Vec<&str> = out
        .lines()
        .map(|l| l.split(':').next().unwrap_or_default())
        .collect();
    assert_eq!(paused, ["customers", "legal-entities"], "{out}");
    assert_eq!(state_of(&host, "customers"), "paused");
    let (code, _, err) = host.map(&["resume", "legal-entities", "customers"]);
    assert_eq!(code, 0, "{err}");
    host.stop();
    let store = dualwrite::checkpoint::Checkpoints::open(&world.dir.path().join("data"))
        .expect("the store opens");
    let parked: Vec<_> = store
        .activity()
        .expect("activity")
        .into_iter()
        .filter(|a| a.what == dualwrite::checkpoint::Action::Parked)
        .collect();
    assert!(parked.is_empty(), "nothing was parked: {parked:?}");
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sixty_second_outage_of_the_target_loses_nothing() {
    const ROWS: usize = 50;
    let world = World::new(true, "").await;
    let host = Host::start(&world.file);
    world.customer("usmf", "C-0", "Before the outage").await;
    wait_for("the first customer", Duration::from_secs(60), async || {
        world.account_name("C-0").await.is_some()
    })
    .await;
    let outage = reqwest::Client::new()
        .put(format!("{}/admin/faults", world.dataverse.url()))
        .json(&json!({"outage_seconds": 60}))
        .send()
        .await
        .expect("the fault is set");
    assert!(outage.status().is_success(), "{}", outage.status());
    let started = Instant::now();
    for n in 1..=ROWS {
        world
            .customer("usmf", &format!("C-{n}"), &format!("During {n}"))
            .await;
    }
    wait_for(
        "the map to say it waits for Dataverse",
        Duration::from_secs(50),
        async || {
            let (_, out, _) = host.map(&["status", "customers", "--json"]);
            out.contains("waiting for dataverse since")
        },
    )
    .await;
    wait_for(
        "the changes to queue during the outage",
        Duration::from_secs(40),
        async || {
            let (_, out, _) = host.map(&["status", "customers", "--json"]);
            let status: Value = serde_json::from_str(&out).unwrap_or_default();
            status[0]["backlog"]["left_to_right"].as_u64().unwrap_or(0) > 0
        },
    )
    .await;
    wait_for(
        "every row after the outage",
        Duration::from_secs(150),
        async || {
            let rows = world
                .dv
                .query_all("accounts", &Query::default())
                .await
                .unwrap_or_default();
            rows.len() == ROWS + 1
        },
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(55),
        "the outage lasted"
    );
    for n in 1..=ROWS {
        assert_eq!(
            world.account_name(&format!("C-{n}")).await.as_deref(),
            Some(format!("During {n}").as_str())
        );
    }
    wait_for(
        "the map to stop waiting",
        Duration::from_secs(30),
        async || {
            let (_, out, _) = host.map(&["status", "customers", "--json"]);
            out.contains("\"waits_for\": null")
        },
    )
    .await;
    host.stop();
    world.shutdown().await;
}

/// The keys of `map`'s left-to-right changes in the stopped host's activity
/// log that came out as `what` (the other direction's queue holds the
/// host's own writes reported back, which a discard drops too).
fn logged(dir: &Path, map: &str, what: dualwrite::checkpoint::Action) -> Vec<String> {
    let store =
        dualwrite::checkpoint::Checkpoints::open(&dir.join("data")).expect("the store opens");
    store
        .activity()
        .expect("activity")
        .into_iter()
        .filter(|a| {
            a.map == map
                && a.direction == Some(dualwrite::checkpoint::Direction::LeftToRight)
                && a.what == what
        })
        .map(|a| a.key)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_parks_or_discards_the_queued_changes_when_told() {
    let world = World::new(true, "").await;
    let host = Host::start(&world.file);
    world.customer("usmf", "C-0", "Before").await;
    wait_for("the first customer", Duration::from_secs(60), async || {
        world.account_name("C-0").await.is_some()
    })
    .await;
    let backlog = |host: &Host| {
        let (_, out, _) = host.map(&["status", "customers", "--json"]);
        let status: Value = serde_json::from_str(&out).unwrap_or_default();
        status[0]["backlog"]["left_to_right"].as_u64().unwrap_or(0)
    };
    for (mode, accounts) in [
        ("discard", ["D-1", "D-2", "D-3"]),
        ("park", ["P-1", "P-2", "P-3"]),
    ] {
        let (code, _, err) = host.map(&["pause", "customers"]);
        assert_eq!(code, 0, "{err}");
        for account in accounts {
            world
                .customer("usmf", account, &format!("Queued {account}"))
                .await;
        }
        wait_for(
            "the changes to queue",
            Duration::from_secs(30),
            async || backlog(&host) == 3,
        )
        .await;
        let (code, out, err) = host.map(&["resume", "customers", "--queued", mode]);
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with("customers: "), "{out}");
        wait_for("customers to run", Duration::from_secs(30), async || {
            state_of(&host, "customers") == "running"
        })
        .await;
    }
    // Something written after the resumes shows they were followed.
    world.customer("usmf", "C-9", "After").await;
    wait_for("a later customer", Duration::from_secs(60), async || {
        world.account_name("C-9").await.is_some()
    })
    .await;
    for account in ["D-1", "D-2", "D-3", "P-1", "P-2", "P-3"] {
        assert_eq!(
            world.account_name(account).await,
            None,
            "{account} was not written"
        );
    }
    host.stop();
    let mut discarded = logged(
        world.dir.path(),
        "customers",
        dualwrite::checkpoint::Action::Discarded,
    );
    discarded.sort();
    assert_eq!(discarded, ["D-1|usmf", "D-2|usmf", "D-3|usmf"]);
    let mut parked = logged(
        world.dir.path(),
        "customers",
        dualwrite::checkpoint::Action::Parked,
    );
    parked.sort();
    assert_eq!(parked, ["P-1|usmf", "P-2|usmf", "P-3|usmf"]);
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_initial_sync_started_through_the_cli_lets_the_named_master_win_and_reports_its_progress()
 {
    let world = World::new(false, "").await;
    let host = Host::start(&world.file);
    let (code, _, err) = host.map(&["start", "legal-entities"]);
    assert_eq!(code, 0, "{err}");
    wait_for(
        "the company in Dataverse",
        Duration::from_secs(60),
        async || {
            world
                .dv
                .query_all("cdm_companies", &Query::default())
                .await
                .is_ok_and(|rows| !rows.is_empty())
        },
    )
    .await;
    // One key both sides hold with different values, and a row on each
    // side only.
    world.customer("usmf", "BOTH", "The finops name").await;
    world.customer("usmf", "FO-ONLY", "Only in finops").await;
    for (account, name) in [
        ("BOTH", "The Dataverse name"),
        ("DV-ONLY", "Only in Dataverse"),
    ] {
        let mut row = row(json!({"name": name}));
        DataverseConnector::bind(
            &mut row,
            "msdyn_company",
            "cdm_companies",
            &Key::single("cdm_companycode", "usmf"),
        );
        world
            .dv
            .upsert("accounts", &Key::single("accountnumber", account), &row)
            .await
            .expect("a Dataverse account");
    }
    let (code, out, err) = host.map(&["start", "customers", "--initial-sync", "right", "--wait"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("customers: initial copy done"), "{out}");
    let finops_name = async |account: &str| {
        world
            .fo
            .query_all("CustomersV3", &Query::default())
            .await
            .unwrap_or_default()
            .into_iter()
            .find(|r| r["CustomerAccount"] == account)
            .and_then(|r| r["OrganizationName"].as_str().map(str::to_owned))
    };
    wait_for(
        "the copy on both sides",
        Duration::from_secs(60),
        async || {
            finops_name("DV-ONLY").await.is_some() && world.account_name("FO-ONLY").await.is_some()
        },
    )
    .await;
    assert_eq!(
        finops_name("BOTH").await.as_deref(),
        Some("The Dataverse name"),
        "the right side is the master"
    );
    assert_eq!(
        world.account_name("BOTH").await.as_deref(),
        Some("The Dataverse name")
    );
    let (code, out, err) = host.map(&["progress", "customers", "--json"]);
    assert_eq!(code, 0, "{err}");
    let progress: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(progress["stage"], "done", "{progress}");
    assert_eq!(progress["initial_sync"], "right", "{progress}");
    assert!(count_of(&progress["read"]) >= 4, "{progress}");
    assert!(count_of(&progress["written"]) >= 1, "{progress}");
    assert_eq!(count_of(&progress["failed"]), 0, "{progress}");
    let (code, out, err) = host.map(&["failures", "customers"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("0 rows of the initial copy failed"), "{out}");
    let (code, out, err) = host.map(&["rerun", "customers", "--failed-only"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("0 failed rows resubmitted"), "{out}");
    let (code, _, err) = host.map(&["rerun", "legal-entities-typo"]);
    assert_eq!(code, 2, "{err}");
    // The whole copy again: the map initializes, skips what was copied and
    // runs again.
    let (code, out, err) = host.map(&["rerun", "customers"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("the copy runs again"), "{out}");
    wait_for("the rerun to end", Duration::from_secs(60), async || {
        let (_, out, _) = host.map(&["progress", "customers", "--json"]);
        let progress: Value = serde_json::from_str(&out).unwrap_or_default();
        progress["rerun"] == true
            && progress["stage"] == "done"
            && state_of(&host, "customers") == "running"
    })
    .await;
    assert_eq!(
        finops_name("BOTH").await.as_deref(),
        Some("The Dataverse name")
    );
    host.stop();
    world.shutdown().await;
}

fn count_of(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_refuses_to_serve_the_api_without_a_token() {
    let world = World::new(true, "").await;
    let output = Command::new(env!("CARGO_BIN_EXE_dualwrite"))
        .args(["run", "-c"])
        .arg(&world.file)
        .env("FO_SECRET", "dualwrite-secret")
        .env("DV_SECRET", "dualwrite-secret")
        .env_remove("DUALWRITE_ADMIN_TOKEN")
        .env("DUALWRITE_LOG", "warn")
        .output()
        .expect("dualwrite run runs");
    assert!(!output.status.success(), "it stops");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("DUALWRITE_ADMIN_TOKEN") && stderr.contains("engine.admin"),
        "{stderr}"
    );
    world.shutdown().await;
}
