//! Capture: one task per map side reads the source's changes and queues
//! them in one flushed transaction before reading on. Dataverse: delta
//! links, queued with the new cursor; the first read of a side with no
//! cursor is the initial copy, every row, marked initial-sync (`initial`
//! decides where the side's copy is before each read: a rerun's read, or
//! with `initial_sync = "none"` a first read that queues nothing). finops:
//! reconciliation (`finops.rs`), paged reads compared with the hashes of
//! what each key last showed, every `catch_all_interval` when data events
//! are pushed to the receiver for that system, else every `poll_interval`;
//! its first pass is the initial copy. The read that ends a copy is
//! followed at once by another, which finds the changes made meanwhile.
//! `hold.rs`: a side whose flow's queue reached a limit of
//! `[engine.queue]` is not read until it drains.

mod finops;
mod hold;

pub(super) use finops::{Compared, compare, gone, queue, queue_marked, seen_of, stored_same};
pub(super) use hold::{describe, limits};

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde_json::Value;

use crate::checkpoint::{Action, Activity, Change, CopyState, Operation, Phase};
use crate::connector::{ChangePage, ConnectorError, Deleted};
use crate::map::{MapPlan, SystemKind};

use super::error::FlowError;
use super::runtime::MapRuntime;
use super::shape::{self, Row, Side};
use super::system::primary_id;
use super::{Shared, SyncError, initial, record, refs};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The retry delays of a failing read or batch: from half a second,
/// doubling, with jitter, up to 30 s, for as long as it takes.
pub(super) fn backoff() -> impl Iterator<Item = Duration> {
    crate::connector::backoff(Duration::from_secs(1), Duration::from_secs(30))
}

/// Runs the capture of `map`'s `side` until the map halts. A failed read
/// is retried with backoff; a failing checkpoint store ends the capture
/// with the error, which fails the map.
pub(super) async fn run(
    shared: Arc<Shared>,
    map: Arc<MapRuntime>,
    side: Side,
    webhook: bool,
) -> Result<(), SyncError> {
    let reconciled = map.plan.side(side).kind == SystemKind::Finops;
    let mut pass = finops::Pass::default();
    let configured = configured_interval(&shared, &map, side, webhook);
    let system = &map.plan.side(side).system;
    let budget = &shared.budgets[system];
    let interval = budget.interval(configured);
    if interval > configured {
        tracing::info!(
            map = %map.name(), side = side.name(), %system,
            configured = %humantime::format_duration(configured),
            polls_every = %humantime::format_duration(interval),
            "Many maps poll this system: polls are spread to stay within the polling budget."
        );
    }
    // Whether the last read had more to give: the next read continues it
    // at once and is not a poll of the budget. The first read (the initial
    // copy, or tracking resumed at start) is not one either.
    let mut continuing = true;
    let mut retry = backoff();
    tokio::select! {
        // A count that fails is logged there; only the store can fail it.
        resumed = initial::resumed(&shared, &map, side) => {
            if let Err(FlowError::Checkpoint(error)) = resumed {
                return Err(error.into());
            }
        }
        _ = map.halted() => return Ok(()),
    }
    let mut holding = hold::Holding::default();
    loop {
        if map.halting() {
            return Ok(());
        }
        // A full queue: nothing is read (nor a poll spent) until it drains.
        if holding.check(&shared, &map, side)? {
            tokio::select! {
                _ = tokio::time::sleep(hold::recheck(interval)) => continue,
                _ = map.halted() => return Ok(()),
            }
        }
        if !continuing {
            tokio::select! {
                _ = budget.poll() => {}
                _ = map.halted() => return Ok(()),
            }
        }
        // A read stuck in retries (throttling, an outage) must not hold up
        // shutdown; dropping it is safe: nothing was queued yet.
        let read = if reconciled {
            tokio::select! {
                read = finops::read_page(&shared, &map, side, &mut pass) => read,
                _ = map.halted() => return Ok(()),
            }
        } else {
            tokio::select! {
                read = read_once(&shared, &map, side) => read,
                _ = map.halted() => return Ok(()),
            }
        };
        let wait = match read {
            Ok(more) => {
                retry = backoff();
                continuing = more;
                if more { Duration::ZERO } else { interval }
            }
            Err(FlowError::Checkpoint(error)) => return Err(error.into()),
            Err(error) => {
                tracing::warn!(map = %map.name(), side = side.name(), %error, "Capture failed; retrying.");
                retry.next().unwrap_or(Duration::from_secs(30))
            }
        };
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = map.halted() => return Ok(()),
        }
    }
}

/// The interval the config gives `side` of `map`: `catch_all_interval`
/// when its changes are pushed to the receiver (finops data events, or the
/// host's Dataverse webhook registered), else `poll_interval`.
pub(super) fn configured_interval(
    shared: &Shared,
    map: &MapRuntime,
    side: Side,
    receiver: bool,
) -> Duration {
    if pushed(shared, map, side, receiver) {
        shared.plan().engine.catch_all_interval
    } else {
        shared.plan().engine.poll_interval
    }
}

/// Whether the changes of `side` are pushed: finops data events reach the
/// host's receiver (`receiver`: it listens) with the system's secret, or
/// Dataverse steps are registered. Polling is then only the catch-all.
pub(super) fn pushed(shared: &Shared, map: &MapRuntime, side: Side, receiver: bool) -> bool {
    (receiver
        && map.plan.side(side).kind == SystemKind::Finops
        && shared
            .plan()
            .systems
            .get(&map.plan.side(side).system)
            .is_some_and(|s| s.events_secret.is_some()))
        || map.pushed(side)
}

/// Reads one page of Dataverse changes and queues it; true when more is
/// ready now.
async fn read_once(shared: &Shared, map: &MapRuntime, side: Side) -> Result<bool, FlowError> {
    let copy = initial::prepare(shared, map, side).await?;
    if copy.state == CopyState::Copying && copy.rerun {
        return initial::rerun_page(shared, map, side, &copy).await;
    }
    let plan = &map.plan;
    let direction = side.direction();
    let table = &plan.side(side).table;
    let system = shared.system(plan, side);
    let cursor = shared.store.cursor(&plan.name, direction)?;
    let select = &map.side(side).select;
    let mut read_at = shared.store.stamp()?;
    // After a read of the whole table (an expired delta link), the rows
    // the host knows on this side that it did not return were deleted
    // meanwhile: `Some(version)` gives those deletes their version.
    let mut full_read = None;
    let page = match system.changes(table, select, cursor.as_deref()).await {
        Ok(page) => page,
        // An expired delta link (or any refusal of it): track again from a
        // read of every row, to the end, so that the deletes the expired
        // link would have reported are found against the stored images.
        Err(ConnectorError::Rejected { status: 400, .. }) if cursor.is_some() => {
            tracing::warn!(map = %plan.name, side = side.name(), "The change cursor expired; reading the table again.");
            read_at = shared.store.stamp()?;
            let mut page = system.changes(table, select, None).await?;
            while page.more {
                let next = system
                    .changes(table, select, Some(&page.next_cursor))
                    .await?;
                page.upserts.extend(next.upserts);
                page.upsert_versions.extend(next.upsert_versions);
                page.upsert_times.extend(next.upsert_times);
                page.deletes.extend(next.deletes);
                page.delete_versions.extend(next.delete_versions);
                page.delete_times.extend(next.delete_times);
                page.next_cursor = next.next_cursor;
                page.more = next.more;
            }
            full_read = Some(format!("reconciled:{read_at}"));
            page
        }
        Err(error) => return Err(error.into()),
    };
    let more = page.more;
    let cursor = page.next_cursor.clone();
    let Captured {
        mut changes,
        ids,
        keyless,
    } = changes_of(shared, plan, side, page, read_at).await?;
    if copy.state == CopyState::Establishing {
        initial::establish_page(shared, map, side, &changes, &ids, &cursor, more, &copy)?;
        log_keyless(shared, map, direction, keyless)?;
        if !more {
            map.mark_captured(side);
        }
        return Ok(more);
    }
    let copying = copy.state == CopyState::Copying;
    if copying {
        for change in changes
            .iter_mut()
            .filter(|c| c.operation == Operation::Upsert)
        {
            change.phase = initial::phase(&copy, change.modified.as_deref());
        }
    }
    let keyless_rows = keyless.len();
    if let Some(version) = full_read {
        let gone = deleted_meanwhile(shared, plan, side, &changes, &version, read_at)?;
        if !gone.is_empty() {
            tracing::warn!(map = %plan.name, side = side.name(), deleted = gone.len(), "Rows the host knew were not in the full read; they are deleted on the other side.");
        }
        changes.splice(0..0, gone);
    }
    let ids: Vec<(&str, &str, &str)> = ids
        .iter()
        .map(|(id, key)| (side.name(), id.as_str(), key.as_str()))
        .collect();
    let added = match copying && !more {
        // The copy's last page marks the copy read, in its transaction.
        true => shared.store.capture_copied(
            &plan.name,
            direction,
            &changes,
            Some(&cursor),
            &ids,
            side.name(),
            &initial::finished(&copy),
        )?,
        false => shared
            .store
            .capture_page(&plan.name, direction, &changes, Some(&cursor), &ids)?,
    };
    if added > 0 {
        map.counters(direction)
            .captured
            .fetch_add(added as u64, Ordering::Relaxed);
        map.wake.notify_one();
    }
    log_keyless(shared, map, direction, keyless)?;
    if copying {
        let read: Vec<&Change> = changes.iter().collect();
        initial::count_read(shared, plan, &read, &[], keyless_rows)?;
        let mut companies: Vec<String> = read
            .iter()
            .map(|c| initial::company_of(plan, &c.key))
            .collect();
        companies.sort();
        companies.dedup();
        initial::count_companies(shared, map, &companies).await?;
        if !more {
            tracing::info!(map = %plan.name, side = side.name(), "The side's initial read is done.");
            map.mark_captured(side);
            // The changes made while it ran are read at once.
            return Ok(true);
        }
    } else if !more {
        initial::read_done(shared, map, side, &copy)?;
    }
    if !more {
        map.mark_captured(side);
    }
    Ok(more)
}

/// Logs why each row of `keyless` was left out.
pub(super) fn log_keyless(
    shared: &Shared,
    map: &MapRuntime,
    direction: crate::checkpoint::Direction,
    keyless: Vec<String>,
) -> Result<(), crate::checkpoint::CheckpointError> {
    if keyless.is_empty() {
        return Ok(());
    }
    let lines: Vec<Activity> = keyless
        .into_iter()
        .map(|detail| {
            Activity::new(map.name(), direction, "", Action::Skipped, detail)
                .step(crate::checkpoint::Step::Capture)
        })
        .collect();
    record::log(shared, map, direction, &lines)
}

/// The deletes a full read of `side` implies: a delete of every key the
/// host holds an image of there that the read's `changes` do not carry.
fn deleted_meanwhile(
    shared: &Shared,
    plan: &MapPlan,
    side: Side,
    changes: &[Change],
    version: &str,
    read_at: u64,
) -> Result<Vec<Change>, FlowError> {
    let present: std::collections::HashSet<String> = changes
        .iter()
        .map(|change| change.key.to_lowercase())
        .collect();
    let modified = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    Ok(shared
        .store
        .images(&plan.name, side.name())?
        .into_iter()
        .filter_map(|image| shape::key_text(plan, side, &image).ok())
        .filter(|key| !present.contains(&key.to_lowercase()))
        .map(|key| Change {
            key,
            version: version.to_owned(),
            operation: Operation::Delete,
            row: Row::new(),
            modified: Some(modified.clone()),
            read_at,
            unreadable: None,
            phase: Phase::Live,
        })
        .collect())
}

/// A page as queued changes, with the ids of the Dataverse rows in it.
async fn changes_of(
    shared: &Shared,
    plan: &MapPlan,
    side: Side,
    page: ChangePage,
    read_at: u64,
) -> Result<Captured, FlowError> {
    let table = &plan.side(side).table;
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut changes = Vec::new();
    let mut ids = Vec::new();
    let mut keyless = Vec::new();
    let known = |time: Option<String>| {
        time.filter(|t| !t.is_empty())
            .unwrap_or_else(|| now.clone())
    };
    // Deletes first: a page reports each row once, in its last state, so a
    // key deleted and made again under a new id is a delete of the old row
    // and an upsert of the new one, in that order.
    let mut times = page.delete_times.into_iter();
    for (deleted, version) in page.deletes.into_iter().zip(page.delete_versions) {
        let modified = known(times.next());
        let (key, which) = match deleted {
            Deleted::Id(id) => (
                shared.store.key_of_id(&plan.name, side.name(), &id)?,
                format!("row {id}"),
            ),
        };
        let Some(key) = key else {
            // Nothing of it reached the other side: there is nothing to
            // delete there, and the log says so.
            keyless.push(format!(
                "a delete of {table} {which} is not synced: the host never synced that row, so the {} side has nothing to delete",
                side.other().name()
            ));
            continue;
        };
        changes.push(Change {
            key,
            version,
            operation: Operation::Delete,
            row: Row::new(),
            modified: Some(modified),
            read_at,
            unreadable: None,
            phase: Phase::Live,
        });
    }
    let mut times = page.upsert_times.into_iter();
    for (raw, version) in page.upserts.into_iter().zip(page.upsert_versions) {
        let modified = known(times.next());
        match upsert_of(shared, plan, side, raw, version, modified, read_at).await? {
            Ok((change, id)) => {
                if let (Some(id), Side::Right) = (id, side) {
                    ids.push((id, change.key.clone()));
                }
                changes.push(change);
            }
            Err(why) => keyless.push(why),
        }
    }
    Ok(Captured {
        changes,
        ids,
        keyless,
    })
}

/// A row read from `side` as the upsert capture queues (in logical form,
/// keyed), with its row id; or why it is not synced (no key).
pub(in crate::sync) async fn upsert_of(
    shared: &Shared,
    plan: &MapPlan,
    side: Side,
    raw: Row,
    version: String,
    modified: String,
    read_at: u64,
) -> Result<Result<(Change, Option<String>), String>, FlowError> {
    let table = &plan.side(side).table;
    let system = shared.system(plan, side);
    let id = raw
        .get(&primary_id(table))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let (row, refused) = refs::to_logical_lenient(&shared.plan(), plan, side, system, raw).await?;
    let unreadable = refused.map(|error| format!("the row could not be read in full: {error}"));
    let key = match shape::key_text(plan, side, &row) {
        Ok(key) => key,
        Err(problem) => {
            let which = id
                .as_deref()
                .map_or_else(String::new, |id| format!(" ({id})"));
            let why = match &unreadable {
                Some(unreadable) => format!("{problem} ({unreadable})"),
                None => problem,
            };
            return Ok(Err(format!(
                "a row of {table}{which} is not synced: {why}; give it a key on the {} side",
                side.name()
            )));
        }
    };
    let change = Change {
        key,
        version,
        operation: Operation::Upsert,
        row,
        modified: Some(modified),
        read_at,
        unreadable,
        phase: Phase::Live,
    };
    Ok(Ok((change, id)))
}

/// What capture reads of a side (`$select`). Dataverse (kept by its delta
/// links): the columns the map and its filter use, lookups as
/// `_column_value`, the row id, `versionnumber` and `modifiedon`. finops
/// (each reconciliation page, and what its hashes cover): the mapped
/// fields, the key's among them, and the filter's.
pub(super) fn select(plan: &MapPlan, side: Side) -> Vec<String> {
    let table = &plan.side(side).table;
    let kind = plan.side(side).kind;
    let filter = plan.side(side).filter.as_ref();
    if kind == SystemKind::Finops {
        let mut fields: Vec<String> = shape::side_fields(plan, side)
            .into_iter()
            .chain(
                filter
                    .into_iter()
                    .flat_map(|f| f.field_names())
                    .map(str::to_owned),
            )
            .collect();
        fields.sort();
        fields.dedup();
        return fields;
    }
    let mut fields: Vec<String> = shape::mappings(plan)
        .filter_map(|mapping| {
            let field = shape::field_on(mapping, side)?;
            Some(match mapping.lookup {
                Some(_) => format!("_{field}_value"),
                None => field.to_owned(),
            })
        })
        .chain(
            filter
                .into_iter()
                .flat_map(|f| f.field_names())
                .map(str::to_owned),
        )
        .chain([
            primary_id(table),
            "versionnumber".into(),
            "modifiedon".into(),
        ])
        .collect();
    fields.sort();
    fields.dedup();
    fields
}

/// A page as the queue takes it.
struct Captured {
    changes: Vec<Change>,
    /// `(row id, key)` of the Dataverse rows.
    ids: Vec<(String, String)>,
    /// Why each row without a key (or delete of a row the host never
    /// synced) was left out.
    keyless: Vec<String>,
}
