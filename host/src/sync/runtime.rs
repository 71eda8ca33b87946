//! [`MapRuntime`]: one map of a running engine. It owns its plan, the
//! per-side data computed once from it, its plugin chain, its counters,
//! its state and its tasks (a capture per side that flows, one worker),
//! and takes [`MapCommand`]s through a channel, so one map can be paused,
//! resumed or stopped without touching the others.
//!
//! `supervise` runs the map's tasks in a `JoinSet`: a task that fails or
//! panics puts the map in [`MapState::Failed`] with the reason, logged, and
//! stops its other tasks; the other maps keep running.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;

use crate::checkpoint::{Checkpoints, Direction, Lifecycle, MapRecord};
use crate::map::{InitialSync, MapPlan, Side};
use crate::metrics::Metrics;

use super::attempts::Attempts;
use super::keys::Keys;
use super::plugins::Chain;
use super::push::{self, Push, Registration};
use super::shape;
use super::{FlowCounters, Shared, SyncError, capture, worker};

/// How long a map's tasks may take to finish the batch in flight once the
/// map or the engine stops.
pub(crate) const GRACE: Duration = Duration::from_secs(10);

/// Where a map is in its life: its persisted [`Lifecycle`], with a
/// failure's reason.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "state", content = "reason")]
pub enum MapState {
    /// Never started (or disabled in the config before its first start).
    NotRunning,
    /// Copying the rows that exist (initial sync); then running.
    Initializing,
    /// Capturing and writing.
    Running,
    /// Capturing into the durable queue; nothing is written.
    Paused,
    /// Writing what was queued while paused, in order; then running.
    Resuming,
    /// Its tasks ended (the map was stopped, or the engine shuts down).
    Stopped,
    /// An error stopped it; the reason says what and what to do.
    Failed(String),
}

impl MapState {
    /// The persisted form of this state.
    pub fn lifecycle(&self) -> Lifecycle {
        match self {
            MapState::NotRunning => Lifecycle::NotRunning,
            MapState::Initializing => Lifecycle::Initializing,
            MapState::Running => Lifecycle::Running,
            MapState::Paused => Lifecycle::Paused,
            MapState::Resuming => Lifecycle::Resuming,
            MapState::Stopped => Lifecycle::Stopped,
            MapState::Failed(_) => Lifecycle::Failed,
        }
    }

    /// The state a persisted record describes.
    pub fn of_record(record: &MapRecord) -> MapState {
        match record.state {
            Lifecycle::NotRunning => MapState::NotRunning,
            Lifecycle::Initializing => MapState::Initializing,
            Lifecycle::Running => MapState::Running,
            Lifecycle::Paused => MapState::Paused,
            Lifecycle::Resuming => MapState::Resuming,
            Lifecycle::Stopped => MapState::Stopped,
            Lifecycle::Failed => MapState::Failed(
                record
                    .reason
                    .clone()
                    .unwrap_or_else(|| "no reason was recorded".into()),
            ),
        }
    }

    /// Whether the map writes in this state (its queues drain).
    pub fn writes(&self) -> bool {
        matches!(
            self,
            MapState::Initializing | MapState::Running | MapState::Resuming
        )
    }
}

/// What becomes of the changes queued while a map was paused, when it
/// resumes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Queued {
    /// Written in order, every one of them (catch-up).
    #[default]
    Replay,
    /// Moved to the error queue, each key with its later changes behind
    /// it, to be resubmitted later.
    Park,
    /// Dropped, each with an activity entry.
    Discard,
}

/// What a map can be told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapCommand {
    /// Stop writing; capture goes on into the queue.
    Pause,
    /// Write again; the changes queued meanwhile as `Queued` says.
    Resume(Queued),
    /// End the map's tasks after the batch in flight.
    Stop,
}

/// What one side of a map needs at run time, computed once from the plan.
#[derive(Debug, Clone)]
pub(crate) struct SideData {
    /// Every field the side maps (its image).
    pub fields: Vec<String>,
    /// The fields an echo fingerprint of this side covers.
    pub echo_fields: Vec<String>,
    /// What capture selects of a Dataverse table (empty: every field).
    pub select: Vec<String>,
    /// Whether changes flow from this side to the other (it is captured).
    pub flows: bool,
}

/// One map of a running engine.
#[derive(Debug)]
pub(crate) struct MapRuntime {
    pub plan: MapPlan,
    sides: [SideData; 2],
    pub chain: Option<Chain>,
    counters: [FlowCounters; 2],
    /// Per direction that flows (by source side, as `counters`): the write
    /// latency histogram of the engine's metrics, its label set resolved
    /// once.
    latency: [Option<Histogram>; 2],
    /// The keys held back from the next batch (in flight, or waiting for
    /// a lookup).
    pub(super) keys: Arc<Keys>,
    /// How often in a row the target failed each change's write with a
    /// status of its own trouble.
    pub(super) attempts: Attempts,
    /// Woken when a capture queued changes, or the map's state changed.
    pub wake: Notify,
    /// True once the initial copy is done (every captured side read to the
    /// end once, and the queues drained).
    pub ready: watch::Sender<bool>,
    captured: [AtomicBool; 2],
    state: watch::Sender<MapState>,
    /// True when the map's tasks must end (the map is stopped, or the
    /// engine shuts down).
    halt: watch::Sender<bool>,
    /// Per side: whether Dataverse pushes its changes, and the steps
    /// registered for it.
    push: Mutex<[(Push, Option<Registration>); 2]>,
    /// Where the state is persisted.
    store: Checkpoints,
    /// The persisted record of the map's life, as last written.
    record: Mutex<MapRecord>,
    /// Why the map's plugins could not be loaded, if so: it cannot start.
    pub load_error: Option<String>,
    /// The target system the map cannot reach now, since when, and why.
    outage: Mutex<Option<Outage>>,
    /// An alert rule that pauses the map: the rule and the reason.
    alarm: watch::Sender<Option<(String, String)>>,
    /// When the map's tasks last started (at the engine's start, or an
    /// admin's): alert rules count its errors from then on.
    started: Mutex<chrono::DateTime<chrono::Utc>>,
}

/// A target system a map's writes cannot reach: its changes stay queued.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Outage {
    /// The system.
    pub system: String,
    /// Since when (RFC 3339, UTC).
    pub since: String,
    /// The last error.
    pub error: String,
}

impl MapRuntime {
    /// The runtime of `plan`, with its loaded chain (or why it could not
    /// be loaded), in the state `record` describes; `store` keeps the
    /// state from now on; its write latencies go to `metrics`.
    pub fn new(
        plan: MapPlan,
        chain: Result<Option<Chain>, String>,
        store: Checkpoints,
        record: MapRecord,
        metrics: &Metrics,
    ) -> MapRuntime {
        let side = |side: Side| SideData {
            fields: shape::side_fields(&plan, side),
            echo_fields: shape::echo_fields(&plan, side),
            select: capture::select(&plan, side),
            flows: shape::flows_to(&plan, side.other()),
        };
        let sides = [side(Side::Left), side(Side::Right)];
        // Indexed by source side, as the counters are.
        let latency = [Side::Left, Side::Right].map(|source| {
            sides[source.index()]
                .flows
                .then(|| metrics.write_latency(&plan.name, source.direction()))
        });
        let state = MapState::of_record(&record);
        let (chain, load_error) = match chain {
            Ok(chain) => (chain, None),
            Err(error) => (None, Some(error)),
        };
        MapRuntime {
            ready: watch::channel(!record.state.is_active()).0,
            sides,
            chain,
            load_error,
            outage: Mutex::new(None),
            alarm: watch::channel(None).0,
            started: Mutex::new(chrono::Utc::now()),
            store,
            record: Mutex::new(record),
            counters: Default::default(),
            latency,
            keys: Arc::default(),
            attempts: Attempts::default(),
            wake: Notify::new(),
            captured: Default::default(),
            state: watch::channel(state).0,
            halt: watch::channel(false).0,
            push: Mutex::new([(Push::Off, None), (Push::Off, None)]),
            plan,
        }
    }

    fn push_slots(&self) -> std::sync::MutexGuard<'_, [(Push, Option<Registration>); 2]> {
        self.push.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records how `side` learns of changes.
    pub(super) fn set_push(&self, side: Side, push: Push, registration: Option<Registration>) {
        self.push_slots()[side.index()] = (push, registration);
    }

    /// How `side` learns of changes.
    pub fn push_state(&self, side: Side) -> Push {
        self.push_slots()[side.index()].0.clone()
    }

    /// The steps registered for `side`, if any.
    pub(crate) fn registration(&self, side: Side) -> Option<Registration> {
        self.push_slots()[side.index()].1.clone()
    }

    /// Whether Dataverse pushes the changes of `side` (its steps are
    /// registered), so change tracking is only the catch-all.
    pub fn pushed(&self, side: Side) -> bool {
        self.push_state(side) == Push::Registered
    }

    /// The map's name.
    pub fn name(&self) -> &str {
        &self.plan.name
    }

    /// The run-time data of one side.
    pub fn side(&self, side: Side) -> &SideData {
        &self.sides[side.index()]
    }

    /// The counters of one direction.
    pub fn counters(&self, direction: Direction) -> &FlowCounters {
        &self.counters[Side::source_of(direction).index()]
    }

    /// The write latency histogram of one direction, when it flows.
    pub fn write_latency(&self, direction: Direction) -> Option<&Histogram> {
        self.latency[Side::source_of(direction).index()].as_ref()
    }

    /// The directions changes flow in, left to right first.
    pub fn directions(&self) -> impl Iterator<Item = Direction> + '_ {
        Side::BOTH
            .into_iter()
            .filter(|side| self.side(*side).flows)
            .map(Side::direction)
    }

    /// Whether the map's plugins may change what is written.
    pub fn has_plugins(&self) -> bool {
        self.chain.as_ref().is_some_and(|chain| {
            !chain.is_empty_for(Direction::LeftToRight)
                || !chain.is_empty_for(Direction::RightToLeft)
        })
    }

    /// Records that `side` was read to the end once.
    pub fn mark_captured(&self, side: Side) {
        if !self.captured[side.index()].swap(true, Ordering::Relaxed) {
            self.wake.notify_one();
        }
    }

    /// Whether every captured side was read to the end once.
    pub fn captured_all(&self) -> bool {
        Side::BOTH
            .into_iter()
            .filter(|side| self.side(*side).flows)
            .all(|side| self.captured[side.index()].load(Ordering::Relaxed))
    }

    /// The map's state now.
    pub fn state(&self) -> MapState {
        self.state.borrow().clone()
    }

    /// Follows the map's state.
    pub fn watch_state(&self) -> watch::Receiver<MapState> {
        self.state.subscribe()
    }

    /// Sets the state in memory only (the engine shuts down: the persisted
    /// state is what the next start resumes).
    fn set_state(&self, state: MapState) {
        self.state.send_replace(state);
        self.wake.notify_one();
    }

    /// The persisted record of the map's life.
    pub fn record(&self) -> MapRecord {
        self.record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Moves the map to `state`, persisted first, so that a restart finds
    /// it there. A failure's reason is also kept as the last error. A
    /// store that cannot be written is logged: the map keeps the state in
    /// memory (the store's own failure fails the map at its next step).
    pub fn transition(&self, state: MapState) {
        {
            let mut record = self.record.lock().unwrap_or_else(|e| e.into_inner());
            let mut next = record.moved(state.lifecycle());
            if let MapState::Failed(reason) = &state {
                next.reason = Some(reason.clone());
                next.last_error = Some(reason.clone());
            }
            if let Err(error) = self.store.set_map_record(self.name(), &next) {
                tracing::error!(map = %self.name(), %error, "The map's state could not be stored.");
            }
            *record = next;
        }
        self.set_state(state);
    }

    /// The target system the map cannot reach, if so.
    pub fn outage(&self) -> Option<Outage> {
        self.outage
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A write to `system` failed with `error` (retried): the map waits
    /// for it, since the first failure.
    pub fn unreachable(&self, system: &str, error: String) {
        let mut outage = self.outage.lock().unwrap_or_else(|e| e.into_inner());
        match outage.as_mut() {
            Some(known) if known.system == system => known.error = error,
            _ => {
                *outage = Some(Outage {
                    system: system.to_owned(),
                    since: crate::checkpoint::now(),
                    error,
                });
            }
        }
    }

    /// A batch landed: no system is unreachable.
    pub fn reachable(&self) {
        let mut outage = self.outage.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = outage.take() {
            tracing::info!(map = %self.name(), system = %known.system, since = %known.since, "The target system answers again.");
        }
    }

    /// The initial sync the map was started with (`map start
    /// --initial-sync`, kept in its record), else its config's.
    pub fn initial_sync(&self) -> InitialSync {
        self.record()
            .initial_sync
            .as_deref()
            .and_then(|mode| mode.parse().ok())
            .unwrap_or(self.plan.initial_sync)
    }

    /// Records `initial_sync` as the map's, persisted with its state.
    pub fn set_initial_sync(&self, initial_sync: Option<String>) {
        let mut record = self.record.lock().unwrap_or_else(|e| e.into_inner());
        record.initial_sync = initial_sync;
        if let Err(error) = self.store.set_map_record(self.name(), &record) {
            tracing::error!(map = %self.name(), %error, "The map's initial sync could not be stored.");
        }
    }

    /// Readies a map whose tasks ended (stopped, failed, never started) to
    /// start again: its halt lifted, its sides not read yet, its initial
    /// copy not done.
    pub fn rearm(&self) {
        self.halt.send_replace(false);
        self.alarm.send_replace(None);
        *self.started.lock().unwrap_or_else(|e| e.into_inner()) = chrono::Utc::now();
        self.recopy();
    }

    /// When the map's tasks last started.
    pub fn started(&self) -> chrono::DateTime<chrono::Utc> {
        *self.started.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Alert rule `rule` pauses the map: its supervisor ends its tasks and
    /// moves it to `failed` with `reason`, the rule recorded, so that it
    /// stays there until an admin starts it.
    pub fn alarm(&self, rule: &str, reason: String) {
        self.alarm.send_replace(Some((rule.to_owned(), reason)));
    }

    /// Moves the map to `failed` with `reason`, paused by alert rule
    /// `rule` (persisted first).
    fn fail_by_alert(&self, rule: &str, reason: String) {
        {
            let mut record = self.record.lock().unwrap_or_else(|e| e.into_inner());
            let mut next = record.moved(Lifecycle::Failed);
            next.reason = Some(reason.clone());
            next.last_error = Some(reason.clone());
            next.alert = Some(rule.to_owned());
            if let Err(error) = self.store.set_map_record(self.name(), &next) {
                tracing::error!(map = %self.name(), %error, "The map's state could not be stored.");
            }
            *record = next;
        }
        self.set_state(MapState::Failed(reason));
    }

    /// The map copies again (a start, a rerun): its sides not read to the
    /// end yet, its initial copy not done, so it runs again once they are.
    pub fn recopy(&self) {
        for captured in &self.captured {
            captured.store(false, Ordering::Relaxed);
        }
        self.ready.send_replace(false);
    }

    /// Whether the worker may not write now.
    pub fn paused(&self) -> bool {
        !self.state.borrow().writes()
    }

    /// Whether the map's tasks must end.
    pub fn halting(&self) -> bool {
        *self.halt.borrow()
    }

    /// Resolves once the map's tasks must end. Cancel-safe.
    pub async fn halted(&self) {
        let mut halt = self.halt.subscribe();
        let _ = halt.wait_for(|halt| *halt).await;
    }

    /// Tells the map's tasks to end.
    pub fn halt(&self) {
        self.halt.send_replace(true);
    }
}

/// Runs `runtime`'s tasks and its commands until it stops or the engine
/// shuts down; a task that fails or panics fails the map, and only it.
pub(crate) async fn supervise(
    shared: Arc<Shared>,
    runtime: Arc<MapRuntime>,
    mut commands: mpsc::Receiver<MapCommand>,
    pushed: bool,
) {
    let name = runtime.name().to_owned();
    // Before the first read, so a change after it is pushed or read.
    push::register(&shared, &runtime).await;
    let mut tasks: JoinSet<Result<(), SyncError>> = JoinSet::new();
    for side in Side::BOTH {
        if runtime.side(side).flows {
            tasks.spawn(capture::run(shared.clone(), runtime.clone(), side, pushed));
        }
    }
    tasks.spawn(worker::run(shared.clone(), runtime.clone()));
    let mut listening = true;
    let mut alarm = runtime.alarm.subscribe();
    // An alarm raised before the supervisor began is seen too.
    alarm.mark_changed();
    loop {
        tokio::select! {
            Ok(()) = alarm.changed() => {
                let Some((rule, reason)) = alarm.borrow_and_update().clone() else {
                    continue;
                };
                tracing::warn!(map = %name, rule = %rule, reason = %reason, "An alert rule paused the map; it stays failed until an admin starts it.");
                runtime.halt();
                stop_tasks(&name, &mut tasks).await;
                runtime.fail_by_alert(&rule, reason);
                shared.states_changed.notify_waiters();
                return;
            }
            joined = tasks.join_next() => {
                let failure = match joined {
                    None => break,
                    Some(Ok(Ok(()))) => continue,
                    Some(Ok(Err(error))) => format!("{error}"),
                    Some(Err(error)) if error.is_panic() => {
                        let panic = error.into_panic();
                        let message = panic
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_owned())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "no message".into());
                        format!("a task of the map panicked: {message}")
                    }
                    Some(Err(_)) => continue,
                };
                tracing::error!(map = %name, reason = %failure, "The map failed and stopped; the other maps go on.");
                runtime.transition(MapState::Failed(failure));
                runtime.halt();
                stop_tasks(&name, &mut tasks).await;
                shared.states_changed.notify_waiters();
                return;
            }
            command = commands.recv(), if listening => {
                match command {
                    Some(MapCommand::Pause) => runtime.transition(MapState::Paused),
                    Some(MapCommand::Resume(Queued::Replay)) => {
                        runtime.transition(MapState::Resuming);
                    }
                    Some(MapCommand::Resume(queued)) => {
                        match set_aside(&shared, &runtime, queued).await {
                            Ok(()) => runtime.transition(MapState::Resuming),
                            Err(error) => {
                                let failure = format!("the queued changes could not be set aside on resume: {error}");
                                tracing::error!(map = %name, reason = %failure, "The map failed and stopped; the other maps go on.");
                                runtime.transition(MapState::Failed(failure));
                                runtime.halt();
                                stop_tasks(&name, &mut tasks).await;
                                shared.states_changed.notify_waiters();
                                return;
                            }
                        }
                    }
                    Some(MapCommand::Stop) => {
                        runtime.halt();
                        stop_tasks(&name, &mut tasks).await;
                        push::unregister(&shared, &runtime).await;
                        runtime.transition(MapState::Stopped);
                        shared.states_changed.notify_waiters();
                        return;
                    }
                    // The engine let go of its handle: it shuts down and
                    // halts every map.
                    None => listening = false,
                }
                shared.states_changed.notify_waiters();
            }
        }
    }
    if !matches!(runtime.state(), MapState::Failed(_)) {
        runtime.set_state(MapState::Stopped);
    }
    shared.states_changed.notify_waiters();
}

/// `queued` of a resume: every change queued while the map was paused
/// moved to the error queue (`Park`) or dropped (`Discard`), each with an
/// activity line, once the batches still in flight landed.
async fn set_aside(
    shared: &Shared,
    runtime: &MapRuntime,
    queued: Queued,
) -> Result<(), crate::checkpoint::CheckpointError> {
    let started = std::time::Instant::now();
    while !runtime.keys.none_in_flight() && started.elapsed() < GRACE {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for direction in runtime.directions().collect::<Vec<_>>() {
        let store = &shared.store;
        let name = runtime.name();
        let moved = match queued {
            Queued::Replay => 0,
            Queued::Park => {
                let n = store.park_queued(name, direction, "parked on resume (--queued park)")?;
                runtime
                    .counters(direction)
                    .count(crate::checkpoint::Action::Parked, n as u64);
                n
            }
            Queued::Discard => {
                store.discard_queued(name, direction, "discarded on resume (--queued discard)")?
            }
        };
        tracing::info!(map = %name, %direction, changes = moved, ?queued, "Set aside the changes queued while paused.");
    }
    Ok(())
}

/// Waits for the map's tasks to end after a halt, within [`GRACE`] plus a
/// margin; past that they are aborted (a batch in flight stays queued and
/// is written again at the next start, with the same effect).
async fn stop_tasks(name: &str, tasks: &mut JoinSet<Result<(), SyncError>>) {
    let drained = tokio::time::timeout(GRACE + Duration::from_secs(1), async {
        while let Some(joined) = tasks.join_next().await {
            if let Ok(Err(error)) = joined {
                tracing::warn!(map = %name, %error, "A task of the map ended with an error while stopping.");
            }
        }
    })
    .await;
    if drained.is_err() {
        tasks.shutdown().await;
    }
}
