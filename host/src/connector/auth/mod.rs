//! The Microsoft identity platform's client credentials grant: how a
//! connector proves who it is and gets its bearer token.
//!
//! - [`ClientAuth`]: the client's credentials, either [`Credentials`] (a
//!   client secret, never printed) or [`CertificateCredentials`] (a
//!   [`ClientCertificate`], whose key signs a client assertion: many
//!   tenants allow no secrets). Both request a token for `scope`, the
//!   service URL with `/.default`.
//! - [`tenant_token_url`]: a tenant's v2.0 token endpoint,
//!   `{authority host}/{tenant}/oauth2/v2.0/token`, at
//!   [`AUTHORITY_HOST`] or a national cloud's host.
//! - `cache`: `TokenCache`, which fetches the token (no redirect followed,
//!   connect and total timeouts), keeps it and refreshes it before it
//!   expires or after a 401.
//! - `certificate`: [`ClientCertificate`] and [`CertificateError`].
//!
//! The pages followed: the client credentials flow
//! (<https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow>:
//! the token request with a shared secret and with a certificate, the
//! success and error responses), certificate credentials
//! (<https://learn.microsoft.com/entra/identity-platform/certificate-credentials>)
//! and national clouds
//! (<https://learn.microsoft.com/entra/identity-platform/authentication-national-cloud>:
//! the authority hosts).
//!
//! Invariant: a token's lifetime is clamped to a day and the expiry checks
//! never add to an `Instant` what the endpoint sent, so no `expires_in` can
//! overflow them. A secret, a private key or a token is never logged or
//! printed, and never sent to a URL the token endpoint redirects to.

mod cache;
mod certificate;

pub use cache::{TOKEN_CONNECT_TIMEOUT, TOKEN_TIMEOUT};
pub(crate) use cache::{TokenCache, transport_detail};
pub use certificate::{ASSERTION_LIFETIME, CertificateError, ClientCertificate};

/// The Microsoft Entra authority host of the global cloud.
pub const AUTHORITY_HOST: &str = "https://login.microsoftonline.com";

/// The v2.0 token endpoint of `tenant` (a GUID or a domain name) at
/// `authority_host`: `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`.
pub fn tenant_token_url(authority_host: &str, tenant: &str) -> String {
    format!(
        "{}/{tenant}/oauth2/v2.0/token",
        authority_host.trim_end_matches('/')
    )
}

/// The client credentials grant with a client secret.
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

/// The client credentials grant with a certificate: a client assertion
/// signed with its private key (`client_assertion_type`
/// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`).
#[derive(Debug, Clone)]
pub struct CertificateCredentials {
    /// The token endpoint, also the assertion's `aud`.
    pub token_url: String,
    /// Application (client) id, the assertion's `iss` and `sub`.
    pub client_id: String,
    /// The certificate registered for the application, with its key.
    pub certificate: ClientCertificate,
    /// The scope, usually `{service url}/.default`.
    pub scope: String,
}

/// How a connector authenticates: a secret or a certificate.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// A client secret.
    Secret(Credentials),
    /// A certificate.
    Certificate(CertificateCredentials),
}

impl ClientAuth {
    /// The token endpoint.
    pub fn token_url(&self) -> &str {
        match self {
            Self::Secret(c) => &c.token_url,
            Self::Certificate(c) => &c.token_url,
        }
    }

    /// The application (client) id.
    pub fn client_id(&self) -> &str {
        match self {
            Self::Secret(c) => &c.client_id,
            Self::Certificate(c) => &c.client_id,
        }
    }

    /// The scope asked for.
    pub fn scope(&self) -> &str {
        match self {
            Self::Secret(c) => &c.scope,
            Self::Certificate(c) => &c.scope,
        }
    }
}

impl From<Credentials> for ClientAuth {
    fn from(credentials: Credentials) -> Self {
        Self::Secret(credentials)
    }
}

impl From<CertificateCredentials> for ClientAuth {
    fn from(credentials: CertificateCredentials) -> Self {
        Self::Certificate(credentials)
    }
}
