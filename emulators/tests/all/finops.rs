//! Finance and Operations OData: companies, compound keys, CRUD, paging,
//! enums, data events (the documented context) to webhooks, pre-commit hooks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::routing::post;
use dualwrite_emulators::{EmulatorConfig, Seed, ServiceKind};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Harness, empty_config, error_message, send_json};

fn demo() -> EmulatorConfig {
    EmulatorConfig {
        seed: Seed::Demo,
        ..empty_config()
    }
}

fn companies(body: &Value) -> Vec<String> {
    let mut out: Vec<String> = body["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|r| r["dataAreaId"].as_str().expect("dataAreaId").to_string())
        .collect();
    out.sort();
    out.dedup();
    out
}

#[tokio::test]
async fn cross_company_and_compound_keys() {
    let h = Harness::start(ServiceKind::Finops, demo()).await;
    let (status, body) = h.get_json("CustomersV3").await;
    assert_eq!(status, 200);
    assert_eq!(
        companies(&body),
        ["usmf"],
        "only the default company without cross-company"
    );
    let (_, body) = h.get_json("CustomersV3?cross-company=true").await;
    assert_eq!(companies(&body), ["demf", "gbsi", "usmf"]);
    assert!(
        body["@odata.context"]
            .as_str()
            .expect("context")
            .ends_with("/data/$metadata#CustomersV3")
    );

    // Another company's row by key needs cross-company=true, for reads and writes.
    let (status, body) = h
        .get_json("CustomersV3(dataAreaId='demf',CustomerAccount='DE-001')")
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(error_message(&body, "NotFound").contains("cross-company=true"));
    let (status, body) = h
        .get_json("CustomersV3(dataAreaId='demf',CustomerAccount='DE-001')?cross-company=true")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["CustomerAccount"], "DE-001");
    assert!(body["@odata.etag"].is_string());
    let key = "CustomersV3(dataAreaId='DEMF',CustomerAccount='DE-001')";
    let response = h
        .request(Method::PATCH, key)
        .json(&json!({"CreditLimit": 1}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 404);
    let response = h
        .request(Method::PATCH, &format!("{key}?cross-company=true"))
        .json(&json!({"CreditLimit": 1}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);

    let (status, body) = h.get_json("CustomersV3(CustomerAccount='DE-001')").await;
    assert_eq!(status, 400);
    assert!(error_message(&body, "BadRequest").contains("dataAreaId"));
    let (status, _) = h
        .get_json("CustomersV3(dataAreaId='demf',CustomerAccount='XX-999')?cross-company=true")
        .await;
    assert_eq!(status, 404);

    let (_, body) = h
        .get_json("CustomersV3?cross-company=true&$filter=CreditLimitIsMandatory eq Microsoft.Dynamics.DataEntities.NoYes'Yes' and dataAreaId eq 'gbsi'&$select=CustomerAccount,CreditLimit&$orderby=CreditLimit desc")
        .await;
    let accounts: Vec<&str> = body["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|r| r["CustomerAccount"].as_str().expect("acct"))
        .collect();
    assert_eq!(accounts, ["GB-005", "GB-003", "GB-001"]);
    assert!(body["value"][0].get("OrganizationName").is_none());

    for (path, expected) in [
        ("CustomersV3/$count", "6"),
        ("CustomersV3/$count?cross-company=true", "18"),
        (
            "CustomersV3/$count?cross-company=true&$filter=dataAreaId eq 'gbsi'",
            "6",
        ),
    ] {
        let response = h.request(Method::GET, path).send().await.expect("sent");
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .expect("text")
                .starts_with("text/plain")
        );
        assert_eq!(response.text().await.expect("text"), expected, "{path}");
    }
    let (_, body) = h.get_json("LegalEntities").await;
    assert_eq!(
        body["value"].as_array().expect("value").len(),
        3,
        "global entities ignore the company"
    );
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn create_update_delete_by_full_key() {
    let h = Harness::finops().await;
    let response = h
        .request(Method::POST, "CustomersV3")
        .json(&json!({
            "dataAreaId": "USMF",
            "CustomerAccount": "US-900",
            "OrganizationName": "Northwind",
            "CustomerGroupId": "10",
            "IsOneTimeCustomer": "Microsoft.Dynamics.DataEntities.NoYes'Yes'",
            "CreditLimit": 2500.75,
        }))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"]
        .to_str()
        .expect("text")
        .to_string();
    assert!(
        location.ends_with("/data/CustomersV3(dataAreaId='usmf',CustomerAccount='US-900')"),
        "{location}"
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["IsOneTimeCustomer"], "Yes");
    assert_eq!(body["dataAreaId"], "usmf");

    let response = h
        .request(Method::POST, "CustomersV3")
        .json(&json!({"dataAreaId": "usmf", "CustomerAccount": "us-900"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 400, "keys compare without case");

    let key = "CustomersV3(dataAreaId='usmf',CustomerAccount='US-900')";
    let response = h
        .request(Method::PATCH, key)
        .json(&json!({"CreditLimit": 100}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let (_, body) = h.get_json(key).await;
    assert_eq!(body["CreditLimit"], 100);
    assert_eq!(body["OrganizationName"], "Northwind");

    let cases = [
        (json!({"NoSuchField": 1}), "NoSuchField"),
        (json!({"CreditLimit": "much"}), "CreditLimit"),
        (json!({"CustomerAccount": "US-901"}), "cannot be changed"),
        (
            json!({"CustomerGroupId": "a-much-too-long-group"}),
            "maximum",
        ),
    ];
    for (body, needle) in cases {
        let response = h
            .request(Method::PATCH, key)
            .json(&body)
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.expect("json");
        assert!(
            error_message(&error, "BadRequest").contains(needle),
            "{error}"
        );
    }
    let response = h
        .request(
            Method::PATCH,
            "CustomersV3(dataAreaId='usmf',CustomerAccount='NOPE')",
        )
        .json(&json!({"CreditLimit": 1}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 404, "PATCH does not create");

    let response = h.request(Method::DELETE, key).send().await.expect("sent");
    assert_eq!(response.status(), 204);
    let (status, _) = h.get_json(key).await;
    assert_eq!(status, 404);
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn paging_with_next_link_and_generated_rows() {
    let config = EmulatorConfig {
        rows: 25,
        ..empty_config()
    };
    let h = Harness::start(ServiceKind::Finops, config).await;
    let mut url = format!(
        "{}/CustomersV3?cross-company=true&$count=true",
        h.emulator.service_url()
    );
    let mut accounts = Vec::new();
    loop {
        let response = h
            .client
            .get(&url)
            .bearer_auth(&h.token)
            .header("Prefer", "odata.maxpagesize=10")
            .send()
            .await
            .expect("sent");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["@odata.count"], 25);
        accounts.extend(
            body["value"]
                .as_array()
                .expect("value")
                .iter()
                .map(|r| r["CustomerAccount"].as_str().expect("acct").to_string()),
        );
        match body.get("@odata.nextLink").and_then(Value::as_str) {
            Some(next) => {
                assert!(next.contains("$skip="), "{next}");
                url = next.to_string();
            }
            None => break,
        }
    }
    accounts.sort();
    assert_eq!(accounts.len(), 25);
    assert_eq!(accounts[0], "BULK-0000000");
    assert_eq!(accounts[24], "BULK-0000024");
    let (_, body) = h
        .get_json("CustomersV3?cross-company=true&$top=5&$skip=20")
        .await;
    assert_eq!(body["value"].as_array().expect("value").len(), 5);
    let (status, body) = h
        .get_json(
            "CustomersV3?cross-company=true&$skip=18446744073709551615&$top=18446744073709551615",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["value"], json!([]));
    h.emulator.shutdown().await.expect("shutdown");
}

/// A webhook receiver that refuses its first `refuse` deliveries.
async fn receiver(refuse: usize) -> (String, Arc<Mutex<Vec<Value>>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(Mutex::new(0usize));
    let store = seen.clone();
    let app = axum::Router::new().route(
        "/events",
        post(
            move |headers: axum::http::HeaderMap, Json(mut event): Json<Value>| {
                let store = store.clone();
                let calls = calls.clone();
                async move {
                    let mut n = calls.lock().expect("lock");
                    *n += 1;
                    if *n <= refuse {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    // What the delivery's secret header said, kept beside the
                    // event for the test to check.
                    let secret = headers
                        .get("x-dualwrite-secret")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    event["(secret header)"] = json!(secret);
                    store.lock().expect("lock").push(event);
                    StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/events", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen, task)
}

#[tokio::test]
async fn data_events_reach_webhooks_with_retries() {
    let h = Harness::finops().await;
    let (url, seen, task) = receiver(2).await;
    let response = h
        .client
        .post(format!("{}/admin/subscriptions", h.emulator.url()))
        .json(&json!({"url": url, "entities": ["CustomersV3"], "headers": {"x-dualwrite-secret": "s3cret"}}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 201);
    let key = "CustomersV3(dataAreaId='usmf',CustomerAccount='EV-1')";
    h.request(Method::POST, "CustomersV3")
        .json(&json!({"CustomerAccount": "EV-1"}))
        .send()
        .await
        .expect("sent");
    h.request(Method::PATCH, key)
        .json(&json!({"OrganizationName": "Evented"}))
        .send()
        .await
        .expect("sent");
    h.request(Method::DELETE, key).send().await.expect("sent");
    h.request(Method::POST, "Currencies")
        .json(&json!({"CurrencyCode": "CHF"}))
        .send()
        .await
        .expect("sent");
    let mut waited = 0;
    while seen.lock().expect("lock").len() < 3 && waited < 200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    let events = seen.lock().expect("lock").clone();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["MessageName"].as_str().expect("MessageName"))
        .collect();
    assert_eq!(
        kinds,
        ["Create", "Update", "Delete"],
        "in order, after two refused deliveries, no Currencies"
    );
    // Each is a RemoteExecutionContext: the entity, Target (and PreImage for
    // updates and deletes) as Entities with `{"key","value"}` attributes.
    let parameter = |event: &Value, name: &str| -> Option<Value> {
        event["InputParameters"]
            .as_array()
            .expect("InputParameters")
            .iter()
            .find(|p| p["key"] == name)
            .map(|p| p["value"].clone())
    };
    let attribute = |entity: &Value, field: &str| -> Value {
        entity["Attributes"]
            .as_array()
            .expect("Attributes")
            .iter()
            .find(|a| a["key"] == field)
            .map(|a| a["value"].clone())
            .unwrap_or(Value::Null)
    };
    for event in &events {
        assert_eq!(event["PrimaryEntityName"], "CustomersV3", "{event}");
        assert_eq!(event["Stage"], 40);
        assert!(event["CorrelationId"].is_string() && event["BusinessUnitId"].is_string());
        assert!(
            event["OperationCreatedOn"]
                .as_str()
                .is_some_and(|t| t.starts_with("/Date(")),
            "{event}"
        );
        assert_eq!(
            event["(secret header)"], "s3cret",
            "the subscription's header"
        );
        let target = parameter(event, "Target").expect("Target");
        assert_eq!(target["LogicalName"], "CustomersV3");
        assert_eq!(attribute(&target, "CustomerAccount"), "EV-1");
        assert_eq!(attribute(&target, "dataAreaId"), "usmf");
    }
    assert!(
        parameter(&events[0], "PreImage").is_none(),
        "a create has none"
    );
    let updated = parameter(&events[1], "Target").expect("Target");
    let before = parameter(&events[1], "PreImage").expect("PreImage");
    assert_eq!(attribute(&updated, "OrganizationName"), "Evented");
    assert_ne!(attribute(&before, "OrganizationName"), "Evented");
    let deleted = parameter(&events[2], "Target").expect("Target");
    assert_eq!(
        attribute(&deleted, "OrganizationName"),
        "Evented",
        "a delete's Target holds the fields of the row deleted"
    );
    assert!(parameter(&events[2], "PreImage").is_some());
    h.emulator.shutdown().await.expect("shutdown");
    task.abort();
}

#[tokio::test]
async fn pre_commit_hooks_can_refuse_writes() {
    let h = Harness::finops().await;
    // A hook that refuses with an OData error.
    let app = axum::Router::new().route(
        "/hook",
        post(|Json(change): Json<Value>| async move {
            let limit = change["row"]["CreditLimit"].as_f64().unwrap_or(0.0);
            if limit > 100_000.0 {
                (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": {"code": "Down", "message": "the credit service is down"}})))
            } else if limit > 1000.0 {
                (StatusCode::BAD_REQUEST, Json(json!({"error": {"code": "Refused", "message": "credit limit too high for Dataverse"}})))
            } else {
                (StatusCode::OK, Json(json!({})))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let set = |url: String| {
        h.client
            .put(format!("{}/admin/hooks/CustomersV3", h.emulator.url()))
            .json(&json!({"url": url}))
            .send()
    };
    assert_eq!(set(hook).await.expect("sent").status(), 204);
    let (status, body) = send_json(
        h.request(Method::POST, "CustomersV3")
            .json(&json!({"CustomerAccount": "HK-1", "CreditLimit": 5000})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        error_message(&body, "BadRequest").contains("credit limit too high"),
        "{body}"
    );
    let (status, _) = h
        .get_json("CustomersV3(dataAreaId='usmf',CustomerAccount='HK-1')")
        .await;
    assert_eq!(status, 404, "a refused write is not committed");
    // finops answers every refusal with 400, whatever the hook's status.
    let (status, body) = send_json(
        h.request(Method::POST, "CustomersV3")
            .json(&json!({"CustomerAccount": "HK-4", "CreditLimit": 500_000})),
    )
    .await;
    assert_eq!(status, 400);
    let message = error_message(&body, "BadRequest");
    assert!(
        message.contains("(503 Service Unavailable): the credit service is down"),
        "{message}"
    );

    let response = h
        .request(Method::POST, "CustomersV3")
        .json(&json!({"CustomerAccount": "HK-2", "CreditLimit": 500}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 201);

    task.abort();
    let _ = task.await;
    assert_eq!(
        set("http://127.0.0.1:9/unreachable".into())
            .await
            .expect("sent")
            .status(),
        204
    );
    let (status, body) = send_json(
        h.request(Method::POST, "CustomersV3")
            .json(&json!({"CustomerAccount": "HK-3"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(error_message(&body, "BadRequest").contains("could not be reached"));
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn finops_data_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = || EmulatorConfig {
        data_dir: Some(dir.path().to_path_buf()),
        ..demo()
    };
    let h = Harness::start(ServiceKind::Finops, config()).await;
    let response = h
        .request(
            Method::PATCH,
            "CustomersV3(dataAreaId='usmf',CustomerAccount='US-001')",
        )
        .json(&json!({"OrganizationName": "Renamed before restart"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    h.emulator.shutdown().await.expect("shutdown");

    let h = Harness::start(ServiceKind::Finops, config()).await;
    let (_, body) = h
        .get_json("CustomersV3(dataAreaId='usmf',CustomerAccount='US-001')")
        .await;
    assert_eq!(
        body["OrganizationName"], "Renamed before restart",
        "the seed does not run over existing data"
    );
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn undelivered_events_and_subscriptions_survive_a_restart() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let accept = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::<Value>::new()));
    let (flag, store) = (accept.clone(), seen.clone());
    let app = axum::Router::new().route(
        "/events",
        post(move |Json(event): Json<Value>| {
            let (flag, store) = (flag.clone(), store.clone());
            async move {
                if !flag.load(Ordering::SeqCst) {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                store.lock().expect("lock").push(event);
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/events", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let config = || EmulatorConfig {
        data_dir: Some(dir.path().to_path_buf()),
        ..empty_config()
    };
    let h = Harness::start(ServiceKind::Finops, config()).await;
    let response = h
        .client
        .post(format!("{}/admin/subscriptions", h.emulator.url()))
        .json(&json!({"url": url}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 201);
    let response = h
        .request(Method::POST, "Units")
        .json(&json!({"UnitSymbol": "dz"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 201);
    tokio::time::sleep(Duration::from_millis(300)).await;
    h.emulator.shutdown().await.expect("shutdown");
    assert!(seen.lock().expect("lock").is_empty());

    accept.store(true, Ordering::SeqCst);
    let h = Harness::start(ServiceKind::Finops, config()).await;
    let mut waited = 0;
    while seen.lock().expect("lock").is_empty() && waited < 200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    let events = seen.lock().expect("lock").clone();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (&events[0]["MessageName"], &events[0]["PrimaryEntityName"]),
        (&json!("Create"), &json!("Units"))
    );
    let subscriptions: Value = h
        .client
        .get(format!("{}/admin/subscriptions", h.emulator.url()))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(subscriptions[0]["url"], url);
    let response = h
        .client
        .delete(format!("{}/admin/subscriptions", h.emulator.url()))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    h.emulator.shutdown().await.expect("shutdown");
    task.abort();
}
