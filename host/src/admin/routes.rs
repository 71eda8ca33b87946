//! The admin API's routes and their OpenAPI description. Each handler is
//! documented with `#[utoipa::path]`; [`ApiDoc`] lists them; [`router`]
//! registers each with the path its documentation names and returns the
//! list of what it registered, which a test compares with the document.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::auth::{self, Token};
use super::metrics::{__path_metrics, metrics};
use super::{alerts, errors, logs, package, swap};
use crate::checkpoint::InitialFailure;
use crate::map::InitialSync;
use crate::sync::{
    ControlError, InitialProgress, MapNode, MapStatus, Queued, RunningEngine, StartOptions,
    dependency_graph,
};

/// The OpenAPI document of the admin API.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "dualwrite admin API",
        description = "Control and watch a running dualwrite host: map states, lifecycle operations, dependencies, the error queue, the activity log, alert rules, metrics."
    ),
    paths(
        health, openapi_json, list_maps, get_map, start, pause, resume, stop, deps, progress,
        failures, rerun, metrics, errors::list_errors, errors::get_error, errors::retry_error,
        errors::retry_all, errors::dismiss_error, logs::list_logs, logs::stream_logs,
        alerts::list_alerts, alerts::add_alert, alerts::remove_alert, alerts::test_alert,
        swap::apply, swap::swap, swap::rollback, swap::versions, swap::list_plugins,
        swap::add_plugin, swap::remove_plugin, swap::canary, package::export, package::import
    ),
    components(schemas(
        Health, MapStatus, MapList, Done, StartRequest, PauseRequest, ResumeRequest, StopRequest,
        ErrorBody, ErrorDetail, MapNode, DependencyGraph, InitialProgress, Failures, RerunRequest,
        Rerun, errors::ErrorList, errors::ErrorFilter, logs::LogEntries, alerts::AlertRules,
        alerts::TestRequest, alerts::TestResults, crate::alerts::RuleSpec,
        crate::sync::alerts::AlertRuleStatus, crate::sync::alerts::TestDelivery,
        crate::sync::alerts::Firing, crate::alerts::RuleSource, swap::ApplyRequest,
        swap::Applied, swap::SwapRequest, swap::RollbackRequest, swap::VersionEntry,
        swap::History, swap::Plugins, crate::sync::Difference, swap::CanaryRequest,
        crate::sync::Canary, crate::sync::CanaryRow, crate::package::Imported,
        crate::package::PluginChange, crate::package::RuleChange
    )),
    modifiers(&BearerScheme),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// The document, as served at `/api/v1/openapi.json` and kept in
/// `docs/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// An error: its HTTP status, and a body naming what was refused.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

/// The body of every error: `{"error": {...}}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// `unauthorized`, `unknown-map`, `unknown-error`, `unknown-rule`,
    /// `unknown-webhook`, `no-copy`, `refused`, `bad-request` or `store`.
    pub code: String,
    /// What was wrong and what to do.
    pub message: String,
    /// The map at fault, when one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<String>,
    /// That map's state, when an operation was refused because of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

impl ApiError {
    /// An error of `status` with `code` and `message`.
    pub fn new(status: StatusCode, code: &str, message: String) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                error: ErrorDetail {
                    code: code.to_owned(),
                    message,
                    map: None,
                    state: None,
                },
            },
        }
    }

    fn store(error: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store",
            format!("the checkpoint store failed: {error}"),
        )
    }
}

impl From<ControlError> for ApiError {
    fn from(error: ControlError) -> ApiError {
        let message = error.to_string();
        match error {
            ControlError::UnknownMap { map, .. } => {
                let mut api = ApiError::new(StatusCode::NOT_FOUND, "unknown-map", message);
                api.body.error.map = Some(map);
                api
            }
            ControlError::Refused { map, state, .. } => {
                let mut api = ApiError::new(StatusCode::CONFLICT, "refused", message);
                api.body.error.map = Some(map);
                api.body.error.state = Some(state);
                api
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            format!(
                "the request body is not what this route takes: {}; see /api/v1/openapi.json",
                rejection.body_text()
            ),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

pub(super) type Api = Arc<RunningEngine>;

/// `GET /api/v1/health`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` while the host serves.
    pub status: String,
    /// The host's version.
    pub version: String,
}

/// The maps' statuses.
#[derive(Debug, Serialize, ToSchema)]
pub struct MapList {
    /// Every map of the config, then those the store knows that the
    /// config no longer has.
    pub maps: Vec<MapStatus>,
}

/// What an operation did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Done {
    /// The maps it moved, in the order it moved them.
    pub done: Vec<String>,
    /// Every map's status after it.
    pub maps: Vec<MapStatus>,
}

/// `POST /api/v1/maps/start`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// The maps to start.
    pub maps: Vec<String>,
    /// `left` or `right` (the master: on a key both sides hold, its values
    /// win), or `none` (only new changes). Absent: the map's own. Given to
    /// a map copied before, `left` or `right` copies again every row not
    /// already copied.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub initial_sync: Option<InitialSync>,
    /// Start the maps they depend on first, in dependency order.
    #[serde(default)]
    pub with_dependencies: bool,
}

/// `POST /api/v1/maps/pause`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseRequest {
    /// The maps to pause; each must be running.
    pub maps: Vec<String>,
    /// Also pause the running maps that depend on them.
    #[serde(default)]
    pub with_dependents: bool,
}

/// `POST /api/v1/maps/resume`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeRequest {
    /// The maps to resume; each must be paused.
    pub maps: Vec<String>,
    /// What becomes of the changes queued while paused (`replay`).
    #[serde(default)]
    #[schema(value_type = String)]
    pub queued: Queued,
}

/// `POST /api/v1/maps/stop`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StopRequest {
    /// The maps to stop.
    pub maps: Vec<String>,
}

/// `GET /api/v1/deps`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DependencyGraph {
    /// Every map of the config in dependency order.
    pub maps: Vec<MapNode>,
}

#[utoipa::path(get, path = "/api/v1/health", security(()),
    responses((status = 200, description = "The host serves", body = Health)))]
async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

#[utoipa::path(get, path = "/api/v1/openapi.json",
    responses((status = 200, description = "This document")))]
async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}

fn statuses(engine: &RunningEngine) -> Result<Vec<MapStatus>, ApiError> {
    engine.statuses().map_err(ApiError::store)
}

#[utoipa::path(get, path = "/api/v1/maps",
    responses((status = 200, description = "Every map's status", body = MapList),
        (status = 401, body = ErrorBody)))]
async fn list_maps(State(engine): State<Api>) -> Result<Json<MapList>, ApiError> {
    Ok(Json(MapList {
        maps: statuses(&engine)?,
    }))
}

#[utoipa::path(get, path = "/api/v1/maps/{name}",
    params(("name" = String, Path, description = "The map")),
    responses((status = 200, description = "The map's status", body = MapStatus),
        (status = 404, description = "No such map", body = ErrorBody)))]
async fn get_map(
    State(engine): State<Api>,
    Path(name): Path<String>,
) -> Result<Json<MapStatus>, ApiError> {
    statuses(&engine)?
        .into_iter()
        .find(|status| status.name == name)
        .map(Json)
        .ok_or_else(|| unknown_map(name))
}

fn done(engine: &RunningEngine, moved: Vec<String>) -> Result<Json<Done>, ApiError> {
    Ok(Json(Done {
        done: moved,
        maps: statuses(engine)?,
    }))
}

#[utoipa::path(post, path = "/api/v1/maps/start", request_body = StartRequest,
    responses((status = 200, description = "Started", body = Done),
        (status = 409, description = "Refused: a map's state does not allow it; nothing was started", body = ErrorBody),
        (status = 404, description = "No such map", body = ErrorBody)))]
async fn start(
    State(engine): State<Api>,
    body: Result<Json<StartRequest>, JsonRejection>,
) -> Result<Json<Done>, ApiError> {
    let Json(request) = body?;
    let options = StartOptions {
        initial_sync: request.initial_sync,
        with_dependencies: request.with_dependencies,
    };
    let moved = engine.start_maps(&request.maps, &options).await?;
    done(&engine, moved)
}

#[utoipa::path(post, path = "/api/v1/maps/pause", request_body = PauseRequest,
    responses((status = 200, description = "Paused", body = Done),
        (status = 409, description = "Refused: a map is not running; none was paused", body = ErrorBody),
        (status = 404, description = "No such map", body = ErrorBody)))]
async fn pause(
    State(engine): State<Api>,
    body: Result<Json<PauseRequest>, JsonRejection>,
) -> Result<Json<Done>, ApiError> {
    let Json(request) = body?;
    let moved = engine
        .pause_maps(&request.maps, request.with_dependents)
        .await?;
    done(&engine, moved)
}

#[utoipa::path(post, path = "/api/v1/maps/resume", request_body = ResumeRequest,
    responses((status = 200, description = "Resumed (catching up)", body = Done),
        (status = 409, description = "Refused: a map is not paused; none was resumed", body = ErrorBody),
        (status = 404, description = "No such map", body = ErrorBody)))]
async fn resume(
    State(engine): State<Api>,
    body: Result<Json<ResumeRequest>, JsonRejection>,
) -> Result<Json<Done>, ApiError> {
    let Json(request) = body?;
    let moved = engine.resume_maps(&request.maps, request.queued).await?;
    done(&engine, moved)
}

#[utoipa::path(post, path = "/api/v1/maps/stop", request_body = StopRequest,
    responses((status = 200, description = "Stopped", body = Done),
        (status = 409, description = "Refused: a map does not run; none was stopped", body = ErrorBody),
        (status = 404, description = "No such map", body = ErrorBody)))]
async fn stop(
    State(engine): State<Api>,
    body: Result<Json<StopRequest>, JsonRejection>,
) -> Result<Json<Done>, ApiError> {
    let Json(request) = body?;
    let moved = engine.stop_maps(&request.maps).await?;
    done(&engine, moved)
}

#[utoipa::path(get, path = "/api/v1/deps",
    responses((status = 200, description = "The maps' dependency graph", body = DependencyGraph)))]
async fn deps(State(engine): State<Api>) -> Result<Json<DependencyGraph>, ApiError> {
    let statuses = statuses(&engine)?;
    Ok(Json(DependencyGraph {
        maps: dependency_graph(&engine.plan().maps, &statuses),
    }))
}

/// `GET /api/v1/maps/{name}/failures`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Failures {
    /// Every row of the map's initial copy that failed and is parked, with
    /// the service's message: all of them.
    pub failures: Vec<InitialFailure>,
}

/// `POST /api/v1/maps/{name}/rerun`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RerunRequest {
    /// Only the rows that failed (true), or every row not already copied
    /// (false).
    #[serde(default)]
    pub only_failed: bool,
}

/// What a rerun asked for.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rerun {
    /// Failed rows resubmitted, or sides to be read again.
    pub asked: usize,
    /// The map's status after it.
    pub map: MapStatus,
}

fn unknown_map(name: String) -> ApiError {
    let mut error = ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown-map",
        format!(
            "map `{name}` is not in the config nor in the store; `GET /api/v1/maps` lists the maps"
        ),
    );
    error.body.error.map = Some(name);
    error
}

#[utoipa::path(get, path = "/api/v1/maps/{name}/progress",
    params(("name" = String, Path, description = "The map")),
    responses((status = 200, description = "The map's initial copy: rows read, written and failed, rate and ETA, per company", body = InitialProgress),
        (status = 404, description = "No such map", body = ErrorBody)))]
async fn progress(
    State(engine): State<Api>,
    Path(name): Path<String>,
) -> Result<Json<InitialProgress>, ApiError> {
    if let Some(progress) = engine.initial_progress(&name) {
        return Ok(Json(progress));
    }
    if engine.plan().map(&name).is_none() {
        return Err(unknown_map(name));
    }
    let mut error = ApiError::new(
        StatusCode::NOT_FOUND,
        "no-copy",
        format!(
            "map `{name}` has begun no initial copy: start it with `dualwrite map start {name}` (an initial sync of `left` or `right`)"
        ),
    );
    error.body.error.map = Some(name);
    Err(error)
}

#[utoipa::path(get, path = "/api/v1/maps/{name}/failures",
    params(("name" = String, Path, description = "The map")),
    responses((status = 200, description = "The failed rows of the map's initial copy", body = Failures),
        (status = 404, description = "No such map", body = ErrorBody)))]
async fn failures(
    State(engine): State<Api>,
    Path(name): Path<String>,
) -> Result<Json<Failures>, ApiError> {
    if engine.plan().map(&name).is_none() {
        return Err(unknown_map(name));
    }
    let failures = engine
        .checkpoints()
        .initial_failures(&name)
        .map_err(ApiError::store)?;
    Ok(Json(Failures { failures }))
}

#[utoipa::path(post, path = "/api/v1/maps/{name}/rerun", request_body = RerunRequest,
    params(("name" = String, Path, description = "The map")),
    responses((status = 200, description = "Asked", body = Rerun),
        (status = 409, description = "Refused: the map is not started", body = ErrorBody),
        (status = 404, description = "No such map", body = ErrorBody)))]
async fn rerun(
    State(engine): State<Api>,
    Path(name): Path<String>,
    body: Result<Json<RerunRequest>, JsonRejection>,
) -> Result<Json<Rerun>, ApiError> {
    let Json(request) = body?;
    let asked = engine.rerun_initial(&name, request.only_failed).await?;
    let map = statuses(&engine)?
        .into_iter()
        .find(|status| status.name == name)
        .ok_or_else(|| unknown_map(name))?;
    Ok(Json(Rerun { asked, map }))
}

/// Registers routes on a router and records each `(METHOD, path)`.
struct Routes {
    router: Router<Api>,
    registered: Vec<(String, String)>,
}

impl Routes {
    fn add(mut self, method: &str, path: &str, route: MethodRouter<Api>) -> Routes {
        self.router = self.router.route(path, route);
        self.registered.push((method.to_owned(), path.to_owned()));
        self
    }
}

/// The open routes (no token) and the guarded ones.
fn table() -> (Routes, Routes) {
    let empty = || Routes {
        router: Router::new(),
        registered: Vec::new(),
    };
    let open = empty().add("GET", "/api/v1/health", get(health));
    let guarded = empty()
        .add("GET", "/api/v1/openapi.json", get(openapi_json))
        .add("GET", "/api/v1/maps", get(list_maps))
        .add("GET", "/api/v1/maps/{name}", get(get_map))
        .add("POST", "/api/v1/maps/start", post(start))
        .add("POST", "/api/v1/maps/pause", post(pause))
        .add("POST", "/api/v1/maps/resume", post(resume))
        .add("POST", "/api/v1/maps/stop", post(stop))
        .add("GET", "/api/v1/deps", get(deps))
        .add("GET", "/api/v1/maps/{name}/progress", get(progress))
        .add("GET", "/api/v1/maps/{name}/failures", get(failures))
        .add("POST", "/api/v1/maps/{name}/rerun", post(rerun))
        .add("GET", "/api/v1/errors", get(errors::list_errors))
        .add("POST", "/api/v1/errors/retry-all", post(errors::retry_all))
        .add("GET", "/api/v1/errors/{id}", get(errors::get_error))
        .add(
            "POST",
            "/api/v1/errors/{id}/retry",
            post(errors::retry_error),
        )
        .add(
            "POST",
            "/api/v1/errors/{id}/dismiss",
            post(errors::dismiss_error),
        )
        .add("GET", "/api/v1/logs", get(logs::list_logs))
        .add("GET", "/api/v1/logs/stream", get(logs::stream_logs))
        .add("GET", "/api/v1/alerts", get(alerts::list_alerts))
        .add("POST", "/api/v1/alerts", post(alerts::add_alert))
        .add("POST", "/api/v1/alerts/test", post(alerts::test_alert))
        .add(
            "DELETE",
            "/api/v1/alerts/{name}",
            delete(alerts::remove_alert),
        )
        .add("POST", "/api/v1/maps/apply", post(swap::apply))
        .add("POST", "/api/v1/maps/{name}/swap", post(swap::swap))
        .add("POST", "/api/v1/maps/{name}/rollback", post(swap::rollback))
        .add("GET", "/api/v1/maps/{name}/versions", get(swap::versions))
        .add("POST", "/api/v1/maps/{name}/canary", swap::canary_route())
        .add("GET", "/api/v1/plugins", get(swap::list_plugins))
        .add("POST", "/api/v1/plugins", swap::add_plugin_route())
        .add(
            "DELETE",
            "/api/v1/plugins/{name}/{version}",
            delete(swap::remove_plugin),
        )
        .add("GET", "/api/v1/export", get(package::export))
        .add("POST", "/api/v1/import", package::import_route())
        .add("GET", "/metrics", get(metrics));
    (open, guarded)
}

/// Each `(METHOD, path)` the router serves.
pub fn registered_routes() -> Vec<(String, String)> {
    let (open, guarded) = table();
    open.registered
        .into_iter()
        .chain(guarded.registered)
        .collect()
}

/// The API's router over `engine`, with every route but the health check
/// behind the bearer check of `token`.
pub fn router(engine: Arc<RunningEngine>, token: String) -> Router {
    let token = Token::new(token);
    let (open, guarded) = table();
    guarded
        .router
        .route_layer(axum::middleware::from_fn_with_state(token, auth::require))
        .merge(open.router)
        .with_state(engine)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paths and methods of the document.
    fn documented() -> Vec<(String, String)> {
        let doc = openapi();
        let mut all = Vec::new();
        for (path, item) in &doc.paths.paths {
            let json = serde_json::to_value(item).unwrap_or_default();
            for method in ["get", "post", "put", "patch", "delete"] {
                if json.get(method).is_some() {
                    all.push((method.to_uppercase(), path.clone()));
                }
            }
        }
        all.sort();
        all
    }

    #[test]
    fn the_document_and_the_router_name_the_same_routes() {
        let mut registered = registered_routes();
        registered.sort();
        assert_eq!(
            documented(),
            registered,
            "every route is documented (add it to ApiDoc's paths) and every documented path is served"
        );
    }

    #[test]
    fn the_document_in_the_repository_is_the_generated_one() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
        let generated = openapi().to_pretty_json().expect("the document serializes") + "\n";
        if std::env::var_os("DUALWRITE_UPDATE_OPENAPI").is_some() {
            std::fs::write(path, &generated).expect("docs/openapi.json written");
        }
        let kept = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            kept == generated,
            "docs/openapi.json is not the document the code generates: run `DUALWRITE_UPDATE_OPENAPI=1 cargo test -p dualwrite --lib admin` and commit it"
        );
    }
}
