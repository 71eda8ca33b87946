//! Service protection limits and fault injection, applied to every service
//! request before it reaches the service logic: faults first (they hit
//! everyone, like an outage), then the bearer token, then the limits of the
//! client that token belongs to (the services count per user).
//!
//! Shares (of 5xx, 429, dropped connections) are applied deterministically
//! with an accumulator: a share of 0.25 fails exactly every fourth request,
//! so tests and demos repeat.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{StatusCode, header};
use serde::{Deserialize, Serialize};

use super::http::ApiError;

/// Service protection limits; zero means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtectionLimits {
    /// Requests allowed per window.
    pub requests_per_window: u32,
    /// Window length in seconds.
    pub window_seconds: u64,
    /// Requests allowed in flight at once.
    pub max_concurrent: u32,
}

impl ProtectionLimits {
    /// No limits (benchmarks).
    pub const UNLIMITED: Self = Self {
        requests_per_window: 0,
        window_seconds: 300,
        max_concurrent: 0,
    };
}

impl Default for ProtectionLimits {
    /// The documented Dataverse defaults: 6,000 requests per 300 seconds and
    /// 52 concurrent requests per user.
    fn default() -> Self {
        Self {
            requests_per_window: 6000,
            window_seconds: 300,
            max_concurrent: 52,
        }
    }
}

/// Faults to inject; settable at start and through `PUT /admin/faults`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultConfig {
    /// Latency added to every request, in milliseconds.
    pub latency_ms: u64,
    /// Share of requests (0–1) answered 503.
    pub error_share: f64,
    /// Share of requests (0–1) answered 429 with `Retry-After`.
    pub throttle_share: f64,
    /// Start a full outage (503 on everything) lasting this many seconds,
    /// at most [`MAX_OUTAGE_SECONDS`] (a longer one is clamped to it).
    pub outage_seconds: u64,
    /// Share of responses (0–1) whose connection drops mid-body.
    pub drop_share: f64,
}

/// The longest outage [`FaultConfig::outage_seconds`] starts: a year,
/// longer than any test or demo runs, and far enough inside what an
/// `Instant` can reach on every platform.
pub const MAX_OUTAGE_SECONDS: u64 = 365 * 24 * 60 * 60;

#[derive(Debug, Default)]
struct FaultState {
    config: FaultConfig,
    outage_until: Option<Instant>,
    error_acc: f64,
    throttle_acc: f64,
    drop_acc: f64,
}

/// One client's window and requests in flight.
#[derive(Debug)]
struct Usage {
    started: Instant,
    count: u32,
    in_flight: usize,
}

/// What the guard decided for one request.
#[derive(Debug, Default)]
pub struct Admission {
    /// Delay to add before answering.
    pub latency: Duration,
    /// Drop the connection mid-response.
    pub drop_connection: bool,
}

/// Limits and faults of one emulator.
#[derive(Debug)]
pub struct Guard {
    limits: Mutex<ProtectionLimits>,
    usage: Mutex<HashMap<String, Usage>>,
    faults: Mutex<FaultState>,
    codes: ThrottleCodes,
    admitted: std::sync::atomic::AtomicU64,
}

/// The error codes a service uses for its 429s.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleCodes {
    /// Too many requests in the window.
    pub requests: &'static str,
    /// Too many concurrent requests.
    pub concurrent: &'static str,
}

/// Held while a request is in flight; counts against its client.
#[derive(Debug)]
pub struct InFlight<'a> {
    guard: &'a Guard,
    client: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut usage = self.guard.usage.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(u) = usage.get_mut(&self.client) {
            u.in_flight = u.in_flight.saturating_sub(1);
        }
    }
}

fn take_share(acc: &mut f64, share: f64) -> bool {
    if share <= 0.0 {
        return false;
    }
    *acc += share.min(1.0);
    if *acc >= 1.0 - 1e-9 {
        *acc -= 1.0;
        true
    } else {
        false
    }
}

fn throttled(code: &str, message: String, retry_after: u64) -> ApiError {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, message)
        .with_header(header::RETRY_AFTER, retry_after.max(1).to_string())
}

impl Guard {
    /// Service requests that reached the guard so far (token requests and
    /// admin routes are not service requests).
    pub fn admitted(&self) -> u64 {
        self.admitted.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A guard with these limits and faults.
    pub fn new(limits: ProtectionLimits, faults: FaultConfig, codes: ThrottleCodes) -> Self {
        let guard = Self {
            limits: Mutex::new(limits),
            usage: Mutex::new(HashMap::new()),
            faults: Mutex::new(FaultState::default()),
            codes,
            admitted: std::sync::atomic::AtomicU64::new(0),
        };
        guard.set_faults(faults);
        guard
    }

    /// Replaces the fault configuration; a non-zero `outage_seconds` starts
    /// an outage now, of at most [`MAX_OUTAGE_SECONDS`].
    pub fn set_faults(&self, mut config: FaultConfig) {
        config.outage_seconds = config.outage_seconds.min(MAX_OUTAGE_SECONDS);
        let mut state = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        state.outage_until = match config.outage_seconds {
            0 => None,
            seconds => Instant::now().checked_add(Duration::from_secs(seconds)),
        };
        state.config = config;
    }

    /// The fault configuration in force.
    pub fn faults(&self) -> FaultConfig {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .config
            .clone()
    }

    /// Replaces the protection limits.
    pub fn set_limits(&self, limits: ProtectionLimits) {
        *self.limits.lock().unwrap_or_else(|e| e.into_inner()) = limits;
    }

    /// Applies the injected faults to a request.
    pub fn faults_for_request(&self) -> Result<Admission, ApiError> {
        let mut admission = Admission::default();
        {
            let mut f = self.faults.lock().unwrap_or_else(|e| e.into_inner());
            admission.latency = Duration::from_millis(f.config.latency_ms);
            if let Some(until) = f.outage_until {
                let now = Instant::now();
                if now < until {
                    let left = (until - now).as_secs().saturating_add(1);
                    return Err(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "ServiceUnavailable",
                        "The service is unavailable (injected outage).",
                    )
                    .with_header(header::RETRY_AFTER, left.to_string()));
                }
                f.outage_until = None;
            }
            let (e, t, d) = (
                f.config.error_share,
                f.config.throttle_share,
                f.config.drop_share,
            );
            if take_share(&mut f.error_acc, e) {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "The service is temporarily unavailable (injected fault).",
                ));
            }
            if take_share(&mut f.throttle_acc, t) {
                return Err(throttled(
                    self.codes.requests,
                    "Number of requests exceeded the limit (injected fault).".into(),
                    1,
                ));
            }
            admission.drop_connection = take_share(&mut f.drop_acc, d);
        }
        Ok(admission)
    }

    /// Counts a request of `client` against its limits; the returned guard
    /// holds its in-flight slot until dropped.
    pub fn admit(&self, client: &str) -> Result<InFlight<'_>, ApiError> {
        self.admitted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let limits = *self.limits.lock().unwrap_or_else(|e| e.into_inner());
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        let w = usage.entry(client.to_string()).or_insert_with(|| Usage {
            started: Instant::now(),
            count: 0,
            in_flight: 0,
        });
        if limits.requests_per_window > 0 {
            let length = Duration::from_secs(limits.window_seconds.max(1));
            let now = Instant::now();
            if now.duration_since(w.started) >= length {
                w.started = now;
                w.count = 0;
            }
            if w.count >= limits.requests_per_window {
                let left = length
                    .saturating_sub(now.duration_since(w.started))
                    .as_secs()
                    .saturating_add(1);
                return Err(throttled(
                    self.codes.requests,
                    format!(
                        "Number of requests exceeded the limit of {} over time window of {} seconds.",
                        limits.requests_per_window, limits.window_seconds
                    ),
                    left,
                ));
            }
            w.count += 1;
        }
        if limits.max_concurrent > 0 && w.in_flight >= limits.max_concurrent as usize {
            return Err(throttled(
                self.codes.concurrent,
                format!(
                    "Number of concurrent requests exceeded the limit of {}.",
                    limits.max_concurrent
                ),
                1,
            ));
        }
        w.in_flight += 1;
        Ok(InFlight {
            guard: self,
            client: client.to_string(),
        })
    }
}
