//! Times from outside the process that would overflow `Instant` or
//! `Duration` arithmetic: a `Retry-After` of `u64::MAX` seconds or a date
//! in the year 9999, a token's `expires_in` of `u64::MAX`. The connector
//! clamps them and carries on; none may panic.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{any, post};
use dualwrite::connector::{ConnectorError, Credentials, DataverseConnector, Query};
use dualwrite_emulators::{RunningEmulator, ServiceKind};
use serde_json::{Value, json};

use super::support::{credentials, dataverse, fast_options, serve, start};
use dualwrite_emulators::EmulatorConfig;

/// The longest wait the connector takes from a service: a day.
const A_DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Sets the emulator's protection limits over its admin API.
async fn put_limits(emulator: &RunningEmulator, limits: Value) {
    let response = reqwest::Client::new()
        .put(format!("{}/admin/limits", emulator.url()))
        .json(&limits)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
}

/// A service answering 429 with each `Retry-After` of `waits` in turn,
/// then 200 with no rows.
async fn throttling(waits: Vec<String>) -> String {
    let answered = Arc::new(AtomicUsize::new(0));
    let router = Router::new().route(
        "/api/data/v9.2/{*rest}",
        any(move || {
            let answered = answered.clone();
            let waits = waits.clone();
            async move {
                match waits.get(answered.fetch_add(1, Ordering::SeqCst)) {
                    Some(wait) => (
                        StatusCode::TOO_MANY_REQUESTS,
                        [(header::RETRY_AFTER, wait.clone())],
                    )
                        .into_response(),
                    None => (StatusCode::OK, axum::Json(json!({"value": []}))).into_response(),
                }
            }
        }),
    );
    format!("{}/api/data/v9.2", serve(router).await)
}

/// Asserts a 429 ended the retries after `attempts`, asked to wait a day.
fn assert_gave_up(error: &ConnectorError, attempts: u32) {
    match error {
        ConnectorError::Unavailable {
            status,
            attempts: made,
            retry_after,
            ..
        } => {
            assert_eq!(*status, Some(429));
            assert_eq!(*made, attempts, "no retry into a wait past the budget");
            assert_eq!(*retry_after, Some(A_DAY), "clamped to a day");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_retry_after_of_u64_max_seconds_ends_the_retries_at_once() {
    // The token comes from the emulator; the service is a stub.
    let emulator = start(ServiceKind::Dataverse, EmulatorConfig::empty()).await;
    // A second spent waiting, then u64::MAX seconds asked: the time spent
    // plus the time asked overflows a `Duration`.
    let service = throttling(vec!["1".into(), u64::MAX.to_string()]).await;
    let dv = DataverseConnector::new(&service, credentials(&emulator), fast_options());
    let started = Instant::now();
    let error = dv
        .query_all("accounts", &Query::default())
        .await
        .expect_err("asked to wait longer than the budget");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "gave up after the one-second wait"
    );
    assert_gave_up(&error, 2);
    assert_eq!(dv.stats().throttled, 2);
    emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_protection_window_of_u64_max_seconds_is_a_clear_error() {
    let emulator = start(ServiceKind::Dataverse, EmulatorConfig::empty()).await;
    // One request per window of u64::MAX seconds: the second request is
    // answered 429 with a `Retry-After` of about u64::MAX seconds.
    put_limits(
        &emulator,
        json!({"requests_per_window": 1, "window_seconds": u64::MAX, "max_concurrent": 0}),
    )
    .await;
    let dv = dataverse(&emulator, fast_options());
    dv.query_all("accounts", &Query::default())
        .await
        .expect("the window's one request");
    let error = dv
        .query_all("accounts", &Query::default())
        .await
        .expect_err("throttled for longer than the budget");
    assert_gave_up(&error, 1);
    emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_retry_after_date_is_honoured_and_one_in_the_year_9999_is_clamped() {
    let emulator = start(ServiceKind::Dataverse, EmulatorConfig::empty()).await;
    let far = throttling(vec!["Fri, 31 Dec 9999 23:59:59 GMT".into()]).await;
    let dv = DataverseConnector::new(&far, credentials(&emulator), fast_options());
    let started = Instant::now();
    let error = dv
        .query_all("accounts", &Query::default())
        .await
        .expect_err("asked to wait for millennia");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "gave up at once"
    );
    assert_gave_up(&error, 1);

    // A date two seconds ahead is waited for (the 10 ms backoff is not).
    let near = throttling(vec![httpdate_in(Duration::from_secs(2))]).await;
    let dv = DataverseConnector::new(&near, credentials(&emulator), fast_options());
    let started = Instant::now();
    dv.query_all("accounts", &Query::default())
        .await
        .expect("retried after the date");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited for the date: {:?}",
        started.elapsed()
    );
    assert_eq!(dv.stats().retries, 1);
    emulator.shutdown().await.expect("shutdown");
}

/// The HTTP date `ahead` from now (whole seconds, as the format has).
fn httpdate_in(ahead: Duration) -> String {
    let at = chrono::Utc::now() + ahead;
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[tokio::test]
async fn a_token_that_expires_in_u64_max_seconds_is_cached_not_a_panic() {
    let emulator = start(ServiceKind::Dataverse, EmulatorConfig::empty()).await;
    // A token endpoint in front of the emulator's: the emulator's token,
    // with `expires_in: u64::MAX`.
    let upstream = emulator.token_url();
    let router = Router::new().route(
        "/token",
        post(move |body: String| {
            let upstream = upstream.clone();
            async move {
                let mut token: Value = reqwest::Client::new()
                    .post(&upstream)
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body)
                    .send()
                    .await
                    .expect("upstream token")
                    .json()
                    .await
                    .expect("token json");
                token["expires_in"] = json!(u64::MAX);
                axum::Json(token)
            }
        }),
    );
    let proxy = serve(router).await;
    let dv = DataverseConnector::new(
        &emulator.service_url(),
        Credentials {
            token_url: format!("{proxy}/token"),
            ..credentials(&emulator)
        },
        fast_options(),
    );
    for _ in 0..3 {
        dv.query_all("accounts", &Query::default())
            .await
            .expect("query with the long-lived token");
    }
    assert_eq!(dv.stats().tokens, 1, "one token serves every request");
    emulator.shutdown().await.expect("shutdown");
}
