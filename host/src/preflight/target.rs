//! [`SystemTarget`]: how to reach one system of a config file, before any
//! plan exists: its service URL, its client credentials (the secret from
//! the environment) and connector options that answer in seconds.
//!
//! `map validate --live` and the preflight both start from here, so a
//! system is reached the same way by both.

use std::path::Path;
use std::time::Duration;

use crate::config::SystemConfig;
use crate::connector::{
    self, ClientAuth, ConnectorError, ConnectorOptions, MetadataReader, RetryPolicy, TrustedCa,
};
use crate::map::SystemKind;

/// Why a system of the config cannot be reached at all.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The system's `ca_file` cannot be read or parsed.
    #[error("its CA file {path} {why}")]
    CaFile {
        /// The file, as resolved against the config's folder.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// The system has no `auth`.
    #[error(
        "it has no `auth`; add `auth = {{ token_url, client_id, client_secret_env }}` to `[systems.{system}]`"
    )]
    NoAuth {
        /// The system's name.
        system: String,
    },
    /// The credential cannot be had: the variable holding the client
    /// secret is not set, or the certificate cannot be read.
    #[error("{detail}")]
    Credential {
        /// What is wrong and what to do.
        detail: String,
    },
}

/// One system of a config, ready to connect to.
#[derive(Debug, Clone)]
pub struct SystemTarget {
    /// Its name in `[systems.NAME]`.
    pub name: String,
    /// Which service it is.
    pub kind: SystemKind,
    /// The environment URL (`https://org.crm.dynamics.com`).
    pub root: String,
    /// The service root (`…/api/data/v9.2` or `…/data`).
    pub service_url: String,
    /// Client credentials (a secret or a certificate), the scope
    /// `{root}/.default`.
    pub credentials: ClientAuth,
    /// Quick retries (a check should answer in seconds) and the `ca_file`.
    pub options: ConnectorOptions,
}

impl SystemTarget {
    /// The target of `[systems.name]`; relative `ca_file`s start at
    /// `base_dir`, secrets come from `env`.
    pub fn from_config(
        name: &str,
        system: &SystemConfig,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, TargetError> {
        let ca = match &system.ca_file {
            Some(file) => {
                let path = base_dir.join(file);
                Some(TrustedCa::read(&path).map_err(|why| TargetError::CaFile {
                    path: path.display().to_string(),
                    why,
                })?)
            }
            None => None,
        };
        let auth = system.auth.as_ref().ok_or_else(|| TargetError::NoAuth {
            system: name.to_string(),
        })?;
        let (root, service_url) = service_url(system.kind, &system.url);
        let credentials = auth
            .client_auth(name, base_dir, format!("{root}/.default"), env)
            .map_err(|detail| TargetError::Credential { detail })?;
        Ok(Self {
            name: name.to_string(),
            kind: system.kind,
            root,
            service_url,
            credentials,
            options: quick_options(ca),
        })
    }

    /// The connector's name for the kind of service.
    pub fn connector_kind(&self) -> connector::SystemKind {
        match self.kind {
            SystemKind::Dataverse => connector::SystemKind::Dataverse,
            SystemKind::Finops => connector::SystemKind::Finops,
        }
    }

    /// A reader of the system's table definitions.
    pub fn metadata_reader(&self) -> MetadataReader {
        MetadataReader::new(
            self.connector_kind(),
            &self.service_url,
            self.credentials.clone(),
            self.options.clone(),
        )
    }
}

/// A few quick retries: validation and the preflight answer in seconds.
pub fn quick_options(ca: Option<TrustedCa>) -> ConnectorOptions {
    ConnectorOptions {
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(2),
            budget: Duration::from_secs(30),
        },
        ca,
        ..ConnectorOptions::default()
    }
}

/// The environment root and the service root of a configured URL, which
/// may name either (Dataverse `…/api/data/v9.2`, finops `…/data`).
pub fn service_url(kind: SystemKind, url: &str) -> (String, String) {
    let url = url.trim_end_matches('/');
    match kind {
        SystemKind::Dataverse => match url.split_once("/api/data/") {
            Some((root, _)) => (root.to_owned(), url.to_owned()),
            None => (url.to_owned(), format!("{url}/api/data/v9.2")),
        },
        SystemKind::Finops => match url.strip_suffix("/data") {
            Some(root) => (root.to_owned(), url.to_owned()),
            None => (url.to_owned(), format!("{url}/data")),
        },
    }
}

/// A connector error in the words of a check: what failed, without the
/// sync engine's advice.
pub fn describe(error: &ConnectorError) -> String {
    match error {
        ConnectorError::Unavailable {
            method,
            url,
            attempts,
            last,
            ..
        } => format!("{method} {url} failed {attempts} times (last: {last})"),
        ConnectorError::Auth {
            token_url, detail, ..
        } => format!("no token from {token_url}: {detail}"),
        ConnectorError::Rejected {
            method,
            url,
            status,
            service,
            ..
        } => format!("{method} {url} answered {status} ({service})"),
        ConnectorError::Unauthorized {
            method,
            url,
            service,
            ..
        } => format!("{method} {url} answered 401 with a fresh token ({service})"),
        ConnectorError::Tls { url, detail, .. } | ConnectorError::Protocol { url, detail, .. } => {
            format!("{url}: {detail}")
        }
        ConnectorError::Invalid { detail, .. } => detail.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_urls_come_from_the_root_or_the_service_url() {
        let check = |kind, url: &str, root: &str, service: &str| {
            assert_eq!(
                service_url(kind, url),
                (root.to_string(), service.to_string()),
                "{url}"
            );
        };
        let dataverse = SystemKind::Dataverse;
        let finops = SystemKind::Finops;
        check(
            dataverse,
            "https://org.crm.dynamics.com/",
            "https://org.crm.dynamics.com",
            "https://org.crm.dynamics.com/api/data/v9.2",
        );
        check(
            dataverse,
            "https://org.crm.dynamics.com/api/data/v9.2",
            "https://org.crm.dynamics.com",
            "https://org.crm.dynamics.com/api/data/v9.2",
        );
        check(
            finops,
            "https://fo.operations.dynamics.com",
            "https://fo.operations.dynamics.com",
            "https://fo.operations.dynamics.com/data",
        );
        check(
            finops,
            "https://fo.operations.dynamics.com/data/",
            "https://fo.operations.dynamics.com",
            "https://fo.operations.dynamics.com/data",
        );
    }
}
