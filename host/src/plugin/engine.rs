//! The one wasmtime [`Engine`] of a process, its [`Linker`] (the `host`
//! interface of each contract version it loads), and the epoch ticker that
//! enforces deadlines.
//!
//! Every setting is chosen on purpose; see the comments in
//! [`Runtime::new`]. A [`Runtime`] is cheap to clone (it is an `Arc`).

use super::bindings::{v0_1, v0_2};
use super::cache::CompileCache;
use super::limits::{PluginLimits, StoreState};
use crate::metrics::PluginMetrics;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

/// How often the epoch ticks: the granularity of deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(2);

/// The most bytes of linear memory any plugin instance may have; a plugin's
/// own cap ([`PluginLimits::memory`](super::PluginLimits)) is at most this.
pub const MAX_MEMORY: usize = 256 << 20;

/// The wasm stack of a call, for every plugin (wasmtime sets it per engine).
pub const MAX_STACK: usize = 512 << 10;

/// How the runtime is set up.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where compiled plugins are cached, keyed by the wasm's hash and the
    /// engine's compatibility hash. `None`: compile every time.
    pub cache_dir: Option<PathBuf>,
    /// Count fuel (instructions) so calls can report it and plugins can be
    /// given an instruction budget. Costs some speed, so it is on only when
    /// asked: `dualwrite plugin run` turns it on, and `dualwrite run` through
    /// [`RuntimeConfig::counting_fuel_for`] when a plugin of its plan has a
    /// fuel budget. A runtime that does not count fuel refuses to load a
    /// plugin with a budget rather than ignore it.
    pub fuel: bool,
    /// Instance slots of the pooling allocator (warm instances of all
    /// plugins together, plus calls in flight).
    pub instance_slots: u32,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: None,
            fuel: false,
            instance_slots: 128,
        }
    }
}

impl RuntimeConfig {
    /// This config, counting fuel too when one of `limits` sets a fuel
    /// budget. The engine is made once, before any plugin loads, so whoever
    /// makes the runtime for a known set of plugins (the sync engine, for a
    /// plan's plugins) asks here first.
    pub fn counting_fuel_for<'a>(
        mut self,
        limits: impl IntoIterator<Item = &'a PluginLimits>,
    ) -> RuntimeConfig {
        self.fuel = self.fuel || limits.into_iter().any(|limits| limits.fuel.is_some());
        self
    }
}

/// The engine, linker and compile cache all plugins share.
#[derive(Clone)]
pub struct Runtime {
    pub(super) inner: Arc<RuntimeInner>,
}

pub(super) struct RuntimeInner {
    pub engine: Engine,
    pub linker: Linker<StoreState>,
    pub cache: CompileCache,
    pub fuel: bool,
    /// The metrics of the plugins loaded on it.
    pub metrics: PluginMetrics,
    ticking: Arc<AtomicBool>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("fuel", &self.inner.fuel)
            .field("cache", &self.inner.cache)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Creates the engine. Falls back from the pooling allocator to on-demand
    /// allocation (with a warning) when the machine refuses the pool's
    /// virtual memory reservation.
    pub fn new(config: RuntimeConfig) -> wasmtime::Result<Runtime> {
        let engine = match Engine::new(&engine_config(&config, true)) {
            Ok(engine) => engine,
            Err(error) => {
                tracing::warn!(%error, "the pooling allocator is not available; allocating on demand");
                Engine::new(&engine_config(&config, false))?
            }
        };
        // Both contracts' `host` interfaces: components of the released
        // 0.1.0 keep loading beside those of the current 0.2.0.
        let mut linker = Linker::new(&engine);
        v0_2::Plugin::add_to_linker::<StoreState, HasSelf<StoreState>>(&mut linker, |state| state)?;
        v0_1::Plugin::add_to_linker::<StoreState, HasSelf<StoreState>>(&mut linker, |state| state)?;
        let ticking = Arc::new(AtomicBool::new(true));
        spawn_ticker(engine.clone(), Arc::clone(&ticking))?;
        let cache = CompileCache::new(config.cache_dir.clone(), &engine);
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                cache,
                fuel: config.fuel,
                metrics: PluginMetrics::default(),
                ticking,
            }),
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Whether calls count fuel.
    pub fn counts_fuel(&self) -> bool {
        self.inner.fuel
    }

    /// The call latencies and traps of the plugins loaded on this runtime,
    /// per plugin version.
    pub fn metrics(&self) -> &PluginMetrics {
        &self.inner.metrics
    }
}

impl Drop for RuntimeInner {
    fn drop(&mut self) {
        self.ticking.store(false, Ordering::Relaxed);
    }
}

fn engine_config(runtime: &RuntimeConfig, pooling: bool) -> Config {
    let mut config = Config::new();
    // Plugins are components of the WIT world in `wit/`.
    config.wasm_component_model(true);
    // Deadlines: an epoch ticker thread bumps the epoch every EPOCH_TICK and
    // each store checks its wall-clock deadline at every tick. Cheaper than
    // fuel, and it catches loops that never call back into the host.
    config.epoch_interruption(true);
    // Fuel only when asked: it slows every basic block down a little.
    config.consume_fuel(runtime.fuel);
    // One stack cap for all plugins; deep recursion traps instead of
    // overflowing the host's stack.
    config.max_wasm_stack(MAX_STACK);
    // Optimise compiled code for speed: a plugin is compiled once per version
    // (and cached on disk) but called for every batch.
    config.cranelift_opt_level(OptLevel::Speed);
    if pooling {
        // The pooling allocator makes an instance in a few microseconds by
        // reusing pre-reserved slots; a plugin's own caps are enforced per
        // store by its limiter, under these pool-wide maxima.
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(runtime.instance_slots)
            .total_core_instances(runtime.instance_slots * 8)
            .total_memories(runtime.instance_slots * 2)
            .total_tables(runtime.instance_slots * 8)
            .max_memories_per_component(2)
            .max_memory_size(MAX_MEMORY)
            .table_elements(20_000);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// Bumps the engine's epoch every [`EPOCH_TICK`] until the runtime is
/// dropped.
fn spawn_ticker(engine: Engine, ticking: Arc<AtomicBool>) -> wasmtime::Result<()> {
    std::thread::Builder::new()
        .name("plugin-epoch".into())
        .spawn(move || {
            while ticking.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })?;
    Ok(())
}
