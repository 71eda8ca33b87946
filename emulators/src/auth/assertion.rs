//! Client assertions, the certificate credential of the client credentials
//! grant: a JWT the client signs with the private key of a certificate
//! registered for it, checked as Microsoft Entra ID documents it.
//!
//! - The format: "Microsoft identity platform application authentication
//!   certificate credentials"
//!   (<https://learn.microsoft.com/entra/identity-platform/certificate-credentials>):
//!   `alg` `PS256` (or `RS256` with `x5t`, as earlier versions of the page
//!   say), the certificate named by `x5t#S256` or `x5t`, claims `aud` (the
//!   token endpoint), `iss` and `sub` (the client id), `jti`, `nbf`, `exp`.
//! - The refusals, `invalid_client` with the AADSTS code: 700027 (the
//!   signature, or a certificate not registered), 700023 (`aud`), 700024
//!   (`nbf`/`exp`), 700021 (`iss`/`sub` not the client id), 50027 (not a
//!   valid JWT); from "Microsoft Entra authentication and authorization
//!   error codes" (<https://learn.microsoft.com/entra/identity-platform/reference-error-codes>)
//!   and the assertion errors listed in
//!   <https://learn.microsoft.com/azure/developer/java/sdk/troubleshooting-authentication-service-principal>.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha1::{Digest, Sha1};
use sha2::Sha256;
use x509_parser::public_key::PublicKey;

/// `client_assertion_type` of a JWT assertion.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Clock skew allowed on `nbf` and `exp`, in seconds.
const LEEWAY_SECONDS: u64 = 60;

/// A certificate registered for a client, as the token endpoint keeps it.
pub struct RegisteredCertificate {
    x5t: String,
    x5t_s256: String,
    key: DecodingKey,
}

impl std::fmt::Debug for RegisteredCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredCertificate")
            .field("x5t#S256", &self.x5t_s256)
            .finish_non_exhaustive()
    }
}

/// Why an assertion is refused: the AADSTS code and its description.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The AADSTS number.
    pub code: u32,
    /// What is wrong.
    pub description: String,
}

impl Refusal {
    fn new(code: u32, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    jti: Option<String>,
}

impl RegisteredCertificate {
    /// Reads a PEM certificate with an RSA public key.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .map_err(|error| format!("it is not a PEM certificate: {error}"))?;
        if block.label != "CERTIFICATE" {
            return Err(format!(
                "it holds a `{}` block, not a `CERTIFICATE`",
                block.label
            ));
        }
        let certificate = block
            .parse_x509()
            .map_err(|error| format!("it is not valid X.509: {error}"))?;
        let spki = certificate.public_key();
        if !matches!(spki.parsed(), Ok(PublicKey::RSA(_))) {
            return Err("its public key is not RSA".into());
        }
        Ok(Self {
            x5t: URL_SAFE_NO_PAD.encode(Sha1::digest(&block.contents)),
            x5t_s256: URL_SAFE_NO_PAD.encode(Sha256::digest(&block.contents)),
            key: DecodingKey::from_rsa_der(&spki.subject_public_key.data),
        })
    }
}

/// Checks `assertion` of `client_id`, posted to `token_url`, against the
/// client's `certificates`.
pub fn verify(
    assertion: &str,
    client_id: &str,
    token_url: &str,
    certificates: &[RegisteredCertificate],
) -> Result<(), Refusal> {
    let malformed = |why: &str| {
        Refusal::new(
            50027,
            format!("Invalid JWT token: the client assertion {why}."),
        )
    };
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|error| malformed(&format!("is not a JWT ({error})")))?;
    if !matches!(header.alg, Algorithm::PS256 | Algorithm::RS256) {
        return Err(malformed(&format!(
            "is signed with {:?}, not PS256 or RS256",
            header.alg
        )));
    }
    let thumbprint = header
        .x5t_s256
        .as_deref()
        .or(header.x5t.as_deref())
        .unwrap_or("(none)");
    let Some(certificate) = certificates.iter().find(|c| {
        header.x5t_s256.as_deref() == Some(c.x5t_s256.as_str())
            || header.x5t.as_deref() == Some(c.x5t.as_str())
    }) else {
        return Err(Refusal::new(
            700027,
            format!(
                "Client assertion failed signature validation. The key was not found: no certificate with thumbprint '{thumbprint}' is registered for application '{client_id}'."
            ),
        ));
    };
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[token_url]);
    validation.set_issuer(&[client_id]);
    validation.sub = Some(client_id.to_owned());
    validation.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
    validation.validate_nbf = true;
    validation.leeway = LEEWAY_SECONDS;
    let claims = jsonwebtoken::decode::<Claims>(assertion, &certificate.key, &validation)
        .map_err(|error| match error.kind() {
            ErrorKind::InvalidSignature => {
                Refusal::new(700027, "Client assertion failed signature validation.")
            }
            ErrorKind::InvalidAudience => Refusal::new(
                700023,
                format!(
                    "Client assertion audience claim does not match Realm issuer: the audience must be '{token_url}'."
                ),
            ),
            ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => {
                Refusal::new(700024, "Client assertion is not within its valid time range.")
            }
            ErrorKind::InvalidIssuer | ErrorKind::InvalidSubject => Refusal::new(
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter.",
            ),
            ErrorKind::MissingRequiredClaim(claim) => {
                malformed(&format!("has no `{claim}` claim"))
            }
            other => malformed(&format!("cannot be read ({other:?})")),
        })?
        .claims;
    if claims.jti.is_none_or(|jti| jti.is_empty()) {
        return Err(malformed("has no `jti` claim"));
    }
    Ok(())
}
