//! Conflicts: a change of a key while a change of the other side for the
//! same key is still queued (and is not the echo of the host's own write).
//! The map's policy picks the winner; the loser is done, logged with both
//! versions, and never written.

use std::sync::atomic::Ordering;

use chrono::DateTime;

use crate::checkpoint::{Activity, Direction, Finish, Operation, QueuedChange, fingerprint};
use crate::map::{ConflictPolicy, MapPlan};

use super::Shared;
use super::pipeline::{Outcome, deleted_mark};
use super::shape::{self, Side};

/// Settles a conflict of `queued` with the other direction's queued
/// changes of its key: true when `queued` goes on (the other side's
/// changes, if any, lost and are done), false when it lost.
pub(super) fn settle_conflict(
    shared: &Shared,
    map: &MapPlan,
    direction: Direction,
    queued: &QueuedChange,
    out: &mut Outcome,
) -> Result<bool, String> {
    let store = &shared.store;
    let key = &queued.change.key;
    let other_direction = match direction {
        Direction::LeftToRight => Direction::RightToLeft,
        Direction::RightToLeft => Direction::LeftToRight,
    };
    let other_side = Side::source_of(other_direction);
    let other_fields = shape::echo_fields(map, other_side);
    let stored = store
        .echo(&map.name, other_side.name(), key)
        .map_err(|e| e.to_string())?;
    let others: Vec<QueuedChange> = store
        .pending(&map.name, other_direction, key)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|other| {
            let mark = match other.change.operation {
                Operation::Upsert => {
                    fingerprint(&other.change.row, other_fields.iter().map(String::as_str))
                }
                Operation::Delete => deleted_mark(),
            };
            !stored.contains(&mark)
        })
        .collect();
    let Some(latest) = others.last() else {
        return Ok(true);
    };
    let source = Side::source_of(direction);
    let wins = match map.conflict {
        ConflictPolicy::LeftWins => source == Side::Left,
        ConflictPolicy::RightWins => source == Side::Right,
        ConflictPolicy::LastWriterWins => {
            let ours = when(&queued.change.modified);
            let theirs = when(&latest.change.modified);
            ours > theirs || (ours == theirs && source == Side::Left)
        }
    };
    let policy = match map.conflict {
        ConflictPolicy::LeftWins => "left-wins",
        ConflictPolicy::RightWins => "right-wins",
        ConflictPolicy::LastWriterWins => "last-writer-wins",
    };
    let describe = |q: &QueuedChange, side: Side| {
        format!(
            "{} version {} (modified {}): {}",
            side.name(),
            q.change.version,
            q.change.modified.as_deref().unwrap_or("?"),
            serde_json::Value::Object(shape::restrict(
                &q.change.row,
                &shape::side_fields(map, side)
            ))
        )
    };
    if wins {
        let mut lost = Vec::new();
        for other in &others {
            lost.push(Activity {
                map: map.name.clone(),
                direction: other_direction,
                key: key.clone(),
                what: "conflict-lost".into(),
                detail: format!(
                    "{policy}: {} lost to {}",
                    describe(other, other_side),
                    describe(queued, source)
                ),
            });
        }
        let superseded: Vec<(&str, &str, u64)> = others
            .iter()
            .map(|q| (other_side.name(), q.change.key.as_str(), q.seq))
            .collect();
        store
            .finish(
                &map.name,
                other_direction,
                &Finish {
                    done: &others,
                    activity: &lost,
                    superseded: &superseded,
                    ..Finish::default()
                },
            )
            .map_err(|e| e.to_string())?;
        shared
            .counters(&map.name, other_direction)
            .conflicts
            .fetch_add(others.len() as u64, Ordering::Relaxed);
        for line in lost {
            shared.emit(
                &line.map,
                line.direction,
                &line.key,
                "conflict-lost",
                line.detail,
            );
        }
        Ok(true)
    } else {
        out.log(
            &map.name,
            direction,
            key,
            "conflict-lost",
            format!(
                "{policy}: {} lost to {}",
                describe(queued, source),
                describe(latest, other_side)
            ),
        );
        Ok(false)
    }
}

/// A modification time in whole seconds: Dataverse's `modifiedon` has no
/// finer grain, so finer times would not compare fairly. A tie goes left.
fn when(text: &Option<String>) -> i64 {
    text.as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or(i64::MIN, |t| t.timestamp())
}
