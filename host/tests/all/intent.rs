//! Write-ahead intents in the checkpoint store, on real sled on disk: a
//! batch's intents are durable before it is sent, and leave with their
//! changes (finished, settled as rivals, parked or discarded), never
//! before.

use dualwrite::checkpoint::{
    Action, Activity, Change, Checkpoints, Direction, Finish, Operation, QueuedChange,
};

const LTR: Direction = Direction::LeftToRight;
const RTL: Direction = Direction::RightToLeft;

fn change(key: &str) -> Change {
    Change {
        key: key.into(),
        version: "1".into(),
        operation: Operation::Upsert,
        row: serde_json::json!({ "name": key })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        modified: None,
        read_at: 0,
        unreadable: None,
        phase: Default::default(),
    }
}

fn seqs(batch: &[QueuedChange]) -> Vec<u64> {
    batch.iter().map(|q| q.seq).collect()
}

fn written(batch: &[QueuedChange]) -> Vec<Activity> {
    batch
        .iter()
        .map(|q| Activity::new("m", LTR, &q.change.key, Action::Written, String::new()))
        .collect()
}

#[test]
fn intents_survive_a_restart_and_leave_with_their_changes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let batch = {
        let store = Checkpoints::open(dir.path()).expect("opens");
        store
            .capture("m", LTR, &[change("a"), change("b"), change("c")], "c1")
            .expect("captures");
        let batch = store.next_batch("m", LTR, 10).expect("batch");
        let intents: Vec<(u64, [u8; 32])> = batch
            .iter()
            .zip(1u8..)
            .map(|(q, n)| (q.seq, [n; 32]))
            .collect();
        store.intend("m", LTR, &intents).expect("intends");
        batch
        // The store is dropped here as a crash would leave it: the batch
        // sent, nothing finished.
    };
    let store = Checkpoints::open(dir.path()).expect("reopens");
    let found = store.intents("m", LTR, &seqs(&batch)).expect("reads");
    assert_eq!(found.len(), 3);
    assert_eq!(found[&batch[1].seq], [2; 32]);
    assert!(
        store
            .intents("m", RTL, &seqs(&batch))
            .expect("reads")
            .is_empty(),
        "an intent belongs to its map's direction"
    );
    assert!(
        store
            .intents("other", LTR, &seqs(&batch))
            .expect("reads")
            .is_empty(),
        "and to its map"
    );

    // An intent recorded again for the same change replaces the old one.
    store
        .intend("m", LTR, &[(batch[2].seq, [9; 32])])
        .expect("intends again");
    assert_eq!(
        store.intents("m", LTR, &[batch[2].seq]).expect("reads")[&batch[2].seq],
        [9; 32]
    );

    // Finished: the intent leaves in the same transaction as the change.
    store
        .complete("m", LTR, &batch[..1], &[], &written(&batch[..1]))
        .expect("completes");
    let left = store.intents("m", LTR, &seqs(&batch)).expect("reads");
    assert!(!left.contains_key(&batch[0].seq));
    assert_eq!(left.len(), 2, "the others stay until they are finished");

    // Parked: its write was refused (or never sent); the intent leaves.
    store
        .park("m", LTR, &batch[1], "refused", false)
        .expect("parks");
    assert!(
        !store
            .intents("m", LTR, &[batch[1].seq])
            .expect("reads")
            .contains_key(&batch[1].seq)
    );

    // Discarded after parking: nothing of it is left.
    store
        .park("m", LTR, &batch[2], "refused", false)
        .expect("parks");
    store
        .intend("m", LTR, &[(batch[2].seq, [9; 32])])
        .expect("intends");
    store.discard("m", LTR, "c").expect("discards");
    assert!(
        store
            .intents("m", LTR, &seqs(&batch))
            .expect("reads")
            .is_empty()
    );
}

#[test]
fn a_rival_settled_by_the_other_direction_takes_its_intent_along() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Checkpoints::open(dir.path()).expect("opens");
    store
        .capture("m", LTR, &[change("k")], "c1")
        .expect("captures");
    store
        .capture("m", RTL, &[change("k")], "c2")
        .expect("captures");
    let ours = store.next_batch("m", LTR, 10).expect("batch");
    let theirs = store.next_batch("m", RTL, 10).expect("batch");
    store
        .intend("m", RTL, &[(theirs[0].seq, [7; 32])])
        .expect("intends");
    store
        .finish(
            "m",
            LTR,
            &Finish {
                done: &ours,
                rivals: &theirs,
                activity: &written(&ours),
                ..Finish::default()
            },
        )
        .expect("finishes");
    assert!(
        store
            .intents("m", RTL, &seqs(&theirs))
            .expect("reads")
            .is_empty()
    );
    assert_eq!(store.queued("m", RTL), 0);
}
