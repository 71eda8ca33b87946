//! Synchronous webhook steps of the Dataverse emulator (`mode` 0), called
//! inside the write's transaction, and the images in the contexts of both
//! modes.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use dualwrite_emulators::{EmulatorConfig, ServiceKind};
use reqwest::Method;
use serde_json::{Value, json};

use super::step_endpoint::{
    Endpoint, account_names, attribute, header, image_body, post_account, register,
};
use super::steps::{create, endpoint};
use super::support::{Harness, empty_config, error_message, send_json};

#[tokio::test]
async fn a_synchronous_step_is_called_before_the_write_returns_with_its_post_image() {
    let harness = Harness::dataverse().await;
    let hook = Endpoint::accepting().await;
    let endpoint = endpoint(&harness, &hook.url).await;
    // Registered out of order: called by rank.
    let second = register(&harness, &endpoint, "Create", 40, 0, 2).await;
    let first = register(&harness, &endpoint, "Create", 40, 0, 1).await;
    let asked = "name,accountnumber,creditlimit,versionnumber,modifiedon";
    create(
        &harness,
        "sdkmessageprocessingstepimages",
        image_body(&first, "after", 1, asked),
    )
    .await;

    let (status, row) = post_account(
        &harness,
        json!({"name": "Synchronous", "accountnumber": "S-1", "creditlimit": 5}),
    )
    .await;
    assert_eq!(status, 201, "{row}");
    let calls = hook.calls();
    assert_eq!(calls.len(), 2, "both steps were called before the answer");
    let (headers, context) = &calls[0];
    assert_eq!(context["OwningExtension"]["Id"], first.as_str());
    assert_eq!(calls[1].1["OwningExtension"]["Id"], second.as_str());
    assert_eq!(header(headers, "x-dualwrite-secret"), "s3cret & more");
    assert_eq!(header(headers, "x-ms-dynamics-entity-name"), "account");
    assert_eq!(header(headers, "x-ms-dynamics-request-name"), "Create");
    assert!(!header(headers, "x-ms-dynamics-organization").is_empty());
    assert_eq!(
        header(headers, "x-request-id"),
        context["RequestId"].as_str().unwrap_or("?")
    );
    assert_eq!(
        header(headers, "x-ms-correlation-request-id"),
        context["CorrelationId"].as_str().unwrap_or("?")
    );
    assert_eq!(
        context["CorrelationId"], calls[1].1["CorrelationId"],
        "the steps of one write share a CorrelationId"
    );
    assert_eq!(context["Mode"], 0);
    assert_eq!(context["Stage"], 40);
    assert_eq!(context["IsInTransaction"], true);
    assert_eq!(context["Depth"], 1);
    assert_eq!(context["MessageName"], "Create");
    assert_eq!(context["PrimaryEntityId"], row["accountid"]);
    assert_eq!(context["PreEntityImages"], json!([]));
    let images = context["PostEntityImages"]
        .as_array()
        .expect("PostEntityImages");
    assert_eq!(images.len(), 1, "{context}");
    assert_eq!(images[0]["key"], "after");
    let image = &images[0]["value"];
    assert_eq!(image["LogicalName"], "account");
    assert_eq!(image["Id"], row["accountid"]);
    assert_eq!(attribute(image, "name"), Some(json!("Synchronous")));
    assert_eq!(attribute(image, "accountnumber"), Some(json!("S-1")));
    assert_eq!(attribute(image, "creditlimit"), Some(json!(5)));
    // The row as it was committed.
    assert_eq!(
        attribute(image, "versionnumber"),
        Some(row["versionnumber"].clone())
    );
    assert_eq!(
        attribute(image, "modifiedon"),
        Some(row["modifiedon"].clone())
    );
    assert_eq!(image["RowVersion"], row["versionnumber"].to_string());
    assert!(
        attribute(image, "telephone1").is_none(),
        "only the columns asked for: {image}"
    );
    assert_eq!(
        calls[1].1["PostEntityImages"],
        json!([]),
        "the other step has no image"
    );

    let id = row["accountid"].as_str().expect("accountid");
    let (status, read) = harness.get_json(&format!("accounts({id})")).await;
    assert_eq!(status, 200);
    assert_eq!(read["name"], "Synchronous");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(hook.calls().len(), 2, "no delivery after the commit");

    // An upsert that makes the row is a Create.
    let new_id = "5a1e0000-0000-4000-8000-000000000001";
    let upsert = harness
        .request(Method::PATCH, &format!("accounts({new_id})"))
        .json(&json!({"name": "Upserted"}));
    assert_eq!(upsert.send().await.expect("sent").status(), 204);
    let contexts = hook.contexts();
    assert_eq!(contexts.len(), 4, "both Create steps, during the upsert");
    assert_eq!(contexts[2]["MessageName"], "Create");
    assert_eq!(contexts[2]["PrimaryEntityId"], new_id);
    let image = &contexts[2]["PostEntityImages"][0]["value"];
    assert_eq!(attribute(image, "name"), Some(json!("Upserted")));
    harness.emulator.shutdown().await.expect("stops");
}

#[tokio::test]
async fn an_endpoint_reads_dataverse_during_its_call_and_does_not_see_the_pending_write() {
    let harness = Harness::dataverse().await;
    create(&harness, "accounts", json!({"name": "Existing"})).await;
    let seen: Arc<Mutex<Vec<(u16, Value)>>> = Arc::default();
    let (client, token, service) = (
        harness.client.clone(),
        harness.token.clone(),
        harness.emulator.service_url(),
    );
    let read = seen.clone();
    let hook = Endpoint::start(Arc::new(move |_, _| {
        let (client, token, service, read) =
            (client.clone(), token.clone(), service.clone(), read.clone());
        Box::pin(async move {
            let response = client
                .get(format!("{service}/accounts?$select=name"))
                .bearer_auth(token)
                .send()
                .await
                .expect("the endpoint reads");
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            read.lock().expect("seen").push((status, body));
            (StatusCode::NO_CONTENT, String::new())
        })
    }))
    .await;
    let endpoint = endpoint(&harness, &hook.url).await;
    register(&harness, &endpoint, "Create", 20, 0, 1).await;

    let (status, body) = post_account(&harness, json!({"name": "Pending"})).await;
    assert_eq!(status, 201, "{body}");
    let seen = seen.lock().expect("seen").clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].0, 200,
        "a read is served while the write waits: {:?}",
        seen[0].1
    );
    let names: Vec<&str> = seen[0].1["value"]
        .as_array()
        .expect("value")
        .iter()
        .filter_map(|row| row["name"].as_str())
        .collect();
    assert_eq!(names, ["Existing"], "the pending write is not visible");
    assert_eq!(account_names(&harness).await, ["Existing", "Pending"]);
    let context = &hook.contexts()[0];
    assert_eq!(context["Stage"], 20);
    assert_eq!(context["PostEntityImages"], json!([]));
    harness.emulator.shutdown().await.expect("stops");
}

#[tokio::test]
async fn a_refusing_endpoint_fails_the_write_with_its_message_and_nothing_is_committed() {
    let harness = Harness::dataverse().await;
    let script = Arc::new(Mutex::new(VecDeque::from([(400, "nope")])));
    let hook = Endpoint::scripted(script.clone()).await;
    let endpoint = endpoint(&harness, &hook.url).await;
    register(&harness, &endpoint, "Create", 40, 0, 1).await;
    let update = register(&harness, &endpoint, "Update", 20, 0, 1).await;
    create(
        &harness,
        "sdkmessageprocessingstepimages",
        image_body(&update, "before", 0, ""),
    )
    .await;

    let (status, body) = post_account(&harness, json!({"name": "Refused"})).await;
    assert_eq!(status, 400, "{body}");
    let message = error_message(&body, "0x80040265");
    assert!(message.contains("nope"), "{message}");
    assert!(message.contains(&hook.url), "{message}");
    assert!(
        account_names(&harness).await.is_empty(),
        "nothing committed"
    );
    assert_eq!(harness.emulator.write_count("accounts").expect("count"), 0);

    // The script is spent: this create goes through, its update is not.
    let (status, row) =
        post_account(&harness, json!({"name": "Kept", "accountnumber": "K-1"})).await;
    assert_eq!(status, 201, "{row}");
    script
        .lock()
        .expect("script")
        .push_back((409, "not that either"));
    let id = row["accountid"].as_str().expect("accountid");
    let update = harness
        .request(Method::PATCH, &format!("accounts({id})"))
        .json(&json!({"name": "Changed"}));
    let (status, body) = send_json(update).await;
    assert_eq!(status, 400, "{body}");
    assert!(error_message(&body, "0x80040265").contains("not that either"));
    assert_eq!(account_names(&harness).await, ["Kept"]);
    // The refused update's step saw the whole row before it.
    let update_context = hook.contexts().pop().expect("a call");
    assert_eq!(update_context["MessageName"], "Update");
    let before = &update_context["PreEntityImages"][0];
    assert_eq!(before["key"], "before");
    assert_eq!(attribute(&before["value"], "name"), Some(json!("Kept")));
    assert_eq!(
        attribute(&before["value"], "accountnumber"),
        Some(json!("K-1"))
    );
    assert!(
        attribute(&before["value"], "versionnumber").is_some(),
        "every column"
    );
    assert!(
        attribute(&before["value"], "modifiedon").is_some(),
        "every column"
    );
    harness.emulator.shutdown().await.expect("stops");
}

#[tokio::test]
async fn a_503_is_tried_once_more_and_a_500_is_not() {
    let harness = Harness::dataverse().await;
    let script = Arc::new(Mutex::new(VecDeque::new()));
    let hook = Endpoint::scripted(script.clone()).await;
    let endpoint = endpoint(&harness, &hook.url).await;
    register(&harness, &endpoint, "Create", 40, 0, 1).await;
    let scripted = |answers: &[(u16, &'static str)]| {
        let mut script = script.lock().expect("script");
        script.clear();
        script.extend(answers.iter().copied());
    };

    scripted(&[(503, "busy")]);
    let (status, body) = post_account(&harness, json!({"name": "Second try"})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(hook.calls().len(), 2, "tried once more");

    scripted(&[(503, "busy"), (503, "still busy")]);
    let (status, body) = post_account(&harness, json!({"name": "Never"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(error_message(&body, "0x80040265").contains("still busy"));
    assert_eq!(hook.calls().len(), 4, "tried twice, no more");

    scripted(&[(500, "broken")]);
    let (status, body) = post_account(&harness, json!({"name": "Not either"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(error_message(&body, "0x80040265").contains("broken"));
    assert_eq!(hook.calls().len(), 5, "a 500 is not tried again");
    assert_eq!(account_names(&harness).await, ["Second try"]);
    harness.emulator.shutdown().await.expect("stops");
}

#[tokio::test]
async fn an_endpoint_that_does_not_answer_in_time_fails_the_write() {
    let config = EmulatorConfig {
        synchronous_step_timeout_ms: 300,
        ..empty_config()
    };
    let harness = Harness::start(ServiceKind::Dataverse, config).await;
    let hook = Endpoint::start(Arc::new(|_, _| {
        Box::pin(async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            (StatusCode::OK, String::new())
        })
    }))
    .await;
    let endpoint = endpoint(&harness, &hook.url).await;
    register(&harness, &endpoint, "Create", 40, 0, 1).await;
    let started = Instant::now();
    let (status, body) = post_account(&harness, json!({"name": "Too slow"})).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the deadline ends the call"
    );
    assert_eq!(status, 400, "{body}");
    let message = error_message(&body, "0x80040265");
    assert!(
        message.contains("did not answer within 300 ms"),
        "{message}"
    );
    assert!(message.contains(&hook.url), "{message}");
    assert_eq!(hook.calls().len(), 1, "a late answer is not tried again");
    assert!(account_names(&harness).await.is_empty());

    // An endpoint that is not there fails the write too, naming its url.
    let gone = "http://127.0.0.1:9/hook";
    let patched = harness
        .request(Method::PATCH, &format!("serviceendpoints({endpoint})"))
        .json(&json!({"url": gone}))
        .send()
        .await
        .expect("sent");
    assert_eq!(patched.status(), 204);
    let (status, body) = post_account(&harness, json!({"name": "Nobody"})).await;
    assert_eq!(status, 400, "{body}");
    let message = error_message(&body, "0x80040265");
    assert!(
        message.contains("could not reach") && message.contains(gone),
        "{message}"
    );
    harness.emulator.shutdown().await.expect("stops");
}

/// A `$batch` of one change set creating `names` in accounts.
fn change_set(harness: &Harness, names: &[String]) -> reqwest::RequestBuilder {
    let root = harness.emulator.service_url();
    let mut body = String::from("--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n");
    for (n, name) in names.iter().enumerate() {
        body.push_str(&format!(
            "--c\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: {}\r\n\r\nPOST {root}/accounts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{}\r\n",
            n + 1,
            json!({"name": name})
        ));
    }
    body.push_str("--c--\r\n--b--\r\n");
    harness
        .request(Method::POST, "$batch")
        .header("Content-Type", "multipart/mixed; boundary=b")
        .body(body)
}

#[tokio::test]
async fn a_change_set_whose_seventh_call_is_refused_commits_none_of_its_ten_writes() {
    let harness = Harness::dataverse().await;
    let refuse_seventh = Arc::new(Mutex::new(true));
    let refusing = refuse_seventh.clone();
    let hook = Endpoint::start(Arc::new(move |n, _| {
        let refuse = n == 7 && *refusing.lock().expect("flag");
        Box::pin(async move {
            match refuse {
                true => (
                    StatusCode::BAD_REQUEST,
                    "  the seventh is refused \n".into(),
                ),
                false => (StatusCode::OK, String::new()),
            }
        })
    }))
    .await;
    let endpoint = endpoint(&harness, &hook.url).await;
    register(&harness, &endpoint, "Create", 40, 0, 1).await;
    let names: Vec<String> = (1..=10).map(|n| format!("Row {n:02}")).collect();

    let response = change_set(&harness, &names).send().await.expect("sent");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("body");
    assert!(text.contains("HTTP/1.1 400"), "{text}");
    assert!(text.contains("the seventh is refused"), "{text}");
    assert!(text.contains("0x80040265"), "{text}");
    assert!(account_names(&harness).await.is_empty(), "none of the ten");
    let refused = hook.contexts();
    assert_eq!(refused.len(), 7, "the calls stop at the refusal");
    for (n, context) in refused.iter().enumerate() {
        assert_eq!(context["CorrelationId"], refused[0]["CorrelationId"]);
        let target = &context["InputParameters"][0]["value"];
        assert_eq!(
            attribute(target, "name"),
            Some(json!(names[n])),
            "in part order"
        );
    }

    *refuse_seventh.lock().expect("flag") = false;
    let response = change_set(&harness, &names).send().await.expect("sent");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("body");
    assert_eq!(text.matches("HTTP/1.1 204").count(), 10, "{text}");
    assert_eq!(account_names(&harness).await, names);
    let accepted: Vec<Value> = hook.contexts().split_off(7);
    assert_eq!(accepted.len(), 10);
    assert!(
        accepted
            .iter()
            .all(|c| c["CorrelationId"] == accepted[0]["CorrelationId"])
    );
    assert_ne!(
        accepted[0]["CorrelationId"], refused[0]["CorrelationId"],
        "another request, another CorrelationId"
    );
    harness.emulator.shutdown().await.expect("stops");
}

#[tokio::test]
async fn an_asynchronous_step_gets_its_context_after_commit_and_a_synchronous_one_never_does() {
    let harness = Harness::dataverse().await;
    let later = Endpoint::accepting().await;
    let during = Endpoint::accepting().await;
    let later_id = endpoint(&harness, &later.url).await;
    let during_id = endpoint(&harness, &during.url).await;
    register(&harness, &later_id, "Create", 40, 1, 1).await;
    let update = register(&harness, &later_id, "Update", 40, 1, 1).await;
    create(
        &harness,
        "sdkmessageprocessingstepimages",
        image_body(&update, "image", 2, "name"),
    )
    .await;
    register(&harness, &during_id, "Create", 20, 0, 1).await;

    let (status, row) = post_account(&harness, json!({"name": "Both"})).await;
    assert_eq!(status, 201, "{row}");
    assert_eq!(during.calls().len(), 1);
    let id = row["accountid"].as_str().expect("accountid");
    let patched = harness
        .request(Method::PATCH, &format!("accounts({id})"))
        .json(&json!({"name": "Renamed"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(patched.status(), 204);
    let deadline = Instant::now() + Duration::from_secs(20);
    while later.calls().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the asynchronous contexts arrive"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let contexts = later.contexts();
    assert_eq!(contexts[0]["Mode"], 1);
    assert_eq!(contexts[0]["IsInTransaction"], false);
    assert_eq!(
        contexts[0]["CorrelationId"],
        during.contexts()[0]["CorrelationId"],
        "the steps of one write share a CorrelationId"
    );
    let update = &contexts[1];
    assert_eq!(update["MessageName"], "Update");
    let pre = &update["PreEntityImages"][0];
    let post = &update["PostEntityImages"][0];
    assert_eq!(
        (&pre["key"], &post["key"]),
        (&json!("image"), &json!("image"))
    );
    assert_eq!(attribute(&pre["value"], "name"), Some(json!("Both")));
    assert_eq!(attribute(&post["value"], "name"), Some(json!("Renamed")));
    assert!(
        attribute(&post["value"], "versionnumber").is_none(),
        "not asked for"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        during.calls().len(),
        1,
        "a synchronous step gets nothing after the commit"
    );
    harness.emulator.shutdown().await.expect("stops");
}
