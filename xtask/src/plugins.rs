//! Building every crate under `plugins/` (and `plugins/hostile/`) into a
//! component in `target/plugins/<crate>.wasm`.
//!
//! All plugins build in one cargo invocation, into one target directory of
//! their own (`target/wasm`), with the `plugin` profile (`panic = "abort"`).
//! A component is only made anew when its core module changed.

use crate::componentize::componentize;
use crate::toolchain;
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One plugin crate.
#[derive(Debug)]
pub struct PluginCrate {
    /// The package name, which is also the component's name.
    pub name: String,
    /// The package version, recorded in the component's metadata.
    pub version: String,
}

#[derive(Deserialize)]
struct Manifest {
    package: Package,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    version: toml::Value,
}

/// Builds every plugin and returns where the components are.
pub fn build_all(root: &Path) -> Result<PathBuf> {
    let crates = list(root)?;
    let toolchain = toolchain::find_or_install(root)?;
    let target = crate::target_dir(root);
    let wasm_target = target.join("wasm");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args(["build", "--quiet", "--profile", "plugin", "--target-dir"])
        .arg(&wasm_target)
        // The host's build settings must not leak into the guests' build.
        .env_remove("RUSTC")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTFLAGS");
    for plugin in &crates {
        command.args(["--package", &plugin.name]);
    }
    toolchain.configure(&mut command);
    let status = command
        .status()
        .context("cannot run cargo build for the plugins")?;
    if !status.success() {
        bail!("building the plugins failed ({status}); the compiler's messages are above");
    }
    let modules = wasm_target.join("wasm32-unknown-unknown").join("plugin");
    let out = target.join("plugins");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    for plugin in &crates {
        let module = modules.join(format!("{}.wasm", plugin.name.replace('-', "_")));
        let component = out.join(format!("{}.wasm", plugin.name));
        if is_fresh(&component, &module) {
            continue;
        }
        let core = std::fs::read(&module)
            .with_context(|| format!("cannot read the core module {}", module.display()))?;
        let bytes = componentize(&core, &plugin.name, &plugin.version)
            .with_context(|| format!("cannot make plugin `{}` a component", plugin.name))?;
        std::fs::write(&component, bytes)
            .with_context(|| format!("cannot write {}", component.display()))?;
    }
    eprintln!("{} plugins built into {}", crates.len(), out.display());
    Ok(out)
}

/// The plugin crates: every folder with a `Cargo.toml` under `plugins/` and
/// `plugins/hostile/`.
pub fn list(root: &Path) -> Result<Vec<PluginCrate>> {
    let mut crates = Vec::new();
    for dir in [root.join("plugins"), root.join("plugins/hostile")] {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|entry| Some(entry.ok()?.path().join("Cargo.toml")))
            .filter(|manifest| manifest.is_file())
            .collect();
        paths.sort();
        for manifest in paths {
            let text = std::fs::read_to_string(&manifest)
                .with_context(|| format!("cannot read {}", manifest.display()))?;
            let parsed: Manifest = toml::from_str(&text)
                .with_context(|| format!("cannot parse {}", manifest.display()))?;
            let version = match parsed.package.version {
                toml::Value::String(version) => version,
                // `version.workspace = true`: the workspace's version.
                _ => env!("CARGO_PKG_VERSION").to_owned(),
            };
            crates.push(PluginCrate {
                name: parsed.package.name,
                version,
            });
        }
    }
    Ok(crates)
}

fn is_fresh(output: &Path, input: &Path) -> bool {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    matches!((modified(output), modified(input)), (Some(out), Some(inp)) if out >= inp)
}
