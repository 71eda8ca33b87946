//! TLS of a connector: [`TrustedCa`], a private CA a system's certificate
//! may be signed by (`ca_file`), trusted besides the system's roots; the
//! HTTP client built with it; and telling a TLS failure (a certificate that
//! does not verify) apart from a network failure worth retrying.
//!
//! Invariant: certificates are always verified; a `ca_file` adds roots, it
//! never turns verification off.

use std::path::Path;

/// The certificates of a `ca_file`, parsed and checked.
#[derive(Debug, Clone)]
pub struct TrustedCa {
    certificates: Vec<reqwest::Certificate>,
}

impl TrustedCa {
    /// Parses a PEM bundle of one or more CA certificates; the error says
    /// what is wrong with it.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let certificates = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|error| format!("it is not a PEM certificate bundle: {error}"))?;
        if certificates.is_empty() {
            return Err("it holds no `-----BEGIN CERTIFICATE-----` block".into());
        }
        let ca = Self { certificates };
        // Building a client parses every certificate's DER.
        ca.client_builder()
            .build()
            .map_err(|error| format!("its certificates are not valid: {}", chain(&error)))?;
        Ok(ca)
    }

    /// Reads and parses a PEM file.
    pub fn read(path: &Path) -> Result<Self, String> {
        let pem = std::fs::read(path).map_err(|error| format!("it cannot be read: {error}"))?;
        Self::from_pem(&pem)
    }

    fn client_builder(&self) -> reqwest::ClientBuilder {
        self.certificates
            .iter()
            .fold(reqwest::Client::builder(), |builder, certificate| {
                builder.add_root_certificate(certificate.clone())
            })
    }
}

/// A builder of HTTP clients that trust the system's roots, plus `ca` if
/// any (the token requests build theirs from it too).
pub(crate) fn client_builder(ca: Option<&TrustedCa>) -> reqwest::ClientBuilder {
    ca.map_or_else(reqwest::Client::builder, TrustedCa::client_builder)
}

/// The HTTP client of one system: the system's roots, plus `ca` if any.
pub(crate) fn client(ca: Option<&TrustedCa>) -> reqwest::Client {
    let builder = client_builder(ca);
    // `TrustedCa::from_pem` built a client from the same certificates, and
    // without any the builder is `Client::new`'s, which panics on the same
    // failure (no TLS roots at all on the machine).
    builder
        .build()
        .expect("an HTTP client with checked TLS roots")
}

/// The TLS failure under a transport error, if that is what it is: a
/// certificate that did not verify, or a handshake the peer broke off.
/// Retrying does not fix either.
pub(crate) fn tls_failure(error: &reqwest::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        // `io::Error::source` skips the error it wraps (which may be another
        // `io::Error`): look inside each layer.
        let mut candidate = current;
        loop {
            if let Some(tls) = candidate.downcast_ref::<rustls::Error>() {
                return Some(match tls {
                    rustls::Error::InvalidCertificate(reason) => {
                        format!("the certificate did not verify: {reason:?}")
                    }
                    other => format!("the TLS handshake failed: {other}"),
                });
            }
            match candidate
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
            {
                Some(inner) => candidate = inner,
                None => break,
            }
        }
        source = current.source();
    }
    None
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
