//! The decision step of a batch: what becomes of one queued change before
//! plugins, lookups and the write. It reads (the checkpoint store, and the
//! source again for a change read before the host's write landed) but
//! records nothing: it returns a [`Decision`], which the pipeline hands to
//! the recorder.
//!
//! In order: the echo of one of the host's writes; an initial-copy change
//! whose row has a later change queued on its side (retired unwritten); a
//! change read before the host's write to its side landed, decided by what
//! the side holds now; a
//! change of no mapped field; the conflict policy against the other
//! direction's queued changes of the key; a delete; a row outside the
//! filter or the companies (a filter exit); then the mapping to the
//! target's fields.

use crate::checkpoint::{Action, ErrorClass, Operation, Phase, QueuedChange, Step};
use crate::map::FilterExit;

use super::conflict::{self, Rival, Settled};
use super::echo::{deleted_mark, echoed_write, mark_of};
use super::error::FlowError;
use super::runtime::MapRuntime;
use super::shape::{self, Row, Side};
use super::{Shared, refs};

/// What becomes of one change, and what is recorded with it.
#[derive(Debug)]
pub(super) struct Decision {
    /// The change (possibly replaced by what its side holds now).
    pub queued: QueuedChange,
    /// Its fate.
    pub verdict: Verdict,
    /// Older queued changes of its key that it retires: done as skipped.
    pub retired: Vec<QueuedChange>,
    /// Rivals of the other direction closed with it (when both agree).
    pub rivals: Vec<Rival>,
    /// Images of its key recorded with it: `(side, mapped fields)`.
    pub images: Vec<(Side, Option<Row>)>,
    /// The host's write it is the echo of (its fingerprint).
    pub consumed: Option<[u8; 32]>,
}

/// The fate of a change.
#[derive(Debug)]
pub(super) enum Verdict {
    /// Done without a write: the action, the step that decided it, and
    /// why.
    Close(Action, Step, String),
    /// Done without a write, and not a report of its side's state (an echo,
    /// or superseded by the host's own write).
    CloseUnreported(Action, Step, String),
    /// To the target: an upsert of `row` (logical, the target's names), or
    /// a delete when `row` is `None`.
    Send(Planned),
    /// Parked: the step that failed, the error's class, the reason.
    Park(Step, ErrorClass, String),
    /// Left queued, untouched: it lost a conflict to a change of the other
    /// side whose write has not been applied yet (why, for tracing).
    Hold(String),
}

/// A change on its way to the target.
#[derive(Debug)]
pub(super) struct Planned {
    /// The target's row; `None` deletes.
    pub row: Option<Row>,
    /// A delete because the row left the filter (its source image is kept).
    pub filter_exit: bool,
    /// The target's last image (its key values in their own case, for a
    /// delete).
    pub known: Option<Row>,
    /// The rivals it won against: closed once its write is applied.
    pub rivals: Vec<Rival>,
}

impl Decision {
    fn new(queued: QueuedChange, verdict: Verdict) -> Decision {
        Decision {
            queued,
            verdict,
            retired: Vec::new(),
            rivals: Vec::new(),
            images: Vec::new(),
            consumed: None,
        }
    }

    fn with_image(mut self, side: Side, image: Option<Row>) -> Decision {
        self.images.push((side, image));
        self
    }
}

/// Decides what becomes of `queued`, a change of `map`'s direction read
/// from `source`.
pub(super) async fn decide(
    shared: &Shared,
    map: &MapRuntime,
    source: Side,
    mut queued: QueuedChange,
) -> Result<Decision, FlowError> {
    let store = &shared.store;
    let plan = &map.plan;
    let direction = source.direction();
    let target = source.other();
    let source_data = map.side(source);
    let key = queued.change.key.clone();
    let writes = store.writes(&plan.name, source.name(), &key)?;
    if let Some(at) = echoed_write(&writes, &queued.change, &source_data.echo_fields) {
        let detail = format!("version {}", queued.change.version);
        // The echo of an older write while a newer one is still on its way
        // says nothing of what the side holds now.
        let image = (at + 1 == writes.len()).then(|| {
            (queued.change.operation == Operation::Upsert)
                .then(|| shape::restrict(&queued.change.row, &source_data.fields))
        });
        let mut decision = Decision::new(
            queued,
            Verdict::CloseUnreported(Action::Echo, Step::Echo, detail),
        );
        decision.consumed = Some(writes[at].fingerprint);
        decision.images.extend(image.map(|image| (source, image)));
        return Ok(decision);
    }
    // The initial copy's read of a row whose later change is queued on the
    // same side: the later one carries the row as it is now, so the copied
    // data is not written over it.
    if queued.change.phase == Phase::InitialSync
        && store
            .pending(&plan.name, direction, &key)?
            .iter()
            .any(|later| later.seq > queued.seq)
    {
        let detail = format!(
            "version {} of the initial copy: a later change of the row is queued and carries it",
            queued.change.version
        );
        return Ok(Decision::new(
            queued,
            Verdict::Close(Action::Skipped, Step::Capture, detail),
        ));
    }
    // Read before a write of the host to this side landed: the side may
    // hold the host's write by now, so what it holds decides. A row capture
    // could not read in full is read again too (a retry after a fix).
    let mut retired = Vec::new();
    let unreadable = queued.change.unreadable.take();
    if unreadable.is_some() || writes.iter().any(|w| w.id > queued.change.read_at) {
        let stamp = store.stamp()?;
        let system = shared.system(plan, source);
        let now_there =
            match refs::current(&shared.plan(), plan, source, system, &queued.change).await {
                Ok(row) => row,
                // Still unreadable: the change is parked with the service's
                // message, and its key's later changes wait behind it.
                Err(error) if error.refusal().is_some() => {
                    let reason = unreadable.unwrap_or_else(|| {
                        format!(
                            "the row could not be read again on the {} side",
                            source.name()
                        )
                    });
                    let reason = format!("{reason}; read again: {error}");
                    let class = error
                        .status()
                        .map_or(ErrorClass::Application, ErrorClass::of_status);
                    return Ok(Decision::new(
                        queued,
                        Verdict::Park(Step::Capture, class, reason),
                    ));
                }
                Err(error) => return Err(error.into()),
            };
        // Changes of this key read before now are older than what was just
        // read: they are done with this one.
        retired = store
            .pending(&plan.name, direction, &key)?
            .into_iter()
            .filter(|q| q.seq != queued.seq && q.change.read_at < stamp)
            .collect();
        let now_mark = now_there.as_ref().map_or_else(deleted_mark, |row| {
            mark_of(&Operation::Upsert, row, &source_data.echo_fields)
        });
        if writes.iter().any(|w| w.fingerprint == now_mark) {
            let detail = format!(
                "superseded: version {} was read before the host's write to the {} side landed, and that side now holds the host's write",
                queued.change.version,
                source.name()
            );
            let mut decision = Decision::new(
                queued,
                Verdict::CloseUnreported(Action::ConflictLost, Step::Echo, detail),
            );
            decision.retired = retired;
            return Ok(decision);
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
    let mut decision = decide_fresh(shared, map, source, target, queued)?;
    decision.retired = retired;
    Ok(decision)
}

/// The rest of [`decide`], for a change that says what its side holds.
fn decide_fresh(
    shared: &Shared,
    map: &MapRuntime,
    source: Side,
    target: Side,
    queued: QueuedChange,
) -> Result<Decision, FlowError> {
    let store = &shared.store;
    let plan = &map.plan;
    let key = queued.change.key.clone();
    let upsert = queued.change.operation == Operation::Upsert;
    let source_image =
        upsert.then(|| shape::restrict(&queued.change.row, &map.side(source).fields));
    let known = store.image(&plan.name, target.name(), &key)?;
    let synced = known.is_some();
    let outside = match upsert {
        true => shape::excluded(plan, source, &queued.change.row),
        false => None,
    };
    // A change of fields the map does not carry (Dataverse reports a row
    // whatever column changed, and a full read reports every row): the
    // other side has it all already.
    if synced
        && outside.is_none()
        && source_image.is_some()
        && store.image(&plan.name, source.name(), &key)? == source_image
    {
        let detail = format!("version {}: no mapped field changed", queued.change.version);
        return Ok(Decision::new(
            queued,
            Verdict::Close(Action::Skipped, Step::Mapping, detail),
        ));
    }
    let rivals = match conflict::settle_conflict(shared, map, source.direction(), &queued)? {
        Settled::Goes(rivals) => rivals,
        Settled::Held(why) => return Ok(Decision::new(queued, Verdict::Hold(why))),
        Settled::Agree { rivals, image } => {
            let detail = format!(
                "version {}: both sides already hold the same values",
                queued.change.version
            );
            let mut decision = Decision::new(
                queued,
                Verdict::Close(Action::Skipped, Step::Conflict, detail),
            )
            .with_image(source, source_image)
            .with_image(target, Some(image));
            decision.rivals = rivals;
            return Ok(decision);
        }
    };
    // A rival's row shows the target holds the key even when the host never
    // synced it (the other side's initial copy read it): the write goes to
    // that row, and a delete deletes it.
    let known = known.or_else(|| {
        rivals
            .iter()
            .rev()
            .find(|rival| rival.queued.change.operation == Operation::Upsert)
            .map(|rival| shape::restrict(&rival.queued.change.row, &map.side(target).fields))
    });
    let synced = known.is_some();
    if !upsert {
        if synced {
            let planned = Planned {
                row: None,
                filter_exit: false,
                known,
                rivals,
            };
            return Ok(Decision::new(queued, Verdict::Send(planned)));
        }
        let detail = "deleted, and never synced to the other side".to_owned();
        return Ok(Decision::new(
            queued,
            Verdict::Close(Action::Skipped, Step::Mapping, detail),
        )
        .with_image(source, None));
    }
    if let Some(reason) = outside {
        if synced && plan.on_filter_exit == FilterExit::Delete {
            let planned = Planned {
                row: None,
                filter_exit: true,
                known,
                rivals,
            };
            return Ok(Decision::new(queued, Verdict::Send(planned)));
        }
        let detail = match synced {
            true => format!("{reason}; the other side keeps it (on_filter_exit = keep)"),
            false => reason,
        };
        // No image: the row's values did not reach the other side, so its
        // next change must not look unchanged.
        return Ok(Decision::new(
            queued,
            Verdict::Close(Action::Filtered, Step::Filter, detail),
        )
        .with_image(source, None));
    }
    let verdict = match shape::map_row(plan, source, &queued.change.row) {
        Ok(row) => Verdict::Send(Planned {
            row: Some(row),
            filter_exit: false,
            known,
            rivals,
        }),
        Err(problem) => Verdict::Park(Step::Mapping, ErrorClass::Application, problem),
    };
    Ok(Decision::new(queued, verdict))
}
