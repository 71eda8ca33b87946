//! Dataverse change tracking: `Prefer: odata.track-changes`, delta links,
//! `$deletedEntity`, and the error for an unknown or expired token.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Harness, error_message};

async fn follow(h: &Harness, url: &str) -> (u16, Value) {
    let response = h
        .client
        .get(url)
        .bearer_auth(&h.token)
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

async fn post_account(h: &Harness, number: &str, name: &str) -> String {
    let response = h
        .request(Method::POST, "accounts")
        .header("Prefer", "return=representation")
        .json(&json!({"accountnumber": number, "name": name}))
        .send()
        .await
        .expect("sent");
    let body: Value = response.json().await.expect("json");
    body["accountid"].as_str().expect("id").to_string()
}

#[tokio::test]
async fn delta_links_return_changes_then_deletions() {
    let h = Harness::dataverse().await;
    let first = post_account(&h, "T-1", "One").await;
    let second = post_account(&h, "T-2", "Two").await;

    // GET accounts?$select=name,accountnumber with Prefer: odata.track-changes.
    let response = h
        .request(Method::GET, "accounts?$select=name,accountnumber")
        .header("Prefer", "odata.track-changes")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["preference-applied"],
        "odata.track-changes"
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["value"].as_array().expect("value").len(), 2);
    assert!(
        body["@odata.context"]
            .as_str()
            .expect("context")
            .ends_with("$metadata#accounts(name,accountnumber)/$delta")
    );
    let delta = body["@odata.deltaLink"]
        .as_str()
        .expect("deltaLink")
        .to_string();
    assert!(delta.contains("$deltatoken="), "{delta}");
    assert!(delta.contains("$select=name,accountnumber"), "{delta}");

    // Nothing changed: an empty page and a new link.
    let (status, body) = follow(&h, &delta).await;
    assert_eq!(status, 200);
    assert_eq!(body["value"], json!([]));

    // One update, one create, one delete.
    let response = h
        .request(Method::PATCH, &format!("accounts({first})"))
        .json(&json!({"name": "One, renamed"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let third = post_account(&h, "T-3", "Three").await;
    let response = h
        .request(Method::DELETE, &format!("accounts({second})"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);

    let (status, body) = follow(&h, &delta).await;
    assert_eq!(status, 200);
    let value = body["value"].as_array().expect("value");
    assert_eq!(value.len(), 3, "{body}");
    assert_eq!(value[0]["accountid"], first);
    assert_eq!(value[0]["name"], "One, renamed");
    assert!(value[0]["@odata.etag"].is_string());
    assert_eq!(value[1]["accountid"], third);
    assert_eq!(value[2]["id"], second);
    assert_eq!(value[2]["reason"], "deleted");
    assert!(
        value[2]["@odata.context"]
            .as_str()
            .expect("context")
            .ends_with("$metadata#accounts/$deletedEntity")
    );
    let next = body["@odata.deltaLink"]
        .as_str()
        .expect("deltaLink")
        .to_string();
    let (_, body) = follow(&h, &next).await;
    assert_eq!(body["value"], json!([]));

    // Filters are not allowed with change tracking.
    let response = h
        .request(Method::GET, "accounts?$filter=name eq 'x'")
        .header("Prefer", "odata.track-changes")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 400);
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn unknown_and_expired_tokens_are_refused() {
    let h = Harness::dataverse().await;
    post_account(&h, "E-1", "One").await;
    for token in ["garbage", "999999!01/01/2030 00:00:00"] {
        let (status, body) = h.get_json(&format!("accounts?$deltatoken={token}")).await;
        assert_eq!(status, 400, "{token}");
        let message = error_message(&body, "0x80060888");
        assert!(message.contains("odata.track-changes"), "{message}");
    }
    let response = h
        .request(Method::GET, "accounts")
        .header("Prefer", "odata.track-changes")
        .send()
        .await
        .expect("sent");
    let body: Value = response.json().await.expect("json");
    let delta = body["@odata.deltaLink"]
        .as_str()
        .expect("deltaLink")
        .to_string();
    let response = h
        .client
        .post(format!("{}/admin/purge-changes/accounts", h.emulator.url()))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    post_account(&h, "E-2", "Two").await;
    // The token issued before the purge is older than the retention: expired.
    let (status, _) = follow(&h, &delta).await;
    assert_eq!(
        status, 200,
        "a token equal to the purge point is still valid"
    );
    let (status, body) = h.get_json("accounts?$deltatoken=0").await;
    assert_eq!(status, 400);
    error_message(&body, "0x80060888");
    h.emulator.shutdown().await.expect("shutdown");
}

/// Follows `@odata.nextLink` with `Prefer: odata.maxpagesize=3` until the
/// delta link; returns the rows, the deletions, the page count and the link.
async fn read_all_pages(h: &Harness, first: &str) -> (Vec<Value>, Vec<Value>, usize, String) {
    let (mut rows, mut deletions, mut pages) = (Vec::new(), Vec::new(), 0);
    let mut url = first.to_string();
    loop {
        let response = h
            .client
            .get(&url)
            .bearer_auth(&h.token)
            .header("Prefer", "odata.track-changes,odata.maxpagesize=3")
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("json");
        pages += 1;
        let value = body["value"].as_array().expect("value");
        assert!(value.len() <= 3);
        for entry in value {
            if entry.get("reason").is_some() {
                deletions.push(entry.clone());
            } else {
                rows.push(entry.clone());
            }
        }
        if let Some(next) = body.get("@odata.nextLink").and_then(Value::as_str) {
            assert!(body.get("@odata.deltaLink").is_none());
            url = next.to_string();
            continue;
        }
        let delta = body["@odata.deltaLink"]
            .as_str()
            .expect("deltaLink on the last page")
            .to_string();
        return (rows, deletions, pages, delta);
    }
}

#[tokio::test]
async fn change_tracking_pages_with_maxpagesize() {
    let h = Harness::dataverse().await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(post_account(&h, &format!("P-{i}"), "Paged").await);
    }
    let first = format!("{}/accounts?$select=name", h.emulator.service_url());
    let (rows, deletions, pages, delta) = read_all_pages(&h, &first).await;
    assert_eq!((rows.len(), deletions.len(), pages), (7, 0, 3));

    for id in &ids[..5] {
        let response = h
            .request(Method::PATCH, &format!("accounts({id})"))
            .json(&json!({"name": "Changed"}))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 204);
    }
    for id in &ids[5..] {
        let response = h
            .request(Method::DELETE, &format!("accounts({id})"))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 204);
    }
    let (rows, deletions, pages, delta) = read_all_pages(&h, &delta).await;
    assert_eq!((rows.len(), deletions.len(), pages), (5, 2, 3));
    assert!(rows.iter().all(|r| r["name"] == "Changed"));
    let (rows, deletions, pages, _) = read_all_pages(&h, &delta).await;
    assert_eq!((rows.len(), deletions.len(), pages), (0, 0, 1));
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_row_deleted_then_recreated_shows_as_changed_not_deleted() {
    let h = Harness::dataverse().await;
    let id = post_account(&h, "R-1", "First life").await;
    let response = h
        .request(Method::GET, "accounts?$select=name")
        .header("Prefer", "odata.track-changes")
        .send()
        .await
        .expect("sent");
    let body: Value = response.json().await.expect("json");
    let delta = body["@odata.deltaLink"]
        .as_str()
        .expect("deltaLink")
        .to_string();
    let response = h
        .request(Method::DELETE, &format!("accounts({id})"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let response = h
        .request(Method::PATCH, &format!("accounts({id})"))
        .json(&json!({"name": "Second life"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let (_, body) = follow(&h, &delta).await;
    let value = body["value"].as_array().expect("value");
    assert_eq!(value.len(), 1, "{body}");
    assert_eq!(value[0]["accountid"], id);
    assert_eq!(value[0]["name"], "Second life");
    h.emulator.shutdown().await.expect("shutdown");
}
