//! Dataverse write operations in three steps, so a `$batch` change set can
//! run many of them in one sled transaction:
//! 1. [`prepare`]: parse the body, read the conditions, pick new ids, call
//!    the pre-commit hook (async, outside the transaction);
//! 2. [`apply`]: the checks and the write, inside a transaction (sled may
//!    run it more than once, so it only reads the prepared request);
//! 3. [`respond`]: the response of a committed write.

use axum::http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::super::SharedState;
use super::super::http::{ApiError, ApiRequest, ApiResponse, header_str, prefer};
use super::super::rows::{KeySegment, index_entries, key_field_name, stored_name};
use super::super::store::{StoredRow, Tx};
use super::read::etag;
use super::write::{
    Abort, abort, apply_body, commit_failed, guid_pk, now, parse_body, resolve_key, set_version,
    tx_pk, written,
};
use super::{NOT_FOUND, bad_request, describe_key, not_found};
use dualwrite::schema::{FieldType, TableDef};

/// What a prepared write does.
#[derive(Debug, Clone)]
pub(crate) enum WriteKind {
    /// POST to the collection, with the id the row gets.
    Create { id: String },
    /// PATCH by key; `new_id` is used if the row is created.
    Upsert {
        key: KeySegment,
        new_id: String,
        if_match: Option<String>,
        if_none_match: Option<String>,
    },
    /// DELETE by key.
    Delete {
        key: KeySegment,
        if_match: Option<String>,
    },
}

/// A write ready to apply.
#[derive(Debug, Clone)]
pub(crate) struct PreparedWrite<'t> {
    pub table: &'t TableDef,
    pub kind: WriteKind,
    pub body: Map<String, Value>,
    pub representation: bool,
    /// A write below a row (a property, a `$ref`): answered `204` alone.
    pub bare: bool,
    /// The client writing, whose application user the row records.
    pub caller: Option<String>,
}

/// The result of an applied write: the row written (none for a delete).
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    row: Option<StoredRow>,
    created: bool,
    /// A delete: the id of the row deleted.
    deleted: Option<String>,
}

fn version_mismatch() -> ApiError {
    ApiError::new(
        StatusCode::PRECONDITION_FAILED,
        "0x80060882",
        "The version of the existing record doesn't match the RowVersion property provided.",
    )
}

/// Step 1: parse and check the request, call the pre-commit hook.
pub(crate) async fn prepare<'t>(
    state: &SharedState,
    table: &'t TableDef,
    key: Option<KeySegment>,
    request: &ApiRequest,
) -> Result<PreparedWrite<'t>, ApiError> {
    let body = parse_body(request)?;
    let if_match = header_str(&request.headers, "if-match").map(str::to_string);
    let if_none_match = header_str(&request.headers, "if-none-match").map(str::to_string);
    let pk_field = table.primary_key.first().cloned().unwrap_or_default();
    let (kind, operation) = match (&request.method, key) {
        (&Method::POST, None) => {
            let id = match body.get(&pk_field) {
                Some(Value::String(s)) if uuid::Uuid::parse_str(s).is_ok() => s.to_lowercase(),
                Some(other) => {
                    return Err(bad_request(format!(
                        "{pk_field} must be a GUID, got {other}"
                    )));
                }
                None => uuid::Uuid::new_v4().to_string(),
            };
            (WriteKind::Create { id }, "create")
        }
        (&Method::PATCH, Some(key)) => {
            resolve_key(table, &key)?;
            let new_id = match &key {
                KeySegment::Single(Value::String(id)) => id.to_lowercase(),
                _ => uuid::Uuid::new_v4().to_string(),
            };
            let kind = WriteKind::Upsert {
                key,
                new_id,
                if_match,
                if_none_match,
            };
            (kind, "upsert")
        }
        (&Method::DELETE, Some(key)) => {
            resolve_key(table, &key)?;
            (WriteKind::Delete { key, if_match }, "delete")
        }
        (method, _) => {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                super::BAD_REQUEST,
                format!("{method} is not supported on '{}'", request.path),
            ));
        }
    };
    let key_text = match &kind {
        WriteKind::Create { id } => format!("Id = {id}"),
        WriteKind::Upsert { key, .. } | WriteKind::Delete { key, .. } => describe_key(key),
    };
    let change = json!({"table": table.name, "operation": operation, "key": key_text, "row": body});
    state
        .hooks
        .check(&table.name, &change, "0x80040265")
        .await?;
    Ok(PreparedWrite {
        table,
        kind,
        body,
        representation: prefer(&request.headers, "return=representation"),
        bare: false,
        caller: request.client.clone(),
    })
}

/// Checks a key value taken from the URL of an upsert that creates the row:
/// its type, and for a lookup part that the row it points to exists.
fn check_key_part(
    state: &SharedState,
    tx: &Tx<'_>,
    table: &TableDef,
    field_name: &str,
    value: &Value,
) -> Result<(), Abort> {
    let Some(field) = table.field(field_name) else {
        return Ok(());
    };
    if field.field_type != FieldType::Lookup {
        return table
            .check_value(field, value)
            .map_err(|m| abort(bad_request(m)));
    }
    let Some(id) = value.as_str().filter(|s| uuid::Uuid::parse_str(s).is_ok()) else {
        return Err(abort(bad_request(format!(
            "key part _{field_name}_value must be a GUID, got {value}"
        ))));
    };
    let Some(target) = field
        .target
        .as_deref()
        .and_then(|t| state.metadata.table(t))
    else {
        return Ok(());
    };
    if tx.get(&target.name, &guid_pk(id))?.is_none() {
        return Err(abort(ApiError::new(
            StatusCode::NOT_FOUND,
            NOT_FOUND,
            format!("{} With Id = {id} Does Not Exist", target.entity_name()),
        )));
    }
    Ok(())
}

/// Step 2: checks and writes inside a transaction.
pub(crate) fn apply(
    state: &SharedState,
    tx: &Tx<'_>,
    write: &PreparedWrite<'_>,
) -> Result<Outcome, Abort> {
    let table = write.table;
    let pk_field = table.primary_key.first().cloned().unwrap_or_default();
    match &write.kind {
        WriteKind::Create { id } => {
            let pk = guid_pk(id);
            if tx.get(&table.name, &pk)?.is_some() {
                return Err(abort(ApiError::new(
                    StatusCode::PRECONDITION_FAILED,
                    "0x80040237",
                    "Cannot insert duplicate key.",
                )));
            }
            let mut row = Map::new();
            apply_body(state, tx, table, &mut row, &write.body)?;
            super::money::derive(state, tx, table, &mut row)?;
            super::owner::stamp(state, tx, table, &mut row, write.caller.as_deref(), true)?;
            row.insert(pk_field, Value::String(id.clone()));
            row.insert("createdon".into(), now());
            row.insert("modifiedon".into(), now());
            let indexes = index_entries(table, &row);
            let stored = tx.put(&table.name, &pk, None, row, &indexes, set_version)?;
            Ok(Outcome {
                row: Some(stored),
                created: true,
                deleted: None,
            })
        }
        WriteKind::Upsert {
            key,
            new_id,
            if_match,
            if_none_match,
        } => {
            let pk = tx_pk(tx, table, key)?;
            let existing = match &pk {
                Some(pk) => tx.get(&table.name, pk)?,
                None => None,
            };
            match (&existing, if_match.as_deref(), if_none_match.as_deref()) {
                (None, Some(_), _) => return Err(abort(not_found(table, key))),
                (Some(row), Some(tag), _) if tag != "*" && tag != etag(row) => {
                    return Err(abort(version_mismatch()));
                }
                (Some(_), _, Some("*")) => {
                    return Err(abort(ApiError::new(
                        StatusCode::PRECONDITION_FAILED,
                        "0x80040237",
                        "A record with matching key values already exists.",
                    )));
                }
                _ => {}
            }
            let created = existing.is_none();
            let mut row = existing.as_ref().map(|r| r.row.clone()).unwrap_or_default();
            let pk = match (&existing, pk) {
                (Some(_), Some(pk)) => pk,
                _ => {
                    if let KeySegment::Named(parts) = key {
                        for (name, value) in parts {
                            let field_name = key_field_name(table, name);
                            check_key_part(state, tx, table, field_name, value)?;
                            row.insert(stored_name(table, field_name), value.clone());
                        }
                    }
                    row.insert(pk_field.clone(), Value::String(new_id.clone()));
                    guid_pk(new_id)
                }
            };
            if write
                .body
                .get(&pk_field)
                .is_some_and(|v| Some(v) != row.get(&pk_field))
            {
                return Err(abort(bad_request(format!(
                    "{pk_field} in the body does not match the key in the URL"
                ))));
            }
            apply_body(state, tx, table, &mut row, &write.body)?;
            super::money::derive(state, tx, table, &mut row)?;
            super::owner::stamp(state, tx, table, &mut row, write.caller.as_deref(), created)?;
            if created {
                row.insert("createdon".into(), now());
            }
            row.insert("modifiedon".into(), now());
            let old_indexes = existing
                .as_ref()
                .map(|r| index_entries(table, &r.row))
                .unwrap_or_default();
            let indexes = index_entries(table, &row);
            let previous = existing.as_ref().map(|r| (r, &old_indexes));
            let stored = tx.put(&table.name, &pk, previous, row, &indexes, set_version)?;
            Ok(Outcome {
                row: Some(stored),
                created,
                deleted: None,
            })
        }
        WriteKind::Delete { key, if_match } => {
            let pk = tx_pk(tx, table, key)?;
            let existing = match &pk {
                Some(pk) => tx.get(&table.name, pk)?,
                None => None,
            };
            let (Some(pk), Some(old)) = (pk, existing) else {
                return Err(abort(not_found(table, key)));
            };
            if if_match
                .as_deref()
                .is_some_and(|tag| tag != "*" && tag != etag(&old))
            {
                return Err(abort(version_mismatch()));
            }
            let mut tomb = Map::new();
            let deleted = old
                .row
                .get(&pk_field)
                .and_then(Value::as_str)
                .map(str::to_owned);
            if let Some(id) = old.row.get(&pk_field) {
                tomb.insert(pk_field, id.clone());
            }
            let old_indexes = index_entries(table, &old.row);
            tx.delete(&table.name, &pk, &old, &old_indexes, tomb)?;
            Ok(Outcome {
                row: None,
                created: false,
                deleted,
            })
        }
    }
}

/// Step 3: the response of a committed write, after queuing the webhook
/// contexts of the steps registered on it.
pub(crate) fn respond(
    state: &SharedState,
    write: &PreparedWrite<'_>,
    outcome: &Outcome,
) -> ApiResponse {
    super::webhooks::after_commit(
        state,
        write.table,
        &write.body,
        outcome.row.as_ref(),
        outcome.created,
        outcome.deleted.as_deref(),
    );
    match &outcome.row {
        Some(_) if write.bare => ApiResponse::empty(StatusCode::NO_CONTENT),
        Some(row) => written(
            state,
            write.table,
            write.representation,
            row,
            outcome.created,
        ),
        None => ApiResponse::empty(StatusCode::NO_CONTENT),
    }
}

/// The URL path (below the service root) of the row a write targets, for
/// `Content-ID` references in a `$batch`.
pub(crate) fn entity_path(write: &PreparedWrite<'_>, request_path: &str) -> String {
    match &write.kind {
        WriteKind::Create { id } => format!("{}({id})", write.table.name),
        WriteKind::Upsert { .. } | WriteKind::Delete { .. } => request_path.to_string(),
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
    commit(state, write).await
}

/// As [`execute`], for a write below a row, answered with a bare `204`.
pub(crate) async fn execute_bare(
    state: &SharedState,
    table: &TableDef,
    key: KeySegment,
    request: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    let mut write = prepare(state, table, Some(key), request).await?;
    write.bare = true;
    commit(state, write).await
}

async fn commit(state: &SharedState, write: PreparedWrite<'_>) -> Result<ApiResponse, ApiError> {
    let outcome = state
        .store
        .transact_serial(|tx| apply(state, tx, &write))
        .await
        .map_err(commit_failed)?;
    Ok(respond(state, &write, &outcome))
}
