//! A map striped by company (`companies`) reads finops one company at a
//! time, in the map's order, with `$filter=dataAreaId eq '…'`: the rows of
//! companies it does not sync are never read, its copy's total counts only
//! its companies, and a copy stopped in the middle goes on in the company
//! it was reading, writing each row once.

use dualwrite::checkpoint::{Checkpoints, Direction};
use dualwrite::sync::CopyStage;
use dualwrite_emulators::FaultConfig;

use super::initial::{customers_with, finops_customers, fresh, progress};
use super::{Sync, eventually, settle};

fn customers(company: &'static str, count: usize) -> Vec<(&'static str, String, String)> {
    (0..count)
        .map(|i| {
            let number = format!("{}-{i:03}", company.to_uppercase());
            (company, number.clone(), format!("Customer {number}"))
        })
        .collect()
}

/// Both companies of the map with customers, and one more company the
/// map does not sync with many.
async fn striped() -> Sync {
    let sync = fresh(
        &customers_with("companies = [\"usmf\", \"demf\"]"),
        "batch_size = 50",
        &["demf", "frrt"],
    )
    .await;
    finops_customers(&sync, &customers("usmf", 60)).await;
    finops_customers(&sync, &customers("demf", 40)).await;
    finops_customers(&sync, &customers("frrt", 400)).await;
    sync
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_striped_copy_reads_only_its_companies() {
    let mut sync = striped().await;
    sync.options.connector.page_size = 10;
    sync.start_engine().await;
    settle(&sync).await;
    let progress = progress(&sync);
    assert_eq!(progress.stage, CopyStage::Done, "{progress:?}");
    let left = progress
        .sides
        .iter()
        .find(|side| side.side == "left")
        .expect("the left side is copied");
    assert_eq!(
        left.total,
        Some(100),
        "only the map's companies are counted"
    );
    assert_eq!(progress.rows.read, 100, "{:?}", progress.rows);
    assert_eq!(progress.rows.written, 100, "{:?}", progress.rows);
    let companies: Vec<&str> = progress
        .companies
        .iter()
        .map(|c| c.company.as_str())
        .collect();
    assert_eq!(companies, ["demf", "usmf"]);
    // frrt's 400 rows were never read, so never captured to be filtered
    // out: every capture of the left side is a row of the map's companies.
    let captured = sync
        .engine()
        .stats("customers", Direction::LeftToRight)
        .captured;
    assert_eq!(captured, 100, "no row of another company is captured");
    let accounts = sync.dv.query_all("accounts", &Default::default()).await;
    assert_eq!(accounts.expect("accounts").len(), 100);
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_striped_copy_stopped_midway_goes_on_in_the_company_it_was_reading() {
    let mut sync = striped().await;
    sync.options.connector.page_size = 10;
    // Slow enough to stop the copy in its second company.
    sync.finops.set_faults(FaultConfig {
        latency_ms: 100,
        ..FaultConfig::default()
    });
    sync.start_engine_only().await;
    eventually("the copy in its second company", || async {
        sync.engine()
            .initial_progress("customers")
            .is_some_and(|p| {
                p.companies
                    .iter()
                    .any(|c| c.company == "demf" && c.rows.read >= 10)
            })
    })
    .await;
    sync.stop_engine().await;
    {
        let store = Checkpoints::open(&sync.dir.path().join("data")).expect("the store opens");
        let copy = store
            .side_copy("customers", "left")
            .expect("read")
            .expect("the left side's copy");
        assert!(copy.resume.is_some(), "stopped midway: {copy:?}");
        assert_eq!(
            copy.company.as_deref(),
            Some("demf"),
            "the copy goes on in the company it was reading: {copy:?}"
        );
    }
    sync.finops.set_faults(FaultConfig::default());
    sync.start_engine().await;
    settle(&sync).await;
    let progress = progress(&sync);
    assert_eq!(progress.stage, CopyStage::Done, "{progress:?}");
    let writes = sync.dataverse.writes("accounts").expect("write counts");
    assert_eq!(writes.len(), 100, "every account is written");
    assert!(
        writes.iter().all(|row| row.writes == 1),
        "each account once: {:?}",
        writes
            .iter()
            .filter(|row| row.writes != 1)
            .collect::<Vec<_>>()
    );
    sync.shutdown().await;
}
