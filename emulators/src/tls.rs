//! HTTPS for an emulator: a certificate authority made at start, a server
//! certificate it signs for `127.0.0.1`, `::1` and `localhost`, and the
//! CA's PEM written to a file a client can trust (`ca_file`).
//!
//! Invariant: the CA's key never leaves memory and is dropped once the
//! server certificate is signed, so the CA file trusts this one emulator
//! run and nothing else.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::EmulatorError;

/// The name of the CA file in its folder.
pub const CA_FILE_NAME: &str = "emulator-ca.pem";

/// A generated CA and the server certificate it signed.
#[derive(Debug)]
pub struct GeneratedTls {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The server certificate, PEM.
    pub server_pem: String,
    /// The server certificate's private key, PEM.
    pub server_key_pem: String,
}

impl GeneratedTls {
    /// A new CA and a server certificate for the loopback names.
    pub fn generate() -> Result<Self, EmulatorError> {
        let failed = |error: rcgen::Error| EmulatorError::Tls {
            detail: format!("could not generate a certificate: {error}"),
        };
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "dualwrite emulator CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().map_err(failed)?;
        let ca_certificate = ca.self_signed(&ca_key).map_err(failed)?;
        let issuer = Issuer::new(ca, ca_key);

        let names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
        let mut server = CertificateParams::new(names).map_err(failed)?;
        server
            .distinguished_name
            .push(DnType::CommonName, "dualwrite emulator");
        server.is_ca = IsCa::ExplicitNoCa;
        server.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate().map_err(failed)?;
        let server_certificate = server.signed_by(&server_key, &issuer).map_err(failed)?;
        Ok(Self {
            ca_pem: ca_certificate.pem(),
            server_pem: server_certificate.pem(),
            server_key_pem: server_key.serialize_pem(),
        })
    }

    /// Writes the CA certificate to `folder/emulator-ca.pem`.
    pub fn write_ca(&self, folder: &Path) -> Result<PathBuf, EmulatorError> {
        let path = folder.join(CA_FILE_NAME);
        std::fs::write(&path, &self.ca_pem).map_err(|error| EmulatorError::Tls {
            detail: format!(
                "could not write the CA certificate to {}: {error}",
                path.display()
            ),
        })?;
        Ok(path)
    }
}
