//! [`MapRuntime`]: one map of a running engine at one version of its
//! definition: its plan, the per-side data computed once from it, its
//! plugin chain; and through it the map's [`MapLife`]: its counters, its
//! state, its record, the keys its batches hold. A map takes
//! [`MapCommand`]s through a channel (its supervisor, `supervise.rs`), so
//! one map can be paused, resumed, stopped or swapped to a new version
//! without touching the others.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::{Notify, watch};

use crate::checkpoint::{Checkpoints, Direction, Lifecycle, MapRecord};
use crate::map::{InitialSync, MapPlan, Side};
use crate::metrics::Metrics;

use super::attempts::Attempts;
use super::keys::Keys;
use super::plugins::Chain;
use super::push::{Push, Registration};
use super::shape;
use super::{FlowCounters, capture};

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

/// One map of a running engine, at one version of its definition: the
/// plan, what is computed from it, its loaded chain. What the map is
/// beyond a version (its state, counters, queues' keys, record) is its
/// [`MapLife`], shared by every version it runs: a hot swap makes a new
/// `MapRuntime` on the same life, and the map's tasks start again on it
/// (reached through `Deref`).
#[derive(Debug)]
pub(crate) struct MapRuntime {
    pub plan: MapPlan,
    sides: [SideData; 2],
    pub chain: Option<Chain>,
    /// Per direction that flows (by source side, as `counters`): the write
    /// latency histogram of the engine's metrics, its label set resolved
    /// once.
    latency: [Option<Histogram>; 2],
    /// Why the map's plugins could not be loaded, if so: it cannot start.
    pub load_error: Option<String>,
    life: Arc<MapLife>,
}

impl std::ops::Deref for MapRuntime {
    type Target = MapLife;

    fn deref(&self) -> &MapLife {
        &self.life
    }
}

/// What a map is across the versions it runs.
#[derive(Debug)]
pub(crate) struct MapLife {
    counters: [FlowCounters; 2],
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
    /// The target system the map cannot reach now, since when, and why.
    outage: Mutex<Option<Outage>>,
    /// An alert rule that pauses the map: the rule and the reason.
    pub(super) alarm: watch::Sender<Option<(String, String)>>,
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
        let state = MapState::of_record(&record);
        let life = MapLife {
            ready: watch::channel(!record.state.is_active()).0,
            outage: Mutex::new(None),
            alarm: watch::channel(None).0,
            started: Mutex::new(chrono::Utc::now()),
            store,
            record: Mutex::new(record),
            counters: Default::default(),
            keys: Arc::default(),
            attempts: Attempts::default(),
            wake: Notify::new(),
            captured: Default::default(),
            state: watch::channel(state).0,
            halt: watch::channel(false).0,
            push: Mutex::new([(Push::Off, None), (Push::Off, None)]),
        };
        MapRuntime::of_life(plan, chain, Arc::new(life), metrics)
    }

    /// `plan` with its chain on the life of this map: the version a hot
    /// swap starts the map's tasks on.
    pub fn next_version(
        &self,
        plan: MapPlan,
        chain: Result<Option<Chain>, String>,
        metrics: &Metrics,
    ) -> MapRuntime {
        MapRuntime::of_life(plan, chain, self.life.clone(), metrics)
    }

    fn of_life(
        plan: MapPlan,
        chain: Result<Option<Chain>, String>,
        life: Arc<MapLife>,
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
        let (chain, load_error) = match chain {
            Ok(chain) => (chain, None),
            Err(error) => (None, Some(error)),
        };
        MapRuntime {
            sides,
            chain,
            load_error,
            latency,
            plan,
            life,
        }
    }

    /// The map's name.
    pub fn name(&self) -> &str {
        &self.plan.name
    }

    /// The run-time data of one side.
    pub fn side(&self, side: Side) -> &SideData {
        &self.sides[side.index()]
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

    /// Moves the map to `state`, persisted first, so that a restart finds
    /// it there. A failure's reason is also kept as the last error. A
    /// store that cannot be written is logged: the map keeps the state in
    /// memory (the store's own failure fails the map at its next step).
    pub fn transition(&self, state: MapState) {
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
        drop(record);
        self.set_state(state);
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

    /// Records the registry plugins this version runs as the map's, so
    /// that the registry keeps them (persisted with its state).
    pub fn record_plugins(&self) {
        let plugins = super::registry_ids(&self.plan);
        let mut record = self.record.lock().unwrap_or_else(|e| e.into_inner());
        if record.plugins == plugins {
            return;
        }
        record.plugins = plugins;
        if let Err(error) = self.store.set_map_record(self.name(), &record) {
            tracing::error!(map = %self.name(), %error, "The map's plugins could not be stored.");
        }
    }

    /// Moves the map to `failed` with `reason`, paused by alert rule
    /// `rule` (persisted first).
    pub(super) fn fail_by_alert(&self, rule: &str, reason: String) {
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
}

impl MapLife {
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

    /// The counters of one direction.
    pub fn counters(&self, direction: Direction) -> &FlowCounters {
        &self.counters[Side::source_of(direction).index()]
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
    pub(super) fn set_state(&self, state: MapState) {
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

    /// Lifts the halt of tasks that ended for a hot swap: the sides read
    /// and the copy done stay as they were.
    pub fn resume_tasks(&self) {
        self.halt.send_replace(false);
    }
}
