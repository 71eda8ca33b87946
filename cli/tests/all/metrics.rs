//! `GET /metrics` of a real `dualwrite run` process between two
//! emulators: refused without the admin token, served with it as
//! Prometheus text (read with a real parser), and its counters and
//! histograms move as rows sync.

use std::time::{Duration, Instant};

use dualwrite::connector::{ConnectorOptions, FinopsConnector, Key};
use dualwrite_emulators::{self as emulator, RunningEmulator, ServiceKind};
use serde_json::json;

use crate::hosts::{ADMIN_TOKEN, Host, credentials, systems};
use crate::prometheus::{Scrape, parse};
use crate::support::empty_config;

fn config(finops: &RunningEmulator, dataverse: &RunningEmulator) -> String {
    let systems = systems(finops, dataverse);
    format!(
        r#"
[engine]
data = "data"
poll_interval = "100ms"
polling_share = 1.0
admin = "127.0.0.1:0"
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
fields = ["OrganizationName = name"]
"#
    )
}

async fn scrape(http: &reqwest::Client, host: &Host) -> Scrape {
    let response = http
        .get(format!("{}/metrics", host.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("/metrics answers");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/plain; version=0.0.4; charset=utf-8"),
        "the Prometheus text format's content type"
    );
    parse(&response.text().await.expect("a body"))
}

/// Scrapes until `check` holds, up to 30 s.
async fn until(
    what: &str,
    http: &reqwest::Client,
    host: &Host,
    check: impl Fn(&Scrape) -> bool,
) -> Scrape {
    let started = Instant::now();
    loop {
        let scrape = scrape(http, host).await;
        if check(&scrape) {
            return scrape;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}: {scrape:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const CUSTOMERS: [(&str, &str); 2] = [("map", "customers"), ("direction", "left-to-right")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_host_serves_metrics_that_move_as_rows_sync() {
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
    let company = |fields: serde_json::Value| fields.as_object().cloned().unwrap_or_default();
    fo.upsert(
        "LegalEntities",
        &Key::single("LegalEntityId", "usmf"),
        &company(json!({"Name": "Contoso USA"})),
    )
    .await
    .expect("legal entity");
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("sync.toml");
    std::fs::write(&file, config(&finops, &dataverse)).expect("config written");
    let host = Host::start(&file);
    let http = reqwest::Client::new();

    for token in [None, Some("not-the-token")] {
        let mut request = http.get(format!("{}/metrics", host.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("answers");
        assert_eq!(
            response.status(),
            401,
            "the metrics need the admin token ({token:?})"
        );
    }

    let legal = [("map", "legal-entities"), ("direction", "left-to-right")];
    let first = until("the legal entity written", &http, &host, |s| {
        s.value("dualwrite_written_total", &legal) == Some(1.0)
    })
    .await;
    assert_eq!(first.get("dualwrite_written_total", &CUSTOMERS), 0.0);
    assert_eq!(first.count("dualwrite_write_latency_seconds", &legal), 1.0);

    for account in ["P-1", "P-2", "P-3"] {
        fo.upsert(
            "CustomersV3",
            &Key::new()
                .text("dataAreaId", "usmf")
                .text("CustomerAccount", account),
            &company(json!({"OrganizationName": account})),
        )
        .await
        .expect("customer");
    }
    let synced = until("the three customers written", &http, &host, |s| {
        s.value("dualwrite_written_total", &CUSTOMERS) == Some(3.0)
    })
    .await;
    assert_eq!(
        synced.count("dualwrite_write_latency_seconds", &CUSTOMERS),
        3.0,
        "a latency per row written"
    );
    assert!(synced.get("dualwrite_captured_total", &CUSTOMERS) >= 3.0);
    for system in ["finops", "dataverse"] {
        let labels = [("system", system)];
        assert!(
            synced.get("dualwrite_http_requests_total", &labels)
                > first.get("dualwrite_http_requests_total", &labels),
            "{system} was asked more as rows synced"
        );
        assert_eq!(synced.get("dualwrite_http_throttled_total", &labels), 0.0);
    }
    let drained = until("the backlog drained", &http, &host, |s| {
        s.value("dualwrite_backlog", &CUSTOMERS) == Some(0.0)
    })
    .await;
    assert_eq!(
        drained.get("dualwrite_oldest_unsynced_age_seconds", &CUSTOMERS),
        0.0
    );
    host.stop();
    finops.shutdown().await.expect("finops stops");
    dataverse.shutdown().await.expect("dataverse stops");
}
