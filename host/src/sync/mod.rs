//! The sync engine: per map and direction, changes captured from the
//! source into the durable queue, then filtered, mapped, run through the
//! map's plugins, their lookups resolved, written to the other side in
//! batches, and completed in one checkpoint transaction.
//!
//! - [`Engine::start`] connects the systems, loads the plugins and spawns,
//!   per map, one capture task per side and one worker; plus the webhook
//!   receiver for finops data events when `engine.listen` is set.
//! - `capture`: Dataverse change tracking (delta links) and finops
//!   row-version polling into [`Checkpoints::capture_page`]; `webhook`:
//!   finops data events, acknowledged only after the flush.
//! - `worker`: one task per map takes a batch of each direction in turn,
//!   so the two directions of one key never run at once; `pipeline` turns
//!   a batch into writes (echo check, conflict policy, filter and filter
//!   exit, mapping, plugins, lookups) and records the outcome.
//! - `conflict`: the map's policy between the two directions' changes of
//!   one key.
//! - `shape`: the map's field logic without I/O; `refs`: lookups;
//!   `system`: the connector of each system; `plugins`: the chain.
//!
//! Invariants:
//! - A change leaves its queue only in the transaction that records its
//!   outcome (written, deleted, echo, skipped, conflict lost) after the
//!   target confirmed; a crash anywhere before writes the batch again, and
//!   writes are upserts and deletes by key (at least once, exactly-once
//!   effect).
//! - Changes of one key are applied in capture order; a key whose change
//!   failed is parked with its later changes behind it; a key waiting for a
//!   lookup holds its later changes too; other keys flow.
//! - Every row the host writes leaves an echo fingerprint over the target
//!   side's mapped fields (the side's last image plus what was written);
//!   the side reporting exactly that back is dropped as an echo.
//! - Conflicts (a change of a key with a non-echo change of the other side
//!   still queued) are settled by the map's policy in the one worker of the
//!   map; the loser is logged with both versions.
//!
//! Boundary: the engine drives connectors, the checkpoint store and the
//! plugin runtime; it speaks no HTTP itself except the webhook receiver.

mod capture;
mod conflict;
mod pipeline;
pub mod plugins;
pub mod refs;
pub mod shape;
pub mod system;
mod webhook;
mod worker;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinHandle;

use crate::checkpoint::{CheckpointError, Checkpoints, Direction};
use crate::connector::ConnectorOptions;
use crate::map::Plan;
use crate::plugin::{Runtime, RuntimeConfig};

use plugins::Chain;
use system::System;

/// Errors that stop the engine (row-level problems park rows instead).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The engine cannot start as configured.
    #[error("cannot start the sync engine: {detail}")]
    Setup {
        /// What is wrong and what to do.
        detail: String,
    },
    /// The checkpoint store failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// One thing the engine did, for the terminal view, tests and benchmarks.
#[derive(Debug, Clone, Serialize)]
pub struct SyncEvent {
    /// The map.
    pub map: String,
    /// The direction.
    pub direction: Direction,
    /// The row's key.
    pub key: String,
    /// `written`, `deleted`, `echo`, `filtered`, `skipped`, `conflict-lost`,
    /// `parked`, `waiting`.
    pub what: &'static str,
    /// Details for people.
    pub detail: String,
}

/// Counters of one map and direction.
#[derive(Debug, Default)]
pub struct FlowCounters {
    /// Rows upserted on the target.
    pub written: AtomicU64,
    /// Rows deleted on the target.
    pub deleted: AtomicU64,
    /// Changes recognised as the host's own writes.
    pub echoes: AtomicU64,
    /// Changes dropped by a filter or a plugin.
    pub skipped: AtomicU64,
    /// Changes that lost a conflict.
    pub conflicts: AtomicU64,
    /// Changes parked.
    pub parked: AtomicU64,
    /// Changes captured into the queue.
    pub captured: AtomicU64,
}

/// A snapshot of [`FlowCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FlowStats {
    /// Rows upserted on the target.
    pub written: u64,
    /// Rows deleted on the target.
    pub deleted: u64,
    /// Echoes dropped.
    pub echoes: u64,
    /// Changes filtered or skipped.
    pub skipped: u64,
    /// Conflicts lost.
    pub conflicts: u64,
    /// Changes parked.
    pub parked: u64,
    /// Changes captured.
    pub captured: u64,
}

impl FlowCounters {
    fn snapshot(&self) -> FlowStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        FlowStats {
            written: get(&self.written),
            deleted: get(&self.deleted),
            echoes: get(&self.echoes),
            skipped: get(&self.skipped),
            conflicts: get(&self.conflicts),
            parked: get(&self.parked),
            captured: get(&self.captured),
        }
    }
}

/// What the engine's tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub plan: Plan,
    pub store: Checkpoints,
    pub systems: HashMap<String, System>,
    pub chains: HashMap<String, Chain>,
    pub wake: HashMap<String, Arc<Notify>>,
    pub counters: HashMap<(String, Direction), FlowCounters>,
    pub events: broadcast::Sender<SyncEvent>,
    pub shutdown: watch::Receiver<bool>,
    /// Maps whose initial capture and first drain are done.
    pub ready: HashMap<String, watch::Sender<bool>>,
    /// The map sides whose capture has read to the end once.
    pub captured_once: std::sync::Mutex<std::collections::HashSet<(String, shape::Side)>>,
}

impl Shared {
    pub fn counters(&self, map: &str, direction: Direction) -> &FlowCounters {
        // Every map and direction has counters from the start.
        &self.counters[&(map.to_owned(), direction)]
    }

    pub fn emit(
        &self,
        map: &str,
        direction: Direction,
        key: &str,
        what: &'static str,
        detail: String,
    ) {
        let _ = self.events.send(SyncEvent {
            map: map.to_owned(),
            direction,
            key: key.to_owned(),
            what,
            detail,
        });
    }

    pub fn mark_captured(&self, map: &str, side: shape::Side) {
        let first = self
            .captured_once
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((map.to_owned(), side));
        if first && let Some(wake) = self.wake.get(map) {
            wake.notify_one();
        }
    }

    /// Whether every capturing side of `map` has read to the end once.
    pub fn captured_all(&self, map: &crate::map::MapPlan) -> bool {
        let done = self.captured_once.lock().unwrap_or_else(|e| e.into_inner());
        [shape::Side::Left, shape::Side::Right]
            .into_iter()
            .filter(|side| shape::flows_to(map, side.other()))
            .all(|side| done.contains(&(map.name.clone(), side)))
    }

    pub fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// Settings of [`Engine::start`] beyond the plan.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Connector settings for every system.
    pub connector: ConnectorOptions,
    /// The plugin runtime's settings.
    pub runtime: RuntimeConfig,
}

/// The sync engine.
#[derive(Debug)]
pub struct Engine;

/// A running engine; [`RunningEngine::shutdown`] stops it cleanly.
#[derive(Debug)]
pub struct RunningEngine {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    webhook: Option<SocketAddr>,
}

impl Engine {
    /// Opens the checkpoint store at `plan.engine.data`, connects the
    /// systems, loads the plugins and starts every enabled map.
    pub async fn start(plan: Plan, options: EngineOptions) -> Result<RunningEngine, SyncError> {
        for map in plan.maps.iter().filter(|m| m.enabled) {
            for mapping in shape::mappings(map) {
                if let Some(lookup) = &mapping.lookup
                    && lookup
                        .map
                        .as_deref()
                        .and_then(|name| plan.map(name))
                        .is_none()
                {
                    return Err(SyncError::Setup {
                        detail: format!(
                            "map `{}`: the lookup `{}.{}` does not say which map syncs its table; write `… via MAP`",
                            map.name,
                            mapping.right.as_deref().unwrap_or_default(),
                            lookup.key_field
                        ),
                    });
                }
            }
        }
        let store = Checkpoints::open(&plan.engine.data)?;
        let mut systems = HashMap::new();
        for (name, system) in &plan.systems {
            systems.insert(
                name.clone(),
                System::connect(system, options.connector.clone())?,
            );
        }
        let mut chains = HashMap::new();
        if plan.maps.iter().any(|m| !m.plugins.is_empty()) {
            let runtime =
                Runtime::new(options.runtime.clone()).map_err(|error| SyncError::Setup {
                    detail: format!("the plugin runtime does not start: {error:#}"),
                })?;
            for map in plan.maps.iter().filter(|m| m.enabled) {
                chains.insert(map.name.clone(), Chain::load(&runtime, map)?);
            }
        }
        let (stop, shutdown) = watch::channel(false);
        let (events, _) = broadcast::channel(4096);
        let mut wake = HashMap::new();
        let mut counters = HashMap::new();
        let mut ready = HashMap::new();
        for map in &plan.maps {
            wake.insert(map.name.clone(), Arc::new(Notify::new()));
            ready.insert(map.name.clone(), watch::channel(!map.enabled).0);
            for direction in [Direction::LeftToRight, Direction::RightToLeft] {
                counters.insert((map.name.clone(), direction), FlowCounters::default());
            }
        }
        let listen = plan.engine.listen;
        let shared = Arc::new(Shared {
            plan,
            store,
            systems,
            chains,
            wake,
            counters,
            events,
            shutdown,
            ready,
            captured_once: Default::default(),
        });
        let mut tasks = Vec::new();
        let webhook = match listen {
            Some(addr) => {
                let (bound, task) = webhook::serve(shared.clone(), addr).await?;
                tasks.push(task);
                Some(bound)
            }
            None => None,
        };
        for map in shared.plan.maps.iter().filter(|m| m.enabled) {
            for side in [shape::Side::Left, shape::Side::Right] {
                if shape::flows_to(map, side.other()) {
                    tasks.push(tokio::spawn(capture::run(
                        shared.clone(),
                        map.name.clone(),
                        side,
                        webhook.is_some(),
                    )));
                }
            }
            tasks.push(tokio::spawn(worker::run(shared.clone(), map.name.clone())));
        }
        Ok(RunningEngine {
            shared,
            stop,
            tasks,
            webhook,
        })
    }
}

impl RunningEngine {
    /// The checkpoint store.
    pub fn checkpoints(&self) -> &Checkpoints {
        &self.shared.store
    }

    /// What the engine does from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<SyncEvent> {
        self.shared.events.subscribe()
    }

    /// The address of the webhook receiver, when one runs.
    pub fn webhook_addr(&self) -> Option<SocketAddr> {
        self.webhook
    }

    /// The URL finops data events for system `system` are posted to.
    pub fn webhook_url(&self, system: &str) -> Option<String> {
        self.webhook
            .map(|addr| format!("http://{addr}/events/{system}"))
    }

    /// Counters of a map's direction.
    pub fn stats(&self, map: &str, direction: Direction) -> FlowStats {
        self.shared
            .counters
            .get(&(map.to_owned(), direction))
            .map(FlowCounters::snapshot)
            .unwrap_or_default()
    }

    /// Changes queued over every map and direction.
    pub fn queued(&self) -> usize {
        self.shared
            .plan
            .maps
            .iter()
            .flat_map(|m| {
                [Direction::LeftToRight, Direction::RightToLeft]
                    .map(|d| self.shared.store.queued(&m.name, d))
            })
            .sum()
    }

    /// Whether every enabled map finished its initial copy.
    pub fn initialized(&self) -> bool {
        self.shared.ready.values().all(|ready| *ready.borrow())
    }

    /// Stops capturing, lets each worker finish the batch in flight, then
    /// flushes the store.
    pub async fn shutdown(self) -> Result<(), SyncError> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.shared.store.flush()?;
        // The webhook server's connection tasks let go of the engine's state
        // a moment after the server stops; wait for them, so that the
        // checkpoint store is closed (and its lock released) on return.
        let started = std::time::Instant::now();
        while Arc::strong_count(&self.shared) > 1 && started.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }
}
