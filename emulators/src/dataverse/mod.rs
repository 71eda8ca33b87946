//! The Dataverse Web API (v9.2 subset) under `/api/data/v9.2/`.
//!
//! - `read`: collections (`$select`, `$filter`, `$orderby`, `$top`,
//!   `$count`, `Prefer: odata.maxpagesize` with `@odata.nextLink`), one row by
//!   id or alternate key, change tracking (`Prefer: odata.track-changes`,
//!   `@odata.deltaLink`, `$deletedEntity`).
//! - `write`: create (POST), upsert/update (PATCH with `If-Match`,
//!   `If-None-Match`), DELETE, lookups through `field@odata.bind`.
//! - `definitions`: `EntityDefinitions`; `functions`: `WhoAmI` and the
//!   user privilege functions.
//! - `steps`: webhook registrations (`serviceendpoints`, with
//!   `endpoints`, `sdkmessages`, `sdkmessagefilters`,
//!   `sdkmessageprocessingsteps`, and `sdkmessageprocessingstepimages`,
//!   with `images`); `webhooks`: the `RemoteExecutionContext` each
//!   asynchronous step sends after a commit; `synchronous`: the calls of
//!   the synchronous steps during a write, whose refusal rolls it back.
//!
//! Every row carries its primary key GUID, `versionnumber` (the store's
//! global version), `createdon`, `modifiedon`, and `@odata.etag` =
//! `W/"<versionnumber>"` when read.

mod definitions;
mod endpoints;
pub(crate) mod expand;
mod functions;
mod images;
mod money;
pub(crate) mod ops;
pub(crate) mod owner;
mod page;
mod property;
mod read;
mod steps;
pub(crate) mod synchronous;
pub(crate) mod webhooks;
pub(crate) mod write;

use axum::http::{Method, StatusCode};

use super::SharedState;
use super::http::{ApiError, ApiRequest, ApiResponse};
use super::rows::{KeySegment, parse_segment};
use dualwrite::schema::TableDef;

/// The bad-request code Dataverse uses for malformed queries and bodies.
pub(crate) const BAD_REQUEST: &str = "0x80060888";
/// Object does not exist.
pub(crate) const NOT_FOUND: &str = "0x80040217";

/// Fields every Dataverse row carries besides its declared ones.
pub(crate) const SYSTEM_FIELDS: &[&str] = &["versionnumber", "createdon", "modifiedon"];

pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, BAD_REQUEST, message)
}

pub(crate) fn not_found(table: &TableDef, key: &KeySegment) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        NOT_FOUND,
        format!(
            "{} With {} Does Not Exist",
            table.entity_name(),
            describe_key(key)
        ),
    )
}

pub(crate) fn unknown_property(table: &TableDef, name: &str) -> ApiError {
    bad_request(format!(
        "Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{}'.",
        table.entity_name()
    ))
}

/// Answers one request (a `$batch` part goes through here too).
pub(crate) async fn handle(state: &SharedState, request: ApiRequest) -> ApiResponse {
    if request.path == "$batch" {
        return super::batch::handle(state, request).await;
    }
    if request.path.is_empty() && request.method == Method::GET {
        return service_document(state);
    }
    if functions::handles(&request.path) {
        return functions::handle(state, &request);
    }
    if definitions::handles(&request.path) {
        return definitions::handle(state, &request);
    }
    if steps::handles(&request.path) {
        return steps::handle(state, request).await;
    }
    match route(state, request).await {
        Ok(r) => r,
        Err(e) => e.to_response(),
    }
}

/// `GET /api/data/v9.2/`: the OData service document (OData JSON Format
/// 4.0 §5), one `EntitySet` per table.
fn service_document(state: &SharedState) -> ApiResponse {
    let value: Vec<serde_json::Value> = state
        .metadata
        .tables()
        .map(|t| serde_json::json!({"name": t.name, "kind": "EntitySet", "url": t.name}))
        .collect();
    ApiResponse::json(
        StatusCode::OK,
        serde_json::json!({
            "@odata.context": format!("{}/api/data/v9.2/$metadata", state.base_url),
            "value": value,
        }),
    )
}

pub(crate) async fn route(
    state: &SharedState,
    request: ApiRequest,
) -> Result<ApiResponse, ApiError> {
    let (segment, rest) = request.path.split_once('/').unwrap_or((&request.path, ""));
    let (set, key) = parse_segment(segment, BAD_REQUEST)?;
    let Some(table) = state.metadata.table(&set) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            BAD_REQUEST,
            format!("Resource not found for the segment '{set}'."),
        ));
    };
    // A write below a row (a property, a `$ref`) is the update of one row,
    // checked as such below; everything else is checked as it is.
    if rest.is_empty() || request.method == Method::GET {
        state.security.authorize(table, &request)?;
    }
    match (rest, &request.method, key) {
        ("", _, key) => match (&request.method, key) {
            (&Method::GET, None) => read::collection(state, table, &request),
            (&Method::GET, Some(key)) => read::one(state, table, &key, &request),
            (_, key) => ops::execute(state, table, key, &request).await,
        },
        ("$count", &Method::GET, None) => read::count(state, table, &request),
        (rest, &Method::GET, Some(key)) => property::read(state, table, &key, rest, &request),
        (rest, _, Some(key)) => {
            let write = property::as_write(state, table, key, rest, &request)?;
            state.security.authorize(write.table, &write.request)?;
            ops::execute_bare(state, write.table, write.key, &write.request).await
        }
        (rest, _, None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            BAD_REQUEST,
            format!("Resource not found for the segment '{rest}'."),
        )),
    }
}

/// The write a request below the service root makes, for `$batch` change
/// sets: the table, the key, and for a write below a row (a property, a
/// `$ref`) the update it amounts to, answered with a bare `204`.
pub(crate) fn write_target<'m>(
    state: &'m SharedState,
    request: &ApiRequest,
) -> Result<(&'m TableDef, Option<KeySegment>, Option<ApiRequest>), ApiError> {
    let (segment, rest) = request.path.split_once('/').unwrap_or((&request.path, ""));
    let (set, key) = parse_segment(segment, BAD_REQUEST)?;
    let table = state.metadata.table(&set).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            BAD_REQUEST,
            format!("Resource not found for the segment '{set}'."),
        )
    })?;
    match (rest, key) {
        ("", key) => {
            state.security.authorize(table, request)?;
            Ok((table, key, None))
        }
        (rest, Some(key)) => {
            let write = property::as_write(state, table, key, rest, request)?;
            state.security.authorize(write.table, &write.request)?;
            Ok((write.table, Some(write.key), Some(write.request)))
        }
        (rest, None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            BAD_REQUEST,
            format!("Resource not found for the segment '{rest}'."),
        )),
    }
}

/// Describes a key for messages: `Id = …` or `accountnumber = 'A-1'`.
pub(crate) fn describe_key(key: &KeySegment) -> String {
    match key {
        KeySegment::Single(v) => format!("Id = {}", v.as_str().unwrap_or_default()),
        KeySegment::Named(parts) => parts
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}
