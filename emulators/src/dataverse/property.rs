//! Dataverse requests below one row: a single property, a single-valued
//! navigation property (a lookup) and a collection-valued one (a
//! one-to-many relationship from the schema's `[[relationships]]`), and
//! their `$ref` forms.
//!
//! Reads answer here ([`read`]). Writes become an ordinary update of one
//! row ([`as_write`]: `PATCH` with `If-Match: *`, so a missing row is a 404
//! and never created), so they take the same pre-commit hook, versions and
//! `$batch` change sets as any other write; [`ops`](super::ops) answers
//! them with a bare `204`, as the pages show.
//!
//! Documented at:
//! - "Retrieve a table row using the Web API" → "Retrieve a single property
//!   value" (`GET accounts(id)/name`, `…/name/$value`):
//!   <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/retrieve-entity-using-web-api#retrieve-a-single-property-value>
//! - "Update and delete table rows using the Web API" → "Update a single
//!   property value" (`PUT …/name` with `{"value": …}`) and "Delete a
//!   single property value" (`DELETE …/description`):
//!   <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/update-delete-entities-using-web-api#update-a-single-property-value>
//! - "Associate and disassociate table rows using the Web API" (`POST
//!   …/collection/$ref`, `PUT …/single/$ref`, `DELETE …/single/$ref`,
//!   `DELETE …/collection(id)/$ref` or `…/collection/$ref?$id=…`):
//!   <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/associate-disassociate-entities-using-web-api>

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::super::SharedState;
use super::super::http::parse_query;
use super::super::http::{ApiError, ApiRequest, ApiResponse};
use super::super::rows::check_names;
use super::super::rows::{KeySegment, parse_segment, stored_name};
use super::super::store::StoredRow;
use super::expand::{self, Expander, Shape};
use super::read::{context, etag, find, page_size, render, render_expanded, respond_page, storage};
use super::{BAD_REQUEST, SYSTEM_FIELDS, bad_request, not_found, unknown_property};
use dualwrite::schema::{FieldType, RelationshipDef, TableDef};

/// What the path below a row names.
enum Target<'m> {
    /// A column: `name`, with `raw` for `name/$value`.
    Property { name: String, raw: bool },
    /// A lookup's navigation property: `primarycontactid`, with `reference`
    /// for `primarycontactid/$ref`.
    Single { lookup: String, reference: bool },
    /// A relationship's collection: `contact_customer_accounts`, with the
    /// member named by `…(id)` and `reference` for `…/$ref`.
    Collection {
        relationship: &'m RelationshipDef,
        member: Option<KeySegment>,
        reference: bool,
    },
}

fn resolve<'m>(
    state: &'m SharedState,
    table: &TableDef,
    rest: &str,
) -> Result<Target<'m>, ApiError> {
    let (first, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let (name, member) = parse_segment(first, BAD_REQUEST)?;
    if let Some(relationship) = state.metadata.relationship(&table.name, &name) {
        let reference = match tail {
            "" => false,
            "$ref" => true,
            other => return Err(segment_not_found(other)),
        };
        return Ok(Target::Collection {
            relationship,
            member,
            reference,
        });
    }
    if member.is_some() {
        return Err(segment_not_found(first));
    }
    match table.field(&name) {
        Some(f) if f.field_type == FieldType::Lookup => {
            let reference = match tail {
                "" => false,
                "$ref" => true,
                other => return Err(segment_not_found(other)),
            };
            Ok(Target::Single {
                lookup: name,
                reference,
            })
        }
        _ if table.readable(&name, SYSTEM_FIELDS) => {
            let raw = match tail {
                "" => false,
                "$value" => true,
                other => return Err(segment_not_found(other)),
            };
            Ok(Target::Property { name, raw })
        }
        _ => Err(unknown_property(table, &name)),
    }
}

fn segment_not_found(segment: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        BAD_REQUEST,
        format!("Resource not found for the segment '{segment}'."),
    )
}

fn root(state: &SharedState) -> String {
    format!("{}/api/data/v9.2", state.base_url)
}

fn row_id(table: &TableDef, row: &StoredRow) -> String {
    table
        .primary_key
        .first()
        .and_then(|f| row.row.get(f))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn existing(
    state: &SharedState,
    table: &TableDef,
    key: &KeySegment,
) -> Result<StoredRow, ApiError> {
    find(state, table, key)?.ok_or_else(|| not_found(table, key))
}

/// Answers a `GET` below a row.
pub(super) fn read(
    state: &SharedState,
    table: &TableDef,
    key: &KeySegment,
    rest: &str,
    request: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    let target = resolve(state, table, rest)?;
    let row = existing(state, table, key)?;
    let id = row_id(table, &row);
    match target {
        Target::Property { name, raw } => {
            let value = row.row.get(&name).cloned().unwrap_or(Value::Null);
            if value.is_null() {
                // OData: a null property answers 204 No Content.
                return Ok(ApiResponse::empty(StatusCode::NO_CONTENT));
            }
            if raw {
                let text = match &value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                return Ok(ApiResponse::text(StatusCode::OK, text));
            }
            let context = format!("{}/$metadata#{}({id})/{name}", root(state), table.name);
            Ok(ApiResponse::json(
                StatusCode::OK,
                json!({"@odata.context": context, "value": value}),
            ))
        }
        Target::Single { lookup, reference } => {
            let target_set = table
                .field(&lookup)
                .and_then(|f| f.target.clone())
                .unwrap_or_default();
            let pointed = row
                .row
                .get(&stored_name(table, &lookup))
                .and_then(Value::as_str)
                .map(str::to_string);
            let Some(pointed) = pointed else {
                return Ok(ApiResponse::empty(StatusCode::NO_CONTENT));
            };
            let Some(target) = state.metadata.table(&target_set) else {
                return Ok(ApiResponse::empty(StatusCode::NO_CONTENT));
            };
            if reference {
                return Ok(ApiResponse::json(
                    StatusCode::OK,
                    json!({
                        "@odata.context": format!("{}/$metadata#$ref", root(state)),
                        "@odata.id": format!("{}/{}({pointed})", root(state), target.name),
                    }),
                ));
            }
            let key = KeySegment::Single(Value::String(pointed));
            let Some(other) = find(state, target, &key)? else {
                return Ok(ApiResponse::empty(StatusCode::NO_CONTENT));
            };
            // "Retrieve navigation property values": `$select` (and
            // `$expand`) apply to the row the lookup points at.
            let options = parse_query(&request.query, BAD_REQUEST)?;
            check_names(target, &options, SYSTEM_FIELDS, |n| {
                unknown_property(target, n)
            })?;
            let expand = expand::parse(&state.metadata, target, options.expand.as_deref())?;
            let expander = Expander::new(state, &expand, Shape::Entity);
            let select = options.select.as_ref();
            let mut body = Map::new();
            body.insert(
                "@odata.context".into(),
                json!(context(state, target, select, &expand, "/$entity")),
            );
            body.extend(render_expanded(&expander, target, &other, select)?);
            Ok(ApiResponse::json(StatusCode::OK, Value::Object(body))
                .with_header(header::ETAG, etag(&other)))
        }
        Target::Collection {
            relationship,
            member,
            reference,
        } => {
            let many = many_table(state, relationship)?;
            let column = stored_name(many, &relationship.lookup);
            let rows = state.store.rows(&many.name).map_err(storage)?;
            if !reference && member.is_none() {
                // The relationship's filtered collection, which takes the
                // query options and paging of any collection.
                let options = parse_query(&request.query, BAD_REQUEST)?;
                check_names(many, &options, SYSTEM_FIELDS, |n| unknown_property(many, n))?;
                let members: Vec<StoredRow> = rows
                    .into_iter()
                    .filter(|r| r.row.get(&column).and_then(Value::as_str) == Some(id.as_str()))
                    .collect();
                let path = format!("{}({id})/{}", table.name, relationship.name);
                let page = super::page::in_memory(members, &options, page_size(request))?;
                return respond_page(state, many, page, &options, request, &path);
            }
            let members = rows.iter().filter(|r| {
                r.row.get(&column).and_then(Value::as_str) == Some(id.as_str())
                    && member
                        .as_ref()
                        .is_none_or(|m| matches!(m, KeySegment::Single(Value::String(s)) if *s == row_id(many, r)))
            });
            let value: Vec<Value> = if reference {
                members
                    .map(|r| json!({"@odata.id": format!("{}/{}({})", root(state), many.name, row_id(many, r))}))
                    .collect()
            } else {
                members
                    .map(|r| Value::Object(render(many, r, None)))
                    .collect()
            };
            let context = if reference {
                format!("{}/$metadata#Collection($ref)", root(state))
            } else {
                format!("{}/$metadata#{}", root(state), many.name)
            };
            Ok(ApiResponse::json(
                StatusCode::OK,
                json!({"@odata.context": context, "value": value}),
            ))
        }
    }
}

fn many_table<'m>(
    state: &'m SharedState,
    relationship: &RelationshipDef,
) -> Result<&'m TableDef, ApiError> {
    state
        .metadata
        .table(&relationship.referencing)
        .filter(|t| t.field(&relationship.lookup).is_some())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                BAD_REQUEST,
                format!(
                    "relationship {} names {}.{}, which the metadata does not declare: fix the metadata file",
                    relationship.name, relationship.referencing, relationship.lookup
                ),
            )
        })
}

/// A write below a row, as the update of one row it amounts to.
pub(crate) struct Rewritten<'m> {
    /// The table of the row written.
    pub table: &'m TableDef,
    /// Its key.
    pub key: KeySegment,
    /// A `PATCH` of that row with `If-Match: *`.
    pub request: ApiRequest,
}

/// The `@odata.id` of a `$ref` body, or of the `$id` query option.
fn reference_of(request: &ApiRequest) -> Result<String, ApiError> {
    if let Some((_, id)) =
        form_urlencoded::parse(request.query.as_bytes()).find(|(k, _)| k == "$id")
    {
        return Ok(id.into_owned());
    }
    let body: Value = serde_json::from_slice(&request.body)
        .map_err(|e| bad_request(format!("the $ref body is not valid JSON: {e}")))?;
    body.get("@odata.id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            bad_request("a $ref body must be {\"@odata.id\": \"[Organization URI]/api/data/v9.2/<entityset>(<guid>)\"}")
        })
}

/// The entity set and key an `@odata.id` names.
fn parse_reference(state: &SharedState, reference: &str) -> Result<(String, KeySegment), ApiError> {
    let root = format!("{}/", root(state));
    let path = reference
        .strip_prefix(&root)
        .or_else(|| reference.split_once("/api/data/v9.2/").map(|(_, p)| p))
        .unwrap_or(reference)
        .trim_start_matches('/');
    match parse_segment(path, BAD_REQUEST)? {
        (set, Some(key)) => Ok((set, key)),
        _ => Err(bad_request(format!(
            "'{reference}' does not name a row: write [Organization URI]/api/data/v9.2/<entityset>(<guid>)"
        ))),
    }
}

fn patch(path: String, body: Value, client: Option<String>) -> ApiRequest {
    let mut headers = HeaderMap::new();
    headers.insert(header::IF_MATCH, HeaderValue::from_static("*"));
    ApiRequest {
        method: Method::PATCH,
        path,
        query: String::new(),
        headers,
        body: Bytes::from(body.to_string()),
        client,
    }
}

fn key_path(table: &TableDef, key: &KeySegment) -> String {
    match key {
        KeySegment::Single(v) => format!("{}({})", table.name, v.as_str().unwrap_or_default()),
        KeySegment::Named(parts) => {
            let parts: Vec<String> = parts
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => format!("{k}='{}'", s.replace('\'', "''")),
                    other => format!("{k}={other}"),
                })
                .collect();
            format!("{}({})", table.name, parts.join(","))
        }
    }
}

/// Turns a `PUT`, `POST` or `DELETE` below a row into the update it
/// amounts to. `rest` is the path after the row's segment.
pub(crate) fn as_write<'m>(
    state: &'m SharedState,
    table: &'m TableDef,
    key: KeySegment,
    rest: &str,
    request: &ApiRequest,
) -> Result<Rewritten<'m>, ApiError> {
    let target = resolve(state, table, rest)?;
    let method = &request.method;
    let client = request.client.clone();
    let not_allowed = || {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            BAD_REQUEST,
            format!("{method} is not supported on '{}'", request.path),
        )
    };
    let own = |body: Value| Rewritten {
        table,
        request: patch(key_path(table, &key), body, client.clone()),
        key: key.clone(),
    };
    match target {
        Target::Property { name, raw: false } => {
            if SYSTEM_FIELDS.contains(&name.as_str()) || table.primary_key.contains(&name) {
                return Err(bad_request(format!(
                    "The property '{name}' is read-only and cannot be set."
                )));
            }
            match *method {
                Method::PUT => {
                    let body: Value = serde_json::from_slice(&request.body).map_err(|e| {
                        bad_request(format!("the request body is not valid JSON: {e}"))
                    })?;
                    let value = body.get("value").cloned().ok_or_else(|| {
                        bad_request(format!("to set {name}, send {{\"value\": <new value>}}"))
                    })?;
                    Ok(own(json!({ name: value })))
                }
                Method::DELETE => Ok(own(json!({ name: null }))),
                _ => Err(not_allowed()),
            }
        }
        Target::Property { raw: true, .. } => Err(not_allowed()),
        Target::Single {
            lookup,
            reference: true,
        } => {
            let bind = format!("{lookup}@odata.bind");
            match *method {
                Method::PUT => {
                    let reference = reference_of(request)?;
                    let (set, key) = parse_reference(state, &reference)?;
                    let target = state
                        .metadata
                        .table(&set)
                        .ok_or_else(|| segment_not_found(&set))?;
                    Ok(own(json!({ bind: format!("/{}", key_path(target, &key)) })))
                }
                Method::DELETE => Ok(own(json!({ bind: null }))),
                _ => Err(not_allowed()),
            }
        }
        Target::Single { .. } => Err(not_allowed()),
        Target::Collection {
            relationship,
            member,
            reference: true,
        } => {
            let many = many_table(state, relationship)?;
            let bind = format!("{}@odata.bind", relationship.lookup);
            // A row named by its GUID may have been created earlier in the
            // same change set: take the id from the URL then.
            let one_id = match &key {
                KeySegment::Single(Value::String(id)) => id.clone(),
                _ => row_id(table, &existing(state, table, &key)?),
            };
            let member_key = match (method, member) {
                (&Method::POST, None) | (&Method::DELETE, None) => {
                    let reference = reference_of(request)?;
                    let (set, key) = parse_reference(state, &reference)?;
                    if set != many.name {
                        return Err(bad_request(format!(
                            "{} holds {} rows, not {set}",
                            relationship.name, many.name
                        )));
                    }
                    key
                }
                (&Method::DELETE, Some(member)) => member,
                _ => return Err(not_allowed()),
            };
            let body = if *method == Method::POST {
                json!({ bind: format!("/{}({one_id})", table.name) })
            } else {
                // Disassociate only a member of this row's collection.
                let column = stored_name(many, &relationship.lookup);
                let member_row = find(state, many, &member_key)?;
                if member_row.is_some_and(|r| {
                    r.row.get(&column).and_then(Value::as_str) != Some(one_id.as_str())
                }) {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        super::NOT_FOUND,
                        format!(
                            "{} With {} is not associated with {} With Id = {one_id} through {}",
                            many.entity_name(),
                            super::describe_key(&member_key),
                            table.entity_name(),
                            relationship.name
                        ),
                    ));
                }
                json!({ bind: null })
            };
            Ok(Rewritten {
                table: many,
                request: patch(key_path(many, &member_key), body, client),
                key: member_key,
            })
        }
        Target::Collection { .. } => Err(not_allowed()),
    }
}
