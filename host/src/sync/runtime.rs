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

use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;

use crate::checkpoint::Direction;
use crate::map::{MapPlan, Side};

use super::keys::Keys;
use super::plugins::Chain;
use super::push::{self, Push, Registration};
use super::shape;
use super::{FlowCounters, Shared, SyncError, capture, worker};

/// How long a map's tasks may take to finish the batch in flight once the
/// map or the engine stops.
pub(crate) const GRACE: Duration = Duration::from_secs(10);

/// Where a map is in its life.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "state", content = "reason")]
pub enum MapState {
    /// Capturing and writing.
    Running,
    /// Capturing into the durable queue; nothing is written.
    Paused,
    /// Its tasks ended (the map was stopped, or the engine shuts down).
    Stopped,
    /// An error stopped it; the reason says what and what to do.
    Failed(String),
}

/// What a map can be told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapCommand {
    /// Stop writing; capture goes on into the queue.
    Pause,
    /// Write again, the queued changes first, in order.
    Resume,
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
    /// The keys held back from the next batch (in flight, or waiting for
    /// a lookup).
    pub(super) keys: Arc<Keys>,
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
}

impl MapRuntime {
    /// The runtime of `plan`, with its loaded chain.
    pub fn new(plan: MapPlan, chain: Option<Chain>) -> MapRuntime {
        let side = |side: Side| SideData {
            fields: shape::side_fields(&plan, side),
            echo_fields: shape::echo_fields(&plan, side),
            select: capture::select(&plan, side),
            flows: shape::flows_to(&plan, side.other()),
        };
        let sides = [side(Side::Left), side(Side::Right)];
        let state = if plan.enabled {
            MapState::Running
        } else {
            MapState::Stopped
        };
        MapRuntime {
            ready: watch::channel(!plan.enabled).0,
            sides,
            chain,
            counters: Default::default(),
            keys: Arc::default(),
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

    fn set_state(&self, state: MapState) {
        self.state.send_replace(state);
        self.wake.notify_one();
    }

    /// Whether the worker may write now.
    pub fn paused(&self) -> bool {
        *self.state.borrow() == MapState::Paused
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
    loop {
        tokio::select! {
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
                runtime.set_state(MapState::Failed(failure));
                runtime.halt();
                stop_tasks(&name, &mut tasks).await;
                shared.states_changed.notify_waiters();
                return;
            }
            command = commands.recv(), if listening => {
                match command {
                    Some(MapCommand::Pause) => runtime.set_state(MapState::Paused),
                    Some(MapCommand::Resume) => runtime.set_state(MapState::Running),
                    Some(MapCommand::Stop) => {
                        runtime.halt();
                        stop_tasks(&name, &mut tasks).await;
                        push::unregister(&shared, &runtime).await;
                        runtime.set_state(MapState::Stopped);
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
