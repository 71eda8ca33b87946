//! A flow's queue as a whole: how many changes it holds.
//!
//! [`Counts`]: the changes queued per flow, counted once when the store
//! opens and kept by every transaction that queues or dequeues, after it
//! committed. sled lets one process open a store, and every write to the
//! queue goes through [`Checkpoints`](super::Checkpoints), so the count is
//! the queue's length without reading it; a count taken while a
//! transaction commits may lag it by that transaction, never drift.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use super::CheckpointError;

/// A queue key's tail after its flow: a NUL byte and the seq (u64 BE).
const SEQ_TAIL: usize = 9;

/// The changes queued per flow (`<map>\0<direction>`).
#[derive(Debug, Default)]
pub(super) struct Counts(Mutex<HashMap<Vec<u8>, usize>>);

impl Counts {
    /// Counts the entries of the `queue` tree per flow.
    pub(super) fn of_queue(queue: &sled::Tree) -> Result<Counts, CheckpointError> {
        let mut counts: HashMap<Vec<u8>, usize> = HashMap::new();
        for key in queue.iter().keys() {
            let key = key?;
            if let Some(end) = key.len().checked_sub(SEQ_TAIL) {
                *counts.entry(key[..end].to_vec()).or_default() += 1;
            }
        }
        Ok(Counts(Mutex::new(counts)))
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Vec<u8>, usize>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The changes queued in `flow`.
    pub(super) fn get(&self, flow: &[u8]) -> usize {
        self.lock().get(flow).copied().unwrap_or(0)
    }

    /// `n` changes were queued in `flow`.
    pub(super) fn add(&self, flow: &[u8], n: usize) {
        if n > 0 {
            let mut counts = self.lock();
            let count = counts.entry(flow.to_vec()).or_default();
            *count = count.saturating_add(n);
        }
    }

    /// `n` changes left `flow`.
    pub(super) fn sub(&self, flow: &[u8], n: usize) {
        if n > 0 {
            let mut counts = self.lock();
            if let Some(count) = counts.get_mut(flow) {
                *count = count.saturating_sub(n);
            }
        }
    }
}

#[cfg(test)]
mod tests;
