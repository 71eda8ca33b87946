//! [`Transport`]: one system's HTTP client: the bearer token, a cap on
//! requests in flight that adapts to throttling ([`Limiter`]), a timeout
//! per request, and retries with exponential backoff and jitter that
//! honour `Retry-After`.
//!
//! Invariant: a wait the service asks for is clamped to
//! [`MAX_RETRY_AFTER`] and time sums saturate, so no header value can
//! overflow the retry loop's arithmetic or a caller's `Instant + Duration`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::auth::{ClientAuth, TokenCache, transport_detail};
use super::backoff::backoff;
use super::error::{ConnectorError, ServiceError, SystemKind};
use super::key::Key;
use super::limit::Limiter;
use super::tls::{TrustedCa, client, tls_failure};

/// The longest wait a `Retry-After` can ask for: a day. A longer one (up
/// to `u64::MAX` seconds, or a date in the year 9999) is read as a day,
/// which is past any sensible retry budget, so the retries end at once.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// How hard to retry throttled, failing or unreachable requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles per attempt, with jitter
    /// (each wait between half and all of its nominal value: [`backoff`]).
    pub base_delay: Duration,
    /// Longest backoff between two attempts (a `Retry-After` may ask more).
    pub max_delay: Duration,
    /// Total time one request may spend; a `Retry-After` reaching past it
    /// ends the retries at once.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
            budget: Duration::from_secs(300),
        }
    }
}

/// Settings of one connector; every field has a sensible default.
#[derive(Debug, Clone)]
pub struct ConnectorOptions {
    /// Most requests in flight at once against this system (52: what
    /// Dataverse allows per user); a 429 lowers the limit for a while.
    pub max_in_flight: usize,
    /// Time allowed per request attempt, response body included.
    pub request_timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// Refresh a token this long before it expires.
    pub token_refresh_margin: Duration,
    /// Rows asked per page (`Prefer: odata.maxpagesize`, Dataverse).
    pub page_size: u32,
    /// A private CA trusted besides the system roots (`ca_file`).
    pub ca: Option<TrustedCa>,
}

impl Default for ConnectorOptions {
    fn default() -> Self {
        Self {
            max_in_flight: 52,
            request_timeout: Duration::from_secs(120),
            retry: RetryPolicy::default(),
            token_refresh_margin: Duration::from_secs(300),
            page_size: 5000,
            ca: None,
        }
    }
}

/// Counters of one connector, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectorStats {
    /// HTTP requests sent (attempts, token requests excluded).
    pub requests: u64,
    /// Attempts that were retries.
    pub retries: u64,
    /// 429 answers received.
    pub throttled: u64,
    /// Attempts that failed: no answer (a connection refused or lost, a
    /// timeout, a TLS failure) or a 5xx answer. A 4xx is an answer about
    /// the request (a row refused, a row not found), not counted here.
    pub errors: u64,
    /// Tokens fetched.
    pub tokens: u64,
    /// Requests allowed in flight now (lowered by throttling).
    pub concurrency: u64,
}

/// A request that can be sent again.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    /// Content type and body.
    pub body: Option<(String, Bytes)>,
    /// Never sent again once it may have reached the service: a lost answer
    /// is the caller's to settle (a `$batch`, whose writes the engine reads
    /// back before it writes them again).
    pub once_sent: bool,
}

impl Call {
    pub fn new(method: Method, url: String) -> Self {
        Self {
            method,
            url,
            headers: Vec::new(),
            body: None,
            once_sent: false,
        }
    }

    /// Marks the call as sent at most once past the connection.
    pub fn once_sent(mut self) -> Self {
        self.once_sent = true;
        self
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn json(self, value: &serde_json::Map<String, serde_json::Value>) -> Self {
        // A map of JSON values always serializes.
        let body = serde_json::to_vec(value).unwrap_or_default();
        self.body("application/json", body)
    }

    pub fn body(mut self, content_type: impl Into<String>, body: impl Into<Bytes>) -> Self {
        self.body = Some((content_type.into(), body.into()));
        self
    }
}

/// A response read in full.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The HTTP side of one system, shared by clones of its connector.
#[derive(Debug)]
pub(crate) struct Transport {
    pub system: SystemKind,
    pub service_url: String,
    pub options: ConnectorOptions,
    http: reqwest::Client,
    tokens: TokenCache,
    limiter: Arc<Limiter>,
    requests: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
    errors: AtomicU64,
    /// Since when the service fails every attempt, and the last failure:
    /// set at a transient failure, cleared by the next answer.
    failing: std::sync::Mutex<Option<Failing>>,
}

/// A service that has answered only transient failures (429, 5xx, no
/// connection) since a moment: its callers wait and retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failing {
    /// Since when (RFC 3339, UTC).
    pub since: String,
    /// The last failure.
    pub last: String,
}

enum Failure {
    Status(u16, ServiceError, Option<Duration>),
    Transport(String),
}

impl Transport {
    pub fn new(
        system: SystemKind,
        service_url: &str,
        credentials: ClientAuth,
        options: ConnectorOptions,
    ) -> Self {
        let tokens = TokenCache::new(system, credentials, &options);
        Self {
            system,
            service_url: service_url.trim_end_matches('/').to_string(),
            http: client(options.ca.as_ref()),
            tokens,
            limiter: Limiter::new(options.max_in_flight),
            options,
            requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            failing: std::sync::Mutex::new(None),
        }
    }

    /// Whether the service fails every attempt now, since when and how.
    pub fn failing(&self) -> Option<Failing> {
        self.failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_failing(&self, last: Option<String>) {
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        match (last, failing.as_mut()) {
            (None, _) => *failing = None,
            (Some(last), Some(known)) => known.last = last,
            (Some(last), None) => {
                *failing = Some(Failing {
                    since: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    last,
                });
            }
        }
    }

    pub fn stats(&self) -> ConnectorStats {
        ConnectorStats {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            tokens: self.tokens.fetched(),
            concurrency: self.limiter.limit() as u64,
        }
    }

    /// `service_url/path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.service_url)
    }

    /// Sends `call`, retrying transient failures; answers any other status,
    /// success or not. Cancelled, it stops between or during attempts; a
    /// write may then have been applied or not, and is safe to send again
    /// because writes are idempotent by key.
    pub async fn send(&self, call: &Call) -> Result<Reply, ConnectorError> {
        let retry = self.options.retry;
        let started = Instant::now();
        let mut delays = backoff(retry.base_delay, retry.max_delay);
        let mut attempts = 0u32;
        let mut refreshed_after_401 = false;
        loop {
            attempts += 1;
            if attempts > 1 {
                self.retries.fetch_add(1, Ordering::Relaxed);
            }
            let failure = match self.attempt(call).await? {
                Ok(reply) if reply.status == 401 => {
                    if refreshed_after_401 {
                        return Err(self.unauthorized(call, &reply));
                    }
                    // The token may have been revoked or expired early: once,
                    // fetch a new one and try again at once.
                    refreshed_after_401 = true;
                    continue;
                }
                Ok(reply) if !matches!(reply.status, 429 | 500 | 502 | 503 | 504) => {
                    self.set_failing(None);
                    return Ok(reply);
                }
                Ok(reply) => {
                    if reply.status == 429 {
                        self.throttled.fetch_add(1, Ordering::Relaxed);
                    }
                    let after = retry_after(&reply.headers);
                    Failure::Status(reply.status, ServiceError::from_body(&reply.body), after)
                }
                Err((detail, reached)) => {
                    if reached && call.once_sent {
                        self.set_failing(Some(detail.clone()));
                        return Err(ConnectorError::Unavailable {
                            system: self.system,
                            method: call.method.to_string(),
                            url: call.url.clone(),
                            attempts,
                            elapsed: started.elapsed(),
                            status: None,
                            last: format!(
                                "{detail} (the answer was lost after the request was sent; it is not sent again blindly: what landed is read back first)"
                            ),
                            retry_after: None,
                        });
                    }
                    Failure::Transport(detail)
                }
            };
            let (status, last, asked) = match failure {
                Failure::Status(s, e, after) => (Some(s), format!("status {s}: {e}"), after),
                Failure::Transport(detail) => (None, detail, None),
            };
            self.set_failing(Some(last.clone()));
            let backoff = delays.next().unwrap_or(retry.max_delay);
            let wait = asked.unwrap_or(backoff);
            let elapsed = started.elapsed();
            if attempts >= retry.max_attempts || elapsed.saturating_add(wait) > retry.budget {
                return Err(ConnectorError::Unavailable {
                    system: self.system,
                    method: call.method.to_string(),
                    url: call.url.clone(),
                    attempts,
                    elapsed,
                    status,
                    last,
                    retry_after: asked,
                });
            }
            tracing::debug!(system = %self.system, url = %call.url, attempts, ?wait, %last, "Retrying a request.");
            tokio::time::sleep(wait).await;
        }
    }

    /// One attempt: `Ok(Ok(reply))` for any answer, `Ok(Err(detail))` for
    /// a transport failure worth retrying, `Err` for a token or TLS failure.
    /// One attempt: the reply, or why none came and whether the request
    /// may have reached the service.
    async fn attempt(&self, call: &Call) -> Result<Result<Reply, (String, bool)>, ConnectorError> {
        let token = self.tokens.token().await?;
        let permit = self.limiter.acquire().await;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut request = self
            .http
            .request(call.method.clone(), &call.url)
            .bearer_auth(&token)
            .timeout(self.options.request_timeout)
            .header("Accept", "application/json")
            .header("OData-Version", "4.0")
            .header("OData-MaxVersion", "4.0");
        for (name, value) in &call.headers {
            request = request.header(*name, value);
        }
        if let Some((content_type, body)) = &call.body {
            request = request
                .header("Content-Type", content_type)
                .body(body.clone());
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                match tls_failure(&e) {
                    Some(detail) => {
                        return Err(ConnectorError::Tls {
                            system: self.system,
                            url: call.url.clone(),
                            detail,
                        });
                    }
                    // Not connected: nothing reached the service.
                    None if e.is_connect() => return Ok(Err((transport_detail(&e), false))),
                    None => return Ok(Err((transport_detail(&e), true))),
                }
            }
        };
        let status = response.status().as_u16();
        if status >= 500 {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let headers = response.headers().clone();
        if status == 429 {
            permit.throttled(retry_after(&headers));
        } else {
            permit.succeeded();
        }
        let body = match response.bytes().await {
            Ok(b) => b,
            // The service answered: the request reached it. (A 5xx is
            // counted as an error already.)
            Err(e) => {
                if status < 500 {
                    self.errors.fetch_add(1, Ordering::Relaxed);
                }
                return Ok(Err((transport_detail(&e), true)));
            }
        };
        if status == 401 {
            self.tokens.invalidate(&token).await;
        }
        Ok(Ok(Reply {
            status,
            headers,
            body,
        }))
    }

    /// Sends `call` and turns a non-2xx answer into [`ConnectorError::Rejected`].
    pub async fn send_ok(&self, call: &Call) -> Result<Reply, ConnectorError> {
        let reply = self.send(call).await?;
        if (200..300).contains(&reply.status) {
            Ok(reply)
        } else {
            Err(self.rejected(call, &reply))
        }
    }

    /// A 401 to a request sent again with a freshly fetched token.
    fn unauthorized(&self, call: &Call, reply: &Reply) -> ConnectorError {
        ConnectorError::Unauthorized {
            system: self.system,
            method: call.method.to_string(),
            url: call.url.clone(),
            service: Box::new(ServiceError::from_body(&reply.body)),
        }
    }

    pub fn rejected(&self, call: &Call, reply: &Reply) -> ConnectorError {
        ConnectorError::Rejected {
            system: self.system,
            method: call.method.to_string(),
            url: call.url.clone(),
            table: None,
            key: None,
            status: reply.status,
            service: Box::new(ServiceError::from_body(&reply.body)),
        }
    }

    /// Sends `call` and accepts its reply (see [`Transport::accept`]).
    pub async fn send_to(
        &self,
        call: &Call,
        table: &str,
        key: Option<&Key>,
    ) -> Result<Reply, ConnectorError> {
        let reply = self.send(call).await?;
        self.accept(call, reply, table, key)
    }

    /// A 2xx reply as it is; any other as a `Rejected` error naming the
    /// table and key the call was about.
    pub fn accept(
        &self,
        call: &Call,
        reply: Reply,
        table: &str,
        key: Option<&Key>,
    ) -> Result<Reply, ConnectorError> {
        if (200..300).contains(&reply.status) {
            Ok(reply)
        } else {
            Err(self
                .rejected(call, &reply)
                .with_target(table, key.map(Key::to_string)))
        }
    }

    /// Parses a JSON object body.
    pub fn json(
        &self,
        call: &Call,
        reply: &Reply,
    ) -> Result<serde_json::Map<String, serde_json::Value>, ConnectorError> {
        serde_json::from_slice(&reply.body).map_err(|e| ConnectorError::Protocol {
            system: self.system,
            url: call.url.clone(),
            detail: format!("the body is not a JSON object: {e}"),
        })
    }
}

/// `Retry-After` in seconds (the form both services use) or as an HTTP
/// date, at most [`MAX_RETRY_AFTER`]; a date past is no wait.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let date = httpdate::parse_http_date(value).ok()?;
            date.duration_since(SystemTime::now()).unwrap_or_default()
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        for (value, wait) in [
            ("7", Some(Duration::from_secs(7))),
            (" 0 ", Some(Duration::ZERO)),
            ("18446744073709551615", Some(MAX_RETRY_AFTER)),
            ("Thu, 01 Jan 1970 00:00:00 GMT", Some(Duration::ZERO)),
            ("Fri, 31 Dec 9999 23:59:59 GMT", Some(MAX_RETRY_AFTER)),
            ("-1", None),
            ("soon", None),
        ] {
            headers.insert(RETRY_AFTER, value.parse().expect("header"));
            assert_eq!(retry_after(&headers), wait, "{value}");
        }
    }
}
