//! `$batch` as "Execute batch operations using the Web API" documents
//! (<https://learn.microsoft.com/power-apps/developer/data-platform/webapi/execute-batch-operations-using-web-api>):
//! a change set commits all or nothing whatever request of it fails, with
//! and without `Prefer: odata.continue-on-error`; GETs run outside change
//! sets; a `Content-ID` reference names an earlier request of the same
//! change set, anything else is refused.

use reqwest::Method;

use crate::batch::{batch, change_set, http_part, send};
use crate::support::Harness;

async fn account_names(h: &Harness) -> Vec<String> {
    let (_, body) = h.get_json("accounts?$select=name").await;
    body["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|r| r["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Each failing second request of a change set whose first request
/// creates an account: the first must be rolled back, every time.
#[tokio::test]
async fn a_change_set_rolls_back_whatever_request_fails() {
    let h = Harness::dataverse().await;
    let (status, _) = crate::support::send_json(
        h.request(Method::POST, "accounts")
            .header("Prefer", "return=representation")
            .json(&serde_json::json!({"name": "Existing", "accountnumber": "E-1"})),
    )
    .await;
    assert_eq!(status, 201);
    let missing = "00000000-0000-0000-0000-0000000000aa";
    let failing: Vec<(&str, String, Option<String>)> = vec![
        (
            "an unknown column",
            "POST accounts".into(),
            Some(r#"{"nosuchcolumn":1}"#.into()),
        ),
        (
            "a body that is not JSON",
            "POST accounts".into(),
            Some("{not json".into()),
        ),
        (
            "a missing row to delete",
            format!("DELETE accounts({missing})"),
            None,
        ),
        (
            "a bind to a missing row",
            "POST contacts".into(),
            Some(format!(
                r#"{{"lastname":"x","parentcustomerid_account@odata.bind":"/accounts({missing})"}}"#
            )),
        ),
        (
            "a duplicate alternate key",
            "POST accounts".into(),
            Some(r#"{"name":"Dup","accountnumber":"E-1"}"#.into()),
        ),
        (
            "the same key as the first request",
            "POST accounts".into(),
            Some(r#"{"name":"Twice","accountnumber":"N-1"}"#.into()),
        ),
        (
            "an unknown entity set",
            "POST nosuchset".into(),
            Some("{}".into()),
        ),
        (
            "an unknown Content-ID",
            "PATCH $7".into(),
            Some(r#"{"name":"x"}"#.into()),
        ),
        (
            "a property of a missing row",
            format!("PUT accounts({missing})/name"),
            Some(r#"{"value":"x"}"#.into()),
        ),
        ("a GET inside the change set", "GET accounts".into(), None),
    ];
    for continue_on_error in [false, true] {
        for (what, line, body) in &failing {
            let set = change_set(
                "changeset_roll",
                &[
                    http_part(
                        Some(1),
                        "POST accounts",
                        Some(r#"{"name":"Never","accountnumber":"N-1"}"#),
                    ),
                    http_part(Some(2), line, body.as_deref()),
                ],
            );
            let (status, _, text) = send(&h, batch(&[set]), continue_on_error).await;
            assert_eq!(status, 200, "{what}: {text}");
            assert!(
                text.contains("HTTP/1.1 4"),
                "{what} fails the change set: {text}"
            );
            assert!(
                !text.contains("HTTP/1.1 204"),
                "{what}: a failed change set answers with its error alone: {text}"
            );
            assert_eq!(
                account_names(&h).await,
                vec!["Existing".to_string()],
                "{what} (continue-on-error {continue_on_error}) rolled the change set back"
            );
        }
    }
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn requests_after_a_failed_change_set_run_only_with_continue_on_error() {
    let h = Harness::dataverse().await;
    let items = || {
        vec![
            change_set(
                "changeset_a",
                &[
                    http_part(Some(1), "POST accounts", Some(r#"{"name":"A"}"#)),
                    http_part(Some(2), "POST accounts", Some(r#"{"nosuchcolumn":1}"#)),
                ],
            ),
            http_part(None, "POST accounts", Some(r#"{"name":"B"}"#)),
            http_part(None, "GET accounts?$select=name", None),
        ]
    };
    let (_, headers, text) = send(&h, batch(&items()), false).await;
    assert!(!text.contains("HTTP/1.1 200 OK"), "stopped: {text}");
    assert!(!headers.contains_key("preference-applied"));
    assert!(account_names(&h).await.is_empty());

    let (_, headers, text) = send(&h, batch(&items()), true).await;
    assert_eq!(headers["preference-applied"], "odata.continue-on-error");
    assert_eq!(text.matches("HTTP/1.1 204 No Content").count(), 1, "{text}");
    assert!(text.contains("HTTP/1.1 200 OK"), "the GET ran: {text}");
    assert!(text.contains(r#""name":"B""#), "the GET sees B: {text}");
    assert_eq!(account_names(&h).await, vec!["B".to_string()]);
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn content_id_references_stay_inside_their_change_set() {
    let h = Harness::dataverse().await;
    let first = change_set(
        "changeset_one",
        &[http_part(
            Some(1),
            "POST accounts",
            Some(r#"{"name":"One"}"#),
        )],
    );
    let second = change_set(
        "changeset_two",
        &[http_part(
            Some(2),
            "POST contacts",
            Some(r#"{"lastname":"Ref","parentcustomerid_account@odata.bind":"$1"}"#),
        )],
    );
    let (_, _, text) = send(&h, batch(&[first, second]), false).await;
    assert!(
        text.contains("HTTP/1.1 204"),
        "the first change set ran: {text}"
    );
    assert!(text.contains("HTTP/1.1 400 Bad Request"), "{text}");
    assert!(
        text.contains("Content-ID Reference: '$1' does not exist"),
        "{text}"
    );
    let (_, contacts) = h.get_json("contacts").await;
    assert_eq!(contacts["value"].as_array().expect("value").len(), 0);

    let single = http_part(None, "PATCH $1", Some(r#"{"name":"x"}"#));
    let (_, _, text) = send(&h, batch(&[single]), false).await;
    assert!(text.contains("HTTP/1.1 400 Bad Request"), "{text}");
    assert!(text.contains("'$1' does not exist"), "{text}");
    h.emulator.shutdown().await.expect("shutdown");
}

/// The row a rolled-back change set would have created must not come back
/// through a later reference to its `Content-ID` (an upsert by that id
/// would create it).
#[tokio::test]
async fn a_rolled_back_create_does_not_return_through_its_content_id() {
    let h = Harness::dataverse().await;
    let id = "00000000-0000-0000-0000-0000000000bb";
    let failed = change_set(
        "changeset_rolled",
        &[
            http_part(
                Some(1),
                "POST accounts",
                Some(&format!(r#"{{"accountid":"{id}","name":"Rolled back"}}"#)),
            ),
            http_part(Some(2), "POST accounts", Some(r#"{"nosuchcolumn":1}"#)),
        ],
    );
    let later = change_set(
        "changeset_later",
        &[http_part(
            Some(3),
            "PATCH $1",
            Some(r#"{"name":"Revived"}"#),
        )],
    );
    let (_, _, text) = send(&h, batch(&[failed, later]), true).await;
    assert_eq!(
        text.matches("HTTP/1.1 400 Bad Request").count(),
        2,
        "{text}"
    );
    assert!(account_names(&h).await.is_empty(), "{text}");
    let (status, body) = h.get_json(&format!("accounts({id})")).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "0x80040217");
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn finops_change_sets_roll_back_too() {
    let h = Harness::finops().await;
    let failing = [
        (
            "an unknown field",
            "POST CustomersV3",
            r#"{"CustomerAccount":"F-2","NoSuchField":1}"#,
        ),
        (
            "a missing row",
            "PATCH CustomersV3(dataAreaId='usmf',CustomerAccount='NONE')",
            r#"{"CreditLimit":1}"#,
        ),
        (
            "a bad enum value",
            "POST CustomersV3",
            r#"{"CustomerAccount":"F-3","CreditLimitIsMandatory":7}"#,
        ),
    ];
    for continue_on_error in [false, true] {
        for (what, line, body) in failing {
            let set = change_set(
                "changeset_f",
                &[
                    http_part(
                        Some(1),
                        "POST CustomersV3",
                        Some(r#"{"CustomerAccount":"F-1"}"#),
                    ),
                    http_part(Some(2), line, Some(body)),
                ],
            );
            let (status, _, text) = send(&h, batch(&[set]), continue_on_error).await;
            assert_eq!(status, 200, "{what}: {text}");
            assert!(text.contains("HTTP/1.1 4"), "{what}: {text}");
            let (status, _) = h
                .get_json("CustomersV3(dataAreaId='usmf',CustomerAccount='F-1')")
                .await;
            assert_eq!(status, 404, "{what} rolled the change set back");
        }
    }
    h.emulator.shutdown().await.expect("shutdown");
}
