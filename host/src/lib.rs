//! dualwrite: an open, self-hosted dual-write host for Finance and Operations
//! and Dataverse.
//!
//! - [`odata`]: the OData `$filter` parser and evaluator and the OData error
//!   body, shared by the emulators and the sync engine.
//! - [`emulator`]: emulated Dataverse Web API and Finance and Operations
//!   OData services, started in-process or by `dualwrite emulate`.
//! - [`cli`]: the command-line shells over the library.

pub mod cli;
pub mod emulator;
pub mod odata;
