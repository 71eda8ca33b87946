//! The error queue's routes: `GET /api/v1/errors[?map=M]`,
//! `GET /api/v1/errors/{id}`, `POST /api/v1/errors/{id}/retry`,
//! `POST /api/v1/errors/retry-all` and `POST /api/v1/errors/{id}/dismiss`
//! (see `sync::errors` for what each does).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::routes::{Api, ApiError, ErrorBody};
use crate::sync::{ErrorQueueError, ErrorRow};

impl From<ErrorQueueError> for ApiError {
    fn from(error: ErrorQueueError) -> ApiError {
        let message = error.to_string();
        match error {
            ErrorQueueError::UnknownMap { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown-map", message)
            }
            ErrorQueueError::NoSuchRow { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown-error", message)
            }
            ErrorQueueError::Checkpoint(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store", message)
            }
        }
    }
}

/// The rows of the error queue.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorList {
    /// Oldest first.
    pub errors: Vec<ErrorRow>,
}

/// Which rows to list or retry.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorFilter {
    /// Only this map's rows.
    #[serde(default)]
    pub map: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/errors", params(("map" = Option<String>, Query, description = "Only this map's rows")),
    responses((status = 200, description = "The error queue: every parked row, live, catch-up and initial-sync", body = ErrorList),
        (status = 404, description = "No such map", body = ErrorBody)))]
pub(super) async fn list_errors(
    State(engine): State<Api>,
    Query(filter): Query<ErrorFilter>,
) -> Result<Json<ErrorList>, ApiError> {
    let errors = engine.errors(filter.map.as_deref())?;
    Ok(Json(ErrorList { errors }))
}

#[utoipa::path(get, path = "/api/v1/errors/{id}",
    params(("id" = u64, Path, description = "The row's id, as the list gives it")),
    responses((status = 200, description = "The parked row with its failed change", body = ErrorRow),
        (status = 404, description = "No such parked row", body = ErrorBody)))]
pub(super) async fn get_error(
    State(engine): State<Api>,
    Path(id): Path<u64>,
) -> Result<Json<ErrorRow>, ApiError> {
    Ok(Json(engine.error(id)?))
}

#[utoipa::path(post, path = "/api/v1/errors/{id}/retry",
    params(("id" = u64, Path, description = "The row's id")),
    responses((status = 200, description = "Retried: the row runs again through the map as it is now, in order, at its next batch", body = ErrorRow),
        (status = 404, description = "No such parked row", body = ErrorBody)))]
pub(super) async fn retry_error(
    State(engine): State<Api>,
    Path(id): Path<u64>,
) -> Result<Json<ErrorRow>, ApiError> {
    Ok(Json(engine.retry_error(id)?))
}

#[utoipa::path(post, path = "/api/v1/errors/retry-all", request_body = ErrorFilter,
    responses((status = 200, description = "Every parked row (of the map) retried", body = ErrorList),
        (status = 404, description = "No such map", body = ErrorBody)))]
pub(super) async fn retry_all(
    State(engine): State<Api>,
    body: Result<Json<ErrorFilter>, JsonRejection>,
) -> Result<Json<ErrorList>, ApiError> {
    let Json(filter) = body?;
    let errors = engine.retry_all_errors(filter.map.as_deref())?;
    Ok(Json(ErrorList { errors }))
}

#[utoipa::path(post, path = "/api/v1/errors/{id}/dismiss",
    params(("id" = u64, Path, description = "The row's id")),
    responses((status = 200, description = "Dismissed: the failed change ends unwritten, with an activity entry; the changes behind it flow", body = ErrorRow),
        (status = 404, description = "No such parked row", body = ErrorBody)))]
pub(super) async fn dismiss_error(
    State(engine): State<Api>,
    Path(id): Path<u64>,
) -> Result<Json<ErrorRow>, ApiError> {
    Ok(Json(engine.dismiss_error(id)?))
}
