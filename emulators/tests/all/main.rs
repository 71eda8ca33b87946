//! Integration tests of the emulators: one binary, one module per concern.
//! Each emulator runs over real HTTP on `127.0.0.1:0` with real sled
//! storage in a temporary directory.

mod assertion;
mod batch;
mod dataverse;
mod dataverse_changes;
mod emulator_ops;
mod fidelity_batch;
mod fidelity_dataverse;
mod fidelity_expand;
mod fidelity_finops;
mod fidelity_tables;
mod finops;
mod metadata;
mod paging;
mod security;
mod step_endpoint;
mod step_images;
mod steps;
mod support;
mod sync_steps;
mod writes;
