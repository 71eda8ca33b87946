//! Hands the tests the paths of the plugin components `cargo xtask plugins`
//! builds, as constants, and a `foreach_plugin!` macro over the example
//! plugins (and `foreach_hostile_plugin!` over the hostile ones), so that a
//! plugin without a test fails to compile (the model is wasmtime's
//! `test-programs/artifacts/build.rs`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest
        .parent()
        .expect("tests/ is in the workspace")
        .to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let components = target.join("plugins");
    let modules = target.join("wasm/wasm32-unknown-unknown/plugin");
    let mut code = String::new();
    for (folder, macro_name) in [
        ("plugins", "foreach_plugin"),
        ("plugins/hostile", "foreach_hostile_plugin"),
    ] {
        let dir = root.join(folder);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut names = crates_in(&dir);
        names.sort();
        let mut arms = String::new();
        for name in &names {
            let ident = name.replace('-', "_");
            let upper = ident.to_uppercase();
            let component = components.join(format!("{name}.wasm"));
            let module = modules.join(format!("{ident}.wasm"));
            writeln!(code, "/// The `{name}` component.").unwrap_or_default();
            writeln!(
                code,
                "pub const {upper}: &str = {:?};",
                component.display().to_string()
            )
            .unwrap_or_default();
            writeln!(
                code,
                "/// The `{name}` core module, before it was made a component."
            )
            .unwrap_or_default();
            writeln!(
                code,
                "pub const {upper}_CORE: &str = {:?};",
                module.display().to_string()
            )
            .unwrap_or_default();
            writeln!(arms, "        $mac!({ident}, {upper});").unwrap_or_default();
        }
        writeln!(
            code,
            "/// Calls `$mac!(ident, PATH)` for every crate under `{folder}/`.\n#[macro_export]\nmacro_rules! {macro_name} {{\n    ($mac:ident) => {{\n{arms}    }};\n}}"
        )
        .unwrap_or_default();
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it")).join("plugins.rs");
    std::fs::write(out, code).expect("OUT_DIR is writable");
}

fn crates_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            path.join("Cargo.toml")
                .is_file()
                .then(|| path.file_name()?.to_str().map(str::to_owned))?
        })
        .collect()
}
