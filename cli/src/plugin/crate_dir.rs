//! `dualwrite plugin build` and `dualwrite plugin test`: a plugin crate's
//! folder, built with `dualwrite-plugin-build` (the same toolchain
//! discovery, wasm build and componentize step as `cargo xtask plugins`),
//! and tested natively and then in the host's runtime.
//!
//! The target directory is `CARGO_TARGET_DIR` when set, as cargo's is,
//! else the crate's `target/`; the component lands in its `plugin/`.

use super::{Export, Tally, call_and_print, cli_limits, cli_runtime, report_contained};
use anyhow::{Context as _, bail};
use clap::Args;
use dualwrite::plugin::{Context, Direction, Plugin, PluginLimits, json};
use dualwrite_plugin_build::BuiltPlugin;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// `dualwrite plugin build|test [DIR]`
#[derive(Debug, Args)]
pub struct CrateArgs {
    /// The plugin crate's folder (the one with its `Cargo.toml`).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

/// The rows file `plugin test` runs the component over, in the crate's
/// folder.
const ROWS_FILE: &str = "rows.json";

/// Runs `dualwrite plugin build`.
pub fn build(args: &CrateArgs) -> anyhow::Result<ExitCode> {
    let built = build_component(&args.dir)?;
    print_built(&built);
    Ok(ExitCode::SUCCESS)
}

/// Runs `dualwrite plugin test`: the native tests (exit code 1 when one
/// fails), then the component built and called over `rows.json` with each
/// export it has (2 when the host refuses it, 3 when a call traps or breaks
/// the contract).
pub fn test(args: &CrateArgs) -> anyhow::Result<ExitCode> {
    let manifest = manifest(&args.dir)?;
    // Read the rows first: a broken rows file is found before the builds.
    let rows_path = args.dir.join(ROWS_FILE);
    let text = std::fs::read_to_string(&rows_path).with_context(|| {
        format!(
            "cannot read the rows file {} (a JSON array of rows, as `dualwrite plugin run \
             --input` reads)",
            rows_path.display()
        )
    })?;
    let batch = json::parse_rows(&text).with_context(|| format!("in {}", rows_path.display()))?;

    eprintln!("native tests: cargo test");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // The host's own target and toolchain: the crate's tests are plain
    // `cargo test`, without the wasm build's environment.
    let status = Command::new(&cargo)
        .arg("test")
        .arg("--manifest-path")
        .arg(&manifest)
        .current_dir(&args.dir)
        .status()
        .with_context(|| format!("cannot run cargo test for {}", manifest.display()))?;
    if !status.success() {
        eprintln!(
            "native tests failed ({status}) in {}; cargo's messages are above",
            manifest.display()
        );
        return Ok(ExitCode::from(1));
    }

    let built = build_component(&args.dir)?;
    print_built(&built);
    let runtime = cli_runtime()?;
    let defaults = PluginLimits::default();
    let limits = cli_limits(defaults.timeout, defaults.memory, None);
    let plugin = match Plugin::load_file(&runtime, &built.component, limits) {
        Ok(plugin) => plugin,
        Err(error) => {
            eprintln!("refused: {error}");
            return Ok(ExitCode::from(2));
        }
    };
    let context = Context {
        table_map: "local".into(),
        direction: Direction::LeftToRight,
        company: None,
        settings: Vec::new(),
    };
    let exports = [
        (plugin.has_filter(), Export::Filter),
        (plugin.has_transform(), Export::Transform),
    ];
    for export in exports
        .into_iter()
        .filter_map(|(has, export)| has.then_some(export))
    {
        eprintln!(
            "{} of {} over {} ({} rows):",
            export.name(),
            plugin.id(),
            rows_path.display(),
            batch.rows.len()
        );
        match call_and_print(&plugin, export, &context, &batch) {
            Ok(printed) => {
                let tally: Tally = printed?;
                eprintln!("{}: {tally}", export.name());
            }
            Err(error) => {
                report_contained(&error);
                return Ok(ExitCode::from(3));
            }
        }
    }
    eprintln!(
        "{}: the native tests passed and every call succeeded",
        plugin.id()
    );
    Ok(ExitCode::SUCCESS)
}

/// The crate's `Cargo.toml`, or an error saying how to make one.
fn manifest(dir: &Path) -> anyhow::Result<PathBuf> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        bail!(
            "{} has no Cargo.toml; give the folder of a plugin crate, or make one with \
             `dualwrite plugin new NAME`",
            dir.display()
        );
    }
    Ok(manifest)
}

fn build_component(dir: &Path) -> anyhow::Result<BuiltPlugin> {
    let manifest = manifest(dir)?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| dir.join("target"), PathBuf::from);
    dualwrite_plugin_build::build(dir, &target_dir)
        .with_context(|| format!("cannot build the plugin crate {}", manifest.display()))
}

fn print_built(built: &BuiltPlugin) {
    println!("plugin     {}@{}", built.name, built.version);
    println!("component  {}", built.component.display());
}
