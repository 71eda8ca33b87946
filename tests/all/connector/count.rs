//! Row counts as each service gives them: Dataverse's `$count=true`, exact
//! below its 5,000 limit and a lower bound at it (the
//! `totalrecordcountlimitexceeded` annotation says so), and finops'
//! `/$count` across companies, with a filter.

use dualwrite::connector::{BatchMode, DATAVERSE_COUNT_LIMIT, Key, RowCount, Write};
use dualwrite_emulators::{EmulatorConfig, ServiceKind};
use serde_json::json;

use super::support::{dataverse, fast_options, finops, row, start};

fn account(i: usize) -> Write {
    Write::Upsert {
        table: "accounts".into(),
        key: Key::single("accountnumber", &format!("C-{i:05}")),
        row: row(json!({"name": if i.is_multiple_of(2) { "Even" } else { "Odd" }})),
    }
}

#[tokio::test]
async fn dataverse_counts_exactly_below_its_limit_and_says_when_rows_are_more() {
    let emulator = start(ServiceKind::Dataverse, EmulatorConfig::empty()).await;
    let dv = dataverse(&emulator, fast_options());
    let writes: Vec<Write> = (0..7).map(account).collect();
    dv.write_batch(&writes, BatchMode::Atomic)
        .await
        .expect("batch");
    assert_eq!(
        dv.count("accounts", None).await.expect("count"),
        RowCount {
            count: 7,
            exact: true
        }
    );
    assert_eq!(
        dv.count("accounts", Some("name eq 'Odd'"))
            .await
            .expect("count"),
        RowCount {
            count: 3,
            exact: true
        }
    );
    let limit = DATAVERSE_COUNT_LIMIT as usize;
    for chunk in (7..limit + 2).collect::<Vec<_>>().chunks(1000) {
        let writes: Vec<Write> = chunk.iter().copied().map(account).collect();
        dv.write_batch(&writes, BatchMode::Atomic)
            .await
            .expect("batch");
    }
    assert_eq!(
        dv.count("accounts", None).await.expect("count"),
        RowCount {
            count: DATAVERSE_COUNT_LIMIT,
            exact: false
        },
        "5,002 rows count as at least 5,000"
    );
    emulator.shutdown().await.expect("stops");
}

#[tokio::test]
async fn finops_counts_across_companies_with_a_filter() {
    let emulator = start(ServiceKind::Finops, EmulatorConfig::empty()).await;
    let fo = finops(&emulator, fast_options());
    let writes: Vec<Write> = (0..9)
        .map(|i| Write::Upsert {
            table: "CustomerGroups".into(),
            key: Key::new()
                .text("dataAreaId", if i < 6 { "usmf" } else { "demf" })
                .text("CustomerGroupId", &format!("G{i}")),
            row: row(json!({"Description": "Counted"})),
        })
        .collect();
    fo.write_batch(&writes, BatchMode::ContinueOnError)
        .await
        .expect("batch");
    assert_eq!(
        fo.count("CustomerGroups", None).await.expect("count"),
        RowCount {
            count: 9,
            exact: true
        }
    );
    assert_eq!(
        fo.count("CustomerGroups", Some("dataAreaId eq 'demf'"))
            .await
            .expect("count"),
        RowCount {
            count: 3,
            exact: true
        }
    );
    emulator.shutdown().await.expect("stops");
}
