//! Requests per second against both emulators, in-process over real HTTP
//! and real sled storage: single upserts from concurrent clients, and
//! `$batch` requests of 1,000 upserts in one change set.
//!
//! Run with `cargo bench -p dualwrite --bench emulators`; prints a table.

use std::time::{Duration, Instant};

use dualwrite_emulators::{
    self as emulator, EmulatorConfig, ProtectionLimits, RunningEmulator, Seed, ServiceKind,
};
use tokio::task::JoinSet;

/// Single requests per measurement.
const SINGLE_REQUESTS: usize = 10_000;
/// Concurrent clients for single requests.
const CLIENTS: usize = 16;
/// `$batch` requests per measurement.
const BATCHES: usize = 20;
/// Upserts per `$batch`.
const BATCH_SIZE: usize = 1000;

struct Measurement {
    service: &'static str,
    operation: &'static str,
    requests: usize,
    rows: usize,
    elapsed: Duration,
}

async fn start(kind: ServiceKind) -> RunningEmulator {
    let config = EmulatorConfig {
        seed: Seed::None,
        limits: ProtectionLimits::UNLIMITED,
        ..EmulatorConfig::default()
    };
    emulator::start(kind, config)
        .await
        .expect("emulator starts")
}

async fn token(client: &reqwest::Client, emulator: &RunningEmulator) -> String {
    let body: serde_json::Value = client
        .post(emulator.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "dualwrite"),
            ("client_secret", "dualwrite-secret"),
        ])
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("token json");
    body["access_token"].as_str().expect("token").to_string()
}

/// One single write: Dataverse upserts by alternate key (PATCH), finops
/// creates by POST (its PATCH only updates).
fn single(kind: ServiceKind, root: &str, i: usize) -> (reqwest::Method, String, String) {
    match kind {
        ServiceKind::Dataverse => (
            reqwest::Method::PATCH,
            format!("{root}/accounts(accountnumber='S-{i:07}')"),
            format!(r#"{{"name":"Bench {i}","creditlimit":{}}}"#, i % 1000),
        ),
        ServiceKind::Finops => (
            reqwest::Method::POST,
            format!("{root}/CustomersV3"),
            format!(
                r#"{{"CustomerAccount":"S-{i:07}","OrganizationName":"Bench {i}","CreditLimit":{}}}"#,
                i % 1000
            ),
        ),
    }
}

async fn singles(kind: ServiceKind, emulator: &RunningEmulator, token: &str) -> Measurement {
    let client = reqwest::Client::new();
    let root = emulator.service_url();
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for c in 0..CLIENTS {
        let client = client.clone();
        let root = root.clone();
        let token = token.to_string();
        tasks.spawn(async move {
            for i in (c..SINGLE_REQUESTS).step_by(CLIENTS) {
                let (method, url, body) = single(kind, &root, i);
                let response = client
                    .request(method, url)
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("request");
                assert!(
                    response.status().is_success(),
                    "status {}",
                    response.status()
                );
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    Measurement {
        service: name(kind),
        operation: "single upsert",
        requests: SINGLE_REQUESTS,
        rows: SINGLE_REQUESTS,
        elapsed: started.elapsed(),
    }
}

fn batch_body(kind: ServiceKind, batch: usize) -> String {
    let mut out = String::from(
        "--batch_bench\r\nContent-Type: multipart/mixed; boundary=changeset_bench\r\n\r\n",
    );
    for n in 0..BATCH_SIZE {
        let i = batch * BATCH_SIZE + n;
        let (line, body) = match kind {
            ServiceKind::Dataverse => (
                format!("PATCH accounts(accountnumber='B-{i:07}') HTTP/1.1"),
                format!(r#"{{"name":"Batch {i}","creditlimit":{}}}"#, i % 1000),
            ),
            ServiceKind::Finops => (
                "POST CustomersV3 HTTP/1.1".to_string(),
                format!(r#"{{"CustomerAccount":"B-{i:07}","OrganizationName":"Batch {i}"}}"#),
            ),
        };
        out.push_str(&format!(
            "--changeset_bench\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: {}\r\n\r\n{line}\r\nContent-Type: application/json\r\n\r\n{body}\r\n",
            n + 1
        ));
    }
    out.push_str("--changeset_bench--\r\n--batch_bench--\r\n");
    out
}

async fn batches(kind: ServiceKind, emulator: &RunningEmulator, token: &str) -> Measurement {
    let client = reqwest::Client::new();
    let bodies: Vec<String> = (0..BATCHES).map(|b| batch_body(kind, b)).collect();
    let started = Instant::now();
    for body in bodies {
        let response = client
            .post(format!("{}/$batch", emulator.service_url()))
            .bearer_auth(token)
            .header("content-type", "multipart/mixed; boundary=batch_bench")
            .body(body)
            .send()
            .await
            .expect("batch request");
        assert!(response.status().is_success());
        let text = response.text().await.expect("batch response");
        assert!(
            !text.contains("HTTP/1.1 4"),
            "a batch request failed: {}",
            &text[..text.len().min(2000)]
        );
    }
    Measurement {
        service: name(kind),
        operation: "$batch of 1,000 upserts",
        requests: BATCHES,
        rows: BATCHES * BATCH_SIZE,
        elapsed: started.elapsed(),
    }
}

fn name(kind: ServiceKind) -> &'static str {
    match kind {
        ServiceKind::Dataverse => "dataverse",
        ServiceKind::Finops => "finops",
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let results = runtime.block_on(async {
        let mut results = Vec::new();
        for kind in [ServiceKind::Dataverse, ServiceKind::Finops] {
            let emulator = start(kind).await;
            let client = reqwest::Client::new();
            let token = token(&client, &emulator).await;
            results.push(singles(kind, &emulator, &token).await);
            results.push(batches(kind, &emulator, &token).await);
            emulator.shutdown().await.expect("shutdown");
        }
        results
    });
    println!("| service | operation | requests | rows | seconds | requests/s | rows/s |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for m in results {
        let secs = m.elapsed.as_secs_f64();
        println!(
            "| {} | {} | {} | {} | {:.2} | {:.1} | {:.0} |",
            m.service,
            m.operation,
            m.requests,
            m.rows,
            secs,
            m.requests as f64 / secs,
            m.rows as f64 / secs
        );
    }
}
