//! Project automation, run as `cargo xtask <command>`.
//!
//! - `toolchain`: find or install the wasm toolchain and print it.
//! - `plugins`: bootstrap the wasm toolchain and build every crate under
//!   `plugins/` into a component in `target/plugins/` (see [`plugins`]).
//! - `test`: build the plugins, then run the whole test suite.
//! - `demo`: build the plugins, then run `dualwrite demo`.
//! - `bench`: build the plugins, run every benchmark and print the table
//!   of figures against their targets (see [`bench`]).
//!
//! Each command does its own set-up, so on a fresh machine `cargo xtask demo`
//! and `cargo xtask test` are all there is to type.
//!
//! The toolchain discovery, the wasm build and the componentize step live
//! in `dualwrite-plugin-build` (`plugin-build/`), which `dualwrite plugin
//! build` uses too for a crate outside this workspace; the toolchain found
//! is remembered in the host's target directory
//! (`target/plugin-toolchain.json`).

mod bench;
mod plugins;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Parser)]
#[command(about = "Project automation for dualwrite")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Find or install the wasm toolchain and print which one is used.
    Toolchain,
    /// Build every plugin under `plugins/` into a component.
    Plugins,
    /// Build the plugins, then run every test of the workspace.
    Test {
        /// Extra arguments for `cargo test` (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Build the plugins, then run `dualwrite demo` with these arguments.
    Demo {
        /// Arguments for `dualwrite demo`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build the plugins, run every benchmark (and the sync benchmark
    /// again at 30 ms per request), then print the table of figures.
    Bench {
        /// Extra arguments for `cargo bench`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    match cli.command {
        Task::Toolchain => {
            let toolchain = dualwrite_plugin_build::toolchain::find_or_install(&target_dir(&root))?;
            println!("{toolchain}");
        }
        Task::Plugins => {
            plugins::build_all(&root)?;
        }
        Task::Test { args } => {
            plugins::build_all(&root)?;
            cargo(&root, ["test", "--workspace"], &args)?;
        }
        Task::Demo { args } => {
            plugins::build_all(&root)?;
            cargo(
                &root,
                [
                    "run",
                    "--release",
                    "--quiet",
                    "--package",
                    "dualwrite-cli",
                    "--",
                    "demo",
                ],
                &args,
            )?;
        }
        Task::Bench { args } => {
            plugins::build_all(&root)?;
            bench::run(&root, &args)?;
        }
    }
    Ok(())
}

/// The workspace's root folder (the parent of `xtask/`).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The host's target directory: `CARGO_TARGET_DIR`, or `target/`.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

fn cargo<const N: usize>(root: &Path, command: [&str; N], extra: &[String]) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(&cargo)
        .args(command)
        .args(extra)
        .current_dir(root)
        .status()
        .with_context(|| format!("cannot run cargo {}", command.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", command.join(" "));
    }
    Ok(())
}
