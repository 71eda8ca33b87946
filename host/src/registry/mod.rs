//! The plugin registry: plugins stored in the host's store by name,
//! version and SHA-256 ([`crate::checkpoint::PluginEntry`]), so a map can
//! name one as `name@version` or with a semver requirement
//! (`name@^1.2`) instead of a file path.
//!
//! A plugin is added only after the checks `dualwrite plugin check` makes
//! (a component of a contract the host loads, importing only what plugins
//! may, exporting a filter or a transform) and after it was compiled, into
//! the store's compile cache ([`compiled_dir`]), so a map that starts or
//! swaps to it does not wait for Cranelift. A version, once added, is
//! immutable: adding other bytes under the same name and version is
//! refused.
//!
//! A reference resolves to the highest version that meets its
//! requirement. A version is removed only when no map runs it
//! ([`MapRecord::plugins`](crate::checkpoint::MapRecord)).

mod reference;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use reference::PluginRef;

use crate::checkpoint::{CheckpointError, Checkpoints, PluginEntry};
use crate::plugin::{Plugin, PluginLimits, Runtime, RuntimeConfig, inspect};

/// Why the registry refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The component is not one the host accepts.
    #[error("plugin `{source_name}` is refused: {reason}")]
    Refused {
        /// Where it came from.
        source_name: String,
        /// Why.
        reason: String,
    },
    /// No name or version could be had, or one is not valid.
    #[error("plugin `{source_name}`: {reason}")]
    Identity {
        /// Where it came from.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// The same name and version holds other bytes.
    #[error(
        "plugin {id} is in the registry already with other bytes (sha256 {stored}); a version never changes: give the new build a new version"
    )]
    Immutable {
        /// `name@version`.
        id: String,
        /// The stored SHA-256.
        stored: String,
    },
    /// A reference names no version in the registry.
    #[error("{0}")]
    Unresolved(String),
    /// A map runs the version.
    #[error("plugin {id} is used by map {maps}: swap the map to another version first")]
    InUse {
        /// `name@version`.
        id: String,
        /// The maps, listed.
        maps: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] CheckpointError),
}

/// Where the store of `data` keeps compiled plugins: the engine's compile
/// cache when its runtime names none.
pub fn compiled_dir(data: &Path) -> PathBuf {
    data.join("compiled")
}

/// What [`add`] did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Added {
    /// The entry stored.
    pub entry: PluginEntry,
    /// False when the same bytes were there already under that version.
    pub new: bool,
}

/// Checks and compiles `bytes` (from `source_name`), then stores it under
/// its name and version: those of its metadata, or `name` and `version`
/// where the metadata has none (they must agree with it where it has).
/// `compiled` is the compile cache it is compiled into.
pub fn add(
    store: &Checkpoints,
    compiled: &Path,
    source_name: &str,
    bytes: &[u8],
    name: Option<&str>,
    version: Option<&str>,
) -> Result<Added, RegistryError> {
    let refused = |reason: String| RegistryError::Refused {
        source_name: source_name.to_owned(),
        reason,
    };
    let identity = |reason: String| RegistryError::Identity {
        source_name: source_name.to_owned(),
        reason,
    };
    let inspection = inspect(source_name, bytes).map_err(|e| refused(e.to_string()))?;
    let problems: Vec<String> = inspection
        .problems()
        .iter()
        .map(ToString::to_string)
        .collect();
    if !problems.is_empty() {
        return Err(refused(problems.join("; ")));
    }
    let name = match (name, inspection.name.as_str()) {
        (Some(given), stamped)
            if !stamped.is_empty() && stamped != source_name && given != stamped =>
        {
            return Err(identity(format!(
                "its metadata names it `{stamped}`, not `{given}`: drop --name, or rebuild it under that name"
            )));
        }
        (Some(given), _) => given.to_owned(),
        (None, stamped) if !stamped.is_empty() && stamped != source_name => stamped.to_owned(),
        (None, _) => {
            return Err(identity(
                "its metadata carries no name: build it with `dualwrite plugin build`, or give --name".into(),
            ));
        }
    };
    reference::check_name(&name).map_err(identity)?;
    let version = match (version, inspection.version.as_deref()) {
        (Some(given), Some(stamped)) if given != stamped => {
            return Err(identity(format!(
                "its metadata says version {stamped}, not {given}: drop --version, or rebuild it at that version"
            )));
        }
        (Some(given), _) => given.to_owned(),
        (None, Some(stamped)) => stamped.to_owned(),
        (None, None) => {
            return Err(identity(
                "its metadata carries no version: build it with `dualwrite plugin build`, or give --version".into(),
            ));
        }
    };
    semver::Version::parse(&version).map_err(|error| {
        identity(format!(
            "version `{version}` is not a semantic version (MAJOR.MINOR.PATCH): {error}"
        ))
    })?;
    let sha256 = hex::encode(Sha256::digest(bytes));
    if let Some(stored) = store
        .plugin_versions(&name)?
        .into_iter()
        .find(|entry| entry.version == version)
    {
        if stored.sha256 == sha256 {
            return Ok(Added {
                entry: stored,
                new: false,
            });
        }
        return Err(RegistryError::Immutable {
            id: stored.id(),
            stored: stored.sha256,
        });
    }
    precompile(compiled, source_name, bytes).map_err(refused)?;
    let mut kinds = Vec::new();
    if inspection.exports_filter() {
        kinds.push("filter".to_owned());
    }
    if inspection.exports_transform() {
        kinds.push("transform".to_owned());
    }
    let entry = PluginEntry {
        name,
        version,
        sha256,
        size: bytes.len() as u64,
        added: crate::checkpoint::now(),
        kinds,
        contract: inspection.contract().map(str::to_owned),
    };
    store.put_plugin(&entry, bytes)?;
    Ok(Added { entry, new: true })
}

/// Compiles `bytes` into the cache in `compiled`, as the engine's runtime
/// with default settings would.
fn precompile(compiled: &Path, source_name: &str, bytes: &[u8]) -> Result<(), String> {
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(compiled.to_owned()),
        instance_slots: 4,
        ..RuntimeConfig::default()
    })
    .map_err(|error| format!("the plugin runtime does not start: {error:#}"))?;
    Plugin::load(&runtime, source_name, bytes, PluginLimits::default())
        .map(drop)
        .map_err(|error| error.to_string())
}

/// The versions of `name`, lowest first by semver.
pub fn versions(store: &Checkpoints, name: &str) -> Result<Vec<PluginEntry>, CheckpointError> {
    let mut versions = store.plugin_versions(name)?;
    versions.sort_by_cached_key(|entry| semver::Version::parse(&entry.version).ok());
    Ok(versions)
}

/// Every plugin version, by name, lowest version first.
pub fn list(store: &Checkpoints) -> Result<Vec<PluginEntry>, CheckpointError> {
    let mut all = store.plugins()?;
    all.sort_by_cached_key(|entry| {
        (
            entry.name.clone(),
            semver::Version::parse(&entry.version).ok(),
        )
    });
    Ok(all)
}

/// A registry version with the maps that run it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InUse {
    /// The version.
    #[serde(flatten)]
    pub entry: PluginEntry,
    /// The maps that run it (per their records).
    pub used_by: Vec<String>,
}

/// Every plugin version, as [`list`], with the maps that run each.
pub fn list_in_use(store: &Checkpoints) -> Result<Vec<InUse>, CheckpointError> {
    let records = store.map_records()?;
    Ok(list(store)?
        .into_iter()
        .map(|entry| {
            let id = entry.id();
            let used_by = records
                .iter()
                .filter(|(_, record)| record.plugins.contains(&id))
                .map(|(map, _)| map.clone())
                .collect();
            InUse { entry, used_by }
        })
        .collect())
}

/// The version `reference` resolves to (the highest meeting it), with its
/// bytes.
pub fn resolve(
    store: &Checkpoints,
    reference: &PluginRef,
) -> Result<(PluginEntry, Vec<u8>), RegistryError> {
    let versions = versions(store, &reference.name)?;
    let Some(entry) = versions
        .iter()
        .rev()
        .find(|entry| reference.matches(&entry.version))
        .cloned()
    else {
        let known: Vec<&str> = versions.iter().map(|e| e.version.as_str()).collect();
        return Err(RegistryError::Unresolved(match known.is_empty() {
            true => format!(
                "no plugin `{}` in the registry: add it with `dualwrite plugin add FILE.wasm`",
                reference.name
            ),
            false => format!(
                "no version of plugin `{}` meets `{}` (the registry holds {}): add one, or change the requirement",
                reference.name,
                reference.requirement(),
                known.join(", ")
            ),
        }));
    };
    let bytes = store
        .plugin_bytes(&entry.sha256)?
        .ok_or_else(|| CheckpointError::Corrupt {
            key: format!("plugin_bytes/{}", entry.sha256),
            detail: format!("the bytes of plugin {} are missing", entry.id()),
        })?;
    Ok((entry, bytes))
}

/// Removes `name` at `version`, refused while a map runs it (per the maps'
/// records in `store`).
pub fn remove(
    store: &Checkpoints,
    name: &str,
    version: &str,
) -> Result<PluginEntry, RegistryError> {
    let id = format!("{name}@{version}");
    let users: Vec<String> = store
        .map_records()?
        .into_iter()
        .filter(|(_, record)| record.plugins.contains(&id))
        .map(|(map, _)| format!("`{map}`"))
        .collect();
    if !users.is_empty() {
        return Err(RegistryError::InUse {
            id,
            maps: users.join(", "),
        });
    }
    store.remove_plugin(name, version)?.ok_or_else(|| {
        RegistryError::Unresolved(format!(
            "no plugin {id} in the registry (`dualwrite plugin list` shows what it holds)"
        ))
    })
}
