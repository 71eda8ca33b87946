//! Where each map is in its life, persisted so that it survives restarts:
//! tree `maps`, `<map>` → [`MapRecord`] as JSON. The config's `enabled`
//! decides a map's state only while it has no record (its first start);
//! from then on the record rules.

use serde::{Deserialize, Serialize};

use super::ops::{json, parse};
use super::{CheckpointError, Checkpoints};

/// A map's persisted state, named as the admin sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Lifecycle {
    /// Never started, or disabled in the config before its first start.
    NotRunning,
    /// Copying the rows both sides hold (initial sync).
    Initializing,
    /// Capturing and writing.
    Running,
    /// Capturing into the durable queue; nothing is written.
    Paused,
    /// Catching up: writing what was queued while paused.
    Resuming,
    /// Stopped by an admin: nothing is captured or written.
    Stopped,
    /// An error stopped it (the record's `reason` says which).
    Failed,
}

impl Lifecycle {
    /// The name people and scripts read: `not-running`, `paused`, …
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::NotRunning => "not-running",
            Lifecycle::Initializing => "initializing",
            Lifecycle::Running => "running",
            Lifecycle::Paused => "paused",
            Lifecycle::Resuming => "resuming",
            Lifecycle::Stopped => "stopped",
            Lifecycle::Failed => "failed",
        }
    }

    /// Whether the map's tasks run in this state (capture at least).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Lifecycle::Initializing | Lifecycle::Running | Lifecycle::Paused | Lifecycle::Resuming
        )
    }
}

impl std::fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the store keeps of one map's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapRecord {
    /// The state.
    pub state: Lifecycle,
    /// Since when (RFC 3339, UTC).
    pub since: String,
    /// Why the map is in this state, when it says (a failure's reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The initial sync the map was started with (`left`, `right`,
    /// `none`), so that a copy interrupted by a crash goes on the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_sync: Option<String>,
    /// The last error the map met, kept after it recovered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The alert rule that paused the map (`failed`), when one did: such a
    /// map stays failed across restarts until an admin starts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// The registry plugins the map runs (`name@version`): a version a
    /// map runs cannot be removed from the registry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<String>,
}

impl MapRecord {
    /// A record of `state` from now on.
    pub fn new(state: Lifecycle) -> MapRecord {
        MapRecord {
            state,
            since: now(),
            reason: None,
            initial_sync: None,
            last_error: None,
            alert: None,
            plugins: Vec::new(),
        }
    }

    /// This record moved to `state` now, its reason and alert cleared;
    /// the initial sync and the last error are kept.
    pub fn moved(&self, state: Lifecycle) -> MapRecord {
        MapRecord {
            state,
            since: now(),
            reason: None,
            alert: None,
            ..self.clone()
        }
    }
}

/// Now, as the records write it.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Checkpoints {
    /// The record of map `map`, if it ever started or was set.
    pub fn map_record(&self, map: &str) -> Result<Option<MapRecord>, CheckpointError> {
        match self.maps.get(map.as_bytes())? {
            Some(bytes) => Ok(Some(parse(map.as_bytes(), &bytes)?)),
            None => Ok(None),
        }
    }

    /// Every map record, by name: maps of the config and maps it no longer
    /// has.
    pub fn map_records(&self) -> Result<Vec<(String, MapRecord)>, CheckpointError> {
        let mut records = Vec::new();
        for entry in self.maps.iter() {
            let (name, bytes) = entry?;
            records.push((
                String::from_utf8_lossy(&name).into_owned(),
                parse(&name, &bytes)?,
            ));
        }
        Ok(records)
    }

    /// Stores `record` as map `map`'s, and flushes.
    pub fn set_map_record(&self, map: &str, record: &MapRecord) -> Result<(), CheckpointError> {
        self.maps.insert(map.as_bytes(), json(record)?)?;
        self.maps.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_reopening_the_store() {
        let dir = tempfile::tempdir().expect("temporary directory");
        {
            let store = Checkpoints::open(dir.path()).expect("store");
            assert_eq!(store.map_record("customers").expect("read"), None);
            let mut record = MapRecord::new(Lifecycle::Paused);
            record.initial_sync = Some("left".into());
            store.set_map_record("customers", &record).expect("written");
        }
        let store = Checkpoints::open(dir.path()).expect("store again");
        let record = store.map_record("customers").expect("read").expect("kept");
        assert_eq!(record.state, Lifecycle::Paused);
        assert_eq!(record.initial_sync.as_deref(), Some("left"));
        let moved = record.moved(Lifecycle::Resuming);
        assert_eq!(moved.initial_sync.as_deref(), Some("left"));
        assert_eq!(
            store.map_records().expect("all"),
            vec![("customers".to_owned(), record)]
        );
    }
}
