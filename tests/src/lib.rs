//! Shared set-up for the end-to-end tests and benchmarks: where the plugin
//! components are, and one plugin runtime per test binary.
//!
//! The components are built by `cargo xtask plugins` (which `cargo xtask
//! test` runs first); a test that finds one missing says so.

use dualwrite::plugin::{Plugin, PluginLimits, Runtime, RuntimeConfig};
use std::path::Path;
use std::sync::OnceLock;

include!(concat!(env!("OUT_DIR"), "/plugins.rs"));

/// The runtime all tests of a binary share, with compiled plugins cached
/// under the target directory.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let cache = Path::new(PARTY_NAME_SPLIT)
            .parent()
            .map(|dir| dir.join(".compiled"));
        Runtime::new(RuntimeConfig {
            cache_dir: cache,
            ..RuntimeConfig::default()
        })
        .expect("the plugin runtime starts")
    })
}

/// The bytes of a component, or a panic that says how to build it.
pub fn component(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|error| {
        panic!("cannot read {path} ({error}); build the plugins first with `cargo xtask plugins`")
    })
}

/// Loads a component with `limits`.
pub fn load(path: &str, limits: PluginLimits) -> Plugin {
    Plugin::load(runtime(), path, &component(path), limits)
        .unwrap_or_else(|error| panic!("{path} loads: {error}"))
}

/// `bytes` (a component) stamped as plugin `name` (`None`: its own) at
/// `version`: the same code under another identity, other bytes.
pub fn restamped(bytes: &[u8], name: Option<&str>, version: &str) -> Vec<u8> {
    use wasm_metadata::{AddMetadata, AddMetadataField, Version};
    let mut metadata = AddMetadata::default();
    if let Some(name) = name {
        metadata.name = AddMetadataField::Set(name.to_owned());
    }
    metadata.version = AddMetadataField::Set(Version::new(version.to_owned()));
    metadata
        .to_wasm(bytes)
        .unwrap_or_else(|error| panic!("cannot restamp the component: {error}"))
}
