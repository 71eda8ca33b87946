//! Conflicts: a change of a key while a change of the other side for the
//! same key is still queued (and is not the echo of the host's own write).
//! Two changes that leave both sides holding the same mapped values agree:
//! both are done, nothing is written. Otherwise the map's policy picks the
//! winner; the loser is done, logged with both versions, and never written.

use chrono::DateTime;

use crate::checkpoint::{Action, Change, Direction, Operation, QueuedChange, fingerprint};
use crate::map::ConflictPolicy;

use super::Shared;
use super::echo::echoed_write;
use super::error::FlowError;
use super::record::Recorder;
use super::runtime::MapRuntime;
use super::shape::{self, Row, Side};

/// How a change came out of [`settle_conflict`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Settled {
    /// No rival, or the change won (its rivals are done): it goes on.
    Goes,
    /// It lost to the other side's change: both versions, for the log.
    Lost(String),
    /// Both sides hold the same mapped values already: the rivals are
    /// done and so is the change; nothing is written.
    Agree,
}

/// Settles a conflict of `queued` with the other direction's queued
/// changes of its key.
pub(super) fn settle_conflict(
    shared: &Shared,
    runtime: &MapRuntime,
    direction: Direction,
    queued: &QueuedChange,
) -> Result<Settled, FlowError> {
    let map = &runtime.plan;
    let store = &shared.store;
    let key = &queued.change.key;
    let other_direction = match direction {
        Direction::LeftToRight => Direction::RightToLeft,
        Direction::RightToLeft => Direction::LeftToRight,
    };
    let other_side = Side::source_of(other_direction);
    let pending = store.pending(&map.name, other_direction, key)?;
    if pending.is_empty() {
        return Ok(Settled::Goes);
    }
    // A rival that is the echo of the host's own write is no rival.
    let other_fields = &runtime.side(other_side).echo_fields;
    let writes = store.writes(&map.name, other_side.name(), key)?;
    let others: Vec<QueuedChange> = pending
        .into_iter()
        .filter(|other| echoed_write(&writes, &other.change, other_fields).is_none())
        .collect();
    let Some(latest) = others.last() else {
        return Ok(Settled::Goes);
    };
    let source = Side::source_of(direction);
    if agree(runtime, source, &queued.change, &latest.change) {
        let image = shape::restrict(&latest.change.row, &runtime.side(other_side).fields);
        close_rivals(
            shared,
            runtime,
            other_direction,
            &others,
            Action::Skipped,
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
            serde_json::Value::Object(shape::restrict(&q.change.row, &runtime.side(side).fields))
        )
    };
    if wins {
        close_rivals(
            shared,
            runtime,
            other_direction,
            &others,
            Action::ConflictLost,
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
        Ok(Settled::Lost(format!(
            "{policy}: {} lost to {}",
            describe(queued, source),
            describe(latest, other_side)
        )))
    }
}

/// Finishes the other direction's rival changes of one key: done, logged
/// as `action`, and (when the rivals agreed) their side's image recorded.
fn close_rivals(
    shared: &Shared,
    runtime: &MapRuntime,
    direction: Direction,
    rivals: &[QueuedChange],
    action: Action,
    detail: impl Fn(&QueuedChange) -> String,
    image: Option<Row>,
) -> Result<(), FlowError> {
    let side = Side::source_of(direction);
    let mut record = Recorder::new(runtime.name(), direction);
    if let (Some(image), Some(last)) = (image, rivals.last()) {
        record.image(side, &last.change.key, Some(image));
    }
    for rival in rivals {
        record.close(rival.clone(), action, detail(rival));
    }
    record.finish(shared, runtime)?;
    Ok(())
}

/// Whether two upserts of one key, one from each side, leave both sides
/// with the same mapped values: each, mapped to the other side, matches
/// the other's row on the fields it writes there.
/// Not when a filter or stripe leaves either row out (the exit must be
/// handled), nor when plugins run (they may change what is written).
fn agree(runtime: &MapRuntime, source: Side, ours: &Change, theirs: &Change) -> bool {
    if ours.operation != Operation::Upsert || theirs.operation != Operation::Upsert {
        return false;
    }
    let map = &runtime.plan;
    let target = source.other();
    if runtime.has_plugins()
        || shape::excluded(map, source, &ours.row).is_some()
        || shape::excluded(map, target, &theirs.row).is_some()
    {
        return false;
    }
    let same = |mapped: &Row, actual: &Row, side: Side| {
        let fields: Vec<&String> = runtime
            .side(side)
            .echo_fields
            .iter()
            .filter(|field| mapped.contains_key(*field))
            .collect();
        fingerprint(mapped, fields.iter().map(|f| f.as_str()))
            == fingerprint(actual, fields.iter().map(|f| f.as_str()))
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
