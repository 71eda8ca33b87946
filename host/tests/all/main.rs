//! Integration tests of the dualwrite crate: one binary, one module per
//! concern. Emulators run over real HTTP on `127.0.0.1:0` with real sled
//! storage in temporary directories; the command line runs as a real
//! process.

mod batch;
mod checkpoint;
mod cli_demo;
mod cli_plugin;
mod connector_dataverse;
mod connector_finops;
mod connector_resilience;
mod connector_support;
mod dataverse;
mod dataverse_changes;
mod emulator_ops;
mod finops;
mod map_live;
mod map_validate;
mod metadata;
mod odata_filter;
mod support;
mod sync_process;
