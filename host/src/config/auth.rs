//! A system's `auth`: its token endpoint and how the client proves who it
//! is, checked at build time into an [`AuthPlan`].
//!
//! - The token endpoint: `token_url` when set (it overrides the tenant's),
//!   else `{authority_host}/{tenant}/oauth2/v2.0/token`. A tenant is a GUID
//!   or a domain name; `common`, `organizations` and `consumers` are not
//!   tenants, and the client credentials grant is refused there
//!   (AADSTS9001023: "The grant type isn't supported over the /common or
//!   /consumers endpoints", <https://learn.microsoft.com/entra/identity-platform/reference-error-codes>).
//! - The credential: exactly one of `client_secret_env` (read from the
//!   environment; unset is a `DW017` warning) and `certificate_file` (with
//!   `private_key_file`, or the key in the same PEM), read and checked by
//!   [`ClientCertificate::read`]: a problem there is `DW035`.
//! - Everything else wrong with the table is `DW034 auth-config`.

use std::path::Path;

use super::AuthConfig;
use super::build::{BuildOptions, Report, check_url};
use crate::connector::{
    AUTHORITY_HOST, CertificateError, ClientAuth, ClientCertificate, tenant_token_url,
};
use crate::map::{AuthPlan, Problem, ProblemCode, Secret};

/// Names that are not a directory tenant.
const NOT_TENANTS: [&str; 3] = ["common", "organizations", "consumers"];

impl AuthConfig {
    /// The token endpoint, or why there is none.
    pub fn token_endpoint(&self) -> Result<String, String> {
        if let Some(url) = &self.token_url {
            return Ok(url.clone());
        }
        let Some(tenant) = &self.tenant else {
            return Err(
                "`auth` names neither `tenant` nor `token_url`, so there is no token endpoint"
                    .into(),
            );
        };
        check_tenant(tenant)?;
        let host = self.authority_host.as_deref().unwrap_or(AUTHORITY_HOST);
        if reqwest::Url::parse(host).is_err() {
            return Err(format!(
                "`auth.authority_host` is `{host}`, which is not a URL"
            ));
        }
        Ok(tenant_token_url(host, tenant))
    }

    /// What a connector authenticates with, read now: the secret from
    /// `env`, or the certificate and key from their files (relative to
    /// `base_dir`); `scope` is the service URL with `/.default`. The error
    /// says what is wrong (`dualwrite map validate --live` reads systems
    /// this way, before a plan exists).
    pub fn client_auth(
        &self,
        system: &str,
        base_dir: &Path,
        scope: String,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ClientAuth, String> {
        let token_url = self.token_endpoint()?;
        let certificate = match &self.certificate_file {
            Some(file) => Some(
                self.read_certificate(file, base_dir)
                    .map_err(|(_, why)| why)?,
            ),
            None => None,
        };
        let plan = AuthPlan {
            token_url,
            client_id: self.client_id.clone(),
            client_secret_env: self.client_secret_env.clone().unwrap_or_default(),
            client_secret: self
                .client_secret_env
                .as_deref()
                .and_then(env)
                .map(Secret::new),
            certificate,
        };
        if plan.certificate.is_none() && self.client_secret_env.is_none() {
            return Err("`auth` names neither `client_secret_env` nor `certificate_file`".into());
        }
        plan.client_auth(system, scope)
    }

    /// The certificate and key, or the field at fault and why.
    fn read_certificate(
        &self,
        file: &Path,
        base_dir: &Path,
    ) -> Result<ClientCertificate, (&'static str, String)> {
        let certificate = base_dir.join(file);
        let key = self.private_key_file.as_ref().map(|key| base_dir.join(key));
        ClientCertificate::read(&certificate, key.as_deref()).map_err(|error| {
            let key_file = key.as_ref().map(|key| key.display().to_string());
            let at_key = key_file.as_deref() == Some(error.file())
                && (error.is_key() || matches!(error, CertificateError::Read { .. }));
            let field = if at_key {
                "auth.private_key_file"
            } else {
                "auth.certificate_file"
            };
            (field, error.to_string())
        })
    }
}

/// A GUID or a domain name, safe as a path segment.
fn check_tenant(tenant: &str) -> Result<(), String> {
    if NOT_TENANTS
        .iter()
        .any(|name| tenant.eq_ignore_ascii_case(name))
    {
        return Err(format!(
            "`auth.tenant` is `{tenant}`, which is not a directory: the client credentials grant needs the tenant itself (AADSTS9001023)"
        ));
    }
    let valid = !tenant.is_empty()
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !valid {
        return Err(format!(
            "`auth.tenant` is `{tenant}`, which is neither a GUID nor a domain name"
        ));
    }
    Ok(())
}

/// Checks a system's `auth` and reads its secret or certificate.
pub(super) fn build_auth(
    name: &str,
    auth: &AuthConfig,
    options: &BuildOptions<'_>,
    report: &mut Report,
) -> AuthPlan {
    let problem = |message: String, help: &str, field: &str| {
        Problem::new(
            ProblemCode::AuthConfig,
            format!("system `{name}`: {message}"),
            help,
        )
        .at_field(format!("systems.{name}.{field}"))
    };
    let token_url = match auth.token_endpoint() {
        Ok(url) => {
            let field = if auth.token_url.is_some() {
                "auth.token_url"
            } else {
                "auth.authority_host"
            };
            check_url(name, field, &url, report);
            url
        }
        Err(why) => {
            let field = if auth.tenant.is_some() && auth.token_url.is_none() {
                if why.contains("authority_host") {
                    "auth.authority_host"
                } else {
                    "auth.tenant"
                }
            } else {
                "auth"
            };
            report.push(problem(
                why,
                "set `tenant` to the directory (tenant) id of the app registration, a GUID or a domain such as `contoso.onmicrosoft.com`; `token_url` overrides it (the emulators)",
                field,
            ));
            String::new()
        }
    };
    match (&auth.client_secret_env, &auth.certificate_file) {
        (Some(_), Some(_)) => report.push(problem(
            "`auth` names both `client_secret_env` and `certificate_file`".into(),
            "keep one: the client proves who it is with a secret or with a certificate",
            "auth",
        )),
        (None, None) => report.push(problem(
            "`auth` names neither `client_secret_env` nor `certificate_file`".into(),
            "name the environment variable of the client secret as `client_secret_env`, or the PEM file of the certificate registered for the application as `certificate_file`",
            "auth",
        )),
        _ => {}
    }
    if auth.private_key_file.is_some() && auth.certificate_file.is_none() {
        report.push(problem(
            "`auth.private_key_file` is set without `certificate_file`".into(),
            "name the certificate the key belongs to as `certificate_file`",
            "auth.private_key_file",
        ));
    }
    let client_secret = auth.client_secret_env.as_ref().and_then(|variable| {
        let secret = (options.env)(variable).map(Secret::new);
        if secret.is_none() {
            report.push(
                Problem::new(
                    ProblemCode::SecretUnset,
                    format!("system `{name}`: the environment variable `{variable}` is not set"),
                    format!("set `{variable}` to the client secret before the host starts"),
                )
                .at_field(format!("systems.{name}.auth.client_secret_env")),
            );
        }
        secret
    });
    let certificate = auth.certificate_file.as_ref().and_then(|file| {
        auth.read_certificate(file, &options.base_dir)
            .map_err(|(field, why)| {
                report.push(
                    Problem::new(
                        ProblemCode::ClientCertificate,
                        format!("system `{name}`: {why}"),
                        "name the PEM certificate registered for the application (Certificates & secrets) and its unencrypted RSA private key, in one file or as `certificate_file` and `private_key_file`",
                    )
                    .at_field(format!("systems.{name}.{field}")),
                );
            })
            .ok()
    });
    AuthPlan {
        token_url,
        client_id: auth.client_id.clone(),
        client_secret_env: auth.client_secret_env.clone().unwrap_or_default(),
        client_secret,
        certificate,
    }
}
