//! The one recorder of a batch: every decided change ends here, and only
//! here is it logged, counted and finished.
//!
//! [`Recorder`] gathers, as a batch is decided and written, the changes
//! closed with their [`Action`] and detail, the changes parked, the echo
//! fingerprints, images and row ids to store. [`Recorder::finish`] parks,
//! then records everything else in one checkpoint transaction (flushed),
//! then observes the write latency of each change written or deleted (from
//! when it was queued to now), then reports each activity line once:
//! counter, trace, event. [`log`]
//! does the same for lines that close no queued change.

use chrono::{DateTime, Utc};

use crate::checkpoint::{
    Action, Activity, CheckpointError, Direction, ErrorClass, Finish, Phase, QueuedChange, Step,
};
use crate::metrics::observe_latency;

use super::conflict::Rival;
use super::runtime::MapRuntime;
use super::shape::{Row, Side};
use super::{Shared, initial};

/// What one batch of one direction records.
#[derive(Debug)]
pub(super) struct Recorder {
    map: String,
    direction: Direction,
    done: Vec<QueuedChange>,
    /// Seqs of done changes the source did not report as its own state
    /// (echoes, and changes retired by a row read again).
    echoed: Vec<u64>,
    parked: Vec<(QueuedChange, Step, ErrorClass, String)>,
    /// Changes of the other direction closed with this batch.
    rivals: Vec<QueuedChange>,
    echoes: Vec<(Side, String, [u8; 32])>,
    consumed: Vec<(Side, String, [u8; 32])>,
    images: Vec<(Side, String, Option<Row>)>,
    ids: Vec<(Side, String, String)>,
    activity: Vec<Activity>,
    /// `(key, action)` of the initial copy's changes settled, counted in
    /// the copy's progress.
    copied: Vec<(String, Action)>,
    /// When each change written or deleted was queued: its write latency
    /// is observed once the batch is recorded.
    written: Vec<DateTime<Utc>>,
}

impl Recorder {
    /// An empty record of a batch of `map`'s `direction`.
    pub fn new(map: &str, direction: Direction) -> Recorder {
        Recorder {
            map: map.to_owned(),
            direction,
            done: Vec::new(),
            echoed: Vec::new(),
            parked: Vec::new(),
            rivals: Vec::new(),
            echoes: Vec::new(),
            consumed: Vec::new(),
            images: Vec::new(),
            ids: Vec::new(),
            activity: Vec::new(),
            copied: Vec::new(),
            written: Vec::new(),
        }
    }

    /// `queued` is done as `action`, decided at `step`: it leaves the queue
    /// in the batch's transaction, with an activity line.
    pub fn close(&mut self, queued: QueuedChange, action: Action, step: Step, detail: String) {
        let line = Activity::new(
            &self.map,
            self.direction,
            &queued.change.key,
            action,
            detail,
        )
        .step(step)
        .row(&queued.change.row);
        self.activity.push(line);
        if let (Action::Written | Action::Deleted, Some(captured)) = (action, queued.captured) {
            self.written.push(captured);
        }
        if queued.change.phase == Phase::InitialSync {
            self.copied.push((queued.change.key.clone(), action));
        }
        self.done.push(queued);
    }

    /// Like [`Recorder::close`], for a change that does not say what its
    /// side holds now (an echo, or a change older than a row read again):
    /// its read leaves the host's earlier writes in the echo history.
    pub fn close_unreported(
        &mut self,
        queued: QueuedChange,
        action: Action,
        step: Step,
        detail: String,
    ) {
        self.echoed.push(queued.seq);
        self.close(queued, action, step, detail);
    }

    /// A change of the other direction settled by one of this batch (a
    /// conflict it lost, or agreed with): it leaves its queue in the same
    /// transaction, with an activity line in its own direction.
    pub fn close_rival(&mut self, rival: Rival) {
        if rival.queued.change.phase == Phase::InitialSync {
            self.copied
                .push((rival.queued.change.key.clone(), rival.action));
        }
        let line = Activity::new(
            &self.map,
            self.direction.reverse(),
            &rival.queued.change.key,
            rival.action,
            rival.detail,
        )
        .step(Step::Conflict)
        .row(&rival.queued.change.row);
        self.activity.push(line);
        self.rivals.push(rival.queued);
    }

    /// `queued` failed at `step` with an error of `class`: its key is
    /// parked with `reason`.
    pub fn park(&mut self, queued: QueuedChange, step: Step, class: ErrorClass, reason: String) {
        self.parked.push((queued, step, class, reason));
    }

    /// The mapped fields now on `side` for `key` (`None`: none).
    pub fn image(&mut self, side: Side, key: &str, image: Option<Row>) {
        self.images.push((side, key.to_owned(), image));
    }

    /// A write to `side` whose echo will look like `mark`.
    pub fn echo(&mut self, side: Side, key: &str, mark: [u8; 32]) {
        self.echoes.push((side, key.to_owned(), mark));
    }

    /// The echo of the write marked `mark` came back from `side`.
    pub fn consume(&mut self, side: Side, key: &str, mark: [u8; 32]) {
        self.consumed.push((side, key.to_owned(), mark));
    }

    /// The row the host wrote on `side` has the id `id`.
    pub fn id(&mut self, side: Side, id: &str, key: &str) {
        self.ids.push((side, id.to_owned(), key.to_owned()));
    }

    /// The changes closed or parked so far.
    pub fn finished(&self) -> impl Iterator<Item = &QueuedChange> {
        self.done.iter().chain(self.parked.iter().map(|(q, ..)| q))
    }

    /// Parks what failed, records the rest in one flushed transaction,
    /// then reports every line. Returns how many changes the batch
    /// finished (closed or parked).
    pub fn finish(mut self, shared: &Shared, map: &MapRuntime) -> Result<usize, CheckpointError> {
        let store = &shared.store;
        let source = Side::source_of(self.direction);
        // A parked change stays queued, its key held: it is not in `done`.
        let parked = std::mem::take(&mut self.parked);
        let finished = self.done.len() + self.rivals.len() + parked.len();
        for (queued, step, class, reason) in parked {
            if queued.change.phase == Phase::InitialSync {
                let company = initial::company_of(&map.plan, &queued.change.key);
                store.note_initial_failure(
                    &self.map,
                    self.direction,
                    &queued.change.key,
                    &company,
                )?;
            }
            let catch_up = map.state() == super::runtime::MapState::Resuming;
            store.park(&self.map, self.direction, &queued, &reason, catch_up)?;
            let line = Activity::new(
                &self.map,
                self.direction,
                &queued.change.key,
                Action::Parked,
                reason,
            )
            .step(step)
            .class(class)
            .row(&queued.change.row);
            self.activity.push(line);
        }
        let echoes = marks(&self.echoes);
        let consumed = marks(&self.consumed);
        let ids: Vec<(&str, &str, &str)> = self
            .ids
            .iter()
            .map(|(s, i, k)| (s.name(), i.as_str(), k.as_str()))
            .collect();
        // Every change the side reported that was not an echo was read after
        // the host's writes recorded before the read had landed: those will
        // not echo again. (A pushed event, read at an unknown moment, says
        // nothing of them.)
        let superseded: Vec<(&str, &str, u64)> = self
            .done
            .iter()
            .filter(|q| !self.echoed.contains(&q.seq) && q.change.read_at > 0)
            .map(|q| (source.name(), q.change.key.as_str(), q.change.read_at))
            .chain(
                self.rivals
                    .iter()
                    .filter(|q| q.change.read_at > 0)
                    .map(|q| {
                        (
                            source.other().name(),
                            q.change.key.as_str(),
                            q.change.read_at,
                        )
                    }),
            )
            .collect();
        let images: Vec<(&str, &str, Option<Row>)> = self
            .images
            .iter()
            .map(|(s, k, i)| (s.name(), k.as_str(), i.clone()))
            .collect();
        store.finish(
            &self.map,
            self.direction,
            &Finish {
                done: &self.done,
                rivals: &self.rivals,
                echoes: &echoes,
                consumed: &consumed,
                superseded: &superseded,
                images: &images,
                ids: &ids,
                activity: &self.activity,
            },
        )?;
        initial::count_settled(shared, &map.plan, &self.copied)?;
        // The target confirmed these writes and the store recorded them:
        // each one's latency runs from when it was queued to now (a clock
        // set back counts as none).
        let now = Utc::now();
        if let Some(latency) = map.write_latency(self.direction) {
            for captured in &self.written {
                let elapsed = now.signed_duration_since(*captured).to_std();
                observe_latency(latency, elapsed.unwrap_or_default());
            }
        }
        report(shared, map, self.activity);
        Ok(finished)
    }
}

/// `(side, key, fingerprint)` as the checkpoint store takes them.
fn marks(list: &[(Side, String, [u8; 32])]) -> Vec<(&'static str, &str, [u8; 32])> {
    list.iter()
        .map(|(side, key, mark)| (side.name(), key.as_str(), *mark))
        .collect()
}

/// Records `lines` that close no queued change (a row captured without a
/// key, say) in the activity log, flushed, then reports them.
pub(super) fn log(
    shared: &Shared,
    map: &MapRuntime,
    direction: Direction,
    lines: &[Activity],
) -> Result<(), CheckpointError> {
    shared.store.finish(
        map.name(),
        direction,
        &Finish {
            activity: lines,
            ..Finish::default()
        },
    )?;
    report(shared, map, lines.to_vec());
    Ok(())
}

/// Reports a change that waits for a lookup: not logged (it is not an
/// outcome yet), but counted nowhere and shown to subscribers.
pub(super) fn waiting(shared: &Shared, map: &str, direction: Direction, key: &str, reason: String) {
    shared.emit(map, direction, key, Action::Waiting, reason);
}

/// The one place a recorded line is counted, traced and sent to the
/// subscribers.
fn report(shared: &Shared, map: &MapRuntime, lines: Vec<Activity>) {
    for line in lines {
        // Every line the pipeline records is of a flow.
        let Some(direction) = line.direction else {
            continue;
        };
        map.counters(direction).count(line.what, 1);
        match line.what {
            Action::Parked => {
                tracing::warn!(map = %line.map, %direction, key = %line.key, what = %line.what, "{}", line.detail);
            }
            _ => {
                tracing::info!(map = %line.map, %direction, key = %line.key, what = %line.what, "{}", line.detail);
            }
        }
        shared.emit(&line.map, direction, &line.key, line.what, line.detail);
    }
}
