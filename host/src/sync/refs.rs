//! Lookups between the logical form and Dataverse: a captured Dataverse
//! row's `_column_value` ids read back as the referenced row's key value,
//! and a logical row turned into a write, its lookups bound by id, waiting
//! when the referenced row is not there yet.

use serde_json::Value;

use crate::connector::{ConnectorError, Key, Write};
use crate::map::{FieldMapping, MapPlan, Plan, SystemKind};

use super::shape::{self, Row, Side, key_values};
use super::system::System;

/// A write ready to send, or why the row must wait.
#[derive(Debug, Clone)]
pub enum Prepared {
    /// Send this.
    Ready(Write),
    /// A referenced row is missing; try again later.
    Wait(String),
}

/// The table a lookup points at: the right table of the map it goes
/// through.
fn target<'p>(plan: &'p Plan, mapping: &FieldMapping) -> Option<(&'p MapPlan, &'p str)> {
    let lookup = mapping.lookup.as_ref()?;
    let map = plan.map(lookup.map.as_deref()?)?;
    Some((map, map.right.table.as_str()))
}

/// The lookup mapping behind right column `column`.
fn lookup_of<'m>(map: &'m MapPlan, column: &str) -> Option<&'m FieldMapping> {
    shape::mappings(map).find(|m| m.lookup.is_some() && m.right.as_deref() == Some(column))
}

/// `raw` as reported by `side`, in logical form: for Dataverse, each lookup
/// column the map uses holds the referenced row's key value.
pub async fn to_logical(
    plan: &Plan,
    map: &MapPlan,
    side: Side,
    system: &System,
    raw: Row,
) -> Result<Row, ConnectorError> {
    let (row, refused) = to_logical_lenient(plan, map, side, system, raw).await?;
    match refused {
        Some(error) => Err(error),
        None => Ok(row),
    }
}

/// [`to_logical`], where a lookup whose read the service refuses (the
/// row's fault, not the service's) is left empty and that refusal returned
/// beside the row, so one row cannot stop the read of the others.
pub async fn to_logical_lenient(
    plan: &Plan,
    map: &MapPlan,
    side: Side,
    system: &System,
    mut raw: Row,
) -> Result<(Row, Option<ConnectorError>), ConnectorError> {
    let mut refused = None;
    if side_kind(map, side) != SystemKind::Dataverse {
        return Ok((raw, refused));
    }
    for mapping in shape::mappings(map) {
        let (Some(column), Some(lookup)) = (shape::field_on(mapping, side), &mapping.lookup) else {
            continue;
        };
        let id = raw
            .get(&format!("_{column}_value"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let value = match (id, target(plan, mapping)) {
            (Some(id), Some((_, table))) => {
                match system.value_of(table, &id, &lookup.key_field).await {
                    Ok(value) => value,
                    Err(error) if error.refusal().is_some() => {
                        refused.get_or_insert(error);
                        Value::Null
                    }
                    Err(error) => return Err(error),
                }
            }
            _ => Value::Null,
        };
        raw.insert(column.to_owned(), value);
    }
    Ok((raw, refused))
}

/// What `side` holds now for the key of `change`, in logical form (`None`:
/// no row). Used for a change captured before a write of the host to that
/// side landed.
pub async fn current(
    plan: &Plan,
    map: &MapPlan,
    side: Side,
    system: &System,
    change: &crate::checkpoint::Change,
) -> Result<Option<Row>, ConnectorError> {
    let id = change
        .row
        .get(&super::system::primary_id(table_of(map, side)))
        .and_then(Value::as_str)
        .or_else(|| change.version.strip_prefix("deleted:"));
    held(plan, map, side, system, &change.key, id).await
}

/// What `side` holds now for `key`, in logical form (`None`: no row), read
/// by key; on Dataverse, by the row id `id` when the key's lookups no
/// longer resolve (its company is gone, say).
pub async fn held(
    plan: &Plan,
    map: &MapPlan,
    side: Side,
    system: &System,
    key: &str,
    id: Option<&str>,
) -> Result<Option<Row>, ConnectorError> {
    let table = table_of(map, side);
    let raw = if side_kind(map, side) == SystemKind::Dataverse {
        // By alternate key: the row may have been made again under another
        // id since.
        let values = key_values(key);
        match dataverse_key(plan, map, side, system, &values).await? {
            Ok((key, _)) => system.get(table, &key).await?,
            // The company or another key row is gone: by the row's id.
            Err(_) => match id {
                Some(id) => system.row_by_id(table, id).await?,
                None => None,
            },
        }
    } else {
        let mut by_key = Key::new();
        for (pair, value) in map.key.iter().zip(key_values(key)) {
            by_key = by_key.text(shape::field_on(pair, side).unwrap_or_default(), &value);
        }
        system.get(table, &by_key).await?
    };
    match raw {
        Some(raw) => to_logical(plan, map, side, system, raw).await.map(Some),
        None => Ok(None),
    }
}

fn side_kind(map: &MapPlan, side: Side) -> SystemKind {
    map.side(side).kind
}

fn table_of(map: &MapPlan, side: Side) -> &str {
    &map.side(side).table
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The write of `key` to side `to`: an upsert of `row` (logical, `to`'s
/// names), or a delete when `row` is `None`; `image` is the side's last
/// image of the row. The key's values come from the row or the image, in
/// that side's own case, else from the key text. A row the side has no
/// image of is most likely new: it is written as an insert (one request to
/// finops instead of two).
pub async fn prepare(
    plan: &Plan,
    map: &MapPlan,
    to: Side,
    system: &System,
    key: &str,
    row: Option<&Row>,
    image: Option<&Row>,
) -> Result<Prepared, ConnectorError> {
    let table = table_of(map, to).to_owned();
    let seen = image.is_some();
    let known = row.or(image);
    let values: Vec<String> = map
        .key
        .iter()
        .zip(key_values(key))
        .map(|(pair, from_key)| {
            shape::field_on(pair, to)
                .and_then(|field| known?.get(field))
                .and_then(text)
                .filter(|value| value.to_lowercase() == from_key.to_lowercase())
                .unwrap_or(from_key)
        })
        .collect();
    if side_kind(map, to) == SystemKind::Finops {
        let mut write_key = Key::new();
        for (pair, value) in map.key.iter().zip(&values) {
            write_key = write_key.text(shape::field_on(pair, to).unwrap_or_default(), value);
        }
        return Ok(Prepared::Ready(match row {
            // No image of the row on this side: it is most likely new.
            Some(row) if !seen => Write::Insert {
                table,
                key: write_key,
                row: row.clone(),
            },
            Some(row) => Write::Upsert {
                table,
                key: write_key,
                row: row.clone(),
            },
            None => Write::Delete {
                table,
                key: write_key,
            },
        }));
    }
    let (write_key, company) = match dataverse_key(plan, map, to, system, &values).await? {
        Ok(found) => found,
        Err(wait) => return Ok(Prepared::Wait(wait)),
    };
    let Some(row) = row else {
        return Ok(Prepared::Ready(Write::Delete {
            table,
            key: write_key,
        }));
    };
    let mut body = Row::new();
    for (field, value) in row {
        let Some(mapping) = lookup_of(map, field) else {
            body.insert(field.clone(), value.clone());
            continue;
        };
        let (Some(lookup), Some((target_map, target_table))) =
            (&mapping.lookup, target(plan, mapping))
        else {
            continue;
        };
        let Some(value) = text(value) else {
            // The source has no value: clear the lookup.
            body.insert(format!("{field}@odata.bind"), Value::Null);
            continue;
        };
        let mut lookup_key = Key::single(&lookup.key_field, &value);
        if let (Some(pair), Some(company)) = (target_map.company_pair(), company) {
            let column = pair.right.as_deref().unwrap_or_default();
            lookup_key = lookup_key.guid(&format!("_{column}_value"), company);
        }
        let Some(id) = system.id_of(target_table, &lookup_key).await? else {
            return Ok(Prepared::Wait(missing(target_table, &lookup_key, mapping)));
        };
        body.insert(
            format!("{field}@odata.bind"),
            Value::String(format!("/{target_table}({id})")),
        );
    }
    Ok(Prepared::Ready(Write::Upsert {
        table,
        key: write_key,
        row: body,
    }))
}

/// The alternate key of a Dataverse row of `side` from its key `values`:
/// a lookup part is `_column_value=<id>` of the referenced row; with the
/// company's id. `Err` says which referenced row is missing.
async fn dataverse_key(
    plan: &Plan,
    map: &MapPlan,
    side: Side,
    system: &System,
    values: &[String],
) -> Result<Result<(Key, Option<uuid::Uuid>), String>, ConnectorError> {
    let mut key = Key::new();
    let mut company = None;
    for (pair, value) in map.key.iter().zip(values) {
        let column = shape::field_on(pair, side).unwrap_or_default();
        match (&pair.lookup, target(plan, pair)) {
            (Some(lookup), Some((_, target_table))) => {
                let lookup_key = Key::single(&lookup.key_field, value);
                let Some(id) = system.id_of(target_table, &lookup_key).await? else {
                    return Ok(Err(missing(target_table, &lookup_key, pair)));
                };
                let guid = uuid::Uuid::parse_str(&id).map_err(|_| ConnectorError::Protocol {
                    system: crate::connector::SystemKind::Dataverse,
                    url: format!("{target_table}{lookup_key}"),
                    detail: format!("the row's id `{id}` is not a GUID"),
                })?;
                if map.company_pair().is_some_and(|c| std::ptr::eq(c, pair)) {
                    company = Some(guid);
                }
                key = key.guid(&format!("_{column}_value"), guid);
            }
            _ => key = key.text(column, value),
        }
    }
    Ok(Ok((key, company)))
}

fn missing(table: &str, key: &Key, mapping: &FieldMapping) -> String {
    let via = mapping
        .lookup
        .as_ref()
        .and_then(|l| l.map.as_deref())
        .unwrap_or("?");
    format!(
        "lookup `{}`: {table}{key} does not exist yet; waiting for map `{via}` to deliver it",
        mapping.right.as_deref().unwrap_or_default()
    )
}
