//! OAuth2 client credentials, as Microsoft Entra ID issues them: a token
//! endpoint for configured clients, and bearer token checks.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::http::ApiError;

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
}

impl Default for ClientCredentials {
    /// The demo client: `dualwrite` / `dualwrite-secret`.
    fn default() -> Self {
        Self {
            client_id: "dualwrite".into(),
            client_secret: "dualwrite-secret".into(),
        }
    }
}

/// The token request form.
#[derive(Debug, Deserialize)]
pub struct TokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// Issued tokens and the clients allowed.
#[derive(Debug)]
pub struct Auth {
    clients: Vec<ClientCredentials>,
    /// Token → (client id, expiry).
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

fn token_error(status: StatusCode, error: &str, description: &str) -> (StatusCode, Value) {
    (
        status,
        json!({ "error": error, "error_description": description }),
    )
}

impl Auth {
    /// Accepts these clients.
    pub fn new(clients: Vec<ClientCredentials>) -> Self {
        Self {
            clients,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Answers a token request: the token response, or the Entra ID error.
    pub fn issue(&self, form: &TokenRequest) -> (StatusCode, Value) {
        if form.grant_type.as_deref() != Some("client_credentials") {
            return token_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "AADSTS70003: The app requested an unsupported grant type: use grant_type=client_credentials.",
            );
        }
        let Some(client) = self
            .clients
            .iter()
            .find(|c| Some(c.client_id.as_str()) == form.client_id.as_deref())
        else {
            return token_error(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                "AADSTS700016: Application with the given client_id was not found.",
            );
        };
        if Some(client.client_secret.as_str()) != form.client_secret.as_deref() {
            return token_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "AADSTS7000215: Invalid client secret provided.",
            );
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
