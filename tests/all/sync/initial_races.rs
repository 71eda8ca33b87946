//! The initial copy against the clock: a master whose read outlasts
//! `lookup_wait` still wins (the direction toward it is held until its
//! read is done), and a Dataverse edit made while the copy reads Dataverse,
//! before the read reaches the row, is a live change that beats the
//! master's older copy.

use dualwrite::connector::{BatchMode, ConnectorOptions, Key, Write, WriteOutcome};
use dualwrite::sync::EngineOptions;
use dualwrite_emulators::FaultConfig;
use serde_json::json;

use super::initial::{
    Writes, a_second_later, customers_with, dataverse_accounts, dv_name, finops_customers, fo_name,
    fresh,
};
use super::{eventually, object, settle};

fn paged(page_size: u32) -> EngineOptions {
    EngineOptions {
        connector: ConnectorOptions {
            page_size,
            ..ConnectorOptions::default()
        },
        ..EngineOptions::default()
    }
}

fn numbered(prefix: &str, count: usize, name: &str) -> Vec<(&'static str, String, String)> {
    (0..count)
        .map(|i| {
            let number = format!("{prefix}-{i:03}");
            ("usmf", number.clone(), format!("{name} {number}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_wins_even_when_its_read_outlasts_lookup_wait() {
    let mut sync = fresh(&customers_with(""), "lookup_wait = \"1s\"", &[]).await;
    // The keys both sides hold come last in finops' pages.
    finops_customers(&sync, &numbered("P", 500, "Finops")).await;
    finops_customers(&sync, &numbered("Z", 20, "Finops")).await;
    dataverse_accounts(&sync, &numbered("Z", 20, "Dataverse")).await;
    let writes = Writes::install(&sync).await;
    sync.options = paged(100);
    a_second_later().await;
    // Six pages at 300 ms: finops' read takes twice `lookup_wait`, after
    // which the worker stops waiting for it.
    sync.finops.set_faults(FaultConfig {
        latency_ms: 300,
        ..FaultConfig::default()
    });
    sync.start_engine_only().await;
    eventually("the copy done", || async { sync.engine().initialized() }).await;
    sync.finops.set_faults(FaultConfig::default());
    settle(&sync).await;
    for i in 0..20 {
        let number = format!("Z-{i:03}");
        let expected = Some(format!("Finops {number}"));
        assert_eq!(fo_name(&sync, &number).await, expected, "finops {number}");
        assert_eq!(
            dv_name(&sync, &number).await,
            expected,
            "dataverse {number}"
        );
        assert_eq!(
            writes.of("finops", &number),
            0,
            "{number}: the master is never overwritten"
        );
    }
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataverse_edit_the_copy_reads_later_is_live_and_beats_the_master() {
    let mut sync = fresh(&customers_with(""), "", &[]).await;
    let both = numbered("K", 20, "Finops");
    finops_customers(&sync, &both).await;
    dataverse_accounts(&sync, &numbered("K", 20, "Dataverse")).await;
    dataverse_accounts(&sync, &numbered("F", 280, "Dataverse")).await;
    sync.options = paged(25);
    a_second_later().await;
    // Twelve Dataverse pages at 300 ms each: its read lasts a few seconds.
    sync.dataverse.set_faults(FaultConfig {
        latency_ms: 300,
        ..FaultConfig::default()
    });
    sync.start_engine_only().await;
    eventually("the copy of Dataverse begun", || async {
        sync.engine()
            .initial_progress("customers")
            .is_some_and(|p| p.sides.iter().any(|s| s.side == "right"))
    })
    .await;
    // In a later second than the copy began (Dataverse's grain), while
    // Dataverse is still being read: most of these rows are read after
    // their edit, as the copy's read of them.
    a_second_later().await;
    let edits: Vec<Write> = (0..20)
        .map(|i| Write::Upsert {
            table: "accounts".into(),
            key: Key::single("accountnumber", &format!("K-{i:03}")),
            row: object(json!({"name": format!("Edited K-{i:03}")})),
        })
        .collect();
    let outcomes = sync
        .dv
        .write_batch(&edits, BatchMode::ContinueOnError)
        .await
        .expect("the edits");
    assert!(
        outcomes.iter().all(WriteOutcome::is_applied),
        "{outcomes:?}"
    );
    let reading = sync
        .engine()
        .initial_progress("customers")
        .expect("progress");
    assert!(
        reading
            .sides
            .iter()
            .any(|s| s.side == "right" && s.finished.is_none()),
        "the edits came while Dataverse was read: {reading:?}"
    );
    eventually("the copy done", || async { sync.engine().initialized() }).await;
    sync.dataverse.set_faults(FaultConfig::default());
    settle(&sync).await;
    for i in 0..20 {
        let number = format!("K-{i:03}");
        let expected = Some(format!("Edited {number}"));
        assert_eq!(fo_name(&sync, &number).await, expected, "finops {number}");
        assert_eq!(
            dv_name(&sync, &number).await,
            expected,
            "dataverse {number}"
        );
    }
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finops_edit_during_the_copy_announced_by_its_data_event_beats_a_dataverse_master() {
    // finops gives no change time: an edit its copy reads after it was
    // made looks like the copy. Its data event says otherwise.
    let mut sync = fresh(
        &customers_with("initial_sync = \"right\""),
        "listen = \"127.0.0.1:0\"",
        &[],
    )
    .await;
    finops_customers(&sync, &numbered("A", 400, "Finops")).await;
    finops_customers(&sync, &numbered("K", 20, "Finops")).await;
    dataverse_accounts(&sync, &numbered("K", 20, "Dataverse")).await;
    sync.options = paged(25);
    a_second_later().await;
    // Seventeen finops pages at 200 ms each.
    sync.finops.set_faults(FaultConfig {
        latency_ms: 200,
        ..FaultConfig::default()
    });
    sync.start_engine_only().await;
    sync.push_finops_events();
    eventually("the copy of finops begun", || async {
        sync.engine()
            .initial_progress("customers")
            .is_some_and(|p| p.sides.iter().any(|s| s.side == "left"))
    })
    .await;
    // Five of the twenty, so their events (each read again at 200 ms) are
    // all taken well before the copy reaches the K page.
    let edits: Vec<Write> = (0..EDITED)
        .map(|i| Write::Upsert {
            table: "CustomersV3".into(),
            key: Key::new()
                .text("dataAreaId", "usmf")
                .text("CustomerAccount", &format!("K-{i:03}")),
            row: object(json!({"OrganizationName": format!("Edited K-{i:03}")})),
        })
        .collect();
    let outcomes = sync
        .fo
        .write_batch(&edits, BatchMode::ContinueOnError)
        .await
        .expect("the edits");
    assert!(
        outcomes.iter().all(WriteOutcome::is_applied),
        "{outcomes:?}"
    );
    eventually("the edits' data events taken", || async {
        sync.finops.undelivered_events() == 0
    })
    .await;
    let reading = sync
        .engine()
        .initial_progress("customers")
        .expect("progress");
    assert!(
        reading
            .sides
            .iter()
            .any(|s| s.side == "left" && s.finished.is_none()),
        "the edits and their events came while finops was read: {reading:?}"
    );
    eventually("the copy done", || async { sync.engine().initialized() }).await;
    sync.finops.set_faults(FaultConfig::default());
    settle(&sync).await;
    for i in 0..20 {
        let number = format!("K-{i:03}");
        let winner = if i < EDITED { "Edited" } else { "Dataverse" };
        let expected = Some(format!("{winner} {number}"));
        assert_eq!(fo_name(&sync, &number).await, expected, "finops {number}");
        assert_eq!(
            dv_name(&sync, &number).await,
            expected,
            "dataverse {number}"
        );
    }
    sync.shutdown().await;
}

/// How many of the twenty K rows finops edits during its copy.
const EDITED: usize = 5;
