//! [`ClientCertificate`]: a certificate and its RSA private key, read from
//! PEM and checked once, which signs the client assertions of the
//! certificate credential.
//!
//! The assertion follows "Microsoft identity platform application
//! authentication certificate credentials"
//! (<https://learn.microsoft.com/entra/identity-platform/certificate-credentials>):
//! a JWT signed with the certificate's private key, header `alg` `PS256`
//! (PSS padding), `typ` `JWT` and `x5t#S256` (the base64url SHA-256
//! thumbprint of the certificate's DER); earlier versions of that page ask
//! for `RS256` with `x5t` (the base64url SHA-1 thumbprint), which is sent
//! too (RFC 7515 4.1.7 and 4.1.8), so either lookup finds the certificate.
//! Claims: `aud` the token endpoint, `iss` and `sub` the client id, `jti` a
//! GUID, `nbf` and `iat` now, `exp` [`ASSERTION_LIFETIME`] later (the page:
//! "5-10 minutes after `nbf` at most").
//!
//! Invariant: a `ClientCertificate` exists only for a key that signs and
//! whose signature the certificate's public key verifies; the key never
//! shows in `Debug`.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::Serialize;
use sha1::{Digest, Sha1};
use sha2::Sha256;
use x509_parser::public_key::PublicKey;

/// How long a client assertion is valid after its `nbf`.
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// PEM labels of the unencrypted private keys the host reads: PKCS#8 and
/// PKCS#1.
const KEY_LABELS: [&str; 2] = ["PRIVATE KEY", "RSA PRIVATE KEY"];

/// A certificate credential: the key that signs client assertions and the
/// certificate's thumbprints that name it.
#[derive(Clone)]
pub struct ClientCertificate {
    key: EncodingKey,
    x5t: String,
    x5t_s256: String,
    subject: String,
    not_after: i64,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("subject", &self.subject)
            .field("x5t#S256", &self.x5t_s256)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Why a certificate or its key cannot be used; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// A file cannot be read.
    #[error("{file} cannot be read: {source}")]
    Read {
        /// The file.
        file: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The certificate file holds no certificate.
    #[error("{file} holds no PEM `-----BEGIN CERTIFICATE-----` block")]
    NoCertificate {
        /// The file.
        file: String,
    },
    /// The certificate does not parse.
    #[error("{file}: the certificate is not valid X.509: {detail}")]
    Certificate {
        /// The file.
        file: String,
        /// What the parser said.
        detail: String,
    },
    /// The certificate's key is not RSA.
    #[error("{file}: the certificate's public key is {algorithm}, not RSA")]
    NotRsa {
        /// The file.
        file: String,
        /// What it is.
        algorithm: String,
    },
    /// The certificate is expired or not valid yet.
    #[error(
        "{file}: the certificate (subject {subject}) is valid from {not_before} to {not_after}, not now"
    )]
    OutsideValidity {
        /// The file.
        file: String,
        /// Its subject.
        subject: String,
        /// Start of validity.
        not_before: String,
        /// End of validity.
        not_after: String,
    },
    /// The key file holds no private key.
    #[error(
        "{file} holds no PEM private key (`-----BEGIN PRIVATE KEY-----` or `-----BEGIN RSA PRIVATE KEY-----`)"
    )]
    NoKey {
        /// The file.
        file: String,
    },
    /// The private key is encrypted with a passphrase.
    #[error("{file}: the private key is encrypted with a passphrase, which the host cannot read")]
    EncryptedKey {
        /// The file.
        file: String,
    },
    /// The private key is not an RSA key that signs.
    #[error("{file}: the private key cannot sign: {detail}")]
    Key {
        /// The file.
        file: String,
        /// Why.
        detail: String,
    },
    /// The key is not the certificate's.
    #[error(
        "the private key in {key_file} does not belong to the certificate in {certificate_file} (subject {subject}): a signature made with it does not verify with the certificate's public key"
    )]
    Mismatch {
        /// The certificate's file.
        certificate_file: String,
        /// The key's file.
        key_file: String,
        /// The certificate's subject.
        subject: String,
    },
}

impl CertificateError {
    /// True when the private key is at fault (missing, unreadable as a
    /// key, or not the certificate's), not the certificate.
    pub fn is_key(&self) -> bool {
        matches!(
            self,
            Self::NoKey { .. }
                | Self::EncryptedKey { .. }
                | Self::Key { .. }
                | Self::Mismatch { .. }
        )
    }

    /// The file the error is about.
    pub fn file(&self) -> &str {
        match self {
            Self::Read { file, .. }
            | Self::NoCertificate { file }
            | Self::Certificate { file, .. }
            | Self::NotRsa { file, .. }
            | Self::OutsideValidity { file, .. }
            | Self::NoKey { file }
            | Self::EncryptedKey { file }
            | Self::Key { file, .. } => file,
            Self::Mismatch { key_file, .. } => key_file,
        }
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    jti: String,
    nbf: u64,
    iat: u64,
    exp: u64,
}

impl ClientCertificate {
    /// Reads the certificate from `certificate_file` and the private key
    /// from `private_key_file`, or from the certificate's file when that
    /// is `None` (one PEM holding both). The first certificate of the file
    /// is the client's (a chain may follow it).
    pub fn read(
        certificate_file: &Path,
        private_key_file: Option<&Path>,
    ) -> Result<Self, CertificateError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| CertificateError::Read {
                file: path.display().to_string(),
                source,
            })
        };
        let certificate = read(certificate_file)?;
        let key_path = private_key_file.unwrap_or(certificate_file);
        let key = match private_key_file {
            Some(path) => read(path)?,
            None => certificate.clone(),
        };
        Self::parse(
            &certificate_file.display().to_string(),
            &certificate,
            &key_path.display().to_string(),
            &key,
        )
    }

    /// Parses a certificate and a private key from PEM text (they may be
    /// the same text); `certificate_name` and `key_name` name them in
    /// errors.
    pub fn parse(
        certificate_name: &str,
        certificate_pem: &[u8],
        key_name: &str,
        key_pem: &[u8],
    ) -> Result<Self, CertificateError> {
        let der = first_block(certificate_pem, |tag| tag == "CERTIFICATE")
            .map(|block| block.into_contents())
            .ok_or_else(|| CertificateError::NoCertificate {
                file: certificate_name.to_owned(),
            })?;
        let (_, certificate) = x509_parser::parse_x509_certificate(&der).map_err(|error| {
            CertificateError::Certificate {
                file: certificate_name.to_owned(),
                detail: error.to_string(),
            }
        })?;
        let subject = certificate.subject().to_string();
        let spki = certificate.public_key();
        match spki.parsed() {
            Ok(PublicKey::RSA(_)) => {}
            Ok(other) => {
                return Err(CertificateError::NotRsa {
                    file: certificate_name.to_owned(),
                    algorithm: key_kind(&other).to_owned(),
                });
            }
            Err(error) => {
                return Err(CertificateError::Certificate {
                    file: certificate_name.to_owned(),
                    detail: format!("its public key does not parse: {error}"),
                });
            }
        }
        let validity = certificate.validity();
        if !validity.is_valid() {
            return Err(CertificateError::OutsideValidity {
                file: certificate_name.to_owned(),
                subject,
                not_before: validity.not_before.to_string(),
                not_after: validity.not_after.to_string(),
            });
        }
        let key = private_key(key_name, key_pem)?;
        // A key that signs what the certificate's public key (the PKCS#1
        // `RSAPublicKey` in its `subjectPublicKey`) verifies is its key.
        let public = DecodingKey::from_rsa_der(&spki.subject_public_key.data);
        let probe = b"dualwrite client certificate check";
        let signature =
            jsonwebtoken::crypto::sign(probe, &key, Algorithm::PS256).map_err(|error| {
                CertificateError::Key {
                    file: key_name.to_owned(),
                    detail: format!("{error} (an RSA key of 2048 to 8192 bits is needed)"),
                }
            })?;
        let verified = jsonwebtoken::crypto::verify(&signature, probe, &public, Algorithm::PS256)
            .unwrap_or(false);
        if !verified {
            return Err(CertificateError::Mismatch {
                certificate_file: certificate_name.to_owned(),
                key_file: key_name.to_owned(),
                subject,
            });
        }
        Ok(Self {
            key,
            x5t: URL_SAFE_NO_PAD.encode(Sha1::digest(&der)),
            x5t_s256: URL_SAFE_NO_PAD.encode(Sha256::digest(&der)),
            subject,
            not_after: validity.not_after.timestamp(),
        })
    }

    /// `x5t`: the base64url SHA-1 thumbprint of the certificate's DER.
    pub fn x5t(&self) -> &str {
        &self.x5t
    }

    /// `x5t#S256`: the base64url SHA-256 thumbprint of the certificate's DER.
    pub fn x5t_s256(&self) -> &str {
        &self.x5t_s256
    }

    /// The certificate's subject, e.g. `CN=dualwrite`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// When the certificate expires, in seconds since 1970.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// A client assertion for `client_id` at the token endpoint `audience`,
    /// issued at `now`.
    pub fn assertion(
        &self,
        client_id: &str,
        audience: &str,
        now: SystemTime,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let claims = Claims {
            aud: audience,
            iss: client_id,
            sub: client_id,
            jti: uuid::Uuid::new_v4().to_string(),
            nbf: now,
            iat: now,
            exp: now.saturating_add(ASSERTION_LIFETIME.as_secs()),
        };
        let mut header = Header::new(Algorithm::PS256);
        header.x5t = Some(self.x5t.clone());
        header.x5t_s256 = Some(self.x5t_s256.clone());
        jsonwebtoken::encode(&header, &claims, &self.key)
    }
}

/// The first PEM block whose tag `wanted` accepts.
fn first_block(text: &[u8], wanted: impl Fn(&str) -> bool) -> Option<pem::Pem> {
    pem::parse_many(text)
        .ok()?
        .into_iter()
        .find(|block| wanted(block.tag()))
}

fn private_key(name: &str, text: &[u8]) -> Result<EncodingKey, CertificateError> {
    let Some(block) = first_block(text, |tag| {
        KEY_LABELS.contains(&tag) || tag == "ENCRYPTED PRIVATE KEY"
    }) else {
        return Err(CertificateError::NoKey {
            file: name.to_owned(),
        });
    };
    if block.tag() == "ENCRYPTED PRIVATE KEY" {
        return Err(CertificateError::EncryptedKey {
            file: name.to_owned(),
        });
    }
    EncodingKey::from_rsa_pem(pem::encode(&block).as_bytes()).map_err(|error| {
        CertificateError::Key {
            file: name.to_owned(),
            detail: format!("it is not an RSA private key: {error}"),
        }
    })
}

fn key_kind(key: &PublicKey<'_>) -> &'static str {
    match key {
        PublicKey::RSA(_) => "RSA",
        PublicKey::EC(_) => "an elliptic curve key",
        PublicKey::DSA(_) => "DSA",
        PublicKey::GostR3410(_) | PublicKey::GostR3410_2012(_) => "GOST",
        PublicKey::Unknown(_) => "of an unknown kind",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("a key");
        let certificate = rcgen::CertificateParams::new(Vec::new())
            .expect("params")
            .self_signed(&key)
            .expect("a certificate");
        (certificate, key)
    }

    #[test]
    fn the_assertion_has_the_documented_header_and_claims_and_verifies_with_the_certificate() {
        let (certificate, key) = pair();
        let pem = certificate.pem();
        let client = ClientCertificate::parse(
            "cert.pem",
            pem.as_bytes(),
            "key.pem",
            key.serialize_pem().as_bytes(),
        )
        .expect("a certificate credential");
        let der: &[u8] = certificate.der();
        assert_eq!(client.x5t(), URL_SAFE_NO_PAD.encode(Sha1::digest(der)));
        assert_eq!(
            client.x5t_s256(),
            URL_SAFE_NO_PAD.encode(Sha256::digest(der))
        );

        let audience =
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token";
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let assertion = client
            .assertion("app-id", audience, now)
            .expect("an assertion");
        let header = jsonwebtoken::decode_header(&assertion).expect("a header");
        assert_eq!(header.alg, Algorithm::PS256);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(header.x5t.as_deref(), Some(client.x5t()));
        assert_eq!(header.x5t_s256.as_deref(), Some(client.x5t_s256()));

        let public = DecodingKey::from_rsa_pem(pem.as_bytes()).expect("the certificate's key");
        let mut validation = jsonwebtoken::Validation::new(Algorithm::PS256);
        validation.set_audience(&[audience]);
        validation.validate_exp = false; // issued in 2023 on purpose
        let claims = jsonwebtoken::decode::<serde_json::Value>(&assertion, &public, &validation)
            .expect("signed with the certificate's key")
            .claims;
        assert_eq!(claims["aud"], audience);
        assert_eq!(claims["iss"], "app-id");
        assert_eq!(claims["sub"], "app-id");
        assert_eq!(claims["nbf"], 1_700_000_000u64);
        assert_eq!(claims["iat"], 1_700_000_000u64);
        assert_eq!(claims["exp"], 1_700_000_300u64);
        let jti = claims["jti"].as_str().expect("a jti");
        assert!(uuid::Uuid::parse_str(jti).is_ok(), "{jti}");
        let again = client
            .assertion("app-id", audience, now)
            .expect("an assertion");
        assert_ne!(assertion, again, "each assertion has its own jti");
        assert!(!format!("{client:?}").contains(&key.serialize_pem()[40..80]));
    }

    #[test]
    fn a_time_before_1970_or_past_u64_does_not_panic() {
        let (certificate, key) = pair();
        let client = ClientCertificate::parse(
            "cert.pem",
            certificate.pem().as_bytes(),
            "key.pem",
            key.serialize_pem().as_bytes(),
        )
        .expect("a certificate credential");
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert!(client.assertion("app", "https://x", before).is_ok());
    }
}
