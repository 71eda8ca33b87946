//! [`TokenCache`]: the bearer token of one connector, fetched from the
//! token endpoint and refreshed before it expires or after a 401.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;

use super::Credentials;
use crate::connector::error::{ConnectorError, ServiceError, SystemKind};

/// The longest a fetched token is kept: a day, the longest lifetime
/// Microsoft Entra ID issues. A longer `expires_in` is read as a day.
pub(crate) const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// A cached bearer token, shared by every request of one connector.
pub(crate) struct TokenCache {
    system: SystemKind,
    credentials: Credentials,
    /// Refresh this long before the token expires.
    refresh_margin: Duration,
    current: Mutex<Option<(String, Instant)>>,
    fetched: AtomicU64,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("credentials", &self.credentials)
            .field("refresh_margin", &self.refresh_margin)
            .field("token", &"<redacted>")
            .finish()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

impl TokenCache {
    pub(crate) fn new(
        system: SystemKind,
        credentials: Credentials,
        refresh_margin: Duration,
    ) -> Self {
        Self {
            system,
            credentials,
            refresh_margin,
            current: Mutex::new(None),
            fetched: AtomicU64::new(0),
        }
    }

    /// Tokens fetched from the endpoint so far.
    pub(crate) fn fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }

    /// A token valid for at least the refresh margin. Concurrent callers
    /// wait for one fetch. Cancelled, it leaves the cache as it was.
    pub(crate) async fn token(&self, http: &reqwest::Client) -> Result<String, ConnectorError> {
        let mut current = self.current.lock().await;
        if let Some((token, expires)) = &*current
            && expires.saturating_duration_since(Instant::now()) > self.refresh_margin
        {
            return Ok(token.clone());
        }
        let (token, lifetime) = self.fetch(http).await?;
        self.fetched.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        // Clamped to a day, so the sum fits; if even that did not, the token
        // counts as expiring now and is fetched again next time.
        let expires = now.checked_add(lifetime).unwrap_or(now);
        *current = Some((token.clone(), expires));
        Ok(token)
    }

    /// Forgets the cached token (after a 401), unless it was already replaced.
    pub(crate) async fn invalidate(&self, token: &str) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|(t, _)| t == token) {
            *current = None;
        }
    }

    async fn fetch(&self, http: &reqwest::Client) -> Result<(String, Duration), ConnectorError> {
        let c = &self.credentials;
        let fail = |status: Option<u16>, detail: String| ConnectorError::Auth {
            system: self.system,
            token_url: c.token_url.clone(),
            status,
            detail,
        };
        let response = http
            .post(&c.token_url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", c.client_id.as_str()),
                ("client_secret", c.client_secret.as_str()),
                ("scope", c.scope.as_str()),
            ])
            .send()
            .await
            .map_err(|e| match crate::connector::tls::tls_failure(&e) {
                Some(detail) => ConnectorError::Tls {
                    system: self.system,
                    url: c.token_url.clone(),
                    detail,
                },
                None => fail(None, transport_detail(&e)),
            })?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| fail(Some(status), transport_detail(&e)))?;
        if status != 200 {
            // Entra ID errors are {"error":"…","error_description":"…"}.
            let detail = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    let error = v.get("error")?.as_str()?.to_string();
                    let description = v
                        .get("error_description")
                        .and_then(|d| d.as_str())
                        .unwrap_or_default();
                    Some(format!("{error}: {description}"))
                })
                .unwrap_or_else(|| ServiceError::from_body(&body).to_string());
            return Err(fail(Some(status), detail));
        }
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| fail(Some(status), format!("token response is not valid: {e}")))?;
        let lifetime = Duration::from_secs(parsed.expires_in).min(MAX_TOKEN_LIFETIME);
        Ok((parsed.access_token, lifetime))
    }
}

/// Describes a transport error without its URL (which the error carries
/// apart) and never with a secret.
pub(crate) fn transport_detail(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_body() || error.is_decode() {
        "the response body broke off"
    } else {
        "the request failed"
    };
    let mut detail = kind.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    detail
}
