//! `[engine] tls_certificate_file` and `tls_private_key_file`: the webhook
//! receiver's HTTPS identity, read at build into a [`ReceiverTls`]. The
//! services post events only to HTTPS endpoints
//! (<https://learn.microsoft.com/power-apps/developer/data-platform/use-webhooks>),
//! so a receiver reached from them serves TLS; a problem is `DW036`.

use std::path::Path;

use super::EngineConfig;
use super::build::Report;
use crate::map::{Problem, ProblemCode, ReceiverTls};

/// The receiver's certificate and key, when `engine` names them; `None`
/// (with a problem in `report` when the files are wrong) otherwise.
pub(super) fn receiver_tls(
    engine: &EngineConfig,
    base_dir: &Path,
    report: &mut Report,
) -> Option<ReceiverTls> {
    let problem = |field: &str, message: String| {
        Problem::new(
            ProblemCode::ReceiverTls,
            message,
            "name a PEM file with the receiver's certificate chain in `tls_certificate_file` and its private key in `tls_private_key_file` (or in the same file)",
        )
        .at_field(format!("engine.{field}"))
    };
    let Some(certificate_file) = &engine.tls_certificate_file else {
        if engine.tls_private_key_file.is_some() {
            report.problems.push(problem(
                "tls_private_key_file",
                "`[engine] tls_private_key_file` is set without `tls_certificate_file`".into(),
            ));
        }
        return None;
    };
    let certificate_path = base_dir.join(certificate_file);
    let key_path = engine
        .tls_private_key_file
        .as_ref()
        .map_or_else(|| certificate_path.clone(), |key| base_dir.join(key));
    let read = |path: &Path, field: &str, report: &mut Report| match std::fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(error) => {
            report.problems.push(problem(
                field,
                format!("cannot read {}: {error}", path.display()),
            ));
            None
        }
    };
    let certificate_pem = read(&certificate_path, "tls_certificate_file", report)?;
    let key_pem = read(&key_path, "tls_private_key_file", report)?;
    let tags = |bytes: &[u8]| -> Result<Vec<String>, String> {
        pem::parse_many(bytes)
            .map(|blocks| blocks.iter().map(|b| b.tag().to_owned()).collect())
            .map_err(|error| error.to_string())
    };
    let has = |tags: &[String], wanted: &dyn Fn(&str) -> bool| tags.iter().any(|t| wanted(t));
    match tags(&certificate_pem) {
        Ok(found) if has(&found, &|t| t == "CERTIFICATE") => {}
        Ok(_) => {
            report.problems.push(problem(
                "tls_certificate_file",
                format!("{} holds no PEM `CERTIFICATE`", certificate_path.display()),
            ));
            return None;
        }
        Err(error) => {
            report.problems.push(problem(
                "tls_certificate_file",
                format!("{} is not PEM: {error}", certificate_path.display()),
            ));
            return None;
        }
    }
    let key_field = if engine.tls_private_key_file.is_some() {
        "tls_private_key_file"
    } else {
        "tls_certificate_file"
    };
    match tags(&key_pem) {
        Ok(found)
            if has(&found, &|t| {
                t.ends_with("PRIVATE KEY") && !t.starts_with("ENCRYPTED")
            }) => {}
        Ok(_) => {
            report.problems.push(problem(
                key_field,
                format!(
                    "{} holds no unencrypted PEM private key (`PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`)",
                    key_path.display()
                ),
            ));
            return None;
        }
        Err(error) => {
            report.problems.push(problem(
                key_field,
                format!("{} is not PEM: {error}", key_path.display()),
            ));
            return None;
        }
    }
    Some(ReceiverTls {
        certificate_pem,
        key_pem,
        files: if engine.tls_private_key_file.is_some() {
            format!("{} and {}", certificate_path.display(), key_path.display())
        } else {
            certificate_path.display().to_string()
        },
    })
}
