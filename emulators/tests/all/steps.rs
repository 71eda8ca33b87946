//! Webhook registrations of the Dataverse emulator (`serviceendpoints`,
//! `sdkmessages`, `sdkmessagefilters`, `sdkmessageprocessingsteps`) and the
//! `RemoteExecutionContext`s its steps post after each commit.

use std::time::Duration;

use axum::http::HeaderMap;
use dualwrite_emulators::{Access, DataverseEmulator, EmulatorConfig, SecurityRole, TableAccess};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::support::{Harness, empty_config, error_message, send_json, token};

/// One request a webhook received.
type Received = (HeaderMap, Value);

/// A webhook on `listener` that records every request and answers 200.
fn serve_hook(listener: tokio::net::TcpListener) -> mpsc::UnboundedReceiver<Received> {
    let (send, receive) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: HeaderMap, axum::Json(body): axum::Json<Value>| {
                let send = send.clone();
                async move {
                    let _ = send.send((headers, body));
                    axum::http::StatusCode::OK
                }
            },
        ),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    receive
}

async fn hook() -> (String, mpsc::UnboundedReceiver<Received>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("hook listens");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    (url, serve_hook(listener))
}

async fn next(received: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(Duration::from_secs(20), received.recv())
        .await
        .expect("a context within 20 s")
        .expect("the hook runs")
}

/// Nothing more arrives within a second.
async fn quiet(received: &mut mpsc::UnboundedReceiver<Received>) {
    if let Ok(Some((_, body))) = tokio::time::timeout(Duration::from_secs(1), received.recv()).await
    {
        panic!("no context was expected, got {body}");
    }
}

/// The id in the `OData-EntityId` header of a create.
pub(super) async fn create(harness: &Harness, set: &str, body: Value) -> String {
    let response = harness
        .request(Method::POST, set)
        .json(&body)
        .send()
        .await
        .expect("sent");
    let status = response.status();
    let link = response
        .headers()
        .get("odata-entityid")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Some(link) = link else {
        panic!(
            "POST {set} answered {status}: {}",
            response.text().await.unwrap_or_default()
        );
    };
    link.rsplit_once('(')
        .map(|(_, id)| id.trim_end_matches(')').to_owned())
        .expect("an id in OData-EntityId")
}

pub(super) async fn one_id(harness: &Harness, path: &str, column: &str) -> String {
    let (status, body) = harness.get_json(path).await;
    assert_eq!(status, 200, "{path}: {body}");
    let rows = body["value"].as_array().expect("value");
    assert_eq!(rows.len(), 1, "{path}: {body}");
    rows[0][column].as_str().expect(column).to_owned()
}

/// The ids of the `sdkmessage` `message` and of its `sdkmessagefilter` on
/// accounts.
pub(super) async fn account_filter(harness: &Harness, message: &str) -> (String, String) {
    let message_id = one_id(
        harness,
        &format!("sdkmessages?$select=sdkmessageid&$filter=name eq '{message}'"),
        "sdkmessageid",
    )
    .await;
    let filter_id = one_id(
        harness,
        &format!(
            "sdkmessagefilters?$select=sdkmessagefilterid&$filter=_sdkmessageid_value eq {message_id} and primaryobjecttypecode eq 'account'"
        ),
        "sdkmessagefilterid",
    )
    .await;
    (message_id, filter_id)
}

/// Registers the webhook `url` with the header `x-dualwrite-secret: s3cret`.
pub(super) async fn endpoint(harness: &Harness, url: &str) -> String {
    create(
        harness,
        "serviceendpoints",
        json!({
            "name": "dualwrite dataverse", "url": url, "contract": 8, "authtype": 5,
            "authvalue": "<settings><setting name=\"x-dualwrite-secret\" value=\"s3cret &amp; more\" /></settings>",
        }),
    )
    .await
}

/// Registers a step of `message` on accounts posting to `endpoint`.
async fn step(harness: &Harness, endpoint: &str, message: &str, filtering: Option<&str>) -> String {
    let (message_id, filter_id) = account_filter(harness, message).await;
    let mut body = json!({
        "name": format!("test {message}"), "stage": 40, "mode": 1, "rank": 1,
        "supporteddeployment": 0, "asyncautodelete": true,
        "sdkmessageid@odata.bind": format!("/sdkmessages({message_id})"),
        "sdkmessagefilterid@odata.bind": format!("/sdkmessagefilters({filter_id})"),
        "eventhandler_serviceendpoint@odata.bind": format!("/serviceendpoints({endpoint})"),
    });
    if let Some(filtering) = filtering {
        body["filteringattributes"] = json!(filtering);
    }
    create(harness, "sdkmessageprocessingsteps", body).await
}

fn attribute<'v>(context: &'v Value, key: &str) -> Option<&'v Value> {
    context["InputParameters"][0]["value"]["Attributes"]
        .as_array()?
        .iter()
        .find(|pair| pair["key"] == key)
        .map(|pair| &pair["value"])
}

#[tokio::test]
async fn a_create_step_posts_the_documented_context_with_the_endpoint_headers() {
    let harness = Harness::dataverse().await;
    let (url, mut received) = hook().await;
    let endpoint = endpoint(&harness, &url).await;
    let step_id = step(&harness, &endpoint, "Create", None).await;

    let (status, listed) = harness
        .get_json("serviceendpoints?$filter=name eq 'dualwrite dataverse'")
        .await;
    assert_eq!(status, 200);
    let listed = &listed["value"][0];
    assert_eq!(listed["url"], url.as_str());
    assert_eq!(listed["contract"], 8);
    assert!(
        listed.get("authvalue").is_none(),
        "authvalue is never read back: {listed}"
    );

    let id = create(
        &harness,
        "accounts",
        json!({"name": "Pushed", "accountnumber": "P-1"}),
    )
    .await;
    let (headers, context) = next(&mut received).await;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("x-dualwrite-secret"), "s3cret & more");
    assert_eq!(header("x-ms-dynamics-entity-name"), "account");
    assert_eq!(header("x-ms-dynamics-request-name"), "Create");
    assert_eq!(
        header("x-request-id"),
        context["RequestId"].as_str().unwrap_or("?")
    );
    assert_eq!(
        header("x-ms-correlation-request-id"),
        context["CorrelationId"].as_str().unwrap_or("?")
    );
    assert!(!header("x-ms-dynamics-organization").is_empty());
    assert_eq!(context["MessageName"], "Create");
    assert_eq!(context["PrimaryEntityName"], "account");
    assert_eq!(context["PrimaryEntityId"], id.as_str());
    assert_eq!(context["Stage"], 40);
    assert_eq!(context["Mode"], 1);
    assert_eq!(context["Depth"], 1);
    assert_eq!(context["OwningExtension"]["Id"], step_id.as_str());
    assert!(context["BusinessUnitId"].is_string() && context["OperationCreatedOn"].is_string());
    let target = &context["InputParameters"][0];
    assert_eq!(target["key"], "Target");
    assert_eq!(target["value"]["LogicalName"], "account");
    assert_eq!(target["value"]["Id"], id.as_str());
    assert_eq!(attribute(&context, "name"), Some(&json!("Pushed")));
    assert_eq!(attribute(&context, "accountnumber"), Some(&json!("P-1")));
    harness.emulator.shutdown().await.expect("stops");
}

#[tokio::test]
async fn an_update_step_fires_only_for_its_attributes_and_a_delete_sends_a_reference() {
    let harness = Harness::dataverse().await;
    let (url, mut received) = hook().await;
    let endpoint = endpoint(&harness, &url).await;
    step(&harness, &endpoint, "Update", Some("name,creditlimit")).await;
    step(&harness, &endpoint, "Delete", None).await;
    let id = create(
        &harness,
        "accounts",
        json!({"name": "Before", "accountnumber": "P-2"}),
    )
    .await;
    quiet(&mut received).await;

    let patch = |body: Value| {
        harness
            .request(Method::PATCH, &format!("accounts({id})"))
            .json(&body)
            .send()
    };
    assert!(
        patch(json!({"telephone1": "555"}))
            .await
            .expect("sent")
            .status()
            .is_success()
    );
    quiet(&mut received).await;
    assert!(
        patch(json!({"name": "After"}))
            .await
            .expect("sent")
            .status()
            .is_success()
    );
    let (_, context) = next(&mut received).await;
    assert_eq!(context["MessageName"], "Update");
    assert_eq!(attribute(&context, "name"), Some(&json!("After")));
    assert_eq!(
        attribute(&context, "telephone1"),
        None,
        "only what the request set"
    );

    // A change set commits as one, and each of its writes is posted.
    let batch = format!(
        "--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\nPATCH {root}/accounts({id}) HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{{\"creditlimit\": 10}}\r\n--c--\r\n--b--\r\n",
        root = harness.emulator.service_url()
    );
    let response = harness
        .request(Method::POST, "$batch")
        .header("Content-Type", "multipart/mixed; boundary=b")
        .body(batch)
        .send()
        .await
        .expect("sent");
    assert!(response.status().is_success());
    let (_, context) = next(&mut received).await;
    assert_eq!(attribute(&context, "creditlimit"), Some(&json!(10)));

    let gone = harness
        .request(Method::DELETE, &format!("accounts({id})"))
        .send()
        .await
        .expect("sent");
    assert_eq!(gone.status(), 204);
    let (headers, context) = next(&mut received).await;
    assert_eq!(
        headers
            .get("x-ms-dynamics-request-name")
            .map(|v| v.as_bytes()),
        Some(&b"Delete"[..])
    );
    assert_eq!(context["MessageName"], "Delete");
    let target = &context["InputParameters"][0]["value"];
    assert!(
        target["__type"]
            .as_str()
            .is_some_and(|t| t.starts_with("EntityReference:")),
        "{target}"
    );
    assert_eq!(target["Id"], id.as_str());
    harness.emulator.shutdown().await.expect("stops");
}

#[tokio::test]
async fn contexts_wait_for_a_down_webhook_in_order_and_survive_a_restart() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = EmulatorConfig {
        data_dir: Some(dir.path().to_path_buf()),
        ..empty_config()
    };
    // A port with nothing listening yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let emulator = DataverseEmulator::start(config.clone())
        .await
        .expect("starts");
    let client = reqwest::Client::new();
    let harness = Harness {
        token: token(&client, &emulator).await,
        emulator,
        client,
    };
    let endpoint = endpoint(&harness, &url).await;
    step(&harness, &endpoint, "Create", None).await;
    for n in 1..=3 {
        create(&harness, "accounts", json!({"name": format!("Queued {n}")})).await;
    }
    harness.emulator.shutdown().await.expect("stops");

    let emulator = DataverseEmulator::start(config)
        .await
        .expect("starts again");
    let client = reqwest::Client::new();
    let harness = Harness {
        token: token(&client, &emulator).await,
        emulator,
        client,
    };
    let (status, steps) = harness.get_json("sdkmessageprocessingsteps").await;
    assert_eq!(status, 200);
    assert_eq!(steps["value"].as_array().map(Vec::len), Some(1), "{steps}");
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("the webhook comes up");
    let mut received = serve_hook(listener);
    for n in 1..=3 {
        let (_, context) = next(&mut received).await;
        assert_eq!(
            attribute(&context, "name"),
            Some(&json!(format!("Queued {n}")))
        );
    }
    quiet(&mut received).await;
    harness.emulator.shutdown().await.expect("stops");
}

#[tokio::test]
async fn registrations_are_checked_and_need_the_privileges() {
    let harness = Harness::dataverse().await;
    let (url, _received) = hook().await;
    let endpoint = endpoint(&harness, &url).await;
    let (status, body) = send_json(harness.request(Method::POST, "serviceendpoints").json(
        &json!({
            "name": "bus", "url": url, "contract": 1, "authtype": 2,
        }),
    ))
    .await;
    assert_eq!(status, 400);
    assert!(error_message(&body, "0x80060888").contains("contract 8"));
    let (status, body) = send_json(
        harness
            .request(Method::POST, "sdkmessageprocessingsteps")
            .json(&json!({
                "name": "early", "stage": 20, "mode": 1,
                "sdkmessageid@odata.bind": "/sdkmessages(00000000-0000-0000-0000-000000000001)",
            })),
    )
    .await;
    assert_eq!(status, 400);
    assert!(error_message(&body, "0x80060888").contains("stage 40"));
    let (status, body) = send_json(
        harness
            .request(Method::POST, "sdkmessageprocessingsteps")
            .json(&json!({
                "name": "x", "stage": 40, "mode": 1, "colour": "red",
            })),
    )
    .await;
    assert_eq!(status, 400);
    assert!(error_message(&body, "0x80060888").contains("'colour'"));
    step(&harness, &endpoint, "Create", None).await;
    let (status, body) =
        send_json(harness.request(Method::DELETE, &format!("serviceendpoints({endpoint})"))).await;
    assert_eq!(status, 400);
    assert!(
        error_message(&body, "0x80060888").contains("delete its sdkmessageprocessingsteps first")
    );
    harness.emulator.shutdown().await.expect("stops");

    // A user whose role grants accounts only may not register.
    let config = EmulatorConfig {
        roles: vec![SecurityRole {
            client_id: "dualwrite".into(),
            privileges: vec![TableAccess {
                table: "accounts".into(),
                access: vec![Access::Read, Access::Create],
                depth: Default::default(),
            }],
        }],
        ..empty_config()
    };
    let harness = Harness::start(dualwrite_emulators::ServiceKind::Dataverse, config).await;
    let (status, body) = send_json(harness.request(Method::POST, "serviceendpoints").json(
        &json!({
            "name": "n", "url": url, "contract": 8, "authtype": 5, "authvalue": "<settings />",
        }),
    ))
    .await;
    assert_eq!(status, 403);
    assert!(error_message(&body, "0x80040220").contains("prvCreateServiceEndpoint"));
    let (status, body) = harness.get_json("sdkmessageprocessingsteps").await;
    assert_eq!(status, 403);
    assert!(error_message(&body, "0x80040220").contains("prvReadSdkMessageProcessingStep"));
    harness.emulator.shutdown().await.expect("stops");
}
