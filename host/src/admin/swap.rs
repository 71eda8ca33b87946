//! The hot swap and registry routes: `POST /api/v1/maps/apply` (new or
//! changed map definitions, as TOML `[[maps]]` entries; `dry_run` shows
//! what would change), `POST /api/v1/maps/{name}/swap` (a registry plugin
//! version for the map's step of that plugin), `POST
//! /api/v1/maps/{name}/rollback` (an earlier version),
//! `GET /api/v1/maps/{name}/versions` (the history, each with its
//! field-level diff from the one before); `GET /api/v1/plugins` (the
//! registry), `POST /api/v1/plugins` (add a component, the body its
//! bytes), `DELETE /api/v1/plugins/{name}/{version}`. See `sync::swap`
//! and `registry`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{MethodRouter, post};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::routes::{Api, ApiError, ErrorBody};
use crate::registry::{self, RegistryError};
use crate::sync::{Difference, SwapError, Swapped, diff};

impl From<SwapError> for ApiError {
    fn from(error: SwapError) -> ApiError {
        let message = error.to_string();
        let (status, code) = match error {
            SwapError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid"),
            SwapError::Refused(_) | SwapError::NoSource => (StatusCode::CONFLICT, "refused"),
            SwapError::UnknownMap { .. } => (StatusCode::NOT_FOUND, "unknown-map"),
            SwapError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "store"),
        };
        ApiError::new(status, code, message)
    }
}

impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> ApiError {
        let message = error.to_string();
        let (status, code) = match error {
            RegistryError::Refused { .. } | RegistryError::Identity { .. } => {
                (StatusCode::BAD_REQUEST, "refused")
            }
            RegistryError::Immutable { .. } | RegistryError::InUse { .. } => {
                (StatusCode::CONFLICT, "refused")
            }
            RegistryError::Unresolved(_) => (StatusCode::NOT_FOUND, "unknown-plugin"),
            RegistryError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "store"),
        };
        ApiError::new(status, code, message)
    }
}

/// Map definitions to apply.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    /// `[[maps]]` entries, TOML, as a config file writes them.
    pub toml: String,
    /// Only show what would change.
    #[serde(default)]
    pub dry_run: bool,
}

/// What an apply did (or would do).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Applied {
    /// One per map of the request.
    #[schema(value_type = Vec<Object>)]
    pub maps: Vec<serde_json::Value>,
}

/// A plugin version for a map.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwapRequest {
    /// `name@version` (or a requirement) of the registry.
    pub plugin: String,
}

/// The version to roll back to.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// Absent: the one before the current.
    #[serde(default)]
    pub to: Option<u32>,
}

/// One version of a map in its history.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionEntry {
    /// Its number.
    pub version: u32,
    /// When the host first ran it.
    pub at: String,
    /// Whether it is the one in force.
    pub current: bool,
    /// The definition.
    #[schema(value_type = Object)]
    pub definition: serde_json::Value,
    /// What changed from the version before.
    pub diff: Vec<Difference>,
}

/// A map's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct History {
    /// Oldest first.
    pub versions: Vec<VersionEntry>,
}

/// The registry.
#[derive(Debug, Serialize, ToSchema)]
pub struct Plugins {
    /// By name, lowest version first, each with the maps that run it.
    #[schema(value_type = Vec<Object>)]
    pub plugins: Vec<registry::InUse>,
}

/// How a component is added.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct AddQuery {
    /// Its name, where its metadata has none.
    pub name: Option<String>,
    /// Its version, where its metadata has none.
    pub version: Option<String>,
}

fn json(swapped: &Swapped) -> serde_json::Value {
    serde_json::to_value(swapped).unwrap_or_default()
}

#[utoipa::path(post, path = "/api/v1/maps/apply", request_body = ApplyRequest,
    responses((status = 200, description = "Each map: added, changed (with the fields that changed) or unchanged; changed maps took their new version between batches", body = Applied),
        (status = 400, description = "The maps do not validate (the problems, as `map validate` names them); nothing changed", body = ErrorBody),
        (status = 409, description = "Refused (a map's tables would change, a plugin would not load); nothing changed", body = ErrorBody)))]
pub(super) async fn apply(
    State(engine): State<Api>,
    body: Result<Json<ApplyRequest>, JsonRejection>,
) -> Result<Json<Applied>, ApiError> {
    let Json(request) = body?;
    let maps = crate::config::parse_maps("request", &request.toml)
        .map_err(|error| ApiError::new(StatusCode::BAD_REQUEST, "invalid", error.to_string()))?;
    let report = engine.apply_maps(maps, request.dry_run).await?;
    Ok(Json(Applied {
        maps: report.iter().map(json).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/maps/{name}/swap", request_body = SwapRequest,
    params(("name" = String, Path, description = "The map")),
    responses((status = 200, description = "The map runs the plugin version from its next batch", body = Object),
        (status = 400, description = "The new version does not validate; nothing changed", body = ErrorBody),
        (status = 404, description = "No such map", body = ErrorBody),
        (status = 409, description = "Refused; nothing changed", body = ErrorBody)))]
pub(super) async fn swap(
    State(engine): State<Api>,
    Path(name): Path<String>,
    body: Result<Json<SwapRequest>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(request) = body?;
    Ok(Json(json(
        &engine.swap_plugin(&name, &request.plugin).await?,
    )))
}

#[utoipa::path(post, path = "/api/v1/maps/{name}/rollback", request_body = RollbackRequest,
    params(("name" = String, Path, description = "The map")),
    responses((status = 200, description = "The map runs the earlier definition (under the next version number) from its next batch", body = Object),
        (status = 404, description = "No such map", body = ErrorBody),
        (status = 409, description = "No such version, or refused; nothing changed", body = ErrorBody)))]
pub(super) async fn rollback(
    State(engine): State<Api>,
    Path(name): Path<String>,
    body: Result<Json<RollbackRequest>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(request) = body?;
    Ok(Json(json(&engine.rollback_map(&name, request.to).await?)))
}

#[utoipa::path(get, path = "/api/v1/maps/{name}/versions",
    params(("name" = String, Path, description = "The map")),
    responses((status = 200, description = "Every version of the map, oldest first, each with what changed from the one before", body = History),
        (status = 404, description = "No such map", body = ErrorBody)))]
pub(super) async fn versions(
    State(engine): State<Api>,
    Path(name): Path<String>,
) -> Result<Json<History>, ApiError> {
    let store = engine.checkpoints();
    let all = store.map_versions(&name).map_err(|error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store",
            error.to_string(),
        )
    })?;
    if all.is_empty() {
        return Err(SwapError::UnknownMap { map: name }.into());
    }
    let current = store.map_version(&name);
    let mut before = serde_json::Value::Null;
    let versions = all
        .into_iter()
        .map(|version| {
            let entry = VersionEntry {
                version: version.version,
                at: version.at,
                current: Some(version.version) == current,
                diff: diff(&before, &version.definition),
                definition: version.definition,
            };
            before = entry.definition.clone();
            entry
        })
        .collect();
    Ok(Json(History { versions }))
}

#[utoipa::path(get, path = "/api/v1/plugins",
    responses((status = 200, description = "Every plugin version of the registry", body = Plugins)))]
pub(super) async fn list_plugins(State(engine): State<Api>) -> Result<Json<Plugins>, ApiError> {
    let plugins = registry::list_in_use(engine.checkpoints()).map_err(RegistryError::from)?;
    Ok(Json(Plugins { plugins }))
}

#[utoipa::path(post, path = "/api/v1/plugins", request_body(content = Vec<u8>, content_type = "application/wasm"),
    params(("name" = Option<String>, Query, description = "Its name, where its metadata has none"),
        ("version" = Option<String>, Query, description = "Its version, where its metadata has none")),
    responses((status = 201, description = "Checked, compiled and stored by name and version", body = Object),
        (status = 200, description = "The same bytes were stored under that version already", body = Object),
        (status = 400, description = "The component is refused, or has no name or version", body = ErrorBody),
        (status = 409, description = "Other bytes hold that name and version", body = ErrorBody)))]
pub(super) async fn add_plugin(
    State(engine): State<Api>,
    Query(query): Query<AddQuery>,
    body: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let data = engine.plan().engine.data.clone();
    let store = engine.checkpoints().clone();
    let added = tokio::task::spawn_blocking(move || {
        registry::add(
            &store,
            &registry::compiled_dir(&data),
            "the request body",
            &body,
            query.name.as_deref(),
            query.version.as_deref(),
        )
    })
    .await
    .map_err(|error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            error.to_string(),
        )
    })??;
    let status = match added.new {
        true => StatusCode::CREATED,
        false => StatusCode::OK,
    };
    Ok((
        status,
        Json(serde_json::to_value(&added).unwrap_or_default()),
    ))
}

#[utoipa::path(delete, path = "/api/v1/plugins/{name}/{version}",
    params(("name" = String, Path, description = "The plugin"), ("version" = String, Path, description = "Its version")),
    responses((status = 204, description = "Removed"),
        (status = 404, description = "No such version", body = ErrorBody),
        (status = 409, description = "A map runs it", body = ErrorBody)))]
pub(super) async fn remove_plugin(
    State(engine): State<Api>,
    Path((name, version)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    registry::remove(engine.checkpoints(), &name, &version)?;
    Ok(StatusCode::NO_CONTENT)
}

/// A canary's input: the new version, and optionally sample rows.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CanaryRequest {
    /// The component, base64.
    pub wasm: String,
    /// Rows of the source side (as the activity log keeps them); absent:
    /// the map's latest changes.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub sample: Option<Vec<serde_json::Map<String, serde_json::Value>>>,
    /// The direction the sample rows flow: `left-to-right` (default) or
    /// `right-to-left`.
    #[serde(default)]
    pub direction: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/maps/{name}/canary", request_body = CanaryRequest,
    params(("name" = String, Path, description = "The map")),
    responses((status = 200, description = "The rows whose result differs between the version the map runs and the new one; nothing changed", body = crate::sync::Canary),
        (status = 400, description = "The body is not a component or the rows are not objects", body = ErrorBody),
        (status = 404, description = "No such map", body = ErrorBody),
        (status = 409, description = "The map runs no plugin of that name, or the new version does not load", body = ErrorBody)))]
pub(super) async fn canary(
    State(engine): State<Api>,
    Path(name): Path<String>,
    body: Result<Json<CanaryRequest>, JsonRejection>,
) -> Result<Json<crate::sync::Canary>, ApiError> {
    use base64::Engine as _;
    let Json(request) = body?;
    let bad = |message: String| ApiError::new(StatusCode::BAD_REQUEST, "bad-request", message);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(request.wasm.as_bytes())
        .map_err(|error| bad(format!("`wasm` is not base64: {error}")))?;
    let direction = match request.direction.as_deref() {
        None | Some("left-to-right") => crate::checkpoint::Direction::LeftToRight,
        Some("right-to-left") => crate::checkpoint::Direction::RightToLeft,
        Some(other) => {
            return Err(bad(format!(
                "`direction` is `{other}`: write `left-to-right` or `right-to-left`"
            )));
        }
    };
    let sample = request.sample.map(|rows| (direction, rows));
    let found = tokio::task::spawn_blocking(move || engine.canary(&name, &bytes, sample))
        .await
        .map_err(|error| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                error.to_string(),
            )
        })??;
    Ok(Json(found))
}

/// The largest component the API takes (axum's default body limit, 2 MB,
/// is below what a plugin may weigh).
pub const MAX_PLUGIN_BYTES: usize = 64 * 1024 * 1024;

/// `POST /api/v1/plugins`, taking components up to [`MAX_PLUGIN_BYTES`].
pub(super) fn add_plugin_route() -> MethodRouter<Api> {
    post(add_plugin).layer(DefaultBodyLimit::max(MAX_PLUGIN_BYTES))
}

/// `POST /api/v1/maps/{name}/canary`: the component in base64 and sample
/// rows, up to twice [`MAX_PLUGIN_BYTES`].
pub(super) fn canary_route() -> MethodRouter<Api> {
    post(canary).layer(DefaultBodyLimit::max(2 * MAX_PLUGIN_BYTES))
}
