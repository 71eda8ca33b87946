//! The Dataverse connector against the emulator: paging, change tracking
//! with deletions, idempotent upserts by alternate key, lookups, `$batch`.

use dualwrite::connector::{
    BatchMode, ConnectorError, ConnectorOptions, DataverseConnector, Deleted, Key, Query, Write,
    WriteOutcome,
};
use dualwrite_emulators::ServiceKind;
use serde_json::json;

use super::support::{dataverse, fast_options, row, start};
use dualwrite_emulators::EmulatorConfig;

fn paged(page_size: u32) -> ConnectorOptions {
    ConnectorOptions {
        page_size,
        ..fast_options()
    }
}

fn account(number: &str, name: &str) -> Write {
    Write::Upsert {
        table: "accounts".into(),
        key: Key::single("accountnumber", number),
        row: row(json!({"name": name})),
    }
}

async fn all_accounts(dv: &DataverseConnector) -> usize {
    dv.query_all("accounts", &Query::default())
        .await
        .expect("query")
        .len()
}

#[tokio::test]
async fn queries_follow_next_links_across_pages() {
    let emulator = start(ServiceKind::Dataverse, EmulatorConfig::empty()).await;
    let dv = dataverse(&emulator, paged(10));
    let writes: Vec<Write> = (0..25)
        .map(|i| {
            account(
                &format!("P-{i:02}"),
                if i % 5 == 0 { "Fifth" } else { "Other" },
            )
        })
        .collect();
    let outcomes = dv
        .write_batch(&writes, BatchMode::Atomic)
        .await
        .expect("batch");
    assert!(
        outcomes.iter().all(WriteOutcome::is_applied),
        "{outcomes:?}"
    );

    let query = Query {
        select: vec!["accountnumber".into(), "name".into()],
        filter: None,
    };
    let first = dv.query_page("accounts", &query, None).await.expect("page");
    assert_eq!(first.rows.len(), 10);
    assert!(first.rows[0].contains_key("accountnumber"));
    assert!(
        !first.rows[0].contains_key("creditlimit"),
        "$select applied"
    );
    let link = first.next_link.expect("a next link");
    let second = dv
        .query_page("accounts", &query, Some(&link))
        .await
        .expect("page");
    assert_eq!(second.rows.len(), 10);
    assert_ne!(first.rows[0], second.rows[0]);

    let rows = dv.query_all("accounts", &query).await.expect("all");
    assert_eq!(rows.len(), 25);
    let filtered = Query {
        filter: Some("name eq 'Fifth'".into()),
        ..query
    };
    let rows = dv.query_all("accounts", &filtered).await.expect("filtered");
    assert_eq!(rows.len(), 5);

    let error = dv
        .query_page(
            "accounts",
            &Query::default(),
            Some("http://127.0.0.1:1/api/data/v9.2/accounts"),
        )
        .await
        .expect_err("a foreign link is refused");
    assert!(matches!(error, ConnectorError::Invalid { .. }), "{error}");
    emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn change_tracking_reports_upserts_then_deletions() {
    let emulator = start(ServiceKind::Dataverse, EmulatorConfig::empty()).await;
    let dv = dataverse(&emulator, paged(2));
    for i in 0..5 {
        dv.upsert(
            "accounts",
            &Key::single("accountnumber", &format!("T-{i}")),
            &row(json!({"name": "Tracked"})),
        )
        .await
        .expect("upsert");
    }
    let select = vec!["accountnumber".to_string(), "name".to_string()];
    let mut page = dv.start_tracking("accounts", &select).await.expect("start");
    let mut seen = page.upserts.len();
    let mut pages = 1;
    while page.more {
        page = dv.changes(&page.next_cursor).await.expect("next page");
        seen += page.upserts.len();
        pages += 1;
    }
    assert_eq!(seen, 5);
    assert!(pages >= 3, "pages of two rows: {pages}");
    let delta = page.next_cursor.clone();

    let quiet = dv.changes(&delta).await.expect("no changes");
    assert!(quiet.upserts.is_empty() && quiet.deletes.is_empty());

    dv.upsert(
        "accounts",
        &Key::single("accountnumber", "T-1"),
        &row(json!({"name": "Renamed"})),
    )
    .await
    .expect("update");
    let gone = dv
        .get("accounts", &Key::single("accountnumber", "T-2"))
        .await
        .expect("get")
        .expect("exists");
    assert!(
        dv.delete("accounts", &Key::single("accountnumber", "T-2"))
            .await
            .expect("delete")
    );

    let mut upserts = Vec::new();
    let mut deletes = Vec::new();
    let mut page = dv.changes(&delta).await.expect("changes");
    loop {
        upserts.extend(page.upserts.clone());
        deletes.extend(page.deletes.clone());
        if !page.more {
            break;
        }
        page = dv.changes(&page.next_cursor).await.expect("next");
    }
    assert_eq!(upserts.len(), 1, "{upserts:?}");
    assert_eq!(upserts[0]["name"], "Renamed");
    assert_eq!(
        deletes,
        vec![Deleted::Id(
            gone["accountid"].as_str().expect("id").to_string()
        )]
    );
    emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn money_keeps_every_digit_through_the_emulator_and_back() {
    let emulator = start(ServiceKind::Dataverse, EmulatorConfig::empty()).await;
    let dv = dataverse(&emulator, fast_options());
    let key = Key::single("accountnumber", "EXACT-1");
    // 28 significant digits and 10 decimal places: more than an f64 holds.
    let exact: serde_json::Value =
        serde_json::from_str("123456789012345678.1234567890").expect("a JSON number");
    dv.upsert(
        "accounts",
        &key,
        &row(json!({"name": "Exact", "creditlimit": exact})),
    )
    .await
    .expect("upsert");
    let account = dv.get("accounts", &key).await.expect("get").expect("row");
    assert_eq!(
        account["creditlimit"].to_string(),
        "123456789012345678.1234567890"
    );
    emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn upserts_by_alternate_key_are_idempotent_and_bind_lookups() {
    let emulator = start(ServiceKind::Dataverse, EmulatorConfig::empty()).await;
    let dv = dataverse(&emulator, fast_options());
    let key = Key::single("accountnumber", "A-1");
    dv.upsert(
        "accounts",
        &key,
        &row(json!({"name": "First", "creditlimit": 1234.5})),
    )
    .await
    .expect("create");
    dv.upsert("accounts", &key, &row(json!({"name": "Second"})))
        .await
        .expect("update");
    assert_eq!(all_accounts(&dv).await, 1, "the same key twice is one row");
    let account = dv.get("accounts", &key).await.expect("get").expect("row");
    assert_eq!(account["name"], "Second");
    assert_eq!(account["creditlimit"], json!(1234.5));

    let mut contact = row(json!({"lastname": "Lookup", "emailaddress1": "l@example.com"}));
    DataverseConnector::bind(&mut contact, "parentcustomerid_account", "accounts", &key);
    let contact_key = Key::single("msdyn_contactpersonid", "CP-1");
    let written = dv.upsert("contacts", &contact_key, &contact).await;
    written.expect("contact upsert");
    let rows = dv
        .query_all(
            "contacts",
            &Query {
                select: vec!["_parentcustomerid_account_value".into()],
                filter: Some("lastname eq 'Lookup'".into()),
            },
        )
        .await
        .expect("contacts");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0]["_parentcustomerid_account_value"],
        account["accountid"]
    );

    assert!(dv.delete("accounts", &key).await.expect("delete"));
    assert!(
        !dv.delete("accounts", &key).await.expect("delete again"),
        "already gone"
    );
    assert_eq!(dv.get("accounts", &key).await.expect("get"), None);

    let error = dv
        .upsert("accounts", &key, &row(json!({"nosuchcolumn": 1})))
        .await
        .expect_err("refused");
    match &error {
        ConnectorError::Rejected {
            status,
            table,
            key,
            service,
            ..
        } => {
            assert_eq!(*status, 400);
            assert_eq!(table.as_deref(), Some("accounts"));
            assert_eq!(key.as_deref(), Some("(accountnumber='A-1')"));
            assert!(!service.code.is_empty());
            assert!(service.message.contains("nosuchcolumn"), "{service}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains("nosuchcolumn") && message.contains("A-1"),
        "{message}"
    );
    emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_batch_of_1000_reports_the_one_bad_row() {
    let emulator = start(ServiceKind::Dataverse, EmulatorConfig::empty()).await;
    let dv = dataverse(&emulator, fast_options());
    let mut writes: Vec<Write> = (0..1000)
        .map(|i| account(&format!("B-{i:04}"), "Batched"))
        .collect();
    writes[500] = Write::Upsert {
        table: "accounts".into(),
        key: Key::single("accountnumber", "B-0500"),
        row: row(json!({"nosuchcolumn": 1})),
    };

    // Atomic: the change set fails as a whole, naming the cause.
    let error = dv
        .write_batch(&writes, BatchMode::Atomic)
        .await
        .expect_err("the change set fails");
    match &error {
        ConnectorError::Rejected {
            status, service, ..
        } => {
            assert_eq!(*status, 400);
            assert!(service.message.contains("nosuchcolumn"), "{service}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(error.to_string().contains("none applied"), "{error}");
    assert_eq!(all_accounts(&dv).await, 0, "the change set rolled back");

    let outcomes = dv
        .write_batch(&writes, BatchMode::ContinueOnError)
        .await
        .expect("batch");
    let failed: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| !o.is_applied())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(failed, vec![500]);
    assert_eq!(all_accounts(&dv).await, 999);

    // Deletes by key in a batch; a row already gone counts as deleted.
    let deletes: Vec<Write> = ["B-0001", "B-0001", "B-0500"]
        .iter()
        .map(|n| Write::Delete {
            table: "accounts".into(),
            key: Key::single("accountnumber", n),
        })
        .collect();
    let outcomes = dv
        .write_batch(&deletes, BatchMode::ContinueOnError)
        .await
        .expect("deletes");
    assert!(
        outcomes.iter().all(WriteOutcome::is_applied),
        "{outcomes:?}"
    );
    assert_eq!(all_accounts(&dv).await, 998);

    writes.push(account("B-1000", "One too many"));
    let error = dv
        .write_batch(&writes, BatchMode::Atomic)
        .await
        .expect_err("over the limit");
    assert!(matches!(error, ConnectorError::Invalid { .. }), "{error}");
    assert!(error.to_string().contains("1000"), "{error}");
    emulator.shutdown().await.expect("shutdown");
}
