//! The one exponential backoff with jitter of the workspace: the
//! connector's retry loop, the sync engine's capture and worker retries and
//! the emulators' data-event deliveries all draw their waits from
//! [`backoff`], built on `backon`'s `ExponentialBuilder`.
//!
//! The n-th wait (n from 1) is drawn between half and all of
//! `first · 2^(n-1)`, capped at `max` ("equal jitter": never less than
//! half the nominal wait, so a retry storm spreads out without collapsing
//! to zero). The sequence never ends; the caller counts attempts and keeps
//! its budget, and starts a new sequence after a success.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// The waits between attempts: the n-th between half and all of
/// `first · 2^(n-1)`, never more than `max`. Endless; take from it one
/// wait per failure and call it again after a success.
///
/// ```
/// use std::time::Duration;
/// use dualwrite::connector::backoff;
///
/// let waits: Vec<Duration> = backoff(Duration::from_millis(100), Duration::from_secs(1))
///     .take(6)
///     .collect();
/// assert!(waits[0] >= Duration::from_millis(49) && waits[0] <= Duration::from_millis(100));
/// assert!(waits[5] >= Duration::from_millis(499) && waits[5] <= Duration::from_secs(1));
/// ```
pub fn backoff(first: Duration, max: Duration) -> impl Iterator<Item = Duration> + Send + 'static {
    // backon adds a jitter of up to the nominal wait on top of it, so half
    // of each bound gives waits between half and all of the full ones. Its
    // arithmetic is in f32, a few nanoseconds off: `min(max)` keeps the cap
    // exact.
    ExponentialBuilder::new()
        .with_min_delay(first.min(max) / 2)
        .with_max_delay(max / 2)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
        .map(move |wait| wait.min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// backon computes in f32: allow it a microsecond either way.
    const SLACK: Duration = Duration::from_micros(1);

    #[test]
    fn waits_double_within_the_jitter_and_stop_at_the_cap() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let waits: Vec<Duration> = backoff(Duration::from_millis(100), Duration::from_secs(1))
                .take(30)
                .collect();
            for (attempt, full) in [
                (1, 100),
                (2, 200),
                (3, 400),
                (4, 800),
                (5, 1000),
                (30, 1000),
            ] {
                let wait = waits[attempt - 1];
                let full = Duration::from_millis(full);
                assert!(wait + SLACK >= full / 2, "{attempt}: {wait:?}");
                assert!(wait <= full + SLACK, "{attempt}: {wait:?}");
                assert!(wait <= Duration::from_secs(1), "the cap is exact");
            }
            seen.insert(waits[0]);
        }
        assert!(seen.len() > 1, "the waits are jittered");
    }

    #[test]
    fn a_first_wait_past_the_cap_is_capped_and_zero_stays_zero() {
        assert!(
            backoff(Duration::from_secs(60), Duration::from_secs(2))
                .take(5)
                .all(
                    |wait| wait <= Duration::from_secs(2) && wait + SLACK >= Duration::from_secs(1)
                )
        );
        assert!(
            backoff(Duration::ZERO, Duration::from_secs(2))
                .take(5)
                .all(|wait| wait.is_zero())
        );
    }
}
