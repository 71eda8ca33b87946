//! The queue as a whole on real sled: its count against a scan.

use std::time::Duration;

use super::super::ops::{flow, join, prefix};
use super::super::{
    Action, Activity, Change, Checkpoints, Direction, Finish, Operation, QueueHold, QueueLimits,
    QueuedChange, RowHash, Seen,
};

const LTR: Direction = Direction::LeftToRight;
const RTL: Direction = Direction::RightToLeft;

fn change(key: &str, version: &str) -> Change {
    Change {
        key: key.into(),
        version: version.into(),
        operation: Operation::Upsert,
        row: serde_json::json!({ "name": format!("{key} {version}") })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        modified: None,
        read_at: 0,
        unreadable: None,
        phase: Default::default(),
    }
}

fn written(direction: Direction, batch: &[QueuedChange]) -> Vec<Activity> {
    batch
        .iter()
        .map(|queued| {
            Activity::new(
                "m",
                direction,
                &queued.change.key,
                Action::Written,
                String::new(),
            )
        })
        .collect()
}

/// The queue's length read from sled, the count's truth.
fn scanned(store: &Checkpoints, direction: Direction) -> usize {
    store
        .queue
        .scan_prefix(prefix(&flow("m", direction)))
        .count()
}

fn assert_counted(store: &Checkpoints, when: &str) {
    for direction in [LTR, RTL] {
        assert_eq!(
            store.queued("m", direction),
            scanned(store, direction),
            "{direction} {when}"
        );
    }
}

#[test]
fn the_count_follows_every_operation_and_a_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let store = Checkpoints::open(dir.path()).expect("opens");
        let page = [change("a", "1"), change("b", "1"), change("a", "2")];
        store.capture("m", LTR, &page, "c1").expect("captures");
        store
            .capture("m", LTR, &page, "c1")
            .expect("captured again");
        store
            .capture("m", RTL, &[change("a", "7"), change("c", "7")], "d1")
            .expect("captures");
        assert_eq!(store.queued("m", LTR), 3);
        assert_counted(&store, "after capture");

        // Done in one direction, with a rival of the other settled.
        let batch = store.next_batch("m", LTR, 10).expect("batch");
        let rivals = store.pending("m", RTL, "a").expect("pending");
        store
            .finish(
                "m",
                LTR,
                &Finish {
                    done: &batch,
                    rivals: &rivals,
                    activity: &written(LTR, &batch),
                    ..Finish::default()
                },
            )
            .expect("finishes");
        assert_eq!(store.queued("m", LTR), 1);
        assert_eq!(store.queued("m", RTL), 1);
        assert_counted(&store, "after finish");

        // Done twice (a batch written again after a crash) counts once.
        store
            .complete("m", LTR, &batch, &[], &[])
            .expect("completes again");
        assert_counted(&store, "after a repeated finish");

        let parked = store.next_batch("m", RTL, 10).expect("batch");
        store
            .park("m", RTL, &parked[0], "refused", false)
            .expect("parks");
        assert_counted(&store, "after park");
        store.discard("m", RTL, "c").expect("discards");
        assert_eq!(store.queued("m", RTL), 0);
        assert_counted(&store, "after discard");
    }
    let store = Checkpoints::open(dir.path()).expect("reopens");
    assert_eq!(store.queued("m", LTR), 1);
    assert_counted(&store, "after a reopen");
}

fn keys_of(batch: &[QueuedChange]) -> Vec<(String, String)> {
    batch
        .iter()
        .map(|q| (q.change.key.clone(), q.change.version.clone()))
        .collect()
}

fn pair(key: &str, version: &str) -> (String, String) {
    (key.to_owned(), version.to_owned())
}

/// A store with, in `m` left to right: `a` twice and `b` queued, `c`
/// parked (refused, one attempt), `e` parked and resubmitted.
fn backlog(dir: &std::path::Path) -> Checkpoints {
    let store = Checkpoints::open(dir).expect("opens");
    store
        .capture("m", LTR, &[change("c", "1"), change("e", "1")], "c0")
        .expect("captures");
    let batch = store.next_batch("m", LTR, 10).expect("batch");
    store
        .park("m", LTR, &batch[0], "refused", false)
        .expect("parks c");
    store
        .park("m", LTR, &batch[1], "refused too", false)
        .expect("parks e");
    store.resubmit("m", LTR, "e").expect("resubmits e");
    store
        .capture(
            "m",
            LTR,
            &[change("a", "1"), change("b", "1"), change("a", "2")],
            "c1",
        )
        .expect("captures");
    store
}

fn lines(store: &Checkpoints, what: Action) -> Vec<(String, String)> {
    store
        .activity()
        .expect("activity")
        .into_iter()
        .filter(|line| line.what == what)
        .map(|line| (line.key, line.detail))
        .collect()
}

#[test]
fn park_queued_parks_each_key_at_its_first_change_with_the_later_ones_behind() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = backlog(dir.path());
    let parked = store
        .park_queued("m", LTR, "parked on resume")
        .expect("parks");
    assert_eq!(parked, 4, "a twice, b and the resubmitted e");
    assert_eq!(store.queued("m", LTR), 5, "parked changes stay queued");
    assert!(
        store.next_batch("m", LTR, 10).expect("batch").is_empty(),
        "the map writes none of them"
    );
    let entries: Vec<(String, String, u32)> = store
        .parked("m", LTR)
        .expect("parked")
        .into_iter()
        .map(|(key, entry)| (key, entry.reason, entry.attempts))
        .collect();
    assert_eq!(
        entries,
        [
            ("a".to_owned(), "parked on resume".to_owned(), 0),
            ("b".to_owned(), "parked on resume".to_owned(), 0),
            ("c".to_owned(), "refused".to_owned(), 1),
            ("e".to_owned(), "parked on resume".to_owned(), 1),
        ],
        "c keeps its own reason; e keeps its attempts"
    );
    assert_eq!(
        lines(&store, Action::Parked),
        [
            pair("e", "parked on resume (version 1)"),
            pair("a", "parked on resume (version 1)"),
            pair("b", "parked on resume (version 1)"),
            pair("a", "parked on resume (version 2)"),
        ],
        "one line per change, in queue order"
    );

    // A change captured afterwards flows; a parked key's waits.
    store
        .capture("m", LTR, &[change("f", "1"), change("b", "2")], "c2")
        .expect("captures");
    assert_eq!(
        keys_of(&store.next_batch("m", LTR, 10).expect("batch")),
        [pair("f", "1")]
    );

    // Resubmitted, a key's changes flow again in order.
    store.resubmit("m", LTR, "a").expect("resubmits a");
    let batch = store.next_batch("m", LTR, 10).expect("batch");
    assert_eq!(keys_of(&batch), [pair("a", "1"), pair("f", "1")]);
    store
        .complete("m", LTR, &batch, &[], &written(LTR, &batch))
        .expect("completes");
    assert_eq!(
        keys_of(&store.next_batch("m", LTR, 10).expect("batch")),
        [pair("a", "2")]
    );
    // Discarding a parked key drops its first change; the rest flows.
    store
        .discard("m", LTR, "b")
        .expect("discards b's first change");
    assert_eq!(
        keys_of(&store.next_batch("m", LTR, 10).expect("batch")),
        [pair("a", "2"), pair("b", "2")]
    );
    assert_counted(&store, "after park_queued");
}

#[test]
fn discard_queued_drops_every_change_but_the_error_queue_and_keeps_versions_seen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = backlog(dir.path());
    let dropped = store
        .discard_queued("m", LTR, "discarded on resume")
        .expect("discards");
    assert_eq!(dropped, 4, "a twice, b and the resubmitted e");
    assert_eq!(store.queued("m", LTR), 1, "c's change stays parked");
    assert_counted(&store, "after discard_queued");
    assert!(store.pending("m", LTR, "a").expect("pending").is_empty());
    let parked: Vec<String> = store
        .parked("m", LTR)
        .expect("parked")
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert_eq!(parked, ["c"]);
    assert!(
        store
            .parked
            .get(join(&[&flow("m", LTR), b"e"]))
            .expect("reads")
            .is_none(),
        "the resubmitted key's entry went with its changes"
    );
    assert_eq!(
        lines(&store, Action::Discarded),
        [
            pair("e", "discarded on resume (version 1)"),
            pair("a", "discarded on resume (version 1)"),
            pair("b", "discarded on resume (version 1)"),
            pair("a", "discarded on resume (version 2)"),
        ]
    );
    // The versions captured stay captured: read again, they are not queued
    // again; a newer one is.
    assert_eq!(
        store
            .capture("m", LTR, &[change("a", "2"), change("b", "1")], "c1")
            .expect("captures"),
        0
    );
    assert_eq!(
        store
            .capture("m", LTR, &[change("a", "3")], "c2")
            .expect("captures"),
        1
    );
    assert_eq!(
        keys_of(&store.next_batch("m", LTR, 10).expect("batch")),
        [pair("a", "3")]
    );
    // The other direction is untouched.
    store
        .capture("m", RTL, &[change("a", "9")], "d1")
        .expect("captures");
    store.discard_queued("m", LTR, "again").expect("discards");
    assert_eq!(store.queued("m", RTL), 1);
}

#[test]
fn a_discarded_rows_hash_stays_so_reconciliation_finds_it_unchanged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Checkpoints::open(dir.path()).expect("opens");
    let seen = |version: &str, name: &str| {
        let mut change = change("usmf|A", version);
        change.row.insert("name".into(), name.into());
        let hash = super::super::fingerprint(&change.row, ["name"]);
        Seen {
            change,
            hash: Some(RowHash {
                hash,
                stamp: 1,
                key: serde_json::Map::new(),
            }),
        }
    };
    store
        .capture_seen("m", LTR, "left", &[seen("10", "First")])
        .expect("captures");
    store.discard_queued("m", LTR, "dropped").expect("discards");
    let stored = store
        .row_hash("m", "left", "usmf|A")
        .expect("reads")
        .expect("the hash of the row read stays");
    assert_eq!(
        stored.hash,
        super::super::fingerprint(&seen("10", "First").change.row, ["name"])
    );
}

#[test]
fn park_and_discard_take_a_backlog_larger_than_one_chunk() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Checkpoints::open(dir.path()).expect("opens");
    let total = super::CHUNK * 2 + 500;
    let changes: Vec<Change> = (0..total)
        .map(|i| change(&format!("k{}", i % 700), &(i / 700).to_string()))
        .collect();
    store.capture("m", LTR, &changes, "c").expect("captures");
    assert_eq!(store.queued("m", LTR), total);
    assert_eq!(store.park_queued("m", LTR, "parked").expect("parks"), total);
    assert_eq!(store.parked("m", LTR).expect("parked").len(), 700);
    for key in 0..700 {
        store
            .resubmit("m", LTR, &format!("k{key}"))
            .expect("resubmits");
    }
    assert_eq!(
        store.discard_queued("m", LTR, "dropped").expect("discards"),
        total
    );
    assert_eq!(store.queued("m", LTR), 0);
    assert_counted(&store, "after a large discard");
    assert!(store.parked("m", LTR).expect("parked").is_empty());
}

#[test]
fn the_oldest_change_waiting_is_the_first_not_parked_with_its_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Checkpoints::open(dir.path()).expect("opens");
    assert_eq!(store.oldest_queued("m", LTR).expect("reads"), None);
    let before = chrono::Utc::now();
    store
        .capture("m", LTR, &[change("a", "1"), change("b", "1")], "c")
        .expect("captures");
    let after = chrono::Utc::now();
    let oldest = store
        .oldest_queued("m", LTR)
        .expect("reads")
        .expect("a change waits");
    assert_eq!(oldest.key, "a");
    let captured = oldest.captured.expect("the time it was queued");
    assert!(before <= captured && captured <= after, "{captured}");

    let batch = store.next_batch("m", LTR, 1).expect("batch");
    store
        .park("m", LTR, &batch[0], "refused", false)
        .expect("parks");
    assert_eq!(
        store.oldest_queued("m", LTR).expect("reads").map(|o| o.key),
        Some("b".to_owned()),
        "a parked key's change waits for an admin, not for the map"
    );
    assert_eq!(store.oldest_queued("m", RTL).expect("reads"), None);

    // An entry queued by a build that did not record the time still reads.
    let old = serde_json::json!({
        "seq": 1,
        "change": {"key": "z", "version": "1", "operation": "upsert", "row": {}},
    });
    let slot = join(&[&flow("m", RTL), &1u64.to_be_bytes()]);
    store
        .queue
        .insert(slot, serde_json::to_vec(&old).expect("json"))
        .expect("inserted");
    let oldest = store
        .oldest_queued("m", RTL)
        .expect("reads")
        .expect("the old entry");
    assert_eq!((oldest.key.as_str(), oldest.captured), ("z", None));
}

fn limited(dir: &std::path::Path, max_changes: usize, max_age: Duration) -> Checkpoints {
    Checkpoints::open(dir)
        .expect("opens")
        .with_limits(QueueLimits {
            max_changes,
            max_age,
        })
}

#[test]
fn a_full_queue_takes_what_fits_and_keeps_the_cursor_until_the_rest_is_queued() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = limited(dir.path(), 3, Duration::MAX);
    store.capture("m", LTR, &[], "c1").expect("an empty page");
    let page: Vec<Change> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|key| change(key, "1"))
        .collect();
    assert_eq!(store.capture("m", LTR, &page, "c2").expect("captures"), 3);
    assert_eq!(store.queued("m", LTR), 3);
    assert_eq!(
        store.cursor("m", LTR).expect("reads").as_deref(),
        Some("c1"),
        "changes were left out: the page is read again from the old cursor"
    );
    assert_eq!(
        store.queue_hold("m", LTR).expect("reads"),
        Some(QueueHold::Full {
            queued: 3,
            max_changes: 3
        })
    );
    assert_eq!(store.queue_hold("m", RTL).expect("reads"), None);
    assert_eq!(
        store.capture("m", LTR, &page, "c2").expect("captures"),
        0,
        "full, and what was queued is not queued twice"
    );

    let batch = store.next_batch("m", LTR, 1).expect("batch");
    store
        .complete("m", LTR, &batch, &[], &written(LTR, &batch))
        .expect("completes");
    assert_eq!(store.queue_hold("m", LTR).expect("reads"), None);
    assert_eq!(store.capture("m", LTR, &page, "c2").expect("captures"), 1);
    assert_eq!(
        store.cursor("m", LTR).expect("reads").as_deref(),
        Some("c1")
    );

    let batch = store.next_batch("m", LTR, 2).expect("batch");
    store
        .complete("m", LTR, &batch, &[], &written(LTR, &batch))
        .expect("completes");
    assert_eq!(store.capture("m", LTR, &page, "c2").expect("captures"), 1);
    assert_eq!(
        store.cursor("m", LTR).expect("reads").as_deref(),
        Some("c2"),
        "the whole page is queued: the cursor moves on"
    );
    let mut every: Vec<String> = store
        .activity()
        .expect("activity")
        .into_iter()
        .map(|line| line.key)
        .chain(
            store
                .next_batch("m", LTR, 10)
                .expect("batch")
                .into_iter()
                .map(|q| q.change.key),
        )
        .collect();
    every.sort();
    assert_eq!(every, ["a", "b", "c", "d", "e"], "each change queued once");
}

#[test]
fn a_row_left_out_of_a_full_queue_keeps_no_hash() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = limited(dir.path(), 1, Duration::MAX);
    let seen = |key: &str| Seen {
        change: change(key, "10"),
        hash: Some(RowHash {
            hash: [7; 32],
            stamp: 10,
            key: serde_json::Map::new(),
        }),
    };
    assert_eq!(
        store
            .capture_seen("m", LTR, "left", &[seen("a"), seen("b")])
            .expect("captures"),
        1
    );
    assert!(store.row_hash("m", "left", "a").expect("reads").is_some());
    assert_eq!(
        store.row_hash("m", "left", "b").expect("reads"),
        None,
        "the next reconciliation finds b changed"
    );
}

#[test]
fn a_queue_whose_oldest_waiting_change_is_too_old_takes_no_more() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = limited(dir.path(), 100, Duration::from_millis(50));
    store
        .capture("m", LTR, &[change("a", "1")], "c1")
        .expect("captures");
    assert_eq!(store.queue_hold("m", LTR).expect("reads"), None);
    std::thread::sleep(Duration::from_millis(120));
    let Some(QueueHold::Old { oldest, max_age }) = store.queue_hold("m", LTR).expect("reads")
    else {
        panic!("held by age");
    };
    assert_eq!(
        (oldest.key.as_str(), max_age),
        ("a", Duration::from_millis(50))
    );
    assert_eq!(
        store
            .capture("m", LTR, &[change("b", "1")], "c2")
            .expect("captures"),
        0
    );
    assert_eq!(
        store.cursor("m", LTR).expect("reads").as_deref(),
        Some("c1")
    );

    // Parked, it waits for an admin: its age holds nothing.
    let batch = store.next_batch("m", LTR, 1).expect("batch");
    store
        .park("m", LTR, &batch[0], "refused", false)
        .expect("parks");
    assert_eq!(store.queue_hold("m", LTR).expect("reads"), None);
    assert_eq!(
        store
            .capture("m", LTR, &[change("b", "1")], "c2")
            .expect("captures"),
        1
    );
}

#[test]
fn the_oldest_change_is_found_again_when_a_parked_key_flows_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Checkpoints::open(dir.path()).expect("opens");
    let oldest = |direction| {
        store
            .oldest_queued("m", direction)
            .expect("reads")
            .map(|oldest| oldest.key)
    };
    store
        .capture(
            "m",
            LTR,
            &[change("a", "1"), change("b", "1"), change("a", "2")],
            "c",
        )
        .expect("captures");
    store.park_queued("m", LTR, "parked").expect("parks");
    assert_eq!(oldest(LTR), None, "only parked keys' changes");
    // A change queued after the search still counts.
    store
        .capture("m", LTR, &[change("c", "1")], "c2")
        .expect("captures");
    assert_eq!(oldest(LTR).as_deref(), Some("c"));
    // Resubmitted, b's change is older than c's.
    store.resubmit("m", LTR, "b").expect("resubmits");
    assert_eq!(oldest(LTR).as_deref(), Some("b"));

    // A parked key of the other direction, settled as a rival: its later
    // change waits for the map again.
    store
        .capture("m", RTL, &[change("d", "1"), change("d", "2")], "d")
        .expect("captures");
    let head = store.next_batch("m", RTL, 1).expect("batch");
    store
        .park("m", RTL, &head[0], "refused", false)
        .expect("parks");
    assert_eq!(oldest(RTL), None);
    store
        .finish(
            "m",
            LTR,
            &Finish {
                rivals: &head,
                ..Finish::default()
            },
        )
        .expect("finishes");
    assert_eq!(oldest(RTL).as_deref(), Some("d"));
}

#[test]
fn a_change_dismissed_while_a_batch_is_taken_is_not_taken() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Checkpoints::open(dir.path()).expect("open");
    store
        .capture("m", LTR, &[change("a", "1"), change("b", "1")], "c1")
        .expect("capture");
    let first = store.next_batch("m", LTR, 10).expect("batch");
    store
        .park("m", LTR, &first[0], "refused", false)
        .expect("park a");
    // The admin's dismiss lands after the scan read `a`'s change and
    // before the batch checks whether `a` is parked.
    let dismissed = std::cell::Cell::new(false);
    let batch = store
        .next_batch_except("m", LTR, 10, &|key| {
            if key == "a" && !dismissed.replace(true) {
                store.dismiss("m", LTR, "a").expect("dismiss a");
            }
            false
        })
        .expect("batch");
    assert!(dismissed.get());
    let keys: Vec<&str> = batch.iter().map(|q| q.change.key.as_str()).collect();
    assert_eq!(keys, ["b"], "the dismissed change is not written");
}
