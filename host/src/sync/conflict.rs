//! Conflicts: a change of a key while a change of the other side for the
//! same key is still queued (and is not the echo of the host's own write).
//! This module decides and writes nothing; the pipeline records.
//!
//! Two changes that leave both sides holding the same mapped values agree:
//! both are done, nothing is written. Otherwise the winning side is picked
//! by each side's latest queued change of the key, so both directions
//! reach the same verdict: between two changes of the map's initial copy
//! the master side's wins (`initial_sync`), a live change beats the other
//! side's initial copy, and the map's policy settles live against live. A change of the winning side goes on
//! and carries its rivals; they are closed, logged with both versions, in
//! the transaction that records the winner's write, and only once that
//! write was applied. A change of the losing side is held: it stays queued,
//! untouched, until the winner's write closes it. If the winner is skipped,
//! parked or discarded instead, the rivals stay queued and flow again, so no
//! edit is lost.

use chrono::DateTime;

use crate::checkpoint::{
    Action, Change, Direction, Operation, Phase, QueuedChange, Written, fingerprint,
};
use crate::map::{ConflictPolicy, InitialSync, MapPlan};

use super::Shared;
use super::echo::echoed_write;
use super::error::FlowError;
use super::runtime::MapRuntime;
use super::shape::{self, Row, Side};

/// A change of the other direction settled together with the one decided.
#[derive(Debug, Clone)]
pub(super) struct Rival {
    /// The rival change.
    pub queued: QueuedChange,
    /// What becomes of it.
    pub action: Action,
    /// Why, for the log (both versions).
    pub detail: String,
}

/// How a change came out of [`settle_conflict`].
#[derive(Debug)]
pub(super) enum Settled {
    /// No rival, or the change's side won: it goes on; its rivals (if any)
    /// are closed once its write is applied.
    Goes(Vec<Rival>),
    /// The other side won: the change waits, queued, for the winner's write
    /// to close it.
    Held(String),
    /// Both sides hold the same mapped values already: the change and its
    /// rivals are done, nothing is written; the rivals' side now holds
    /// `image`.
    Agree {
        /// The rivals, done as skipped.
        rivals: Vec<Rival>,
        /// The mapped fields of the rivals' side.
        image: Row,
    },
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
    let key = &queued.change.key;
    let source = Side::source_of(direction);
    let other_side = source.other();
    let others = genuine(shared, runtime, other_side, key)?;
    let Some(latest) = others.last() else {
        return Ok(Settled::Goes(Vec::new()));
    };
    if agree(runtime, source, &queued.change, &latest.change) {
        let image = shape::restrict(&latest.change.row, &runtime.side(other_side).fields);
        let rivals = others
            .iter()
            .map(|other| Rival {
                queued: other.clone(),
                action: Action::Skipped,
                detail: format!(
                    "version {}: both sides already hold the same values",
                    other.change.version
                ),
            })
            .collect();
        return Ok(Settled::Agree { rivals, image });
    }
    // Each side's latest change speaks for it, so that whichever direction
    // is decided first, both come to the same verdict.
    let ours = genuine(shared, runtime, source, key)?
        .pop()
        .unwrap_or_else(|| queued.clone());
    let (wins, policy) = verdict(
        map,
        runtime.initial_sync(),
        source,
        &ours.change,
        &latest.change,
    );
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
        let rivals = others
            .iter()
            .map(|other| Rival {
                queued: other.clone(),
                action: Action::ConflictLost,
                detail: format!(
                    "{policy}: {} lost to {}",
                    describe(other, other_side),
                    describe(&ours, source)
                ),
            })
            .collect();
        Ok(Settled::Goes(rivals))
    } else {
        Ok(Settled::Held(format!(
            "{policy}: {} waits to be settled by {}",
            describe(queued, source),
            describe(latest, other_side)
        )))
    }
}

/// Whether `ours` (of `source`) wins against `theirs` (of the other side),
/// and the rule that says so, for the log: between two changes of the
/// initial copy the master side's (`initial_sync`) wins; a live change
/// beats the other side's initial copy; the map's policy settles live
/// against live (and the copy of a map without a master).
fn verdict(
    map: &MapPlan,
    initial_sync: InitialSync,
    source: Side,
    ours: &Change,
    theirs: &Change,
) -> (bool, &'static str) {
    match (ours.phase, theirs.phase, initial_sync.master()) {
        (Phase::InitialSync, Phase::InitialSync, Some(master)) => (
            source == master,
            match master {
                Side::Left => "initial sync, the left side is the master",
                Side::Right => "initial sync, the right side is the master",
            },
        ),
        (Phase::Live, Phase::InitialSync, _) => (true, "a live change beats the initial copy"),
        (Phase::InitialSync, Phase::Live, _) => (false, "a live change beats the initial copy"),
        _ => match map.conflict {
            ConflictPolicy::LeftWins => (source == Side::Left, "left-wins"),
            ConflictPolicy::RightWins => (source == Side::Right, "right-wins"),
            ConflictPolicy::LastWriterWins => {
                let ours = when(&ours.modified);
                let theirs = when(&theirs.modified);
                (
                    ours > theirs || (ours == theirs && source == Side::Left),
                    "last-writer-wins",
                )
            }
        },
    }
}

/// The queued changes of `key` read from `side` that are not echoes of
/// the host's own writes there, oldest first.
fn genuine(
    shared: &Shared,
    runtime: &MapRuntime,
    side: Side,
    key: &str,
) -> Result<Vec<QueuedChange>, FlowError> {
    let store = &shared.store;
    let map = runtime.name();
    let pending = store.pending(map, side.direction(), key)?;
    if pending.is_empty() {
        return Ok(pending);
    }
    let fields = &runtime.side(side).echo_fields;
    let writes: Vec<Written> = store.writes(map, side.name(), key)?;
    Ok(pending
        .into_iter()
        .filter(|change| echoed_write(&writes, &change.change, fields).is_none())
        .collect())
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
