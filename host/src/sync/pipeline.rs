//! One batch of one map's direction, from the queue to the target and back
//! into the checkpoint store: each change decided (`decide`), the map's
//! plugins over the rows to write, their lookups resolved, the `$batch`
//! write, and the one recorder (`record`) that logs, counts and finishes
//! the batch in one transaction.

use std::time::Instant;

use futures_util::StreamExt;
use serde_json::Value;

use crate::checkpoint::{
    Action, CheckpointError, Direction, ErrorClass, Operation, QueuedChange, Step, fingerprint,
};
use crate::connector::{ConnectorError, Write, WriteOutcome};

use super::Shared;
use super::attempts::WRITE_ATTEMPTS;
use super::decide::{self, Planned, Verdict};
use super::echo::{deleted_mark, mark_of};
use super::error::FlowError;
use super::keys::{Claim, Wait};
use super::plugins::Fate;
use super::record::{self, Recorder};
use super::refs::{self, Prepared};
use super::runtime::{MapRuntime, MapState};
use super::shape::{self, Row, Side};
use super::system::{System, primary_id};

/// A change on its way to the target, with its plan.
struct Outgoing {
    queued: QueuedChange,
    planned: Planned,
}

/// What a write leaves on the target: the image of the target's mapped
/// fields (its last image with what is written; `None` once deleted) and
/// that image's echo fingerprint (the deleted mark for a delete).
struct Landing {
    image: Option<Row>,
    mark: [u8; 32],
}

/// The next batch of `map`'s `direction`, its keys claimed: the first
/// queued change of each key that no batch in flight carries, no lookup
/// holds and is not parked (empty: nothing to do now).
pub(super) fn take(
    shared: &Shared,
    map: &MapRuntime,
    direction: Direction,
) -> Result<(Vec<QueuedChange>, Claim), CheckpointError> {
    let now = Instant::now();
    let batch = shared.store.next_batch_except(
        map.name(),
        direction,
        shared.plan().engine.batch_size,
        &|key| map.keys.held(key, now),
    )?;
    let claim = map.keys.claim(&batch);
    Ok((batch, claim))
}

/// Processes one `batch` of `map`'s `direction` (from [`take`]); returns
/// how many changes it finished (closed or parked). A connector error
/// leaves the whole batch queued.
pub(super) async fn process(
    shared: &Shared,
    map: &MapRuntime,
    direction: Direction,
    batch: Vec<QueuedChange>,
) -> Result<usize, FlowError> {
    let plan = &map.plan;
    let source = Side::source_of(direction);
    let target = source.other();
    if batch.is_empty() {
        return Ok(0);
    }
    let mut record = Recorder::new(&plan.name, direction);
    let mut outgoing = Vec::new();
    for queued in batch {
        let decision = decide::decide(shared, map, source, queued).await?;
        for older in decision.retired {
            let detail = format!(
                "version {}: older than the row read again",
                older.change.version
            );
            record.close_unreported(older, Action::Skipped, Step::Capture, detail);
        }
        let key = decision.queued.change.key.clone();
        for (side, image) in decision.images {
            record.image(side, &key, image);
        }
        for rival in decision.rivals {
            record.close_rival(rival);
        }
        if let Some(mark) = decision.consumed {
            record.consume(source, &key, mark);
        }
        match decision.verdict {
            Verdict::Close(action, step, detail) => {
                record.close(decision.queued, action, step, detail);
            }
            Verdict::CloseUnreported(action, step, detail) => {
                record.close_unreported(decision.queued, action, step, detail);
            }
            Verdict::Park(step, class, reason) => record.park(decision.queued, step, class, reason),
            Verdict::Hold(why) => {
                tracing::debug!(map = %plan.name, %direction, key = %key, "{why}");
            }
            Verdict::Send(planned) => outgoing.push(Outgoing {
                queued: decision.queued,
                planned,
            }),
        }
    }

    run_plugins(map, direction, target, &mut outgoing, &mut record);

    let system = shared.system(plan, target);
    let mut writes = Vec::new();
    let mut sent = Vec::new();
    let mut not_applied: Vec<String> = Vec::new();
    for out in outgoing {
        let key = out.queued.change.key.clone();
        let prepared = refs::prepare(
            &shared.plan(),
            plan,
            target,
            system,
            &key,
            out.planned.row.as_ref(),
            out.planned.known.as_ref(),
        )
        .await;
        // A refusal of this row's lookups is the row's fault: it is
        // parked, and the other rows go on.
        let prepared = match prepared {
            Ok(prepared) => prepared,
            Err(error) if error.refusal().is_some() => {
                record.park(
                    out.queued,
                    Step::Lookup,
                    error
                        .status()
                        .map_or(ErrorClass::Application, ErrorClass::of_status),
                    format!(
                        "its lookups could not be resolved on the {} side: {error}",
                        target.name()
                    ),
                );
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        match prepared {
            Prepared::Ready(write) => {
                let landing = landing(shared, map, target, &key, out.planned.row.as_ref())?;
                writes.push(write);
                sent.push((out, landing));
            }
            Prepared::Wait(reason) => match map.keys.wait_patiently(
                &key,
                shared.plan().engine.lookup_wait,
                idle_parent(shared, map).is_some(),
            ) {
                Wait::GaveUp => {
                    let waited = humantime::format_duration(shared.plan().engine.lookup_wait);
                    record.park(
                        out.queued,
                        Step::Lookup,
                        ErrorClass::Application,
                        format!("{reason} (gave up after {waited}: sync that row, then resubmit)"),
                    );
                }
                Wait::First => record::waiting(shared, &plan.name, direction, &key, reason),
                Wait::Again => {}
            },
        }
    }

    let (writes, sent) = landed_before(shared, map, direction, writes, sent, &mut record).await?;
    if !writes.is_empty() {
        // Step 3a of the checkpoint protocol: the intents are durable
        // before the first byte of the batch is sent.
        let intents: Vec<(u64, [u8; 32])> = sent
            .iter()
            .map(|(out, landing)| (out.queued.seq, landing.mark))
            .collect();
        shared.store.intend(map.name(), direction, &intents)?;
        let outcomes = write(system, &writes).await?;
        for (((out, landing), write), outcome) in sent.into_iter().zip(&writes).zip(outcomes) {
            let key = out.queued.change.key.clone();
            match outcome {
                WriteOutcome::Applied { entity_id, .. } => {
                    map.keys.resolved(&key);
                    if let Some(id) = entity_id.as_deref().and_then(id_in) {
                        record.id(target, id, &key);
                    }
                    record_write(map, direction, out, landing, write, false, &mut record);
                }
                // Throttled or a service fault on this part: it stays
                // queued and the batch is tried again, until the service
                // has failed this one write `WRITE_ATTEMPTS` times in a
                // row; then it is parked, of class `system`.
                WriteOutcome::Failed { status, service }
                    if ErrorClass::of_status(status) == ErrorClass::System =>
                {
                    let failed = map.attempts.failed(direction, out.queued.seq);
                    if failed < WRITE_ATTEMPTS {
                        not_applied.push(format!(
                            "{key}: {status} {} (attempt {failed} of {WRITE_ATTEMPTS})",
                            service.message
                        ));
                        continue;
                    }
                    record.park(
                        out.queued,
                        Step::Write,
                        ErrorClass::System,
                        format!(
                            "the {} service failed the write {failed} times in a row ({status}): {}; retry it once the service is healthy",
                            target.name(),
                            service.message
                        ),
                    );
                }
                // Refused for what it carries: a 412 is a stale version or
                // a duplicate key (Dataverse answers a condition that does
                // not hold with 412 Precondition Failed,
                // <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/perform-conditional-operations-using-web-api>),
                // class `concurrency`; the same write would be refused
                // again, so it is parked, as any other refusal.
                WriteOutcome::Failed { status, service } => {
                    system.forget_ids();
                    record.park(
                        out.queued,
                        Step::Write,
                        ErrorClass::of_status(status),
                        format!(
                            "the {} write was refused ({status}): {}",
                            target.name(),
                            service.message
                        ),
                    );
                }
                WriteOutcome::NotApplied => not_applied.push(format!("{key}: not applied")),
            }
        }
    }

    // A key whose change is done or parked waits for no lookup any more,
    // and its change's failed attempts are forgotten.
    for queued in record.finished() {
        map.keys.resolved(&queued.change.key);
        map.attempts.done(direction, queued.seq);
    }
    let finished = record.finish(shared, map)?;
    if let Some(first) = not_applied.first() {
        return Err(FlowError::NotApplied {
            count: not_applied.len(),
            total: writes.len(),
            first: first.clone(),
        });
    }
    Ok(finished)
}

/// Writes `writes` in one `$batch`. A `$batch` the service refuses as a
/// whole (a 4xx for what it carries) is sent again one write per `$batch`,
/// so that the row at fault is found: its refusal becomes its outcome, and
/// the other rows are written.
async fn write(system: &System, writes: &[Write]) -> Result<Vec<WriteOutcome>, FlowError> {
    let refused = match system.write_batch(writes).await {
        Ok(outcomes) => return Ok(outcomes),
        Err(error) => match error.refusal() {
            Some((status, service)) => (status, service.clone()),
            None => return Err(error.into()),
        },
    };
    if writes.len() == 1 {
        let (status, service) = refused;
        return Ok(vec![WriteOutcome::Failed { status, service }]);
    }
    tracing::warn!(
        table = %writes[0].table(),
        rows = writes.len(),
        status = refused.0,
        "The service refused a $batch as a whole; writing its rows one by one to find the one at fault."
    );
    let mut outcomes = Vec::with_capacity(writes.len());
    for one in writes {
        let outcome = match system.write_batch(std::slice::from_ref(one)).await {
            Ok(mut outcome) => outcome.pop().unwrap_or(WriteOutcome::NotApplied),
            Err(error) => match error.refusal() {
                Some((status, service)) => WriteOutcome::Failed {
                    status,
                    service: service.clone(),
                },
                None => return Err(error.into()),
            },
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// What writing `row` (`None`: a delete) for `key` leaves on `target`:
/// the target's last image with the written fields, restricted to its
/// mapped fields, and its echo fingerprint.
fn landing(
    shared: &Shared,
    map: &MapRuntime,
    target: Side,
    key: &str,
    row: Option<&Row>,
) -> Result<Landing, CheckpointError> {
    let Some(row) = row else {
        return Ok(Landing {
            image: None,
            mark: deleted_mark(),
        });
    };
    let target_data = map.side(target);
    let mut image = shared
        .store
        .image(map.name(), target.name(), key)?
        .unwrap_or_default();
    for field in &target_data.fields {
        if let Some(value) = row.get(field) {
            image.insert(field.clone(), value.clone());
        }
    }
    let image = shape::restrict(&image, &target_data.fields);
    let mark = fingerprint(&image, target_data.echo_fields.iter().map(String::as_str));
    Ok(Landing {
        image: Some(image),
        mark,
    })
}

/// How many rows [`landed_before`] reads back at once (the system's
/// limit on requests in flight still applies).
const READS_AT_ONCE: usize = 16;

/// Of the writes about to be sent, those whose change still has an intent
/// (`checkpoint::intent`) may have landed already: their batch was cut
/// between the target's commit and its checkpoint (the host killed, or a
/// failure after the service had committed). Each such row is read on the
/// target by key (Dataverse: by alternate key, as "Retrieve using an
/// alternate key" documents,
/// <https://learn.microsoft.com/en-us/power-apps/developer/data-platform/webapi/retrieve-entity-using-web-api#retrieve-using-an-alternate-key>;
/// finops: by the entity's full key), and one whose fingerprint is the
/// intent's, and this write's, holds the write: it is recorded as written
/// (a row gone, for a delete: as deleted) without being sent again. A read
/// the service refuses leaves its write to be sent. Returns the writes
/// still to send, with their changes.
async fn landed_before(
    shared: &Shared,
    map: &MapRuntime,
    direction: Direction,
    writes: Vec<Write>,
    sent: Vec<(Outgoing, Landing)>,
    record: &mut Recorder,
) -> Result<(Vec<Write>, Vec<(Outgoing, Landing)>), FlowError> {
    let seqs: Vec<u64> = sent.iter().map(|(out, _)| out.queued.seq).collect();
    let intents = shared.store.intents(map.name(), direction, &seqs)?;
    if intents.is_empty() {
        return Ok((writes, sent));
    }
    let target = Side::source_of(direction).other();
    let system = shared.system(&map.plan, target);
    let echo_fields = &map.side(target).echo_fields;
    let table = &map.plan.side(target).table;
    // `None`: not to be read (no intent, or one this write would not
    // leave: the map's plugins changed since, say).
    let reads: Vec<_> = sent
        .iter()
        .map(|(out, landing)| {
            let due = intents.get(&out.queued.seq) == Some(&landing.mark);
            read_back(shared, map, target, system, &out.queued.change.key, due)
        })
        .collect();
    let reads: Vec<Option<Result<Option<Row>, ConnectorError>>> = futures_util::stream::iter(reads)
        .buffered(READS_AT_ONCE)
        .collect()
        .await;
    let mut to_send = (Vec::new(), Vec::new());
    for ((write, (out, landing)), read) in writes.into_iter().zip(sent).zip(reads) {
        let held = match read {
            Some(Ok(now)) => {
                let mark = now.as_ref().map_or_else(deleted_mark, |row| {
                    mark_of(&Operation::Upsert, row, echo_fields)
                });
                (mark == landing.mark).then_some(now)
            }
            Some(Err(error)) if error.refusal().is_some() => {
                tracing::warn!(map = %map.name(), %direction, key = %out.queued.change.key, %error, "A row whose write may have landed could not be read back; it is written again.");
                None
            }
            Some(Err(error)) => return Err(error.into()),
            None => None,
        };
        let Some(now) = held else {
            to_send.0.push(write);
            to_send.1.push((out, landing));
            continue;
        };
        let key = out.queued.change.key.clone();
        map.keys.resolved(&key);
        let id = now
            .as_ref()
            .and_then(|row| row.get(&primary_id(table)))
            .and_then(Value::as_str)
            .filter(|id| uuid::Uuid::parse_str(id).is_ok());
        if let Some(id) = id {
            record.id(target, id, &key);
        }
        record_write(map, direction, out, landing, &write, true, record);
    }
    Ok(to_send)
}

/// What `target` holds for `key` when `due`, else `None`.
async fn read_back(
    shared: &Shared,
    map: &MapRuntime,
    target: Side,
    system: &System,
    key: &str,
    due: bool,
) -> Option<Result<Option<Row>, ConnectorError>> {
    match due {
        true => Some(refs::held(&shared.plan(), &map.plan, target, system, key, None).await),
        false => None,
    }
}

/// Records a confirmed write: the echo fingerprint and image of the target
/// (what the write left there), the source's image, the log. `before`:
/// the target held it already, from an attempt whose outcome was not
/// recorded, and it was not sent again.
fn record_write(
    map: &MapRuntime,
    direction: Direction,
    out: Outgoing,
    landing: Landing,
    write: &Write,
    before: bool,
    record: &mut Recorder,
) {
    let source = Side::source_of(direction);
    let target = source.other();
    let key = out.queued.change.key.clone();
    // The write is applied: the rivals it won against are settled with it.
    for rival in out.planned.rivals {
        record.close_rival(rival);
    }
    let source_fields = &map.side(source).fields;
    record.echo(target, &key, landing.mark);
    match landing.image {
        Some(image) => {
            record.image(target, &key, Some(image));
            record.image(
                source,
                &key,
                Some(shape::restrict(&out.queued.change.row, source_fields)),
            );
            let detail = format!("{} {}{}", write.table(), write.key(), note(before));
            record.close(out.queued, Action::Written, Step::Write, detail);
        }
        None => {
            record.image(target, &key, None);
            let exit = out.planned.filter_exit;
            let source_image = exit.then(|| shape::restrict(&out.queued.change.row, source_fields));
            record.image(source, &key, source_image);
            let (table, key, note) = (write.table(), write.key(), note(before));
            let detail = match exit {
                true => format!("left the filter; deleted {table} {key}{note}"),
                false => format!("{table} {key}{note}"),
            };
            record.close(out.queued, Action::Deleted, Step::Write, detail);
        }
    }
}

/// What the log says of a write the target held already.
fn note(before: bool) -> &'static str {
    match before {
        true => {
            " (the target held it already: an earlier attempt landed before its outcome was recorded; not sent again)"
        }
        false => "",
    }
}

/// Runs the map's plugins over the planned upserts: skipped rows are done,
/// failed rows parked.
fn run_plugins(
    map: &MapRuntime,
    direction: Direction,
    target: Side,
    outgoing: &mut Vec<Outgoing>,
    record: &mut Recorder,
) {
    let Some(chain) = &map.chain else {
        return;
    };
    if chain.is_empty_for(direction) {
        return;
    }
    let company_field = map
        .plan
        .company_pair()
        .and_then(|pair| shape::field_on(pair, target))
        .map(str::to_owned);
    let upserts: Vec<usize> = (0..outgoing.len())
        .filter(|&i| outgoing[i].planned.row.is_some())
        .collect();
    if upserts.is_empty() {
        return;
    }
    // The rows are taken out for the chain, not copied: a kept row goes
    // back, a skipped or failed one leaves with its change.
    let mut rows: Vec<(Option<String>, Row)> = upserts
        .iter()
        .map(|&i| {
            let row = outgoing[i].planned.row.take().unwrap_or_default();
            let company = company_field
                .as_ref()
                .and_then(|f| row.get(f))
                .and_then(|v| v.as_str())
                .map(str::to_owned);
            (company, row)
        })
        .collect();
    let fates = chain.run(map.name(), direction, &mut rows);
    let mut gone: Vec<(usize, Fate)> = Vec::new();
    for ((index, (_, row)), fate) in upserts.into_iter().zip(rows).zip(fates) {
        match fate {
            Fate::Keep => outgoing[index].planned.row = Some(row),
            other => gone.push((index, other)),
        }
    }
    for (index, fate) in gone.into_iter().rev() {
        let out = outgoing.remove(index);
        match fate {
            Fate::Skip(plugin, reason) => {
                record.close(out.queued, Action::Skipped, Step::Plugin(plugin), reason);
            }
            Fate::Fail(plugin, message) => {
                record.park(
                    out.queued,
                    Step::Plugin(plugin),
                    ErrorClass::Application,
                    message,
                );
            }
            Fate::Keep => {}
        }
    }
}

/// The id in an entity URL: `…/accounts(<guid>)` → `<guid>`.
fn id_in(url: &str) -> Option<&str> {
    let inner = url.strip_suffix(')')?;
    let id = &inner[inner.rfind('(')? + 1..];
    uuid::Uuid::parse_str(id).is_ok().then_some(id)
}

/// The first map `map` depends on that does not write now (paused,
/// stopped, failed, never started), with its state: a change of `map`
/// waiting for a row of it waits without becoming an error.
pub(super) fn idle_parent(shared: &Shared, map: &MapRuntime) -> Option<(String, MapState)> {
    map.plan.depends_on.iter().find_map(|parent| {
        let state = shared.map(parent)?.state();
        (!state.writes()).then(|| (parent.clone(), state))
    })
}
