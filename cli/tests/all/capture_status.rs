//! How each side of a map is captured, as `map status` tells it, and the
//! webhook steps `map stop` removes: a real `dualwrite run` process that
//! registers its Dataverse steps (push) and polls finops within a small
//! polling budget.

use std::time::Duration;

use dualwrite::connector::Query;
use dualwrite_emulators::{Access, EmulatorConfig, SecurityRole, TableAccess};
use serde_json::Value;

use crate::admin_host::{Host, World, state_of, wait_for};
use crate::support;

/// The names of the `customers` steps registered in Dataverse.
async fn customer_steps(world: &World) -> Vec<String> {
    let mut names: Vec<String> = world
        .dv
        .query_all("sdkmessageprocessingsteps", &Query::default())
        .await
        .expect("steps listed")
        .iter()
        .filter_map(|row| row["name"].as_str().map(str::to_owned))
        .filter(|name| name.starts_with("dualwrite customers "))
        .collect();
    names.sort();
    names
}

fn capture_of(host: &Host, map: &str) -> Vec<Value> {
    let (code, out, err) = host.map(&["status", map, "--json"]);
    assert_eq!(code, 0, "{err}");
    let all: Value = serde_json::from_str(&out).expect("status --json prints JSON");
    all[0]["capture"].as_array().cloned().unwrap_or_default()
}

/// A world whose Dataverse pushes (the host registers its steps, the
/// events secret from `DV_EVENTS_SECRET`), its change tracking read every
/// hour as the catch-all, and whose finops is polled within 60 requests
/// per 5 minutes: a poll every 5 s for the two maps that read it, so each
/// map's 100 ms interval becomes 10 s.
async fn pushing_world(dataverse: EmulatorConfig) -> World {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let world = World::with_dataverse(
        dataverse,
        true,
        &format!(
            "listen = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\ncatch_all_interval = \"1h\""
        ),
    )
    .await;
    let config = std::fs::read_to_string(&world.file)
        .expect("config")
        .replace(
            "kind = \"dataverse\"",
            "kind = \"dataverse\"\nevents_secret_env = \"DV_EVENTS_SECRET\"",
        )
        .replace("kind = \"finops\"", "kind = \"finops\"\nrequest_limit = 60");
    std::fs::write(&world.file, config).expect("config written");
    world
}

const EVENTS_SECRET: (&str, &str) = ("DV_EVENTS_SECRET", "a-webhook-secret");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_tells_how_each_side_is_captured_and_stop_removes_the_steps() {
    let world = pushing_world(support::empty_config()).await;
    let host = Host::start_with(&world.file, &[EVENTS_SECRET]);

    wait_for(
        "the customers' steps",
        Duration::from_secs(60),
        async || customer_steps(&world).await.len() == 3,
    )
    .await;
    assert_eq!(
        customer_steps(&world).await,
        [
            "dualwrite customers Create",
            "dualwrite customers Delete",
            "dualwrite customers Update"
        ]
    );
    let capture = capture_of(&host, "customers");
    assert_eq!(capture.len(), 2, "both sides flow: {capture:?}");
    let (left, right) = (&capture[0], &capture[1]);
    assert_eq!(left["side"], "left");
    assert_eq!(left["system"], "finops");
    assert_eq!(left["mode"], "polled");
    assert_eq!(left["configured"], "100ms");
    assert_eq!(left["effective"], "10s", "stretched by the budget: {left}");
    assert_eq!(left["pollers"], 2);
    assert_eq!(left["budget_per_5_min"], 60);
    assert_eq!(right["side"], "right");
    assert_eq!(right["system"], "dataverse");
    assert_eq!(right["mode"], "pushed");
    assert_eq!(
        right["configured"], "1h",
        "change tracking as the catch-all"
    );

    let (code, out, err) = host.map(&["status", "customers"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("left (finops): polled, every 10s (stretched from 100ms by the polling budget); budget 60 polls per 5 min shared by 2 pollers"),
        "{out}"
    );
    assert!(
        out.contains("right (dataverse): pushed, catch-all every 1h"),
        "{out}"
    );

    let (code, _, err) = host.map(&["stop", "customers"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(state_of(&host, "customers"), "stopped");
    assert!(
        customer_steps(&world).await.is_empty(),
        "`map stop` removed the map's steps"
    );
    assert!(
        capture_of(&host, "customers").is_empty(),
        "a stopped map captures nothing"
    );

    let (code, _, err) = host.map(&["start", "customers"]);
    assert_eq!(code, 0, "{err}");
    wait_for(
        "the steps registered again",
        Duration::from_secs(60),
        async || customer_steps(&world).await.len() == 3,
    )
    .await;
    host.stop();
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_registration_shows_in_status_and_the_side_is_polled() {
    // The application user may register its endpoint but no steps.
    let table = |table: &str, access: &[Access]| TableAccess {
        table: table.into(),
        access: access.to_vec(),
        depth: Default::default(),
    };
    let role = SecurityRole {
        client_id: "dualwrite".into(),
        privileges: vec![
            table("accounts", &Access::ALL),
            table("cdm_companies", &Access::ALL),
            table(
                "serviceendpoints",
                &[Access::Create, Access::Read, Access::Write],
            ),
            table("sdkmessages", &[Access::Read]),
            table("sdkmessagefilters", &[Access::Read]),
            table("sdkmessageprocessingsteps", &[Access::Read]),
        ],
    };
    let world = pushing_world(EmulatorConfig {
        roles: vec![role],
        ..support::empty_config()
    })
    .await;
    let host = Host::start_with(&world.file, &[EVENTS_SECRET]);
    wait_for(
        "the customers map to run",
        Duration::from_secs(60),
        async || state_of(&host, "customers") == "running",
    )
    .await;
    let capture = capture_of(&host, "customers");
    let right = capture
        .iter()
        .find(|side| side["side"] == "right")
        .unwrap_or_else(|| panic!("the right side flows: {capture:?}"));
    let mode = right["mode"].as_str().unwrap_or_default();
    assert!(
        mode.starts_with("polled (push refused: ")
            && mode.contains("prvCreateSdkMessageProcessingStep"),
        "the refusal and the privilege it lacks: {mode}"
    );
    assert_eq!(
        right["configured"], "100ms",
        "polled at poll_interval, not at the catch-all's 1h"
    );
    host.stop();
    world.shutdown().await;
}
