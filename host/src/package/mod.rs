//! Packages: a tested set of maps, the plugins they run and the alert
//! rules added through the API, moved as one file from one environment's
//! host to the next (`dualwrite export`, `dualwrite import`).
//!
//! - [`Package`] (`format.rs`): the file. A [`Manifest`] lists every
//!   [`Part`] (a map's definition and version, [`MapPart`]; a plugin's
//!   component; the alert rules) with its SHA-256 and size, and the plugin
//!   contract version of the host that made it; an optional ed25519
//!   [`Signature`] (`sign.rs`) covers the manifest's canonical bytes, so
//!   with the hashes it covers every part.
//! - [`export`] (`export.rs`): a package of a plan's maps as they run.
//! - [`import`] (`import.rs`): verify, show what would change, and apply
//!   on a running engine; [`import_stopped`] (`offline.rs`): the same on a
//!   stopped host's store, the maps kept as applied versions that run at
//!   its next start (`config::in_force`).
//!
//! The container is one JSON document with each part in base64, not an
//! archive: it is read with serde_json, which the host uses everywhere,
//! and an archive's paths, links, permissions and duplicate entries are
//! all cases an import would have to defend against, where a JSON object
//! has keys and nothing else. The cost is a third more bytes for the
//! components, a few hundred kilobytes each.
//!
//! Invariants:
//! - A package is refused before anything is applied when its contract's
//!   major version differs from the host's, when any part differs from
//!   its manifest (or the manifest lists a part the package lacks, or the
//!   package holds one it does not list), and when a key is given and the
//!   manifest's signature does not verify with it; the refusal names the
//!   part or both versions.
//! - An imported map names every plugin from the registry by its exact
//!   version: a component a map named by path is carried by its bytes and
//!   added to the registry under its metadata's name and version.

mod export;
mod format;
mod import;
mod offline;
mod sign;

use serde::{Deserialize, Serialize};

use crate::alerts::RuleSpec;
use crate::checkpoint::CheckpointError;
use crate::registry::RegistryError;
use crate::sync::SwapError;

pub use export::export;
pub use format::{
    ALERT_RULES, Content, FORMAT, Manifest, Package, Part, PartKind, Verified, sha256,
};
pub use import::{ImportOptions, Imported, PluginChange, RuleChange, import};
pub use offline::import_stopped;
pub use sign::{
    ALGORITHM, Signature, SigningKey, VerifyingKey, fingerprint, signing_key, to_pem, verifying_key,
};

/// The largest package a host takes (the admin API's body limit).
pub const MAX_PACKAGE_BYTES: usize = 256 * 1024 * 1024;

/// Why a package was not made, or was refused.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// Not a package this host reads.
    #[error("the package is refused: {0}")]
    Malformed(String),
    /// Made for another contract major version.
    #[error(
        "the package is refused: it was made by a host of plugin contract {package}, and this host runs contract {host}; a package moves only between hosts of the same contract major version, so export it from a host of this contract"
    )]
    Contract {
        /// The package's.
        package: String,
        /// This host's.
        host: String,
    },
    /// A part differs from its manifest.
    #[error(
        "the package is refused: part `{part}` does not match the manifest ({detail}); it changed after export: export it again"
    )]
    Tampered {
        /// The part's path.
        part: String,
        /// What differs.
        detail: String,
    },
    /// A key was given and the package carries no signature.
    #[error(
        "the package is refused: it is not signed, and a key was given to verify it; sign it at export with `dualwrite export --key PRIVATE.pem`"
    )]
    Unsigned,
    /// The manifest's signature does not verify.
    #[error("the package is refused: the manifest's signature does not verify: {detail}")]
    Signature {
        /// Why.
        detail: String,
    },
    /// A key file cannot be used.
    #[error("key file {file} {detail}")]
    Key {
        /// The file.
        file: String,
        /// What is wrong.
        detail: String,
    },
    /// A map cannot be exported.
    #[error("map `{map}` cannot be exported: {detail}")]
    Export {
        /// The map.
        map: String,
        /// Why.
        detail: String,
    },
    /// A map asked for that the host does not run.
    #[error("no map `{map}` runs on this host (it runs: {known})")]
    UnknownMap {
        /// The name asked for.
        map: String,
        /// The host's maps.
        known: String,
    },
    /// The import cannot be made; the reason says what to do.
    #[error("the package is refused: {0}; nothing changed")]
    Refused(String),
    /// A plugin of the package is refused by the registry.
    #[error("the package is refused: part `{part}`: {source}; nothing changed")]
    Plugin {
        /// The part.
        part: String,
        /// Why.
        source: RegistryError,
    },
    /// The maps do not apply.
    #[error("the package's maps are refused: {0}")]
    Maps(#[from] SwapError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] CheckpointError),
}

/// The content of a map's part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapPart {
    /// The map.
    pub name: String,
    /// The number the exporting host gave this definition, if it ran it.
    #[serde(default)]
    pub version: Option<u32>,
    /// The definition (its `[[maps]]` entry as JSON), each plugin step
    /// naming a registry version exactly.
    pub definition: serde_json::Value,
}

/// A plugin of the package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginPart {
    /// The part's path.
    pub path: String,
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The component.
    pub bytes: Vec<u8>,
}

impl PluginPart {
    /// `name@version`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// What a verified package holds, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Contents {
    /// The maps, in the manifest's order.
    pub maps: Vec<MapPart>,
    /// The plugins.
    pub plugins: Vec<PluginPart>,
    /// The alert rules.
    pub rules: Vec<RuleSpec>,
}

impl Package {
    /// The parts read: call after [`Package::verify`]. A part whose content
    /// is not what its kind holds is refused by its path.
    pub fn contents(&self) -> Result<Contents, PackageError> {
        let mut contents = Contents {
            maps: Vec::new(),
            plugins: Vec::new(),
            rules: Vec::new(),
        };
        for part in &self.manifest.parts {
            let bytes = self
                .parts
                .get(&part.path)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let unreadable =
                |detail: String| PackageError::Malformed(format!("part `{}` {detail}", part.path));
            match part.kind {
                PartKind::Map => {
                    let map: MapPart = serde_json::from_slice(bytes).map_err(|error| {
                        unreadable(format!("is not a map's definition: {error}"))
                    })?;
                    if map.name != part.name {
                        return Err(unreadable(format!(
                            "holds map `{}`, and the manifest says `{}`",
                            map.name, part.name
                        )));
                    }
                    contents.maps.push(map);
                }
                PartKind::Plugin => {
                    let version = part.version.clone().ok_or_else(|| {
                        unreadable("is a plugin, and the manifest gives it no version".into())
                    })?;
                    contents.plugins.push(PluginPart {
                        path: part.path.clone(),
                        name: part.name.clone(),
                        version,
                        bytes: bytes.to_vec(),
                    });
                }
                PartKind::AlertRules => {
                    let rules: Vec<RuleSpec> = serde_json::from_slice(bytes).map_err(|error| {
                        unreadable(format!("is not a list of alert rules: {error}"))
                    })?;
                    contents.rules.extend(rules);
                }
            }
        }
        Ok(contents)
    }
}
