//! The plugin runtime: loads WebAssembly components of the `wit/` contract
//! and runs their filters and transforms over batches, in a sandbox.
//!
//! - [`Runtime`]: the one wasmtime engine (pooling allocator, epoch
//!   deadlines), its linker (only `dualwrite:plugin/host`, no WASI) and the
//!   on-disk cache of compiled plugins.
//! - [`Plugin`]: one loaded plugin version (of the current contract 0.2.0 or
//!   the released 0.1.0): inspected, compiled once, linked into an
//!   `InstancePre`; [`Plugin::reads`] asks which fields it reads;
//!   [`Plugin::filter_rows`] and [`Plugin::transform_rows`] run it over
//!   [`Rows`] (only the fields it reads), [`Plugin::filter`] and
//!   [`Plugin::transform`] over an owned [`Batch`], and return the checked
//!   result with [`CallStats`].
//! - [`Rows`]: a batch held flat (columns of wire values, one text buffer),
//!   passed from one plugin call to the next; a transform's changes are
//!   written into it and marked.
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
mod calls;
mod engine;
mod error;
mod inspect;
pub mod json;
mod limits;
#[expect(clippy::module_inception, reason = "the module's main type")]
mod plugin;
mod rows;
mod validate;

pub use bindings::{Batch, Context, Direction, Outcome, Transformed, Value, Verdict};
pub use calls::Interface;
pub use engine::{EPOCH_TICK, MAX_MEMORY, MAX_STACK, Runtime, RuntimeConfig};
pub use error::{PluginError, PluginTrap, TrapKind};
pub use inspect::{Inspection, inspect};
pub use limits::{LogLine, PluginLimits};
pub use plugin::{Call, CallStats, Plugin, PluginHealth};
pub use rows::{Rows, ValueRef, owned_value};
