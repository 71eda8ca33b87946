//! Turning a plugin's core module into a component, with `wit-component`.
//!
//! The module carries the WIT world it was built for in its
//! `component-type` custom sections (written by `wit-bindgen`); the encoder
//! reads them, so a filter-only plugin becomes a component that exports only
//! `filter`. The component's name and version go into its metadata, where
//! the host reads them when it registers the plugin.

use crate::BuildError;
use anyhow::Context;
use wasm_metadata::{AddMetadata, AddMetadataField, Version};
use wit_component::ComponentEncoder;

/// The component made of `core`, named `name` at `version`.
pub fn componentize(core: &[u8], name: &str, version: &str) -> Result<Vec<u8>, BuildError> {
    encode(core, name, version).map_err(|source| BuildError::Componentize {
        name: name.to_owned(),
        source,
    })
}

fn encode(core: &[u8], name: &str, version: &str) -> anyhow::Result<Vec<u8>> {
    let component = ComponentEncoder::default()
        .module(core)
        .context("the module has no usable component-type section")?
        .validate(true)
        .encode()
        .context("the module does not make a valid component")?;
    let mut metadata = AddMetadata::default();
    metadata.name = AddMetadataField::Set(name.to_owned());
    metadata.version = AddMetadataField::Set(Version::new(version.to_owned()));
    metadata
        .to_wasm(&component)
        .context("cannot add the name and version to the component")
}
