//! End-to-end tests: the plugins in `plugins/`, built into components, run
//! through the host's plugin runtime.

mod examples;
mod hostile;
mod loading;
mod support;
mod sync;
