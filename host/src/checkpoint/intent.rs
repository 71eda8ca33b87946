//! Write-ahead intents: what a batch's writes will leave on the target,
//! recorded before the batch is sent, so that a batch cut between the
//! target's commit and [`Checkpoints::finish`] (a crash, a timeout after
//! the service committed) is not blindly written again.
//!
//! An intent is the seq of a queued change and the echo fingerprint of
//! the target's mapped fields its write will leave ([`super::fingerprint`],
//! the deleted mark for a delete): the same fingerprint the echo check
//! stores. [`Checkpoints::intend`] records a batch's intents in one
//! transaction, flushed, before the first byte is sent. When a change that
//! still has an intent is to be written again, the engine reads the
//! target's row by key first ([`Checkpoints::intents`] says which have
//! one): a row whose fingerprint is the intent's already holds the write,
//! and is finished as written without a second request. The intent leaves
//! with its change: in the transaction of [`Checkpoints::finish`], or when
//! the change is parked or discarded.
//!
//! Tree `intent`: `<flow>\0<seq u64 BE>` → the fingerprint (32 bytes).

use std::collections::HashMap;

use super::ops::{flow, join};
use super::{CheckpointError, Checkpoints, Direction};

/// The length of a stored intent: one fingerprint.
const FINGERPRINT: usize = 32;

impl Checkpoints {
    /// Step 3a: before sending a batch of `map`'s `direction`, records the
    /// intent of each write, `(seq, fingerprint)`, in one transaction
    /// (replacing an older intent of the same change), then flushes.
    pub fn intend(
        &self,
        map: &str,
        direction: Direction,
        intents: &[(u64, [u8; 32])],
    ) -> Result<(), CheckpointError> {
        if intents.is_empty() {
            return Ok(());
        }
        let flow = flow(map, direction);
        let mut batch = sled::Batch::default();
        for (seq, fingerprint) in intents {
            batch.insert(slot(&flow, *seq), &fingerprint[..]);
        }
        // A sled batch is applied atomically: all of it or none.
        self.intent.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// The intents still recorded for the changes `seqs` of `map`'s
    /// `direction`: writes that were sent, or about to be, and whose
    /// outcome was never recorded.
    pub fn intents(
        &self,
        map: &str,
        direction: Direction,
        seqs: &[u64],
    ) -> Result<HashMap<u64, [u8; 32]>, CheckpointError> {
        let flow = flow(map, direction);
        let mut found = HashMap::new();
        for seq in seqs {
            let slot = slot(&flow, *seq);
            let Some(stored) = self.intent.get(&slot)? else {
                continue;
            };
            let fingerprint: [u8; FINGERPRINT] =
                stored
                    .as_ref()
                    .try_into()
                    .map_err(|_| CheckpointError::Corrupt {
                        key: String::from_utf8_lossy(&slot).replace('\0', "/"),
                        detail: format!(
                            "an intent is a {FINGERPRINT}-byte fingerprint, this one has {} bytes",
                            stored.len()
                        ),
                    })?;
            found.insert(*seq, fingerprint);
        }
        Ok(found)
    }
}

/// The key of the intent of change `seq` of `flow`.
pub(super) fn slot(flow: &[u8], seq: u64) -> Vec<u8> {
    join(&[flow, &seq.to_be_bytes()])
}
