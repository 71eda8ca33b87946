//! The `cargo build` of plugin crates for `wasm32-unknown-unknown`, with
//! the `plugin` profile (`panic = "abort"`), in a target directory of its
//! own.

use crate::toolchain::{TARGET, Toolchain};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The cargo profile plugins are built with.
pub const PROFILE: &str = "plugin";

/// A `cargo build --profile plugin` for the wasm target into `target_dir`,
/// set up for `toolchain`. The caller names what to build (`--package`,
/// `--manifest-path`), where (`current_dir`), and runs it.
///
/// `target_dir` must not be the host's: the guests' build may use another
/// `RUSTC`, and the host's build settings are removed from its environment.
pub fn wasm_build_command(toolchain: &Toolchain, target_dir: &Path) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--profile", PROFILE, "--target-dir"])
        .arg(target_dir)
        // The host's build settings must not leak into the guests' build.
        .env_remove("RUSTC")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTFLAGS");
    toolchain.configure(&mut command);
    command
}

/// Where [`wasm_build_command`] puts the core module of the library
/// `lib_name`.
pub fn core_module(target_dir: &Path, lib_name: &str) -> PathBuf {
    target_dir
        .join(TARGET)
        .join(PROFILE)
        .join(format!("{lib_name}.wasm"))
}
