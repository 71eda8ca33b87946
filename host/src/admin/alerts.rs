//! The alert routes: `GET /api/v1/alerts` (every rule, where it comes
//! from, the maps it fires for), `POST /api/v1/alerts` (add a rule, kept
//! in the store, in force from the next evaluation),
//! `DELETE /api/v1/alerts/{name}` (remove a rule the API added) and
//! `POST /api/v1/alerts/test` (a test notification to the webhooks, sent
//! once, each answer returned). See `sync::alerts`.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::routes::{Api, ApiError, ErrorBody};
use crate::alerts::RuleSpec;
use crate::sync::alerts::{AlertError, AlertRuleStatus, TestDelivery};

impl From<AlertError> for ApiError {
    fn from(error: AlertError) -> ApiError {
        let message = error.to_string();
        let (status, code) = match error {
            AlertError::Invalid(_) => (StatusCode::BAD_REQUEST, "bad-request"),
            AlertError::UnknownRule(_) => (StatusCode::NOT_FOUND, "unknown-rule"),
            AlertError::UnknownWebhook { .. } => (StatusCode::NOT_FOUND, "unknown-webhook"),
            AlertError::FromConfig(_) | AlertError::Exists(_) | AlertError::NoWebhooks => {
                (StatusCode::CONFLICT, "refused")
            }
            AlertError::Checkpoint(_) => (StatusCode::INTERNAL_SERVER_ERROR, "store"),
        };
        ApiError::new(status, code, message)
    }
}

/// Every alert rule.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertRules {
    /// The config's, then the API's.
    pub rules: Vec<AlertRuleStatus>,
}

/// Which webhook a test goes to.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// Only this webhook; absent: every webhook.
    #[serde(default)]
    pub webhook: Option<String>,
}

/// What each webhook answered a test notification.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TestResults {
    /// One per webhook.
    pub deliveries: Vec<TestDelivery>,
}

#[utoipa::path(get, path = "/api/v1/alerts",
    responses((status = 200, description = "Every alert rule: the config's, then those the API added, with the maps each fires for now", body = AlertRules)))]
pub(super) async fn list_alerts(State(engine): State<Api>) -> Json<AlertRules> {
    Json(AlertRules {
        rules: engine.alert_rules(),
    })
}

#[utoipa::path(post, path = "/api/v1/alerts", request_body = RuleSpec,
    responses((status = 201, description = "Added: kept in the host's store, evaluated from the next round", body = AlertRuleStatus),
        (status = 400, description = "The rule does not check: what is wrong and what to do", body = ErrorBody),
        (status = 409, description = "A rule of that name exists", body = ErrorBody)))]
pub(super) async fn add_alert(
    State(engine): State<Api>,
    body: Result<Json<RuleSpec>, JsonRejection>,
) -> Result<(StatusCode, Json<AlertRuleStatus>), ApiError> {
    let Json(spec) = body?;
    Ok((StatusCode::CREATED, Json(engine.add_alert_rule(&spec)?)))
}

#[utoipa::path(delete, path = "/api/v1/alerts/{name}",
    params(("name" = String, Path, description = "The rule")),
    responses((status = 204, description = "Removed"),
        (status = 404, description = "No such rule", body = ErrorBody),
        (status = 409, description = "The rule comes from the config file", body = ErrorBody)))]
pub(super) async fn remove_alert(
    State(engine): State<Api>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    engine.remove_alert_rule(&name)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/alerts/test", request_body = TestRequest,
    responses((status = 200, description = "Sent once to each webhook (not retried); what each answered, also in the activity log", body = TestResults),
        (status = 404, description = "No such webhook", body = ErrorBody),
        (status = 409, description = "The config has no webhook", body = ErrorBody)))]
pub(super) async fn test_alert(
    State(engine): State<Api>,
    body: Result<Json<TestRequest>, JsonRejection>,
) -> Result<Json<TestResults>, ApiError> {
    let Json(request) = body?;
    let deliveries = engine.test_alert(request.webhook.as_deref()).await?;
    Ok(Json(TestResults { deliveries }))
}
