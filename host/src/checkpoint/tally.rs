//! What the store keeps in memory of each flow's queue, so that capture,
//! the worker and a status read no queue: [`Tally`], behind one lock
//! ([`Counts`]).
//!
//! - The changes queued per flow: counted once when the store opens, and
//!   kept by every transaction that queues or dequeues, after it
//!   committed. sled lets one process open a store, and every write to the
//!   queue goes through [`Checkpoints`](super::Checkpoints), so the count is
//!   the queue's length; one taken while a transaction commits may lag it
//!   by that transaction, never drift.
//! - Per flow, a seq below which every queued change belongs to a parked
//!   key (`parked_below`), where the last search for the oldest change
//!   waiting stopped: the next one starts there, so a large parked backlog
//!   is read once, not at every capture. It holds while keys are only
//!   parked or changes only dequeued, and while no change is queued below
//!   it: every change is queued under the lock (a capture holds it), and
//!   the search runs under it too, so a change queued later gets a higher
//!   seq. A key unparked (resubmitted, discarded, or its parked entry
//!   removed with a change done) forgets it.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use super::CheckpointError;

/// A queue key's tail after its flow: a NUL byte and the seq (u64 BE).
const SEQ_TAIL: usize = 9;

/// The counts and search starts of every flow (`<map>\0<direction>`).
#[derive(Debug, Default)]
pub(super) struct Tally {
    queued: HashMap<Vec<u8>, usize>,
    parked_below: HashMap<Vec<u8>, u64>,
}

impl Tally {
    /// The changes queued in `flow`.
    pub(super) fn queued(&self, flow: &[u8]) -> usize {
        self.queued.get(flow).copied().unwrap_or(0)
    }

    /// `n` changes were queued in `flow`.
    pub(super) fn add(&mut self, flow: &[u8], n: usize) {
        if n > 0 {
            let count = self.queued.entry(flow.to_vec()).or_default();
            *count = count.saturating_add(n);
        }
    }

    /// The seq below which every change of `flow` is a parked key's.
    pub(super) fn parked_below(&self, flow: &[u8]) -> u64 {
        self.parked_below.get(flow).copied().unwrap_or(0)
    }

    /// Every change of `flow` below `seq` is a parked key's.
    pub(super) fn set_parked_below(&mut self, flow: &[u8], seq: u64) {
        self.parked_below.insert(flow.to_vec(), seq);
    }
}

/// The [`Tally`], shared by every clone of the store's handle.
#[derive(Debug, Default)]
pub(super) struct Counts(Mutex<Tally>);

impl Counts {
    /// Counts the entries of the `queue` tree per flow.
    pub(super) fn of_queue(queue: &sled::Tree) -> Result<Counts, CheckpointError> {
        let mut tally = Tally::default();
        for key in queue.iter().keys() {
            let key = key?;
            if let Some(end) = key.len().checked_sub(SEQ_TAIL) {
                tally.add(&key[..end], 1);
            }
        }
        Ok(Counts(Mutex::new(tally)))
    }

    /// The tally, locked: a capture holds it from deciding how many changes
    /// fit to counting those it queued, so two captures of one flow cannot
    /// both take its last room.
    pub(super) fn lock(&self) -> MutexGuard<'_, Tally> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The changes queued in `flow`.
    pub(super) fn get(&self, flow: &[u8]) -> usize {
        self.lock().queued(flow)
    }

    /// `n` changes left `flow`.
    pub(super) fn sub(&self, flow: &[u8], n: usize) {
        if n > 0 {
            let mut tally = self.lock();
            if let Some(count) = tally.queued.get_mut(flow) {
                *count = count.saturating_sub(n);
            }
        }
    }

    /// A key of `flow` is no longer parked: its changes may be the oldest
    /// waiting again, so the next search starts at the head.
    pub(super) fn unparked(&self, flow: &[u8]) {
        self.lock().parked_below.remove(flow);
    }
}
