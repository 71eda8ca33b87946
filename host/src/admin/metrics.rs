//! `GET /metrics`: the host's Prometheus metrics
//! ([`RunningEngine::metrics`]), in the Prometheus text exposition format
//! (version 0.0.4). Like every route but the health check it needs the
//! bearer token: a Prometheus scrape config sends it with
//! `authorization: { credentials_file: FILE }` (the type defaults to
//! `Bearer`), see
//! <https://prometheus.io/docs/prometheus/latest/configuration/configuration/#scrape_config>.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::routes::{ApiError, ErrorBody};
use crate::sync::RunningEngine;

#[utoipa::path(get, path = "/metrics",
    responses(
        (status = 200, description = "The host's metrics in the Prometheus text exposition format 0.0.4: per map and direction, per plugin version, per system", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String),
        (status = 401, description = "No token, or not the host's", body = ErrorBody)))]
pub(super) async fn metrics(State(engine): State<Arc<RunningEngine>>) -> Response {
    match engine.metrics() {
        Ok(text) => ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(error) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store",
            format!("the checkpoint store failed: {error}"),
        )
        .into_response(),
    }
}
