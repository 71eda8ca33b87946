//! Integration tests of the `dualwrite` binary, run as a real process:
//! the demo, plugin commands (and a plugin crate made, built and tested
//! outside the workspace), map validation (offline and live), the
//! preflight (`check`), `/metrics` scraped from a running host, and
//! `dualwrite run` killed and restarted between two emulators (mid-stream,
//! and in an initial copy of 100,000 rows, counting each row's writes).

mod activity_log;
mod admin_api;
mod admin_host;
mod alerts;
mod capture_status;
mod check;
mod cli_demo;
mod cli_plugin;
mod emulate_certificate;
mod emulate_tls;
mod error_queue;
mod hosts;
mod hot_swap;
mod initial_copy_crash;
mod lifecycle_e2e;
mod live_save;
mod log_format;
mod map_live;
mod map_validate;
mod metrics;
mod package;
mod plugin_new;
// The strict Prometheus text reader of the end-to-end tests.
#[path = "../../../tests/all/prometheus.rs"]
mod prometheus;
mod run_failed;
// The emulators' test helpers (a started emulator with a token).
#[path = "../../../emulators/tests/all/support.rs"]
mod support;
mod sync_process;
