//! finops capture by reconciliation: the data entities' OData documents no
//! change feed (no row versions, no deleted rows), so a side on finops is
//! read in full, a page at a time, and each row compared with the hash the
//! checkpoint store keeps of what that key last showed
//! ([`Checkpoints::capture_seen`](crate::checkpoint::Checkpoints::capture_seen)).
//!
//! - [`Pass`]: one read of the entity from its first page to its last
//!   (`cross-company=true`, which the connector always sends; `$select` of
//!   the side's mapped, key and filter fields), one page per call of
//!   [`read_page`]. A map striped by company (`companies`) is read one
//!   company at a time (`$filter=dataAreaId eq '…'`), in the map's order,
//!   so the rows of companies it does not sync are never read, and a copy
//!   resumed after a crash goes on in the company it was reading. Only a row whose hash changed (or that the host never
//!   saw) is queued; an unchanged row queues nothing. The pass holds the
//!   keys it saw, never the rows.
//! - At the last page, a key with a stored hash the pass did not return is
//!   read again by key: still there (a page boundary moved under the read),
//!   it is compared like any row; gone, its delete is queued. A hash stored
//!   after the pass began came from a data event meanwhile and is left to
//!   the next pass.
//! - [`compare`] and [`queue`] are shared with the receiver of data events,
//!   which reads the row an event names again and queues what the read
//!   shows, never the event's values.
//!
//! Versions: finops gives none through OData, so a change's version and
//! `read_at` are the host's stamp taken before the read
//! ([`Checkpoints::stamp`](crate::checkpoint::Checkpoints::stamp)):
//! numeric and monotonic, so an older read captured after a newer one is
//! not queued. The first pass is the initial copy (its rows classified by
//! `initial::classify`); it stores its next link and stamp with each page,
//! so after a crash it goes on from the page after the last one queued.
//! Any other pass dropped midway (the map stops, the host crashes) starts
//! again from the first page; the hashes make the rows it queued already
//! compare unchanged.
//!
//! Pages: <https://learn.microsoft.com/dynamics365/fin-ops-core/dev-itpro/data-entities/odata>
//! (`cross-company`, `$select`, paging).

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use chrono::{SecondsFormat, Utc};
use serde_json::Value;

use crate::checkpoint::{
    Action, Activity, Change, CheckpointError, Operation, Phase, RowHash, Seen, SideCopy,
    fingerprint,
};
use crate::connector::{Key, Query};
use crate::map::MapPlan;

use super::super::error::FlowError;
use super::super::runtime::MapRuntime;
use super::super::shape::{self, Row, Side};
use super::super::{Shared, initial, record};

/// One reconciliation pass in progress over a finops side.
#[derive(Debug, Default)]
pub(in crate::sync) struct Pass {
    /// The next page's link; `None` before the first page.
    next_link: Option<String>,
    /// The stamp taken before the pass's first page.
    began: Option<u64>,
    /// The keys the pass returned so far, in lower case.
    seen: HashSet<String>,
    /// The pass goes on from where the copy's pass stopped before a
    /// restart (its link may have expired).
    resumed: bool,
    /// On a map striped by company, the index (in the map's `companies`)
    /// of the company being read.
    company: usize,
}

/// The companies a pass over `side` reads one at a time, and the field of
/// the side that holds a row's company: `None` unless the map is striped
/// by company.
fn stripes(plan: &MapPlan, side: Side) -> Option<(&str, &[String])> {
    if plan.companies.is_empty() {
        return None;
    }
    let field = plan
        .company_pair()
        .and_then(|pair| shape::field_on(pair, side))?;
    Some((field, &plan.companies))
}

/// A finops row read, compared with what its key last showed.
#[derive(Debug)]
pub(in crate::sync) enum Compared {
    /// New or changed: the change to queue, with its hash.
    Changed(Box<Seen>),
    /// The same as last seen: nothing to queue (its key text).
    Same(String),
    /// No usable key: why, for the activity log.
    Keyless(String),
}

/// Reads the next page of `map`'s `side` and queues what changed; at the
/// last page also the deletes the pass found. True when more pages follow.
/// Cancelled (dropped in a `select!`), the page read is lost and nothing of
/// it was queued: the pass goes on from the same page at the next call.
pub(in crate::sync) async fn read_page(
    shared: &Shared,
    map: &MapRuntime,
    side: Side,
    pass: &mut Pass,
) -> Result<bool, FlowError> {
    let plan = &map.plan;
    let table = &plan.side(side).table;
    let system = shared.system(plan, side);
    let select = &map.side(side).select;
    let copy = initial::prepare(shared, map, side).await?;
    let reading = initial::Reading::of(&copy);
    if reading != initial::Reading::Live {
        // A copy (re)begun after this pass did: it reads from the first page.
        if pass.began.is_some_and(|began| began < copy.began_stamp) {
            *pass = Pass::default();
        }
        // A new pass of a copy goes on where the copy's pass stopped.
        if let (None, Some((link, began))) = (pass.began, &copy.resume) {
            pass.next_link = (!link.is_empty()).then(|| link.clone());
            pass.began = Some(*began);
            pass.resumed = true;
            pass.company = stripes(plan, side)
                .zip(copy.company.as_ref())
                .and_then(|((_, companies), company)| companies.iter().position(|c| c == company))
                .unwrap_or(0);
        }
    }
    let stamp = shared.store.stamp()?;
    let began = *pass.began.get_or_insert(stamp);
    let stripes = stripes(plan, side);
    let query = Query {
        select: select.clone(),
        filter: stripes.and_then(|(field, companies)| {
            Some(shape::company_eq(field, companies.get(pass.company)?))
        }),
    };
    let page = match system
        .query_page(table, &query, pass.next_link.as_deref())
        .await
    {
        Ok(page) => page,
        Err(error) if pass.resumed && error.refusal().is_some() => {
            tracing::warn!(map = %plan.name, side = side.name(), %error, "The copy's pass cannot go on from where it stopped; it reads from the first page again (rows queued already compare unchanged).");
            *pass = Pass::default();
            let mut restart = copy.clone();
            restart.resume = None;
            shared
                .store
                .set_side_copy(map.name(), side.name(), &restart)?;
            return Ok(true);
        }
        Err(error) => return Err(error.into()),
    };
    pass.resumed = false;
    let mut read = initial::PageRead::default();
    for raw in page.rows {
        let key = initial::classify(shared, map, side, select, &raw, stamp, reading, &mut read)?;
        if let Some(key) = key {
            pass.seen.insert(key.to_lowercase());
        }
    }
    // The company read next: this one while it has pages, then the next.
    let next_company = page.next_link.is_none()
        && stripes.is_some_and(|(_, companies)| pass.company + 1 < companies.len());
    let company_index = pass.company + usize::from(next_company);
    let resume = match (&page.next_link, next_company) {
        (Some(link), _) => Some((link.clone(), began)),
        (None, true) => Some((String::new(), began)),
        (None, false) => None,
    };
    let company = stripes.and_then(|(_, companies)| companies.get(company_index).cloned());
    read.store(shared, map, side, &copy, resume, company)
        .await?;
    if let Some(link) = page.next_link {
        pass.next_link = Some(link);
        return Ok(true);
    }
    if next_company {
        pass.company = company_index;
        pass.next_link = None;
        return Ok(true);
    }
    let gone = deleted(shared, map, side, pass, began).await?;
    if gone > 0 {
        tracing::info!(map = %plan.name, side = side.name(), deleted = gone, "Rows the host knew are gone from finops; their deletes are queued.");
    }
    *pass = Pass::default();
    map.mark_captured(side);
    if reading != initial::Reading::Live {
        shared
            .store
            .set_side_copy(map.name(), side.name(), &initial::finished(&copy))?;
        tracing::info!(map = %plan.name, side = side.name(), "The side's initial read is done.");
        map.wake.notify_one();
        // A pass at once finds what changed while the copy read.
        return Ok(true);
    }
    initial::read_done(shared, map, side, &copy)?;
    Ok(false)
}

/// The end of a pass: every key with a stored hash stored before the pass
/// began that the pass did not return, read again by key; the deletes (and
/// any row found after all) queued. Returns how many deletes were queued.
async fn deleted(
    shared: &Shared,
    map: &MapRuntime,
    side: Side,
    pass: &Pass,
    began: u64,
) -> Result<usize, FlowError> {
    let plan = &map.plan;
    let table = &plan.side(side).table;
    let system = shared.system(plan, side);
    let select = &map.side(side).select;
    let mut missing = Vec::new();
    for hash in shared.store.row_hashes(&plan.name, side.name()) {
        let hash = hash?;
        let Ok(key) = shape::key_text(plan, side, &hash.key) else {
            continue;
        };
        if hash.stamp < began && !pass.seen.contains(&key.to_lowercase()) {
            missing.push((key, hash.key));
        }
    }
    let mut changes = Vec::new();
    let mut keyless = Vec::new();
    let mut deletes = 0;
    for (text, fields) in missing {
        let key = Key::from_json(&fields).map_err(|problem| CheckpointError::Corrupt {
            key: format!("{}/{}/{text}", plan.name, side.name()),
            detail: format!("the stored key fields are not a finops key: {problem}"),
        })?;
        let stamp = shared.store.stamp()?;
        match system.get(table, &key).await? {
            Some(raw) => match compare(shared, plan, side, select, &raw, stamp)? {
                Compared::Changed(seen) => changes.push(*seen),
                Compared::Same(_) => {}
                Compared::Keyless(why) => keyless.push(why),
            },
            None => {
                deletes += 1;
                changes.push(gone(text, stamp));
            }
        }
    }
    queue(shared, map, side, &changes, keyless)?;
    Ok(deletes)
}

/// `raw`, read from `side` after `stamp` was taken, restricted to `select`
/// and compared with the hash stored for its key.
pub(in crate::sync) fn compare(
    shared: &Shared,
    plan: &MapPlan,
    side: Side,
    select: &[String],
    raw: &Row,
    stamp: u64,
) -> Result<Compared, FlowError> {
    let seen = match seen_of(plan, side, select, raw, stamp) {
        Ok(seen) => seen,
        Err(why) => return Ok(Compared::Keyless(why)),
    };
    match stored_same(shared, plan, side, &seen)? {
        Some(true) => Ok(Compared::Same(seen.change.key)),
        _ => Ok(Compared::Changed(seen)),
    }
}

/// Whether the hash stored for `seen`'s key is its hash: `None` when the
/// host stored none (it never saw the row).
pub(in crate::sync) fn stored_same(
    shared: &Shared,
    plan: &MapPlan,
    side: Side,
    seen: &Seen,
) -> Result<Option<bool>, CheckpointError> {
    let stored = shared
        .store
        .row_hash(&plan.name, side.name(), &seen.change.key)?;
    Ok(stored.map(|stored| Some(&stored.hash) == seen.hash.as_ref().map(|h| &h.hash)))
}

/// `raw`, read from `side` after `stamp` was taken, restricted to `select`,
/// as the upsert to queue with its hash; or why it has no key.
pub(in crate::sync) fn seen_of(
    plan: &MapPlan,
    side: Side,
    select: &[String],
    raw: &Row,
    stamp: u64,
) -> Result<Box<Seen>, String> {
    let row = shape::restrict(raw, select);
    let key = shape::key_text(plan, side, &row).map_err(|problem| {
        format!(
            "a row of {} is not synced: {problem}; give it a key on the {} side",
            plan.side(side).table,
            side.name()
        )
    })?;
    let hash = fingerprint(&row, select.iter().map(String::as_str));
    let key_fields = plan
        .key
        .iter()
        .filter_map(|pair| shape::field_on(pair, side))
        .map(|field| {
            (
                field.to_owned(),
                row.get(field).cloned().unwrap_or(Value::Null),
            )
        })
        .collect();
    Ok(Box::new(Seen {
        change: Change {
            key,
            version: stamp.to_string(),
            operation: Operation::Upsert,
            row,
            modified: Some(now()),
            read_at: stamp,
            unreadable: None,
            phase: Phase::Live,
        },
        hash: Some(RowHash {
            hash,
            stamp,
            key: key_fields,
        }),
    }))
}

/// The delete of `key`, found gone by a read after `stamp` was taken.
pub(in crate::sync) fn gone(key: String, stamp: u64) -> Seen {
    Seen {
        change: Change {
            key,
            version: stamp.to_string(),
            operation: Operation::Delete,
            row: Row::new(),
            modified: Some(now()),
            read_at: stamp,
            unreadable: None,
            phase: Phase::Live,
        },
        hash: None,
    }
}

/// Queues `changes` of `map`'s `side` with their hashes (one flushed
/// transaction), counts and wakes the map, and logs why each of `keyless`
/// was left out. Returns how many changes were new.
pub(in crate::sync) fn queue(
    shared: &Shared,
    map: &MapRuntime,
    side: Side,
    changes: &[Seen],
    keyless: Vec<String>,
) -> Result<usize, CheckpointError> {
    queue_marked(shared, map, side, changes, keyless, None)
}

/// [`queue`], the side's initial copy marked `copy` in the same
/// transaction (how far its pass got).
pub(in crate::sync) fn queue_marked(
    shared: &Shared,
    map: &MapRuntime,
    side: Side,
    changes: &[Seen],
    keyless: Vec<String>,
    copy: Option<&SideCopy>,
) -> Result<usize, CheckpointError> {
    let direction = side.direction();
    let store = &shared.store;
    let (name, side_name) = (map.name(), side.name());
    let added = match (changes.is_empty(), copy) {
        (true, None) => 0,
        (true, Some(copy)) => {
            store.set_side_copy(name, side_name, copy)?;
            0
        }
        (false, None) => store.capture_seen(name, direction, side_name, changes)?,
        (false, Some(copy)) => {
            store.capture_seen_copied(name, direction, side_name, changes, copy)?
        }
    };
    if added > 0 {
        map.counters(direction)
            .captured
            .fetch_add(added as u64, Ordering::Relaxed);
        map.wake.notify_one();
    }
    if !keyless.is_empty() {
        let lines: Vec<Activity> = keyless
            .into_iter()
            .map(|detail| {
                Activity::new(map.name(), direction, "", Action::Skipped, detail)
                    .step(crate::checkpoint::Step::Capture)
            })
            .collect();
        record::log(shared, map, direction, &lines)?;
    }
    Ok(added)
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}
