//! The initial copy's failures and reruns, and a copy resumed after a
//! crash: every failed row is parked and listed with the service's
//! message; rerunning only the failed rows writes only those; rerunning
//! the copy writes only the rows not copied yet; and a copy whose engine
//! is dropped mid-read goes on from its last committed page, each row
//! written once. Writes are counted per key on the target
//! ([`Writes`](super::initial::Writes)).

use std::time::{Duration, Instant};

use dualwrite::checkpoint::Direction;
use dualwrite::connector::ConnectorOptions;
use dualwrite::sync::{CopyStage, Engine, EngineOptions};
use dualwrite_emulators::{FaultConfig, ServiceKind};

use super::initial::{
    RULE, Writes, a_second_later, customers_with, dataverse_accounts, dv_name, finops_customers,
    fresh, progress, rows,
};
use super::{eventually, settle};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_rows_are_listed_and_each_rerun_writes_only_what_it_should() {
    let mut sync = fresh(&customers_with(""), "", &[]).await;
    let numbers = ["A-1", "A-2", "A-3", "A-4", "A-5", "A-6", "A-7"];
    finops_customers(&sync, &rows("usmf", &numbers, "Finops")).await;
    finops_customers(&sync, &rows("usmf", &["X-1", "X-2", "X-3"], "Blocked")).await;
    let writes = Writes::install(&sync).await;
    writes.refuse("Blocked");
    sync.start_engine_only().await;
    eventually("the copy done with its failures", || async {
        sync.engine()
            .initial_progress("customers")
            .is_some_and(|p| p.stage == CopyStage::Done && p.rows.failed == 3)
    })
    .await;
    let store = sync.engine().checkpoints();
    let failures = store.initial_failures("customers").expect("listed");
    let keys: Vec<&str> = failures.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(keys, ["X-1|usmf", "X-2|usmf", "X-3|usmf"], "{failures:?}");
    for failure in &failures {
        assert_eq!(failure.direction, Direction::LeftToRight);
        assert!(
            failure.reason.contains(RULE) && failure.reason.contains("refused"),
            "the service's message: {}",
            failure.reason
        );
    }
    let counts = progress(&sync).rows;
    assert_eq!(
        (counts.read, counts.written, counts.failed),
        (10, 7, 3),
        "{counts:?}"
    );

    // The rule is lifted. One failed row is dropped by the admin; the
    // others are rerun: only they are written, once each.
    writes.accept_all();
    writes.reset();
    store
        .discard("customers", Direction::LeftToRight, "X-3|usmf")
        .expect("discarded");
    assert_eq!(store.rerun_failed("customers").expect("rerun"), 2);
    eventually("the failed rows written", || async {
        writes.of("dataverse", "X-1") == 1 && writes.of("dataverse", "X-2") == 1
    })
    .await;
    settle(&sync).await;
    let written = writes.all();
    assert_eq!(written.len(), 2, "only the failed rows: {written:?}");
    assert!(
        store
            .initial_failures("customers")
            .expect("listed")
            .is_empty()
    );
    assert_eq!(dv_name(&sync, "X-3").await, None, "discarded, not copied");
    let counts = progress(&sync).rows;
    assert_eq!(
        (counts.written, counts.failed, counts.discarded),
        (9, 0, 1),
        "{counts:?}"
    );

    // The copy again: every row not copied yet, so only the discarded one.
    writes.reset();
    assert_eq!(store.rerun_initial("customers").expect("asked"), 2);
    eventually("the rerun done", || async {
        sync.engine()
            .initial_progress("customers")
            .is_some_and(|p| p.rerun && p.stage == CopyStage::Done)
    })
    .await;
    settle(&sync).await;
    let written = writes.all();
    assert_eq!(
        written.into_iter().collect::<Vec<_>>(),
        [(("dataverse", "X-3".to_owned()), 1)],
        "only the row not copied yet"
    );
    assert_eq!(dv_name(&sync, "X-3").await.as_deref(), Some("Blocked X-3"));
    // Read again: the 10 finops rows and the rows on Dataverse (9, or 10
    // when the rerun wrote X-3 before the Dataverse side's read began),
    // each found copied already but X-3 on finops.
    let counts = progress(&sync).rows;
    assert!(matches!(counts.read, 19 | 20), "{counts:?}");
    assert_eq!(counts.total, Some(counts.read), "{counts:?}");
    assert_eq!(
        (counts.written, counts.skipped, counts.failed),
        (1, counts.read - 1, 0),
        "{counts:?}"
    );
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_dropped_mid_read_goes_on_from_its_last_page_and_writes_each_row_once() {
    // The long read on finops (reconciliation's pass), then on Dataverse
    // (change tracking's first read).
    for heavy in [ServiceKind::Finops, ServiceKind::Dataverse] {
        dropped_mid_read(heavy).await;
    }
}

/// 2,000 rows on the `heavy` side, two on the other; the engine dropped
/// when the copy has read 800 of them, and started again.
async fn dropped_mid_read(heavy: ServiceKind) {
    let mut sync = fresh(&customers_with(""), "poll_interval = \"1h\"", &[]).await;
    let (many, few, to_many, to_few) = match heavy {
        ServiceKind::Finops => ("P", "Q", "dataverse", "finops"),
        ServiceKind::Dataverse => ("Q", "P", "finops", "dataverse"),
    };
    let numbers: Vec<String> = (0..2000).map(|i| format!("{many}-{i:04}")).collect();
    let heavy_rows: Vec<_> = numbers
        .iter()
        .map(|n| ("usmf", n.clone(), format!("Row {n}")))
        .collect();
    let light = [format!("{few}-1"), format!("{few}-2")];
    let light_rows: Vec<_> = light
        .iter()
        .map(|n| ("usmf", n.clone(), format!("Row {n}")))
        .collect();
    match heavy {
        ServiceKind::Finops => {
            finops_customers(&sync, &heavy_rows).await;
            dataverse_accounts(&sync, &light_rows).await;
        }
        ServiceKind::Dataverse => {
            dataverse_accounts(&sync, &heavy_rows).await;
            finops_customers(&sync, &light_rows).await;
        }
    }
    let writes = Writes::install(&sync).await;
    sync.options = EngineOptions {
        connector: ConnectorOptions {
            page_size: 100,
            ..ConnectorOptions::default()
        },
        ..EngineOptions::default()
    };
    a_second_later().await;
    // Each page of the heavy side takes a while: the read is long enough
    // to drop the engine in the middle of it.
    let emulator = match heavy {
        ServiceKind::Finops => &sync.finops,
        ServiceKind::Dataverse => &sync.dataverse,
    };
    emulator.set_faults(FaultConfig {
        latency_ms: 150,
        ..FaultConfig::default()
    });
    sync.start_engine_only().await;
    eventually("the copy half read", || async {
        sync.engine()
            .initial_progress("customers")
            .is_some_and(|p| p.rows.read >= 800)
    })
    .await;
    let before = progress(&sync);
    assert_eq!(before.stage, CopyStage::Reading, "{heavy:?}: {before:?}");
    assert!(
        writes.all().is_empty(),
        "{heavy:?}: nothing is written before both sides are read"
    );
    // A crash: the engine is dropped, nothing is shut down or flushed.
    drop(sync.engine.take());
    let emulator = match heavy {
        ServiceKind::Finops => &sync.finops,
        ServiceKind::Dataverse => &sync.dataverse,
    };
    let requests_at_crash = emulator.requests();
    let started = Instant::now();
    let engine = loop {
        match Engine::start(sync.plan(), sync.options.clone()).await {
            Ok(engine) => break engine,
            Err(error) => {
                assert!(started.elapsed() < Duration::from_secs(10), "{error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    sync.engine = Some(engine);
    let read_before = before.rows.read;
    eventually("the copy done", || async { sync.engine().initialized() }).await;
    settle(&sync).await;
    // The read went on from the page after the last one queued: the first
    // pages were not read again. (Then one more read follows at once, the
    // watermark that finds the edits made during the copy: a finops pass
    // of 20 pages, a Dataverse delta read.)
    let pages_left = (2000 - read_before).div_ceil(100);
    let watermark = match heavy {
        ServiceKind::Finops => 20,
        ServiceKind::Dataverse => 1,
    };
    let emulator = match heavy {
        ServiceKind::Finops => &sync.finops,
        ServiceKind::Dataverse => &sync.dataverse,
    };
    let requests = emulator.requests() - requests_at_crash;
    assert!(
        requests <= pages_left + watermark + 6,
        "{heavy:?}: {requests} requests after the restart for {pages_left} pages left and a watermark read of {watermark}"
    );
    for number in &numbers {
        assert_eq!(
            writes.of(to_many, number),
            1,
            "{heavy:?}: {number} written once"
        );
    }
    for number in &light {
        assert_eq!(
            writes.of(to_few, number),
            1,
            "{heavy:?}: {number} written once"
        );
    }
    let counts = progress(&sync).rows;
    assert_eq!(
        (counts.read, counts.written, counts.total),
        (2002, 2002, Some(2002)),
        "{heavy:?}: {counts:?}"
    );
    emulator.set_faults(FaultConfig::default());
    sync.shutdown().await;
}
