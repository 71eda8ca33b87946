//! `GET /metrics` of a real `dualwrite run` process between two
//! emulators: refused without the admin token, served with it as
//! Prometheus text (read with a real parser), and its counters and
//! histograms move as rows sync.

use std::time::{Duration, Instant};

use crate::admin_host::World;
use crate::hosts::{ADMIN_TOKEN, Host};
use crate::prometheus::{Scrape, parse};

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
    let world = World::new(true, "").await;
    let host = Host::start(&world.file);
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
        world.customer("usmf", account, account).await;
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
    world.shutdown().await;
}
