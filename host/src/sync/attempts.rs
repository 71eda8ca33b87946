//! [`Attempts`]: how often in a row the target failed the write of one
//! queued change with a status of its own trouble (408, 429, 5xx: class
//! `system`) while it answered the rest of the change's `$batch`. Such a
//! change stays queued and its batch is tried again with backoff; once its
//! write failed [`WRITE_ATTEMPTS`] times in a row it is parked with the
//! service's message, so that a row the service keeps failing does not
//! hold its map in backoff for ever, and an admin sees it in the error
//! queue (`errors retry` once the service is healthy). A `$batch` the
//! service fails as a whole (an outage, throttling of the request) is no
//! row's attempt: it is retried for as long as it takes.
//!
//! The counts live in memory, per map: a restart gives each change its
//! attempts again.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::checkpoint::Direction;

/// How many times in a row the target may fail one change's write with a
/// status of its own trouble before the change is parked.
pub(super) const WRITE_ATTEMPTS: u32 = 5;

/// The failed attempts of one map's changes, by direction and queue seq.
#[derive(Debug, Default)]
pub(super) struct Attempts {
    failed: Mutex<HashMap<(Direction, u64), u32>>,
}

impl Attempts {
    /// Counts one more failed write of change `seq` of `direction`;
    /// returns how many in a row it has failed so far.
    pub fn failed(&self, direction: Direction, seq: u64) -> u32 {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        let count = failed.entry((direction, seq)).or_default();
        *count = count.saturating_add(1);
        *count
    }

    /// Change `seq` of `direction` is done with (written, closed, parked):
    /// its count goes.
    pub fn done(&self, direction: Direction, seq: u64) {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(direction, seq));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_counts_its_failures_until_it_is_done() {
        let attempts = Attempts::default();
        assert_eq!(attempts.failed(Direction::LeftToRight, 7), 1);
        assert_eq!(attempts.failed(Direction::LeftToRight, 7), 2);
        assert_eq!(
            attempts.failed(Direction::RightToLeft, 7),
            1,
            "each direction counts its own changes"
        );
        assert_eq!(attempts.failed(Direction::LeftToRight, 8), 1);
        attempts.done(Direction::LeftToRight, 7);
        assert_eq!(
            attempts.failed(Direction::LeftToRight, 7),
            1,
            "counted anew"
        );
    }
}
