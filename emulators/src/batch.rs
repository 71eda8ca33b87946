//! `POST $batch` for both services: `multipart/mixed` bodies of `application/http` requests,
//! with change sets that commit atomically, `Content-ID` references (`$1`
//! in a later URL or `@odata.bind`), and `Prefer: odata.continue-on-error`.
//!
//! Without `continue-on-error` the batch stops at the first failed request
//! or change set; a failed change set answers with the single error of the
//! request that failed and commits nothing.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use bytes::Bytes;
use futures_util::stream;
use serde_json::Value;

use super::http::{ApiError, ApiRequest, ApiResponse, header_str, prefer};
use super::rows::{KeySegment, parse_segment};
use super::{ServiceKind, SharedState, dataverse, finops};
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

/// A write of either service, prepared for a change set.
enum Prepared<'t> {
    Dataverse(dataverse::ops::PreparedWrite<'t>),
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
        ServiceKind::Dataverse => {
            Prepared::Dataverse(dataverse::ops::prepare(state, table, key, request).await?)
        }
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
    Single(Part),
    ChangeSet(Vec<Part>),
}

fn boundary(headers: &HeaderMap) -> Option<String> {
    let m: mime::Mime = header_str(headers, "content-type")?.parse().ok()?;
    (m.type_() == mime::MULTIPART).then_some(())?;
    m.get_param(mime::BOUNDARY).map(|b| b.as_str().to_string())
}

async fn read_multipart(
    state: &SharedState,
    body: Bytes,
    boundary: String,
) -> Result<Vec<(HeaderMap, Bytes)>, ApiError> {
    let stream = stream::once(async move { Ok::<Bytes, Infallible>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut parts = Vec::new();
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) => {
                let headers = field.headers().clone();
                let bytes = field.bytes().await.map_err(|e| {
                    bad(
                        state,
                        format!("the $batch body is not valid multipart/mixed: {e}"),
                    )
                })?;
                parts.push((headers, bytes));
            }
            Ok(None) => return Ok(parts),
            Err(e) => {
                return Err(bad(
                    state,
                    format!("the $batch body is not valid multipart/mixed: {e}"),
                ));
            }
        }
    }
}

/// Parses one `application/http` part into a request below the service root.
fn parse_http(state: &SharedState, headers: &HeaderMap, bytes: &[u8]) -> Result<Part, ApiError> {
    // A part without a body may end right after its last header: the blank
    // line before the next boundary belongs to the delimiter.
    let mut owned = bytes.to_vec();
    if !owned.windows(4).any(|w| w == b"\r\n\r\n") {
        owned.extend_from_slice(if owned.ends_with(b"\r\n") {
            b"\r\n"
        } else {
            b"\r\n\r\n"
        });
    }
    let bytes = owned.as_slice();
    let mut raw_headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut raw_headers);
    let head = match parsed.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => {
            return Err(bad(
                state,
                "a $batch part is not an HTTP request: write 'METHOD URL HTTP/1.1', headers, a blank line, then the body",
            ));
        }
    };
    let method = parsed
        .method
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
        .ok_or_else(|| bad(state, "a $batch part has no valid method"))?;
    let url = parsed.path.unwrap_or_default();
    let root = match state.kind {
        ServiceKind::Dataverse => "/api/data/v9.2/",
        ServiceKind::Finops => "/data/",
    };
    let relative = match url.find(root) {
        Some(i) => &url[i + root.len()..],
        None => url.trim_start_matches('/'),
    };
    let (path, query) = relative.split_once('?').unwrap_or((relative, ""));
    let mut request_headers = HeaderMap::new();
    for h in parsed.headers.iter() {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(h.value),
        ) {
            request_headers.append(name, value);
        }
    }
    let body = trim_end(&bytes[head..]);
    Ok(Part {
        content_id: header_str(headers, "content-id").map(str::to_string),
        request: ApiRequest {
            method,
            path: crate::server::percent_decode(path),
            query: query.to_string(),
            headers: request_headers,
            body: Bytes::copy_from_slice(body),
        },
    })
}

fn trim_end(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &bytes[..end]
}

async fn parse_items(state: &SharedState, request: &ApiRequest) -> Result<Vec<Item>, ApiError> {
    let outer = boundary(&request.headers).ok_or_else(|| {
        bad(
            state,
            "a $batch request needs Content-Type: multipart/mixed; boundary=...",
        )
    })?;
    let mut items = Vec::new();
    for (headers, bytes) in read_multipart(state, request.body.clone(), outer).await? {
        match boundary(&headers) {
            Some(inner) => {
                let mut parts = Vec::new();
                for (h, b) in read_multipart(state, bytes, inner).await? {
                    parts.push(parse_http(state, &h, &b)?);
                }
                items.push(Item::ChangeSet(parts));
            }
            None => items.push(Item::Single(parse_http(state, &headers, &bytes)?)),
        }
    }
    Ok(items)
}

/// Replaces `$N` references (URL start, `@odata.bind` values) with the
/// entity paths of earlier `Content-ID`s.
fn substitute(part: &mut Part, ids: &HashMap<String, String>) {
    if let Some(rest) = part.request.path.strip_prefix('$') {
        let (id, tail) = rest.split_at(
            rest.find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(rest.len()),
        );
        if let Some(path) = ids.get(id) {
            part.request.path = format!("{path}{tail}");
        }
    }
    if ids.is_empty() || part.request.body.is_empty() {
        return;
    }
    if let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(&part.request.body) {
        let mut changed = false;
        for (k, v) in body.iter_mut() {
            if let (true, Some(reference)) = (k.ends_with("@odata.bind"), v.as_str())
                && let Some(path) = reference.strip_prefix('$').and_then(|id| ids.get(id))
            {
                *v = Value::String(format!("/{path}"));
                changed = true;
            }
        }
        if changed {
            part.request.body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        }
    }
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
    ids: &mut HashMap<String, String>,
) -> Result<Vec<(Option<String>, ApiResponse)>, (Option<String>, ApiError)> {
    let mut prepared = Vec::new();
    for part in parts.iter_mut() {
        substitute(part, ids);
        let fail = |e: ApiError| (part.content_id.clone(), e);
        let (set, key) = parse_segment(&part.request.path, code(state)).map_err(fail)?;
        let table = state.metadata.table(&set).ok_or_else(|| {
            fail(ApiError::new(
                StatusCode::NOT_FOUND,
                code(state),
                format!("Resource not found for the segment '{set}'."),
            ))
        })?;
        if part.request.method == Method::GET {
            return Err(fail(bad(
                state,
                "a change set may hold only POST, PATCH and DELETE requests: move GETs out of it",
            )));
        }
        let write = prepare(state, table, key, &part.request)
            .await
            .map_err(fail)?;
        if let Some(id) = &part.content_id {
            ids.insert(id.clone(), entity_path(state, &write, &part.request.path));
        }
        prepared.push((part.content_id.clone(), write));
    }
    let outcomes = state
        .store
        .transact(|tx| {
            prepared
                .iter()
                .map(|(_, w)| apply(state, tx, w))
                .collect::<Result<Vec<_>, _>>()
        })
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
    let items = match parse_items(state, &request).await {
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
    let batch_boundary = format!("batchresponse_{}", uuid::Uuid::new_v4());
    let mut out = String::new();
    let mut ids = HashMap::new();
    for item in items {
        let failed = match item {
            Item::Single(mut part) => {
                substitute(&mut part, &ids);
                let content_id = part.content_id.clone();
                let response = run_single(state, part).await;
                let failed = response.status.as_u16() >= 400;
                write_part(&mut out, &batch_boundary, content_id.as_deref(), &response);
                failed
            }
            Item::ChangeSet(parts) => {
                match run_change_set(state, parts, &mut ids).await {
                    Ok(responses) => {
                        let cs = format!("changesetresponse_{}", uuid::Uuid::new_v4());
                        out.push_str(&format!("--{batch_boundary}\r\nContent-Type: multipart/mixed; boundary={cs}\r\n\r\n"));
                        for (id, response) in &responses {
                            write_part(&mut out, &cs, id.as_deref(), response);
                        }
                        out.push_str(&format!("--{cs}--\r\n"));
                        false
                    }
                    Err((id, error)) => {
                        write_part(
                            &mut out,
                            &batch_boundary,
                            id.as_deref(),
                            &error.to_response(),
                        );
                        true
                    }
                }
            }
        };
        if failed && !continue_on_error {
            break;
        }
    }
    out.push_str(&format!("--{batch_boundary}--\r\n"));
    let mut response = ApiResponse::empty(StatusCode::OK);
    response.raw = Some((
        format!("multipart/mixed; boundary={batch_boundary}"),
        Bytes::from(out),
    ));
    if continue_on_error {
        response = response.with_header(
            HeaderName::from_static("preference-applied"),
            "odata.continue-on-error",
        );
    }
    response
}

fn write_part(out: &mut String, boundary: &str, content_id: Option<&str>, response: &ApiResponse) {
    out.push_str(&format!(
        "--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    ));
    if let Some(id) = content_id {
        out.push_str(&format!("Content-ID: {id}\r\n"));
    }
    let reason = response.status.canonical_reason().unwrap_or("");
    out.push_str(&format!(
        "\r\nHTTP/1.1 {} {reason}\r\n",
        response.status.as_u16()
    ));
    out.push_str("OData-Version: 4.0\r\n");
    for (name, value) in &response.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    match &response.body {
        Some(body) => {
            out.push_str(&format!(
                "{}: application/json; odata.metadata=minimal\r\n\r\n",
                header::CONTENT_TYPE
            ));
            out.push_str(&body.to_string());
            out.push_str("\r\n");
        }
        None => out.push_str("\r\n"),
    }
}
