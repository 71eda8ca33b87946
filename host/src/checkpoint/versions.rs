//! Each map's versions: every distinct definition of a map (its
//! `[[maps]]` entry, keys sorted) the host ran, numbered from 1 in tree
//! `map_versions` (`<map> NUL <version, u32 big-endian>` → a
//! [`MapVersion`]). The engine registers each map's definition at start;
//! a definition seen before keeps its number, a changed one gets the next.
//! Every activity line of a map is stamped with the version current when
//! it was stored, so the log says which definition produced it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ops::{join, json, parse};
use super::{Activity, CheckpointError, Checkpoints};

/// One version of a map's definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapVersion {
    /// Its number, from 1.
    pub version: u32,
    /// The SHA-256 of the definition's canonical JSON, hex.
    pub sha256: String,
    /// When the host first ran it (RFC 3339).
    pub at: String,
    /// The definition, as written.
    pub definition: serde_json::Value,
}

/// The version current per map, with the plugins (`name@version`) its
/// chain runs, shared by the store's clones.
pub(super) type Current = Arc<RwLock<HashMap<String, (u32, Vec<String>)>>>;

/// `value` as JSON with every object's keys sorted.
fn canonical(value: &serde_json::Value) -> String {
    fn sorted(value: &serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                serde_json::Value::Object(
                    keys.into_iter()
                        .map(|key| (key.clone(), sorted(&map[key])))
                        .collect(),
                )
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(sorted).collect())
            }
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

/// The SHA-256 of a map definition's canonical JSON (keys sorted), hex:
/// two definitions that differ only in key order have the same.
pub fn definition_sha256(definition: &serde_json::Value) -> String {
    hex::encode(Sha256::digest(canonical(definition).as_bytes()))
}

impl Checkpoints {
    /// The version of `map` whose definition is `definition`: the latest's
    /// number when it is the same, else the next, stored and flushed. It
    /// is the map's current version from now on.
    pub fn register_map_version(
        &self,
        map: &str,
        definition: &serde_json::Value,
    ) -> Result<u32, CheckpointError> {
        let version = self.store_map_version(map, definition)?;
        self.use_map_version(map, version, Vec::new());
        Ok(version)
    }

    /// The version of `map` whose definition is `definition`, stored (the
    /// next number when it differs from the latest) but not current: what
    /// a hot swap numbers before the map runs it.
    pub fn store_map_version(
        &self,
        map: &str,
        definition: &serde_json::Value,
    ) -> Result<u32, CheckpointError> {
        let sha256 = definition_sha256(definition);
        let latest = self.map_versions(map)?.pop();
        let version = match latest {
            Some(latest) if latest.sha256 == sha256 => latest.version,
            latest => {
                let version = latest.map_or(1, |l| l.version.saturating_add(1));
                let entry = MapVersion {
                    version,
                    sha256,
                    at: super::now(),
                    definition: definition.clone(),
                };
                self.versions.insert(
                    join(&[map.as_bytes(), &version.to_be_bytes()]),
                    json(&entry)?,
                )?;
                self.flush()?;
                version
            }
        };
        Ok(version)
    }

    /// Makes `version` of `map`, running `plugins`, the one its lines are
    /// stamped with from now on.
    pub fn use_map_version(&self, map: &str, version: u32, plugins: Vec<String>) {
        self.current_versions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(map.to_owned(), (version, plugins));
    }

    /// Every version of `map`, oldest first.
    pub fn map_versions(&self, map: &str) -> Result<Vec<MapVersion>, CheckpointError> {
        let mut prefix = map.as_bytes().to_vec();
        prefix.push(0);
        self.versions
            .scan_prefix(prefix)
            .map(|entry| {
                let (key, value) = entry?;
                parse(&key, &value)
            })
            .collect()
    }

    /// The current version of `map`: the one this host registered, else
    /// the latest stored (a stopped host's store).
    pub fn map_version(&self, map: &str) -> Option<u32> {
        if let Some((version, _)) = self
            .current_versions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(map)
        {
            return Some(*version);
        }
        let mut prefix = map.as_bytes().to_vec();
        prefix.push(0);
        // Forward to the last (a map has few versions; sled's reverse
        // iteration over a prefix with no entry does not end).
        let (_, value) = self.versions.scan_prefix(prefix).last()?.ok()?;
        let version = serde_json::from_slice::<MapVersion>(&value).ok()?.version;
        self.current_versions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(map.to_owned(), (version, Vec::new()));
        Some(version)
    }

    /// `line` as stored: stamped with its map's current version. Called
    /// before a transaction, never inside one.
    pub(super) fn line(&self, line: &Activity) -> Result<Vec<u8>, CheckpointError> {
        if line.map_version.is_some() || line.map.is_empty() {
            return json(line);
        }
        // Written beside the line's own fields, so a line (its row up to
        // 4 KiB) is not copied on the way to the store.
        #[derive(Serialize)]
        struct Stamped<'a> {
            #[serde(flatten)]
            line: &'a Activity,
            map_version: Option<u32>,
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            plugins: &'a [String],
        }
        let current = self
            .current_versions
            .read()
            .unwrap_or_else(|e| e.into_inner());
        if let Some((version, plugins)) = current.get(&line.map) {
            return json(&Stamped {
                line,
                map_version: Some(*version),
                plugins,
            });
        }
        drop(current);
        // A stopped host's store: the latest version, no plugins known.
        json(&Stamped {
            line,
            map_version: self.map_version(&line.map),
            plugins: &[],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{Action, Direction};

    #[test]
    fn a_definition_keeps_its_number_and_a_change_gets_the_next() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Checkpoints::open(dir.path()).expect("open");
        let first = serde_json::json!({"name": "m", "fields": ["A = a"], "key": ["K = k"]});
        let reordered = serde_json::json!({"key": ["K = k"], "name": "m", "fields": ["A = a"]});
        let changed =
            serde_json::json!({"name": "m", "fields": ["A = a", "B = b"], "key": ["K = k"]});
        assert_eq!(store.register_map_version("m", &first).expect("v1"), 1);
        assert_eq!(
            store.register_map_version("m", &reordered).expect("same"),
            1
        );
        assert_eq!(store.register_map_version("m", &changed).expect("v2"), 2);
        assert_eq!(
            store
                .register_map_version("other", &first)
                .expect("own count"),
            1
        );
        let line = Activity::new(
            "m",
            Direction::LeftToRight,
            "k",
            Action::Written,
            "w".into(),
        );
        let stored: Activity =
            serde_json::from_slice(&store.line(&line).expect("line")).expect("JSON");
        assert_eq!(stored.map_version, Some(2));
        drop(store);
        // A stopped host's store reads the latest.
        let store = Checkpoints::open(dir.path()).expect("reopen");
        assert_eq!(store.map_version("m"), Some(2));
        let history = store.map_versions("m").expect("history");
        assert_eq!(history.len(), 2);
        assert_eq!(history[1].definition, changed);
        // Back to the first definition: a new number, the history kept.
        assert_eq!(store.register_map_version("m", &first).expect("v3"), 3);
    }
}
