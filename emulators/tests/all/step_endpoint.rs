//! What the webhook step tests share: an endpoint that records its calls
//! and answers as told, step and image registration, and readers of the
//! contexts' entities.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use reqwest::Method;
use serde_json::{Value, json};

use super::steps::{account_filter, create};
use super::support::Harness;

/// One call an endpoint received.
pub(super) type Call = (HeaderMap, Value);

/// An endpoint's answer: its status and body.
pub(super) type Reply = Pin<Box<dyn Future<Output = (StatusCode, String)> + Send>>;

/// What an endpoint answers to its `n`th call (1-based) with `context`.
pub(super) type Answer = Arc<dyn Fn(usize, Value) -> Reply + Send + Sync>;

/// An endpoint on `127.0.0.1:0` that records each call and answers with
/// `answer`.
pub(super) struct Endpoint {
    pub(super) url: String,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Endpoint {
    pub(super) async fn start(answer: Answer) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("endpoint listens");
        let url = format!("http://{}/hook", listener.local_addr().expect("address"));
        let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
        let recorded = calls.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: HeaderMap, axum::Json(body): axum::Json<Value>| {
                    let recorded = recorded.clone();
                    let answer = answer.clone();
                    async move {
                        let n = {
                            let mut calls = recorded.lock().expect("calls");
                            calls.push((headers, body.clone()));
                            calls.len()
                        };
                        answer(n, body).await
                    }
                },
            ),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, calls }
    }

    /// An endpoint answering each call with the next status of `script`,
    /// 200 once it is empty; a refusal carries `{"error":{"message":…}}`.
    pub(super) async fn scripted(script: Arc<Mutex<VecDeque<(u16, &'static str)>>>) -> Self {
        Self::start(Arc::new(move |_, _| {
            let next = script.lock().expect("script").pop_front();
            Box::pin(async move {
                match next {
                    Some((status, message)) => (
                        StatusCode::from_u16(status).expect("a status"),
                        json!({"error": {"message": message}}).to_string(),
                    ),
                    None => (StatusCode::OK, String::new()),
                }
            })
        }))
        .await
    }

    /// An endpoint answering 200 to every call.
    pub(super) async fn accepting() -> Self {
        Self::start(Arc::new(|_, _| {
            Box::pin(async { (StatusCode::OK, String::new()) })
        }))
        .await
    }

    pub(super) fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("calls").clone()
    }

    pub(super) fn contexts(&self) -> Vec<Value> {
        self.calls()
            .into_iter()
            .map(|(_, context)| context)
            .collect()
    }
}

/// Registers a step of `message` on accounts in `stage` and `mode`.
pub(super) async fn register(
    harness: &Harness,
    endpoint: &str,
    message: &str,
    stage: i64,
    mode: i64,
    rank: i64,
) -> String {
    let (message_id, filter_id) = account_filter(harness, message).await;
    create(
        harness,
        "sdkmessageprocessingsteps",
        json!({
            "name": format!("{message} {stage} rank {rank}"), "stage": stage, "mode": mode,
            "rank": rank, "supporteddeployment": 0,
            "sdkmessageid@odata.bind": format!("/sdkmessages({message_id})"),
            "sdkmessagefilterid@odata.bind": format!("/sdkmessagefilters({filter_id})"),
            "eventhandler_serviceendpoint@odata.bind": format!("/serviceendpoints({endpoint})"),
        }),
    )
    .await
}

pub(super) fn image_body(step: &str, alias: &str, imagetype: i64, attributes: &str) -> Value {
    json!({
        "sdkmessageprocessingstepid@odata.bind": format!("/sdkmessageprocessingsteps({step})"),
        "name": alias, "entityalias": alias, "imagetype": imagetype,
        "messagepropertyname": "Target", "attributes": attributes,
    })
}

/// The `(key, value)` pairs of an `Entity`'s `Attributes`.
fn attributes(entity: &Value) -> Vec<(String, Value)> {
    entity["Attributes"]
        .as_array()
        .map(|pairs| {
            pairs
                .iter()
                .map(|pair| {
                    (
                        pair["key"].as_str().unwrap_or("?").to_owned(),
                        pair["value"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn attribute(entity: &Value, key: &str) -> Option<Value> {
    attributes(entity)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

pub(super) fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

pub(super) async fn post_account(harness: &Harness, body: Value) -> (StatusCode, Value) {
    let response = harness
        .request(Method::POST, "accounts")
        .header("Prefer", "return=representation")
        .json(&body)
        .send()
        .await
        .expect("sent");
    let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
    (status, response.json().await.unwrap_or(Value::Null))
}

pub(super) async fn account_names(harness: &Harness) -> Vec<String> {
    let (status, body) = harness.get_json("accounts?$select=name").await;
    assert_eq!(status, 200, "{body}");
    let mut names: Vec<String> = body["value"]
        .as_array()
        .expect("value")
        .iter()
        .filter_map(|row| row["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}
