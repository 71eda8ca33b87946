//! The worker of one map: waits for the maps it depends on, then takes a
//! batch of each direction in turn until both queues are empty, and
//! sleeps until a capture wakes it, a waiting lookup is due, the map's
//! state changes, or the map halts. While the map is paused it writes
//! nothing. A batch in flight when the map halts is finished (its write
//! and checkpoint) within [`GRACE`] before the worker returns; past that
//! it is dropped and stays queued.
//!
//! A batch that fails with a retriable error (a service fault, throttling)
//! stays queued and is tried again with backoff; a failing checkpoint
//! store ends the worker with the error, which fails the map.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::FlowError;
use super::pipeline::{self, Waiting};
use super::runtime::{GRACE, MapRuntime};
use super::{Shared, SyncError};

/// Runs `map`'s worker until the map halts.
pub(super) async fn run(shared: Arc<Shared>, map: Arc<MapRuntime>) -> Result<(), SyncError> {
    let name = map.name().to_owned();
    for dependency in &map.plan.depends_on {
        let Some(parent) = shared.maps.get(dependency) else {
            continue;
        };
        let mut ready = parent.ready.subscribe();
        tokio::select! {
            _ = ready.wait_for(|ready| *ready) => {}
            _ = tokio::time::sleep(shared.plan.engine.lookup_wait) => {
                tracing::warn!(map = %name, dependency = %dependency, "A dependency is not initialized yet; starting anyway.");
            }
            _ = map.halted() => return Ok(()),
        }
    }
    // Both sides read once before the first batch: a change made on each
    // side while the host was down meets its rival in the queues and is
    // settled by the map's policy, not by which capture ran first.
    let started = Instant::now();
    while !map.captured_all() && started.elapsed() < shared.plan.engine.lookup_wait {
        tokio::select! {
            _ = map.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = map.halted() => return Ok(()),
        }
    }
    let directions: Vec<_> = map.directions().collect();
    let mut waiting: HashMap<String, Waiting> = HashMap::new();
    let mut retry = super::capture::backoff();
    loop {
        if map.halting() {
            return Ok(());
        }
        let mut progressed = false;
        let mut failed = false;
        if !map.paused() {
            for &direction in &directions {
                if map.halting() {
                    return Ok(());
                }
                let run = pipeline::process(&shared, &map, direction, &mut waiting);
                tokio::pin!(run);
                let result = tokio::select! {
                    result = &mut run => result,
                    _ = map.halted() => {
                        // Give the batch in flight a moment to finish; past
                        // that, drop it: it stays queued and is written
                        // again at the next start, with the same effect.
                        match tokio::time::timeout(GRACE, &mut run).await {
                            Ok(result) => result,
                            Err(_) => {
                                tracing::warn!(map = %name, %direction, "Abandoned the batch in flight at shutdown; it is written again at the next start.");
                                return Ok(());
                            }
                        }
                    }
                };
                match result {
                    Ok(finished) => progressed |= finished > 0,
                    Err(error) if error.is_retriable() => {
                        failed = true;
                        tracing::warn!(map = %name, %direction, %error, "A batch failed; it stays queued and is retried.");
                    }
                    Err(FlowError::Checkpoint(error)) => return Err(error.into()),
                    Err(error) => {
                        return Err(SyncError::Setup {
                            detail: format!("map `{name}` ({direction}): {error}"),
                        });
                    }
                }
            }
            if !failed {
                retry = super::capture::backoff();
            }
            if !*map.ready.borrow()
                && waiting.is_empty()
                && map.captured_all()
                && directions
                    .iter()
                    .all(|d| shared.store.queued(&name, *d) == 0)
            {
                map.ready.send_replace(true);
                tracing::info!(map = %name, "Initial copy done.");
            }
            if progressed && !failed {
                continue;
            }
        }
        let pause = if failed {
            retry.next().unwrap_or(Duration::from_secs(30))
        } else {
            waiting
                .values()
                .map(|w| w.retry_at.saturating_duration_since(Instant::now()))
                .min()
                .unwrap_or(shared.plan.engine.poll_interval)
                .max(Duration::from_millis(20))
        };
        tokio::select! {
            _ = map.wake.notified() => {}
            _ = tokio::time::sleep(pause) => {}
            _ = map.halted() => return Ok(()),
        }
    }
}
