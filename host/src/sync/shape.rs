//! How a map shapes rows, without I/O: which fields each side maps, the
//! canonical key text, and a source row turned into the target's row
//! (directions, defaults, value maps). Lookup columns hold the referenced
//! row's key value here (the *logical* form); `refs` turns them into binds.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::{Map, Number, Value};

use crate::map::{FieldMapping, Literal, MapPlan};

/// A row as JSON fields.
pub type Row = Map<String, Value>;

pub use crate::map::Side;

/// The field a mapping names on `side`.
pub fn field_on(mapping: &FieldMapping, side: Side) -> Option<&str> {
    match side {
        Side::Left => mapping.left.as_deref(),
        Side::Right => mapping.right.as_deref(),
    }
}

/// Every mapping of a map: key pairs first, then fields.
pub fn mappings(map: &MapPlan) -> impl Iterator<Item = &FieldMapping> {
    map.key.iter().chain(map.fields.iter())
}

/// Whether a mapping copies values toward `to`.
pub fn writes_to(mapping: &FieldMapping, to: Side) -> bool {
    match to {
        Side::Right => mapping.direction.writes_right(),
        Side::Left => mapping.direction.writes_left(),
    }
}

/// The fields `side` maps, in any direction: what an echo fingerprint and
/// an image cover.
pub fn side_fields(map: &MapPlan, side: Side) -> Vec<String> {
    let mut fields: Vec<String> = mappings(map)
        .filter_map(|m| field_on(m, side).map(str::to_owned))
        .collect();
    fields.sort();
    fields.dedup();
    fields
}

/// The fields an echo fingerprint covers on `side`: the mapped fields
/// without the key's. The key is the row's identity (compared without
/// case, as both services compare keys); a key value that comes back in
/// another case is the same row, not an edit.
pub fn echo_fields(map: &MapPlan, side: Side) -> Vec<String> {
    let key: Vec<&str> = map
        .key
        .iter()
        .filter_map(|pair| field_on(pair, side))
        .collect();
    side_fields(map, side)
        .into_iter()
        .filter(|field| !key.contains(&field.as_str()))
        .collect()
}

/// Whether any mapping writes toward `to` (else that direction is idle).
pub fn flows_to(map: &MapPlan, to: Side) -> bool {
    map.fields.iter().any(|m| writes_to(m, to))
}

/// The key text of a logical row of `side`: the key values in key order,
/// joined by `|` (`\|` and `\\` inside a value). Both services compare
/// keys without case (finops `dataAreaId` is `usmf` where Dataverse's
/// company code is `USMF`), and so does the checkpoint store.
pub fn key_text(map: &MapPlan, side: Side, row: &Row) -> Result<String, String> {
    let mut parts = Vec::with_capacity(map.key.len());
    for pair in &map.key {
        let field = field_on(pair, side).unwrap_or_default();
        let text = match row.get(field) {
            Some(Value::String(text)) if !text.is_empty() => text.clone(),
            Some(Value::Number(number)) => number.to_string(),
            Some(Value::Bool(flag)) => flag.to_string(),
            _ => {
                return Err(format!(
                    "key field `{field}` is empty: every key field must have a value"
                ));
            }
        };
        parts.push(text.replace('\\', "\\\\").replace('|', "\\|"));
    }
    Ok(parts.join("|"))
}

/// The values of a key text, in key order.
pub fn key_values(text: &str) -> Vec<String> {
    let mut values = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            '|' => values.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    values.push(current);
    values
}

/// The source row `row` (logical, `from`'s field names) as the other side's
/// logical row: every mapping that writes that way, with its default and
/// value map. A value the value map has no entry for fails the row.
pub fn map_row(map: &MapPlan, from: Side, row: &Row) -> Result<Row, String> {
    let to = from.other();
    let mut out = Row::new();
    for mapping in mappings(map) {
        if !writes_to(mapping, to) {
            continue;
        }
        let Some(target) = field_on(mapping, to) else {
            continue;
        };
        let value = field_on(mapping, from)
            .and_then(|field| row.get(field))
            .filter(|value| !value.is_null())
            .cloned();
        let value = match value {
            Some(value) if !mapping.value_map.is_empty() => {
                translate(mapping, from, &value).ok_or_else(|| {
                    format!(
                        "field `{}`: the value {value} has no entry in the value map of `{target}`; add it to the map",
                        field_on(mapping, from).unwrap_or_default()
                    )
                })?
            }
            Some(value) => value,
            None => match &mapping.default {
                Some(default) => literal_json(default),
                None => Value::Null,
            },
        };
        out.insert(target.to_owned(), value);
    }
    Ok(out)
}

/// The value map entry for `value`, read forwards from the left, backwards
/// from the right.
fn translate(mapping: &FieldMapping, from: Side, value: &Value) -> Option<Value> {
    mapping.value_map.iter().find_map(|(left, right)| {
        let (matched, result) = match from {
            Side::Left => (left, right),
            Side::Right => (right, left),
        };
        literal_matches(matched, value).then(|| literal_json(result))
    })
}

/// A literal as JSON; decimals stay exact.
pub fn literal_json(literal: &Literal) -> Value {
    match literal {
        Literal::Text(text) => Value::String(text.clone()),
        Literal::Boolean(flag) => Value::Bool(*flag),
        Literal::Integer(number) => Value::from(*number),
        Literal::Decimal(decimal) => decimal_json(*decimal),
    }
}

/// A decimal as an exact JSON number.
pub fn decimal_json(decimal: Decimal) -> Value {
    Number::from_str(&decimal.to_string())
        .map(Value::Number)
        .unwrap_or_else(|_| Value::String(decimal.to_string()))
}

fn literal_matches(literal: &Literal, value: &Value) -> bool {
    match (literal, value) {
        (Literal::Text(text), Value::String(s)) => {
            // finops enums may come qualified: `Microsoft.Dynamics.DataEntities.NoYes'Yes'`.
            s == text
                || s.strip_suffix('\'')
                    .and_then(|s| s.rsplit_once('\''))
                    .is_some_and(|(_, m)| m == text)
        }
        (Literal::Boolean(flag), Value::Bool(b)) => flag == b,
        (Literal::Integer(_) | Literal::Decimal(_), Value::Number(number)) => {
            let expected = match literal {
                Literal::Integer(i) => Decimal::from(*i),
                Literal::Decimal(d) => *d,
                _ => return false,
            };
            Decimal::from_str(&number.to_string()).is_ok_and(|d| d == expected)
        }
        (Literal::Boolean(flag), Value::String(s)) => s.eq_ignore_ascii_case(&flag.to_string()),
        (Literal::Integer(i), Value::String(s)) => s == &i.to_string(),
        _ => false,
    }
}

/// `row` restricted to `fields` (a missing field as `null`).
pub fn restrict(row: &Row, fields: &[String]) -> Row {
    fields
        .iter()
        .map(|field| {
            (
                field.clone(),
                row.get(field).cloned().unwrap_or(Value::Null),
            )
        })
        .collect()
}

/// The OData `$filter` of the rows of `company`: `dataAreaId eq 'usmf'`
/// (a string literal, its quotes doubled; finops compares company ids
/// without regard to case).
pub fn company_eq(field: &str, company: &str) -> String {
    format!("{field} eq '{}'", company.replace('\'', "''"))
}

/// Why a row of `side` is outside the map: its side's filter, or a company
/// the map does not stripe; `None` when it syncs.
pub fn excluded(map: &MapPlan, side: Side, row: &Row) -> Option<String> {
    let filter = map.side(side).filter.as_ref();
    if let Some(filter) = filter
        && !filter.matches(row)
    {
        return Some(format!("does not match the filter `{}`", filter.as_str()));
    }
    if map.companies.is_empty() {
        return None;
    }
    let company = map
        .company_pair()
        .and_then(|pair| field_on(pair, side))
        .and_then(|field| row.get(field))
        .and_then(|value| value.as_str())
        .unwrap_or_default();
    (!map
        .companies
        .iter()
        .any(|c| c.eq_ignore_ascii_case(company)))
    .then(|| {
        format!(
            "company `{company}` is not one of the map's companies ({})",
            map.companies.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BuildOptions, Config};
    use crate::map::NoCatalogue;
    use serde_json::json;

    fn map() -> MapPlan {
        let text = r#"
[systems.fo]
kind = "finops"
url = "http://127.0.0.1:1"
[systems.dv]
kind = "dataverse"
url = "http://127.0.0.1:2"
[[maps]]
name = "m"
left = { system = "fo", table = "T" }
right = { system = "dv", table = "t" }
key = ["Code = code", "dataAreaId = msdyn_company.cdm_companycode via m"]
fields = [
  "Name = name",
  "Limit > limit",
  "Kind < kind default 'x'",
  "> typecode default 3",
  "Flag = flag map { No: false, Yes: true }",
]
"#;
        let config = Config::from_toml("m.toml", text).expect("parses");
        let plan = config
            .build(&BuildOptions {
                registry: Default::default(),
                file: "m.toml".into(),
                base_dir: ".".into(),
                catalogue: &NoCatalogue,
                env: &|_| None,
            })
            .expect("valid");
        plan.maps[0].clone()
    }

    fn row(value: Value) -> Row {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn key_text_escapes_and_reads_back() {
        let map = map();
        let left = row(json!({"Code": "A|B\\C", "dataAreaId": "usmf"}));
        let text = key_text(&map, Side::Left, &left).expect("key");
        assert_eq!(text, "A\\|B\\\\C|usmf");
        assert_eq!(key_values(&text), vec!["A|B\\C", "usmf"]);
        let right = row(json!({"code": "A|B\\C", "msdyn_company": "usmf"}));
        assert_eq!(key_text(&map, Side::Right, &right).expect("key"), text);
        let error = key_text(&map, Side::Left, &row(json!({"Code": ""}))).expect_err("empty");
        assert!(error.contains("`Code`"), "{error}");
    }

    #[test]
    fn rows_map_by_direction_with_defaults_and_value_maps() {
        let map = map();
        let left = row(
            json!({"Code": "A", "dataAreaId": "usmf", "Name": "N", "Limit": 10.50, "Kind": "k", "Flag": "Yes"}),
        );
        let right = map_row(&map, Side::Left, &left).expect("maps");
        assert_eq!(
            Value::Object(right),
            json!({"code": "A", "msdyn_company": "usmf", "name": "N", "limit": 10.50, "typecode": 3, "flag": true})
        );
        let back = map_row(
            &map,
            Side::Right,
            &row(json!({"code": "A", "msdyn_company": "usmf", "name": "N", "flag": false})),
        )
        .expect("maps");
        assert_eq!(
            Value::Object(back),
            json!({"Code": "A", "dataAreaId": "usmf", "Name": "N", "Kind": "x", "Flag": "No"})
        );
        let error =
            map_row(&map, Side::Left, &row(json!({"Flag": "Maybe"}))).expect_err("unmapped");
        assert!(
            error.contains("\"Maybe\"") && error.contains("`flag`"),
            "{error}"
        );
    }

    #[test]
    fn side_fields_cover_every_direction() {
        let map = map();
        assert_eq!(
            side_fields(&map, Side::Left),
            vec!["Code", "Flag", "Kind", "Limit", "Name", "dataAreaId"]
        );
        assert_eq!(
            side_fields(&map, Side::Right),
            vec![
                "code",
                "flag",
                "kind",
                "limit",
                "msdyn_company",
                "name",
                "typecode"
            ]
        );
    }
}
