//! Building every crate under `plugins/` (and `plugins/hostile/`) into a
//! component in `target/plugins/<crate>.wasm`, with `dualwrite-plugin-build`.
//!
//! All plugins build in one cargo invocation, into one target directory of
//! their own (`target/wasm`), with the `plugin` profile (`panic = "abort"`).
//! A component is only made anew when its core module changed.

use anyhow::{Context, Result, bail};
use dualwrite_plugin_build::{PluginCrate, componentize, core_module, toolchain};
use std::path::{Path, PathBuf};

/// Builds every plugin and returns where the components are.
pub fn build_all(root: &Path) -> Result<PathBuf> {
    let crates = list(root)?;
    let target = crate::target_dir(root);
    let toolchain = toolchain::find_or_install(&target)?;
    let wasm_target = target.join("wasm");
    let mut command = dualwrite_plugin_build::wasm_build_command(&toolchain, &wasm_target);
    command.current_dir(root).arg("--quiet");
    for plugin in &crates {
        command.args(["--package", &plugin.name]);
    }
    let status = command
        .status()
        .context("cannot run cargo build for the plugins")?;
    if !status.success() {
        bail!("building the plugins failed ({status}); the compiler's messages are above");
    }
    let out = target.join("plugins");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    for plugin in &crates {
        let module = core_module(&wasm_target, &plugin.lib_name);
        let component = out.join(format!("{}.wasm", plugin.name));
        if is_fresh(&component, &module) {
            continue;
        }
        let core = std::fs::read(&module)
            .with_context(|| format!("cannot read the core module {}", module.display()))?;
        let bytes = componentize(&core, &plugin.name, &plugin.version)?;
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
            crates.push(PluginCrate::read(&manifest)?);
        }
    }
    Ok(crates)
}

fn is_fresh(output: &Path, input: &Path) -> bool {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    matches!((modified(output), modified(input)), (Some(out), Some(inp)) if out >= inp)
}
