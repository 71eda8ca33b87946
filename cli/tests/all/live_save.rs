//! A live map on a real `dualwrite run` process: the host registers
//! synchronous steps, a Dataverse save returns once the row is in finops,
//! `map status` says the map is live from Dataverse only, and once the
//! process is killed a save fails rather than commit unsynced.

use std::time::Duration;

use dualwrite::connector::{DataverseConnector, Key, Query};
use serde_json::{Value, json};

use crate::admin_host::{Host, World, row, wait_for};

const EVENTS_SECRET: (&str, &str) = ("DV_EVENTS_SECRET", "a-webhook-secret");

/// A world whose customers map is live: Dataverse calls the host at
/// `public_url` with the events secret.
async fn live_world() -> World {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let world = World::new(
        true,
        &format!("listen = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\""),
    )
    .await;
    let config = std::fs::read_to_string(&world.file).expect("config");
    let live = config
        .replacen(
            "name = \"customers\"\n",
            "name = \"customers\"\nmode = \"live\"\n",
            1,
        )
        .replace(
            "kind = \"dataverse\"",
            "kind = \"dataverse\"\nevents_secret_env = \"DV_EVENTS_SECRET\"",
        );
    assert_ne!(live, config);
    std::fs::write(&world.file, live).expect("config written");
    world
}

async fn save(world: &World, account: &str, name: &str) -> Result<(), String> {
    let mut fields = row(json!({"name": name}));
    DataverseConnector::bind(
        &mut fields,
        "msdyn_company",
        "cdm_companies",
        &Key::single("cdm_companycode", "usmf"),
    );
    world
        .dv
        .upsert("accounts", &Key::single("accountnumber", account), &fields)
        .await
        .map(drop)
        .map_err(|error| error.to_string())
}

async fn in_finops(world: &World, account: &str) -> Option<String> {
    let key = Key::new()
        .text("dataAreaId", "usmf")
        .text("CustomerAccount", account);
    world
        .fo
        .get("CustomersV3", &key)
        .await
        .expect("finops read")
        .and_then(|r| r["OrganizationName"].as_str().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_save_returns_once_finops_has_it_and_fails_once_the_host_is_killed() {
    let world = live_world().await;
    let host = Host::start_with(&world.file, &[EVENTS_SECRET]);
    wait_for(
        "the live steps and the company",
        Duration::from_secs(90),
        async || {
            let steps = world
                .dv
                .query_all("sdkmessageprocessingsteps", &Query::default())
                .await
                .unwrap_or_default();
            let live = steps
                .iter()
                .filter(|s| {
                    s["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("dualwrite customers "))
                        && s["mode"] == 0
                })
                .count();
            let company = world
                .dv
                .get("cdm_companies", &Key::single("cdm_companycode", "usmf"))
                .await
                .ok()
                .flatten();
            live == 3 && company.is_some()
        },
    )
    .await;
    let (code, out, err) = host.map(&["status", "customers"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("live from Dataverse") && out.contains("async from finops"),
        "{out}"
    );

    save(&world, "LIVE-1", "Saved live")
        .await
        .expect("the save commits");
    assert_eq!(
        in_finops(&world, "LIVE-1").await.as_deref(),
        Some("Saved live")
    );

    // SIGKILL: the steps stay registered, and no one answers them.
    drop(host);
    let error = save(&world, "LIVE-2", "Unsynced")
        .await
        .expect_err("the save fails while the host is down");
    assert!(error.contains("could not reach"), "{error}");
    let absent: Option<Value> = world
        .dv
        .get("accounts", &Key::single("accountnumber", "LIVE-2"))
        .await
        .expect("read")
        .map(Value::Object);
    assert!(absent.is_none(), "the save was rolled back: {absent:?}");
    assert!(in_finops(&world, "LIVE-2").await.is_none());
}
