//! The map versions an admin put in force on a host (a hot swap, an
//! apply, a rollback, an import), kept past a restart: tree
//! `map_applied`, map → an [`Applied`] with the SHA-256 of the config
//! file's entry of that map when it was applied (none: the file had no
//! such map). At start the host runs the applied version while the file's
//! entry is still that one; an entry changed (or added, or taken out)
//! since wins, and the record is dropped (`config::in_force`).

use serde::{Deserialize, Serialize};

use super::ops::{json, parse};
use super::versions::definition_sha256;
use super::{CheckpointError, Checkpoints};

/// A map version an admin put in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The version (of tree `map_versions`) in force.
    pub version: u32,
    /// The SHA-256 of the config file's entry of the map when the version
    /// was applied (`definition_sha256`); none when the file had no entry
    /// of that name.
    pub config_sha256: Option<String>,
    /// When (RFC 3339).
    pub at: String,
}

impl Checkpoints {
    /// Every applied record, by map name.
    pub fn applied_maps(&self) -> Result<Vec<(String, Applied)>, CheckpointError> {
        self.applied
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                Ok((
                    String::from_utf8_lossy(&key).into_owned(),
                    parse(&key, &value)?,
                ))
            })
            .collect()
    }

    /// The applied record of `map`.
    pub fn applied_map(&self, map: &str) -> Result<Option<Applied>, CheckpointError> {
        self.applied
            .get(map.as_bytes())?
            .map(|value| parse(map.as_bytes(), &value))
            .transpose()
    }

    /// Records that `version` of `map`, whose definition is `definition`,
    /// was put in force by an admin, the config file's entry then having
    /// the SHA-256 `config_sha256` (none: no entry). A version whose
    /// definition is the entry's own needs no record: the entry is what
    /// runs, and the record is dropped. Flushed.
    pub fn set_applied_map(
        &self,
        map: &str,
        version: u32,
        definition: &serde_json::Value,
        config_sha256: Option<String>,
    ) -> Result<(), CheckpointError> {
        if config_sha256.as_deref() == Some(definition_sha256(definition).as_str()) {
            return self.clear_applied_map(map);
        }
        let applied = Applied {
            version,
            config_sha256,
            at: super::now(),
        };
        self.applied.insert(map.as_bytes(), json(&applied)?)?;
        self.flush()
    }

    /// Drops the applied record of `map` (the config file's entry runs).
    pub fn clear_applied_map(&self, map: &str) -> Result<(), CheckpointError> {
        if self.applied.remove(map.as_bytes())?.is_some() {
            self.flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_kept_unless_the_version_is_the_entry_itself() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Checkpoints::open(dir.path()).expect("open");
        let entry = serde_json::json!({"name": "m", "fields": ["A = a"]});
        let swapped = serde_json::json!({"name": "m", "fields": ["A = b"]});
        store
            .set_applied_map("m", 2, &swapped, Some(definition_sha256(&entry)))
            .expect("set");
        let applied = store.applied_map("m").expect("read").expect("kept");
        assert_eq!(applied.version, 2);
        assert_eq!(applied.config_sha256, Some(definition_sha256(&entry)));
        store
            .set_applied_map("new", 1, &swapped, None)
            .expect("set new");
        assert_eq!(store.applied_maps().expect("all").len(), 2);
        // Rolled back to the entry's own definition: nothing to keep.
        store
            .set_applied_map("m", 3, &entry, Some(definition_sha256(&entry)))
            .expect("back");
        assert_eq!(store.applied_map("m").expect("read"), None);
        drop(store);
        let store = Checkpoints::open(dir.path()).expect("reopen");
        let all = store.applied_maps().expect("all");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].0, "new");
        assert_eq!(all[0].1.config_sha256, None);
    }
}
