//! dualwrite: keeps Finance and Operations and Dataverse in bidirectional
//! sync, with table maps whose filters and transforms are sandboxed
//! WebAssembly plugins.
//!
//! - [`plugin`]: the plugin runtime (wasmtime, the `wit/` contract).
//! - [`odata`]: the OData `$filter` parser and evaluator and the OData error
//!   body, shared by the emulators and the sync engine.
//! - [`emulator`]: emulated Dataverse Web API and Finance and Operations
//!   OData services, started in-process or by `dualwrite emulate`.
//! - [`config`]: the config file, parsed and built into a validated
//!   [`map::Plan`] before any I/O.
//! - [`map`]: the map model (plans, field mappings) and its validation
//!   problems.
//! - [`checkpoint`]: what the sync engine remembers, in sled: cursors,
//!   durable queues, parked keys, echo fingerprints, the activity log.
//! - [`connector`]: HTTP clients of the Dataverse Web API and the Finance
//!   and Operations OData service (tokens, paging, change tracking, batches,
//!   retries).
//! - [`cli`]: the `dualwrite` command line, a thin shell over the library.

pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod connector;
pub mod emulator;
pub mod map;
pub mod odata;
pub mod plugin;
pub mod sync;
