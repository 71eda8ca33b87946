//! Integration tests of the `dualwrite` binary, run as a real process:
//! the demo, plugin commands, map validation (offline and live), the
//! preflight (`check`), and
//! `dualwrite run` killed and restarted between two emulators (mid-stream,
//! and in an initial copy of 100,000 rows, counting each row's writes);
//! the map lifecycle through the admin API and its data paths (edits during
//! an initial sync, a rerun of the failed rows, a resume's replay).

mod admin_api;
mod check;
mod cli_demo;
mod cli_plugin;
mod emulate_certificate;
mod emulate_tls;
mod hosts;
mod initial_copy_crash;
mod lifecycle_e2e;
mod map_live;
mod map_validate;
mod run_failed;
// The emulators' test helpers (a started emulator with a token).
#[path = "../../../emulators/tests/all/support.rs"]
mod support;
mod sync_process;
