//! The worker of one map: waits for the maps it depends on, then keeps up
//! to `engine.batches_in_flight` batches of each direction in flight at
//! once, each decided, written and recorded by its own task, until both
//! queues are empty; then it sleeps until a capture wakes it, a waiting
//! lookup is due, the map's state changes, or the map halts.
//!
//! While the master side of a map's initial copy is being read, the
//! direction toward it takes no batch (`initial::holds`): every key the
//! master holds is queued before the other side's copy of it is decided,
//! however long the read takes.
//!
//! A batch is taken by the worker alone, and its keys are claimed
//! ([`super::keys`]) until its task ends: the next batch of either
//! direction leaves them out, so changes of one key apply in capture order
//! while other keys flow in parallel. While the map is paused no batch is
//! taken; those in flight finish. When the map halts, the batches in
//! flight are given [`GRACE`] to finish (their write and checkpoint);
//! past that they are dropped and stay queued.
//!
//! A batch that fails with a retriable error (a service fault, throttling)
//! stays queued; the worker takes no new batch for a backoff, while the
//! others in flight finish. A failing checkpoint store ends the worker
//! with the error, which fails the map.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::checkpoint::{CheckpointError, Direction};
use crate::map::Side;

use super::error::FlowError;
use super::runtime::{GRACE, MapRuntime, MapState};
use super::{Shared, SyncError};
use super::{initial, pipeline};

/// A batch task's end: its direction and how many changes it finished.
type Landed = (Direction, Result<usize, FlowError>);

/// Runs `map`'s worker until the map halts.
pub(super) async fn run(shared: Arc<Shared>, map: Arc<MapRuntime>) -> Result<(), SyncError> {
    let name = map.name().to_owned();
    for dependency in &map.plan.depends_on {
        let Some(parent) = shared.map(dependency) else {
            continue;
        };
        let mut ready = parent.ready.subscribe();
        tokio::select! {
            _ = ready.wait_for(|ready| *ready) => {}
            _ = tokio::time::sleep(shared.plan().engine.lookup_wait) => {
                tracing::warn!(map = %name, dependency = %dependency, "A dependency is not initialized yet; starting anyway.");
            }
            _ = map.halted() => return Ok(()),
        }
    }
    // Both sides read once before the first batch: a change made on each
    // side while the host was down meets its rival in the queues and is
    // settled by the map's policy, not by which capture ran first.
    let started = Instant::now();
    while !map.captured_all() && started.elapsed() < shared.plan().engine.lookup_wait {
        tokio::select! {
            _ = map.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = map.halted() => return Ok(()),
        }
    }
    let mut flights = Flights::new(&map, shared.plan().engine.batches_in_flight);
    let mut retry = super::capture::backoff();
    let mut resume_at: Option<Instant> = None;
    loop {
        if map.halting() {
            flights.land_all(&name).await;
            return Ok(());
        }
        let held_off = resume_at.is_some_and(|at| at > Instant::now());
        if !map.paused() && !held_off {
            resume_at = None;
            flights.fill(&shared, &map)?;
        }
        if flights.is_empty()
            && !*map.ready.borrow()
            && map.keys.none_waiting()
            && map.captured_all()
            && flights
                .directions
                .iter()
                .all(|d| shared.store.queued(&name, *d) == 0)
        {
            map.ready.send_replace(true);
            tracing::info!(map = %name, "Initial copy done.");
            if map.state() == MapState::Initializing {
                map.transition(MapState::Running);
            }
        }
        // Caught up: nothing queued that can be written is left of what
        // was queued while paused.
        if !held_off
            && flights.is_empty()
            && map.keys.none_waiting()
            && map.state() == MapState::Resuming
        {
            tracing::info!(map = %name, "Caught up with the changes queued while paused.");
            map.transition(MapState::Running);
            shared.states_changed.notify_waiters();
        }
        let pause = match resume_at {
            Some(at) => at.saturating_duration_since(Instant::now()),
            None => map
                .keys
                .next_due()
                .unwrap_or(shared.plan().engine.poll_interval)
                .max(Duration::from_millis(20)),
        };
        tokio::select! {
            Some(landed) = flights.tasks.join_next(), if !flights.is_empty() => {
                let (direction, result) = match landed {
                    Ok(landed) => landed,
                    // A batch task panicked: the map fails with its message.
                    Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                    Err(_) => continue,
                };
                match flights.landed(direction, result) {
                    Ok(()) => {
                        retry = super::capture::backoff();
                        map.reachable();
                    }
                    Err(error) if error.is_retriable() => {
                        tracing::warn!(map = %name, %direction, %error, "A batch failed; it stays queued and is retried.");
                        let target = Side::source_of(direction).other();
                        map.unreachable(&map.plan.side(target).system, error.to_string());
                        let wait = retry.next().unwrap_or(Duration::from_secs(30));
                        resume_at = Instant::now().checked_add(wait);
                    }
                    Err(FlowError::Checkpoint(error)) => return Err(error.into()),
                    Err(error) => {
                        return Err(SyncError::Setup {
                            detail: format!("map `{name}` ({direction}): {error}"),
                        });
                    }
                }
            }
            _ = map.wake.notified() => flights.rested(),
            _ = tokio::time::sleep(pause) => flights.rested(),
            _ = map.halted() => {}
        }
    }
}

/// The batches of one map in flight, per direction.
struct Flights {
    directions: Vec<Direction>,
    depth: usize,
    tasks: JoinSet<Landed>,
    /// Batches in flight per direction (indexed like `directions`).
    flying: Vec<usize>,
    /// Directions with nothing to take until something changes: their
    /// last take was empty, or their last batch finished nothing (only
    /// held changes).
    idle: Vec<bool>,
}

impl Flights {
    fn new(map: &MapRuntime, depth: usize) -> Flights {
        let directions: Vec<_> = map.directions().collect();
        Flights {
            depth: depth.max(1),
            tasks: JoinSet::new(),
            flying: vec![0; directions.len()],
            idle: vec![false; directions.len()],
            directions,
        }
    }

    fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    fn index(&self, direction: Direction) -> usize {
        self.directions
            .iter()
            .position(|d| *d == direction)
            .unwrap_or_default()
    }

    /// Takes batches, the directions in turn, until each direction has
    /// `depth` in flight or nothing to take.
    fn fill(&mut self, shared: &Arc<Shared>, map: &Arc<MapRuntime>) -> Result<(), CheckpointError> {
        loop {
            let mut took = false;
            for i in 0..self.directions.len() {
                if self.idle[i] || self.flying[i] >= self.depth || map.halting() {
                    continue;
                }
                let direction = self.directions[i];
                // Toward the master while its initial copy is read: the
                // other side's copy of a key waits for the master's.
                if initial::holds(shared, map, direction)? {
                    continue;
                }
                let (batch, claim) = pipeline::take(shared, map, direction)?;
                if batch.is_empty() {
                    self.idle[i] = true;
                    continue;
                }
                let (shared, map) = (shared.clone(), map.clone());
                self.tasks.spawn(async move {
                    // The claim frees the batch's keys when the task ends,
                    // or is aborted.
                    let _claim = claim;
                    let result = pipeline::process(&shared, &map, direction, batch).await;
                    (direction, result)
                });
                self.flying[i] += 1;
                took = true;
            }
            if !took {
                return Ok(());
            }
        }
    }

    /// A batch of `direction` ended with `result`.
    fn landed(
        &mut self,
        direction: Direction,
        result: Result<usize, FlowError>,
    ) -> Result<(), FlowError> {
        let i = self.index(direction);
        self.flying[i] = self.flying[i].saturating_sub(1);
        match result? {
            // Its keys are free again: what they held back may be taken.
            finished if finished > 0 => self.idle.fill(false),
            // Only held changes: this direction rests, the other may now
            // take the keys this batch held.
            _ => {
                self.idle.fill(false);
                self.idle[i] = true;
            }
        }
        Ok(())
    }

    /// Something may have changed (a capture, a due lookup): look again.
    fn rested(&mut self) {
        self.idle.fill(false);
    }

    /// Lets the batches in flight finish within [`GRACE`]; past that they
    /// are dropped: they stay queued and are written again at the next
    /// start, with the same effect.
    async fn land_all(&mut self, name: &str) {
        let landed = tokio::time::timeout(GRACE, async {
            while let Some(landed) = self.tasks.join_next().await {
                if let Ok((direction, Err(error))) = landed {
                    tracing::warn!(map = %name, %direction, %error, "A batch failed while the map stopped; it stays queued.");
                }
            }
        })
        .await;
        if landed.is_err() {
            tracing::warn!(map = %name, batches = self.tasks.len(), "Abandoned the batches in flight at shutdown; they are written again at the next start.");
            self.tasks.shutdown().await;
        }
    }
}
