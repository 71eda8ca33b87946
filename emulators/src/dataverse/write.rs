//! Dataverse writes: create, upsert/update with conditions, delete, binds.

use axum::http::{HeaderName, StatusCode};
use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use sled::transaction::ConflictableTransactionError;

use super::super::SharedState;
use super::super::http::parse_query;
use super::super::http::{ApiError, ApiRequest, ApiResponse};
use super::super::rows::{KeySegment, key_field_name, parse_segment, with_first};
use super::super::store::{Tx, TxFailure, WriteConflict, encode_key};
use super::expand::{Expander, Shape};
use super::read::{context, render, render_expanded, storage};
use super::{BAD_REQUEST, NOT_FOUND, bad_request, describe_key, unknown_property};
use dualwrite::schema::{FieldType, TableDef};

impl From<WriteConflict> for ApiError {
    fn from(c: WriteConflict) -> Self {
        match c {
            WriteConflict::DuplicateKey { key } => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "0x80040237",
                format!("A record with matching key values already exists (key {key})."),
            ),
        }
    }
}

/// A key segment resolved to a primary key or an alternate key lookup.
pub(crate) enum Resolved {
    Pk(String),
    Alternate { key: String, values: String },
}

pub(super) fn guid_pk(id: &str) -> String {
    encode_key(&[&Value::String(id.to_lowercase())])
}

pub(crate) fn resolve_key(table: &TableDef, key: &KeySegment) -> Result<Resolved, ApiError> {
    match key {
        KeySegment::Single(Value::String(s)) if uuid::Uuid::parse_str(s).is_ok() => {
            Ok(Resolved::Pk(guid_pk(s)))
        }
        KeySegment::Single(v) => Err(bad_request(format!(
            "the key {v} of {} is not a GUID: use {}(<guid>) or an alternate key such as {}(name='value')",
            table.name, table.name, table.name
        ))),
        KeySegment::Named(parts) => {
            for def in &table.alternate_keys {
                let same = def.fields.len() == parts.len()
                    && parts
                        .iter()
                        .all(|(n, _)| def.fields.iter().any(|f| f == key_field_name(table, n)));
                if same {
                    let values: Vec<&Value> = def
                        .fields
                        .iter()
                        .filter_map(|f| {
                            parts
                                .iter()
                                .find(|(n, _)| key_field_name(table, n) == f)
                                .map(|(_, v)| v)
                        })
                        .collect();
                    return Ok(Resolved::Alternate {
                        key: def.name.clone(),
                        values: encode_key(&values),
                    });
                }
            }
            let names: Vec<&str> = parts.iter().map(|(n, _)| n.as_str()).collect();
            Err(bad_request(format!(
                "{} has no alternate key made of ({}): use one of its alternate keys",
                table.name,
                names.join(", ")
            )))
        }
    }
}

pub(super) type Abort = ConflictableTransactionError<ApiError>;

pub(super) fn abort(e: ApiError) -> Abort {
    ConflictableTransactionError::Abort(e)
}

pub(super) fn tx_pk(
    tx: &Tx<'_>,
    table: &TableDef,
    key: &KeySegment,
) -> Result<Option<String>, Abort> {
    match resolve_key(table, key).map_err(abort)? {
        Resolved::Pk(pk) => Ok(Some(pk)),
        Resolved::Alternate { key, values } => tx.pk_by_key(&table.name, &key, &values),
    }
}

/// Applies a request body to a row: checks names and types, resolves binds.
pub(super) fn apply_body(
    state: &SharedState,
    tx: &Tx<'_>,
    table: &TableDef,
    row: &mut Map<String, Value>,
    body: &Map<String, Value>,
) -> Result<(), Abort> {
    for (name, value) in body {
        if let Some(nav) = name.strip_suffix("@odata.bind") {
            let field = table
                .field(nav)
                .filter(|f| f.field_type == FieldType::Lookup)
                .ok_or_else(|| abort(unknown_property(table, nav)))?;
            if super::owner::set_by_service(table, nav) {
                return Err(abort(set_by_service(nav)));
            }
            let allowed: Vec<&str> = match super::owner::targets(table, nav) {
                Some(targets) => targets.to_vec(),
                None => field.target.as_deref().into_iter().collect(),
            };
            let target = match value {
                Value::Null => None,
                Value::String(s) => Some(resolve_bind(state, tx, &allowed, nav, s)?),
                other => {
                    return Err(abort(bad_request(format!(
                        "{name} must be a string like \"/accounts(<guid>)\", got {other}"
                    ))));
                }
            };
            row.insert(
                format!("_{nav}_value"),
                target.map_or(Value::Null, Value::String),
            );
            continue;
        }
        if name.starts_with('@') || name.contains("@odata.") {
            continue;
        }
        let Some(field) = table.field(name) else {
            // The service's code for a payload naming an unknown property.
            return Err(abort(ApiError::new(
                StatusCode::BAD_REQUEST,
                "0x80048d19",
                format!(
                    "The property '{name}' does not exist on type 'Microsoft.Dynamics.CRM.{}'. Make sure to only use property names that are defined by the type.",
                    table.entity_name()
                ),
            )));
        };
        if super::money::computed(table, name) {
            return Err(abort(bad_request(format!(
                "'{name}' is computed by the service from the row's currency: set transactioncurrencyid@odata.bind and the money column instead"
            ))));
        }
        if field.field_type == FieldType::Lookup && value.is_null() {
            // "Disassociate table rows on update": the navigation property
            // set to null clears the lookup, as `<name>@odata.bind: null` does.
            if super::owner::set_by_service(table, name) {
                return Err(abort(set_by_service(name)));
            }
            row.insert(format!("_{name}_value"), Value::Null);
            continue;
        }
        if field.field_type == FieldType::Lookup {
            return Err(abort(bad_request(format!(
                "'{name}' is a lookup: set it with \"{name}@odata.bind\": \"/<entityset>(<guid>)\""
            ))));
        }
        table
            .check_value(field, value)
            .map_err(|m| abort(bad_request(m)))?;
        row.insert(name.clone(), value.clone());
    }
    Ok(())
}

fn set_by_service(name: &str) -> ApiError {
    bad_request(format!(
        "'{name}' is set by the service (from ownerid and the calling user): assign the row with ownerid@odata.bind instead"
    ))
}

/// The id of the row `reference` names, which must be in one of `allowed`
/// (any set when it is empty).
/// The entity set and key a bind reference (`/contacts(<id>)`, `contacts(<id>)`
/// or an absolute URL) names; `None` when it names no row.
pub(super) fn bind_target(
    state: &SharedState,
    reference: &str,
) -> Result<Option<(String, KeySegment)>, ApiError> {
    let root = format!("{}/api/data/v9.2/", state.base_url);
    let path = reference
        .strip_prefix(&root)
        .unwrap_or(reference)
        .trim_start_matches('/');
    let (set, key) = parse_segment(path, BAD_REQUEST)?;
    Ok(key.map(|key| (set, key)))
}

fn resolve_bind(
    state: &SharedState,
    tx: &Tx<'_>,
    allowed: &[&str],
    nav: &str,
    reference: &str,
) -> Result<String, Abort> {
    let root = format!("{}/api/data/v9.2/", state.base_url);
    let path = reference
        .strip_prefix(&root)
        .unwrap_or(reference)
        .trim_start_matches('/');
    let (set, key) = parse_segment(path, BAD_REQUEST).map_err(abort)?;
    let (Some(table), Some(key)) = (state.metadata.table(&set), key) else {
        return Err(abort(bad_request(format!(
            "{nav}@odata.bind: '{reference}' does not name a row: write /<entityset>(<guid>)"
        ))));
    };
    if !allowed.is_empty() && !allowed.contains(&set.as_str()) {
        return Err(abort(bad_request(format!(
            "{nav}@odata.bind must point to {}, not {set}",
            allowed.join(" or ")
        ))));
    }
    let pk = tx_pk(tx, table, &key)?;
    let row = match pk {
        Some(pk) => tx.get(&table.name, &pk)?,
        None => None,
    };
    let row = row.ok_or_else(|| {
        abort(ApiError::new(
            StatusCode::NOT_FOUND,
            NOT_FOUND,
            format!(
                "{} With {} Does Not Exist",
                table.entity_name(),
                describe_key(&key)
            ),
        ))
    })?;
    let id = table
        .primary_key
        .first()
        .and_then(|f| row.row.get(f))
        .cloned()
        .unwrap_or(Value::Null);
    Ok(id.as_str().unwrap_or_default().to_string())
}

pub(super) fn parse_body(request: &ApiRequest) -> Result<Map<String, Value>, ApiError> {
    if request.body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&request.body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad_request("the request body must be a JSON object")),
        Err(e) => Err(bad_request(format!(
            "the request body is not valid JSON: {e}"
        ))),
    }
}

pub(super) fn now() -> Value {
    Value::String(Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn entity_id(state: &SharedState, table: &TableDef, row: &Map<String, Value>) -> String {
    let id = table
        .primary_key
        .first()
        .and_then(|f| row.get(f))
        .and_then(Value::as_str)
        .unwrap_or_default();
    format!("{}/api/data/v9.2/{}({id})", state.base_url, table.name)
}

/// The answer to a committed create or update; `representation` is the
/// query of a `Prefer: return=representation` write, whose `$select` and
/// `$expand` shape the row returned ("Create with data returned").
pub(super) fn written(
    state: &SharedState,
    table: &TableDef,
    representation: Option<&str>,
    row: &super::super::store::StoredRow,
    created: bool,
) -> ApiResponse {
    let location = entity_id(state, table, &row.row);
    let response = if let Some(query) = representation {
        // Checked before the write (`ops::prepare`).
        let options = parse_query(query, BAD_REQUEST).unwrap_or_default();
        let expand = super::expand::parse(&state.metadata, table, options.expand.as_deref())
            .unwrap_or_default();
        let expander = Expander::new(state, &expand, Shape::Entity);
        let select = options.select.as_ref();
        let fields = render_expanded(&expander, table, row, select)
            .unwrap_or_else(|_| render(table, row, select));
        let body = with_first(
            "@odata.context",
            json!(context(state, table, select, &expand, "/$entity")),
            fields,
        );
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        ApiResponse::json(status, Value::Object(body)).with_header(
            HeaderName::from_static("preference-applied"),
            "return=representation",
        )
    } else {
        ApiResponse::empty(StatusCode::NO_CONTENT)
    };
    // The create and update pages show OData-EntityId alone (no ETag):
    // the representation carries @odata.etag in its body.
    response.with_header(HeaderName::from_static("odata-entityid"), location)
}

pub(crate) fn commit_failed(e: TxFailure<ApiError>) -> ApiError {
    match e {
        TxFailure::Abort(e) => e,
        TxFailure::Store(e) => storage(e),
    }
}

pub(super) fn set_version(row: &mut Map<String, Value>, version: u64) {
    row.insert("versionnumber".into(), json!(version));
}
