//! dualwrite: keeps Finance and Operations and Dataverse in bidirectional
//! sync, with table maps whose filters and transforms are sandboxed
//! WebAssembly plugins.
//!
//! This is the product library. The `dualwrite` binary (package
//! `dualwrite-cli`) is a thin shell over it; the emulators of both services
//! live in their own crate (`dualwrite-emulators`), which this one never
//! depends on. Data flows one way through the modules:
//!
//! - [`plugin`]: the plugin runtime (wasmtime, the `wit/` contract).
//! - [`odata`]: the OData `$filter` parser and evaluator and the OData error
//!   body, shared by the emulators and the sync engine.
//! - [`schema`]: the table model (tables, fields, keys) and the standard
//!   tables of both services.
//! - [`config`]: the config file, parsed and built into a validated
//!   [`map::Plan`] before any I/O.
//! - [`map`]: the map model (plans, field mappings) and its validation
//!   problems.
//! - [`checkpoint`]: what the sync engine remembers, in sled: cursors,
//!   durable queues, parked keys, echo fingerprints, the activity log.
//! - [`connector`]: HTTP clients of the Dataverse Web API and the Finance
//!   and Operations OData service (tokens, paging, change tracking, batches,
//!   retries).
//! - [`sync`]: the sync engine, a supervisor over one runtime per map, and
//!   the map lifecycle (start, pause, resume, stop) it offers.
//! - [`metrics`]: the Prometheus metrics (families, the text format), fed
//!   by the plugin runtime and the sync engine.
//! - [`package`]: packages of maps, their plugins and alert rules, moved
//!   from one host to another (export, verify, import).
//! - [`admin`]: the admin API (`/api/v1`, `/metrics`) over a running engine.
//! - [`preflight`]: checks against the live systems of a config before
//!   go-live (`dualwrite check`).

pub mod admin;
pub mod alerts;
pub mod checkpoint;
pub mod config;
pub mod connector;
pub mod map;
pub mod metrics;
pub mod odata;
pub mod package;
pub mod plugin;
pub mod preflight;
pub mod registry;
pub mod schema;
pub mod sync;
