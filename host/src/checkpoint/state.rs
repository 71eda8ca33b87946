//! Per-key sync state the engine reads between the protocol's steps: the
//! echo fingerprint and image of each side, the key behind a Dataverse row
//! id, and the changes of one key still queued in a flow.

use serde_json::{Map, Value};

use super::echo::{self, Written};
use super::ops::{canon, flow, join, parse, prefix};
use super::{CheckpointError, Checkpoints, Direction, QueuedChange};

impl Checkpoints {
    /// The fingerprints of the host's recent writes of `key` on `side` not
    /// echoed yet, oldest first.
    pub fn echo(&self, map: &str, side: &str, key: &str) -> Result<Vec<[u8; 32]>, CheckpointError> {
        Ok(self
            .writes(map, side, key)?
            .into_iter()
            .map(|w| w.fingerprint)
            .collect())
    }

    /// The host's recent writes of `key` on `side` not echoed yet, with
    /// the store id each was recorded under.
    pub fn writes(
        &self,
        map: &str,
        side: &str,
        key: &str,
    ) -> Result<Vec<Written>, CheckpointError> {
        let slot = join(&[map.as_bytes(), side.as_bytes(), &canon(key)]);
        Ok(self
            .echo_tree()
            .get(slot)?
            .map(|stored| echo::entries(&stored))
            .unwrap_or_default())
    }

    /// The last known image of `key`'s mapped fields on `side`: what the
    /// side last reported, with what the host wrote there since.
    pub fn image(
        &self,
        map: &str,
        side: &str,
        key: &str,
    ) -> Result<Option<Map<String, Value>>, CheckpointError> {
        let slot = join(&[map.as_bytes(), side.as_bytes(), &canon(key)]);
        match self.images.get(&slot)? {
            Some(bytes) => Ok(Some(parse(&slot, &bytes)?)),
            None => Ok(None),
        }
    }

    /// Every image of a map's `side`: the rows the host knows there.
    pub fn images(
        &self,
        map: &str,
        side: &str,
    ) -> Result<Vec<Map<String, Value>>, CheckpointError> {
        let start = join(&[map.as_bytes(), side.as_bytes()]);
        let mut images = Vec::new();
        for entry in self.images.scan_prefix(prefix(&start)) {
            let (slot, bytes) = entry?;
            images.push(parse(&slot, &bytes)?);
        }
        Ok(images)
    }

    /// The integration key of the row with id `id` on `side`, remembered at
    /// capture.
    pub fn key_of_id(
        &self,
        map: &str,
        side: &str,
        id: &str,
    ) -> Result<Option<String>, CheckpointError> {
        let slot = join(&[map.as_bytes(), side.as_bytes(), id.as_bytes()]);
        Ok(self
            .ids
            .get(slot)?
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// The changes of `key` queued in a map's direction, oldest first.
    pub fn pending(
        &self,
        map: &str,
        direction: Direction,
        key: &str,
    ) -> Result<Vec<QueuedChange>, CheckpointError> {
        let flow = flow(map, direction);
        let start = join(&[&flow, &canon(key)]);
        let mut changes = Vec::new();
        for entry in self.by_key.scan_prefix(prefix(&start)) {
            let (index, _) = entry?;
            let Some(seq) = index.get(index.len().saturating_sub(8)..) else {
                continue;
            };
            let slot = join(&[&flow, seq]);
            if let Some(bytes) = self.queue_tree().get(&slot)? {
                changes.push(parse(&slot, &bytes)?);
            }
        }
        Ok(changes)
    }
}
