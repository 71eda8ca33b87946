//! One plugin crate, anywhere on disk, built into a component.

use crate::{BuildError, PluginCrate, Toolchain, componentize, core_module, toolchain};
use std::path::{Path, PathBuf};

/// The folder, under the target directory, that [`build`] writes
/// components to.
pub const COMPONENTS_DIR: &str = "plugin";

/// A component [`build`] made.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltPlugin {
    /// The crate's (and the component's) name.
    pub name: String,
    /// The crate's (and the component's) version.
    pub version: String,
    /// The component: `<target_dir>/plugin/<name>.wasm`.
    pub component: PathBuf,
    /// The toolchain it was built with.
    pub toolchain: Toolchain,
}

/// Builds the plugin crate in `crate_dir` into
/// `<target_dir>/plugin/<name>.wasm`: reads its `Cargo.toml` (name,
/// version, library), finds the toolchain (remembered in
/// `<target_dir>/plugin-toolchain.json`), runs `cargo build --profile
/// plugin --target wasm32-unknown-unknown` into `<target_dir>/wasm`, and
/// makes the core module a component stamped with the crate's name and
/// version. Cargo's messages go to stderr as it prints them.
///
/// The crate needs `crate-type = ["cdylib", …]` and a `[profile.plugin]`
/// in its workspace's root manifest (its own, for a crate that is its own
/// workspace).
pub fn build(crate_dir: &Path, target_dir: &Path) -> Result<BuiltPlugin, BuildError> {
    // The cargo command runs in the crate's folder: relative paths would
    // then mean something else.
    let crate_dir = std::path::absolute(crate_dir).map_err(BuildError::io("resolve", crate_dir))?;
    let target_dir =
        std::path::absolute(target_dir).map_err(BuildError::io("resolve", target_dir))?;
    let manifest = crate_dir.join("Cargo.toml");
    let plugin = PluginCrate::read(&manifest)?;
    let toolchain = toolchain::find_or_install(&target_dir)?;
    let wasm_target = target_dir.join("wasm");
    let mut command = crate::wasm_build_command(&toolchain, &wasm_target);
    command
        .current_dir(&crate_dir)
        .arg("--manifest-path")
        .arg(&manifest);
    let status = command.status().map_err(|source| BuildError::Spawn {
        command: format!("cargo build for {}", manifest.display()),
        source,
    })?;
    if !status.success() {
        return Err(BuildError::Build {
            what: format!("plugin crate `{}` ({})", plugin.name, manifest.display()),
            status,
        });
    }
    let module = core_module(&wasm_target, &plugin.lib_name);
    let core = std::fs::read(&module).map_err(BuildError::io("read the core module", &module))?;
    let bytes = componentize(&core, &plugin.name, &plugin.version)?;
    let out = target_dir.join(COMPONENTS_DIR);
    std::fs::create_dir_all(&out).map_err(BuildError::io("create", &out))?;
    let component = out.join(format!("{}.wasm", plugin.name));
    std::fs::write(&component, bytes).map_err(BuildError::io("write", &component))?;
    Ok(BuiltPlugin {
        name: plugin.name,
        version: plugin.version,
        component,
        toolchain,
    })
}
