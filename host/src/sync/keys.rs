//! [`Keys`]: the keys of one map that the engine holds back from the next
//! batch: those a batch in flight carries (in either direction) and those
//! waiting for the row a lookup points at.
//!
//! Invariant: a key is in at most one batch in flight, of either
//! direction, so changes of one key are applied in capture order and the
//! two directions of one key never run at once (an echo is always read
//! after the write that made it was recorded), however many batches are
//! in flight.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::checkpoint::QueuedChange;

/// The held keys of one map.
#[derive(Debug, Default)]
pub(super) struct Keys {
    inner: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    /// Lowercased keys of the changes in batches in flight.
    in_flight: HashSet<String>,
    /// Keys waiting for a lookup, by key as queued.
    waiting: HashMap<String, Waiting>,
}

/// A key waiting for the row its lookup points at.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    since: Instant,
    retry_at: Instant,
}

/// What became of a key that must wait for a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    /// It starts waiting now (worth a log line).
    First,
    /// It waited before and waits again.
    Again,
    /// It waited `lookup_wait` already: park it.
    GaveUp,
}

/// The keys of one batch in flight; dropping it (the batch ended, was
/// abandoned or its task aborted) frees them.
#[derive(Debug)]
pub(super) struct Claim {
    keys: Arc<Keys>,
    claimed: Vec<String>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut held = self.keys.lock();
        for key in &self.claimed {
            held.in_flight.remove(key);
        }
    }
}

impl Keys {
    fn lock(&self) -> MutexGuard<'_, Held> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the next batch must leave `key` out at `now`: a batch in
    /// flight carries it, or it waits for a lookup not yet due again.
    pub fn held(&self, key: &str, now: Instant) -> bool {
        let held = self.lock();
        held.in_flight.contains(&key.to_lowercase())
            || held.waiting.get(key).is_some_and(|w| w.retry_at > now)
    }

    /// Claims the keys of `batch` until the returned claim is dropped.
    pub fn claim(self: &Arc<Self>, batch: &[QueuedChange]) -> Claim {
        let claimed: Vec<String> = batch
            .iter()
            .map(|queued| queued.change.key.to_lowercase())
            .collect();
        let mut held = self.lock();
        held.in_flight.extend(claimed.iter().cloned());
        drop(held);
        Claim {
            keys: self.clone(),
            claimed,
        }
    }

    /// `key` must wait for a lookup: it is left out of batches for a
    /// while that grows with how long it has waited (200 ms to 5 s), until
    /// it has waited `limit`.
    #[cfg(test)]
    pub fn wait(&self, key: &str, limit: Duration) -> Wait {
        self.wait_patiently(key, limit, false)
    }

    /// As [`Keys::wait`]; `patient` (the map its lookup needs is not
    /// running) restarts the clock of `limit`, so that the key waits as
    /// long as that map does, and `limit` more once it runs again.
    pub fn wait_patiently(&self, key: &str, limit: Duration, patient: bool) -> Wait {
        let now = Instant::now();
        let mut held = self.lock();
        let entry = held.waiting.entry(key.to_owned()).or_insert(Waiting {
            since: now,
            retry_at: now,
        });
        if patient && entry.retry_at != entry.since {
            // Keeps the key's retries spaced, its clock restarted.
            let spacing = entry.retry_at.saturating_duration_since(entry.since);
            entry.since = now;
            entry.retry_at = now
                .checked_add(spacing.max(Duration::from_millis(1)))
                .unwrap_or(now);
            return Wait::Again;
        }
        let waited = now.saturating_duration_since(entry.since);
        if waited >= limit {
            held.waiting.remove(key);
            return Wait::GaveUp;
        }
        let first = entry.retry_at == entry.since;
        let pause = waited.clamp(Duration::from_millis(200), Duration::from_secs(5));
        entry.retry_at = now.checked_add(pause).unwrap_or(now);
        if first { Wait::First } else { Wait::Again }
    }

    /// `key` waits for no lookup any more.
    pub fn resolved(&self, key: &str) {
        self.lock().waiting.remove(key);
    }

    /// Whether no batch in flight holds a key.
    pub fn none_in_flight(&self) -> bool {
        self.lock().in_flight.is_empty()
    }

    /// Whether no key waits for a lookup.
    pub fn none_waiting(&self) -> bool {
        self.lock().waiting.is_empty()
    }

    /// How long until the first waiting key is due again.
    pub fn next_due(&self) -> Option<Duration> {
        let now = Instant::now();
        self.lock()
            .waiting
            .values()
            .map(|w| w.retry_at.saturating_duration_since(now))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{Change, Operation, Phase};

    fn queued(seq: u64, key: &str) -> QueuedChange {
        QueuedChange {
            seq,
            change: Change {
                key: key.into(),
                version: seq.to_string(),
                operation: Operation::Upsert,
                row: serde_json::Map::new(),
                modified: None,
                read_at: 0,
                unreadable: None,
                phase: Phase::Live,
            },
            captured: None,
        }
    }

    #[test]
    fn a_claim_holds_its_keys_until_dropped() {
        let keys = Arc::new(Keys::default());
        let now = Instant::now();
        let claim = keys.claim(&[queued(1, "USMF|C1"), queued(2, "usmf|c2")]);
        assert!(
            keys.held("usmf|c1", now),
            "keys are held whatever their case"
        );
        assert!(keys.held("USMF|C2", now));
        assert!(!keys.held("usmf|c3", now));
        drop(claim);
        assert!(!keys.held("usmf|c1", now));
    }

    #[test]
    fn a_waiting_key_is_held_until_due_then_given_up() {
        let keys = Keys::default();
        assert_eq!(keys.wait("k", Duration::from_secs(60)), Wait::First);
        assert!(keys.held("k", Instant::now()));
        assert!(!keys.none_waiting());
        assert_eq!(keys.wait("k", Duration::from_secs(60)), Wait::Again);
        assert_eq!(keys.wait("k", Duration::ZERO), Wait::GaveUp);
        assert!(keys.none_waiting());
        keys.wait("k", Duration::from_secs(60));
        keys.resolved("k");
        assert!(!keys.held("k", Instant::now()));
    }
}
