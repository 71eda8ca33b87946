//! The admin API under `/admin`: faults, limits, hooks, change purges,
//! the writes each row received and data event subscriptions. No token, never throttled: it is the test
//! harness's control panel, not part of either service.

use axum::extract::{Path, State as AxumState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::SharedState;
use super::events::Subscription;
use super::guard::{FaultConfig, ProtectionLimits};
use super::http::ApiError;

pub(super) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/admin/faults", get(get_faults).put(put_faults))
        .route("/admin/limits", put(put_limits))
        .route("/admin/hooks", get(get_hooks))
        .route("/admin/hooks/{table}", put(put_hook).delete(delete_hook))
        .route("/admin/purge-changes/{table}", post(purge))
        .route("/admin/writes/{table}", get(get_writes))
        .route(
            "/admin/subscriptions",
            get(get_subscriptions)
                .post(post_subscription)
                .delete(delete_subscriptions),
        )
}

async fn get_faults(AxumState(state): AxumState<SharedState>) -> Json<FaultConfig> {
    Json(state.guard.faults())
}

async fn put_faults(
    AxumState(state): AxumState<SharedState>,
    Json(faults): Json<FaultConfig>,
) -> StatusCode {
    state.guard.set_faults(faults);
    StatusCode::NO_CONTENT
}

async fn put_limits(
    AxumState(state): AxumState<SharedState>,
    Json(limits): Json<ProtectionLimits>,
) -> StatusCode {
    state.guard.set_limits(limits);
    StatusCode::NO_CONTENT
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HookBody {
    url: String,
}

fn unknown_table(table: &str) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("there is no table '{table}': name an entity set of this emulator"),
    )
    .into_response()
}

async fn get_hooks(AxumState(state): AxumState<SharedState>) -> Response {
    Json(json!(state.hooks.all())).into_response()
}

async fn put_hook(
    AxumState(state): AxumState<SharedState>,
    Path(table): Path<String>,
    Json(body): Json<HookBody>,
) -> Response {
    if state.metadata.table(&table).is_none() {
        return unknown_table(&table);
    }
    state.hooks.set(&table, Some(body.url));
    StatusCode::NO_CONTENT.into_response()
}

async fn delete_hook(
    AxumState(state): AxumState<SharedState>,
    Path(table): Path<String>,
) -> StatusCode {
    state.hooks.set(&table, None);
    StatusCode::NO_CONTENT
}

async fn purge(AxumState(state): AxumState<SharedState>, Path(table): Path<String>) -> Response {
    if state.metadata.table(&table).is_none() {
        return unknown_table(&table);
    }
    match state.store.purge_changes(&table) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "StorageError",
            e.to_string(),
        )
        .into_response(),
    }
}

async fn get_writes(
    AxumState(state): AxumState<SharedState>,
    Path(table): Path<String>,
) -> Response {
    if state.metadata.table(&table).is_none() {
        return unknown_table(&table);
    }
    match state.store.row_writes(&table) {
        Ok(rows) => Json(rows).into_response(),
        Err(e) => storage_error(e),
    }
}

async fn get_subscriptions(AxumState(state): AxumState<SharedState>) -> Json<Vec<Subscription>> {
    Json(state.events.subscriptions())
}

fn storage_error(e: super::store::StoreError) -> Response {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "StorageError",
        e.to_string(),
    )
    .into_response()
}

async fn post_subscription(
    AxumState(state): AxumState<SharedState>,
    Json(subscription): Json<Subscription>,
) -> Response {
    match state.events.subscribe(subscription) {
        Ok(()) => StatusCode::CREATED.into_response(),
        Err(e) => storage_error(e),
    }
}

async fn delete_subscriptions(AxumState(state): AxumState<SharedState>) -> Response {
    match state.events.clear() {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => storage_error(e),
    }
}
