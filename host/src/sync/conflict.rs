//! Conflicts: a change of a key while a change of the other side for the
//! same key is still queued (and is not the echo of the host's own write).
//! Two changes that leave both sides holding the same mapped values agree:
//! both are done, nothing is written. Otherwise the map's policy picks the
//! winner; the loser is done, logged with both versions, and never written.

use std::sync::atomic::Ordering;

use chrono::DateTime;

use crate::checkpoint::{
    Activity, Change, Direction, Finish, Operation, QueuedChange, fingerprint,
};
use crate::map::{ConflictPolicy, MapPlan};

use super::Shared;
use super::pipeline::{Outcome, echoed_write, excluded};
use super::shape::{self, Row, Side};

/// How a change came out of [`settle_conflict`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Settled {
    /// No rival, or the change won (its rivals are done): it goes on.
    Goes,
    /// It lost to the other side's change.
    Lost,
    /// Both sides hold the same mapped values already: the rivals are
    /// done and so is the change; nothing is written.
    Agree,
}

/// Settles a conflict of `queued` with the other direction's queued
/// changes of its key.
pub(super) fn settle_conflict(
    shared: &Shared,
    map: &MapPlan,
    direction: Direction,
    queued: &QueuedChange,
    out: &mut Outcome,
) -> Result<Settled, String> {
    let store = &shared.store;
    let key = &queued.change.key;
    let other_direction = match direction {
        Direction::LeftToRight => Direction::RightToLeft,
        Direction::RightToLeft => Direction::LeftToRight,
    };
    let other_side = Side::source_of(other_direction);
    let pending = store
        .pending(&map.name, other_direction, key)
        .map_err(|e| e.to_string())?;
    if pending.is_empty() {
        return Ok(Settled::Goes);
    }
    // A rival that is the echo of the host's own write is no rival.
    let other_fields = shape::echo_fields(map, other_side);
    let writes = store
        .writes(&map.name, other_side.name(), key)
        .map_err(|e| e.to_string())?;
    let others: Vec<QueuedChange> = pending
        .into_iter()
        .filter(|other| echoed_write(&writes, &other.change, &other_fields).is_none())
        .collect();
    let Some(latest) = others.last() else {
        return Ok(Settled::Goes);
    };
    let source = Side::source_of(direction);
    if agree(shared, map, source, &queued.change, &latest.change) {
        let image = shape::restrict(&latest.change.row, &shape::side_fields(map, other_side));
        close_rivals(
            shared,
            map,
            other_direction,
            &others,
            "skipped",
            |other| {
                format!(
                    "version {}: both sides already hold the same values",
                    other.change.version
                )
            },
            Some(image),
        )?;
        return Ok(Settled::Agree);
    }
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
        close_rivals(
            shared,
            map,
            other_direction,
            &others,
            "conflict-lost",
            |other| {
                format!(
                    "{policy}: {} lost to {}",
                    describe(other, other_side),
                    describe(queued, source)
                )
            },
            None,
        )?;
        Ok(Settled::Goes)
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
        Ok(Settled::Lost)
    }
}

/// Finishes the other direction's rival changes of one key: done, logged
/// as `what`, and (when the rivals agreed) their side's image recorded.
fn close_rivals(
    shared: &Shared,
    map: &MapPlan,
    direction: Direction,
    rivals: &[QueuedChange],
    what: &'static str,
    detail: impl Fn(&QueuedChange) -> String,
    image: Option<Row>,
) -> Result<(), String> {
    let side = Side::source_of(direction);
    let lines: Vec<Activity> = rivals
        .iter()
        .map(|rival| Activity {
            map: map.name.clone(),
            direction,
            key: rival.change.key.clone(),
            what: what.into(),
            detail: detail(rival),
        })
        .collect();
    let superseded: Vec<(&str, &str, u64)> = rivals
        .iter()
        .filter(|q| q.change.read_at > 0)
        .map(|q| (side.name(), q.change.key.as_str(), q.change.read_at))
        .collect();
    let images: Vec<crate::checkpoint::Image<'_>> = match (image, rivals.last()) {
        (Some(image), Some(last)) => vec![(side.name(), last.change.key.as_str(), Some(image))],
        _ => Vec::new(),
    };
    shared
        .store
        .finish(
            &map.name,
            direction,
            &Finish {
                done: rivals,
                images: &images,
                activity: &lines,
                superseded: &superseded,
                ..Finish::default()
            },
        )
        .map_err(|e| e.to_string())?;
    let counters = shared.counters(&map.name, direction);
    let counter = match what {
        "skipped" => &counters.skipped,
        _ => &counters.conflicts,
    };
    counter.fetch_add(rivals.len() as u64, Ordering::Relaxed);
    for line in lines {
        shared.emit(&line.map, line.direction, &line.key, what, line.detail);
    }
    Ok(())
}

/// Whether two upserts of one key, one from each side, leave both sides
/// with the same mapped values: each, mapped to the other side, matches
/// the other's row on the fields it writes there.
/// Not when a filter or stripe leaves either row out (the exit must be
/// handled), nor when plugins run (they may change what is written).
fn agree(shared: &Shared, map: &MapPlan, source: Side, ours: &Change, theirs: &Change) -> bool {
    if ours.operation != Operation::Upsert || theirs.operation != Operation::Upsert {
        return false;
    }
    let target = source.other();
    let plugins = shared.chains.get(&map.name).is_some_and(|chain| {
        !chain.is_empty_for(Direction::LeftToRight) || !chain.is_empty_for(Direction::RightToLeft)
    });
    if plugins
        || excluded(map, source, &ours.row).is_some()
        || excluded(map, target, &theirs.row).is_some()
    {
        return false;
    }
    let same = |mapped: &Row, actual: &Row, side: Side| {
        let fields: Vec<String> = shape::echo_fields(map, side)
            .into_iter()
            .filter(|field| mapped.contains_key(field))
            .collect();
        fingerprint(mapped, fields.iter().map(String::as_str))
            == fingerprint(actual, fields.iter().map(String::as_str))
    };
    match (
        shape::map_row(map, source, &ours.row),
        shape::map_row(map, target, &theirs.row),
    ) {
        (Ok(to_them), Ok(to_us)) => {
            same(&to_them, &theirs.row, target) && same(&to_us, &ours.row, source)
        }
        _ => false,
    }
}

/// A modification time in whole seconds: Dataverse's `modifiedon` has no
/// finer grain, so finer times would not compare fairly. A tie goes left.
fn when(text: &Option<String>) -> i64 {
    text.as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or(i64::MIN, |t| t.timestamp())
}
