//! The finops connector against the emulator: `cross-company=true` queries
//! and paging, compound keys with `dataAreaId`, the paged reads of
//! reconciliation (only the fields asked for), `$batch` upserts that create the rows they do not find.

use dualwrite::connector::{
    BatchMode, ConnectorOptions, FinopsConnector, Key, Query, Write, WriteOutcome,
};
use dualwrite_emulators::ServiceKind;
use serde_json::json;

use super::support::{fast_options, finops, row, start};
use dualwrite_emulators::EmulatorConfig;

fn group(company: &str, id: &str) -> Key {
    Key::new()
        .text("dataAreaId", company)
        .text("CustomerGroupId", id)
}

async fn groups(fo: &FinopsConnector) -> usize {
    fo.query_all("CustomerGroups", &Query::default())
        .await
        .expect("query")
        .len()
}

#[tokio::test]
async fn compound_keys_name_the_company_and_upserts_are_idempotent() {
    let emulator = start(ServiceKind::Finops, EmulatorConfig::empty()).await;
    let fo = finops(&emulator, fast_options());
    let usmf = group("usmf", "10");
    let demf = group("demf", "10");
    fo.upsert("CustomerGroups", &usmf, &row(json!({"Description": "US"})))
        .await
        .expect("create usmf");
    fo.upsert("CustomerGroups", &demf, &row(json!({"Description": "DE"})))
        .await
        .expect("create demf");
    fo.upsert(
        "CustomerGroups",
        &demf,
        &row(json!({"Description": "DE, again"})),
    )
    .await
    .expect("update demf");
    assert_eq!(groups(&fo).await, 2, "one row per company and key");

    let de = fo
        .get("CustomerGroups", &demf)
        .await
        .expect("get")
        .expect("row");
    assert_eq!(de["Description"], "DE, again");
    assert_eq!(de["dataAreaId"], "demf");
    let us = fo
        .get("CustomerGroups", &usmf)
        .await
        .expect("get")
        .expect("row");
    assert_eq!(us["Description"], "US");

    let rows = fo
        .query_all(
            "CustomerGroups",
            &Query {
                select: vec!["dataAreaId".into(), "Description".into()],
                filter: Some("dataAreaId eq 'demf'".into()),
            },
        )
        .await
        .expect("filtered");
    assert_eq!(rows.len(), 1, "another company's rows are seen: {rows:?}");

    assert!(fo.delete("CustomerGroups", &demf).await.expect("delete"));
    assert!(!fo.delete("CustomerGroups", &demf).await.expect("again"));
    assert_eq!(fo.get("CustomerGroups", &demf).await.expect("get"), None);
    emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn queries_page_across_companies() {
    let emulator = start(ServiceKind::Finops, EmulatorConfig::empty()).await;
    let options = ConnectorOptions {
        page_size: 4,
        ..fast_options()
    };
    let fo = finops(&emulator, options);
    let writes: Vec<Write> = (0..10)
        .map(|i| Write::Upsert {
            table: "CustomerGroups".into(),
            key: group(if i % 2 == 0 { "usmf" } else { "demf" }, &format!("G{i}")),
            row: row(json!({"Description": "Paged"})),
        })
        .collect();
    let outcomes = fo
        .write_batch(&writes, BatchMode::ContinueOnError)
        .await
        .expect("batch");
    assert!(
        outcomes.iter().all(WriteOutcome::is_applied),
        "{outcomes:?}"
    );
    let first = fo
        .query_page("CustomerGroups", &Query::default(), None)
        .await
        .expect("page");
    assert_eq!(first.rows.len(), 4);
    assert!(first.next_link.is_some());
    let rows = fo
        .query_all("CustomerGroups", &Query::default())
        .await
        .expect("all");
    assert_eq!(rows.len(), 10);
    assert_eq!(rows.iter().filter(|r| r["dataAreaId"] == "demf").count(), 5);
    emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_reconciliation_page_holds_only_the_selected_fields_of_every_company() {
    let emulator = start(ServiceKind::Finops, EmulatorConfig::empty()).await;
    let options = ConnectorOptions {
        page_size: 2,
        ..fast_options()
    };
    let fo = finops(&emulator, options);
    for (company, id) in [("usmf", "A"), ("demf", "B"), ("usmf", "C")] {
        fo.upsert(
            "CustomerGroups",
            &group(company, id),
            &row(json!({"Description": format!("group {id}"), "PaymentTermId": "Net30"})),
        )
        .await
        .expect("group");
    }
    let query = Query {
        select: vec![
            "dataAreaId".into(),
            "CustomerGroupId".into(),
            "Description".into(),
        ],
        filter: None,
    };
    let mut rows = Vec::new();
    let mut next = None;
    loop {
        let page = fo
            .query_page("CustomerGroups", &query, next.as_deref())
            .await
            .expect("page");
        assert!(page.rows.len() <= 2, "the page size is kept: {page:?}");
        rows.extend(page.rows);
        match page.next_link {
            Some(link) => next = Some(link),
            None => break,
        }
    }
    assert_eq!(rows.len(), 3, "every company's rows: {rows:?}");
    for row in &rows {
        let mut fields: Vec<&str> = row
            .keys()
            .map(String::as_str)
            .filter(|field| !field.starts_with('@'))
            .collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            ["CustomerGroupId", "Description", "dataAreaId"],
            "{row:?}"
        );
    }
    emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_batch_of_1000_upserts_creates_updates_and_reports_the_bad_row() {
    let emulator = start(ServiceKind::Finops, EmulatorConfig::empty()).await;
    let fo = finops(&emulator, fast_options());
    fo.upsert(
        "CustomerGroups",
        &group("usmf", "K0000"),
        &row(json!({"Description": "old"})),
    )
    .await
    .expect("existing row");
    let mut writes: Vec<Write> = (0..1000)
        .map(|i| Write::Upsert {
            table: "CustomerGroups".into(),
            key: group("usmf", &format!("K{i:04}")),
            row: row(json!({"Description": "batched"})),
        })
        .collect();
    writes[700] = Write::Upsert {
        table: "CustomerGroups".into(),
        key: group("usmf", "K0700"),
        row: row(json!({"NoSuchField": 1})),
    };
    let outcomes = fo
        .write_batch(&writes, BatchMode::ContinueOnError)
        .await
        .expect("batch");
    let failed: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| !o.is_applied())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(failed, vec![700], "{:?}", outcomes[700]);
    assert!(
        matches!(&outcomes[700], WriteOutcome::Failed { status: 400, service } if service.message.contains("NoSuchField")),
        "{:?}",
        outcomes[700]
    );
    assert_eq!(groups(&fo).await, 999);
    let first = fo
        .get("CustomerGroups", &group("usmf", "K0000"))
        .await
        .expect("get")
        .expect("row");
    assert_eq!(
        first["Description"], "batched",
        "the existing row was updated"
    );
    emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn inserts_create_in_one_request_and_update_a_row_that_exists() {
    let emulator = start(ServiceKind::Finops, EmulatorConfig::empty()).await;
    let fo = finops(&emulator, fast_options());
    fo.upsert(
        "CustomerGroups",
        &group("usmf", "20"),
        &row(json!({"Description": "Old"})),
    )
    .await
    .expect("existing row");
    let insert = |id: &str, description: &str| Write::Insert {
        table: "CustomerGroups".into(),
        key: group("usmf", id),
        row: row(json!({"Description": description})),
    };
    let writes = vec![
        insert("21", "New"),
        insert("20", "Updated"),
        insert("22", &"x".repeat(100)),
    ];
    let before = fo.stats().requests;
    let outcomes = fo
        .write_batch(&writes, BatchMode::ContinueOnError)
        .await
        .expect("batch");
    assert!(outcomes[0].is_applied(), "{outcomes:?}");
    assert!(
        outcomes[1].is_applied(),
        "an existing row is updated: {outcomes:?}"
    );
    match &outcomes[2] {
        WriteOutcome::Failed {
            status: 400,
            service,
        } => {
            assert!(service.message.contains("Description"), "{service:?}")
        }
        other => panic!("the create's own error is kept: {other:?}"),
    }
    assert_eq!(
        fo.stats().requests - before,
        2,
        "one batch, then one for the two refused"
    );
    let stored = fo
        .get("CustomerGroups", &group("usmf", "20"))
        .await
        .expect("get")
        .expect("row");
    assert_eq!(stored["Description"], "Updated");
    assert!(
        fo.get("CustomerGroups", &group("usmf", "22"))
            .await
            .expect("get")
            .is_none()
    );
}
