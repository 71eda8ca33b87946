//! The polling budget: the polls of all maps against one system share
//! `engine.polling_share` (10%) of its `request_limit` (the requests one
//! application user may send in 5 minutes: 6,000 for Dataverse,
//! <https://learn.microsoft.com/power-apps/developer/data-platform/api-limits>),
//! so polling leaves the rest of the limit to the writes, however many
//! maps run.
//!
//! A poll is a capture read after a wait (the catch-all of a pushed side,
//! or the polling of one that is not); the pages that follow it while a
//! read has more (an initial copy, a catch-up) are not polls, and neither
//! are the re-reads an event asks for. Each system's [`PollBudget`] spaces
//! polls evenly (a rate limiter of one poll per `spacing`, no bursts), and
//! tells each side the interval it can have: its configured one, or the
//! one that fits the budget when many maps share the system.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::config::REQUEST_WINDOW;

/// The polling budget of one system.
#[derive(Debug)]
pub struct PollBudget {
    /// Polls per 5 minutes: `polling_share` of the system's limit.
    per_window: f64,
    /// Capture tasks polling this system.
    pollers: usize,
    /// The time between two polls of any map.
    spacing: Duration,
    limiter: DefaultDirectRateLimiter,
}

/// What one side's polling gets, for status.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Polling {
    /// The system polled.
    pub system: String,
    /// The interval the config asks for (`poll_interval`, or
    /// `catch_all_interval` when the side's changes are pushed).
    #[serde(with = "humantime_serde")]
    pub configured: Duration,
    /// The interval the budget allows: at least `configured`.
    #[serde(with = "humantime_serde")]
    pub effective: Duration,
    /// Capture tasks sharing the system's budget.
    pub pollers: usize,
    /// Polls all of them may make in 5 minutes.
    pub budget_per_5_min: u32,
}

impl PollBudget {
    /// The budget of a system allowing `request_limit` requests in 5
    /// minutes, `share` of which polls may use, shared by `pollers`.
    pub fn new(request_limit: u32, share: f64, pollers: usize) -> Self {
        let per_window =
            (f64::from(request_limit.max(1)) * share.clamp(f64::MIN_POSITIVE, 1.0)).max(1.0);
        let spacing = REQUEST_WINDOW
            .div_f64(per_window)
            .max(Duration::from_millis(1));
        let quota = Quota::with_period(spacing)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::MIN);
        Self {
            per_window,
            pollers,
            spacing,
            limiter: RateLimiter::direct(quota),
        }
    }

    /// Waits for this system's next poll slot.
    pub async fn poll(&self) {
        self.limiter.until_ready().await;
    }

    /// The interval a side configured for `configured` gets: the pollers
    /// take turns, so each waits at least `pollers` × the spacing.
    pub fn interval(&self, configured: Duration) -> Duration {
        let turn = self
            .spacing
            .saturating_mul(u32::try_from(self.pollers).unwrap_or(u32::MAX));
        configured.max(turn)
    }

    /// The status of a side of `system` configured for `configured`.
    pub fn status(&self, system: &str, configured: Duration) -> Polling {
        Polling {
            system: system.to_owned(),
            configured,
            effective: self.interval(configured),
            pollers: self.pollers,
            budget_per_5_min: self.per_window.round() as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifty_maps_share_a_tenth_of_six_thousand_requests() {
        let budget = PollBudget::new(6000, 0.1, 50);
        // 600 polls in 5 minutes: one every 500 ms, each map's every 25 s.
        assert_eq!(budget.spacing, Duration::from_millis(500));
        assert_eq!(
            budget.interval(Duration::from_secs(1)),
            Duration::from_secs(25)
        );
        assert_eq!(
            budget.interval(Duration::from_secs(60)),
            Duration::from_secs(60)
        );
        let status = budget.status("dataverse", Duration::from_secs(1));
        assert_eq!(status.budget_per_5_min, 600);
        assert_eq!(status.effective, Duration::from_secs(25));
    }

    #[test]
    fn one_map_polls_as_configured() {
        let budget = PollBudget::new(6000, 0.1, 1);
        assert_eq!(
            budget.interval(Duration::from_secs(1)),
            Duration::from_secs(1)
        );
    }

    #[tokio::test]
    async fn polls_are_spaced_by_the_budget() {
        // 60 polls in 5 minutes: one each 5 s; the first is free.
        let budget = PollBudget::new(600, 0.1, 3);
        let started = tokio::time::Instant::now();
        budget.poll().await;
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(
            budget.limiter.check().is_err(),
            "a second poll at once waits"
        );
    }
}
