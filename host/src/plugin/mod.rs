//! The plugin runtime: loads WebAssembly components of the `wit/` contract
//! and runs their filters and transforms over batches, in a sandbox.
//!
//! - [`Runtime`]: the one wasmtime engine (pooling allocator, epoch
//!   deadlines), its linker (only `dualwrite:plugin/host`, no WASI) and the
//!   on-disk cache of compiled plugins.
//! - [`Plugin`]: one loaded plugin version: inspected, compiled once, linked
//!   into an `InstancePre`; [`Plugin::filter`] and [`Plugin::transform`] run
//!   a batch and return the checked result with [`CallStats`].
//! - [`PluginLimits`]: a plugin's budget (time, memory, tables, fuel, output,
//!   log lines) and its quarantine threshold.
//! - [`inspect()`]: what a `.wasm` file is and why it would be refused.
//! - [`json`]: the JSON row format of `dualwrite plugin run`.
//!
//! Errors are typed apart: a row's own outcome (in the result), a
//! [`PluginTrap`], and [`PluginError`] for everything else.
//!
//! **Invariants**: a plugin reaches nothing but the `host` interface; every
//! call is bounded in time and memory; a trap never reaches the host as a
//! panic, and a trapped instance is never called again; a plugin that fails
//! `quarantine_after` calls in a row is not called until
//! [`Plugin::release`].
//!
//! **Boundary**: this module knows batches and plugins, not maps, systems or
//! storage; the sync engine decides what a verdict or outcome means for a
//! row.

pub mod bindings;
mod cache;
mod engine;
mod error;
mod inspect;
pub mod json;
mod limits;
#[expect(clippy::module_inception, reason = "the module's main type")]
mod plugin;
mod validate;

pub use bindings::{Batch, Context, Direction, Outcome, Transformed, Value, Verdict};
pub use engine::{EPOCH_TICK, MAX_MEMORY, MAX_STACK, Runtime, RuntimeConfig};
pub use error::{PluginError, PluginTrap, TrapKind};
pub use inspect::{Inspection, inspect};
pub use limits::{LogLine, PluginLimits};
pub use plugin::{Call, CallStats, Plugin, PluginHealth};
