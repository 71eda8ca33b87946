//! Connector resilience against the emulators' fault injection and
//! protection limits: 429 with `Retry-After`, 5xx, outages past the retry
//! budget, the cap on requests in flight, tokens cached and refreshed.

use std::time::{Duration, Instant};

use dualwrite::connector::{
    ConnectorError, ConnectorOptions, Credentials, DataverseConnector, Key, Query, RetryPolicy,
};
use dualwrite_emulators::{FaultConfig, ProtectionLimits, ServiceKind};
use serde_json::json;

use super::support::{credentials, dataverse, fast_options, finops, row, start};
use dualwrite_emulators::EmulatorConfig;

#[tokio::test]
async fn throttled_requests_wait_for_retry_after_then_succeed() {
    let emulator = start(ServiceKind::Dataverse, EmulatorConfig::empty()).await;
    let dv = dataverse(&emulator, fast_options());
    dv.query_all("accounts", &Query::default())
        .await
        .expect("warm up");
    // Every second request is answered 429 with Retry-After: 1.
    emulator.set_faults(FaultConfig {
        throttle_share: 0.5,
        ..FaultConfig::default()
    });
    let started = Instant::now();
    for i in 0..2 {
        dv.upsert(
            "accounts",
            &Key::single("accountnumber", &format!("R-{i}")),
            &row(json!({"name": "Retried"})),
        )
        .await
        .expect("retried to success");
    }
    let elapsed = started.elapsed();
    let stats = dv.stats();
    assert!(stats.throttled >= 1, "{stats:?}");
    assert_eq!(stats.retries, stats.throttled, "{stats:?}");
    assert_eq!(
        stats.errors, 0,
        "a 429 is throttling, not an error: {stats:?}"
    );
    assert!(
        elapsed >= Duration::from_secs(1),
        "waited as Retry-After asked, not the 10 ms backoff: {elapsed:?}"
    );
    emulator.set_faults(FaultConfig::default());
    assert_eq!(
        dv.query_all("accounts", &Query::default())
            .await
            .expect("rows")
            .len(),
        2
    );
    emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    let emulator = start(ServiceKind::Finops, EmulatorConfig::empty()).await;
    let fo = finops(&emulator, fast_options());
    emulator.set_faults(FaultConfig {
        error_share: 0.5,
        ..FaultConfig::default()
    });
    let started = Instant::now();
    for _ in 0..4 {
        fo.query_all("CustomerGroups", &Query::default())
            .await
            .expect("retried to success");
    }
    let stats = fo.stats();
    assert!(stats.retries >= 2, "{stats:?}");
    assert_eq!(
        stats.errors, stats.retries,
        "each 503 is counted: {stats:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "backoff, not Retry-After"
    );
    emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn an_outage_longer_than_the_budget_is_a_clear_error() {
    let emulator = start(ServiceKind::Dataverse, EmulatorConfig::empty()).await;
    let options = ConnectorOptions {
        retry: RetryPolicy {
            budget: Duration::from_secs(2),
            ..fast_options().retry
        },
        ..fast_options()
    };
    let dv = dataverse(&emulator, options);
    emulator.set_faults(FaultConfig {
        outage_seconds: 60,
        ..FaultConfig::default()
    });
    let started = Instant::now();
    let error = dv
        .query_all("accounts", &Query::default())
        .await
        .expect_err("the outage outlasts the budget");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "gave up at once"
    );
    match &error {
        ConnectorError::Unavailable {
            status,
            retry_after,
            url,
            ..
        } => {
            assert_eq!(*status, Some(503));
            assert!(retry_after.is_some_and(|d| d > Duration::from_secs(2)));
            assert!(url.contains("/accounts"), "{url}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(error.is_transient());
    let message = error.to_string();
    assert!(
        message.contains("503") && message.contains("retry"),
        "{message}"
    );
    emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn an_unreachable_service_is_a_clear_error() {
    let emulator = start(ServiceKind::Dataverse, EmulatorConfig::empty()).await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let dead = format!(
        "http://{}/api/data/v9.2",
        closed.local_addr().expect("addr")
    );
    drop(closed);
    let dv = DataverseConnector::new(&dead, credentials(&emulator), fast_options());
    let error = dv
        .get("accounts", &Key::single("accountnumber", "X"))
        .await
        .expect_err("nothing listens");
    match &error {
        ConnectorError::Unavailable {
            status, attempts, ..
        } => {
            assert_eq!(*status, None);
            assert_eq!(*attempts, 5);
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(
        dv.stats().errors,
        5,
        "each attempt without an answer is an error"
    );
    assert!(error.to_string().contains("connect"), "{error}");
    emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn requests_in_flight_stay_under_the_cap() {
    let emulator = start(ServiceKind::Dataverse, EmulatorConfig::empty()).await;
    emulator.set_limits(ProtectionLimits {
        max_concurrent: 2,
        ..ProtectionLimits::UNLIMITED
    });
    emulator.set_faults(FaultConfig {
        latency_ms: 100,
        ..FaultConfig::default()
    });
    let no_retries = |max_in_flight| ConnectorOptions {
        max_in_flight,
        retry: RetryPolicy {
            max_attempts: 1,
            ..fast_options().retry
        },
        ..fast_options()
    };
    let burst = |dv: DataverseConnector| async move {
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..6 {
            let dv = dv.clone();
            calls.spawn(async move { dv.query_all("accounts", &Query::default()).await });
        }
        calls.join_all().await
    };

    let capped = dataverse(&emulator, no_retries(2));
    capped
        .query_all("accounts", &Query::default())
        .await
        .expect("token");
    let results = burst(capped.clone()).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(capped.stats().throttled, 0);

    // The same burst without the cap trips the service's limit: the test
    // above could fail.
    let uncapped = dataverse(&emulator, no_retries(6));
    uncapped
        .query_all("accounts", &Query::default())
        .await
        .expect("token");
    let results = burst(uncapped.clone()).await;
    assert!(results.iter().any(Result::is_err));
    assert!(uncapped.stats().throttled >= 1);
    emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn throttling_lowers_the_concurrency_and_successes_raise_it_back() {
    let emulator = start(ServiceKind::Dataverse, EmulatorConfig::empty()).await;
    emulator.set_limits(ProtectionLimits {
        max_concurrent: 3,
        ..ProtectionLimits::UNLIMITED
    });
    emulator.set_faults(FaultConfig {
        latency_ms: 100,
        ..FaultConfig::default()
    });
    let dv = dataverse(
        &emulator,
        ConnectorOptions {
            max_in_flight: 8,
            retry: RetryPolicy {
                max_attempts: 10,
                budget: Duration::from_secs(30),
                ..fast_options().retry
            },
            ..fast_options()
        },
    );
    dv.query_all("accounts", &Query::default())
        .await
        .expect("token");
    assert_eq!(dv.stats().concurrency, 8, "it starts at the maximum");
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let dv = dv.clone();
        calls.spawn(async move { dv.query_all("accounts", &Query::default()).await });
    }
    let results = calls.join_all().await;
    assert!(
        results.iter().all(Result::is_ok),
        "every call gets through: {results:?}"
    );
    let stats = dv.stats();
    assert!(stats.throttled >= 1, "{stats:?}");
    assert!(stats.concurrency < 8, "a 429 lowered the limit: {stats:?}");
    // The service recovers: a round of successes at each step raises the
    // limit by one, back to the maximum and no further.
    emulator.set_faults(FaultConfig::default());
    emulator.set_limits(ProtectionLimits::UNLIMITED);
    for _ in 0..60 {
        dv.query_all("accounts", &Query::default())
            .await
            .expect("query");
    }
    assert_eq!(dv.stats().concurrency, 8, "{:?}", dv.stats());
    emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn tokens_are_cached_refreshed_and_never_printed() {
    let emulator = start(ServiceKind::Dataverse, EmulatorConfig::empty()).await;
    let cached = dataverse(&emulator, fast_options());
    for _ in 0..3 {
        cached
            .query_all("accounts", &Query::default())
            .await
            .expect("query");
    }
    assert_eq!(cached.stats().tokens, 1, "one token serves every request");

    // A refresh margin longer than the token's life: each request finds
    // the token about to expire and fetches a new one.
    let refreshing = dataverse(
        &emulator,
        ConnectorOptions {
            token_refresh_margin: Duration::from_secs(3600),
            ..fast_options()
        },
    );
    for _ in 0..3 {
        refreshing
            .query_all("accounts", &Query::default())
            .await
            .expect("query");
    }
    assert_eq!(refreshing.stats().tokens, 3);

    let wrong = Credentials {
        client_secret: "not-the-secret".into(),
        ..credentials(&emulator)
    };
    assert!(!format!("{wrong:?}").contains("not-the-secret"));
    let dv = DataverseConnector::new(&emulator.service_url(), wrong, fast_options());
    assert!(!format!("{dv:?}").contains("not-the-secret"));
    let error = dv
        .query_all("accounts", &Query::default())
        .await
        .expect_err("refused");
    assert!(
        matches!(
            error,
            ConnectorError::Auth {
                status: Some(_),
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("secret") && !message.contains("not-the-secret"),
        "{message}"
    );
    emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_token_the_service_no_longer_knows_is_replaced_once() {
    let emulator = start(ServiceKind::Dataverse, EmulatorConfig::empty()).await;
    let addr = emulator.addr();
    let dv = dataverse(&emulator, fast_options());
    dv.query_all("accounts", &Query::default())
        .await
        .expect("query");
    assert_eq!(dv.stats().tokens, 1);
    // A restarted service has forgotten the tokens it issued: the next
    // request gets 401, and the connector fetches a new token and retries.
    emulator.shutdown().await.expect("shutdown");
    let restarted = start(
        ServiceKind::Dataverse,
        EmulatorConfig {
            listen: addr,
            ..EmulatorConfig::empty()
        },
    )
    .await;
    dv.query_all("accounts", &Query::default())
        .await
        .expect("a fresh token after the 401");
    assert_eq!(dv.stats().tokens, 2);
    restarted.shutdown().await.expect("shutdown");
}
