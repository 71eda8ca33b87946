//! One batch of one map's direction, from the queue to the target and back
//! into the checkpoint store: echo check, conflict policy, filter and
//! filter exit, mapping, plugins, lookups, the write, and the one
//! transaction that records the outcome.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::checkpoint::{
    Activity, Change, Direction, Finish, Operation, QueuedChange, Written, fingerprint,
};
use crate::connector::{Write, WriteOutcome};
use crate::map::{FilterExit, MapPlan};

use super::Shared;
use super::conflict::{self, Settled};
use super::plugins::Fate;
use super::refs::{self, Prepared};
use super::shape::{self, Row, Side};

/// What a batch logs of a change.
const KINDS: [&str; 7] = [
    "written",
    "deleted",
    "echo",
    "filtered",
    "skipped",
    "conflict-lost",
    "parked",
];

/// A key waiting for the row its lookup points at.
#[derive(Debug, Clone)]
pub(super) struct Waiting {
    pub since: Instant,
    pub retry_at: Instant,
}

/// The index in `writes` (the host's writes to the change's side, oldest
/// first) of the write `change` is the echo of, if any. Only the writes that
/// may not have landed when the row was read can come back: the last one
/// recorded before the read, and later ones.
pub(super) fn echoed_write(
    writes: &[Written],
    change: &Change,
    echo_fields: &[String],
) -> Option<usize> {
    let from = writes
        .iter()
        .rposition(|w| w.id < change.read_at)
        .unwrap_or(0);
    let mark = mark_of(&change.operation, &change.row, echo_fields);
    writes[from..]
        .iter()
        .position(|w| w.fingerprint == mark)
        .map(|at| from + at)
}

/// The echo fingerprint of a change: its row over the echo fields, or the
/// deleted mark.
fn mark_of(operation: &Operation, row: &Row, echo_fields: &[String]) -> [u8; 32] {
    match operation {
        Operation::Upsert => fingerprint(row, echo_fields.iter().map(String::as_str)),
        Operation::Delete => deleted_mark(),
    }
}

/// The fingerprint recorded for a row the host deleted.
pub(super) fn deleted_mark() -> [u8; 32] {
    fingerprint(&Row::new(), ["\0deleted"])
}

/// The field lists of one batch's two sides, computed once per batch.
struct Fields {
    /// Every field the source side maps (its image).
    source: Vec<String>,
    /// Every field the target side maps (its image).
    target: Vec<String>,
    /// The target's fields an echo fingerprint covers.
    target_echo: Vec<String>,
}

/// A change that passed the checks, on its way to the target.
struct Planned {
    queued: QueuedChange,
    /// The target's row (logical); `None` deletes.
    row: Option<Row>,
    /// What this write does, for the log.
    what: &'static str,
    /// The target's last image (its key values in their own case, for a
    /// delete).
    known: Option<Row>,
}

/// What one batch records.
#[derive(Default)]
pub(super) struct Outcome {
    done: Vec<QueuedChange>,
    echoes: Vec<(&'static str, String, [u8; 32])>,
    consumed: Vec<(&'static str, String, [u8; 32])>,
    images: Vec<(&'static str, String, Option<Row>)>,
    ids: Vec<(&'static str, String, String)>,
    activity: Vec<Activity>,
}

impl Outcome {
    pub(super) fn log(
        &mut self,
        map: &str,
        direction: Direction,
        key: &str,
        what: &str,
        detail: String,
    ) {
        self.activity.push(Activity {
            map: map.to_owned(),
            direction,
            key: key.to_owned(),
            what: what.to_owned(),
            detail,
        });
    }
}

/// Processes one batch of `map`'s `direction`; returns how many changes
/// it took from the queue (0: nothing to do). A connector error leaves the
/// whole batch queued.
pub(super) async fn process(
    shared: &Shared,
    map: &MapPlan,
    direction: Direction,
    waiting: &mut HashMap<String, Waiting>,
) -> Result<usize, String> {
    let store = &shared.store;
    let source = Side::source_of(direction);
    let target = source.other();
    let now = Instant::now();
    let batch = store
        .next_batch_except(
            &map.name,
            direction,
            shared.plan.engine.batch_size,
            &|key| waiting.get(key).is_some_and(|w| w.retry_at > now),
        )
        .map_err(|e| e.to_string())?;
    if batch.is_empty() {
        return Ok(0);
    }
    let taken = batch.len();
    let fields = Fields {
        source: shape::side_fields(map, source),
        target: shape::side_fields(map, target),
        target_echo: shape::echo_fields(map, target),
    };
    let source_fields = &fields.source;
    let source_echo = shape::echo_fields(map, source);
    let counters = shared.counters(&map.name, direction);
    let mut out = Outcome::default();
    let mut planned = Vec::new();
    let mut parked: Vec<(QueuedChange, String)> = Vec::new();
    let mut echoed: Vec<u64> = Vec::new();

    let source_system = &shared.systems[match source {
        Side::Left => &map.left.system,
        Side::Right => &map.right.system,
    }];
    for mut queued in batch {
        let key = queued.change.key.clone();
        let writes = store
            .writes(&map.name, source.name(), &key)
            .map_err(|e| e.to_string())?;
        let read_at = queued.change.read_at;
        if let Some(at) = echoed_write(&writes, &queued.change, &source_echo) {
            out.consumed
                .push((source.name(), key.clone(), writes[at].fingerprint));
            out.log(
                &map.name,
                direction,
                &key,
                "echo",
                format!("version {}", queued.change.version),
            );
            // The echo of an older write while a newer one is still on its
            // way says nothing of what the side holds now.
            if at + 1 == writes.len() {
                let image = (queued.change.operation == Operation::Upsert)
                    .then(|| shape::restrict(&queued.change.row, source_fields));
                out.images.push((source.name(), key, image));
            }
            echoed.push(queued.seq);
            out.done.push(queued);
            counters.echoes.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        // Read before a write of the host to this side landed: the side may
        // hold the host's write by now, so what it holds decides.
        if writes.iter().any(|w| w.id > read_at) {
            let stamp = store.stamp().map_err(|e| e.to_string())?;
            let now_there = refs::current(&shared.plan, map, source, source_system, &queued.change)
                .await
                .map_err(|e| e.to_string())?;
            // Changes of this key read before now are older than what was
            // just read: they are done with this one.
            for older in store
                .pending(&map.name, direction, &key)
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|q| q.seq != queued.seq && q.change.read_at < stamp)
            {
                out.log(
                    &map.name,
                    direction,
                    &key,
                    "skipped",
                    format!(
                        "version {}: older than the row read again",
                        older.change.version
                    ),
                );
                echoed.push(older.seq);
                out.done.push(older);
                counters.skipped.fetch_add(1, Ordering::Relaxed);
            }
            let now_mark = now_there.as_ref().map_or_else(deleted_mark, |row| {
                mark_of(&Operation::Upsert, row, &source_echo)
            });
            if writes.iter().any(|w| w.fingerprint == now_mark) {
                out.log(
                    &map.name,
                    direction,
                    &key,
                    "conflict-lost",
                    format!(
                        "superseded: version {} was read before the host's write to the {} side landed, and that side now holds the host's write",
                        queued.change.version,
                        source.name()
                    ),
                );
                echoed.push(queued.seq);
                out.done.push(queued);
                counters.conflicts.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            match now_there {
                Some(row) => {
                    queued.change.row = row;
                    queued.change.operation = Operation::Upsert;
                }
                None => {
                    queued.change.row = Row::new();
                    queued.change.operation = Operation::Delete;
                }
            }
            queued.change.read_at = stamp;
        }
        let upsert = queued.change.operation == Operation::Upsert;
        let source_image = upsert.then(|| shape::restrict(&queued.change.row, source_fields));
        let known = store
            .image(&map.name, target.name(), &key)
            .map_err(|e| e.to_string())?;
        let synced = known.is_some();
        let outside = if upsert {
            excluded(map, source, &queued.change.row)
        } else {
            None
        };
        // A change of fields the map does not carry (Dataverse reports a row
        // whatever column changed, and a full read reports every row): the
        // other side has it all already.
        if synced
            && outside.is_none()
            && source_image.is_some()
            && store
                .image(&map.name, source.name(), &key)
                .map_err(|e| e.to_string())?
                == source_image
        {
            out.log(
                &map.name,
                direction,
                &key,
                "skipped",
                format!("version {}: no mapped field changed", queued.change.version),
            );
            out.done.push(queued);
            counters.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        match conflict::settle_conflict(shared, map, direction, &queued, &mut out)? {
            Settled::Goes => {}
            Settled::Lost => {
                counters.conflicts.fetch_add(1, Ordering::Relaxed);
                out.done.push(queued);
                continue;
            }
            Settled::Agree => {
                out.log(
                    &map.name,
                    direction,
                    &key,
                    "skipped",
                    format!(
                        "version {}: both sides already hold the same values",
                        queued.change.version
                    ),
                );
                out.images.push((source.name(), key, source_image));
                out.done.push(queued);
                counters.skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        }
        if !upsert {
            if synced {
                planned.push(Planned {
                    queued,
                    row: None,
                    what: "deleted",
                    known,
                });
            } else {
                out.log(
                    &map.name,
                    direction,
                    &key,
                    "skipped",
                    "deleted, and never synced to the other side".into(),
                );
                out.images.push((source.name(), key, None));
                out.done.push(queued);
                counters.skipped.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        if let Some(reason) = outside {
            if synced && map.on_filter_exit == FilterExit::Delete {
                planned.push(Planned {
                    queued,
                    row: None,
                    what: "filter-exit",
                    known,
                });
            } else {
                let detail = if synced {
                    format!("{reason}; the other side keeps it (on_filter_exit = keep)")
                } else {
                    reason
                };
                out.log(&map.name, direction, &key, "filtered", detail);
                // No image: the row's values did not reach the other side,
                // so its next change must not look unchanged.
                out.images.push((source.name(), key, None));
                out.done.push(queued);
                counters.skipped.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        match shape::map_row(map, source, &queued.change.row) {
            Ok(row) => planned.push(Planned {
                queued,
                row: Some(row),
                what: "written",
                known,
            }),
            Err(problem) => parked.push((queued, problem)),
        }
    }

    run_plugins(
        shared,
        map,
        direction,
        target,
        &mut planned,
        &mut out,
        &mut parked,
    );

    let system = &shared.systems[match target {
        Side::Left => &map.left.system,
        Side::Right => &map.right.system,
    }];
    let mut writes = Vec::new();
    let mut sent = Vec::new();
    let mut not_applied: Vec<String> = Vec::new();
    for plan in planned {
        let key = plan.queued.change.key.clone();
        match refs::prepare(
            &shared.plan,
            map,
            target,
            system,
            &key,
            plan.row.as_ref(),
            plan.known.as_ref(),
        )
        .await
        .map_err(|e| e.to_string())?
        {
            Prepared::Ready(write) => {
                writes.push(write);
                sent.push(plan);
            }
            Prepared::Wait(reason) => {
                let entry = waiting.entry(key.clone()).or_insert(Waiting {
                    since: now,
                    retry_at: now,
                });
                if entry.since.elapsed() >= shared.plan.engine.lookup_wait {
                    waiting.remove(&key);
                    let waited = humantime::format_duration(shared.plan.engine.lookup_wait);
                    parked.push((
                        plan.queued,
                        format!("{reason} (gave up after {waited}: sync that row, then resubmit)"),
                    ));
                } else {
                    let first = entry.retry_at == entry.since;
                    let pause = entry
                        .since
                        .elapsed()
                        .clamp(Duration::from_millis(200), Duration::from_secs(5));
                    entry.retry_at = Instant::now() + pause;
                    if first {
                        shared.emit(&map.name, direction, &key, "waiting", reason);
                    }
                }
            }
        }
    }

    if !writes.is_empty() {
        let outcomes = system
            .write_batch(&writes)
            .await
            .map_err(|e| e.to_string())?;
        for ((plan, write), outcome) in sent.into_iter().zip(&writes).zip(outcomes) {
            let key = plan.queued.change.key.clone();
            match outcome {
                WriteOutcome::Applied { entity_id, .. } => {
                    waiting.remove(&key);
                    if let Some(id) = entity_id.as_deref().and_then(id_in) {
                        out.ids.push((target.name(), id.to_owned(), key.clone()));
                    }
                    record_write(shared, map, direction, &fields, plan, write, &mut out)?;
                }
                // Throttled or a service fault on this part: not the row's
                // fault; it stays queued and the batch is tried again.
                WriteOutcome::Failed { status, service }
                    if status == 408 || status == 429 || status >= 500 =>
                {
                    not_applied.push(format!("{key}: {status} {}", service.message));
                }
                WriteOutcome::Failed { status, service } => {
                    system.forget_ids();
                    parked.push((
                        plan.queued,
                        format!(
                            "the {} write was refused ({status}): {}",
                            target.name(),
                            service.message
                        ),
                    ));
                }
                WriteOutcome::NotApplied => not_applied.push(format!("{key}: not applied")),
            }
        }
    }

    // A key whose change is done or parked waits for no lookup any more.
    for queued in out.done.iter().chain(parked.iter().map(|(q, _)| q)) {
        waiting.remove(&queued.change.key);
    }
    for (queued, reason) in &parked {
        store
            .park(&map.name, direction, queued, reason)
            .map_err(|e| e.to_string())?;
        out.log(
            &map.name,
            direction,
            &queued.change.key,
            "parked",
            reason.clone(),
        );
        counters.parked.fetch_add(1, Ordering::Relaxed);
    }
    let echoes: Vec<(&str, &str, [u8; 32])> = out
        .echoes
        .iter()
        .map(|(s, k, f)| (*s, k.as_str(), *f))
        .collect();
    let consumed: Vec<(&str, &str, [u8; 32])> = out
        .consumed
        .iter()
        .map(|(s, k, f)| (*s, k.as_str(), *f))
        .collect();
    let ids: Vec<(&str, &str, &str)> = out
        .ids
        .iter()
        .map(|(s, i, k)| (*s, i.as_str(), k.as_str()))
        .collect();
    // Every change the side reported that was not an echo was read after
    // the host's writes recorded before the read had landed: those will
    // not echo again. (A pushed event, read at an unknown moment, says
    // nothing of them.)
    let superseded: Vec<(&str, &str, u64)> = out
        .done
        .iter()
        .filter(|q| !echoed.contains(&q.seq) && q.change.read_at > 0)
        .map(|q| (source.name(), q.change.key.as_str(), q.change.read_at))
        .collect();
    let images: Vec<(&str, &str, Option<Row>)> = out
        .images
        .iter()
        .map(|(s, k, i)| (*s, k.as_str(), i.clone()))
        .collect();
    store
        .finish(
            &map.name,
            direction,
            &Finish {
                done: &out.done,
                echoes: &echoes,
                consumed: &consumed,
                superseded: &superseded,
                images: &images,
                ids: &ids,
                activity: &out.activity,
            },
        )
        .map_err(|e| e.to_string())?;
    for line in out.activity {
        tracing::info!(map = %line.map, direction = %line.direction, key = %line.key, what = %line.what, "{}", line.detail);
        let what = KINDS
            .into_iter()
            .find(|kind| *kind == line.what)
            .unwrap_or("other");
        shared.emit(&line.map, line.direction, &line.key, what, line.detail);
    }
    if let Some(first) = not_applied.first() {
        return Err(format!(
            "{} of {} writes were not applied (first: {first}); they stay queued and are tried again",
            not_applied.len(),
            writes.len()
        ));
    }
    Ok(taken)
}

/// Why a row of `side` is outside the map: its side's filter, or a company
/// the map does not stripe; `None` when it syncs.
pub(super) fn excluded(map: &MapPlan, side: Side, row: &Row) -> Option<String> {
    let filter = match side {
        Side::Left => map.left.filter.as_ref(),
        Side::Right => map.right.filter.as_ref(),
    };
    if let Some(filter) = filter
        && !filter.matches(row)
    {
        return Some(format!("does not match the filter `{}`", filter.as_str()));
    }
    if map.companies.is_empty() {
        return None;
    }
    let company = map
        .company_pair()
        .and_then(|pair| shape::field_on(pair, side))
        .and_then(|field| row.get(field))
        .and_then(|value| value.as_str())
        .unwrap_or_default();
    (!map
        .companies
        .iter()
        .any(|c| c.eq_ignore_ascii_case(company)))
    .then(|| {
        format!(
            "company `{company}` is not one of the map's companies ({})",
            map.companies.join(", ")
        )
    })
}

/// Records a confirmed write: the echo fingerprint and image of the target
/// (its last image with what was written), the source's image, the log.
fn record_write(
    shared: &Shared,
    map: &MapPlan,
    direction: Direction,
    fields: &Fields,
    plan: Planned,
    write: &Write,
    out: &mut Outcome,
) -> Result<(), String> {
    let source = Side::source_of(direction);
    let target = source.other();
    let key = plan.queued.change.key.clone();
    let counters = shared.counters(&map.name, direction);
    match &plan.row {
        Some(row) => {
            let mut image = shared
                .store
                .image(&map.name, target.name(), &key)
                .map_err(|e| e.to_string())?
                .unwrap_or_default();
            for field in &fields.target {
                if let Some(value) = row.get(field) {
                    image.insert(field.clone(), value.clone());
                }
            }
            let image = shape::restrict(&image, &fields.target);
            let mark = fingerprint(&image, fields.target_echo.iter().map(String::as_str));
            out.echoes.push((target.name(), key.clone(), mark));
            out.images.push((target.name(), key.clone(), Some(image)));
            out.images.push((
                source.name(),
                key.clone(),
                Some(shape::restrict(&plan.queued.change.row, &fields.source)),
            ));
            counters.written.fetch_add(1, Ordering::Relaxed);
            out.log(
                &map.name,
                direction,
                &key,
                "written",
                format!("{} {}", write.table(), write.key()),
            );
        }
        None => {
            out.echoes
                .push((target.name(), key.clone(), deleted_mark()));
            out.images.push((target.name(), key.clone(), None));
            let source_image = (plan.what == "filter-exit")
                .then(|| shape::restrict(&plan.queued.change.row, &fields.source));
            out.images.push((source.name(), key.clone(), source_image));
            counters.deleted.fetch_add(1, Ordering::Relaxed);
            let detail = if plan.what == "filter-exit" {
                format!("left the filter; deleted {} {}", write.table(), write.key())
            } else {
                format!("{} {}", write.table(), write.key())
            };
            out.log(&map.name, direction, &key, "deleted", detail);
        }
    }
    out.done.push(plan.queued);
    Ok(())
}

/// Runs the map's plugins over the planned upserts: skipped rows are done,
/// failed rows parked.
fn run_plugins(
    shared: &Shared,
    map: &MapPlan,
    direction: Direction,
    target: Side,
    planned: &mut Vec<Planned>,
    out: &mut Outcome,
    parked: &mut Vec<(QueuedChange, String)>,
) {
    let Some(chain) = shared.chains.get(&map.name) else {
        return;
    };
    if chain.is_empty_for(direction) {
        return;
    }
    let company_field = map
        .company_pair()
        .and_then(|pair| shape::field_on(pair, target))
        .map(str::to_owned);
    let upserts: Vec<usize> = (0..planned.len())
        .filter(|&i| planned[i].row.is_some())
        .collect();
    if upserts.is_empty() {
        return;
    }
    let mut rows: Vec<(Option<String>, Row)> = upserts
        .iter()
        .map(|&i| {
            let row = planned[i].row.clone().unwrap_or_default();
            let company = company_field
                .as_ref()
                .and_then(|f| row.get(f))
                .and_then(|v| v.as_str())
                .map(str::to_owned);
            (company, row)
        })
        .collect();
    let fates = chain.run(&map.name, direction, &mut rows);
    let mut gone: Vec<(usize, Result<String, String>)> = Vec::new();
    for ((index, (_, row)), fate) in upserts.into_iter().zip(rows).zip(fates) {
        match fate {
            Fate::Keep => planned[index].row = Some(row),
            Fate::Skip(reason) => gone.push((index, Ok(reason))),
            Fate::Fail(message) => gone.push((index, Err(message))),
        }
    }
    let counters = shared.counters(&map.name, direction);
    for (index, fate) in gone.into_iter().rev() {
        let plan = planned.remove(index);
        let key = plan.queued.change.key.clone();
        match fate {
            Ok(reason) => {
                out.log(&map.name, direction, &key, "skipped", reason);
                counters.skipped.fetch_add(1, Ordering::Relaxed);
                out.done.push(plan.queued);
            }
            Err(message) => parked.push((plan.queued, message)),
        }
    }
}

/// The id in an entity URL: `…/accounts(<guid>)` → `<guid>`.
fn id_in(url: &str) -> Option<&str> {
    let inner = url.strip_suffix(')')?;
    let id = &inner[inner.rfind('(')? + 1..];
    uuid::Uuid::parse_str(id).is_ok().then_some(id)
}
