//! `$batch` on both services: change sets, `Content-ID` references,
//! `Prefer: odata.continue-on-error`, the 1,000 request limit. Bodies follow
//! the "Execute batch operations using the Web API" page.

use reqwest::Method;
use serde_json::Value;

use crate::support::Harness;

pub(crate) const BATCH: &str = "batch_80dd1615-2a10-428a-bb6f-0e559792721f";

pub(crate) fn http_part(content_id: Option<u32>, request_line: &str, body: Option<&str>) -> String {
    let id = content_id
        .map(|n| format!("Content-ID: {n}\r\n"))
        .unwrap_or_default();
    let body = body
        .map(|b| format!("Content-Type: application/json; type=entry\r\n\r\n{b}\r\n"))
        .unwrap_or_else(|| "Accept: application/json\r\n\r\n".into());
    format!(
        "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n{id}\r\n{request_line} HTTP/1.1\r\n{body}"
    )
}

pub(crate) fn change_set(boundary: &str, parts: &[String]) -> String {
    let mut out = format!("Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n");
    for p in parts {
        out.push_str(&format!("--{boundary}\r\n{p}"));
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    out
}

pub(crate) fn batch(items: &[String]) -> String {
    let mut out = String::new();
    for item in items {
        out.push_str(&format!("--{BATCH}\r\n{item}"));
    }
    out.push_str(&format!("--{BATCH}--\r\n"));
    out
}

pub(crate) async fn send(
    h: &Harness,
    body: String,
    continue_on_error: bool,
) -> (reqwest::StatusCode, reqwest::header::HeaderMap, String) {
    let mut request = h
        .request(Method::POST, "$batch")
        .header(
            "Content-Type",
            format!("multipart/mixed; boundary=\"{BATCH}\""),
        )
        .body(body);
    if continue_on_error {
        request = request.header("Prefer", "odata.continue-on-error");
    }
    let response = request.send().await.expect("sent");
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.expect("text"))
}

async fn account_count(h: &Harness) -> usize {
    let (_, body) = h.get_json("accounts?$select=name").await;
    body["value"].as_array().expect("value").len()
}

#[tokio::test]
async fn change_set_with_content_id_references() {
    let h = Harness::dataverse().await;
    let set = change_set(
        "changeset_BBB456",
        &[
            http_part(
                Some(1),
                "POST /api/data/v9.2/accounts",
                Some(r#"{"name":"Batch account","accountnumber":"B-1"}"#),
            ),
            http_part(
                Some(2),
                "POST /api/data/v9.2/contacts",
                Some(r#"{"lastname":"Batch","parentcustomerid_account@odata.bind":"$1"}"#),
            ),
            http_part(Some(3), "PATCH $1", Some(r#"{"creditlimit":10}"#)),
        ],
    );
    let get = http_part(
        None,
        &format!(
            "GET {}/accounts?$select=name,creditlimit",
            h.emulator.service_url()
        ),
        None,
    );
    let (status, headers, text) = send(&h, batch(&[set, get]), false).await;
    assert_eq!(status, 200, "{text}");
    let content_type = headers["content-type"].to_str().expect("text");
    assert!(
        content_type.starts_with("multipart/mixed; boundary=batchresponse_"),
        "{content_type}"
    );
    assert!(
        text.contains("Content-Type: multipart/mixed; boundary=changesetresponse_"),
        "{text}"
    );
    assert_eq!(text.matches("HTTP/1.1 204 No Content").count(), 3, "{text}");
    for id in ["Content-ID: 1", "Content-ID: 2", "Content-ID: 3"] {
        assert!(text.contains(id), "{text}");
    }
    assert!(text.contains("HTTP/1.1 200 OK"), "{text}");
    assert!(
        text.contains("\"creditlimit\":10"),
        "the GET after the change set sees it: {text}"
    );

    let (_, account) = h.get_json("accounts(accountnumber='B-1')").await;
    let (_, contacts) = h.get_json("contacts?$filter=lastname eq 'Batch'").await;
    assert_eq!(
        contacts["value"][0]["_parentcustomerid_account_value"],
        account["accountid"]
    );
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_failed_change_set_commits_nothing() {
    let h = Harness::dataverse().await;
    let set = change_set(
        "changeset_1",
        &[
            http_part(Some(1), "POST accounts", Some(r#"{"name":"Never"}"#)),
            http_part(
                Some(2),
                "POST accounts",
                Some(r#"{"name":"Bad","nosuchcolumn":1}"#),
            ),
        ],
    );
    let (status, _, text) = send(&h, batch(&[set]), false).await;
    assert_eq!(status, 200);
    assert!(text.contains("HTTP/1.1 400 Bad Request"), "{text}");
    assert!(text.contains("nosuchcolumn"), "{text}");
    assert!(!text.contains("204"), "{text}");
    assert_eq!(account_count(&h).await, 0);
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn continue_on_error_runs_every_request() {
    let h = Harness::dataverse().await;
    let items = || {
        vec![
            http_part(
                None,
                "PATCH accounts(accountnumber='C-1')",
                Some(r#"{"nosuchcolumn":1}"#),
            ),
            http_part(
                None,
                "PATCH accounts(accountnumber='C-2')",
                Some(r#"{"name":"Two"}"#),
            ),
        ]
    };
    let (_, headers, text) = send(&h, batch(&items()), false).await;
    assert!(text.contains("HTTP/1.1 400"), "{text}");
    assert!(
        !text.contains("HTTP/1.1 204"),
        "stops at the first error: {text}"
    );
    assert!(!headers.contains_key("preference-applied"));
    assert_eq!(account_count(&h).await, 0);

    let (_, headers, text) = send(&h, batch(&items()), true).await;
    assert!(text.contains("HTTP/1.1 400"), "{text}");
    assert!(text.contains("HTTP/1.1 204"), "{text}");
    assert_eq!(headers["preference-applied"], "odata.continue-on-error");
    assert_eq!(account_count(&h).await, 1);
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn batches_over_1000_requests_and_bad_bodies_are_refused() {
    let h = Harness::dataverse().await;
    let parts: Vec<String> = (0..1001)
        .map(|i| {
            http_part(
                None,
                &format!("PATCH accounts(accountnumber='L-{i}')"),
                Some("{}"),
            )
        })
        .collect();
    let (status, _, text) = send(&h, batch(&parts), false).await;
    assert_eq!(status, 400);
    let body: Value = serde_json::from_str(&text).expect("json error");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("1000")
    );
    assert_eq!(account_count(&h).await, 0);

    let response = h
        .request(Method::POST, "$batch")
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 400);
    let (status, _, text) = send(
        &h,
        format!(
            "--{BATCH}\r\nContent-Type: application/http\r\n\r\nnot a request\r\n--{BATCH}--\r\n"
        ),
        false,
    )
    .await;
    assert_eq!(status, 400, "{text}");
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn finops_batches_use_the_same_rules() {
    let h = Harness::finops().await;
    let set = change_set(
        "changeset_F1",
        &[
            http_part(
                Some(1),
                "POST /data/CustomersV3",
                Some(r#"{"CustomerAccount":"BT-1","OrganizationName":"One"}"#),
            ),
            http_part(Some(2), "PATCH $1", Some(r#"{"CreditLimit":75}"#)),
        ],
    );
    let response = h
        .client
        .post(format!("{}/$batch", h.emulator.service_url()))
        .bearer_auth(&h.token)
        .header("Content-Type", format!("multipart/mixed; boundary={BATCH}"))
        .body(batch(&[set]))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("text");
    assert!(text.contains("HTTP/1.1 201 Created"), "{text}");
    assert!(text.contains("HTTP/1.1 204 No Content"), "{text}");
    let (_, body) = h
        .get_json("CustomersV3(dataAreaId='usmf',CustomerAccount='BT-1')")
        .await;
    assert_eq!(body["CreditLimit"], 75);

    let failing = change_set(
        "changeset_F2",
        &[
            http_part(
                Some(1),
                "POST CustomersV3",
                Some(r#"{"CustomerAccount":"BT-2"}"#),
            ),
            http_part(
                Some(2),
                "POST CustomersV3",
                Some(r#"{"CustomerAccount":"BT-1"}"#),
            ),
        ],
    );
    let response = h
        .client
        .post(format!("{}/$batch", h.emulator.service_url()))
        .bearer_auth(&h.token)
        .header("Content-Type", format!("multipart/mixed; boundary={BATCH}"))
        .body(batch(&[failing]))
        .send()
        .await
        .expect("sent");
    let text = response.text().await.expect("text");
    assert!(text.contains("HTTP/1.1 400 Bad Request"), "{text}");
    assert!(text.contains("already exists"), "{text}");
    let (status, _) = h
        .get_json("CustomersV3(dataAreaId='usmf',CustomerAccount='BT-2')")
        .await;
    assert_eq!(status, 404, "the change set rolled back");
    h.emulator.shutdown().await.expect("shutdown");
}
