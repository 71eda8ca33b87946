//! Finance and Operations writes in three steps, so a `$batch` change set
//! can run many in one sled transaction: [`prepare`] (parse, check, call
//! the pre-commit hook), [`apply`] (inside the transaction), [`respond`]
//! (after the commit: the response, and the data event to subscribers).

use axum::http::{HeaderName, Method, StatusCode, header};
use serde_json::{Map, Value, json};
use sled::transaction::ConflictableTransactionError;

use super::super::SharedState;
use super::super::events::context;
use super::super::http::{ApiError, ApiRequest, ApiResponse, prefer};
use super::super::rows::{KeySegment, primary_key, with_first};
use super::super::store::{StoredRow, Tx, TxFailure, WriteConflict};
use super::{bad, error, full_key, normalize_company, not_found, render, storage};
use dualwrite::schema::{FieldType, TableDef};

type Abort = ConflictableTransactionError<ApiError>;

/// What a prepared write does.
#[derive(Debug, Clone)]
pub(crate) enum WriteKind {
    /// POST: the complete new row.
    Create { pk: String, row: Map<String, Value> },
    /// PATCH by full key: the changed fields.
    Update {
        pk: String,
        key: KeySegment,
        body: Map<String, Value>,
    },
    /// DELETE by full key.
    Delete { pk: String, key: KeySegment },
}

/// A write ready to apply.
#[derive(Debug, Clone)]
pub(crate) struct PreparedWrite<'t> {
    pub table: &'t TableDef,
    pub kind: WriteKind,
    /// `Prefer: return=minimal` or `return=representation`, if sent.
    pub prefer_return: Option<Return>,
}

/// The `return` preference (OData 4.0 Part 1 §8.2.8.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Return {
    Minimal,
    Representation,
}

impl Return {
    fn of(request: &ApiRequest) -> Option<Self> {
        if prefer(&request.headers, "return=minimal") {
            Some(Return::Minimal)
        } else if prefer(&request.headers, "return=representation") {
            Some(Return::Representation)
        } else {
            None
        }
    }

    fn applied(self) -> (HeaderName, &'static str) {
        let value = match self {
            Return::Minimal => "return=minimal",
            Return::Representation => "return=representation",
        };
        (HeaderName::from_static("preference-applied"), value)
    }
}

/// The result of an applied write.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    row: Option<StoredRow>,
    /// The row before an update or a delete (the data event's `PreImage`).
    before: Option<Map<String, Value>>,
}

fn parse_body(request: &ApiRequest) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(&request.body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad("the request body must be a JSON object")),
        Err(e) => Err(bad(format!("the request body is not valid JSON: {e}"))),
    }
}

/// Checks and copies body fields into the row.
fn apply_body(
    table: &TableDef,
    row: &mut Map<String, Value>,
    body: &Map<String, Value>,
) -> Result<(), ApiError> {
    for (name, value) in body {
        if name.starts_with('@') || name.contains("@odata.") {
            continue;
        }
        let field = table.field(name).ok_or_else(|| {
            bad(format!(
                "The property '{name}' does not exist on type 'Microsoft.Dynamics.DataEntities.{}'.",
                table.name
            ))
        })?;
        let value = match (field.field_type, value) {
            // Accept the qualified form too: Microsoft.Dynamics.DataEntities.NoYes'Yes'.
            (FieldType::Enum, Value::String(s)) => match s.find('\'') {
                Some(i) if s.ends_with('\'') && i + 1 < s.len() => {
                    Value::String(s[i + 1..s.len() - 1].to_string())
                }
                _ => value.clone(),
            },
            _ => value.clone(),
        };
        table.check_value(field, &value).map_err(bad)?;
        row.insert(name.clone(), normalize_company(table, name, value));
    }
    Ok(())
}

pub(crate) fn key_of(table: &TableDef, row: &Map<String, Value>) -> Map<String, Value> {
    table
        .primary_key
        .iter()
        .filter_map(|k| row.get(k).map(|v| (k.clone(), v.clone())))
        .collect()
}

/// Finops tables have no alternate keys, so `put` cannot meet a duplicate;
/// should metadata ever add one, it is reported as a bad request.
struct DuplicateAsBadRequest(ApiError);

impl From<WriteConflict> for DuplicateAsBadRequest {
    fn from(c: WriteConflict) -> Self {
        let WriteConflict::DuplicateKey { key } = c;
        DuplicateAsBadRequest(bad(format!(
            "another row already has the values of key {key}"
        )))
    }
}

fn map_duplicate(e: ConflictableTransactionError<DuplicateAsBadRequest>) -> Abort {
    match e {
        ConflictableTransactionError::Abort(DuplicateAsBadRequest(e)) => {
            ConflictableTransactionError::Abort(e)
        }
        ConflictableTransactionError::Conflict => ConflictableTransactionError::Conflict,
        ConflictableTransactionError::Storage(s) => ConflictableTransactionError::Storage(s),
    }
}

fn location(state: &SharedState, table: &TableDef, row: &Map<String, Value>) -> String {
    let parts: Vec<String> = table
        .primary_key
        .iter()
        .map(|k| match row.get(k) {
            Some(Value::String(s)) => format!("{k}='{}'", s.replace('\'', "''")),
            Some(v) => format!("{k}={v}"),
            None => format!("{k}=null"),
        })
        .collect();
    format!(
        "{}/data/{}({})",
        state.base_url,
        table.name,
        parts.join(",")
    )
}

/// Step 1: parse and check the request, call the pre-commit hook.
pub(crate) async fn prepare<'t>(
    state: &SharedState,
    table: &'t TableDef,
    key: Option<KeySegment>,
    request: &ApiRequest,
) -> Result<PreparedWrite<'t>, ApiError> {
    let (kind, change) = match (&request.method, key) {
        (&Method::POST, None) => {
            let body = parse_body(request)?;
            let mut row = Map::new();
            apply_body(table, &mut row, &body)?;
            if let Some(company) = &table.company_field {
                row.entry(company.clone())
                    .or_insert_with(|| Value::String(state.default_company.clone()));
            }
            let pk = primary_key(table, &row).ok_or_else(|| {
                bad(format!(
                    "a {} row needs every key field: {}",
                    table.name,
                    table.primary_key.join(", ")
                ))
            })?;
            let change = json!({"table": table.name, "operation": "create", "row": row});
            (WriteKind::Create { pk, row }, change)
        }
        (&Method::PATCH, Some(key)) => {
            let (pk, key_row) = full_key(table, &key)?;
            let body = parse_body(request)?;
            for k in &table.primary_key {
                let sent = body.get(k).map(|v| normalize_company(table, k, v.clone()));
                let current = key_row
                    .get(k)
                    .map(|v| normalize_company(table, k, v.clone()));
                if sent.is_some() && sent != current {
                    return Err(bad(format!(
                        "key field '{k}' cannot be changed by an update: delete the row and create it again"
                    )));
                }
            }
            let change =
                json!({"table": table.name, "operation": "update", "key": key_row, "row": body});
            (WriteKind::Update { pk, key, body }, change)
        }
        (&Method::DELETE, Some(key)) => {
            let (pk, key_row) = full_key(table, &key)?;
            let change = json!({"table": table.name, "operation": "delete", "key": key_row});
            (WriteKind::Delete { pk, key }, change)
        }
        (method, _) => {
            return Err(error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} is not supported on '{}'", request.path),
            ));
        }
    };
    state
        .hooks
        .check(&table.name, &change, "BadRequest", &[])
        .await?;
    Ok(PreparedWrite {
        table,
        kind,
        prefer_return: Return::of(request),
    })
}

/// Step 2: checks and writes inside a transaction.
pub(crate) fn apply(tx: &Tx<'_>, write: &PreparedWrite<'_>) -> Result<Outcome, Abort> {
    let table = write.table;
    let no_indexes = Vec::new();
    match &write.kind {
        WriteKind::Create { pk, row } => {
            if tx.get::<ApiError>(&table.name, pk)?.is_some() {
                return Err(ConflictableTransactionError::Abort(bad(format!(
                    "Write failed for table row of type '{}': a row with key {} already exists.",
                    table.name,
                    Value::Object(key_of(table, row))
                ))));
            }
            let stored = tx
                .put::<DuplicateAsBadRequest>(
                    &table.name,
                    pk,
                    None,
                    row.clone(),
                    &no_indexes,
                    |_, _| {},
                )
                .map_err(map_duplicate)?;
            Ok(Outcome {
                row: Some(stored),
                before: None,
            })
        }
        WriteKind::Update { pk, key, body, .. } => {
            let Some(old) = tx.get::<ApiError>(&table.name, pk)? else {
                return Err(ConflictableTransactionError::Abort(not_found(table, key)));
            };
            let mut row = old.row.clone();
            apply_body(table, &mut row, body).map_err(ConflictableTransactionError::Abort)?;
            let stored = tx
                .put::<DuplicateAsBadRequest>(
                    &table.name,
                    pk,
                    Some((&old, &no_indexes)),
                    row,
                    &no_indexes,
                    |_, _| {},
                )
                .map_err(map_duplicate)?;
            Ok(Outcome {
                row: Some(stored),
                before: Some(old.row),
            })
        }
        WriteKind::Delete { pk, key, .. } => {
            let Some(old) = tx.get::<ApiError>(&table.name, pk)? else {
                return Err(ConflictableTransactionError::Abort(not_found(table, key)));
            };
            tx.delete(&table.name, pk, &old, &no_indexes, key_of(table, &old.row))?;
            Ok(Outcome {
                row: None,
                before: Some(old.row),
            })
        }
    }
}

/// Step 3, after the commit: publish the data event and answer.
pub(crate) fn respond(
    state: &SharedState,
    write: &PreparedWrite<'_>,
    outcome: &Outcome,
) -> ApiResponse {
    let table = write.table;
    match (&write.kind, &outcome.row) {
        (WriteKind::Create { .. }, Some(stored)) => {
            state.events.publish(&table.name, || {
                context(&table.name, "Create", &stored.row, None)
            });
            let url = location(state, table, &stored.row);
            // OData 4.0 Part 1 §11.4.2: `201 Created` with the entity and
            // its `Location`; with `return=minimal`, `204` with
            // `OData-EntityId` (§8.3.3) and `Preference-Applied` (§8.3.4).
            if write.prefer_return == Some(Return::Minimal) {
                let (name, value) = Return::Minimal.applied();
                return ApiResponse::empty(StatusCode::NO_CONTENT)
                    .with_header(header::LOCATION, url.clone())
                    .with_header(HeaderName::from_static("odata-entityid"), url)
                    .with_header(name, value);
            }
            let body = with_first(
                "@odata.context",
                json!(super::context(state, table, None, "/$entity")),
                render(stored, None),
            );
            let mut response = ApiResponse::json(StatusCode::CREATED, Value::Object(body))
                .with_header(header::LOCATION, url)
                .with_header(header::ETAG, super::etag(stored));
            if let Some(applied) = write.prefer_return {
                let (name, value) = applied.applied();
                response = response.with_header(name, value);
            }
            response
        }
        (WriteKind::Update { .. }, Some(stored)) => {
            state.events.publish(&table.name, || {
                context(&table.name, "Update", &stored.row, outcome.before.as_ref())
            });
            // OData 4.0 Part 1 §11.4.3: `204 No Content`, or `200` with
            // the entity for `return=representation`.
            if write.prefer_return == Some(Return::Representation) {
                let body = with_first(
                    "@odata.context",
                    json!(super::context(state, table, None, "/$entity")),
                    render(stored, None),
                );
                let (name, value) = Return::Representation.applied();
                return ApiResponse::json(StatusCode::OK, Value::Object(body))
                    .with_header(header::ETAG, super::etag(stored))
                    .with_header(name, value);
            }
            ApiResponse::empty(StatusCode::NO_CONTENT)
                .with_header(header::ETAG, super::etag(stored))
        }
        (WriteKind::Delete { .. }, _) => {
            if let Some(before) = &outcome.before {
                state.events.publish(&table.name, || {
                    context(&table.name, "Delete", before, Some(before))
                });
            }
            ApiResponse::empty(StatusCode::NO_CONTENT)
        }
        (_, None) => ApiResponse::empty(StatusCode::NO_CONTENT),
    }
}

/// The URL path of the row a write targets, for `Content-ID` references.
pub(crate) fn entity_path(
    state: &SharedState,
    write: &PreparedWrite<'_>,
    request_path: &str,
) -> String {
    match &write.kind {
        WriteKind::Create { row, .. } => {
            let full = location(state, write.table, row);
            full.rsplit_once("/data/")
                .map_or(full.clone(), |(_, p)| p.to_string())
        }
        _ => request_path.to_string(),
    }
}

pub(crate) fn committed(e: TxFailure<ApiError>) -> ApiError {
    match e {
        TxFailure::Abort(e) => e,
        TxFailure::Store(e) => storage(e),
    }
}

/// Prepares, commits and answers one write.
pub(crate) async fn execute(
    state: &SharedState,
    table: &TableDef,
    key: Option<KeySegment>,
    request: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    let write = prepare(state, table, key, request).await?;
    let outcome = state
        .store
        .transact_serial(|tx| apply(tx, &write))
        .await
        .map_err(committed)?;
    Ok(respond(state, &write, &outcome))
}
