//! Package signatures: ed25519 (`ed25519-dalek`) over the manifest's
//! canonical bytes. Keys are PEM files as `openssl genpkey -algorithm
//! ed25519` writes them: a private key (PKCS#8, `BEGIN PRIVATE KEY`)
//! signs; a public key (SPKI, `BEGIN PUBLIC KEY`) verifies, and so does
//! a private key file, by its public half.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::Signer as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use serde::{Deserialize, Serialize};

pub use ed25519_dalek::{SigningKey, VerifyingKey};

use super::PackageError;

/// The only algorithm a package is signed with.
pub const ALGORITHM: &str = "ed25519";

/// A package's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// `ed25519`.
    pub algorithm: String,
    /// The fingerprint of the public key it verifies with
    /// ([`fingerprint`]), so people see which key signed.
    pub key: String,
    /// The 64-byte signature, base64.
    pub value: String,
}

/// A public key's fingerprint: the SHA-256 of its 32 bytes, hex, first
/// 16 characters.
pub fn fingerprint(key: &VerifyingKey) -> String {
    let mut hex = super::format::sha256(key.as_bytes());
    hex.truncate(16);
    hex
}

/// Signs `message` with `key`.
pub fn sign(key: &SigningKey, message: &[u8]) -> Signature {
    Signature {
        algorithm: ALGORITHM.to_owned(),
        key: fingerprint(&key.verifying_key()),
        value: STANDARD.encode(key.sign(message).to_bytes()),
    }
}

/// Checks `signature` over `message` with `key` (strictly: no malleable
/// signatures, no weak keys).
pub fn verify(
    key: &VerifyingKey,
    message: &[u8],
    signature: &Signature,
) -> Result<(), PackageError> {
    let refused = |detail: String| PackageError::Signature { detail };
    if signature.algorithm != ALGORITHM {
        return Err(refused(format!(
            "it is of algorithm `{}`, and packages are signed with {ALGORITHM}",
            signature.algorithm
        )));
    }
    let bytes = STANDARD
        .decode(signature.value.as_bytes())
        .map_err(|error| refused(format!("its value is not base64: {error}")))?;
    let bytes: [u8; 64] = bytes
        .try_into()
        .map_err(|_| refused("its value is not 64 bytes".into()))?;
    let value = ed25519_dalek::Signature::from_bytes(&bytes);
    key.verify_strict(message, &value).map_err(|_| {
        refused(format!(
            "the manifest changed after signing, or it was signed by another key (it names key {}; the key given is {})",
            signature.key,
            fingerprint(key)
        ))
    })
}

fn read(file: &Path) -> Result<String, PackageError> {
    std::fs::read_to_string(file).map_err(|error| PackageError::Key {
        file: file.display().to_string(),
        detail: format!("cannot be read: {error}"),
    })
}

/// The signing key in PEM file `file` (PKCS#8 `PRIVATE KEY`).
pub fn signing_key(file: &Path) -> Result<SigningKey, PackageError> {
    let text = read(file)?;
    SigningKey::from_pkcs8_pem(&text).map_err(|error| PackageError::Key {
        file: file.display().to_string(),
        detail: format!(
            "is not an ed25519 private key in PEM (`openssl genpkey -algorithm ed25519` makes one): {error}"
        ),
    })
}

/// The key that verifies, from PEM file `file`: a `PUBLIC KEY`, or the
/// public half of a `PRIVATE KEY`.
pub fn verifying_key(file: &Path) -> Result<VerifyingKey, PackageError> {
    let text = read(file)?;
    if let Ok(key) = VerifyingKey::from_public_key_pem(&text) {
        return Ok(key);
    }
    SigningKey::from_pkcs8_pem(&text)
        .map(|key| key.verifying_key())
        .map_err(|error| PackageError::Key {
            file: file.display().to_string(),
            detail: format!(
                "is not an ed25519 public key in PEM (`openssl pkey -in KEY -pubout` makes one from the private key): {error}"
            ),
        })
}

/// `key` as PEM: its private key (PKCS#8) and its public key (SPKI), as
/// [`signing_key`] and [`verifying_key`] read them.
pub fn to_pem(key: &SigningKey) -> Result<(String, String), PackageError> {
    let failed = |detail: String| PackageError::Key {
        file: "(new key)".into(),
        detail,
    };
    let private = key
        .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map_err(|error| failed(error.to_string()))?;
    let public = key
        .verifying_key()
        .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map_err(|error| failed(error.to_string()))?;
    Ok((private.to_string(), public))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_with_its_key_only() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let other = SigningKey::from_bytes(&[8; 32]);
        let signature = sign(&key, b"manifest");
        verify(&key.verifying_key(), b"manifest", &signature).expect("its key");
        let error = verify(&other.verifying_key(), b"manifest", &signature)
            .expect_err("another key")
            .to_string();
        assert!(error.contains(&signature.key), "{error}");
        verify(&key.verifying_key(), b"manifest!", &signature).expect_err("another message");
    }

    #[test]
    fn keys_read_back_from_their_pem_files() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let key = SigningKey::from_bytes(&[9; 32]);
        let (private, public) = to_pem(&key).expect("PEM");
        let (private_file, public_file) = (dir.path().join("k.pem"), dir.path().join("k.pub"));
        std::fs::write(&private_file, private).expect("written");
        std::fs::write(&public_file, public).expect("written");
        assert_eq!(signing_key(&private_file).expect("private"), key);
        assert_eq!(
            verifying_key(&public_file).expect("public"),
            key.verifying_key()
        );
        assert_eq!(
            verifying_key(&private_file).expect("its public half"),
            key.verifying_key()
        );
        let error = signing_key(&public_file)
            .expect_err("not private")
            .to_string();
        assert!(error.contains("k.pub"), "{error}");
    }
}
