//! The plugin registry's store: each plugin version added (tree
//! `plugins`, `<name> NUL <version>` → a [`PluginEntry`]) and the
//! component bytes, once per content (tree `plugin_bytes`, the SHA-256 in
//! hex → the `.wasm`). A version's entry and its bytes are written in one
//! transaction, so an entry never names bytes the store lacks. What a
//! version is (checked, compiled, resolved from a reference) is
//! [`crate::registry`]'s.

use serde::{Deserialize, Serialize};
use sled::Transactional;

use super::ops::{TxResult, join, json, parse, unwrap_tx};
use super::{CheckpointError, Checkpoints};

/// One version of a plugin in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginEntry {
    /// Its name.
    pub name: String,
    /// Its version (semver).
    pub version: String,
    /// The SHA-256 of its component, hex.
    pub sha256: String,
    /// The component's size in bytes.
    pub size: u64,
    /// When it was added (RFC 3339).
    pub added: String,
    /// What the component exports (`filter`, `transform`).
    pub kinds: Vec<String>,
    /// The plugin contract version it was built for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
}

impl PluginEntry {
    /// `name@version`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

impl Checkpoints {
    /// Stores `entry` with its component `bytes`, flushed. An entry of the
    /// same name and version is replaced.
    pub fn put_plugin(&self, entry: &PluginEntry, bytes: &[u8]) -> Result<(), CheckpointError> {
        let key = join(&[entry.name.as_bytes(), entry.version.as_bytes()]);
        let value = json(entry)?;
        (&self.plugins, &self.plugin_bytes)
            .transaction(|(plugins, blobs)| -> TxResult<()> {
                blobs.insert(entry.sha256.as_bytes(), bytes)?;
                plugins.insert(key.as_slice(), value.as_slice())?;
                Ok(())
            })
            .map_err(unwrap_tx)?;
        self.flush()
    }

    /// Every plugin version, by name then version as stored (the
    /// registry orders versions by semver).
    pub fn plugins(&self) -> Result<Vec<PluginEntry>, CheckpointError> {
        self.plugins
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                parse(&key, &value)
            })
            .collect()
    }

    /// The versions of plugin `name`.
    pub fn plugin_versions(&self, name: &str) -> Result<Vec<PluginEntry>, CheckpointError> {
        let mut prefix = name.as_bytes().to_vec();
        prefix.push(0);
        self.plugins
            .scan_prefix(prefix)
            .map(|entry| {
                let (key, value) = entry?;
                parse(&key, &value)
            })
            .collect()
    }

    /// The component whose SHA-256 is `sha256`, if stored.
    pub fn plugin_bytes(&self, sha256: &str) -> Result<Option<Vec<u8>>, CheckpointError> {
        Ok(self.plugin_bytes.get(sha256)?.map(|bytes| bytes.to_vec()))
    }

    /// Removes plugin `name` at `version`, and its bytes when no other
    /// version holds the same; the entry removed, if there was one.
    pub fn remove_plugin(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Option<PluginEntry>, CheckpointError> {
        let key = join(&[name.as_bytes(), version.as_bytes()]);
        let Some(value) = self.plugins.get(&key)? else {
            return Ok(None);
        };
        let entry: PluginEntry = parse(&key, &value)?;
        let shared = self
            .plugins()?
            .iter()
            .any(|other| other.sha256 == entry.sha256 && other != &entry);
        (&self.plugins, &self.plugin_bytes)
            .transaction(|(plugins, blobs)| -> TxResult<()> {
                plugins.remove(key.as_slice())?;
                if !shared {
                    blobs.remove(entry.sha256.as_bytes())?;
                }
                Ok(())
            })
            .map_err(unwrap_tx)?;
        self.flush()?;
        Ok(Some(entry))
    }
}
