//! The writes each row received, counted by the store in the write's own
//! transaction: `RunningEmulator::writes` and `GET /admin/writes/{table}`.
//! A test that must show a row written once counts these, not rows.

use reqwest::Method;
use serde_json::{Value, json};

use crate::batch::{batch, change_set, http_part, send};
use crate::support::Harness;

/// `(accountnumber, writes, deleted)` of every account written, sorted.
fn counts(rows: &[dualwrite_emulators::RowWrites]) -> Vec<(String, u64, bool)> {
    let mut out: Vec<(String, u64, bool)> = rows
        .iter()
        .map(|r| {
            let number = r
                .row
                .as_ref()
                .and_then(|row| row.get("accountnumber"))
                .and_then(Value::as_str)
                .unwrap_or("(deleted)")
                .to_owned();
            (number, r.writes, r.row.is_none())
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn every_committed_write_of_a_row_is_counted_once() {
    let h = Harness::dataverse().await;
    let upsert = async |number: &str, name: &str| {
        let response = h
            .request(
                Method::PATCH,
                &format!("accounts(accountnumber='{number}')"),
            )
            .json(&json!({ "name": name }))
            .send()
            .await
            .expect("sent");
        assert!(response.status().is_success(), "{}", response.status());
    };
    // The same upsert twice is one row and two writes.
    upsert("W-1", "First").await;
    upsert("W-1", "First").await;
    upsert("W-2", "Second").await;
    upsert("W-3", "Third").await;
    let response = h
        .request(Method::DELETE, "accounts(accountnumber='W-3')")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    // A delete of a row already gone changes nothing, so counts nothing.
    let response = h
        .request(Method::DELETE, "accounts(accountnumber='W-3')")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 404);
    // A change set that fails commits nothing, so counts nothing.
    let set = change_set(
        "changeset_W",
        &[
            http_part(
                Some(1),
                "PATCH accounts(accountnumber='W-2')",
                Some(r#"{"name":"Never"}"#),
            ),
            http_part(
                Some(2),
                "PATCH accounts(accountnumber='W-4')",
                Some(r#"{"nosuchcolumn":1}"#),
            ),
        ],
    );
    let (status, _, text) = send(&h, batch(&[set]), false).await;
    assert_eq!(status, 200);
    assert!(text.contains("400 Bad Request"), "{text}");

    let rows = h.emulator.writes("accounts").expect("writes read");
    assert_eq!(
        counts(&rows),
        vec![
            // W-3: created, then deleted: two writes, the row gone.
            ("(deleted)".to_owned(), 2, true),
            ("W-1".to_owned(), 2, false),
            ("W-2".to_owned(), 1, false),
        ]
    );

    // The admin route reports the same, for `dualwrite emulate` users.
    let response = h
        .client
        .get(format!("{}/admin/writes/accounts", h.emulator.url()))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let listed: Vec<dualwrite_emulators::RowWrites> = response.json().await.expect("json");
    assert_eq!(listed, rows);
    let response = h
        .client
        .get(format!("{}/admin/writes/nosuchtable", h.emulator.url()))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 404);
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn finops_counts_its_writes_too() {
    let h = Harness::finops().await;
    let row = json!({"dataAreaId": "usmf", "CustomerAccount": "W-1", "OrganizationName": "First"});
    let response = h
        .request(Method::POST, "CustomersV3?cross-company=true")
        .json(&row)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 201);
    let response = h
        .request(
            Method::PATCH,
            "CustomersV3(dataAreaId='usmf',CustomerAccount='W-1')?cross-company=true",
        )
        .json(&json!({"OrganizationName": "Renamed"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let rows = h.emulator.writes("CustomersV3").expect("writes read");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].writes, 2);
    assert_eq!(
        rows[0].row.as_ref().and_then(|r| r.get("OrganizationName")),
        Some(&json!("Renamed"))
    );
    h.emulator.shutdown().await.expect("shutdown");
}
