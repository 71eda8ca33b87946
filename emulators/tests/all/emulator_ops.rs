//! Service protection limits and fault injection, on both emulators.

use std::time::{Duration, Instant};

use dualwrite_emulators::{
    ClientCredentials, EmulatorConfig, FaultConfig, ProtectionLimits, ServiceKind,
};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Harness, empty_config, error_message};

#[tokio::test]
async fn requests_over_the_limit_get_429_with_retry_after() {
    let config = EmulatorConfig {
        limits: ProtectionLimits {
            requests_per_window: 3,
            window_seconds: 60,
            max_concurrent: 0,
        },
        clients: vec![
            ClientCredentials::default(),
            ClientCredentials {
                client_id: "second".into(),
                client_secret: "second-secret".into(),
                certificates: Vec::new(),
            },
        ],
        ..empty_config()
    };
    let h = Harness::start(ServiceKind::Dataverse, config).await;
    for _ in 0..3 {
        let (status, _) = h.get_json("accounts").await;
        assert_eq!(status, 200);
    }
    let response = h
        .request(Method::GET, "accounts")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!((1..=61).contains(&retry), "{retry}");
    let body: Value = response.json().await.expect("json");
    let message = error_message(&body, "0x80072322");
    assert!(message.contains("limit of 3"), "{message}");

    // Limits count per client: another client still has its budget.
    let response = h
        .client
        .post(h.emulator.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "second"),
            ("client_secret", "second-secret"),
        ])
        .send()
        .await
        .expect("sent");
    let body: Value = response.json().await.expect("json");
    let second = body["access_token"].as_str().expect("token").to_string();
    let response = h
        .client
        .get(format!("{}/accounts", h.emulator.service_url()))
        .bearer_auth(&second)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);

    // Lifting the limit at run time lets requests through again.
    let response = h
        .client
        .put(format!("{}/admin/limits", h.emulator.url()))
        .json(&ProtectionLimits::UNLIMITED)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let (status, _) = h.get_json("accounts").await;
    assert_eq!(status, 200);
    h.emulator.shutdown().await.expect("shutdown");
}

async fn put_faults(h: &Harness, faults: Value) {
    let response = h
        .client
        .put(format!("{}/admin/faults", h.emulator.url()))
        .json(&faults)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
}

#[tokio::test]
async fn faults_are_set_through_the_admin_endpoint() {
    let h = Harness::finops().await;
    put_faults(&h, json!({"error_share": 0.5})).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            h.request(Method::GET, "Currencies")
                .send()
                .await
                .expect("sent")
                .status()
                .as_u16(),
        );
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 503).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{statuses:?}"
    );

    put_faults(&h, json!({"throttle_share": 1.0})).await;
    let response = h
        .request(Method::GET, "Currencies")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));

    put_faults(&h, json!({"outage_seconds": 60})).await;
    let response = h
        .request(Method::GET, "Currencies")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let current: Value = h
        .client
        .get(format!("{}/admin/faults", h.emulator.url()))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(current["outage_seconds"], 60);

    put_faults(&h, json!({"latency_ms": 150})).await;
    let started = Instant::now();
    let (status, _) = h.get_json("Currencies").await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));

    put_faults(&h, json!({"drop_share": 1.0})).await;
    let result = async {
        let response = h.request(Method::GET, "Currencies").send().await?;
        response.bytes().await
    }
    .await;
    assert!(result.is_err(), "the connection drops mid-body");

    put_faults(&h, json!({})).await;
    let (status, _) = h.get_json("Currencies").await;
    assert_eq!(status, 200);

    let response = h
        .client
        .put(format!("{}/admin/faults", h.emulator.url()))
        .json(&json!({"no_such_fault": 1}))
        .send()
        .await
        .expect("sent");
    assert!(response.status().is_client_error());
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn faults_can_be_set_at_start() {
    let config = EmulatorConfig {
        faults: FaultConfig {
            error_share: 1.0,
            ..FaultConfig::default()
        },
        ..empty_config()
    };
    let h = Harness::start(ServiceKind::Dataverse, config).await;
    let (status, body) = h.get_json("accounts").await;
    assert_eq!(status, 503);
    assert!(body["error"]["message"].is_string());
    h.emulator.set_faults(FaultConfig::default());
    let (status, _) = h.get_json("accounts").await;
    assert_eq!(status, 200);
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn concurrent_requests_over_the_limit_get_429() {
    let config = EmulatorConfig {
        limits: ProtectionLimits {
            requests_per_window: 0,
            window_seconds: 300,
            max_concurrent: 1,
        },
        faults: FaultConfig {
            latency_ms: 400,
            ..FaultConfig::default()
        },
        ..empty_config()
    };
    let h = Harness::start(ServiceKind::Dataverse, config).await;
    let first = h.request(Method::GET, "accounts").send();
    let second = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        h.request(Method::GET, "accounts").send().await
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.expect("sent").status(), 200);
    let second = second.expect("sent");
    assert_eq!(second.status(), 429);
    assert!(second.headers().contains_key("retry-after"));
    let body: Value = second.json().await.expect("json");
    error_message(&body, "0x80072326");
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn finops_requires_a_token_too() {
    let h = Harness::finops().await;
    let response = h
        .client
        .get(format!("{}/CustomersV3", h.emulator.service_url()))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    h.emulator.shutdown().await.expect("shutdown");
}

#[test]
fn emulator_config_reads_from_toml() {
    let config: EmulatorConfig = toml::from_str(
        r#"
        listen = "127.0.0.1:8081"
        seed = "none"
        rows = 10
        [limits]
        requests_per_window = 100
        window_seconds = 60
        max_concurrent = 4
        [faults]
        error_share = 0.1
        "#,
    )
    .expect("config parses");
    assert_eq!(config.listen.port(), 8081);
    assert_eq!(config.seed, dualwrite_emulators::Seed::None);
    assert_eq!(config.limits.max_concurrent, 4);
    assert_eq!(config.faults.error_share, 0.1);
    assert_eq!(
        config.default_company, "usmf",
        "unnamed fields keep their defaults"
    );
    let error = toml::from_str::<EmulatorConfig>("listne = \"x\"").expect_err("typo refused");
    assert!(error.to_string().contains("listne"), "{error}");
}

#[tokio::test]
async fn an_outage_of_u64_max_seconds_is_clamped_to_a_year() {
    let h = Harness::dataverse().await;
    put_faults(&h, json!({"outage_seconds": u64::MAX})).await;
    let response = h
        .request(Method::GET, "accounts")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 503);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    let year = 365 * 24 * 60 * 60;
    assert!((year - 60..=year + 1).contains(&retry), "{retry}");
    let current: Value = h
        .client
        .get(format!("{}/admin/faults", h.emulator.url()))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(current["outage_seconds"], year, "the outage in force");
    put_faults(&h, json!({})).await;
    let (status, _) = h.get_json("accounts").await;
    assert_eq!(status, 200);
    h.emulator.shutdown().await.expect("shutdown");
}
