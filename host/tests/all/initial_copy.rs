//! What the checkpoint store keeps of a map's initial copy, on real sled:
//! the phase of each change, the copy marked read with its last page, a
//! first read stored without queueing, the failed rows listed and rerun,
//! and the tallies.

use dualwrite::checkpoint::{
    Action, Change, Checkpoints, CopyState, Direction, Operation, Phase, QueuedChange, RowHash,
    SideCopy, TallyChange,
};
use serde_json::{Map, Value, json};

const LTR: Direction = Direction::LeftToRight;
const RTL: Direction = Direction::RightToLeft;

fn change(key: &str, version: &str, phase: Phase) -> Change {
    Change {
        key: key.into(),
        version: version.into(),
        operation: Operation::Upsert,
        row: row(json!({ "name": key })),
        modified: None,
        read_at: 0,
        unreadable: None,
        phase,
    }
}

fn row(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

fn store() -> (tempfile::TempDir, Checkpoints) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Checkpoints::open(dir.path()).expect("opens");
    (dir, store)
}

#[test]
fn a_change_keeps_its_phase_and_one_stored_without_one_is_live() {
    let (_dir, store) = store();
    let page = [
        change("a", "1", Phase::InitialSync),
        change("b", "1", Phase::Live),
    ];
    store.capture("m", LTR, &page, "c").expect("captured");
    let batch = store.next_batch("m", LTR, 10).expect("a batch");
    let phases: Vec<Phase> = batch.iter().map(|q| q.change.phase).collect();
    assert_eq!(phases, [Phase::InitialSync, Phase::Live]);
    let text = serde_json::to_string(&batch[0]).expect("serializes");
    assert!(text.contains(r#""phase":"initial-sync""#), "{text}");
    let old: QueuedChange = serde_json::from_value(json!({
        "seq": 1,
        "change": {"key": "k", "version": "1", "operation": "upsert", "row": {}}
    }))
    .expect("a change stored before phases parses");
    assert_eq!(old.change.phase, Phase::Live);
}

#[test]
fn the_last_page_of_a_copy_is_queued_with_the_copy_marked_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let store = Checkpoints::open(dir.path()).expect("opens");
        assert_eq!(store.side_copy("m", "right").expect("read"), None);
        let copying = SideCopy::begin(store.stamp().expect("stamp"), "t0".into(), false);
        store
            .set_side_copy("m", "right", &copying)
            .expect("copy begins");
        let mut copied = copying.clone();
        copied.state = CopyState::Copied;
        copied.finished = Some("t1".into());
        let added = store
            .capture_copied(
                "m",
                RTL,
                &[change("a", "7", Phase::InitialSync)],
                Some("delta-link"),
                &[("right", "id-a", "a")],
                "right",
                &copied,
            )
            .expect("captured");
        assert_eq!(added, 1);
    }
    let store = Checkpoints::open(dir.path()).expect("opens again");
    let copy = store
        .side_copy("m", "right")
        .expect("read")
        .expect("stored");
    assert_eq!(copy.state, CopyState::Copied);
    assert!(!copy.copying());
    assert_eq!(copy.finished.as_deref(), Some("t1"));
    assert_eq!(
        store.cursor("m", RTL).expect("cursor").as_deref(),
        Some("delta-link")
    );
    assert_eq!(store.queued("m", RTL), 1);
    assert_eq!(
        store
            .key_of_id("m", "right", "id-a")
            .expect("id")
            .as_deref(),
        Some("a")
    );
}

#[test]
fn a_first_read_that_copies_nothing_stores_ids_images_and_hashes_and_queues_nothing() {
    let (_dir, store) = store();
    let mut copy = SideCopy::begin(store.stamp().expect("stamp"), "t0".into(), false);
    copy.state = CopyState::Established;
    let image = row(json!({"name": "Contoso"}));
    let hash = RowHash {
        hash: [7; 32],
        stamp: 3,
        key: row(json!({"Code": "A"})),
    };
    store
        .establish(
            "m",
            RTL,
            "right",
            Some("delta"),
            &[("id-a", "A")],
            &[("A", &image)],
            &[("A", &hash)],
            &copy,
        )
        .expect("established");
    assert_eq!(store.queued("m", RTL), 0);
    assert_eq!(
        store.cursor("m", RTL).expect("cursor").as_deref(),
        Some("delta")
    );
    assert_eq!(
        store
            .key_of_id("m", "right", "id-a")
            .expect("id")
            .as_deref(),
        Some("A")
    );
    assert_eq!(store.image("m", "right", "a").expect("image"), Some(image));
    assert_eq!(store.row_hash("m", "right", "A").expect("hash"), Some(hash));
    let stored = store
        .side_copy("m", "right")
        .expect("read")
        .expect("stored");
    assert_eq!(stored.state, CopyState::Established);
}

#[test]
fn failed_rows_of_the_copy_are_listed_with_their_message_and_only_they_rerun() {
    let (_dir, store) = store();
    let page = [
        change("a", "1", Phase::InitialSync),
        change("b", "1", Phase::InitialSync),
        change("c", "1", Phase::Live),
    ];
    store.capture("m", LTR, &page, "c").expect("captured");
    let batch = store.next_batch("m", LTR, 10).expect("a batch");
    for queued in &batch {
        let reason = format!(
            "refused {}: 0x80040265 the name is taken",
            queued.change.key
        );
        store
            .park("m", LTR, queued, &reason, false)
            .expect("parked");
    }
    let failures = store.initial_failures("m").expect("listed");
    let keys: Vec<&str> = failures.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(keys, ["a", "b"], "the live failure is not the copy's");
    assert_eq!(
        failures[0].reason,
        "refused a: 0x80040265 the name is taken"
    );
    assert_eq!(failures[0].direction, LTR);
    assert_eq!(failures[0].attempts, 1);
    assert_eq!(store.rerun_failed("m").expect("rerun"), 2);
    assert!(store.initial_failures("m").expect("listed").is_empty());
    let parked: Vec<String> = store
        .parked("m", LTR)
        .expect("parked")
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert_eq!(parked, ["c"], "the live failure stays parked");
    let again: Vec<String> = store
        .next_batch("m", LTR, 10)
        .expect("a batch")
        .into_iter()
        .map(|q| q.change.key)
        .collect();
    assert_eq!(again, ["a", "b"], "only the copy's failed rows flow again");
}

#[test]
fn tallies_count_per_company_and_a_discarded_failure_counts_where_it_failed() {
    let (_dir, store) = store();
    store
        .count_initial(
            "m",
            &[
                ("usmf", TallyChange::Read(3)),
                ("demf", TallyChange::Read(1)),
                ("usmf", TallyChange::Settled(Action::Written)),
                ("usmf", TallyChange::Settled(Action::ConflictLost)),
                ("usmf", TallyChange::Settled(Action::Parked)),
            ],
        )
        .expect("counted");
    store
        .capture("m", LTR, &[change("usmf|X", "1", Phase::InitialSync)], "c")
        .expect("captured");
    let failed = store.next_batch("m", LTR, 1).expect("a batch").remove(0);
    store
        .note_initial_failure("m", LTR, "usmf|X", "usmf")
        .expect("noted");
    store
        .park("m", LTR, &failed, "refused", false)
        .expect("parked");
    store.discard("m", LTR, "usmf|X").expect("discarded");
    let tallies = store.tallies("m").expect("tallies");
    let usmf = tallies
        .iter()
        .find(|(company, _)| company == "usmf")
        .map(|(_, t)| *t)
        .expect("usmf");
    assert_eq!(
        (usmf.read, usmf.written, usmf.skipped, usmf.discarded),
        (3, 1, 1, 1)
    );
    assert_eq!(usmf.done(), 3);
    assert!(tallies.iter().any(|(c, t)| c == "demf" && t.read == 1));
    store.begin_copy_run("m", "t".into()).expect("a run");
    let usmf = store.tallies("m").expect("tallies")[1].1;
    assert_eq!(usmf.done_at_run, 3);
}

#[test]
fn a_rerun_asks_every_copied_side_again_and_starts_the_progress_over() {
    let (_dir, store) = store();
    let mut copy = SideCopy::begin(1, "t0".into(), false);
    copy.state = CopyState::Copied;
    store.set_side_copy("m", "left", &copy).expect("stored");
    store.set_side_copy("m", "right", &copy).expect("stored");
    store.set_side_copy("other", "left", &copy).expect("stored");
    store
        .count_initial("m", &[("", TallyChange::Read(5))])
        .expect("counted");
    assert_eq!(store.rerun_initial("m").expect("asked"), 2);
    for side in ["left", "right"] {
        let copy = store.side_copy("m", side).expect("read").expect("stored");
        assert_eq!(copy.state, CopyState::RerunAsked);
        assert!(copy.copying());
    }
    let other = store
        .side_copy("other", "left")
        .expect("read")
        .expect("stored");
    assert_eq!(other.state, CopyState::Copied, "other maps are left alone");
    assert!(store.tallies("m").expect("tallies").is_empty());
}
