//! What a side last showed of each row, for sides read by comparison
//! rather than by a change feed (finops, whose OData gives no row versions
//! or deleted rows): per map, side and key, a hash of the row as last read
//! and its key fields, stored by [`Checkpoints::capture_seen`] in the
//! transaction that queues the change.
//!
//! A reconciliation read queues a row only when its hash differs from the
//! stored one, and a key with a stored hash that a full read no longer
//! returns is a delete. The store id ([`Checkpoints::stamp`]) of the read
//! that stored a hash is kept with it, so a read can tell the hashes stored
//! after it began (by a data event meanwhile) from the ones it must have
//! seen.
//!
//! Value layout (tree `hashes`): the hash (32 bytes), the stamp (u64 BE),
//! then the key fields as a JSON object.

use serde_json::{Map, Value};

use super::ops::{canon, join, json, parse, prefix};
use super::{Change, CheckpointError, Checkpoints};

/// The hash of a row as a side last showed it.
#[derive(Debug, Clone, PartialEq)]
pub struct RowHash {
    /// The hash of the row's fields read (`checkpoint::fingerprint`).
    pub hash: [u8; 32],
    /// The stamp taken before the read that stored it.
    pub stamp: u64,
    /// The row's key fields with their values, as read.
    pub key: Map<String, Value>,
}

/// A change with what its side's row hashed to: `None` for a delete (the
/// key's hash is forgotten when it is queued).
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// The change to queue.
    pub change: Change,
    /// The row's hash, for an upsert.
    pub hash: Option<RowHash>,
}

impl Checkpoints {
    /// The hash stored for `key` on a map's `side`, if any.
    pub fn row_hash(
        &self,
        map: &str,
        side: &str,
        key: &str,
    ) -> Result<Option<RowHash>, CheckpointError> {
        let slot = slot(map, side, key);
        match self.hashes.get(&slot)? {
            Some(bytes) => Ok(Some(decode(&slot, &bytes)?)),
            None => Ok(None),
        }
    }

    /// Every hash stored for a map's `side`, in key order, read lazily (a
    /// side may hold many rows).
    pub fn row_hashes<'a>(
        &'a self,
        map: &str,
        side: &str,
    ) -> impl Iterator<Item = Result<RowHash, CheckpointError>> + 'a {
        let start = join(&[map.as_bytes(), side.as_bytes()]);
        self.hashes.scan_prefix(prefix(&start)).map(|entry| {
            let (slot, bytes) = entry?;
            decode(&slot, &bytes)
        })
    }
}

/// Where the hash of `key` on `side` is stored.
pub(super) fn slot(map: &str, side: &str, key: &str) -> Vec<u8> {
    join(&[map.as_bytes(), side.as_bytes(), &canon(key)])
}

pub(super) fn encode(hash: &RowHash) -> Result<Vec<u8>, CheckpointError> {
    let mut value = Vec::with_capacity(64);
    value.extend_from_slice(&hash.hash);
    value.extend_from_slice(&hash.stamp.to_be_bytes());
    value.extend_from_slice(&json(&hash.key)?);
    Ok(value)
}

fn decode(slot: &[u8], bytes: &[u8]) -> Result<RowHash, CheckpointError> {
    let corrupt = || CheckpointError::Corrupt {
        key: String::from_utf8_lossy(slot).replace('\0', "/"),
        detail: format!(
            "a row hash of {} bytes is shorter than its 40-byte head",
            bytes.len()
        ),
    };
    let (hash, rest) = bytes.split_first_chunk::<32>().ok_or_else(corrupt)?;
    let (stamp, key) = rest.split_first_chunk::<8>().ok_or_else(corrupt)?;
    Ok(RowHash {
        hash: *hash,
        stamp: u64::from_be_bytes(*stamp),
        key: parse(slot, key)?,
    })
}
