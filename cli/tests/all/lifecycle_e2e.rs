//! The map lifecycle's data paths end to end, through the CLI: a real
//! `dualwrite run` process between two emulators, driven by `dualwrite map
//! …` processes, with rows made, edited and deleted through the services'
//! own HTTP APIs.
//!
//! - Edits and deletes on both sides while an initial copy of 3,200 rows
//!   runs end with the edit (or the delete) on both sides, and no row is
//!   overwritten by older copied data: a row edited before the copy reached
//!   it is written once, with the edit, and every other row once.
//! - Every failed row of a copy is listed with the service's message, and
//!   `map rerun --failed-only` writes those rows again, once each, and no
//!   other row.
//! - Pause, several edits (a delete among them) to one row on each side,
//!   resume: every queued change is written in order, as the target's
//!   commit log and its write counts show, and the host's activity log, read
//!   from its store once it stopped, agrees.
//!
//! The emulators count the writes each row received
//! (`RunningEmulator::writes`); pre-commit hooks ([`Hook`]) see their order.
//! The tests wait on what they poll (progress, backlog, rows), each wait
//! with a limit, and end with a sentinel edit on each side crossed over and
//! an empty backlog: every change captured before the sentinels (the echoes
//! of the host's own writes among them) was settled, so the counts read
//! then are final.

use std::collections::BTreeMap;
use std::time::Duration;

use dualwrite::checkpoint::{Action, Checkpoints, Direction};
use dualwrite::connector::Query;
use dualwrite_emulators::FaultConfig;
use serde_json::Value;

use crate::admin_host::{Hook, Host, RULE, World, state_of, wait_for};

const MAP: &str = "customers";

/// How long any one condition is waited for.
const LIMIT: Duration = Duration::from_secs(60);

/// `map progress customers --once --json`.
fn progress(host: &Host) -> Value {
    let (code, out, err) = host.map(&["progress", MAP, "--once", "--json"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).expect("progress --json prints JSON")
}

fn count(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

/// The customers map's backlog, left to right and right to left, from
/// `map status --json`.
fn backlog(host: &Host) -> (u64, u64) {
    let (code, out, err) = host.map(&["status", MAP, "--json"]);
    assert_eq!(code, 0, "{err}");
    let status: Value = serde_json::from_str(&out).expect("status --json prints JSON");
    let backlog = &status[0]["backlog"];
    (
        count(&backlog["left_to_right"]),
        count(&backlog["right_to_left"]),
    )
}

/// Waits for legal entity `usmf` in Dataverse (copied by the
/// legal-entities map), which Dataverse accounts are bound to.
async fn company_in_dataverse(world: &World) {
    wait_for("the company in Dataverse", LIMIT, async || {
        world
            .dv
            .query_all("cdm_companies", &Query::default())
            .await
            .is_ok_and(|rows| !rows.is_empty())
    })
    .await;
}

/// A sentinel edit on each side, `left` in finops and `right` in
/// Dataverse, waited for on the other side; then an empty backlog. What
/// either side reported before its sentinel was captured before it, so
/// nothing the host would write is left.
async fn quiesce(world: &World, host: &Host, left: &str, right: &str) {
    let (left_name, right_name) = (format!("Sentinel {left}"), format!("Sentinel {right}"));
    world.customer("usmf", left, &left_name).await;
    world.account(right, &right_name).await;
    wait_for("the sentinels on the other side", LIMIT, async || {
        world.names_of(left).await.1.as_ref() == Some(&left_name)
            && world.names_of(right).await.0.as_ref() == Some(&right_name)
    })
    .await;
    wait_for("an empty backlog", LIMIT, async || backlog(host) == (0, 0)).await;
}

/// `(account, name)` of accounts `{prefix}-0000`, `{prefix}-0001`, … up
/// to `count` of them, named `{owner} {account}`.
fn numbered(prefix: &str, count: usize, owner: &str) -> Vec<(String, String)> {
    (0..count)
        .map(|n| {
            let account = format!("{prefix}-{n:04}");
            let name = format!("{owner} {account}");
            (account, name)
        })
        .collect()
}

/// How many writes each row received between two counts of
/// [`World::writes`]; rows not written in between are left out.
fn written_since(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(account, &n)| {
            let was = before.get(account).copied().unwrap_or(0);
            (account.clone(), n.saturating_sub(was))
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// The accounts whose names differ between `expected` and `actual`, at
/// most ten, with both names.
fn differences(
    expected: &BTreeMap<String, String>,
    actual: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut keys: Vec<&String> = expected.keys().chain(actual.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| expected.get(*k) != actual.get(*k))
        .take(10)
        .map(|k| format!("{k}: {:?}, found {:?}", expected.get(k), actual.get(k)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_edited_and_deleted_on_both_sides_during_an_initial_sync_end_with_the_edit() {
    // Small batches, one in flight, and 20 ms per request: the copy takes
    // seconds whatever the machine's load, so edits land while it runs.
    let world = World::new(false, "batch_size = 20\nbatches_in_flight = 1").await;
    let host = Host::start(&world.file);
    let (code, _, err) = host.map(&["start", "legal-entities"]);
    assert_eq!(code, 0, "{err}");
    company_in_dataverse(&world).await;
    let finops_only = numbered("C", 2000, "Finops");
    let both_finops = numbered("E", 200, "Finops");
    let both_dataverse = numbered("E", 200, "Dataverse");
    let dataverse_only = numbered("D", 800, "Dataverse");
    world.customers(&finops_only).await;
    world.customers(&both_finops).await;
    world.accounts(&both_dataverse).await;
    world.accounts(&dataverse_only).await;
    let (finops_before, dataverse_before) = world.writes();
    let slow = FaultConfig {
        latency_ms: 20,
        ..FaultConfig::default()
    };
    world.finops.set_faults(slow.clone());
    world.dataverse.set_faults(slow);
    // Dataverse's `modifiedon` has whole seconds, and a row modified in
    // the second the copy begins counts as changed during it: let the
    // seeded rows' second pass.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let (code, out, err) = host.map(&["start", MAP, "--initial-sync", "left"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "customers: initializing", "{out}");
    wait_for("the copy writing", LIMIT, async || {
        count(&progress(&host)["written"]) > 0
    })
    .await;
    // Early: rows the copy has read and not written yet (finops rows are
    // written in key order; C-1990 and E-0190 come late in it).
    world
        .customer("usmf", "C-1990", "Edited early in finops")
        .await;
    world.account("E-0190", "Edited early in Dataverse").await;
    world.account("D-0790", "Edited early in Dataverse").await;
    world.delete_customer("C-1995").await;
    world.delete_account("D-0795").await;
    wait_for("the copy half way", LIMIT, async || {
        count(&progress(&host)["written"]) > 1200
    })
    .await;
    // Late: rows written already, and rows still waiting; deletes of rows
    // both sides hold, on either side.
    world
        .customer("usmf", "C-0005", "Edited late in finops")
        .await;
    world.account("E-0199", "Edited late in Dataverse").await;
    world.account("D-0001", "Edited late in Dataverse").await;
    world
        .customer("usmf", "C-1999", "Edited late in finops")
        .await;
    world.delete_customer("E-0195").await;
    world.delete_account("E-0196").await;
    let during = progress(&host);
    assert_ne!(
        during["stage"], "done",
        "the edits came while the copy ran: {during}"
    );

    wait_for("the copy done and the map running", LIMIT, async || {
        progress(&host)["stage"] == "done" && state_of(&host, MAP) == "running"
    })
    .await;
    let done = progress(&host);
    assert_eq!(
        (count(&done["read"]), count(&done["total"])),
        (3200, 3200),
        "{done}"
    );
    assert_eq!(count(&done["failed"]), 0, "{done}");
    quiesce(&world, &host, "C-0001", "D-0002").await;

    // Both sides hold the same rows: the master's values, but where an
    // edit came, and not the rows deleted on either side.
    let mut expected: BTreeMap<String, String> = finops_only
        .iter()
        .chain(&both_finops)
        .chain(&dataverse_only)
        .cloned()
        .collect();
    let edits = [
        ("C-1990", "Edited early in finops"),
        ("E-0190", "Edited early in Dataverse"),
        ("D-0790", "Edited early in Dataverse"),
        ("C-0005", "Edited late in finops"),
        ("E-0199", "Edited late in Dataverse"),
        ("D-0001", "Edited late in Dataverse"),
        ("C-1999", "Edited late in finops"),
        ("C-0001", "Sentinel C-0001"),
        ("D-0002", "Sentinel D-0002"),
    ];
    for (account, name) in edits {
        expected.insert(account.to_owned(), name.to_owned());
    }
    for deleted in ["C-1995", "D-0795", "E-0195", "E-0196"] {
        expected.remove(deleted);
    }
    let (finops, dataverse) = world.names().await;
    assert_eq!(
        differences(&expected, &finops),
        Vec::<String>::new(),
        "finops"
    );
    assert_eq!(
        differences(&expected, &dataverse),
        Vec::<String>::new(),
        "Dataverse"
    );
    host.stop();

    // Each row written once on the side it was copied to, and nothing
    // written back. A row edited before the copy reached it is written
    // once, with the edit: the copy's older read is never written.
    let (finops_after, dataverse_after) = world.writes();
    let to_finops = written_since(&finops_before, &finops_after);
    let to_dataverse = written_since(&dataverse_before, &dataverse_after);
    let mut wrong = Vec::new();
    for account in expected.keys() {
        let exact = match account.as_str() {
            // The test's edit on one side, the host's one write on the
            // other.
            "C-1990" | "E-0190" => (1, 1),
            // The copy's write and the sentinel's on the other side.
            "C-0001" => (1, 2),
            "D-0002" => (2, 1),
            // Edited after, or perhaps after, the copy wrote them.
            "C-0005" | "C-1999" | "E-0199" | "D-0001" | "D-0790" => continue,
            d if d.starts_with("D-") => (1, 0),
            _ => (0, 1),
        };
        let found = (
            to_finops.get(account).copied().unwrap_or(0),
            to_dataverse.get(account).copied().unwrap_or(0),
        );
        if found != exact {
            wrong.push(format!(
                "{account}: (finops, Dataverse) writes {found:?}, not {exact:?}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} rows: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_of_the_failed_rows_writes_those_rows_once_each_and_no_other() {
    let world = World::new(false, "").await;
    let host = Host::start(&world.file);
    let (code, _, err) = host.map(&["start", "legal-entities"]);
    assert_eq!(code, 0, "{err}");
    company_in_dataverse(&world).await;
    world.customers(&numbered("A", 30, "Finops")).await;
    world.customers(&numbered("X", 8, "Blocked")).await;
    world.accounts(&numbered("D", 10, "Dataverse")).await;
    world.accounts(&numbered("Y", 3, "Blocked")).await;
    // A business rule on each service refuses the blocked names: eight
    // rows fail on their way to Dataverse, three on their way to finops.
    let hooks = [
        Hook::install(&world.finops, "CustomersV3").await,
        Hook::install(&world.dataverse, "accounts").await,
    ];
    for hook in &hooks {
        hook.refuse("Blocked");
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let (code, out, err) = host.map(&["start", MAP, "--initial-sync", "left", "--wait"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("customers: initial copy done"), "{out}");
    let done = progress(&host);
    assert_eq!(
        (
            count(&done["read"]),
            count(&done["written"]),
            count(&done["failed"])
        ),
        (51, 40, 11),
        "{done}"
    );
    // All of them listed, with the service's message.
    let (code, out, err) = host.map(&["failures", MAP, "--json"]);
    assert_eq!(code, 0, "{err}");
    let listed: Vec<Value> = serde_json::from_str(&out).expect("failures --json prints JSON");
    let mut failed: Vec<(String, String)> = listed
        .iter()
        .map(|failure| {
            let reason = failure["reason"].as_str().unwrap_or_default();
            assert!(reason.contains(RULE), "the service's message: {failure}");
            (
                failure["direction"].as_str().unwrap_or_default().to_owned(),
                failure["key"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    failed.sort();
    let mut expected: Vec<(String, String)> = (0..8)
        .map(|n| ("left-to-right".to_owned(), format!("X-{n:04}|usmf")))
        .chain((0..3).map(|n| ("right-to-left".to_owned(), format!("Y-{n:04}|usmf"))))
        .collect();
    expected.sort();
    assert_eq!(failed, expected);
    let (code, out, err) = host.map(&["failures", MAP]);
    assert_eq!(code, 0, "{err}");
    assert!(
        expected.iter().all(|(_, key)| out.contains(key.as_str()))
            && out.ends_with("11 rows of the initial copy failed\n"),
        "all of them, not the first few: {out}"
    );

    // The rule is lifted; only the failed rows are sent again.
    for hook in &hooks {
        hook.accept_all();
    }
    let (finops_before, dataverse_before) = world.writes();
    let (code, out, err) = host.map(&["rerun", MAP, "--failed-only"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "customers: 11 failed rows resubmitted");
    wait_for("the failed rows on the other side", LIMIT, async || {
        let (finops, dataverse) = world.names().await;
        (0..8).all(|n| dataverse.contains_key(&format!("X-{n:04}")))
            && (0..3).all(|n| finops.contains_key(&format!("Y-{n:04}")))
    })
    .await;
    quiesce(&world, &host, "A-0000", "D-0000").await;
    let (code, out, err) = host.map(&["failures", MAP, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "[]", "nothing failed any more");
    // The same copy, its failed rows written now: not a copy run again.
    let after = progress(&host);
    assert_eq!(
        (
            count(&after["read"]),
            count(&after["written"]),
            count(&after["failed"])
        ),
        (51, 51, 0),
        "{after}"
    );
    assert_eq!(after["rerun"], false, "{after}");
    host.stop();

    let (finops_after, dataverse_after) = world.writes();
    let once = |accounts: Vec<String>| -> BTreeMap<String, u64> {
        accounts.into_iter().map(|a| (a, 1)).collect()
    };
    // Besides the failed rows: the sentinels, edited on one side by the
    // test and written to the other by the host.
    let mut to_dataverse = once((0..8).map(|n| format!("X-{n:04}")).collect());
    to_dataverse.extend(once(vec!["A-0000".into(), "D-0000".into()]));
    let mut to_finops = once((0..3).map(|n| format!("Y-{n:04}")).collect());
    to_finops.extend(once(vec!["A-0000".into(), "D-0000".into()]));
    assert_eq!(
        written_since(&dataverse_before, &dataverse_after),
        to_dataverse,
        "Dataverse: only the failed rows, once each"
    );
    assert_eq!(
        written_since(&finops_before, &finops_after),
        to_finops,
        "finops: only the failed rows, once each"
    );
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_after_a_pause_writes_every_queued_change_in_order() {
    let world = World::new(true, "").await;
    let host = Host::start(&world.file);
    company_in_dataverse(&world).await;
    wait_for("customers to run", LIMIT, async || {
        state_of(&host, MAP) == "running"
    })
    .await;
    let finops = Hook::install(&world.finops, "CustomersV3").await;
    let dataverse = Hook::install(&world.dataverse, "accounts").await;
    let (code, out, err) = host.map(&["pause", MAP]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "customers: paused");

    // Each change waits until it is queued before the next is made, so
    // that no read of a row folds two of them into one.
    let mut queued = (0, 0);
    for (side, account, name) in [
        ("finops", "RP-A", "A v1"),
        ("finops", "RP-A", "A v2"),
        ("finops", "RP-A", "deleted"),
        ("finops", "RP-A", "A v3"),
        ("dataverse", "RP-B", "B v1"),
        ("dataverse", "RP-B", "B v2"),
        ("dataverse", "RP-B", "B v3"),
        ("finops", "RP-O1", "O1"),
        ("finops", "RP-O2", "O2"),
        ("dataverse", "RP-O3", "O3"),
    ] {
        match (side, name) {
            ("finops", "deleted") => world.delete_customer(account).await,
            ("finops", _) => world.customer("usmf", account, name).await,
            _ => world.account(account, name).await,
        }
        match side {
            "finops" => queued.0 += 1,
            _ => queued.1 += 1,
        }
        wait_for(&format!("{account} {name} queued"), LIMIT, async || {
            backlog(&host) == queued
        })
        .await;
    }
    assert_eq!(
        world.names_of("RP-A").await.1,
        None,
        "paused: nothing written"
    );
    assert_eq!(
        world.names_of("RP-B").await.0,
        None,
        "paused: nothing written"
    );
    // From here on, the hooks see the host's writes (and the sentinels).
    finops.clear();
    dataverse.clear();
    let writes_before = (
        world.finops.write_count("CustomersV3").expect("counted"),
        world.dataverse.write_count("accounts").expect("counted"),
    );

    let (code, _, err) = host.map(&["resume", MAP]);
    assert_eq!(code, 0, "{err}");
    wait_for(
        "every row's last value on the other side",
        LIMIT,
        async || {
            world.names_of("RP-A").await.1.as_deref() == Some("A v3")
                && world.names_of("RP-B").await.0.as_deref() == Some("B v3")
                && world.names_of("RP-O1").await.1.as_deref() == Some("O1")
                && world.names_of("RP-O2").await.1.as_deref() == Some("O2")
                && world.names_of("RP-O3").await.0.as_deref() == Some("O3")
        },
    )
    .await;
    wait_for("customers to run", LIMIT, async || {
        state_of(&host, MAP) == "running"
    })
    .await;
    quiesce(&world, &host, "RP-O1", "RP-O3").await;
    host.stop();

    // The full sequence, in order, each change once: the targets' commit
    // logs.
    assert_eq!(dataverse.of("RP-A"), ["A v1", "A v2", "deleted", "A v3"]);
    assert_eq!(finops.of("RP-B"), ["B v1", "B v2", "B v3"]);
    assert_eq!(dataverse.of("RP-O1"), ["O1", "Sentinel RP-O1"]);
    assert_eq!(dataverse.of("RP-O2"), ["O2"]);
    assert_eq!(finops.of("RP-O3"), ["O3", "Sentinel RP-O3"]);
    // No echo written back.
    assert_eq!(finops.of("RP-A"), Vec::<String>::new());
    assert_eq!(dataverse.of("RP-B"), Vec::<String>::new());
    // Each write the hooks let through was committed once: RP-B's three
    // and RP-O3's two in finops, and the sentinel edited there; RP-A's
    // four, RP-O1's two and RP-O2's in Dataverse, and the sentinel edited
    // there.
    let writes_after = (
        world.finops.write_count("CustomersV3").expect("counted"),
        world.dataverse.write_count("accounts").expect("counted"),
    );
    assert_eq!(
        (
            writes_after.0 - writes_before.0,
            writes_after.1 - writes_before.1
        ),
        (6, 8),
        "committed writes (finops, Dataverse)"
    );

    // The host's activity log: each queued change its own outcome, in
    // order.
    let store =
        Checkpoints::open(&world.dir.path().join("data")).expect("the stopped host's store");
    let activity = store.activity().expect("the activity log reads");
    let logged = |key: &str, direction: Direction| -> Vec<Action> {
        activity
            .iter()
            .filter(|a| a.map == MAP && a.key == key && a.direction == Some(direction))
            .map(|a| a.what)
            .collect()
    };
    let writes = |key: &str, direction: Direction| -> Vec<Action> {
        logged(key, direction)
            .into_iter()
            .filter(|what| matches!(what, Action::Written | Action::Deleted))
            .collect()
    };
    assert_eq!(
        logged("RP-A|usmf", Direction::LeftToRight),
        [
            Action::Written,
            Action::Written,
            Action::Deleted,
            Action::Written
        ]
    );
    assert_eq!(
        logged("RP-B|usmf", Direction::RightToLeft),
        [Action::Written, Action::Written, Action::Written]
    );
    assert_eq!(
        writes("RP-A|usmf", Direction::RightToLeft),
        [],
        "the writes to Dataverse came back as echoes, not written back: {:?}",
        logged("RP-A|usmf", Direction::RightToLeft)
    );
    assert_eq!(writes("RP-B|usmf", Direction::LeftToRight), []);
    drop(store);
    world.shutdown().await;
}
