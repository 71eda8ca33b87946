//! A map's initial copy: at its first start each side that flows is read
//! from its first row, and what that read queues is marked
//! [`Phase::InitialSync`]; then the side's changes are live.
//!
//! - `prepare`, before each read of a side: where its copy is
//!   ([`SideCopy`]). At the map's first start it begins (`initial_sync =
//!   "left"` or `"right"`), or the side is only *established*
//!   (`"none"`: its first read stores ids, images and row hashes and
//!   queues nothing, `dataverse.rs`/`finops.rs`); a side with history from
//!   before copy states existed counts as copied; a rerun asked of the
//!   store ([`Checkpoints::rerun_initial`](crate::checkpoint::Checkpoints::rerun_initial))
//!   begins again, skipping rows already copied.
//! - What is initial: a row the copy read, unless it changed during the
//!   copy. Dataverse says when a row was modified (`modifiedon`, whole
//!   seconds): a row modified in or after the second the copy began is
//!   live (an edit made as the copy began is never lost to older copied
//!   data; a row made in that same second just before it is settled as a
//!   live change too). finops gives no change time over OData: a row is
//!   initial when the host never saw it, live when its hash changed since
//!   (a pass resumed after a crash); its data events, read again, are live.
//!   Deletes are always live.
//! - Settling (`conflict`): between two initial-copy changes of one key the
//!   master side's wins whatever the map's policy; a live change beats an
//!   initial-copy change of the other side; the policy settles live against
//!   live. An initial-copy change with a later change of its key queued on
//!   its side is retired unwritten (`decide`): the later one carries the
//!   row as it is now, so older copied data never overwrites an edit, and
//!   the edit arrives after the copy of its row (DBLog's watermark rule:
//!   a snapshot row meeting a newer event of its key is dropped).
//! - Holding (`worker`): a direction takes no batch while the side it
//!   writes to is read for the copy, and until that side was read once
//!   more (`holds`): every key the master holds is queued before the other
//!   side's copy of it is decided, and every edit made on a side while the
//!   copy ran is queued before older copied data could be written over it
//!   (DBLog's high watermark). A side's read right after its copy's read
//!   follows at once.
//! - Progress (`progress.rs`): per map and company, rows read, written,
//!   skipped and failed, the rate of this run and an ETA against the
//!   services' counts (`totals.rs`), [`InitialProgress`].
//!
//! Invariant: a side's copy state changes in the transaction that queues
//! the page it describes (the last page marks the copy read; a resumable
//! read stores its next link with its page), so a crash neither re-queues
//! a committed page nor loses one.

mod dataverse;
mod finops;
mod progress;
mod totals;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::checkpoint::{
    Action, Change, CheckpointError, CopyState, Direction, Phase, SideCopy, TallyChange,
};
use crate::map::{MapPlan, SystemKind};

use super::Shared;
use super::error::FlowError;
use super::runtime::MapRuntime;
use super::shape::{self, Row, Side};

pub(super) use dataverse::{establish_page, rerun_page};
pub(super) use finops::{PageRead, Reading, classify};
pub(super) use progress::progress;
pub use progress::{
    CompanyProgress, CopyStage, InitialProgress, RowProgress, SideProgress, initial_progress,
};
pub(super) use totals::count_companies;

/// Where the copy of `map`'s `side` is before a read of it: begun here at
/// the map's first start (or a rerun asked), else as stored.
pub(super) async fn prepare(
    shared: &Shared,
    map: &MapRuntime,
    side: Side,
) -> Result<SideCopy, FlowError> {
    let store = &shared.store;
    let name = map.name();
    match store.side_copy(name, side.name())? {
        Some(copy) if copy.state == CopyState::RerunAsked => begin(shared, map, side, true).await,
        Some(copy) => Ok(copy),
        None => {
            if history(shared, map)? {
                // Read by a host from before copy states: its copy is done.
                let mut copy = SideCopy::begin(store.stamp()?, now(), false);
                copy.state = CopyState::Copied;
                copy.caught_up = true;
                store.set_side_copy(name, side.name(), &copy)?;
                return Ok(copy);
            }
            match map.initial_sync().master() {
                Some(_) => begin(shared, map, side, false).await,
                None => {
                    let mut copy = SideCopy::begin(store.stamp()?, now(), false);
                    copy.state = CopyState::Establishing;
                    store.set_side_copy(name, side.name(), &copy)?;
                    tracing::info!(map = %name, side = side.name(), "initial_sync = \"none\": the first read stores where the side is and copies nothing.");
                    Ok(copy)
                }
            }
        }
    }
}

/// Whether a host from before copy states read `map` already: no side of
/// it has a copy state, and a side has a cursor or row hashes, or a row
/// was synced (an image).
fn history(shared: &Shared, map: &MapRuntime) -> Result<bool, CheckpointError> {
    let store = &shared.store;
    let name = map.name();
    for side in Side::BOTH {
        if store.side_copy(name, side.name())?.is_some() {
            return Ok(false);
        }
    }
    for side in Side::BOTH {
        let read = match map.plan.side(side).kind {
            SystemKind::Dataverse => store.cursor(name, side.direction())?.is_some(),
            SystemKind::Finops => store.row_hashes(name, side.name()).next().is_some(),
        };
        if read || store.knows_rows(name, side.name())? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Begins the copy of `side` now: its state stored, this run of the copy
/// begun, the side's rows counted.
async fn begin(
    shared: &Shared,
    map: &MapRuntime,
    side: Side,
    rerun: bool,
) -> Result<SideCopy, FlowError> {
    let store = &shared.store;
    let copy = SideCopy::begin(store.stamp()?, now(), rerun);
    store.set_side_copy(map.name(), side.name(), &copy)?;
    store.begin_copy_run(map.name(), copy.began.clone())?;
    tracing::info!(
        map = %map.name(), side = side.name(), rerun,
        master = map.initial_sync().as_str(),
        "The initial copy of this side begins."
    );
    totals::count_side(shared, map, side).await?;
    Ok(copy)
}

/// A capture task of `side` starts: if the side's copy is under way, this
/// run of it begins (its rate counts from now), and the side is counted if
/// the count was lost (the host stopped while it was asked).
pub(super) async fn resumed(
    shared: &Shared,
    map: &MapRuntime,
    side: Side,
) -> Result<(), FlowError> {
    let store = &shared.store;
    if let Some(copy) = store.side_copy(map.name(), side.name())?
        && copy.state == CopyState::Copying
    {
        store.begin_copy_run(map.name(), now())?;
        let counted = store
            .totals(map.name())?
            .iter()
            .any(|(s, company, _)| s == side.name() && company.is_none());
        if !counted {
            totals::count_side(shared, map, side).await?;
        }
    }
    Ok(())
}

/// The phase of an upsert a read of `copy` returned, modified at
/// `modified` as the service says (Dataverse), if it does.
pub(super) fn phase(copy: &SideCopy, modified: Option<&str>) -> Phase {
    if copy.state != CopyState::Copying {
        return Phase::Live;
    }
    let seconds = |text: &str| {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.timestamp())
    };
    match (modified.and_then(seconds), seconds(&copy.began)) {
        // Changed in or after the second the copy began (the service's
        // grain): an edit during the copy, never lost to older copied data.
        (Some(modified), Some(began)) if modified >= began => Phase::Live,
        _ => Phase::InitialSync,
    }
}

/// `copy` read to its end now.
pub(super) fn finished(copy: &SideCopy) -> SideCopy {
    let mut done = copy.clone();
    done.state = match copy.state {
        CopyState::Establishing => CopyState::Established,
        _ => CopyState::Copied,
    };
    done.finished = Some(now());
    done.resume = None;
    done.company = None;
    done
}

/// Whether the worker holds back `direction` of `map` now: while the
/// side it writes to is read for the copy, and until that side was read
/// once more after ([`SideCopy::holds_writes`]). So every key that side
/// holds is queued before the other side's copy of it is decided (the
/// master's rows before the other side's), and every change made there
/// while the copy ran is queued before older copied data could overwrite
/// it: the watermark of DBLog, whose snapshot chunks go out only after the
/// change log was read past them.
pub(super) fn holds(
    shared: &Shared,
    map: &MapRuntime,
    direction: Direction,
) -> Result<bool, CheckpointError> {
    let target = Side::source_of(direction).other();
    if !map.side(target).flows {
        return Ok(false);
    }
    Ok(shared
        .store
        .side_copy(map.name(), target.name())?
        .is_some_and(|copy| copy.holds_writes()))
}

/// A read of `side` that reached the end is done: when it came after the
/// side's copy was read, the side is caught up (the other side's copy may
/// be written to it), and the map's worker is woken.
pub(super) fn read_done(
    shared: &Shared,
    map: &MapRuntime,
    side: Side,
    copy: &SideCopy,
) -> Result<(), CheckpointError> {
    if copy.state == CopyState::Copied && !copy.caught_up {
        let mut caught_up = copy.clone();
        caught_up.caught_up = true;
        shared
            .store
            .set_side_copy(map.name(), side.name(), &caught_up)?;
        tracing::debug!(map = %map.name(), side = side.name(), "The side was read again after its copy: the other side's copy may be written to it.");
        map.wake.notify_one();
    }
    Ok(())
}

/// The company of `key` on a map striped by company (its `dataAreaId`
/// pair's value, in lower case: both services compare it without case),
/// or `""`.
pub(super) fn company_of(plan: &MapPlan, key: &str) -> String {
    let Some(index) = plan
        .key
        .iter()
        .position(|pair| plan.company_pair().is_some_and(|c| std::ptr::eq(c, pair)))
    else {
        return String::new();
    };
    shape::key_values(key)
        .into_iter()
        .nth(index)
        .unwrap_or_default()
        .to_lowercase()
}

/// Counts the rows a page of the copy read: `changes` queued (their
/// companies; a live one, changed during the copy, is settled as such),
/// `settled` found copied already, `keyless` without a key.
pub(super) fn count_read(
    shared: &Shared,
    plan: &MapPlan,
    changes: &[&Change],
    settled: &[String],
    keyless: usize,
) -> Result<(), CheckpointError> {
    let mut counts: Vec<(String, TallyChange)> = Vec::new();
    for change in changes
        .iter()
        .filter(|c| c.operation == crate::checkpoint::Operation::Upsert)
    {
        let read = match change.phase {
            Phase::InitialSync => TallyChange::Read(1),
            Phase::Live => TallyChange::ReadLive(1),
        };
        counts.push((company_of(plan, &change.key), read));
    }
    for key in settled {
        let company = company_of(plan, key);
        counts.push((company.clone(), TallyChange::Read(1)));
        counts.push((company, TallyChange::Settled(Action::Skipped)));
    }
    if keyless > 0 {
        counts.push((String::new(), TallyChange::Read(keyless as u64)));
        for _ in 0..keyless {
            counts.push((String::new(), TallyChange::Settled(Action::Skipped)));
        }
    }
    let counts: Vec<(&str, TallyChange)> = counts.iter().map(|(c, t)| (c.as_str(), *t)).collect();
    shared.store.count_initial(&plan.name, &counts)
}

/// Counts the rows of the copy a batch settled, `(key, action)`.
pub(super) fn count_settled(
    shared: &Shared,
    plan: &MapPlan,
    settled: &[(String, Action)],
) -> Result<(), CheckpointError> {
    if settled.is_empty() {
        return Ok(());
    }
    let companies: Vec<String> = settled
        .iter()
        .map(|(key, _)| company_of(plan, key))
        .collect();
    let counts: Vec<(&str, TallyChange)> = companies
        .iter()
        .zip(settled)
        .map(|(company, (_, action))| (company.as_str(), TallyChange::Settled(*action)))
        .collect();
    shared.store.count_initial(&plan.name, &counts)?;
    shared.store.copy_settled(&plan.name, now())
}

/// Whether a rerun finds `key` copied already: both sides hold an image of
/// it and `side`'s is `row`'s mapped fields, as the host last synced them.
pub(super) fn copied_already(
    shared: &Shared,
    map: &MapRuntime,
    side: Side,
    key: &str,
    row: &Row,
) -> Result<bool, CheckpointError> {
    let store = &shared.store;
    let name = map.name();
    let Some(image) = store.image(name, side.name(), key)? else {
        return Ok(false);
    };
    Ok(image == shape::restrict(row, &map.side(side).fields)
        && store.image(name, side.other().name(), key)?.is_some())
}

/// Whether an initial-copy change of `key` read from `side` waits.
pub(in crate::sync) fn queued_initial(
    shared: &Shared,
    map: &MapRuntime,
    side: Side,
    key: &str,
) -> Result<bool, CheckpointError> {
    Ok(shared
        .store
        .pending(map.name(), side.direction(), key)?
        .iter()
        .any(|queued| queued.change.phase == Phase::InitialSync))
}

/// Whether a change of `key` waits in `direction` of `map` already.
pub(super) fn queued(
    shared: &Shared,
    map: &MapRuntime,
    direction: Direction,
    key: &str,
) -> Result<bool, CheckpointError> {
    Ok(!shared.store.pending(map.name(), direction, key)?.is_empty())
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}
