//! A map's supervisor: runs its tasks (a capture per side that flows, one
//! worker) in a `JoinSet` and takes its [`MapCommand`]s. A task that fails
//! or panics puts the map in [`MapState::Failed`] with the reason, logged,
//! and stops its other tasks; the other maps keep running.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::map::Side;

use super::push;
use super::runtime::{GRACE, MapCommand, MapRuntime, MapState, Queued};
use super::{Shared, SyncError, capture, worker};

/// What a map's supervisor is told.
#[derive(Debug)]
pub(crate) enum Order {
    /// A lifecycle command.
    Command(MapCommand),
    /// A hot swap: end the tasks once the batches in flight landed, then
    /// start them again on this version (told on the sender once they
    /// run).
    Swap(Box<Swap>),
}

/// A version to swap to.
#[derive(Debug)]
pub(crate) struct Swap {
    /// The map at the new version, on the same life.
    pub next: Arc<MapRuntime>,
    /// Its number.
    pub version: u32,
    /// Told once the tasks run on it.
    pub done: tokio::sync::oneshot::Sender<()>,
}

fn spawn_tasks(
    shared: &Arc<Shared>,
    runtime: &Arc<MapRuntime>,
    tasks: &mut JoinSet<Result<(), SyncError>>,
    pushed: bool,
) {
    for side in Side::BOTH {
        if runtime.side(side).flows {
            tasks.spawn(capture::run(shared.clone(), runtime.clone(), side, pushed));
        }
    }
    tasks.spawn(worker::run(shared.clone(), runtime.clone()));
}

/// Runs `runtime`'s tasks and its orders until it stops or the engine
/// shuts down; a task that fails or panics fails the map, and only it.
pub(crate) async fn supervise(
    shared: Arc<Shared>,
    mut runtime: Arc<MapRuntime>,
    mut commands: mpsc::Receiver<Order>,
    pushed: bool,
) {
    let name = runtime.name().to_owned();
    // Before the first read, so a change after it is pushed or read.
    push::register(&shared, &runtime).await;
    let mut tasks: JoinSet<Result<(), SyncError>> = JoinSet::new();
    spawn_tasks(&shared, &runtime, &mut tasks, pushed);
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
                let command = match command {
                    Some(Order::Swap(swap)) => {
                        let Swap { next, version, done } = *swap;
                        // The batches in flight land on the version they
                        // started with; the next one starts on `next`.
                        runtime.halt();
                        stop_tasks(&name, &mut tasks).await;
                        runtime = next;
                        // Its steps as the new version needs them: another
                        // mode, other columns (a live map's PostImage).
                        push::register(&shared, &runtime).await;
                        activate(&shared, &runtime, version);
                        runtime.resume_tasks();
                        spawn_tasks(&shared, &runtime, &mut tasks, pushed);
                        tracing::info!(map = %name, version, "The map runs a new version.");
                        let _ = done.send(());
                        continue;
                    }
                    Some(Order::Command(command)) => Some(command),
                    None => None,
                };
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

/// Makes `runtime` (at `version`) its map's: the one the engine reaches,
/// the one its lines are stamped with, its registry plugins recorded.
pub(crate) fn activate(shared: &Shared, runtime: &Arc<MapRuntime>, version: u32) {
    shared.put_map(runtime.clone());
    let plugins = runtime
        .chain
        .as_ref()
        .map(super::plugins::Chain::ids)
        .unwrap_or_default();
    shared
        .store
        .use_map_version(runtime.name(), version, plugins);
    runtime.record_plugins();
}
