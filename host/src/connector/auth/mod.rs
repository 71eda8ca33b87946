//! OAuth2 client credentials: [`Credentials`] (the secret, never printed)
//! and `TokenCache`, which fetches a bearer token and refreshes it before
//! it expires (`cache`).
//!
//! Invariant: a token's lifetime is clamped to `MAX_TOKEN_LIFETIME` and
//! the expiry checks never add to an `Instant` what the endpoint sent, so
//! no `expires_in` can overflow them.

mod cache;

pub(crate) use cache::{TokenCache, transport_detail};

/// How to get a token: the client credentials grant of Microsoft Entra ID.
#[derive(Clone)]
pub struct Credentials {
    /// `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`.
    pub token_url: String,
    /// Application (client) id.
    pub client_id: String,
    /// The client secret; never logged, never printed by `Debug`.
    pub client_secret: String,
    /// The scope, usually `{service url}/.default`.
    pub scope: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("scope", &self.scope)
            .finish()
    }
}
