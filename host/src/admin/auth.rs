//! The bearer check of the admin API: `Authorization: Bearer <token>`,
//! compared with the host's token in constant time (over SHA-256 digests,
//! so neither the length nor a prefix leaks). A request without it, or
//! with another token, is answered 401 with `WWW-Authenticate: Bearer`
//! (RFC 6750) and a JSON error.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::routes::ApiError;

/// The token the API accepts, kept as its digest.
#[derive(Debug, Clone)]
pub struct Token(Arc<[u8; 32]>);

impl Token {
    /// The token `token`.
    pub fn new(token: String) -> Token {
        Token(Arc::new(Sha256::digest(token.as_bytes()).into()))
    }

    fn accepts(&self, given: &str) -> bool {
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        bool::from(given.ct_eq(&*self.0))
    }
}

/// Lets a request through only with the right bearer token.
pub async fn require(State(token): State<Token>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, credentials) = value.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| credentials.trim())
        });
    let refusal = match given {
        Some(given) if token.accepts(given) => return next.run(request).await,
        Some(_) => {
            "the bearer token is not the host's; use the token in DUALWRITE_ADMIN_TOKEN of the host"
        }
        None => {
            "send `Authorization: Bearer <token>` with the token in DUALWRITE_ADMIN_TOKEN of the host"
        }
    };
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", refusal.to_owned()).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"dualwrite\""),
    );
    response
}
