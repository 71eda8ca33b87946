//! dualwrite: keeps Finance and Operations and Dataverse in bidirectional
//! sync, with table maps whose filters and transforms are sandboxed
//! WebAssembly plugins.
//!
//! Modules, in the order data flows through them:
//! - [`plugin`]: the plugin runtime (wasmtime, the `wit/` contract).
//! - [`cli`]: the `dualwrite` command line, a thin shell over the library.

pub mod cli;
pub mod plugin;
