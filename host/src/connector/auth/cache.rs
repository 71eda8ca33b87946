//! `TokenCache`: the bearer token of one connector, fetched from the token
//! endpoint and refreshed before it expires or after a 401.
//!
//! A token request (the client credentials flow,
//! <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow>)
//! goes through its own HTTP client: it follows no redirect (a 3xx is an
//! error naming where it pointed, so the secret or assertion is never
//! posted anywhere else), and has at most [`TOKEN_CONNECT_TIMEOUT`] to
//! connect and [`TOKEN_TIMEOUT`] in all, each cut to the connector's
//! `request_timeout` when that is shorter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::LOCATION;
use serde::Deserialize;
use tokio::sync::Mutex;

use super::ClientAuth;
use crate::connector::ConnectorOptions;
use crate::connector::error::{ConnectorError, ServiceError, SystemKind};
use crate::connector::tls::{client_builder, tls_failure};

/// The longest a fetched token is kept: a day, the longest lifetime
/// Microsoft Entra ID issues. A longer `expires_in` is read as a day.
pub(crate) const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest a token request may take to connect.
pub const TOKEN_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest a token request may take in all, the response included.
pub const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);

/// `client_assertion_type` of a certificate credential.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A cached bearer token, shared by every request of one connector.
pub(crate) struct TokenCache {
    system: SystemKind,
    credentials: ClientAuth,
    /// Refresh this long before the token expires.
    refresh_margin: Duration,
    /// No redirects, connect and total timeouts.
    http: reqwest::Client,
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
    expires_in: Seconds,
}

/// `expires_in`: a number (v2.0 endpoint) or a string of digits (v1.0).
#[derive(Deserialize)]
#[serde(untagged)]
enum Seconds {
    Number(u64),
    Text(String),
}

impl Seconds {
    fn get(&self) -> Option<u64> {
        match self {
            Self::Number(n) => Some(*n),
            // Digits past `u64` are a lifetime past any clamp.
            Self::Text(text) => {
                let digits = text.trim();
                (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| digits.parse().unwrap_or(u64::MAX))
            }
        }
    }
}

impl TokenCache {
    pub(crate) fn new(
        system: SystemKind,
        credentials: ClientAuth,
        options: &ConnectorOptions,
    ) -> Self {
        let http = client_builder(options.ca.as_ref())
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(TOKEN_CONNECT_TIMEOUT.min(options.request_timeout))
            .timeout(TOKEN_TIMEOUT.min(options.request_timeout))
            .build()
            // The same builder as the connector's own client, which was
            // built from the same checked roots (see `tls::client`).
            .expect("an HTTP client with checked TLS roots");
        Self {
            system,
            credentials,
            refresh_margin: options.token_refresh_margin,
            http,
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
    pub(crate) async fn token(&self) -> Result<String, ConnectorError> {
        let mut current = self.current.lock().await;
        if let Some((token, expires)) = &*current
            && expires.saturating_duration_since(Instant::now()) > self.refresh_margin
        {
            return Ok(token.clone());
        }
        let (token, lifetime) = self.fetch().await?;
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

    fn failure(&self, status: Option<u16>, detail: String) -> ConnectorError {
        ConnectorError::Auth {
            system: self.system,
            token_url: self.credentials.token_url().to_owned(),
            status,
            detail,
        }
    }

    /// The form of the token request: the first or the second case of the
    /// client credentials flow (a shared secret, or a certificate's
    /// assertion in place of `client_secret`).
    fn form(&self) -> Result<Vec<(&'static str, String)>, ConnectorError> {
        let c = &self.credentials;
        let mut form = vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", c.client_id().to_owned()),
            ("scope", c.scope().to_owned()),
        ];
        match c {
            ClientAuth::Secret(secret) => {
                form.push(("client_secret", secret.client_secret.clone()));
            }
            ClientAuth::Certificate(certificate) => {
                let assertion = certificate
                    .certificate
                    .assertion(
                        &certificate.client_id,
                        &certificate.token_url,
                        SystemTime::now(),
                    )
                    .map_err(|e| {
                        self.failure(
                            None,
                            format!("the client assertion could not be signed: {e}"),
                        )
                    })?;
                form.push(("client_assertion_type", JWT_BEARER.to_owned()));
                form.push(("client_assertion", assertion));
            }
        }
        Ok(form)
    }

    async fn fetch(&self) -> Result<(String, Duration), ConnectorError> {
        let token_url = self.credentials.token_url();
        let response = self
            .http
            .post(token_url)
            .form(&self.form()?)
            .send()
            .await
            .map_err(|e| match tls_failure(&e) {
                Some(detail) => ConnectorError::Tls {
                    system: self.system,
                    url: token_url.to_owned(),
                    detail,
                },
                None => self.failure(None, transport_detail(&e)),
            })?;
        let status = response.status().as_u16();
        if response.status().is_redirection() {
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("(no Location header)")
                .to_owned();
            return Err(self.failure(
                Some(status),
                format!(
                    "the token endpoint redirected to {location}; a token request follows no redirect: set `token_url` (or `tenant`) to the endpoint itself"
                ),
            ));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| self.failure(Some(status), transport_detail(&e)))?;
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
            return Err(self.failure(Some(status), detail));
        }
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| self.failure(Some(status), format!("token response is not valid: {e}")))?;
        let seconds = parsed.expires_in.get().ok_or_else(|| {
            self.failure(
                Some(status),
                "token response is not valid: `expires_in` is not a number of seconds".into(),
            )
        })?;
        let lifetime = Duration::from_secs(seconds).min(MAX_TOKEN_LIFETIME);
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
