//! Row helpers shared by both services: key segments in URLs, key
//! encoding, index entries, `$select`, and running a query over a table.

use std::cmp::Ordering;

use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::http::{ApiError, QueryOptions, compare_values};
use super::store::{IndexEntries, StoredRow, encode_key};
use dualwrite::schema::{FieldType, TableDef};

/// The key part of a URL segment: `(guid)` or `(name=value,…)`.
#[derive(Debug, Clone, PartialEq)]
pub enum KeySegment {
    /// A bare value: the primary key.
    Single(Value),
    /// Named values.
    Named(Vec<(String, Value)>),
}

/// Splits `accounts(accountnumber='A-1')` into the set name and its key.
pub fn parse_segment(segment: &str, code: &str) -> Result<(String, Option<KeySegment>), ApiError> {
    let Some(open) = segment.find('(') else {
        return Ok((segment.to_string(), None));
    };
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, code, m);
    let name = &segment[..open];
    let inner = segment[open + 1..]
        .strip_suffix(')')
        .ok_or_else(|| bad(format!("the key of '{segment}' is not closed with ')'")))?;
    let parts = split_top(inner);
    if parts.len() == 1 && !parts[0].contains('=') {
        return Ok((
            name.to_string(),
            Some(KeySegment::Single(key_value(parts[0].trim(), &bad)?)),
        ));
    }
    let mut named = Vec::new();
    for part in parts {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| bad(format!("key part '{part}' must be name=value")))?;
        named.push((k.trim().to_string(), key_value(v.trim(), &bad)?));
    }
    Ok((name.to_string(), Some(KeySegment::Named(named))))
}

fn split_top(inner: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in inner.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
}

fn key_value(text: &str, bad: &dyn Fn(String) -> ApiError) -> Result<Value, ApiError> {
    if let Some(s) = text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
        return Ok(Value::String(s.replace("''", "'")));
    }
    if uuid::Uuid::parse_str(text).is_ok() {
        return Ok(Value::String(text.to_lowercase()));
    }
    match text {
        "true" => return Ok(Value::Bool(true)),
        "false" => return Ok(Value::Bool(false)),
        _ => {}
    }
    if let Ok(n) = text.parse::<i64>() {
        return Ok(Value::from(n));
    }
    if let Ok(n) = text.parse::<f64>() {
        return Ok(Value::from(n));
    }
    // Enum literal: Namespace.Type'Member'.
    if let Some(open) = text.find('\'')
        && let Some(member) = text[open + 1..].strip_suffix('\'')
    {
        return Ok(Value::String(member.to_string()));
    }
    Err(bad(format!(
        "key value {text} is not a quoted string, number, guid or boolean"
    )))
}

/// The stored name of a key field: lookups are stored as `_x_value`.
pub fn stored_name(table: &TableDef, field: &str) -> String {
    match table.field(field) {
        Some(f) if f.field_type == FieldType::Lookup => format!("_{field}_value"),
        _ => field.to_string(),
    }
}

/// The declared field a key part names (`_x_value` names lookup `x`).
pub fn key_field_name<'a>(table: &TableDef, part: &'a str) -> &'a str {
    if table.field(part).is_some() {
        return part;
    }
    part.strip_prefix('_')
        .and_then(|p| p.strip_suffix("_value"))
        .filter(|p| table.field(p).is_some())
        .unwrap_or(part)
}

/// The encoded primary key of a row, if every key field has a value.
pub fn primary_key(table: &TableDef, row: &Map<String, Value>) -> Option<String> {
    let values: Option<Vec<&Value>> = table
        .primary_key
        .iter()
        .map(|f| row.get(&stored_name(table, f)).filter(|v| !v.is_null()))
        .collect();
    Some(encode_key(&values?))
}

/// The alternate key index entries of a row.
pub fn index_entries(table: &TableDef, row: &Map<String, Value>) -> IndexEntries {
    table
        .alternate_keys
        .iter()
        .filter_map(|key| {
            let values: Option<Vec<&Value>> = key
                .fields
                .iter()
                .map(|f| row.get(&stored_name(table, f)).filter(|v| !v.is_null()))
                .collect();
            Some((key.name.clone(), encode_key(&values?)))
        })
        .collect()
}

/// Checks that every name in the query is a property of the table.
pub fn check_names(
    table: &TableDef,
    options: &QueryOptions,
    system: &[&str],
    unknown: impl Fn(&str) -> ApiError,
) -> Result<(), ApiError> {
    let filter_names = options.filter.iter().flat_map(|f| f.field_names());
    let select_names = options.select.iter().flatten().map(String::as_str);
    let order_names = options.orderby.iter().map(|(f, _)| f.as_str());
    for name in filter_names.chain(select_names).chain(order_names) {
        if !table.readable(name, system) {
            return Err(unknown(name));
        }
    }
    Ok(())
}

/// Filters and sorts the rows; ties keep primary key order.
pub fn run_query(rows: Vec<StoredRow>, options: &QueryOptions) -> Vec<StoredRow> {
    let mut rows: Vec<StoredRow> = rows
        .into_iter()
        .filter(|r| options.filter.as_ref().is_none_or(|f| f.matches(&r.row)))
        .collect();
    if !options.orderby.is_empty() {
        rows.sort_by(|a, b| {
            for (field, desc) in &options.orderby {
                let null = Value::Null;
                let x = a.row.get(field).unwrap_or(&null);
                let y = b.row.get(field).unwrap_or(&null);
                let o = compare_values(x, y);
                let o = if *desc { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        });
    }
    rows
}

/// Keeps the selected fields (plus `always`); all fields without `$select`.
pub fn project(
    row: &Map<String, Value>,
    select: Option<&Vec<String>>,
    always: &[&str],
) -> Map<String, Value> {
    match select {
        None => row.clone(),
        Some(fields) => row
            .iter()
            .filter(|(k, _)| fields.iter().any(|f| f == *k) || always.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// A copy of `map` with `key` first (OData annotations lead the object).
pub fn with_first(key: &str, value: Value, map: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert(key.to_string(), value);
    for (k, v) in map {
        if k != key {
            out.insert(k, v);
        }
    }
    out
}

/// Removes `$skiptoken`/`$skip`/`$deltatoken` from a query string and appends `extra`.
pub fn rebuild_query(query: &str, extra: &str) -> String {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| {
            !p.is_empty()
                && !p.starts_with("$skiptoken=")
                && !p.starts_with("$skip=")
                && !p.starts_with("$deltatoken=")
        })
        .collect();
    let mut out = kept.join("&");
    if !out.is_empty() {
        out.push('&');
    }
    out.push_str(extra);
    out
}
