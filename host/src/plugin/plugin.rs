//! [`Plugin`]: one loaded plugin version, ready to be called.
//!
//! Loading inspects the bytes (see [`inspect`](super::inspect)), compiles
//! them once (through the on-disk cache), and links them into an
//! [`InstancePre`], with the export indices of the contract version it was
//! built against. A call (see `calls.rs`) takes a warm instance or makes a
//! fresh one from the `InstancePre`, arms the deadline, calls the one export
//! for the whole batch, and checks the result against the contract.
//!
//! Each call's wall-clock time and each trap (by kind) are reported to the
//! runtime's metrics through the plugin's `PluginMeter`.
//!
//! **Invariant**: an instance that trapped or broke the contract is dropped,
//! never called again; the next call gets a fresh one. Warm instances are
//! kept only after a clean call, and replaced after
//! [`PluginLimits::calls_per_instance`] calls.

use super::bindings::{released, wire};
use super::engine::{MAX_MEMORY, Runtime};
use super::error::{PluginError, PluginTrap, TrapKind};
use super::inspect::{Inspection, inspect};
use super::limits::{LogLine, PluginLimits, StoreState};
use crate::metrics::PluginMeter;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use wasmtime::component::{Instance, InstancePre};
use wasmtime::{Store, Trap, UpdateDeadline};

/// Warm instances kept per plugin version.
const WARM_INSTANCES: usize = 4;

/// A loaded plugin version.
pub struct Plugin {
    runtime: Runtime,
    inspection: Inspection,
    pub(super) id: String,
    pub(super) limits: PluginLimits,
    pre: InstancePre<StoreState>,
    pub(super) exports: Exports,
    from_cache: bool,
    warm: Mutex<Vec<Warm>>,
    health: Mutex<Health>,
    /// Its call latency and traps, in the runtime's metrics.
    meter: PluginMeter,
    /// The fields each interface reads under a direction and settings, as
    /// the plugin answered (for [`Plugin::filter`] and [`Plugin::transform`]).
    pub(super) reads: Mutex<Vec<super::calls::ReadsEntry>>,
}

/// The export indices of a plugin, by the contract version it was built
/// against.
pub(super) enum Exports {
    /// The current contract, 0.2.0.
    Current {
        filter: Option<wire::FilterIndices>,
        transform: Option<wire::TransformIndices>,
    },
    /// The released contract 0.1.0.
    Released {
        filter: Option<released::FilterIndices>,
        transform: Option<released::TransformIndices>,
    },
}

/// What a call used, besides its result.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct CallStats {
    /// Wall-clock time of the call, instantiation included.
    #[serde(with = "humantime_serde")]
    pub elapsed: Duration,
    /// Whether a fresh instance was made for it.
    pub fresh_instance: bool,
    /// Fuel (roughly, wasm instructions) it used, when the runtime counts
    /// fuel.
    pub fuel: Option<u64>,
    /// The largest the instance's linear memory has been, in bytes.
    pub peak_memory: usize,
    /// The lines it logged (capped).
    pub logs: Vec<LogLine>,
    /// The lines over the cap, dropped.
    pub dropped_logs: u64,
}

/// A call's result and what it used.
#[derive(Debug, Clone)]
pub struct Call<T> {
    /// What the plugin returned, checked against the contract.
    pub result: T,
    /// What the call used.
    pub stats: CallStats,
}

/// Whether a plugin may be called.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginHealth {
    /// Failures (traps, contract violations) in a row.
    pub failures_in_a_row: u32,
    /// Failures since it was loaded.
    pub failures_total: u64,
    /// The last failure.
    pub last_failure: Option<String>,
    /// Whether it is quarantined (not called until released).
    pub quarantined: bool,
}

struct Warm {
    store: Store<StoreState>,
    instance: Instance,
    calls: u32,
}

#[derive(Default)]
struct Health {
    failures_in_a_row: u32,
    failures_total: u64,
    last_failure: Option<String>,
    quarantined: bool,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("id", &self.id)
            .field("filter", &self.has_filter())
            .field("transform", &self.has_transform())
            .field("contract", &self.inspection.contract())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// Loads the plugin in the file at `path`.
    pub fn load_file(
        runtime: &Runtime,
        path: &Path,
        limits: PluginLimits,
    ) -> Result<Plugin, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
            path: path.to_owned(),
            source,
        })?;
        Plugin::load(runtime, &path.display().to_string(), &bytes, limits)
    }

    /// Loads the plugin in `bytes` (from `source_name`, for messages).
    /// Limits with a fuel budget need a runtime that counts fuel
    /// ([`RuntimeConfig::counting_fuel_for`](super::RuntimeConfig::counting_fuel_for));
    /// any other runtime refuses them with [`PluginError::FuelNotCounted`].
    pub fn load(
        runtime: &Runtime,
        source_name: &str,
        bytes: &[u8],
        mut limits: PluginLimits,
    ) -> Result<Plugin, PluginError> {
        let inspection = inspect(source_name, bytes)?;
        if let Some(problem) = inspection.problems().into_iter().next() {
            return Err(problem);
        }
        let id = inspection.id();
        if let Some(fuel) = limits.fuel
            && !runtime.counts_fuel()
        {
            return Err(PluginError::FuelNotCounted { plugin: id, fuel });
        }
        let incompatible = |error: wasmtime::Error| PluginError::Incompatible {
            plugin: id.clone(),
            detail: format!("{error:#}"),
        };
        limits.memory = limits.memory.min(MAX_MEMORY);
        let engine = runtime.engine();
        let (component, from_cache) = runtime
            .inner
            .cache
            .load(engine, bytes)
            .map_err(incompatible)?;
        let pre = runtime
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(incompatible)?;
        let exports = if inspection.is_released_0_1() {
            Exports::Released {
                filter: inspection
                    .exports_filter()
                    .then(|| released::FilterIndices::new(&pre))
                    .transpose()
                    .map_err(incompatible)?,
                transform: inspection
                    .exports_transform()
                    .then(|| released::TransformIndices::new(&pre))
                    .transpose()
                    .map_err(incompatible)?,
            }
        } else {
            Exports::Current {
                filter: inspection
                    .exports_filter()
                    .then(|| wire::FilterIndices::new(&pre))
                    .transpose()
                    .map_err(incompatible)?,
                transform: inspection
                    .exports_transform()
                    .then(|| wire::TransformIndices::new(&pre))
                    .transpose()
                    .map_err(incompatible)?,
            }
        };
        let meter = runtime
            .metrics()
            .meter(&inspection.name, inspection.version.as_deref());
        Ok(Plugin {
            meter,
            runtime: runtime.clone(),
            id,
            inspection,
            limits,
            pre,
            exports,
            from_cache,
            warm: Mutex::new(Vec::new()),
            health: Mutex::new(Health::default()),
            reads: Mutex::new(Vec::new()),
        })
    }

    /// `name@version`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// What the component is, imports and exports.
    pub fn inspection(&self) -> &Inspection {
        &self.inspection
    }

    /// Whether the compiled code came from the on-disk cache.
    pub fn was_cached(&self) -> bool {
        self.from_cache
    }

    /// The plugin's limits.
    pub fn limits(&self) -> &PluginLimits {
        &self.limits
    }

    /// Whether it exports a filter.
    pub fn has_filter(&self) -> bool {
        match &self.exports {
            Exports::Current { filter, .. } => filter.is_some(),
            Exports::Released { filter, .. } => filter.is_some(),
        }
    }

    /// Whether it exports a transform.
    pub fn has_transform(&self) -> bool {
        match &self.exports {
            Exports::Current { transform, .. } => transform.is_some(),
            Exports::Released { transform, .. } => transform.is_some(),
        }
    }

    /// Whether it was built against the released contract 0.1.0 (every
    /// field is sent, row by row).
    pub fn is_released_contract(&self) -> bool {
        matches!(self.exports, Exports::Released { .. })
    }

    /// Its health: failures and quarantine.
    pub fn health(&self) -> PluginHealth {
        let health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        PluginHealth {
            failures_in_a_row: health.failures_in_a_row,
            failures_total: health.failures_total,
            last_failure: health.last_failure.clone(),
            quarantined: health.quarantined,
        }
    }

    /// Lifts a quarantine: the next call runs the plugin again.
    pub fn release(&self) {
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        health.quarantined = false;
        health.failures_in_a_row = 0;
        tracing::info!(plugin = %self.id, "plugin released from quarantine");
    }

    /// Makes a fresh instance and keeps it warm for the next call (dropped
    /// when enough are warm already). A map calls this when it starts, so its
    /// first batch does not wait for instantiation.
    pub fn prewarm(&self) -> Result<(), PluginError> {
        self.check_quarantine()?;
        let warm = self.instantiate("(none: prewarming)")?;
        self.put_warm(warm);
        Ok(())
    }

    pub(super) fn call<T>(
        &self,
        map: &str,
        run: impl FnOnce(&mut Store<StoreState>, &Instance) -> wasmtime::Result<T>,
        check: impl FnOnce(&T) -> Result<(), String>,
    ) -> Result<Call<T>, PluginError> {
        self.check_quarantine()?;
        let started = Instant::now();
        let (mut warm, fresh_instance) = match self.take_warm() {
            Some(warm) => (warm, false),
            None => (self.instantiate(map)?, true),
        };
        let store = &mut warm.store;
        store.data_mut().start_call();
        store.set_epoch_deadline(1);
        let fuel_budget = self.limits.fuel.unwrap_or(u64::MAX);
        if self.runtime.counts_fuel() {
            store
                .set_fuel(fuel_budget)
                .map_err(|error| self.host_error(error))?;
        }
        let outcome = run(store, &warm.instance);
        let fuel = self
            .runtime
            .counts_fuel()
            .then(|| store.get_fuel().map(|left| fuel_budget - left).unwrap_or(0));
        let state = store.data_mut();
        let stats = CallStats {
            elapsed: started.elapsed(),
            fresh_instance,
            fuel,
            peak_memory: state.peak_memory,
            logs: std::mem::take(&mut state.logs),
            dropped_logs: state.dropped_logs,
        };
        self.meter.call(stats.elapsed);
        if stats.dropped_logs > 0 {
            tracing::warn!(plugin = %self.id, dropped = stats.dropped_logs, "the plugin logged more lines than its cap; the rest were dropped");
        }
        let result = match outcome {
            Ok(result) => result,
            Err(error) => {
                let trap = PluginTrap {
                    plugin: self.id.clone(),
                    map: map.to_owned(),
                    kind: self.classify(state, &error),
                };
                self.meter.trap(trap.kind.name());
                self.record_failure(trap.to_string());
                return Err(trap.into());
            }
        };
        if let Err(violation) = check(&result) {
            let error = PluginError::Contract {
                plugin: self.id.clone(),
                map: map.to_owned(),
                violation,
            };
            self.record_failure(error.to_string());
            return Err(error);
        }
        self.record_success();
        warm.calls += 1;
        self.put_warm(warm);
        Ok(Call { result, stats })
    }

    fn instantiate(&self, map: &str) -> Result<Warm, PluginError> {
        let state = StoreState::new(self.id.clone(), self.limits.clone());
        let mut store = Store::new(self.runtime.engine(), state);
        store.limiter(|state| state);
        store.epoch_deadline_callback(|mut store| {
            let state = store.data_mut();
            if Instant::now() >= state.deadline {
                state.timed_out = true;
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Continue(1))
            }
        });
        store.data_mut().start_call();
        store.set_epoch_deadline(1);
        if self.runtime.counts_fuel() {
            store
                .set_fuel(self.limits.fuel.unwrap_or(u64::MAX))
                .map_err(|error| self.host_error(error))?;
        }
        match self.pre.instantiate(&mut store) {
            Ok(instance) => Ok(Warm {
                store,
                instance,
                calls: 0,
            }),
            Err(error) if error.downcast_ref::<Trap>().is_some() || store.data().memory_refused => {
                let trap = PluginTrap {
                    plugin: self.id.clone(),
                    map: map.to_owned(),
                    kind: self.classify(store.data(), &error),
                };
                self.meter.trap(trap.kind.name());
                self.record_failure(trap.to_string());
                Err(trap.into())
            }
            Err(error) => Err(self.host_error(error)),
        }
    }

    fn classify(&self, state: &StoreState, error: &wasmtime::Error) -> TrapKind {
        if state.timed_out {
            return TrapKind::Timeout(self.limits.timeout);
        }
        if state.panic.is_some() {
            return TrapKind::Panic(state.panic.clone());
        }
        if state.memory_refused {
            return TrapKind::OutOfMemory {
                limit: self.limits.memory,
            };
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::StackOverflow) => TrapKind::StackOverflow,
            Some(Trap::OutOfFuel) => TrapKind::OutOfFuel,
            Some(Trap::Interrupt) => TrapKind::Timeout(self.limits.timeout),
            Some(Trap::UnreachableCodeReached) => TrapKind::Panic(None),
            Some(other) => TrapKind::Other(other.to_string()),
            None => TrapKind::Other(format!("{error:#}")),
        }
    }

    fn host_error(&self, error: wasmtime::Error) -> PluginError {
        PluginError::Host {
            plugin: self.id.clone(),
            detail: format!("{error:#}"),
        }
    }

    fn check_quarantine(&self) -> Result<(), PluginError> {
        let health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        if health.quarantined {
            return Err(PluginError::Quarantined {
                plugin: self.id.clone(),
                failures: health.failures_in_a_row,
                last: health.last_failure.clone().unwrap_or_default(),
            });
        }
        Ok(())
    }

    fn record_failure(&self, failure: String) {
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        health.failures_in_a_row += 1;
        health.failures_total += 1;
        tracing::warn!(plugin = %self.id, failures_in_a_row = health.failures_in_a_row, "{failure}");
        health.last_failure = Some(failure);
        if health.failures_in_a_row >= self.limits.quarantine_after && !health.quarantined {
            health.quarantined = true;
            tracing::error!(plugin = %self.id, failures = health.failures_in_a_row, "plugin quarantined: its maps stop feeding it until an admin releases it");
        }
    }

    fn record_success(&self) {
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        health.failures_in_a_row = 0;
    }

    fn take_warm(&self) -> Option<Warm> {
        self.warm.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    fn put_warm(&self, warm: Warm) {
        if warm.calls >= self.limits.calls_per_instance {
            return;
        }
        let mut pool = self.warm.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < WARM_INSTANCES {
            pool.push(warm);
        }
    }
}
