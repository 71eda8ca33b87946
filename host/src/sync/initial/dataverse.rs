//! A Dataverse side's reads for its copy that are not the change tracking
//! capture does: the first read of a map that copies nothing, stored
//! without queueing ([`establish_page`]), and a rerun's read of every row
//! ([`rerun_page`]).
//!
//! Dataverse gives a delta link only at the end of a first read of every
//! row (the first `RetrieveEntityChanges` "returns all records", and the
//! Web API documents no way to ask for the token alone:
//! <https://learn.microsoft.com/power-apps/developer/data-platform/use-change-tracking-synchronize-data-external-systems>),
//! so `none` pages through it too, storing each row's id, key and image
//! with the cursor.
//!
//! A rerun reads the table with plain paged queries (`$select` as capture
//! selects, `@odata.nextLink` stored with each page), leaving the delta
//! link where it is: changes made meanwhile, deletes among them, are read
//! from it once the rerun's read is done.

use serde_json::Value;

use crate::checkpoint::{Change, CheckpointError, SideCopy};
use crate::connector::Query;

use super::super::Shared;
use super::super::capture;
use super::super::error::FlowError;
use super::super::runtime::MapRuntime;
use super::super::shape::{self, Row, Side};

/// Stores one page of an established side's first read: the rows' ids,
/// keys and images, and the cursor, with the side marked established at
/// the last page. Nothing is queued.
#[expect(
    clippy::too_many_arguments,
    reason = "the page as capture read it, and the copy it belongs to"
)]
pub(in crate::sync) fn establish_page(
    shared: &Shared,
    map: &MapRuntime,
    side: Side,
    changes: &[Change],
    ids: &[(String, String)],
    cursor: &str,
    more: bool,
    copy: &SideCopy,
) -> Result<(), CheckpointError> {
    let fields = &map.side(side).fields;
    let images: Vec<(&str, Row)> = changes
        .iter()
        .filter(|change| change.operation == crate::checkpoint::Operation::Upsert)
        .map(|change| (change.key.as_str(), shape::restrict(&change.row, fields)))
        .collect();
    let images: Vec<(&str, &Row)> = images.iter().map(|(k, i)| (*k, i)).collect();
    let ids: Vec<(&str, &str)> = ids.iter().map(|(i, k)| (i.as_str(), k.as_str())).collect();
    let mark = match more {
        true => copy.clone(),
        false => super::finished(copy),
    };
    shared.store.establish(
        map.name(),
        side.direction(),
        side.name(),
        Some(cursor),
        &ids,
        &images,
        &[],
        &mark,
    )
}

/// Reads one page of a rerun of the side's copy and queues, as initial-sync
/// (live when modified after the rerun began), every row not copied
/// already; the page's next link is stored with it. Always true: the next
/// read follows at once (a page, or the delta link after the last one).
pub(in crate::sync) async fn rerun_page(
    shared: &Shared,
    map: &MapRuntime,
    side: Side,
    copy: &SideCopy,
) -> Result<bool, FlowError> {
    let plan = &map.plan;
    let direction = side.direction();
    let table = &plan.side(side).table;
    let system = shared.system(plan, side);
    let stamp = shared.store.stamp()?;
    let (link, began) = match &copy.resume {
        Some((link, began)) => (Some(link.as_str()), *began),
        None => (None, stamp),
    };
    let query = Query {
        select: map.side(side).select.clone(),
        filter: None,
    };
    let page = system.query_page(table, &query, link).await?;
    let mut changes = Vec::new();
    let mut ids = Vec::new();
    let mut settled = Vec::new();
    let mut keyless = Vec::new();
    for raw in page.rows {
        let version = match raw.get("versionnumber") {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        let modified = raw
            .get("modifiedon")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        match capture::upsert_of(shared, plan, side, raw, version, modified, stamp).await? {
            Ok((mut change, id)) => {
                if let Some(id) = id {
                    ids.push((id, change.key.clone()));
                }
                if super::copied_already(shared, map, side, &change.key, &change.row)? {
                    settled.push(change.key);
                    continue;
                }
                if super::queued(shared, map, direction, &change.key)? {
                    continue;
                }
                change.phase = super::phase(copy, change.modified.as_deref());
                changes.push(change);
            }
            Err(why) => keyless.push(why),
        }
    }
    // A version captured before and never copied (its change discarded)
    // is queued again.
    let keys: Vec<&str> = changes.iter().map(|c| c.key.as_str()).collect();
    shared.store.forget_latest(map.name(), direction, &keys)?;
    let more = page.next_link.is_some();
    let mark = match page.next_link {
        Some(next) => {
            let mut mark = copy.clone();
            mark.resume = Some((next, began));
            mark
        }
        None => super::finished(copy),
    };
    let ids: Vec<(&str, &str, &str)> = ids
        .iter()
        .map(|(id, key)| (side.name(), id.as_str(), key.as_str()))
        .collect();
    let added = shared.store.capture_copied(
        map.name(),
        direction,
        &changes,
        None,
        &ids,
        side.name(),
        &mark,
    )?;
    if added > 0 {
        map.wake.notify_one();
    }
    let read: Vec<&Change> = changes.iter().collect();
    super::count_read(shared, plan, &read, &settled, keyless.len())?;
    let mut companies: Vec<String> = read
        .iter()
        .map(|c| super::company_of(plan, &c.key))
        .collect();
    companies.sort();
    companies.dedup();
    super::totals::count_companies(shared, map, &companies).await?;
    capture::log_keyless(shared, map, direction, keyless)?;
    if !more {
        tracing::info!(map = %plan.name, side = side.name(), "The side's read for the rerun is done.");
        map.wake.notify_one();
        map.mark_captured(side);
    }
    // After the last page, the delta link's changes made meanwhile are
    // read at once.
    Ok(true)
}
