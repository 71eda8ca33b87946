//! [`ConnectorError`]: everything a connector call can fail with, carrying
//! the system, table, key or URL, the HTTP status and the service's OData
//! error, with a message that says what to do.

use std::time::Duration;

/// Which service a connector speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemKind {
    /// The Dataverse Web API.
    Dataverse,
    /// The Finance and Operations OData service.
    Finops,
}

impl std::fmt::Display for SystemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Dataverse => "dataverse",
            Self::Finops => "finops",
        })
    }
}

/// The code and message of an OData error body, when the service sent one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceError {
    /// `error.code`, e.g. Dataverse `0x80040217` or finops `NotFound`.
    pub code: String,
    /// `error.message`, or the body text when it was not an OData error.
    pub message: String,
}

impl ServiceError {
    /// Reads an OData error body; falls back to the (shortened) text.
    pub fn from_body(body: &[u8]) -> Self {
        if let Ok(parsed) = serde_json::from_slice::<crate::odata::ODataError>(body) {
            return Self {
                code: parsed.error.code,
                message: parsed.error.message,
            };
        }
        let text = String::from_utf8_lossy(body);
        let message: String = text.trim().chars().take(500).collect();
        Self {
            code: String::new(),
            message,
        }
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code.is_empty(), self.message.is_empty()) {
            (true, true) => f.write_str("no error body"),
            (true, false) => write!(f, "{}", self.message),
            (false, _) => write!(f, "{}: {}", self.code, self.message),
        }
    }
}

/// A connector failure.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The token endpoint refused the client or could not be reached.
    #[error(
        "{system}: could not get an OAuth2 token from {token_url} (status {status:?}): {detail}; check the client id, the secret or certificate, and the token URL"
    )]
    Auth {
        /// The system.
        system: SystemKind,
        /// The token endpoint.
        token_url: String,
        /// The HTTP status, if the endpoint answered.
        status: Option<u16>,
        /// What the endpoint or the transport said.
        detail: String,
    },
    /// The service refused the bearer token (401) twice, the second time a
    /// token fetched after the first refusal.
    #[error(
        "{system}: {method} {url} was refused with 401 twice, the second time with a freshly fetched token ({service}); the service does not accept this client's tokens: check that the application is allowed into this environment (a Dataverse application user, a finops Microsoft Entra application) and that the token is asked for the service's own URL"
    )]
    Unauthorized {
        /// The system.
        system: SystemKind,
        /// The HTTP method.
        method: String,
        /// The request URL.
        url: String,
        /// The service's error (boxed to keep the error small).
        service: Box<ServiceError>,
    },
    /// The service answered with an error status that retrying does not fix.
    #[error(
        "{system}: {method} {url} failed with status {status} ({service}){}; fix the request or the row, then resubmit it",
        key_note(key)
    )]
    Rejected {
        /// The system.
        system: SystemKind,
        /// The HTTP method.
        method: String,
        /// The request URL.
        url: String,
        /// The table or entity, when the call was about one.
        table: Option<String>,
        /// The key of the row, when the call was about one.
        key: Option<String>,
        /// The HTTP status.
        status: u16,
        /// The OData error (boxed to keep the error small).
        service: Box<ServiceError>,
    },
    /// Throttling, 5xx answers or connection failures outlasted the retry
    /// budget.
    #[error(
        "{system}: {method} {url} still failing after {attempts} attempts over {elapsed:?} (last: {last}); the service is down or throttling: wait and retry the batch, or raise the retry budget"
    )]
    Unavailable {
        /// The system.
        system: SystemKind,
        /// The HTTP method.
        method: String,
        /// The request URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// Time spent, waits included.
        elapsed: Duration,
        /// The last status, if the service answered.
        status: Option<u16>,
        /// The last failure.
        last: String,
        /// The `Retry-After` the service last asked for.
        retry_after: Option<Duration>,
    },
    /// The TLS connection failed: the service's certificate did not verify
    /// against the system roots and the system's `ca_file`, or the
    /// handshake broke off. Retrying does not fix it.
    #[error(
        "{system}: the TLS connection to {url} failed: {detail}; if the service's certificate is signed by a private CA, name the CA's PEM file as `ca_file` of the system, otherwise fix the service's certificate"
    )]
    Tls {
        /// The system.
        system: SystemKind,
        /// The URL asked for.
        url: String,
        /// Why, e.g. `the certificate did not verify: UnknownIssuer`.
        detail: String,
    },
    /// A response did not have the shape the protocol prescribes.
    #[error(
        "{system}: unexpected response to {url}: {detail}; the service does not speak the expected protocol version"
    )]
    Protocol {
        /// The system.
        system: SystemKind,
        /// The request URL.
        url: String,
        /// What was wrong.
        detail: String,
    },
    /// The call was built wrong before anything was sent.
    #[error("{system}: {detail}")]
    Invalid {
        /// The system.
        system: SystemKind,
        /// What is wrong and what to do.
        detail: String,
    },
}

fn key_note(key: &Option<String>) -> String {
    key.as_deref()
        .map(|k| format!(" for key {k}"))
        .unwrap_or_default()
}

impl ConnectorError {
    /// The HTTP status of the failure, when the service answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Auth { status, .. } | Self::Unavailable { status, .. } => *status,
            Self::Rejected { status, .. } => Some(*status),
            Self::Unauthorized { .. } => Some(401),
            Self::Tls { .. } | Self::Protocol { .. } | Self::Invalid { .. } => None,
        }
    }

    /// True when retrying later may succeed (throttling, outages).
    /// The service refused this one request for what it carried (a 4xx
    /// other than 401, 403, 408 and 429): the row's fault, not the
    /// service's or the credentials'. Its status and the service's error.
    pub fn refusal(&self) -> Option<(u16, &ServiceError)> {
        match self {
            Self::Rejected {
                status, service, ..
            } if (400..500).contains(status) && ![401, 403, 408, 429].contains(status) => {
                Some((*status, service))
            }
            _ => None,
        }
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    pub(crate) fn with_target(mut self, table: &str, key: Option<String>) -> Self {
        if let Self::Rejected {
            table: t, key: k, ..
        } = &mut self
        {
            *t = (!table.is_empty()).then(|| table.to_string());
            *k = key;
        }
        self
    }
}
