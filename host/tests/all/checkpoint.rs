//! The checkpoint store on real sled on disk: the protocol's steps, order
//! per key, parking, echoes, and a crash test that kills a real process
//! mid-batch.

use dualwrite::checkpoint::{
    Action, Activity, Change, CheckpointError, Checkpoints, Direction, Operation, Phase,
};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

const LTR: Direction = Direction::LeftToRight;

fn change(key: &str, version: &str) -> Change {
    Change {
        key: key.into(),
        version: version.into(),
        operation: Operation::Upsert,
        row: serde_json::json!({ "name": key })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        modified: None,
        read_at: 0,
        unreadable: None,
        phase: Phase::Live,
    }
}

fn written(batch: &[dualwrite::checkpoint::QueuedChange]) -> Vec<Activity> {
    written_to("m", batch)
}

fn written_to(map: &str, batch: &[dualwrite::checkpoint::QueuedChange]) -> Vec<Activity> {
    batch
        .iter()
        .map(|queued| {
            Activity::new(
                map,
                LTR,
                &queued.change.key,
                Action::Written,
                queued.change.version.clone(),
            )
        })
        .collect()
}

#[test]
fn a_page_read_twice_is_queued_once_and_the_cursor_survives_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let store = Checkpoints::open(dir.path()).expect("opens");
        let page = [change("a", "1"), change("b", "1")];
        assert_eq!(
            store.capture("m", LTR, &page, "delta-1").expect("captures"),
            2
        );
        assert_eq!(
            store.capture("m", LTR, &page, "delta-1").expect("captures"),
            0,
            "deduplicated"
        );
    }
    let store = Checkpoints::open(dir.path()).expect("reopens");
    assert_eq!(
        store.cursor("m", LTR).expect("reads").as_deref(),
        Some("delta-1")
    );
    assert_eq!(
        store.cursor("m", Direction::RightToLeft).expect("reads"),
        None
    );
    assert_eq!(store.queued("m", LTR), 2);
}

#[test]
fn a_batch_takes_one_change_per_key_in_capture_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Checkpoints::open(dir.path()).expect("opens");
    store
        .capture(
            "m",
            LTR,
            &[change("a", "1"), change("b", "1"), change("a", "2")],
            "c",
        )
        .expect("captures");
    let batch = store.next_batch("m", LTR, 10).expect("batch");
    let taken: Vec<_> = batch
        .iter()
        .map(|q| (q.change.key.as_str(), q.change.version.as_str()))
        .collect();
    assert_eq!(
        taken,
        [("a", "1"), ("b", "1")],
        "a's second change waits for the next batch"
    );
    store
        .complete("m", LTR, &batch, &[], &written(&batch))
        .expect("completes");
    let batch = store.next_batch("m", LTR, 10).expect("batch");
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].change.version, "2");
}

#[test]
fn a_parked_key_holds_its_later_changes_while_other_keys_flow() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Checkpoints::open(dir.path()).expect("opens");
    store
        .capture("m", LTR, &[change("bad", "1"), change("good", "1")], "c1")
        .expect("captures");
    let batch = store.next_batch("m", LTR, 10).expect("batch");
    store
        .park("m", LTR, &batch[0], "plugin said no", false)
        .expect("parks");
    store
        .complete("m", LTR, &batch[1..], &[], &written(&batch[1..]))
        .expect("completes");
    store
        .capture("m", LTR, &[change("bad", "2"), change("good", "2")], "c2")
        .expect("captures");

    let batch = store.next_batch("m", LTR, 10).expect("batch");
    let keys: Vec<_> = batch.iter().map(|q| q.change.key.as_str()).collect();
    assert_eq!(keys, ["good"], "the parked key's changes wait");
    let parked = store.parked("m", LTR).expect("lists");
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].0, "bad");
    assert_eq!(parked[0].1.reason, "plugin said no");

    store.resubmit("m", LTR, "bad").expect("resubmits");
    let batch = store.next_batch("m", LTR, 10).expect("batch");
    let taken: Vec<_> = batch
        .iter()
        .map(|q| (q.change.key.as_str(), q.change.version.as_str()))
        .collect();
    assert!(
        taken.contains(&("bad", "1")),
        "the failed change comes first again: {taken:?}"
    );

    store
        .park("m", LTR, &batch[0], "still no", false)
        .expect("parks again");
    assert_eq!(store.parked("m", LTR).expect("lists")[0].1.attempts, 2);
    store.discard("m", LTR, "bad").expect("discards");
    let batch = store.next_batch("m", LTR, 10).expect("batch");
    assert!(
        batch
            .iter()
            .any(|q| q.change.key == "bad" && q.change.version == "2"),
        "the next change flows"
    );
    assert!(matches!(
        store.resubmit("m", LTR, "bad"),
        Err(CheckpointError::NotParked { .. })
    ));
}

#[test]
fn echo_fingerprints_are_kept_per_map_side_and_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Checkpoints::open(dir.path()).expect("opens");
    store
        .capture("m", LTR, &[change("a", "1")], "c")
        .expect("captures");
    let batch = store.next_batch("m", LTR, 10).expect("batch");
    store
        .complete(
            "m",
            LTR,
            &batch,
            &[("right", "a", [7; 32])],
            &written(&batch),
        )
        .expect("completes");
    assert!(store.is_echo("m", "right", "a", &[7; 32]).expect("reads"));
    assert!(
        !store.is_echo("m", "right", "a", &[8; 32]).expect("reads"),
        "a user's edit is not an echo"
    );
    assert!(!store.is_echo("m", "left", "a", &[7; 32]).expect("reads"));
    assert_eq!(store.activity().expect("reads").len(), 1);
}

/// The crash test's worker: captures pages of ten changes and completes
/// them in batches of four, printing each page number once its capture is
/// durable. Run as a test it works through five pages and checks they all
/// went through; run by the crash test (with `CHECKPOINT_WORKER_DIR` set) it
/// goes on until it is killed.
#[test]
fn checkpoint_worker() {
    let forever = std::env::var_os("CHECKPOINT_WORKER_DIR");
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = forever
        .clone()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| temp.path().to_owned());
    let store = Checkpoints::open(&dir).expect("opens");
    let mut page = match store.cursor("customers", LTR).expect("reads") {
        Some(cursor) => cursor.parse::<u64>().expect("a page number") + 1,
        None => 0,
    };
    let mut out = std::io::stdout();
    while forever.is_some() || page < 5 {
        let changes: Vec<Change> = (0..10)
            .map(|k| change(&format!("k{k}"), &page.to_string()))
            .collect();
        store
            .capture("customers", LTR, &changes, &page.to_string())
            .expect("captures");
        if forever.is_some() {
            writeln!(out, "page {page}").expect("stdout");
            out.flush().expect("stdout");
        }
        loop {
            let batch = store.next_batch("customers", LTR, 4).expect("batch");
            if batch.is_empty() {
                break;
            }
            store
                .complete(
                    "customers",
                    LTR,
                    &batch,
                    &[],
                    &written_to("customers", &batch),
                )
                .expect("completes");
        }
        page += 1;
    }
    assert_eq!(store.queued("customers", LTR), 0);
    assert_eq!(store.activity().expect("reads").len(), 50);
}

#[test]
fn a_worker_killed_mid_batch_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let test_binary = std::env::current_exe().expect("the test binary");
    for round in 0..3 {
        let mut child = Command::new(&test_binary)
            .args([
                "--exact",
                "checkpoint::checkpoint_worker",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("CHECKPOINT_WORKER_DIR", dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the worker starts");
        let stdout = child.stdout.take().expect("piped");
        let pages = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter(|line| line.starts_with("page "))
            .take(20 + round * 7)
            .count();
        assert!(pages > 0, "the worker made progress");
        child.kill().expect("kill -9");
        child.wait().expect("reaped");
    }
    let store = Checkpoints::open(dir.path()).expect("reopens after the crashes");
    let last: u64 = store
        .cursor("customers", LTR)
        .expect("reads")
        .expect("a cursor")
        .parse()
        .expect("a page");
    // Drain what was captured but not completed, as a restarted host would.
    loop {
        let batch = store.next_batch("customers", LTR, 100).expect("batch");
        if batch.is_empty() {
            break;
        }
        store
            .complete(
                "customers",
                LTR,
                &batch,
                &[],
                &written_to("customers", &batch),
            )
            .expect("completes");
    }
    let mut count: HashMap<(String, String), u32> = HashMap::new();
    for line in store.activity().expect("reads") {
        *count.entry((line.key, line.detail)).or_default() += 1;
    }
    for page in 0..=last {
        for k in 0..10 {
            let n = count
                .get(&(format!("k{k}"), page.to_string()))
                .copied()
                .unwrap_or(0);
            assert_eq!(
                n, 1,
                "change k{k}@{page} written {n} times (last durable page {last})"
            );
        }
    }
    assert_eq!(
        count.len() as u64,
        (last + 1) * 10,
        "nothing beyond the durable cursor"
    );
}

#[test]
fn a_row_hash_is_stored_with_the_change_queued_and_forgotten_with_its_delete() {
    use dualwrite::checkpoint::{RowHash, Seen};
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Checkpoints::open(dir.path()).expect("opens");
    let key_fields = serde_json::json!({"dataAreaId": "usmf", "CustomerAccount": "A"})
        .as_object()
        .cloned()
        .unwrap_or_default();
    let seen = |version: &str, hash: u8| Seen {
        change: change("usmf|A", version),
        hash: Some(RowHash {
            hash: [hash; 32],
            stamp: version.parse().expect("a stamp"),
            key: key_fields.clone(),
        }),
    };
    assert_eq!(
        store
            .capture_seen("m", LTR, "left", &[seen("10", 1)])
            .expect("captures"),
        1
    );
    let stored = store.row_hash("m", "left", "USMF|a").expect("reads");
    assert_eq!(
        stored.map(|h| (h.hash, h.stamp, h.key)),
        Some(([1; 32], 10, key_fields.clone())),
        "stored in the transaction that queued it, found without case"
    );
    // An older read captured after a newer one is not queued, and leaves
    // the newer hash.
    assert_eq!(
        store
            .capture_seen("m", LTR, "left", &[seen("7", 2)])
            .expect("captures"),
        0
    );
    let stored = store.row_hash("m", "left", "usmf|A").expect("reads");
    assert_eq!(stored.map(|h| h.hash), Some([1; 32]));
    // A plain capture (Dataverse) touches no hash.
    store
        .capture_page("m", LTR, &[change("usmf|A", "11")], None, &[])
        .expect("captures");
    assert!(
        store
            .row_hash("m", "left", "usmf|A")
            .expect("reads")
            .is_some()
    );
    // A delete queued forgets it; the hashes of other keys and maps stay.
    store
        .capture_seen(
            "other",
            LTR,
            "left",
            &[Seen {
                change: change("usmf|A", "12"),
                hash: Some(RowHash {
                    hash: [3; 32],
                    stamp: 12,
                    key: key_fields.clone(),
                }),
            }],
        )
        .expect("captures");
    let mut delete = change("usmf|A", "13");
    delete.operation = Operation::Delete;
    assert_eq!(
        store
            .capture_seen(
                "m",
                LTR,
                "left",
                &[Seen {
                    change: delete,
                    hash: None
                }]
            )
            .expect("captures"),
        1
    );
    assert!(
        store
            .row_hash("m", "left", "usmf|A")
            .expect("reads")
            .is_none()
    );
    let left: Vec<RowHash> = store
        .row_hashes("other", "left")
        .collect::<Result<_, _>>()
        .expect("reads");
    assert_eq!(left.len(), 1);
    assert_eq!(store.row_hashes("m", "left").count(), 0);
    drop(store);
    let store = Checkpoints::open(dir.path()).expect("reopens");
    assert_eq!(
        store.row_hashes("other", "left").count(),
        1,
        "survives a restart"
    );
}
