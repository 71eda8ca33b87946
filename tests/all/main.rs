//! End-to-end tests: the connectors against the emulators over real HTTP,
//! the plugins in `plugins/` built into components and run through the
//! host's plugin runtime, and the sync engine between both emulators.

mod connector;
mod examples;
mod hostile;
mod loading;
mod package;
mod prometheus;
mod registry;
mod support;
mod sync;
