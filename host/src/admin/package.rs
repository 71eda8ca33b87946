//! The package routes: `GET /api/v1/export` (the package of the host's
//! maps as they run, `?maps=a,b` for some; unsigned: `dualwrite export
//! --key` signs it where the key is) and `POST /api/v1/import` (the
//! package's bytes; `?dry_run=true` shows what would change). The host
//! checks every part's hash and the contract version, and the signature
//! with the key of `[engine] package_key_file` when it names one
//! (`dualwrite import --key` checks it too, before it sends the package).
//! See `package`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use serde::Deserialize;

use super::routes::{Api, ApiError, ErrorBody};
use crate::package::{self, ImportOptions, Imported, MAX_PACKAGE_BYTES, PackageError};
use crate::registry::RegistryError;

impl From<PackageError> for ApiError {
    fn from(error: PackageError) -> ApiError {
        let message = error.to_string();
        let (status, code) = match error {
            PackageError::Maps(error) => return error.into(),
            PackageError::Malformed(_)
            | PackageError::Contract { .. }
            | PackageError::Tampered { .. }
            | PackageError::Unsigned
            | PackageError::Signature { .. }
            | PackageError::Key { .. } => (StatusCode::BAD_REQUEST, "invalid-package"),
            PackageError::Plugin {
                source: RegistryError::Immutable { .. } | RegistryError::InUse { .. },
                ..
            }
            | PackageError::Export { .. }
            | PackageError::Refused(_) => (StatusCode::CONFLICT, "refused"),
            PackageError::Plugin { .. } => (StatusCode::BAD_REQUEST, "invalid-package"),
            PackageError::UnknownMap { .. } => (StatusCode::NOT_FOUND, "unknown-map"),
            PackageError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "store"),
        };
        ApiError::new(status, code, message)
    }
}

/// Which maps to export.
#[derive(Debug, Default, Deserialize)]
pub struct ExportQuery {
    /// The maps, comma-separated; absent: every map.
    pub maps: Option<String>,
}

/// How to import.
#[derive(Debug, Default, Deserialize)]
pub struct ImportQuery {
    /// Only show what would change.
    #[serde(default)]
    pub dry_run: bool,
}

#[utoipa::path(get, path = "/api/v1/export", params(("maps" = Option<String>, Query, description = "The maps, comma-separated; absent: every map")),
    responses((status = 200, description = "The package: one JSON document of the maps as they run (each plugin step naming its exact registry version), their plugins' components, the alert rules the API added, and a manifest of each part's SHA-256", body = Object),
        (status = 404, description = "No such map", body = ErrorBody),
        (status = 409, description = "A map cannot be exported (a plugin file without a version)", body = ErrorBody)))]
pub(super) async fn export(
    State(engine): State<Api>,
    Query(query): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let maps: Option<Vec<String>> = query.maps.map(|list| {
        list.split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect()
    });
    let package = package::export(engine.checkpoints(), &engine.plan(), maps.as_deref())?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        package.to_bytes(),
    )
        .into_response())
}

#[utoipa::path(post, path = "/api/v1/import", params(("dry_run" = Option<bool>, Query, description = "Only show what would change")),
    request_body(content = Vec<u8>, content_type = "application/json", description = "The package, as `dualwrite export` writes it"),
    responses((status = 200, description = "Each plugin (new, upgraded, added, unchanged), map (added, changed with the fields that changed, unchanged) and alert rule of the package; applied unless a dry run", body = Imported),
        (status = 400, description = "The package is refused (a part does not match its manifest, another contract major version, unsigned or not verifying with the key of `[engine] package_key_file`, a plugin the host does not load) or its maps do not validate; nothing changed", body = ErrorBody),
        (status = 409, description = "Refused (a plugin version held with other bytes, an alert rule of the config); nothing changed", body = ErrorBody)))]
pub(super) async fn import(
    State(engine): State<Api>,
    Query(query): Query<ImportQuery>,
    body: Bytes,
) -> Result<Json<Imported>, ApiError> {
    let key = match &engine.plan().engine.package_key_file {
        Some(file) => Some(package::verifying_key(file).map_err(|error| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "config",
                format!("[engine] package_key_file: {error}; nothing changed"),
            )
        })?),
        None => None,
    };
    let options = ImportOptions {
        dry_run: query.dry_run,
        key: key.as_ref(),
    };
    Ok(Json(package::import(&engine, &body, options).await?))
}

/// `POST /api/v1/import`, taking bodies up to [`MAX_PACKAGE_BYTES`].
pub(super) fn import_route() -> MethodRouter<Api> {
    post(import).layer(DefaultBodyLimit::max(MAX_PACKAGE_BYTES))
}
