//! [`Limiter`]: how many requests one system may have in flight, adapted
//! to its throttling (additive increase, multiplicative decrease).
//!
//! The limit starts at the configured maximum (`max_concurrency`: Dataverse
//! allows 52 concurrent requests per user,
//! <https://learn.microsoft.com/power-apps/developer/data-platform/api-limits>).
//! A 429 halves it (at most once per round of requests in flight, so a
//! burst of 429s to requests sent together counts once) and holds every
//! new request back until the `Retry-After` the service asked for has
//! passed: the service extends the wait of a client that keeps sending.
//! Each `limit` successes in a row raise it by one, back up to the
//! maximum.
//!
//! Invariant: never more than `limit` requests hold a [`Permit`]; the
//! limit stays within 1 and the maximum.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// The adaptive concurrency limit of one system.
#[derive(Debug)]
pub(crate) struct Limiter {
    max: usize,
    state: Mutex<State>,
    changed: Notify,
}

#[derive(Debug)]
struct State {
    limit: usize,
    in_flight: usize,
    /// Successes since the limit last moved.
    successes: usize,
    /// Requests sent since the last decrease; a 429 to a request sent
    /// before it was already counted.
    generation: u64,
    /// No request starts before this (a `Retry-After`).
    resume_at: Option<Instant>,
}

/// One request's place; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Permit {
    limiter: Arc<Limiter>,
    generation: u64,
}

impl Limiter {
    /// A limiter allowing `max` requests at once (at least 1).
    pub fn new(max: usize) -> Arc<Limiter> {
        let max = max.max(1);
        Arc::new(Limiter {
            max,
            state: Mutex::new(State {
                limit: max,
                in_flight: 0,
                successes: 0,
                generation: 0,
                resume_at: None,
            }),
            changed: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The limit now.
    pub fn limit(&self) -> usize {
        self.lock().limit
    }

    /// Waits for a place. Cancel-safe: a cancelled wait takes no place.
    pub async fn acquire(self: &Arc<Self>) -> Permit {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let wait = {
                let mut state = self.lock();
                let now = Instant::now();
                match state.resume_at {
                    Some(at) if at > now => Some(at - now),
                    _ if state.in_flight < state.limit => {
                        state.resume_at = None;
                        state.in_flight += 1;
                        return Permit {
                            limiter: self.clone(),
                            generation: state.generation,
                        };
                    }
                    _ => None,
                }
            };
            match wait {
                Some(wait) => {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = &mut changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }
}

impl Permit {
    /// The request succeeded (any answer but a 429): a full round of
    /// successes raises the limit by one.
    pub fn succeeded(&self) {
        let mut state = self.limiter.lock();
        state.successes += 1;
        if state.successes >= state.limit && state.limit < self.limiter.max {
            state.limit += 1;
            state.successes = 0;
            drop(state);
            self.limiter.changed.notify_waiters();
        }
    }

    /// The service throttled the request and asked for `retry_after`: the
    /// limit halves (once per round) and no request starts before then.
    pub fn throttled(&self, retry_after: Option<Duration>) {
        let mut state = self.limiter.lock();
        if self.generation == state.generation {
            state.limit = (state.limit / 2).max(1);
            state.successes = 0;
            state.generation += 1;
        }
        if let Some(wait) = retry_after {
            let at = Instant::now().checked_add(wait);
            state.resume_at = match (state.resume_at, at) {
                (Some(old), Some(new)) => Some(old.max(new)),
                (old, new) => new.or(old),
            };
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut state = self.limiter.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        drop(state);
        self.limiter.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn throttling_halves_the_limit_once_per_round_and_successes_raise_it() {
        let limiter = Limiter::new(8);
        let permits: Vec<Permit> = acquire_n(&limiter, 8).await;
        assert_eq!(limiter.limit(), 8);
        // Four requests of the same round are throttled: one halving.
        for permit in &permits[..4] {
            permit.throttled(None);
        }
        assert_eq!(limiter.limit(), 4);
        drop(permits);
        // A request of the next round throttled again halves again.
        let permit = limiter.acquire().await;
        permit.throttled(None);
        assert_eq!(limiter.limit(), 2);
        drop(permit);
        // Two successes (one round at 2) raise it to 3, three more to 4.
        for _ in 0..5 {
            limiter.acquire().await.succeeded();
        }
        assert_eq!(limiter.limit(), 4);
        for _ in 0..100 {
            limiter.acquire().await.succeeded();
        }
        assert_eq!(limiter.limit(), 8, "never past the maximum");
    }

    #[tokio::test]
    async fn no_more_than_the_limit_hold_a_permit() {
        let limiter = Limiter::new(2);
        let first = limiter.acquire().await;
        let _second = limiter.acquire().await;
        let third = tokio::time::timeout(Duration::from_millis(50), limiter.acquire()).await;
        assert!(third.is_err(), "a third request waits");
        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(1), limiter.acquire()).await;
        assert!(third.is_ok(), "a freed place is taken");
    }

    #[tokio::test]
    async fn retry_after_holds_back_every_new_request() {
        let limiter = Limiter::new(4);
        let permit = limiter.acquire().await;
        permit.throttled(Some(Duration::from_millis(300)));
        drop(permit);
        let started = Instant::now();
        let _next = limiter.acquire().await;
        assert!(started.elapsed() >= Duration::from_millis(250));
    }

    async fn acquire_n(limiter: &Arc<Limiter>, n: usize) -> Vec<Permit> {
        let mut permits = Vec::new();
        for _ in 0..n {
            permits.push(limiter.acquire().await);
        }
        permits
    }
}
