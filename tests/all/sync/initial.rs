//! The initial copy at a map's first start: the master side's values win
//! on keys both sides hold, whatever the map's conflict policy; rows only
//! on one side are copied either way; `none` copies nothing and syncs later
//! changes; rows edited on either side while a long copy runs end with the
//! edit on both sides; and the progress counts add up, per company.
//!
//! Each test fills both emulators first, then starts the engine on a fresh
//! store, so its first start meets data both systems hold already. Writes
//! are counted per key on the target by pre-commit hooks ([`Writes`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use dualwrite::checkpoint::Action;
use dualwrite::connector::{BatchMode, DataverseConnector, Key, Write, WriteOutcome};
use dualwrite::sync::{CopyStage, InitialProgress};
use serde_json::{Value, json};

use super::{MAPS, Sync, eventually, object, settle, text};

/// [`MAPS`] with `lines` added to the customers map.
pub(super) fn customers_with(lines: &str) -> String {
    MAPS.replace(
        "depends_on = [\"legal-entities\", \"customer-groups\"]",
        &format!("depends_on = [\"legal-entities\", \"customer-groups\"]\n{lines}"),
    )
}

/// Both emulators with the legal entities `companies` on both sides, and
/// the engine stopped on an empty store: its next start is a first start.
pub(super) async fn fresh(maps: &str, engine: &str, companies: &[&str]) -> Sync {
    let mut sync = Sync::start(maps, engine).await;
    for company in companies {
        sync.fo_upsert(
            "LegalEntities",
            &[("LegalEntityId", company)],
            json!({"Name": format!("Contoso {company}")}),
        )
        .await;
        sync.company_id(company).await;
    }
    sync.stop_engine().await;
    std::fs::remove_dir_all(sync.dir.path().join("data")).expect("the store removed");
    sync
}

/// Creates finops customers `(company, number, name)` in batches.
pub(super) async fn finops_customers(sync: &Sync, rows: &[(&str, String, String)]) {
    for chunk in rows.chunks(500) {
        let writes: Vec<Write> = chunk
            .iter()
            .map(|(company, number, name)| Write::Upsert {
                table: "CustomersV3".into(),
                key: Key::new()
                    .text("dataAreaId", company)
                    .text("CustomerAccount", number),
                row: object(json!({"OrganizationName": name, "PartyType": "Organization"})),
            })
            .collect();
        let outcomes = sync
            .fo
            .write_batch(&writes, BatchMode::ContinueOnError)
            .await
            .expect("finops batch");
        assert!(
            outcomes.iter().all(WriteOutcome::is_applied),
            "{outcomes:?}"
        );
    }
}

/// Creates Dataverse accounts `(company, number, name)` in batches.
pub(super) async fn dataverse_accounts(sync: &Sync, rows: &[(&str, String, String)]) {
    for chunk in rows.chunks(500) {
        let writes: Vec<Write> = chunk
            .iter()
            .map(|(company, number, name)| {
                let mut row = object(json!({"name": name, "customertypecode": 3}));
                DataverseConnector::bind(
                    &mut row,
                    "msdyn_company",
                    "cdm_companies",
                    &Key::single("cdm_companycode", company),
                );
                Write::Upsert {
                    table: "accounts".into(),
                    key: Key::single("accountnumber", number),
                    row,
                }
            })
            .collect();
        let outcomes = sync
            .dv
            .write_batch(&writes, BatchMode::ContinueOnError)
            .await
            .expect("dataverse batch");
        assert!(
            outcomes.iter().all(WriteOutcome::is_applied),
            "{outcomes:?}"
        );
    }
}

pub(super) fn rows(
    company: &'static str,
    numbers: &[&str],
    name: &str,
) -> Vec<(&'static str, String, String)> {
    numbers
        .iter()
        .map(|n| (company, (*n).to_owned(), format!("{name} {n}")))
        .collect()
}

/// The writes each customer received on each side, counted by pre-commit
/// hooks on `CustomersV3` (finops) and `accounts` (Dataverse): a write is
/// counted when the service is about to commit it. A name in `refused`
/// is refused with a business rule's message, as the service would.
#[derive(Clone, Default)]
pub(super) struct Writes {
    counts: Arc<Mutex<HashMap<(&'static str, String), usize>>>,
    refused: Arc<Mutex<Vec<String>>>,
}

/// The message a refused write carries.
pub(super) const RULE: &str = "names on the blocklist may not be saved";

impl Writes {
    /// Hooks on both emulators' customer tables.
    pub(super) async fn install(sync: &Sync) -> Writes {
        let writes = Writes::default();
        for (side, table) in [("finops", "CustomersV3"), ("dataverse", "accounts")] {
            let url = writes.serve(side).await;
            match side {
                "finops" => sync.finops.set_hook(table, Some(url)),
                _ => sync.dataverse.set_hook(table, Some(url)),
            }
        }
        writes
    }

    async fn serve(&self, side: &'static str) -> String {
        let writes = self.clone();
        super::hook(move |change: Value| {
            let writes = writes.clone();
            async move { writes.seen(side, &change) }
        })
        .await
    }

    fn seen(&self, side: &'static str, change: &Value) -> (StatusCode, &'static str) {
        let name = change["row"]["name"]
            .as_str()
            .or(change["row"]["OrganizationName"].as_str())
            .unwrap_or_default()
            .to_owned();
        if self
            .refused
            .lock()
            .expect("refused")
            .iter()
            .any(|r| name.contains(r.as_str()))
        {
            return (StatusCode::BAD_REQUEST, RULE);
        }
        let number = match side {
            // A create carries its key in the row.
            "finops" => change["key"]["CustomerAccount"]
                .as_str()
                .or(change["row"]["CustomerAccount"].as_str())
                .unwrap_or_default()
                .to_owned(),
            _ => {
                let key = change["key"].as_str().unwrap_or_default();
                key.split("accountnumber = \"")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .unwrap_or_default()
                    .to_owned()
            }
        };
        *self
            .counts
            .lock()
            .expect("counts")
            .entry((side, number))
            .or_default() += 1;
        (StatusCode::NO_CONTENT, "")
    }

    /// Refuses writes whose name contains `marker`.
    pub(super) fn refuse(&self, marker: &str) {
        self.refused
            .lock()
            .expect("refused")
            .push(marker.to_owned());
    }

    /// Accepts every write again.
    pub(super) fn accept_all(&self) {
        self.refused.lock().expect("refused").clear();
    }

    /// Writes of customer `number` to `side` (`finops` or `dataverse`).
    pub(super) fn of(&self, side: &'static str, number: &str) -> usize {
        self.counts
            .lock()
            .expect("counts")
            .get(&(side, number.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Every write counted, `(side, number)` → writes.
    pub(super) fn all(&self) -> HashMap<(&'static str, String), usize> {
        self.counts.lock().expect("counts").clone()
    }

    /// Forgets the writes counted so far.
    pub(super) fn reset(&self) {
        self.counts.lock().expect("counts").clear();
    }
}

/// Lets the second the rows were made pass: Dataverse's `modifiedon` has
/// whole seconds, and a row modified in the second the copy begins counts
/// as changed during the copy (live).
pub(super) async fn a_second_later() {
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
}

pub(super) fn progress(sync: &Sync) -> InitialProgress {
    sync.engine()
        .initial_progress("customers")
        .expect("the customers map has begun its copy")
}

pub(super) async fn fo_name(sync: &Sync, number: &str) -> Option<String> {
    sync.fo_get(
        "CustomersV3",
        &[("dataAreaId", "usmf"), ("CustomerAccount", number)],
    )
    .await
    .map(|row| text(&row, "OrganizationName"))
}

pub(super) async fn dv_name(sync: &Sync, number: &str) -> Option<String> {
    sync.dv_get("accounts", Key::single("accountnumber", number))
        .await
        .map(|row| text(&row, "name"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_side_wins_on_keys_both_sides_hold_whatever_the_policy() {
    for (master, policy, loser) in [
        ("left", "right-wins", "right"),
        ("right", "left-wins", "left"),
    ] {
        let maps = customers_with(&format!(
            "initial_sync = \"{master}\"\nconflict = \"{policy}\""
        ));
        let mut sync = fresh(&maps, "", &[]).await;
        finops_customers(&sync, &rows("usmf", &["B-1", "B-2", "L-1"], "Finops")).await;
        finops_customers(&sync, &[("usmf", "S-1".into(), "Same".into())]).await;
        dataverse_accounts(&sync, &rows("usmf", &["B-1", "B-2", "R-1"], "Dataverse")).await;
        dataverse_accounts(&sync, &[("usmf", "S-1".into(), "Same".into())]).await;
        let writes = Writes::install(&sync).await;
        a_second_later().await;
        sync.start_engine().await;
        settle(&sync).await;

        let winner = match master {
            "left" => "Finops",
            _ => "Dataverse",
        };
        for number in ["B-1", "B-2"] {
            let expected = Some(format!("{winner} {number}"));
            assert_eq!(
                fo_name(&sync, number).await,
                expected,
                "{master}: finops {number}"
            );
            assert_eq!(
                dv_name(&sync, number).await,
                expected,
                "{master}: dataverse {number}"
            );
            let (to_master, to_other) = match master {
                "left" => (writes.of("finops", number), writes.of("dataverse", number)),
                _ => (writes.of("dataverse", number), writes.of("finops", number)),
            };
            assert_eq!(
                (to_master, to_other),
                (0, 1),
                "{master}: {number} written once, to the other side"
            );
        }
        // Rows only on one side are copied either way.
        assert_eq!(
            dv_name(&sync, "L-1").await.as_deref(),
            Some("Finops L-1"),
            "{master}"
        );
        assert_eq!(
            fo_name(&sync, "R-1").await.as_deref(),
            Some("Dataverse R-1"),
            "{master}"
        );
        // Both sides hold the same values: nothing is written.
        assert_eq!(
            writes.of("finops", "S-1") + writes.of("dataverse", "S-1"),
            0,
            "{master}"
        );
        let lost = sync.activity("customers", Action::ConflictLost);
        assert_eq!(lost.len(), 2, "{master}: {lost:?}");
        for line in &lost {
            assert!(
                line.detail.starts_with(&format!(
                    "initial sync, the {master} side is the master: {loser}"
                )),
                "{master}: {}",
                line.detail
            );
        }
        let progress = progress(&sync);
        assert_eq!(progress.stage, CopyStage::Done, "{progress:?}");
        let rows = progress.rows;
        assert_eq!((rows.read, rows.total), (8, Some(8)), "{master}: {rows:?}");
        assert_eq!(
            (rows.written, rows.skipped, rows.failed),
            (4, 4, 0),
            "{master}: {rows:?}"
        );
        assert_eq!(rows.eta_seconds, Some(0));
        sync.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn none_copies_nothing_old_and_syncs_later_changes_deletes_too() {
    let mut sync = fresh(&customers_with("initial_sync = \"none\""), "", &[]).await;
    finops_customers(
        &sync,
        &rows("usmf", &["O-1", "B-1", "B-2", "B-3"], "Finops"),
    )
    .await;
    dataverse_accounts(
        &sync,
        &rows("usmf", &["D-1", "B-1", "B-2", "B-3"], "Dataverse"),
    )
    .await;
    let writes = Writes::install(&sync).await;
    sync.start_engine().await;
    settle(&sync).await;
    assert!(
        writes.all().is_empty(),
        "nothing old is written: {:?}",
        writes.all()
    );
    assert_eq!(dv_name(&sync, "O-1").await, None);
    assert_eq!(fo_name(&sync, "D-1").await, None);
    assert_eq!(fo_name(&sync, "B-1").await.as_deref(), Some("Finops B-1"));
    assert_eq!(
        dv_name(&sync, "B-1").await.as_deref(),
        Some("Dataverse B-1")
    );
    assert_eq!(progress(&sync).stage, CopyStage::NotCopied);

    // Changes after the first read flow: an edit of an old finops row, an
    // edit of a row both sides held, and a delete of one, which finds its
    // key by the row id the first read stored.
    sync.fo_upsert(
        "CustomersV3",
        &[("dataAreaId", "usmf"), ("CustomerAccount", "O-1")],
        json!({"OrganizationName": "Finops O-1, edited"}),
    )
    .await;
    sync.dv_upsert(
        "accounts",
        Key::single("accountnumber", "B-1"),
        json!({"name": "Dataverse B-1, edited"}),
    )
    .await;
    sync.dv_delete("accounts", Key::single("accountnumber", "B-2"))
        .await;
    // finops finds its delete against the hashes the first read stored.
    sync.fo_delete(
        "CustomersV3",
        &[("dataAreaId", "usmf"), ("CustomerAccount", "B-3")],
    )
    .await;
    eventually("the later changes on the other sides", || async {
        dv_name(&sync, "O-1").await.as_deref() == Some("Finops O-1, edited")
            && fo_name(&sync, "B-1").await.as_deref() == Some("Dataverse B-1, edited")
            && fo_name(&sync, "B-2").await.is_none()
            && dv_name(&sync, "B-3").await.is_none()
    })
    .await;
    settle(&sync).await;
    assert_eq!(
        fo_name(&sync, "D-1").await,
        None,
        "old rows stay where they were"
    );
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_edited_on_either_side_during_a_long_copy_end_with_the_edit_on_both_sides() {
    let mut sync = fresh(
        &customers_with(""),
        "batch_size = 20\nbatches_in_flight = 1\npoll_interval = \"200ms\"",
        &[],
    )
    .await;
    let finops_only: Vec<String> = (0..2000).map(|i| format!("C-{i:04}")).collect();
    let both: Vec<String> = (0..100).map(|i| format!("E-{i:04}")).collect();
    let dataverse_only: Vec<String> = (0..300).map(|i| format!("D-{i:04}")).collect();
    let named = |numbers: &[String], name: &str| -> Vec<(&'static str, String, String)> {
        numbers
            .iter()
            .map(|n| ("usmf", n.clone(), format!("{name} {n}")))
            .collect()
    };
    finops_customers(&sync, &named(&finops_only, "Finops")).await;
    finops_customers(&sync, &named(&both, "Finops")).await;
    dataverse_accounts(&sync, &named(&both, "Dataverse")).await;
    dataverse_accounts(&sync, &named(&dataverse_only, "Dataverse")).await;
    let writes = Writes::install(&sync).await;
    a_second_later().await;
    sync.start_engine_only().await;

    let edit_finops = |number: &'static str, name: &'static str| {
        let sync = &sync;
        async move {
            sync.fo_upsert(
                "CustomersV3",
                &[("dataAreaId", "usmf"), ("CustomerAccount", number)],
                json!({"OrganizationName": name}),
            )
            .await;
        }
    };
    let edit_dataverse = |number: &'static str, name: &'static str| {
        let sync = &sync;
        async move {
            sync.dv_upsert(
                "accounts",
                Key::single("accountnumber", number),
                json!({"name": name}),
            )
            .await;
        }
    };
    eventually("the copy writing", || async {
        sync.engine()
            .initial_progress("customers")
            .is_some_and(|p| p.rows.written > 0)
    })
    .await;
    // Early in the copy: rows the copy has read but not written yet.
    edit_finops("C-1990", "Edited early in finops").await;
    edit_dataverse("E-0090", "Edited early in Dataverse").await;
    edit_dataverse("D-0290", "Edited early in Dataverse").await;
    let early = progress(&sync).rows.written;
    eventually("the copy half way", || async {
        sync.engine()
            .initial_progress("customers")
            .is_some_and(|p| p.rows.written > 1200)
    })
    .await;
    // Late: rows written already, and rows still waiting.
    let late = progress(&sync).rows;
    edit_finops("C-0005", "Edited late in finops").await;
    edit_dataverse("E-0099", "Edited late in Dataverse").await;
    edit_dataverse("D-0001", "Edited late in Dataverse").await;
    edit_finops("C-1999", "Edited late in finops").await;
    // Deletes of rows both sides hold, on either side, while the other
    // side's copy of them may still wait.
    sync.fo_delete(
        "CustomersV3",
        &[("dataAreaId", "usmf"), ("CustomerAccount", "E-0095")],
    )
    .await;
    sync.dv_delete("accounts", Key::single("accountnumber", "E-0096"))
        .await;
    assert!(
        progress(&sync).stage != CopyStage::Done && late.written < late.read,
        "the edits came while the copy ran: {late:?} (early at {early} written)"
    );
    eventually("the copy done", || async { sync.engine().initialized() }).await;
    settle(&sync).await;
    for (number, name) in [
        ("C-1990", "Edited early in finops"),
        ("E-0090", "Edited early in Dataverse"),
        ("D-0290", "Edited early in Dataverse"),
        ("C-0005", "Edited late in finops"),
        ("E-0099", "Edited late in Dataverse"),
        ("D-0001", "Edited late in Dataverse"),
        ("C-1999", "Edited late in finops"),
    ] {
        assert_eq!(
            fo_name(&sync, number).await.as_deref(),
            Some(name),
            "finops {number}"
        );
        assert_eq!(
            dv_name(&sync, number).await.as_deref(),
            Some(name),
            "dataverse {number}"
        );
    }
    // A row edited before the copy wrote it is written once, with the
    // edit: the copy's older read of it is retired, not written.
    // (The hooks count the test's own edits too: one on the side edited.)
    assert_eq!(
        (
            writes.of("finops", "C-1990"),
            writes.of("dataverse", "C-1990")
        ),
        (1, 1),
        "the finops edit, and the host's one write of it to Dataverse"
    );
    assert_eq!(
        (
            writes.of("dataverse", "E-0090"),
            writes.of("finops", "E-0090")
        ),
        (1, 1),
        "the Dataverse edit, and the host's one write of it to finops: neither copy of E-0090 is written"
    );
    for number in ["E-0095", "E-0096"] {
        assert_eq!(
            fo_name(&sync, number).await,
            None,
            "finops {number} deleted"
        );
        assert_eq!(
            dv_name(&sync, number).await,
            None,
            "dataverse {number} deleted"
        );
    }
    // The master's values won where nobody edited.
    assert_eq!(
        dv_name(&sync, "E-0001").await.as_deref(),
        Some("Finops E-0001")
    );
    assert_eq!(
        fo_name(&sync, "D-0002").await.as_deref(),
        Some("Dataverse D-0002")
    );
    let counts = progress(&sync).rows;
    assert_eq!(counts.total, Some(2500), "{counts:?}");
    assert_eq!(counts.read, 2500, "{counts:?}");
    assert_eq!(
        counts.written + counts.skipped + counts.failed,
        counts.read,
        "{counts:?}"
    );
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_counts_add_up_per_map_and_per_company() {
    let mut sync = fresh(&customers_with(""), "batch_size = 50", &["demf"]).await;
    let usmf: Vec<String> = (0..120).map(|i| format!("U-{i:03}")).collect();
    let demf: Vec<String> = (0..80).map(|i| format!("G-{i:03}")).collect();
    let shared: Vec<String> = (0..30).map(|i| format!("U-{i:03}")).collect();
    let only_dv: Vec<String> = (0..20).map(|i| format!("V-{i:03}")).collect();
    let named = |company: &'static str, numbers: &[String], name: &str| {
        numbers
            .iter()
            .map(|n| (company, n.clone(), format!("{name} {n}")))
            .collect::<Vec<_>>()
    };
    finops_customers(&sync, &named("usmf", &usmf, "Finops")).await;
    finops_customers(&sync, &named("demf", &demf, "Finops")).await;
    // 30 keys both sides hold alike, 20 only on Dataverse.
    dataverse_accounts(&sync, &named("usmf", &shared, "Finops")).await;
    dataverse_accounts(&sync, &named("usmf", &only_dv, "Dataverse")).await;
    a_second_later().await;
    sync.start_engine().await;
    settle(&sync).await;
    let progress = progress(&sync);
    assert_eq!(progress.stage, CopyStage::Done, "{progress:?}");
    let rows = progress.rows;
    assert_eq!(rows.total, Some(250), "{rows:?}");
    assert_eq!(rows.read, 250, "{rows:?}");
    // 90 usmf and 80 demf rows to Dataverse, 20 to finops; 30 pairs alike.
    assert_eq!(
        (rows.written, rows.skipped, rows.failed),
        (190, 60, 0),
        "{rows:?}"
    );
    assert!(rows.rows_per_second > 0.0, "{rows:?}");
    // A finished copy's rate ends with its last row: it does not fall as
    // time goes by.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let later = super::initial::progress(&sync).rows.rows_per_second;
    assert_eq!(later, rows.rows_per_second);
    let sides: Vec<(&str, Option<u64>)> =
        progress.sides.iter().map(|s| (s.side, s.total)).collect();
    assert_eq!(sides, [("left", Some(200)), ("right", Some(50))]);
    let companies: Vec<(&str, u64, u64, Option<u64>)> = progress
        .companies
        .iter()
        .map(|c| {
            (
                c.company.as_str(),
                c.rows.read,
                c.rows.written,
                c.rows.total,
            )
        })
        .collect();
    assert_eq!(
        companies,
        [("demf", 80, 80, Some(80)), ("usmf", 170, 110, Some(170))],
        "{:?}",
        progress.companies
    );
    let served = serde_json::to_value(&progress).expect("serializes");
    assert_eq!(served["stage"], "done");
    assert_eq!(served["read"], 250);
    assert_eq!(served["companies"][1]["company"], "usmf");
    // A stopped host's store says the same.
    sync.stop_engine().await;
    let store = dualwrite::checkpoint::Checkpoints::open(&sync.dir.path().join("data"))
        .expect("the store opens");
    let plan = sync.plan();
    let stopped = dualwrite::sync::initial_progress(&store, plan.map("customers").expect("map"))
        .expect("read")
        .expect("begun");
    assert_eq!(
        (
            stopped.rows.read,
            stopped.rows.written,
            stopped.companies.len()
        ),
        (250, 190, 2)
    );
    assert_eq!(stopped.rows.rows_per_second, progress.rows.rows_per_second);
    drop(store);
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_started_whose_sides_are_not_read_yet_is_reading_not_unknown_nor_done() {
    // Between `map start` and the first read of a side (its capture task
    // has not run yet) the side has no copy state: the copy is still to be
    // read, so `map start --wait` follows it instead of being told the map
    // is unknown, and does not see it done before every side was read.
    let sync = fresh(&customers_with(""), "", &[]).await;
    let plan = sync.plan();
    let map = plan.map("customers").expect("the customers map");
    let store = dualwrite::checkpoint::Checkpoints::open(&sync.dir.path().join("data"))
        .expect("the store opens");
    let read = || dualwrite::sync::initial_progress(&store, map).expect("the progress reads");
    assert_eq!(read(), None, "never started: no copy");
    let mut record =
        dualwrite::checkpoint::MapRecord::new(dualwrite::checkpoint::Lifecycle::Initializing);
    record.initial_sync = Some("right".into());
    store
        .set_map_record("customers", &record)
        .expect("the record written");
    let started = read().expect("a copy to be read");
    assert_eq!(
        (started.stage, started.rows.read, started.began.as_deref()),
        (CopyStage::Reading, 0, None),
        "{started:?}"
    );
    assert_eq!(started.initial_sync, dualwrite::map::InitialSync::Right);
    // The left side read (it held no rows), the right one not yet.
    let mut left = dualwrite::checkpoint::SideCopy::begin(1, dualwrite::checkpoint::now(), false);
    left.state = dualwrite::checkpoint::CopyState::Copied;
    store
        .set_side_copy("customers", "left", &left)
        .expect("the side's copy written");
    let half = read().expect("the copy");
    assert_eq!(half.stage, CopyStage::Reading, "{half:?}");
    drop(store);
    sync.shutdown().await;
}
