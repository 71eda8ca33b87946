//! Capture: one task per map side reads the source's changes (Dataverse
//! delta links, finops row versions) and queues them with the new cursor
//! in one flushed transaction before reading on. The first read of a side
//! with no cursor is the initial copy: every row.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde_json::Value;

use crate::checkpoint::{Activity, Change, Finish, Operation};
use crate::connector::{ChangePage, ConnectorError, Deleted, Key};
use crate::map::MapPlan;

use super::Shared;
use super::refs;
use super::shape::{self, Row, Side};
use super::system::primary_id;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Runs the capture of `map`'s `side` until shutdown.
pub(super) async fn run(shared: Arc<Shared>, map: String, side: Side, webhook: bool) {
    let mut shutdown = shared.shutdown.clone();
    let Some(plan) = shared.plan.map(&map) else {
        return;
    };
    let system_name = match side {
        Side::Left => &plan.left.system,
        Side::Right => &plan.right.system,
    };
    let pushed = webhook
        && side == Side::Left
        && shared
            .plan
            .systems
            .get(system_name)
            .is_some_and(|s| s.events_secret.is_some());
    let interval = if pushed {
        shared.plan.engine.catch_all_interval
    } else {
        shared.plan.engine.poll_interval
    };
    let mut backoff = Duration::from_millis(500);
    loop {
        if shared.stopping() {
            return;
        }
        // A read stuck in retries (throttling, an outage) must not hold up
        // shutdown; dropping it is safe: nothing was queued yet.
        let read = tokio::select! {
            read = read_once(&shared, plan, side) => read,
            _ = shutdown.changed() => return,
        };
        let wait = match read {
            Ok(more) => {
                backoff = Duration::from_millis(500);
                if more { Duration::ZERO } else { interval }
            }
            Err(error) => {
                tracing::warn!(map = %map, side = side.name(), %error, "Capture failed; retrying.");
                backoff = (backoff * 2).min(Duration::from_secs(30));
                backoff
            }
        };
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Reads one page and queues it; true when more is ready now.
async fn read_once(shared: &Shared, plan: &MapPlan, side: Side) -> Result<bool, String> {
    let direction = side.direction();
    let (system_name, table) = match side {
        Side::Left => (&plan.left.system, &plan.left.table),
        Side::Right => (&plan.right.system, &plan.right.table),
    };
    let system = shared
        .systems
        .get(system_name)
        .ok_or_else(|| format!("system `{system_name}` is not connected"))?;
    let cursor = shared
        .store
        .cursor(&plan.name, direction)
        .map_err(|e| e.to_string())?;
    let select = select(plan, side, table);
    let mut read_at = shared.store.stamp().map_err(|e| e.to_string())?;
    let page = match system.changes(table, &select, cursor.as_deref()).await {
        Ok(page) => page,
        // An expired delta link: start tracking again, every row; the queue
        // skips versions already captured.
        Err(ConnectorError::Rejected { status: 400, .. }) if cursor.is_some() => {
            tracing::warn!(map = %plan.name, side = side.name(), "The change cursor expired; reading the table again.");
            system
                .changes(table, &select, None)
                .await
                .map_err(|e| e.to_string())?
        }
        Err(error) => return Err(error.to_string()),
    };
    let page = if page.reset {
        // The source no longer keeps the changes after our cursor: read the
        // table in full (each row queued again, dropped as an echo where the
        // other side has it already) and poll on from the cursor it gave.
        // Rows the host knows on this side that the read does not return
        // were deleted meanwhile.
        tracing::warn!(map = %plan.name, side = side.name(), "The change cursor is older than the source keeps; reading the table in full.");
        read_at = shared.store.stamp().map_err(|e| e.to_string())?;
        let rows = system
            .query_all(table, &crate::connector::Query::default())
            .await
            .map_err(|e| e.to_string())?;
        let present: std::collections::HashSet<String> = rows
            .iter()
            .filter_map(|row| shape::key_text(plan, side, row).ok())
            .map(|key| key.to_lowercase())
            .collect();
        let gone: Vec<Key> = shared
            .store
            .images(&plan.name, side.name())
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter_map(|image| shape::key_text(plan, side, &image).ok().map(|k| (k, image)))
            .filter(|(key, _)| !present.contains(&key.to_lowercase()))
            .map(|(_, image)| key_of_image(plan, side, &image))
            .collect();
        let count = rows.len();
        let deleted = gone.len();
        ChangePage {
            upserts: rows,
            // Versions as of the read: an event older than it is not queued.
            upsert_versions: vec![page.next_cursor.clone(); count],
            deletes: gone.into_iter().map(Deleted::Key).collect(),
            delete_versions: vec![page.next_cursor.clone(); deleted],
            next_cursor: page.next_cursor,
            ..ChangePage::default()
        }
    } else {
        page
    };
    let more = page.more;
    let cursor = page.next_cursor.clone();
    let Captured {
        changes,
        ids,
        keyless,
    } = changes_of(shared, plan, side, page, read_at).await?;
    let ids: Vec<(&str, &str, &str)> = ids
        .iter()
        .map(|(id, key)| (side.name(), id.as_str(), key.as_str()))
        .collect();
    let added = shared
        .store
        .capture_page(&plan.name, direction, &changes, Some(&cursor), &ids)
        .map_err(|e| e.to_string())?;
    if added > 0 {
        shared
            .counters(&plan.name, direction)
            .captured
            .fetch_add(added as u64, Ordering::Relaxed);
        if let Some(wake) = shared.wake.get(&plan.name) {
            wake.notify_one();
        }
    }
    if !keyless.is_empty() {
        let lines: Vec<Activity> = keyless
            .into_iter()
            .map(|detail| Activity {
                map: plan.name.clone(),
                direction,
                key: String::new(),
                what: "skipped".into(),
                detail,
            })
            .collect();
        shared
            .store
            .finish(
                &plan.name,
                direction,
                &Finish {
                    activity: &lines,
                    ..Finish::default()
                },
            )
            .map_err(|e| e.to_string())?;
        shared
            .counters(&plan.name, direction)
            .skipped
            .fetch_add(lines.len() as u64, Ordering::Relaxed);
        for line in lines {
            tracing::warn!(map = %line.map, direction = %line.direction, "{}", line.detail);
            shared.emit(&line.map, direction, "", "skipped", line.detail);
        }
    }
    if !more {
        shared.mark_captured(&plan.name, side);
    }
    Ok(more)
}

/// A page as queued changes, with the ids of the Dataverse rows in it.
async fn changes_of(
    shared: &Shared,
    plan: &MapPlan,
    side: Side,
    page: ChangePage,
    read_at: u64,
) -> Result<Captured, String> {
    let system = match side {
        Side::Left => &shared.systems[&plan.left.system],
        Side::Right => &shared.systems[&plan.right.system],
    };
    let table = match side {
        Side::Left => &plan.left.table,
        Side::Right => &plan.right.table,
    };
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut changes = Vec::new();
    let mut ids = Vec::new();
    let mut keyless = Vec::new();
    let id_field = primary_id(table);
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
        let key = match deleted {
            Deleted::Id(id) => shared
                .store
                .key_of_id(&plan.name, side.name(), &id)
                .map_err(|e| e.to_string())?,
            Deleted::Key(key) => key_text_of(plan, side, &key),
        };
        let Some(key) = key else {
            continue;
        };
        changes.push(Change {
            key,
            version,
            operation: Operation::Delete,
            row: Row::new(),
            modified: Some(modified),
            read_at,
        });
    }
    let mut times = page.upsert_times.into_iter();
    for (raw, version) in page.upserts.into_iter().zip(page.upsert_versions) {
        let modified = known(times.next());
        let id = raw
            .get(&id_field)
            .and_then(Value::as_str)
            .map(str::to_owned);
        let row = refs::to_logical(&shared.plan, plan, side, system, raw)
            .await
            .map_err(|e| e.to_string())?;
        let key = match shape::key_text(plan, side, &row) {
            Ok(key) => key,
            Err(problem) => {
                let which = id
                    .as_deref()
                    .map_or_else(String::new, |id| format!(" ({id})"));
                keyless.push(format!(
                    "a row of {table}{which} is not synced: {problem}; give it a key on the {} side",
                    side.name()
                ));
                continue;
            }
        };
        if let (Some(id), Side::Right) = (id, side) {
            ids.push((id, key.clone()));
        }
        changes.push(Change {
            key,
            version,
            operation: Operation::Upsert,
            row,
            modified: Some(modified),
            read_at,
        });
    }
    Ok(Captured {
        changes,
        ids,
        keyless,
    })
}

/// What to read of a Dataverse table (`$select`, kept by its delta links):
/// the columns the map and its filter use, lookups as `_column_value`, the
/// row id, `versionnumber` and `modifiedon`. Empty (every field) for finops.
fn select(plan: &MapPlan, side: Side, table: &str) -> Vec<String> {
    let kind = match side {
        Side::Left => plan.left.kind,
        Side::Right => plan.right.kind,
    };
    if kind != crate::map::SystemKind::Dataverse {
        return Vec::new();
    }
    let filter = match side {
        Side::Left => plan.left.filter.as_ref(),
        Side::Right => plan.right.filter.as_ref(),
    };
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
    /// Why each row without a key was left out.
    keyless: Vec<String>,
}

/// The key of a row from its image on `side` (finops: the left key fields).
fn key_of_image(plan: &MapPlan, side: Side, image: &Row) -> Key {
    plan.key.iter().fold(Key::new(), |key, pair| {
        let field = shape::field_on(pair, side).unwrap_or_default();
        let value = image.get(field).and_then(Value::as_str).unwrap_or_default();
        key.text(field, value)
    })
}

/// The key text of a finops key as reported in a delete.
pub(super) fn key_text_of(plan: &MapPlan, side: Side, key: &Key) -> Option<String> {
    shape::key_text(plan, side, &key.to_json()).ok()
}
