//! The sync engine: per map and direction, changes captured from the
//! source into the durable queue, then filtered, mapped, run through the
//! map's plugins, their lookups resolved, written to the other side in
//! batches, and completed in one checkpoint transaction.
//!
//! - [`Engine::start`] connects the systems, loads the plugins and builds
//!   one `MapRuntime` per map (`runtime`): its plan, the per-side data
//!   computed once, its chain, counters, state and tasks (a capture per
//!   side that flows, one worker), supervised so that a failing task fails
//!   its map ([`MapState::Failed`]) and no other; plus the webhook receiver
//!   for finops data events and Dataverse webhooks when `engine.listen` is
//!   set. `push`: the host's own Dataverse webhook and each map's steps,
//!   registered at start and removed when the map stops ([`Push`]).
//!   [`RunningEngine::command`] pauses, resumes or stops one map;
//!   [`RunningEngine::queue_held`] says which of its directions' capture
//!   waits for a queue at a limit of `[engine.queue]` to drain.
//! - `error`: [`SyncError`] (stops the engine or a map) and the flow
//!   errors that say whether a read or a batch is retried.
//! - `capture`: Dataverse change tracking (delta links) into
//!   [`Checkpoints::capture_page`], and finops reconciliation (paged reads
//!   compared with stored row hashes) into [`Checkpoints::capture_seen`];
//!   `receiver`: finops data events, each read again as a hint and
//!   acknowledged only after the flush.
//! - `worker`: one task per map takes batches of both directions and keeps
//!   up to `engine.batches_in_flight` of each in flight; `keys` holds a
//!   batch's keys out of every other batch of either direction until it
//!   ends, so the two directions of one key never run at once; `pipeline`
//!   turns a batch into writes (echo check, conflict policy, filter and filter
//!   exit, mapping, plugins, lookups) and records the outcome.
//! - `conflict`: the map's policy between the two directions' changes of
//!   one key; `initial`: a map's initial copy (where each side's copy is,
//!   the phase of what it reads, what waits for it, its progress).
//! - `shape`: the map's field logic without I/O; `refs`: lookups;
//!   `system`: the connector of each system; `plugins`: the chain.
//! - `metrics`: [`RunningEngine::metrics`], the Prometheus text of the
//!   engine's counters, queues, latencies, plugins and systems.
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

pub mod alerts;
mod attempts;
mod budget;
mod canary;
mod capture;
mod conflict;
mod control;
mod decide;
mod echo;
mod error;
pub mod errors;
mod initial;
mod keys;
pub mod log;
mod metrics;
mod pipeline;
pub mod plugins;
mod push;
pub mod receiver;
mod record;
pub mod refs;
mod runtime;
pub mod shape;
mod status;
mod supervise;
mod swap;
pub mod system;
mod worker;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinHandle;

use crate::checkpoint::{Action, Checkpoints, Direction, Lifecycle, MapRecord};
use crate::connector::ConnectorOptions;
use crate::map::Plan;
use crate::metrics::Metrics;
use crate::plugin::{Runtime, RuntimeConfig};

pub use budget::Polling;
pub use canary::{CANARY_ROWS, Canary, CanaryRow};
pub use control::{ControlError, StartOptions};
pub use error::SyncError;
pub use errors::{ErrorQueueError, ErrorRow};
pub use initial::{
    CompanyProgress, CopyStage, InitialProgress, RowProgress, SideProgress, initial_progress,
};
pub use log::LogEntry;
pub use push::{Push, endpoint_name, steps_name};
pub use runtime::{MapCommand, MapState, Outage, Queued};
pub use status::{
    Backlog, CaptureStatus, LookupEdge, MapNode, MapStatus, dependency_graph, statuses, to_dot,
};
pub(crate) use swap::same_tables;
pub use swap::{Change, ConfigSource, Difference, SwapError, Swapped, diff};

use plugins::Chain;
use runtime::MapRuntime;
use system::System;

/// One thing the engine did, for the terminal view, tests and benchmarks.
#[derive(Debug, Clone, Serialize)]
pub struct SyncEvent {
    /// The map.
    pub map: String,
    /// The direction.
    pub direction: Direction,
    /// The row's key.
    pub key: String,
    /// What became of the change.
    pub what: Action,
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

    /// Counts `n` changes that came out as `action`.
    pub fn count(&self, action: Action, n: u64) {
        let counter = match action {
            Action::Written => &self.written,
            Action::Deleted => &self.deleted,
            Action::Echo => &self.echoes,
            Action::Filtered | Action::Skipped => &self.skipped,
            Action::ConflictLost => &self.conflicts,
            Action::Parked => &self.parked,
            // Waiting is not an outcome yet; the others are an admin's.
            Action::Waiting | Action::Discarded | Action::Retried | Action::Dismissed => return,
            // An alert's lines are of no flow.
            Action::Fired | Action::Resolved | Action::Notified | Action::Undelivered => return,
        };
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// What the engine's maps share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The plan in force: the config's, with the maps applied since.
    plan: arc_swap::ArcSwap<Plan>,
    pub store: Checkpoints,
    pub systems: HashMap<String, System>,
    /// Each map's runtime at the version it runs; a hot swap replaces
    /// one.
    maps: std::sync::RwLock<HashMap<String, Arc<MapRuntime>>>,
    /// Per pushed Dataverse system: the host's service endpoint, or why
    /// it could not be registered.
    pub webhooks: HashMap<String, Result<String, String>>,
    pub events: broadcast::Sender<SyncEvent>,
    /// Notified whenever a map's state changes.
    pub states_changed: Notify,
    /// Each system's polling budget, shared by the maps polling it.
    pub budgets: HashMap<String, budget::PollBudget>,
    /// The live metric families (write latencies, plugins).
    pub metrics: Metrics,
    /// The alert rules the API added, what fires, the webhooks'
    /// deliverers.
    pub alerts: alerts::Alerts,
    /// The plugin runtime every chain loads in.
    pub plugins: Option<Runtime>,
    /// The config the plan was built from, for hot swaps; locked for the
    /// whole of one.
    pub source: tokio::sync::Mutex<Option<ConfigSource>>,
    /// The rows live maps wrote inside Dataverse transactions still open.
    pub live: receiver::live::Transactions,
}

impl Shared {
    /// The plan in force.
    pub fn plan(&self) -> Arc<Plan> {
        self.plan.load_full()
    }

    /// Puts `plan` in force (a hot swap).
    pub fn set_plan(&self, plan: Plan) {
        self.plan.store(Arc::new(plan));
    }

    /// The runtime of map `name`, at the version it runs now.
    pub fn map(&self, name: &str) -> Option<Arc<MapRuntime>> {
        self.maps
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Every map's runtime.
    pub fn runtimes(&self) -> Vec<Arc<MapRuntime>> {
        self.maps
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Puts `runtime` in place of its map's (a new version, or a new map).
    pub fn put_map(&self, runtime: Arc<MapRuntime>) {
        self.maps
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(runtime.name().to_owned(), runtime);
    }

    /// The connected system a map side reads or writes.
    pub fn system(&self, map: &crate::map::MapPlan, side: shape::Side) -> &System {
        // Every system of the plan is connected at start.
        &self.systems[&map.side(side).system]
    }

    /// Reports what became of a change to the subscribers.
    pub fn emit(&self, map: &str, direction: Direction, key: &str, what: Action, detail: String) {
        let _ = self.events.send(SyncEvent {
            map: map.to_owned(),
            direction,
            key: key.to_owned(),
            what,
            detail,
        });
    }
}

/// Settings of [`Engine::start`] beyond the plan.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Connector settings for every system.
    pub connector: ConnectorOptions,
    /// The plugin runtime's settings. Without a `cache_dir`, compiled
    /// plugins are cached in the store's
    /// ([`registry::compiled_dir`](crate::registry::compiled_dir)).
    pub runtime: RuntimeConfig,
    /// The store, opened already (the config's registry plugins were
    /// resolved in it); `None` opens `plan.engine.data`.
    pub store: Option<Checkpoints>,
    /// The config the plan was built from: given, the engine takes hot
    /// swaps ([`RunningEngine::apply_maps`]).
    pub source: Option<Arc<std::sync::Mutex<Option<ConfigSource>>>>,
}

/// The sync engine.
#[derive(Debug)]
pub struct Engine;

/// A running engine; [`RunningEngine::shutdown`] stops it cleanly.
#[derive(Debug)]
pub struct RunningEngine {
    shared: Arc<Shared>,
    control: control::Control,
    webhook_addr: Option<SocketAddr>,
    webhook: std::sync::Mutex<Option<(watch::Sender<bool>, JoinHandle<()>)>>,
    /// The engine's background tasks (the activity log's pruner, the alert
    /// rules' evaluator), aborted at shutdown.
    background: std::sync::Mutex<Vec<JoinHandle<()>>>,
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
        let store = match options.store.clone() {
            Some(store) => store,
            None => Checkpoints::open(&plan.engine.data).map_err(|error| SyncError::Setup {
                detail: format!(
                    "the checkpoint store in {} (engine.data) cannot be opened: {error}; name a directory the host may create and write, used by no other running host",
                    plan.engine.data.display()
                ),
            })?,
        }
        .with_limits(capture::limits(&plan.engine.queue));
        let mut systems = HashMap::new();
        for (name, system) in &plan.systems {
            systems.insert(
                name.clone(),
                System::connect(system, options.connector.clone())?,
            );
        }
        let source = options
            .source
            .as_ref()
            .and_then(|source| source.lock().unwrap_or_else(|e| e.into_inner()).take());
        // A host that takes hot swaps may be given plugins later.
        let wanted = source.is_some() || plan.maps.iter().any(|m| !m.plugins.is_empty());
        let runtime = match wanted {
            // The plugin engine is made once, so it counts fuel from the
            // start when a plugin's `limits` set a fuel budget.
            true => Some(
                Runtime::new(
                    RuntimeConfig {
                        cache_dir: options
                            .runtime
                            .cache_dir
                            .clone()
                            .or_else(|| Some(crate::registry::compiled_dir(&plan.engine.data))),
                        ..options.runtime.clone()
                    }
                    .counting_fuel_for(plan.plugin_limits()),
                )
                .map_err(|error| SyncError::Setup {
                    detail: format!("the plugin runtime does not start: {error:#}"),
                })?,
            ),
            false => None,
        };
        let metrics = Metrics::new(
            runtime
                .as_ref()
                .map(|runtime| runtime.metrics().clone())
                .unwrap_or_default(),
        );
        let mut maps = HashMap::new();
        for map in &plan.maps {
            // Its definition numbered: every line it logs says which.
            let version = store.register_map_version(&map.name, &map.definition)?;
            // The config's `enabled` decides only a map's first start; from
            // then on its persisted state rules.
            let record = match store.map_record(&map.name)? {
                // A map an error stopped is tried again when the host
                // starts again: a restart is how an admin without the API
                // retries it. Its reason stays its last error. One an
                // alert rule paused waits for an admin's start.
                Some(record) if record.state == Lifecycle::Failed && record.alert.is_none() => {
                    let again = record.moved(Lifecycle::Running);
                    store.set_map_record(&map.name, &again)?;
                    again
                }
                Some(record) => record,
                None => {
                    let record = MapRecord::new(match map.enabled {
                        true => Lifecycle::Initializing,
                        false => Lifecycle::NotRunning,
                    });
                    store.set_map_record(&map.name, &record)?;
                    record
                }
            };
            let chain = match &runtime {
                // A map that runs now must load; one that may be started
                // later keeps why it cannot, and its start is refused.
                Some(runtime) if record.state.is_active() => Ok(Some(Chain::load(runtime, map)?)),
                Some(runtime) => Chain::load(runtime, map)
                    .map(Some)
                    .map_err(|error| error.to_string()),
                None => Ok(None),
            };
            if let Ok(Some(chain)) = &chain {
                store.use_map_version(&map.name, version, chain.ids());
            }
            let runtime = MapRuntime::new(map.clone(), chain, store.clone(), record, &metrics);
            // The registry versions it runs, kept from removal.
            runtime.record_plugins();
            maps.insert(map.name.clone(), Arc::new(runtime));
        }
        let (events, _) = broadcast::channel(4096);
        let listen = plan.engine.listen;
        let budgets = budget_of_each_system(&plan, &maps);
        let webhooks = push::ensure_endpoints(&plan, &systems).await;
        let alerts =
            alerts::Alerts::start(&store, &plan).map_err(|detail| SyncError::Setup { detail })?;
        let shared = Arc::new(Shared {
            plan: arc_swap::ArcSwap::from_pointee(plan),
            store,
            systems,
            maps: std::sync::RwLock::new(maps),
            webhooks,
            events,
            states_changed: Notify::new(),
            budgets,
            metrics,
            alerts,
            plugins: runtime,
            source: tokio::sync::Mutex::new(source),
            live: Default::default(),
        });
        let (webhook_addr, webhook) = match listen {
            Some(addr) => {
                let (stop, stopped) = watch::channel(false);
                let (bound, task) = receiver::serve(shared.clone(), addr, stopped).await?;
                (Some(bound), Some((stop, task)))
            }
            None => (None, None),
        };
        let control = control::Control::new(webhook.is_some());
        for map in &shared.plan().maps {
            let runtime = shared.map(&map.name).ok_or_else(|| SyncError::Setup {
                detail: format!("map `{}` has no runtime", map.name),
            })?;
            if runtime.state().lifecycle().is_active() {
                control.spawn(&shared, runtime).await;
            }
        }
        let pruner = log::spawn_pruner(shared.store.clone(), shared.plan().engine.log.retention());
        let evaluator = alerts::spawn_evaluator(shared.clone());
        Ok(RunningEngine {
            shared,
            control,
            webhook_addr,
            webhook: std::sync::Mutex::new(webhook),
            background: std::sync::Mutex::new(vec![pruner, evaluator]),
        })
    }
}

impl RunningEngine {
    /// The plan the engine runs: the config's, with the maps applied
    /// since.
    pub fn plan(&self) -> Arc<Plan> {
        self.shared.plan()
    }

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
        self.webhook_addr
    }

    /// The URL the events of system `system` are posted to (`https://`
    /// when the receiver serves TLS).
    pub fn webhook_url(&self, system: &str) -> Option<String> {
        let scheme = match self.shared.plan().receiver_tls {
            Some(_) => "https",
            None => "http",
        };
        self.webhook_addr()
            .map(|addr| format!("{scheme}://{addr}/events/{system}"))
    }

    /// How often each side of `map` that flows is polled: the configured
    /// interval, and what the system's polling budget makes of it.
    pub fn polling(&self, map: &str) -> Vec<(shape::Side, Polling)> {
        let Some(runtime) = self.shared.map(map) else {
            return Vec::new();
        };
        [shape::Side::Left, shape::Side::Right]
            .into_iter()
            .filter(|side| runtime.side(*side).flows)
            .map(|side| {
                let system = &runtime.plan.side(side).system;
                let configured = capture::configured_interval(
                    &self.shared,
                    &runtime,
                    side,
                    self.webhook_addr.is_some(),
                );
                (side, self.shared.budgets[system].status(system, configured))
            })
            .collect()
    }

    /// The requests, retries and throttling of system `system` so far.
    pub fn system_stats(&self, system: &str) -> Option<crate::connector::ConnectorStats> {
        self.shared
            .systems
            .get(system)
            .map(|system| match &system.connector {
                system::Connector::Dataverse(connector) => connector.stats(),
                system::Connector::Finops(connector) => connector.stats(),
            })
    }

    /// Counters of a map's direction.
    pub fn stats(&self, map: &str, direction: Direction) -> FlowStats {
        self.shared
            .map(map)
            .map(|runtime| runtime.counters(direction).snapshot())
            .unwrap_or_default()
    }

    /// Changes queued over every map and direction.
    pub fn queued(&self) -> usize {
        self.shared
            .plan()
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
        self.shared
            .runtimes()
            .into_iter()
            .all(|runtime| *runtime.ready.borrow())
    }

    /// Where `map`'s initial copy is: rows read, written, skipped and
    /// failed, the rate and an ETA, per map and per company; `None` when the
    /// engine runs no such map or its copy never began.
    pub fn initial_progress(&self, map: &str) -> Option<InitialProgress> {
        initial::progress(&self.shared, map).unwrap_or_else(|error| {
            tracing::warn!(map, %error, "The initial copy's progress could not be read.");
            None
        })
    }

    /// The state of every map, by name.
    pub fn states(&self) -> BTreeMap<String, MapState> {
        self.shared
            .runtimes()
            .into_iter()
            .map(|runtime| (runtime.name().to_owned(), runtime.state()))
            .collect()
    }

    /// The state of one map.
    pub fn state(&self, map: &str) -> Option<MapState> {
        self.shared.map(map).map(|runtime| runtime.state())
    }

    /// Whether Dataverse pushes the changes of `map`'s `side`: its webhook
    /// steps registered, refused (and why), or no push configured.
    pub fn push(&self, map: &str, side: shape::Side) -> Option<Push> {
        self.shared.map(map).map(|runtime| runtime.push_state(side))
    }

    /// Why capture waits in each direction of `map` whose queue reached a
    /// limit of `[engine.queue]` (empty: none does). The source keeps the
    /// changes not queued; they are read once the queue drains.
    pub fn queue_held(&self, map: &str) -> Result<Vec<(Direction, String)>, SyncError> {
        let runtime = self.shared.map(map).ok_or_else(|| SyncError::UnknownMap {
            map: map.to_owned(),
        })?;
        let mut held = Vec::new();
        for direction in runtime.directions() {
            if let Some(hold) = self.shared.store.queue_hold(map, direction)? {
                held.push((direction, capture::describe(&hold)));
            }
        }
        Ok(held)
    }

    /// Resolves when no map runs any more: every enabled map failed or
    /// stopped (there is nothing left to sync).
    pub async fn none_running(&self) {
        loop {
            let waiting = self.shared.states_changed.notified();
            let running = self
                .shared
                .runtimes()
                .into_iter()
                .any(|m| m.state().lifecycle().is_active());
            if !running {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(500), waiting).await;
        }
    }

    /// Stops capturing, lets each worker finish the batch in flight, then
    /// flushes the store.
    pub async fn shutdown(&self) -> Result<(), SyncError> {
        for runtime in self.shared.runtimes() {
            runtime.halt();
        }
        self.control.join_all().await;
        // Their copies of the store must go before the store is closed.
        let mut background =
            std::mem::take(&mut *self.background.lock().unwrap_or_else(|e| e.into_inner()));
        background.extend(self.shared.alerts.stop());
        for task in background {
            task.abort();
            let _ = task.await;
        }
        let webhook = self
            .webhook
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((stop, task)) = webhook {
            stop.send_replace(true);
            if let Err(error) = task.await {
                tracing::error!(%error, "The webhook receiver ended abnormally.");
            }
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

/// A dropped engine (a crash, in tests) takes its background tasks and
/// deliverers with it, so that their copies of the store do not keep it
/// open.
impl Drop for RunningEngine {
    fn drop(&mut self) {
        for task in self
            .background
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            task.abort();
        }
        self.shared.alerts.stop();
    }
}

/// The polling budget of each system: `polling_share` of its
/// `request_limit`, shared by the capture tasks of the enabled maps that
/// read it.
fn budget_of_each_system(
    plan: &Plan,
    maps: &HashMap<String, Arc<MapRuntime>>,
) -> HashMap<String, budget::PollBudget> {
    let mut pollers: HashMap<&str, usize> = HashMap::new();
    for map in plan.maps.iter().filter(|m| m.enabled) {
        for side in [shape::Side::Left, shape::Side::Right] {
            if maps.get(&map.name).is_some_and(|m| m.side(side).flows) {
                *pollers.entry(map.side(side).system.as_str()).or_default() += 1;
            }
        }
    }
    plan.systems
        .iter()
        .map(|(name, system)| {
            let budget = budget::PollBudget::new(
                system.request_limit,
                plan.engine.polling_share,
                pollers.get(name.as_str()).copied().unwrap_or(0),
            );
            (name.clone(), budget)
        })
        .collect()
}

/// The registry versions (`name@version`) the plugin steps of `map` run.
pub(crate) fn registry_ids(map: &crate::map::MapPlan) -> Vec<String> {
    map.plugins
        .iter()
        .filter_map(crate::map::PluginStep::registry_id)
        .collect()
}
