//! The package on disk: one JSON document,
//! `{"format", "manifest", "signature", "parts"}`, each part's bytes in
//! base64 under its path, the manifest listing every part with its
//! SHA-256 and size.
//!
//! Reading never trusts the document: [`Package::from_bytes`] only
//! decodes it; [`Package::verify`] checks the signature (when a key is
//! given), the contract version and every part against the manifest, in
//! that order, and names what it refuses.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::PackageError;
use super::sign::{self, Signature, VerifyingKey};
use crate::plugin::bindings::CONTRACT_VERSION;

/// The format this host writes and reads.
pub const FORMAT: &str = "dualwrite-package/1";

/// The path of the part holding the alert rules.
pub const ALERT_RULES: &str = "alert-rules.json";

/// What a part holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PartKind {
    /// A map's definition and version ([`MapPart`](super::MapPart), JSON).
    Map,
    /// A plugin component (`.wasm`).
    Plugin,
    /// The alert rules added through the API (a JSON list).
    AlertRules,
}

/// One part as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Part {
    /// Where it is in `parts`: `maps/NAME.json`, `plugins/NAME@VERSION.wasm`,
    /// `alert-rules.json`.
    pub path: String,
    /// What it holds.
    pub kind: PartKind,
    /// The map's or plugin's name (`alert-rules` for the rules).
    pub name: String,
    /// A plugin's version (semver); a map's version number, if the
    /// exporting host had numbered its definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The SHA-256 of its bytes, hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

/// What the package holds, and what made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The plugin contract of the exporting host (`0.2.0`): a host of
    /// another major version refuses the package.
    pub contract: String,
    /// The dualwrite version that made it.
    pub host_version: String,
    /// When (RFC 3339).
    pub created: String,
    /// Every part, maps first, then plugins, then the alert rules.
    pub parts: Vec<Part>,
}

impl Manifest {
    /// The bytes a signature covers: the manifest as compact JSON, its
    /// fields in their declared order (so the same manifest always gives
    /// the same bytes).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A part to be packed: what the manifest lists of it, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// Its path.
    pub path: String,
    /// What it holds.
    pub kind: PartKind,
    /// The map's or plugin's name.
    pub name: String,
    /// A plugin's version; a map's version number.
    pub version: Option<String>,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// A package in memory: its manifest, its signature if it has one, and
/// its parts' bytes by path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// What it holds.
    pub manifest: Manifest,
    /// The signature over [`Manifest::canonical_bytes`], if signed.
    pub signature: Option<Signature>,
    /// Each part's bytes, by path.
    pub parts: BTreeMap<String, Vec<u8>>,
}

/// The document as written.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    format: String,
    manifest: Manifest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signature: Option<Signature>,
    parts: BTreeMap<String, String>,
}

/// What [`Package::verify`] established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The fingerprint of the key the signature verified with, when one
    /// was given.
    pub key: Option<String>,
    /// How many parts matched the manifest.
    pub parts: usize,
}

/// The SHA-256 of `bytes`, hex.
pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Package {
    /// A package of `parts`, its manifest made from them, unsigned.
    pub fn new(parts: Vec<Content>) -> Package {
        let mut listed = Vec::new();
        let mut bytes = BTreeMap::new();
        for content in parts {
            listed.push(Part {
                path: content.path.clone(),
                kind: content.kind,
                name: content.name,
                version: content.version,
                sha256: sha256(&content.bytes),
                size: content.bytes.len() as u64,
            });
            bytes.insert(content.path, content.bytes);
        }
        Package {
            manifest: Manifest {
                contract: CONTRACT_VERSION.to_owned(),
                host_version: env!("CARGO_PKG_VERSION").to_owned(),
                created: crate::checkpoint::now(),
                parts: listed,
            },
            signature: None,
            parts: bytes,
        }
    }

    /// Decodes a package's bytes, checking nothing but its shape.
    pub fn from_bytes(bytes: &[u8]) -> Result<Package, PackageError> {
        let document: Document = serde_json::from_slice(bytes).map_err(|error| {
            PackageError::Malformed(format!(
                "it is not a dualwrite package (one JSON document with format, manifest and parts): {error}"
            ))
        })?;
        if document.format != FORMAT {
            return Err(PackageError::Malformed(format!(
                "its format is `{}`, and this host reads `{FORMAT}`: export it again with this version of dualwrite",
                document.format
            )));
        }
        let mut parts = BTreeMap::new();
        for (path, text) in document.parts {
            let content =
                STANDARD
                    .decode(text.as_bytes())
                    .map_err(|error| PackageError::Tampered {
                        part: path.clone(),
                        detail: format!("it is not base64: {error}"),
                    })?;
            parts.insert(path, content);
        }
        Ok(Package {
            manifest: document.manifest,
            signature: document.signature,
            parts,
        })
    }

    /// The package as written to a file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let document = Document {
            format: FORMAT.to_owned(),
            manifest: self.manifest.clone(),
            signature: self.signature.clone(),
            parts: self
                .parts
                .iter()
                .map(|(path, bytes)| (path.clone(), STANDARD.encode(bytes)))
                .collect(),
        };
        let mut text = serde_json::to_vec_pretty(&document).unwrap_or_default();
        text.push(b'\n');
        text
    }

    /// Signs the manifest with `key` (replacing any signature).
    pub fn sign(&mut self, key: &sign::SigningKey) {
        self.signature = Some(sign::sign(key, &self.manifest.canonical_bytes()));
    }

    /// Checks the package: its signature with `key` when one is given (an
    /// unsigned package is then refused), its contract's major version
    /// against this host's, and every part against the manifest (present,
    /// its size and SHA-256; no part the manifest does not list).
    pub fn verify(&self, key: Option<&VerifyingKey>) -> Result<Verified, PackageError> {
        let key = match key {
            Some(key) => {
                let signature = self.signature.as_ref().ok_or(PackageError::Unsigned)?;
                sign::verify(key, &self.manifest.canonical_bytes(), signature)?;
                Some(sign::fingerprint(key))
            }
            None => None,
        };
        check_contract(&self.manifest.contract)?;
        let mut seen = BTreeSet::new();
        for part in &self.manifest.parts {
            if !seen.insert(part.path.as_str()) {
                return Err(PackageError::Malformed(format!(
                    "its manifest lists part `{}` twice",
                    part.path
                )));
            }
            let tampered = |detail: String| PackageError::Tampered {
                part: part.path.clone(),
                detail,
            };
            let bytes = self.parts.get(&part.path).ok_or_else(|| {
                tampered("the manifest lists it, and the package lacks it".into())
            })?;
            if bytes.len() as u64 != part.size {
                return Err(tampered(format!(
                    "it holds {} bytes, and the manifest says {}",
                    bytes.len(),
                    part.size
                )));
            }
            let found = sha256(bytes);
            if found != part.sha256 {
                return Err(tampered(format!(
                    "its sha256 is {found}, and the manifest says {}",
                    part.sha256
                )));
            }
        }
        if let Some(extra) = self.parts.keys().find(|path| !seen.contains(path.as_str())) {
            return Err(PackageError::Tampered {
                part: extra.clone(),
                detail: "the package holds it, and the manifest does not list it".into(),
            });
        }
        Ok(Verified {
            key,
            parts: seen.len(),
        })
    }
}

/// Refuses a contract whose major version is not this host's.
fn check_contract(contract: &str) -> Result<(), PackageError> {
    let refused = || PackageError::Contract {
        package: contract.to_owned(),
        host: CONTRACT_VERSION.to_owned(),
    };
    let theirs = semver::Version::parse(contract).map_err(|_| refused())?;
    let ours = semver::Version::parse(CONTRACT_VERSION).map_err(|_| refused())?;
    match theirs.major == ours.major {
        true => Ok(()),
        false => Err(refused()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Package {
        let part = |path: &str, kind, name: &str, version: &str, bytes: &[u8]| Content {
            path: path.into(),
            kind,
            name: name.into(),
            version: Some(version.into()),
            bytes: bytes.to_vec(),
        };
        Package::new(vec![
            part("maps/m.json", PartKind::Map, "m", "1", br#"{"name":"m"}"#),
            part(
                "plugins/p@1.0.0.wasm",
                PartKind::Plugin,
                "p",
                "1.0.0",
                &[0, 97, 115, 109],
            ),
        ])
    }

    #[test]
    fn a_package_reads_back_as_written_and_verifies() {
        let package = sample();
        let read = Package::from_bytes(&package.to_bytes()).expect("reads");
        assert_eq!(read, package);
        assert_eq!(read.verify(None).expect("verifies").parts, 2);
    }

    #[test]
    fn a_changed_part_or_manifest_is_refused_naming_the_part() {
        let mut flipped = sample();
        if let Some(bytes) = flipped.parts.get_mut("plugins/p@1.0.0.wasm") {
            bytes[1] ^= 1;
        }
        let error = flipped.verify(None).expect_err("tampered").to_string();
        assert!(error.contains("plugins/p@1.0.0.wasm"), "{error}");
        let mut extra = sample();
        extra.parts.insert("plugins/q.wasm".into(), vec![1]);
        let error = extra.verify(None).expect_err("unlisted").to_string();
        assert!(error.contains("plugins/q.wasm"), "{error}");
        let mut other = sample();
        other.manifest.contract = "1.0.0".into();
        let error = other.verify(None).expect_err("contract").to_string();
        assert!(
            error.contains("1.0.0") && error.contains(CONTRACT_VERSION),
            "{error}"
        );
        let error = Package::from_bytes(b"{}").expect_err("not one").to_string();
        assert!(error.contains("not a dualwrite package"), "{error}");
    }
}
