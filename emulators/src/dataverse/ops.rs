//! Dataverse write operations in three steps, so a `$batch` change set can
//! run many of them in one sled transaction:
//! 1. [`prepare`]: parse the body, read the conditions, pick new ids, call
//!    the pre-commit hook (async, outside the transaction);
//! 2. [`apply`]: the checks and the write, inside a transaction (sled may
//!    run it more than once, so it only reads the prepared request);
//! 3. [`respond`]: the response of a committed write.
//!
//! A write with synchronous webhook steps runs step 2 twice under the
//! writer lock (`Store::transact_checked`): a dry run whose [`changes`]
//! the steps are called with (`synchronous`), then, if they all agreed,
//! the commit, which writes the same rows (one timestamp per write).

use std::sync::OnceLock;

use axum::http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::super::SharedState;
use super::super::http::parse_query;
use super::super::http::{ApiError, ApiRequest, ApiResponse, header_str, prefer};
use super::super::rows::{KeySegment, check_names, index_entries, key_field_name, stored_name};
use super::super::store::{StoredRow, Tx};
use super::read::etag;
use super::webhooks::Change;
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
    /// The request's query (`$select`, `$expand` of a representation).
    pub query: String,
    /// Create: the rows a collection-valued `@odata.bind` associates, by
    /// relationship name, as the references were written.
    pub associate: Vec<(String, Vec<String>)>,
    /// The `CorrelationId` of the contexts its webhook steps get (one for
    /// all the writes of a `$batch` change set).
    pub correlation: String,
    /// When the write happened (`createdon`, `modifiedon`): taken at its
    /// first run, so a dry run and its commit write the same row.
    stamp: OnceLock<Value>,
}

impl PreparedWrite<'_> {
    /// The time the write stamps its rows with.
    fn now(&self) -> Value {
        self.stamp.get_or_init(now).clone()
    }
}

/// The result of an applied write: the row written (none for a delete).
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    row: Option<StoredRow>,
    /// The row before the write (none for a create).
    before: Option<StoredRow>,
    created: bool,
    /// Rows a collection-valued bind associated.
    associated: Vec<Associated>,
}

/// A row a collection-valued bind associated.
#[derive(Debug, Clone)]
struct Associated {
    /// Its table.
    set: String,
    /// The update it amounts to, for the webhook steps.
    body: Map<String, Value>,
    /// The row before and as written.
    before: StoredRow,
    row: StoredRow,
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
    let mut body = parse_body(request)?;
    let associate = collection_binds(state, table, &mut body, request.method == Method::POST)?;
    let representation = prefer(&request.headers, "return=representation");
    if representation {
        // Checked now, so a bad option fails the write, not its answer.
        let options = parse_query(&request.query, super::BAD_REQUEST)?;
        check_names(table, &options, super::SYSTEM_FIELDS, |n| {
            super::unknown_property(table, n)
        })?;
        super::expand::parse(&state.metadata, table, options.expand.as_deref())?;
    }
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
        .check(
            &table.name,
            &change,
            "0x80040265",
            super::super::hooks::PLUGIN_STATUSES,
        )
        .await?;
    Ok(PreparedWrite {
        table,
        kind,
        body,
        representation,
        bare: false,
        caller: request.client.clone(),
        query: request.query.clone(),
        associate,
        correlation: uuid::Uuid::new_v4().to_string(),
        stamp: OnceLock::new(),
    })
}

/// Takes the collection-valued `<relationship>@odata.bind` of `body`: the
/// references of existing rows to associate with a row created ("Create a
/// table row using the Web API", "Associate table rows on create":
/// `"Account_Tasks@odata.bind": ["/tasks(<id>)", …]`). On update the
/// Web API binds single-valued navigation properties only ("Associate and
/// disassociate table rows using the Web API", "Associate table rows on
/// update"), so an update naming one is refused.
fn collection_binds(
    state: &SharedState,
    table: &TableDef,
    body: &mut Map<String, Value>,
    create: bool,
) -> Result<Vec<(String, Vec<String>)>, ApiError> {
    let names: Vec<String> = body
        .keys()
        .filter(|name| {
            name.strip_suffix("@odata.bind")
                .is_some_and(|nav| state.metadata.relationship(&table.name, nav).is_some())
        })
        .cloned()
        .collect();
    let mut out = Vec::new();
    for name in names {
        let nav = name.trim_end_matches("@odata.bind").to_string();
        if !create {
            return Err(bad_request(format!(
                "'{nav}' is a collection-valued navigation property: @odata.bind sets it only when a row is created; associate rows with an existing {} with POST {}(<id>)/{nav}/$ref",
                table.entity_name(),
                table.name
            )));
        }
        let value = body.remove(&name).unwrap_or(Value::Null);
        let references = value
            .as_array()
            .and_then(|items| {
                items
                    .iter()
                    .map(|item| item.as_str().map(str::to_string))
                    .collect::<Option<Vec<String>>>()
            })
            .ok_or_else(|| {
                bad_request(format!(
                    "{name} must be an array of references such as [\"/contacts(<guid>)\"], got {value}"
                ))
            })?;
        out.push((nav, references));
    }
    Ok(out)
}

/// Sets the lookup of each row a create's collection-valued binds name to
/// the new row `id`.
fn associate(
    state: &SharedState,
    tx: &Tx<'_>,
    write: &PreparedWrite<'_>,
    id: &str,
) -> Result<Vec<Associated>, Abort> {
    let mut out = Vec::new();
    for (nav, references) in &write.associate {
        let Some(relationship) = state.metadata.relationship(&write.table.name, nav) else {
            continue;
        };
        let Some(many) = state.metadata.table(&relationship.referencing) else {
            continue;
        };
        let column = stored_name(many, &relationship.lookup);
        for reference in references {
            let (set, key) = super::write::bind_target(state, reference)
                .map_err(abort)?
                .ok_or_else(|| {
                    abort(bad_request(format!(
                        "{nav}@odata.bind: '{reference}' does not name a row: write /{}(<guid>)",
                        many.name
                    )))
                })?;
            if set != many.name {
                return Err(abort(bad_request(format!(
                    "{nav}@odata.bind holds {} rows, not {set}",
                    many.name
                ))));
            }
            let pk = tx_pk(tx, many, &key)?;
            let existing = match &pk {
                Some(pk) => tx.get(&many.name, pk)?,
                None => None,
            };
            let (Some(pk), Some(old)) = (pk, existing) else {
                return Err(abort(not_found(many, &key)));
            };
            let mut row = old.row.clone();
            row.insert(column.clone(), Value::String(id.to_string()));
            super::owner::stamp(state, tx, many, &mut row, write.caller.as_deref(), false)?;
            row.insert("modifiedon".into(), write.now());
            let old_indexes = index_entries(many, &old.row);
            let indexes = index_entries(many, &row);
            let stored = tx.put(
                &many.name,
                &pk,
                Some((&old, &old_indexes)),
                row,
                &indexes,
                set_version,
            )?;
            let body: Map<String, Value> = [(
                format!("{}@odata.bind", relationship.lookup),
                Value::String(format!("/{}({id})", write.table.name)),
            )]
            .into_iter()
            .collect();
            out.push(Associated {
                set: many.name.clone(),
                body,
                before: old,
                row: stored,
            });
        }
    }
    Ok(out)
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
            row.insert("createdon".into(), write.now());
            row.insert("modifiedon".into(), write.now());
            let indexes = index_entries(table, &row);
            let stored = tx.put(&table.name, &pk, None, row, &indexes, set_version)?;
            let associated = associate(state, tx, write, id)?;
            Ok(Outcome {
                row: Some(stored),
                before: None,
                created: true,
                associated,
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
                row.insert("createdon".into(), write.now());
            }
            row.insert("modifiedon".into(), write.now());
            let old_indexes = existing
                .as_ref()
                .map(|r| index_entries(table, &r.row))
                .unwrap_or_default();
            let indexes = index_entries(table, &row);
            let previous = existing.as_ref().map(|r| (r, &old_indexes));
            let stored = tx.put(&table.name, &pk, previous, row, &indexes, set_version)?;
            Ok(Outcome {
                row: Some(stored),
                before: existing,
                created,
                associated: Vec::new(),
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
            if let Some(id) = old.row.get(&pk_field) {
                tomb.insert(pk_field, id.clone());
            }
            let old_indexes = index_entries(table, &old.row);
            tx.delete(&table.name, &pk, &old, &old_indexes, tomb)?;
            Ok(Outcome {
                row: None,
                before: Some(old),
                created: false,
                associated: Vec::new(),
            })
        }
    }
}

/// The row changes of a write as its webhook steps see them: the row it
/// wrote, then the rows a collection-valued bind associated.
pub(crate) fn changes<'a>(
    state: &'a SharedState,
    write: &'a PreparedWrite<'_>,
    outcome: &'a Outcome,
) -> Vec<Change<'a>> {
    let main = Change::new(
        write.table,
        &write.body,
        outcome.before.as_ref(),
        outcome.row.as_ref(),
        outcome.created,
    );
    let associated = outcome.associated.iter().filter_map(|a| {
        let table = state.metadata.table(&a.set)?;
        Change::new(table, &a.body, Some(&a.before), Some(&a.row), false)
    });
    main.into_iter().chain(associated).collect()
}

/// Step 3: the response of a committed write, after queuing the webhook
/// contexts of the asynchronous steps registered on it.
pub(crate) fn respond(
    state: &SharedState,
    write: &PreparedWrite<'_>,
    outcome: &Outcome,
) -> ApiResponse {
    super::webhooks::after_commit(state, &changes(state, write, outcome), &write.correlation);
    match &outcome.row {
        Some(_) if write.bare => ApiResponse::empty(StatusCode::NO_CONTENT),
        Some(row) => written(
            state,
            write.table,
            write.representation.then_some(write.query.as_str()),
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

/// Commits one write: under the writer lock, after its synchronous steps
/// agreed to what a dry run of it did, when it has any (`synchronous`).
async fn commit(state: &SharedState, write: PreparedWrite<'_>) -> Result<ApiResponse, ApiError> {
    let run = |tx: &Tx<'_>| apply(state, tx, &write);
    let outcome = if super::synchronous::expected(state, &write) {
        let check = async |outcome: Outcome| {
            let dry = changes(state, &write, &outcome);
            super::synchronous::run(state, &dry, &write.correlation).await
        };
        state.store.transact_checked(run, check).await
    } else {
        state.store.transact_serial(run).await
    };
    Ok(respond(state, &write, &outcome.map_err(commit_failed)?))
}
