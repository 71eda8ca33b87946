//! `serviceendpoints` of the Dataverse emulator: the webhooks steps post
//! to. Only `contract` 8 (Webhook) is served, with `authtype` 4
//! (WebhookKey), 5 (HttpHeader) or 6 (HttpQueryString)
//! (<https://learn.microsoft.com/power-apps/developer/data-platform/reference/entities/serviceendpoint>,
//! <https://learn.microsoft.com/power-apps/developer/data-platform/use-webhooks>);
//! reads and deletes are served with the other registrations (`steps`).

use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::super::SharedState;
use super::super::http::{ApiError, ApiRequest, ApiResponse};
use super::bad_request;
use super::read::storage;
use super::steps::{
    ENDPOINTS, HTTP_HEADER, HTTP_QUERY_STRING, WEBHOOK, WEBHOOK_KEY, checked, created, integer,
    not_found, pk, put, text,
};
use super::write::{now, parse_body};

/// The columns a client may write.
const ENDPOINT_COLUMNS: &[&str] = &[
    "name",
    "description",
    "url",
    "contract",
    "authtype",
    "authvalue",
    "messageformat",
];

/// Checks the endpoint columns a create or an update sets.
fn check_endpoint(row: &Map<String, Value>) -> Result<(), ApiError> {
    if let Some(contract) = integer(row, "contract")?
        && contract != WEBHOOK
    {
        return Err(bad_request(format!(
            "contract {contract} is a Service Bus or Event Hub contract, which the emulator does not serve: register a webhook with contract 8"
        )));
    }
    if let Some(authtype) = integer(row, "authtype")?
        && ![WEBHOOK_KEY, HTTP_HEADER, HTTP_QUERY_STRING].contains(&authtype)
    {
        return Err(bad_request(format!(
            "authtype {authtype} is not a webhook authentication: use 4 (WebhookKey), 5 (HttpHeader) or 6 (HttpQueryString)"
        )));
    }
    if let Some(url) = text(row, "url")? {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| bad_request(format!("url '{url}' is not an absolute URL: {e}")))?;
        if !["http", "https"].contains(&parsed.scheme()) {
            return Err(bad_request(format!(
                "url '{url}' must be http:// or https://"
            )));
        }
    }
    for name in ["name", "description", "authvalue"] {
        text(row, name)?;
    }
    if let Some(authvalue) = text(row, "authvalue")?
        && integer(row, "authtype")? != Some(WEBHOOK_KEY)
    {
        super::webhooks::settings(authvalue).map_err(bad_request)?;
    }
    Ok(())
}

/// `POST serviceendpoints`.
pub(super) async fn create(
    state: &SharedState,
    request: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    let mut row = checked(&parse_body(request)?, ENDPOINT_COLUMNS, "serviceendpoint")?;
    for required in ["name", "url", "contract", "authtype"] {
        if row.get(required).is_none_or(Value::is_null) {
            return Err(bad_request(format!(
                "serviceendpoint needs '{required}': a webhook is registered with name, url, contract 8, authtype and authvalue"
            )));
        }
    }
    check_endpoint(&row)?;
    let id = Uuid::new_v4().to_string();
    row.insert("serviceendpointid".into(), Value::String(id.clone()));
    row.entry("messageformat").or_insert(json!(2));
    row.insert("createdon".into(), now());
    row.insert("modifiedon".into(), now());
    put(state, ENDPOINTS, &id, row).await?;
    state.webhooks.endpoint_changed(&id);
    Ok(created(state, ENDPOINTS, &id))
}

/// `PATCH serviceendpoints(id)`.
pub(super) async fn update(
    state: &SharedState,
    request: &ApiRequest,
    id: &str,
) -> Result<ApiResponse, ApiError> {
    let changes = checked(&parse_body(request)?, ENDPOINT_COLUMNS, "serviceendpoint")?;
    let existing = state
        .store
        .get(ENDPOINTS, &pk(id))
        .map_err(storage)?
        .ok_or_else(|| not_found("serviceendpoint", id))?;
    let mut row = existing.row;
    row.extend(changes);
    check_endpoint(&row)?;
    row.insert("modifiedon".into(), now());
    put(state, ENDPOINTS, id, row).await?;
    state.webhooks.endpoint_changed(id);
    Ok(ApiResponse::empty(StatusCode::NO_CONTENT))
}
