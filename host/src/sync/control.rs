//! The map lifecycle of a running engine, as admins drive it: start (with
//! an initial sync, optionally with the maps it depends on), pause (with
//! its dependents), resume, stop. Every operation on several maps is all or
//! nothing: each map's state is checked first, and one map that may not
//! move refuses the whole operation, naming that map and its state.
//!
//! `Control` owns the command channel and the supervisor task of each map
//! whose tasks run; a map started later gets them then.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::map::InitialSync;

use super::runtime::{self, MapCommand, MapRuntime, MapState, Queued};
use super::{RunningEngine, Shared};

/// Why a lifecycle operation was refused; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "code")]
pub enum ControlError {
    /// A map named is not in the config.
    #[error("map `{map}` is not in the config; the maps are: {known}")]
    UnknownMap {
        /// The name asked for.
        map: String,
        /// The maps of the config, comma-separated.
        known: String,
    },
    /// A map may not make this move from its current state.
    #[error("map `{map}` is {state}: {detail}")]
    Refused {
        /// The map.
        map: String,
        /// Its current state (`running`, `paused`, …).
        state: String,
        /// What was refused and what to do.
        detail: String,
    },
}

/// How [`RunningEngine::start_maps`] starts maps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartOptions {
    /// The initial sync: `left` or `right` copies the rows that exist,
    /// that side winning on keys both hold; `none` syncs only new changes.
    /// `None`: the map's own (`initial_sync` of its config). Given to a map
    /// that was copied before, `left` or `right` copies again every row
    /// not already copied.
    pub initial_sync: Option<InitialSync>,
    /// Start the maps the named maps depend on first, in dependency order.
    pub with_dependencies: bool,
}

/// The command channels and supervisors of the maps whose tasks run.
#[derive(Debug, Default)]
pub(crate) struct Control {
    commands: Mutex<BTreeMap<String, mpsc::Sender<super::supervise::Order>>>,
    supervisors: tokio::sync::Mutex<JoinSet<()>>,
    /// Serializes lifecycle operations: the checks of one see the states
    /// the previous one left.
    operation: tokio::sync::Mutex<()>,
    /// Whether the receiver runs (capture then polls as the catch-all).
    pub pushed: bool,
}

impl Control {
    /// No map's tasks running yet; `pushed`: whether the receiver runs.
    pub fn new(pushed: bool) -> Control {
        Control {
            pushed,
            ..Default::default()
        }
    }

    /// Starts `runtime`'s supervisor (its capture and worker tasks).
    pub async fn spawn(&self, shared: &Arc<Shared>, runtime: Arc<MapRuntime>) {
        let (send, receive) = mpsc::channel(16);
        self.lock_commands().insert(runtime.name().to_owned(), send);
        self.supervisors
            .lock()
            .await
            .spawn(super::supervise::supervise(
                shared.clone(),
                runtime,
                receive,
                self.pushed,
            ));
    }

    fn lock_commands(
        &self,
    ) -> std::sync::MutexGuard<'_, BTreeMap<String, mpsc::Sender<super::supervise::Order>>> {
        self.commands.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds off every other lifecycle operation (and hot swap) until
    /// the guard drops.
    pub async fn serialize(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.operation.lock().await
    }

    /// The command channel of `map`, while its supervisor runs.
    pub fn sender(&self, map: &str) -> Option<mpsc::Sender<super::supervise::Order>> {
        self.lock_commands()
            .get(map)
            .filter(|sender| !sender.is_closed())
            .cloned()
    }

    /// Lets go of every command channel and waits for the supervisors to
    /// end (the maps were halted).
    pub async fn join_all(&self) {
        std::mem::take(&mut *self.lock_commands());
        let mut supervisors = self.supervisors.lock().await;
        while let Some(joined) = supervisors.join_next().await {
            if let Err(error) = joined {
                tracing::error!(%error, "A map's supervisor ended abnormally.");
            }
        }
    }
}

/// The state a map moves to when told `command`.
fn target(command: MapCommand) -> fn(&MapState) -> bool {
    match command {
        MapCommand::Pause => |state| *state == MapState::Paused,
        MapCommand::Resume(_) => |state| matches!(state, MapState::Resuming | MapState::Running),
        MapCommand::Stop => |state| *state == MapState::Stopped,
    }
}

impl RunningEngine {
    fn runtime(&self, map: &str) -> Result<Arc<MapRuntime>, ControlError> {
        self.shared
            .map(map)
            .ok_or_else(|| ControlError::UnknownMap {
                map: map.to_owned(),
                known: self
                    .shared
                    .plan()
                    .maps
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// `names` and, transitively, the maps they depend on (`up`) or that
    /// depend on them (`down`), in the config's dependency order.
    fn closure(&self, names: &[String], up: bool, down: bool) -> Result<Vec<String>, ControlError> {
        let mut wanted: BTreeSet<String> = BTreeSet::new();
        let mut todo: Vec<String> = names.to_vec();
        while let Some(name) = todo.pop() {
            let runtime = self.runtime(&name)?;
            if !wanted.insert(name.clone()) {
                continue;
            }
            if up {
                todo.extend(runtime.plan.depends_on.iter().cloned());
            }
            if down {
                todo.extend(
                    self.shared
                        .plan()
                        .maps
                        .iter()
                        .filter(|m| m.depends_on.contains(&name))
                        .map(|m| m.name.clone()),
                );
            }
        }
        Ok(self
            .shared
            .plan()
            .maps
            .iter()
            .filter(|m| wanted.contains(&m.name))
            .map(|m| m.name.clone())
            .collect())
    }

    /// Starts `names`: each must be `not-running`, `stopped` or `failed`,
    /// and each map it depends on running (or, `with_dependencies`,
    /// started first). All or nothing.
    pub async fn start_maps(
        &self,
        names: &[String],
        options: &StartOptions,
    ) -> Result<Vec<String>, ControlError> {
        let _one = self.control.operation.lock().await;
        let order = self.closure(names, options.with_dependencies, false)?;
        let named: BTreeSet<&String> = names.iter().collect();
        let mut starting = Vec::new();
        for name in &order {
            let runtime = self.runtime(name)?;
            let state = runtime.state();
            let startable = matches!(
                state,
                MapState::NotRunning | MapState::Stopped | MapState::Failed(_)
            );
            if !startable {
                if named.contains(name) {
                    return Err(refused(
                        name,
                        &state,
                        "it is already started; stop it first to start it again",
                    ));
                }
                // A dependency that already runs needs no start.
                continue;
            }
            if let Some(error) = &runtime.load_error {
                return Err(refused(
                    name,
                    &state,
                    &format!("its plugins cannot be loaded: {error}"),
                ));
            }
            starting.push(name.clone());
        }
        for name in &starting {
            let runtime = self.runtime(name)?;
            let idle: Vec<&String> = runtime
                .plan
                .depends_on
                .iter()
                .filter(|parent| {
                    !starting.contains(parent)
                        && self
                            .shared
                            .map(parent)
                            .is_some_and(|p| !p.state().lifecycle().is_active())
                })
                .collect();
            if !idle.is_empty() {
                let list = idle
                    .iter()
                    .map(|p| {
                        format!(
                            "`{p}` ({})",
                            self.shared
                                .map(p)
                                .map_or(MapState::NotRunning, |m| m.state())
                                .lifecycle()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(refused(
                    name,
                    &runtime.state(),
                    &format!(
                        "it depends on maps that are not running: {list}; start them first, or add --with-dependencies"
                    ),
                ));
            }
        }
        for name in &starting {
            let runtime = self.runtime(name)?.clone();
            if let Some(mode) = options.initial_sync {
                runtime.set_initial_sync(Some(mode.as_str().to_owned()));
            }
            let mode = runtime.initial_sync();
            let copied_before = self.shared.store.initial_begun(name).map_err(|error| {
                refused(
                    name,
                    &runtime.state(),
                    &format!("its store cannot be read: {error}"),
                )
            })?;
            // Asked for again on a map copied before: every row not copied
            // yet is copied.
            let copies = match (copied_before, options.initial_sync, mode.master()) {
                (true, Some(_), Some(_)) => {
                    self.shared.store.rerun_initial(name).map_err(|error| {
                        refused(
                            name,
                            &runtime.state(),
                            &format!("its copy cannot be asked again: {error}"),
                        )
                    })?;
                    true
                }
                (false, _, Some(_)) => true,
                _ => false,
            };
            runtime.rearm();
            runtime.transition(match copies {
                true => MapState::Initializing,
                false => MapState::Running,
            });
            self.control.spawn(&self.shared, runtime).await;
            tracing::info!(map = %name, initial_sync = mode.as_str(), "Map started.");
        }
        self.shared.states_changed.notify_waiters();
        Ok(starting)
    }

    /// Pauses `names` (and, `with_dependents`, the running maps that depend
    /// on them): each named map must be `running`. All or nothing.
    pub async fn pause_maps(
        &self,
        names: &[String],
        with_dependents: bool,
    ) -> Result<Vec<String>, ControlError> {
        let _one = self.control.operation.lock().await;
        let order = self.closure(names, false, with_dependents)?;
        let named: BTreeSet<&String> = names.iter().collect();
        let mut pausing = Vec::new();
        for name in &order {
            let state = self.runtime(name)?.state();
            match state {
                MapState::Running => pausing.push(name.clone()),
                _ if named.contains(name) => {
                    return Err(refused(name, &state, "only a running map can be paused"));
                }
                // A dependent that does not run has nothing to pause.
                _ => {}
            }
        }
        // Dependents first: none writes a row whose parent stops moving.
        pausing.reverse();
        for name in &pausing {
            self.send(name, MapCommand::Pause).await;
        }
        Ok(pausing)
    }

    /// Resumes `names`: each must be `paused`. All or nothing.
    pub async fn resume_maps(
        &self,
        names: &[String],
        queued: Queued,
    ) -> Result<Vec<String>, ControlError> {
        let _one = self.control.operation.lock().await;
        let order = self.closure(names, false, false)?;
        for name in &order {
            let state = self.runtime(name)?.state();
            if state != MapState::Paused {
                return Err(refused(name, &state, "only a paused map can be resumed"));
            }
        }
        for name in &order {
            self.send(name, MapCommand::Resume(queued)).await;
        }
        Ok(order)
    }

    /// Stops `names`: each must be started (initializing, running, paused,
    /// resuming) or failed. All or nothing.
    pub async fn stop_maps(&self, names: &[String]) -> Result<Vec<String>, ControlError> {
        let _one = self.control.operation.lock().await;
        let order = self.closure(names, false, false)?;
        for name in &order {
            let state = self.runtime(name)?.state();
            if matches!(state, MapState::NotRunning | MapState::Stopped) {
                return Err(refused(name, &state, "it does not run"));
            }
        }
        for name in order.iter().rev() {
            let runtime = self.runtime(name)?;
            if matches!(runtime.state(), MapState::Failed(_)) {
                // Its tasks already ended: its steps go, and the state
                // moves.
                super::push::unregister(&self.shared, &runtime).await;
                runtime.transition(MapState::Stopped);
            } else {
                self.send(name, MapCommand::Stop).await;
            }
        }
        self.shared.states_changed.notify_waiters();
        Ok(order)
    }

    /// Resubmits the failed rows of `map`'s initial copy (`only_failed`),
    /// or copies again every row not already copied; returns how many rows
    /// (or sides) it asked for. The map must be started.
    pub async fn rerun_initial(&self, map: &str, only_failed: bool) -> Result<usize, ControlError> {
        let _one = self.control.operation.lock().await;
        let runtime = self.runtime(map)?;
        let state = runtime.state();
        if !state.lifecycle().is_active() {
            return Err(refused(
                map,
                &state,
                "start it first; a rerun runs in a started map",
            ));
        }
        let store = &self.shared.store;
        let asked = match only_failed {
            true => store.rerun_failed(map),
            false => store.rerun_initial(map),
        }
        .map_err(|error| refused(map, &state, &format!("the store failed: {error}")))?;
        if !only_failed && asked > 0 && state.writes() {
            runtime.recopy();
            runtime.transition(MapState::Initializing);
        }
        runtime.wake.notify_one();
        Ok(asked)
    }

    /// Sends `command` to `map` and waits (a bounded time) until its state
    /// shows it; it takes effect between batches. No check of the map's
    /// state is made: the lifecycle operations above make them.
    pub async fn command(&self, map: &str, command: MapCommand) -> Result<(), super::SyncError> {
        let unknown = || super::SyncError::UnknownMap {
            map: map.to_owned(),
        };
        self.shared.map(map).ok_or_else(unknown)?;
        self.send(map, command).await;
        Ok(())
    }

    async fn send(&self, map: &str, command: MapCommand) {
        let Some(runtime) = self.shared.map(map) else {
            return;
        };
        let mut state = runtime.watch_state();
        // A map whose supervisor ended (stopped or failed) takes no command.
        let Some(sender) = self.control.sender(map) else {
            return;
        };
        if sender
            .send(super::supervise::Order::Command(command))
            .await
            .is_err()
        {
            return;
        }
        let wanted = target(command);
        let _ = tokio::time::timeout(
            runtime::GRACE + Duration::from_secs(2),
            state.wait_for(|state| wanted(state) || matches!(state, MapState::Failed(_))),
        )
        .await;
    }
}

fn refused(map: &str, state: &MapState, detail: &str) -> ControlError {
    ControlError::Refused {
        map: map.to_owned(),
        state: state.lifecycle().to_string(),
        detail: detail.to_owned(),
    }
}
