//! The queue as a whole on real sled: its count against a scan.

use super::super::ops::{flow, prefix};
use super::super::{
    Action, Activity, Change, Checkpoints, Direction, Finish, Operation, QueuedChange,
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
    }
}

fn written(direction: Direction, batch: &[QueuedChange]) -> Vec<Activity> {
    batch
        .iter()
        .map(|queued| Activity {
            map: "m".into(),
            direction,
            key: queued.change.key.clone(),
            what: Action::Written,
            detail: String::new(),
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
        store.park("m", RTL, &parked[0], "refused").expect("parks");
        assert_counted(&store, "after park");
        store.discard("m", RTL, "c").expect("discards");
        assert_eq!(store.queued("m", RTL), 0);
        assert_counted(&store, "after discard");
    }
    let store = Checkpoints::open(dir.path()).expect("reopens");
    assert_eq!(store.queued("m", LTR), 1);
    assert_counted(&store, "after a reopen");
}
