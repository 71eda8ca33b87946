//! The worker of one map: waits for the maps it depends on, then takes a
//! batch of each direction in turn until both queues are empty, and
//! sleeps until a capture wakes it, a waiting lookup is due, or shutdown.
//! A batch in flight at shutdown is finished (its write and checkpoint)
//! before the worker returns.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::checkpoint::Direction;

use super::Shared;
use super::pipeline::{self, Waiting};
use super::shape::{self, Side};

/// How long a batch in flight may take to finish after shutdown is asked.
const GRACE: Duration = Duration::from_secs(10);

/// Runs `map`'s worker until shutdown.
pub(super) async fn run(shared: Arc<Shared>, map: String) {
    let Some(plan) = shared.plan.map(&map) else {
        return;
    };
    let mut shutdown = shared.shutdown.clone();
    let Some(wake) = shared.wake.get(&map).cloned() else {
        return;
    };
    for dependency in &plan.depends_on {
        let Some(ready) = shared.ready.get(dependency) else {
            continue;
        };
        let mut ready = ready.subscribe();
        tokio::select! {
            _ = ready.wait_for(|ready| *ready) => {}
            _ = tokio::time::sleep(shared.plan.engine.lookup_wait) => {
                tracing::warn!(map = %map, dependency = %dependency, "A dependency is not initialized yet; starting anyway.");
            }
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
    // Both sides read once before the first batch: a change made on each
    // side while the host was down meets its rival in the queues and is
    // settled by the map's policy, not by which capture ran first.
    let started = Instant::now();
    while !shared.captured_all(plan) && started.elapsed() < shared.plan.engine.lookup_wait {
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
    let directions: Vec<Direction> = [Direction::LeftToRight, Direction::RightToLeft]
        .into_iter()
        .filter(|d| shape::flows_to(plan, Side::source_of(*d).other()))
        .collect();
    let mut waiting: HashMap<String, Waiting> = HashMap::new();
    let mut failures = 0u32;
    loop {
        if shared.stopping() {
            return;
        }
        let mut progressed = false;
        let mut failed = false;
        for &direction in &directions {
            if shared.stopping() {
                return;
            }
            let run = pipeline::process(&shared, plan, direction, &mut waiting);
            tokio::pin!(run);
            let result = tokio::select! {
                result = &mut run => result,
                _ = async { drop(shutdown.wait_for(|stop| *stop).await) } => {
                    // Give the batch in flight a moment to finish; past
                    // that, drop it: it stays queued and is written again
                    // at the next start, with the same effect.
                    match tokio::time::timeout(GRACE, &mut run).await {
                        Ok(result) => result,
                        Err(_) => {
                            tracing::warn!(map = %map, %direction, "Abandoned the batch in flight at shutdown; it is written again at the next start.");
                            return;
                        }
                    }
                }
            };
            match result {
                Ok(taken) => progressed |= taken > 0,
                Err(error) => {
                    failed = true;
                    tracing::warn!(map = %map, %direction, %error, "A batch failed; it stays queued and is retried.");
                }
            }
        }
        if !failed {
            failures = 0;
        }
        let ready = &shared.ready[&map];
        if !*ready.borrow()
            && waiting.is_empty()
            && shared.captured_all(plan)
            && directions
                .iter()
                .all(|d| shared.store.queued(&map, *d) == 0)
        {
            ready.send_replace(true);
            tracing::info!(map = %map, "Initial copy done.");
        }
        if progressed && !failed {
            continue;
        }
        let pause = if failed {
            failures += 1;
            Duration::from_millis(250 * 2u64.pow(failures.min(7)))
        } else {
            waiting
                .values()
                .map(|w| w.retry_at.saturating_duration_since(Instant::now()))
                .min()
                .unwrap_or(shared.plan.engine.poll_interval)
                .max(Duration::from_millis(20))
        };
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => return,
        }
    }
}
