//! `POST $batch` for both services: `multipart/mixed` bodies of `application/http` requests,
//! with change sets that commit atomically, `Content-ID` references (`$1`
//! in a later URL or `@odata.bind`), and `Prefer: odata.continue-on-error`.
//!
//! Without `continue-on-error` the batch stops at the first failed request
//! or change set; a failed change set answers with the single error of the
//! request that failed and commits nothing.
//!
//! The multipart framing, both ways, is the library's codec
//! (`dualwrite::odata::batch`), the one the connectors use: this module
//! turns its parts into [`ApiRequest`]s and [`ApiResponse`]s into parts.

use std::collections::HashMap;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use bytes::Bytes;
use serde_json::Value;

use super::http::{ApiError, ApiRequest, ApiResponse, header_str, prefer};
use super::rows::{KeySegment, parse_segment};
use super::{ServiceKind, SharedState, dataverse, finops};
use dualwrite::odata::batch::{self as codec, BatchRequest, BatchResponse};
use dualwrite::schema::TableDef;

/// The service's bad-request code.
fn code(state: &SharedState) -> &'static str {
    match state.kind {
        ServiceKind::Dataverse => dataverse::BAD_REQUEST,
        ServiceKind::Finops => "BadRequest",
    }
}

fn bad(state: &SharedState, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code(state), message)
}

/// A write of either service, prepared for a change set (a Dataverse
/// write, the larger, boxed).
enum Prepared<'t> {
    Dataverse(Box<dataverse::ops::PreparedWrite<'t>>),
    Finops(finops::ops::PreparedWrite<'t>),
}

enum Outcome {
    Dataverse(dataverse::ops::Outcome),
    Finops(finops::ops::Outcome),
}

async fn prepare<'t>(
    state: &SharedState,
    table: &'t TableDef,
    key: Option<KeySegment>,
    request: &ApiRequest,
) -> Result<Prepared<'t>, ApiError> {
    Ok(match state.kind {
        ServiceKind::Dataverse => Prepared::Dataverse(Box::new(
            dataverse::ops::prepare(state, table, key, request).await?,
        )),
        ServiceKind::Finops => {
            Prepared::Finops(finops::ops::prepare(state, table, key, request).await?)
        }
    })
}

fn apply(
    state: &SharedState,
    tx: &super::store::Tx<'_>,
    write: &Prepared<'_>,
) -> Result<Outcome, sled::transaction::ConflictableTransactionError<ApiError>> {
    Ok(match write {
        Prepared::Dataverse(w) => Outcome::Dataverse(dataverse::ops::apply(state, tx, w)?),
        Prepared::Finops(w) => Outcome::Finops(finops::ops::apply(tx, w)?),
    })
}

fn respond(state: &SharedState, write: &Prepared<'_>, outcome: &Outcome) -> ApiResponse {
    match (write, outcome) {
        (Prepared::Dataverse(w), Outcome::Dataverse(o)) => dataverse::ops::respond(state, w, o),
        (Prepared::Finops(w), Outcome::Finops(o)) => finops::ops::respond(state, w, o),
        _ => ApiResponse::empty(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

fn entity_path(state: &SharedState, write: &Prepared<'_>, request_path: &str) -> String {
    match write {
        Prepared::Dataverse(w) => dataverse::ops::entity_path(w, request_path),
        Prepared::Finops(w) => finops::ops::entity_path(state, w, request_path),
    }
}

fn commit_failed(state: &SharedState, e: super::store::TxFailure<ApiError>) -> ApiError {
    match state.kind {
        ServiceKind::Dataverse => dataverse::write::commit_failed(e),
        ServiceKind::Finops => finops::ops::committed(e),
    }
}

/// Most requests one batch may hold, as the service.
pub(crate) const MAX_REQUESTS: usize = 1000;

struct Part {
    content_id: Option<String>,
    request: ApiRequest,
}

enum Item {
    Single(Box<Part>),
    ChangeSet(Vec<Part>),
}

/// Makes one part of the batch a request below the service root.
fn to_part(
    state: &SharedState,
    client: Option<&String>,
    part: codec::Part<codec::Request>,
) -> Result<Part, ApiError> {
    let codec::Part {
        content_id,
        message,
    } = part;
    let method = Method::from_bytes(message.method.as_bytes()).map_err(|_| {
        bad(
            state,
            format!(
                "a $batch part has no valid method ('{}'): write GET, POST, PATCH or DELETE",
                message.method
            ),
        )
    })?;
    let root = match state.kind {
        ServiceKind::Dataverse => "/api/data/v9.2/",
        ServiceKind::Finops => "/data/",
    };
    let url = message.target.as_str();
    let relative = match url.find(root) {
        Some(i) => &url[i + root.len()..],
        None => url.trim_start_matches('/'),
    };
    let (path, query) = relative.split_once('?').unwrap_or((relative, ""));
    let mut headers = HeaderMap::new();
    for (name, value) in &message.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    Ok(Part {
        content_id,
        request: ApiRequest {
            method,
            path: crate::server::percent_decode(path),
            query: query.to_string(),
            headers,
            body: Bytes::from(message.body),
            client: client.cloned(),
        },
    })
}

fn parse_items(state: &SharedState, request: &ApiRequest) -> Result<Vec<Item>, ApiError> {
    let content_type = header_str(&request.headers, "content-type").unwrap_or_default();
    let batch =
        BatchRequest::parse(content_type, &request.body).map_err(|e| bad(state, e.to_string()))?;
    batch
        .items
        .into_iter()
        .map(|item| {
            Ok(match item {
                codec::Item::Single(part) => {
                    Item::Single(Box::new(to_part(state, request.client.as_ref(), part)?))
                }
                codec::Item::ChangeSet { parts, .. } => Item::ChangeSet(
                    parts
                        .into_iter()
                        .map(|p| to_part(state, request.client.as_ref(), p))
                        .collect::<Result<_, _>>()?,
                ),
            })
        })
        .collect()
}

/// Replaces `$N` references (URL start, `@odata.bind` values) with the
/// entity paths of the `Content-ID`s before it in its change set. OData
/// 4.0 (§11.7.3.1, which the batch page follows) lets a request reference
/// only requests of its own change set, so a reference to any other name
/// is refused.
fn substitute(
    state: &SharedState,
    part: &mut Part,
    ids: &HashMap<String, String>,
) -> Result<(), ApiError> {
    let unknown = |id: &str| {
        bad(
            state,
            format!(
                "Content-ID Reference: '${id}' does not exist in the batch context: reference an earlier request of the same change set"
            ),
        )
    };
    if let Some(rest) = part.request.path.strip_prefix('$') {
        let (id, tail) = rest.split_at(
            rest.find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(rest.len()),
        );
        // `$batch`, `$metadata` and the like are not references.
        if !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()) || ids.contains_key(id) {
            let path = ids.get(id).ok_or_else(|| unknown(id))?;
            part.request.path = format!("{path}{tail}");
        }
    }
    if part.request.body.is_empty() {
        return Ok(());
    }
    if let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(&part.request.body) {
        let mut changed = false;
        for (k, v) in body.iter_mut() {
            if let (true, Some(id)) = (
                k.ends_with("@odata.bind"),
                v.as_str().and_then(|r| r.strip_prefix('$')),
            ) {
                let path = ids.get(id).ok_or_else(|| unknown(id))?;
                *v = Value::String(format!("/{path}"));
                changed = true;
            }
        }
        if changed {
            part.request.body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        }
    }
    Ok(())
}

/// Finds the table, checks access and prepares one write of a change set.
async fn prepare_part<'s>(
    state: &'s SharedState,
    request: &ApiRequest,
) -> Result<Prepared<'s>, ApiError> {
    if state.kind == ServiceKind::Dataverse {
        let (table, key, rewritten) = dataverse::write_target(state, request)?;
        return Ok(match rewritten {
            None => prepare(state, table, key, request).await?,
            Some(rewritten) => {
                let mut write = dataverse::ops::prepare(state, table, key, &rewritten).await?;
                write.bare = true;
                Prepared::Dataverse(Box::new(write))
            }
        });
    }
    let (set, key) = parse_segment(&request.path, code(state))?;
    let table = state.metadata.table(&set).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            code(state),
            format!("Resource not found for the segment '{set}'."),
        )
    })?;
    state.security.authorize(table, request)?;
    prepare(state, table, key, request).await
}

async fn run_single(state: &SharedState, part: Part) -> ApiResponse {
    let result = match state.kind {
        ServiceKind::Dataverse => dataverse::route(state, part.request).await,
        ServiceKind::Finops => finops::route(state, &part.request).await,
    };
    match result {
        Ok(r) => r,
        Err(e) => e.to_response(),
    }
}

/// Runs a change set; `Ok` holds one response per request.
async fn run_change_set(
    state: &SharedState,
    mut parts: Vec<Part>,
) -> Result<Vec<(Option<String>, ApiResponse)>, (Option<String>, ApiError)> {
    let mut ids = HashMap::new();
    let mut prepared = Vec::new();
    for part in parts.iter_mut() {
        let content_id = part.content_id.clone();
        let fail = |e: ApiError| (content_id.clone(), e);
        substitute(state, part, &ids).map_err(fail)?;
        if part.request.method == Method::GET {
            return Err(fail(bad(
                state,
                "a change set may hold only POST, PATCH, PUT and DELETE requests: move GETs out of it",
            )));
        }
        let write = prepare_part(state, &part.request).await.map_err(fail)?;
        if let Some(id) = &part.content_id {
            ids.insert(id.clone(), entity_path(state, &write, &part.request.path));
        }
        prepared.push((part.content_id.clone(), write));
    }
    // One change set, one transaction: its webhook contexts share one
    // CorrelationId.
    let correlation = uuid::Uuid::new_v4().to_string();
    for (_, write) in prepared.iter_mut() {
        if let Prepared::Dataverse(write) = write {
            write.correlation = correlation.clone();
        }
    }
    let apply_all = |tx: &super::store::Tx<'_>| {
        prepared
            .iter()
            .map(|(_, w)| apply(state, tx, w))
            .collect::<Result<Vec<_>, _>>()
    };
    let synchronous = prepared.iter().any(|(_, write)| match write {
        Prepared::Dataverse(write) => dataverse::synchronous::expected(state, write),
        Prepared::Finops(_) => false,
    });
    let outcomes = if synchronous {
        // Every write dry-run first, then each one's synchronous steps in
        // the order of the parts: the first refusal fails the change set.
        let check = async |outcomes: Vec<Outcome>| {
            for ((_, write), outcome) in prepared.iter().zip(&outcomes) {
                if let (Prepared::Dataverse(write), Outcome::Dataverse(outcome)) = (write, outcome)
                {
                    let changes = dataverse::ops::changes(state, write, outcome);
                    dataverse::synchronous::run(state, &changes, &correlation).await?;
                }
            }
            Ok::<(), ApiError>(())
        };
        state.store.transact_checked(apply_all, check).await
    } else {
        state.store.transact_serial(apply_all).await
    }
    .map_err(|e| (None, commit_failed(state, e)))?;
    Ok(prepared
        .iter()
        .zip(outcomes)
        .map(|((id, w), o)| (id.clone(), respond(state, w, &o)))
        .collect())
}

/// Answers a `$batch` request.
pub(crate) async fn handle(state: &SharedState, request: ApiRequest) -> ApiResponse {
    if request.method != Method::POST {
        return ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            code(state),
            "$batch takes POST",
        )
        .to_response();
    }
    let items = match parse_items(state, &request) {
        Ok(items) => items,
        Err(e) => return e.to_response(),
    };
    let count: usize = items
        .iter()
        .map(|i| match i {
            Item::Single(_) => 1,
            Item::ChangeSet(p) => p.len(),
        })
        .sum();
    if count > MAX_REQUESTS {
        return bad(state, format!(
            "The number of requests in a batch ({count}) exceeds the limit of {MAX_REQUESTS}: split it into several batches."
        ))
        .to_response();
    }
    let continue_on_error = prefer(&request.headers, "odata.continue-on-error");
    let mut answer = BatchResponse::new(format!("batchresponse_{}", uuid::Uuid::new_v4()));
    let none = HashMap::new();
    for item in items {
        let failed = match item {
            Item::Single(mut part) => {
                let content_id = part.content_id.clone();
                let response = match substitute(state, &mut part, &none) {
                    Ok(()) => run_single(state, *part).await,
                    Err(e) => e.to_response(),
                };
                let failed = response.status.as_u16() >= 400;
                answer
                    .items
                    .push(codec::Item::Single(to_codec(content_id, &response)));
                failed
            }
            Item::ChangeSet(parts) => match run_change_set(state, parts).await {
                Ok(responses) => {
                    answer.items.push(codec::Item::ChangeSet {
                        boundary: format!("changesetresponse_{}", uuid::Uuid::new_v4()),
                        parts: responses
                            .into_iter()
                            .map(|(id, response)| to_codec(id, &response))
                            .collect(),
                    });
                    false
                }
                Err((id, error)) => {
                    answer
                        .items
                        .push(codec::Item::Single(to_codec(id, &error.to_response())));
                    true
                }
            },
        };
        if failed && !continue_on_error {
            break;
        }
    }
    let mut response = ApiResponse::empty(StatusCode::OK);
    response.raw = Some((answer.content_type(), Bytes::from(answer.to_bytes())));
    if continue_on_error {
        response = response.with_header(
            HeaderName::from_static("preference-applied"),
            "odata.continue-on-error",
        );
    }
    response
}

/// One response as a part of the batch response.
fn to_codec(content_id: Option<String>, response: &ApiResponse) -> codec::Part<codec::Response> {
    let reason = response.status.canonical_reason().unwrap_or("");
    let mut message = codec::Response::new(response.status.as_u16(), reason);
    message.headers.push(("OData-Version".into(), "4.0".into()));
    for (name, value) in &response.headers {
        message.headers.push((name.to_string(), value.clone()));
    }
    if let Some(body) = &response.body {
        message.headers.push((
            header::CONTENT_TYPE.to_string(),
            "application/json; odata.metadata=minimal".into(),
        ));
        message.body = body.to_string().into_bytes();
    }
    codec::Part {
        content_id,
        message,
    }
}
