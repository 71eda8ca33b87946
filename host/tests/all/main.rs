//! Integration tests of the dualwrite library: one binary, one module per
//! concern. Emulators run over real HTTP on `127.0.0.1:0` with real sled
//! storage in temporary directories.

mod checkpoint;
mod connector_dataverse;
mod connector_finops;
mod connector_resilience;
mod connector_support;
mod odata_filter;
