//! OAuth2 client credentials, as Microsoft Entra ID issues them: a token
//! endpoint for configured clients, and bearer token checks.
//!
//! The token endpoint answers the client credentials flow
//! (<https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow>)
//! with a shared secret or with a certificate (`client_assertion`, checked
//! in `assertion` against the certificates registered for the client);
//! errors carry the documented body (`error`, `error_description` with the
//! AADSTS code, `error_codes`, `timestamp`, `trace_id`, `correlation_id`).

mod assertion;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::http::ApiError;
use assertion::{JWT_BEARER, RegisteredCertificate};

/// How long an issued token is valid.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(3599);

/// A client allowed to get tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCredentials {
    /// Application (client) id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
    /// PEM certificates registered for the client (an app registration's
    /// "Certificates"): a client assertion signed with one's key is
    /// accepted in place of the secret.
    #[serde(default)]
    pub certificates: Vec<String>,
}

impl Default for ClientCredentials {
    /// The demo client: `dualwrite` / `dualwrite-secret`.
    fn default() -> Self {
        Self {
            client_id: "dualwrite".into(),
            client_secret: "dualwrite-secret".into(),
            certificates: Vec::new(),
        }
    }
}

/// The token request form.
#[derive(Debug, Deserialize)]
pub struct TokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
}

/// Issued tokens and the clients allowed.
#[derive(Debug)]
pub struct Auth {
    clients: Vec<(ClientCredentials, Vec<RegisteredCertificate>)>,
    /// Token → (client id, expiry).
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

/// The Entra ID error body of a token request refused with AADSTS `code`.
fn token_error(
    status: StatusCode,
    error: &str,
    code: u32,
    description: &str,
) -> (StatusCode, Value) {
    let trace = uuid::Uuid::new_v4().to_string();
    let correlation = uuid::Uuid::new_v4().to_string();
    let timestamp = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
    (
        status,
        json!({
            "error": error,
            "error_description": format!(
                "AADSTS{code}: {description}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {timestamp}"
            ),
            "error_codes": [code],
            "timestamp": timestamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

impl Auth {
    /// Accepts these clients; the error names a client whose certificate
    /// is not a PEM RSA certificate.
    pub fn new(clients: Vec<ClientCredentials>) -> Result<Self, String> {
        let clients = clients
            .into_iter()
            .map(|client| {
                let certificates = client
                    .certificates
                    .iter()
                    .enumerate()
                    .map(|(index, pem)| {
                        RegisteredCertificate::from_pem(pem).map_err(|why| {
                            format!(
                                "certificate {} of client `{}`: {why}",
                                index + 1,
                                client.client_id
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((client, certificates))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self {
            clients,
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// Answers a token request made to `token_url` (the audience a client
    /// assertion must name): the token response, or the Entra ID error.
    pub fn issue(&self, form: &TokenRequest, token_url: &str) -> (StatusCode, Value) {
        if form.grant_type.as_deref() != Some("client_credentials") {
            return token_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                "The app requested an unsupported grant type: use grant_type=client_credentials.",
            );
        }
        let Some((client, certificates)) = self
            .clients
            .iter()
            .find(|(c, _)| Some(c.client_id.as_str()) == form.client_id.as_deref())
        else {
            return token_error(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                700016,
                "Application with the given client_id was not found.",
            );
        };
        if let Some(assertion) = &form.client_assertion {
            if form.client_assertion_type.as_deref() != Some(JWT_BEARER) {
                return token_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    90023,
                    &format!("InvalidRequest: client_assertion_type must be {JWT_BEARER}."),
                );
            }
            if let Err(refusal) =
                assertion::verify(assertion, &client.client_id, token_url, certificates)
            {
                return token_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    refusal.code,
                    &refusal.description,
                );
            }
        } else {
            let Some(secret) = form.client_secret.as_deref() else {
                return token_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                );
            };
            if client.client_secret.is_empty() || client.client_secret != secret {
                return token_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided.",
                );
            }
        }
        let token = format!("emu.{}", uuid::Uuid::new_v4().simple());
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        tokens.retain(|_, (_, expiry)| *expiry > now);
        tokens.insert(
            token.clone(),
            (client.client_id.clone(), now + TOKEN_LIFETIME),
        );
        (
            StatusCode::OK,
            json!({
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME.as_secs(),
                "ext_expires_in": TOKEN_LIFETIME.as_secs(),
                "access_token": token,
            }),
        )
    }

    /// Checks the `Authorization: Bearer` header of a service request;
    /// returns the client the token was issued to.
    pub fn check(&self, headers: &HeaderMap, token_url: &str) -> Result<String, ApiError> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let client = presented.and_then(|t| {
            let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
            tokens
                .get(t.trim())
                .filter(|(_, expiry)| *expiry > Instant::now())
                .map(|(client, _)| client.clone())
        });
        if let Some(client) = client {
            return Ok(client);
        }
        let message = if presented.is_some() {
            "The bearer token is invalid or expired: request a new one from the token endpoint."
        } else {
            "No bearer token was sent: add Authorization: Bearer <token> from the token endpoint."
        };
        Err(
            ApiError::new(StatusCode::UNAUTHORIZED, "0x80072560", message).with_header(
                header::WWW_AUTHENTICATE,
                format!("Bearer authorization_uri={token_url}"),
            ),
        )
    }
}
