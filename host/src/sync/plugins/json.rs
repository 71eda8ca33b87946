//! The services' JSON rows as plugin [`Rows`] and back.
//!
//! A service value becomes a plugin value the way the services write them:
//! text as text, whole numbers as integers, numbers with a fraction as exact
//! decimals (a float only when a number is beyond a decimal's 28 digits),
//! booleans and nulls as such, anything else as its JSON text. Going back,
//! decimals are written as exact JSON numbers.
//!
//! - [`from_maps`] and [`write_back`]: the engine's rows (one
//!   `serde_json::Map` each) into `Rows`, and only the cells a plugin
//!   changed back into them.
//! - [`from_json`] and [`to_json`]: a JSON array of row objects (a
//!   service's response body) straight into `Rows` and out again, with no
//!   `serde_json::Map` or `Value` per row: keys are looked up as borrowed
//!   text, values read from their raw JSON text.

use std::fmt::{self, Write as _};
use std::str::FromStr;

use chrono::{TimeZone, Utc};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value as Json};

use crate::plugin::bindings::wire;
use crate::plugin::{Rows, ValueRef};

use super::Fate;
use crate::sync::shape::{Row, decimal_json};

/// The rows of `maps`, every field any of them has (in the order first
/// seen); a row without a field does not have it in the result either.
pub fn from_maps<'a>(maps: impl IntoIterator<Item = &'a Row>) -> Rows {
    let mut rows = Rows::new();
    for map in maps {
        let row = rows.push_row();
        for (position, (name, value)) in map.iter().enumerate() {
            let column = rows.field_near(name, position);
            put_json(&mut rows, row, column, value);
        }
    }
    rows
}

/// Writes what the plugins changed in the kept rows back into `maps` (row
/// `i` of `rows` is `maps[i]`): a changed cell is set, a cell a plugin left
/// out is removed; nothing else is touched.
pub fn write_back<'a>(rows: &Rows, maps: impl IntoIterator<Item = &'a mut Row>, fates: &[Fate]) {
    for ((index, map), fate) in maps.into_iter().enumerate().zip(fates) {
        if *fate != Fate::Keep || !rows.row_changed(index) {
            continue;
        }
        for (column, name) in rows.fields().iter().enumerate() {
            if !rows.is_changed(index, column) {
                continue;
            }
            match rows.get(index, column) {
                Some(value) => map.insert(name.clone(), to_service_json(value)),
                None => map.remove(name),
            };
        }
    }
}

/// A JSON array of row objects, read straight into rows (fields in the
/// order first seen).
pub fn from_json(text: &str) -> Result<Rows, serde_json::Error> {
    let mut rows = Rows::new();
    let mut deserializer = serde_json::Deserializer::from_str(text);
    de::Deserializer::deserialize_seq(&mut deserializer, RowsVisitor(&mut rows))?;
    deserializer.end()?;
    Ok(rows)
}

/// The kept rows (`keep[i]` for row `i`) as a JSON array of row objects,
/// each with the fields it has, in column order.
pub fn to_json(rows: &Rows, keep: impl Fn(usize) -> bool) -> String {
    let mut out = String::with_capacity(64 * rows.len() * rows.fields().len().max(1));
    out.push('[');
    let mut first_row = true;
    let names: Vec<String> = rows.fields().iter().map(|name| quoted(name)).collect();
    for row in (0..rows.len()).filter(|&row| keep(row)) {
        if !first_row {
            out.push(',');
        }
        first_row = false;
        out.push('{');
        let mut first_field = true;
        for (column, name) in names.iter().enumerate() {
            let Some(value) = rows.get(row, column) else {
                continue;
            };
            if !first_field {
                out.push(',');
            }
            first_field = false;
            out.push_str(name);
            out.push(':');
            write_value(&mut out, value);
        }
        out.push('}');
    }
    out.push(']');
    out
}

/// A plugin value as the services write it.
pub fn to_service_json(value: ValueRef<'_>) -> Json {
    match value {
        ValueRef::Null => Json::Null,
        ValueRef::Boolean(b) => Json::Bool(b),
        ValueRef::Integer(i) => Json::from(i),
        ValueRef::Float(f) => Number::from_f64(f).map_or(Json::Null, Json::Number),
        ValueRef::Decimal(d) => d.to_decimal().map_or(Json::Null, decimal_json),
        ValueRef::Text(s) => Json::String(s.to_owned()),
        ValueRef::Date(d) => Json::String(date_text(d)),
        ValueRef::DateTime(t) => date_time_text(t).map_or(Json::Null, Json::String),
        ValueRef::Guid(g) => Json::String(guid_text(g)),
        ValueRef::Choice(c) => Json::from(c),
        ValueRef::Reference(r) => r
            .key
            .first()
            .map_or(Json::Null, |k| Json::String(k.value.clone())),
    }
}

/// Sets a cell from a service value.
fn put_json(rows: &mut Rows, row: usize, column: usize, value: &Json) {
    match value {
        Json::Null => rows.put(row, column, ValueRef::Null),
        Json::Bool(b) => rows.put(row, column, ValueRef::Boolean(*b)),
        Json::String(s) => rows.put(row, column, ValueRef::Text(s)),
        Json::Number(n) => rows.put(row, column, number(n.as_str())),
        Json::Array(_) | Json::Object(_) => {
            rows.put(row, column, ValueRef::Text(&value.to_string()))
        }
    }
}

/// A JSON number's text as a plugin value: a whole number that fits as an
/// integer, else an exact decimal, else (past 28 digits) a float.
fn number(text: &str) -> ValueRef<'static> {
    if let Ok(n) = i64::from_str(text) {
        return ValueRef::Integer(n);
    }
    match rust_decimal::Decimal::from_str_exact(text) {
        Ok(d) => ValueRef::Decimal(d.into()),
        Err(_) => ValueRef::Float(f64::from_str(text).unwrap_or_default()),
    }
}

fn write_value(out: &mut String, value: ValueRef<'_>) {
    match value {
        ValueRef::Null => out.push_str("null"),
        ValueRef::Boolean(b) => out.push_str(if b { "true" } else { "false" }),
        ValueRef::Integer(n) => {
            let _ = write!(out, "{n}");
        }
        ValueRef::Choice(c) => {
            let _ = write!(out, "{c}");
        }
        ValueRef::Decimal(d) => match d.to_decimal() {
            Some(d) => {
                let _ = write!(out, "{d}");
            }
            None => out.push_str("null"),
        },
        ValueRef::Text(s) => out.push_str(&quoted(s)),
        other => out.push_str(&to_service_json(other).to_string()),
    }
}

fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

fn date_text(d: wire::Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)
}

fn date_time_text(t: wire::DateTime) -> Option<String> {
    Utc.timestamp_opt(t.seconds, t.nanoseconds)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

fn guid_text(g: wire::Guid) -> String {
    uuid::Uuid::from_u128((u128::from(g.hi) << 64) | u128::from(g.lo)).to_string()
}

/// Reads the top-level array: one row per element.
struct RowsVisitor<'r>(&'r mut Rows);

impl<'de> Visitor<'de> for RowsVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of row objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(RowSeed(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

/// Reads one row object into a new row.
struct RowSeed<'r>(&'r mut Rows);

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a row object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let rows = self.0;
        let row = rows.push_row();
        let mut position = 0;
        while let Some(column) = map.next_key_seed(FieldSeed(&mut *rows, position))? {
            position += 1;
            let raw: &RawValue = map.next_value()?;
            put_raw(rows, row, column, raw.get()).map_err(de::Error::custom)?;
        }
        Ok(())
    }
}

/// Reads a key (the row's how-manyth) as the column it names (added when
/// new), without copying it unless it is new or escaped.
struct FieldSeed<'r>(&'r mut Rows, usize);

impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
    type Value = usize;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<usize, E> {
        Ok(self.0.field_near(name, self.1))
    }
}

/// Sets a cell from a value's raw JSON text.
fn put_raw(rows: &mut Rows, row: usize, column: usize, raw: &str) -> Result<(), serde_json::Error> {
    match raw.as_bytes().first() {
        Some(b'"') => match raw.get(1..raw.len() - 1) {
            Some(inner) if !inner.contains('\\') => rows.put(row, column, ValueRef::Text(inner)),
            _ => {
                let text: String = serde_json::from_str(raw)?;
                rows.put(row, column, ValueRef::Text(&text));
            }
        },
        Some(b'n') => rows.put(row, column, ValueRef::Null),
        Some(b't') => rows.put(row, column, ValueRef::Boolean(true)),
        Some(b'f') => rows.put(row, column, ValueRef::Boolean(false)),
        Some(b'{' | b'[') => {
            let value: Json = serde_json::from_str(raw)?;
            rows.put(row, column, ValueRef::Text(&value.to_string()));
        }
        _ => rows.put(row, column, number(raw)),
    }
    Ok(())
}

/// The rows of a JSON text through `serde_json::Map`s, for comparison with
/// [`from_json`] (the engine's connectors read rows into maps).
pub fn from_json_via_maps(text: &str) -> Result<Rows, serde_json::Error> {
    let maps: Vec<Map<String, Json>> = serde_json::from_str(text)?;
    Ok(from_maps(&maps))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ROWS: &str = r#"[
        {"name": "Contoso \"Ltd\"", "limit": 1234.5600, "count": 3, "ok": true, "none": null,
         "big": 123456789012345678901234567890.5, "tags": ["a", 1], "é": "ü"},
        {"name": "Fabrikam", "extra": {"k": 1}}
    ]"#;

    #[test]
    fn straight_from_json_reads_what_the_maps_read() {
        let straight = from_json(ROWS).expect("valid rows");
        let maps = from_json_via_maps(ROWS).expect("valid rows");
        assert_eq!(straight.fields(), maps.fields());
        assert_eq!(straight.len(), 2);
        for row in 0..2 {
            for column in 0..straight.fields().len() {
                assert_eq!(
                    straight.get(row, column),
                    maps.get(row, column),
                    "row {row}, field {}",
                    straight.fields()[column]
                );
            }
        }
        let limit = straight.position("limit").expect("the field");
        assert_eq!(
            straight.get(0, limit).map(to_service_json),
            serde_json::from_str::<Json>("1234.5600").ok(),
            "a decimal keeps its places"
        );
        assert_eq!(straight.get(1, limit), None, "a row without the field");
        let tags = straight.position("tags").expect("the field");
        assert_eq!(straight.get(0, tags), Some(ValueRef::Text(r#"["a",1]"#)));
    }

    #[test]
    fn rows_go_back_to_the_same_json() {
        let rows = from_json(ROWS).expect("valid rows");
        let text = to_json(&rows, |_| true);
        let again: Json = serde_json::from_str(&text).expect("valid JSON");
        let mut expected: Json = serde_json::from_str(ROWS).expect("valid JSON");
        // Lists and objects cross as their JSON text; a number past a
        // decimal's 28 digits as a float.
        let big: Json = serde_json::from_str("1.2345678901234568e29").expect("a number");
        for (key, value) in [
            ("tags", Json::String(r#"["a",1]"#.into())),
            ("extra", Json::String(r#"{"k":1}"#.into())),
            ("big", big),
        ] {
            for row in expected.as_array_mut().into_iter().flatten() {
                if let Some(slot) = row.get_mut(key) {
                    *slot = value.clone();
                }
            }
        }
        assert_eq!(again, expected);
        assert_eq!(
            serde_json::from_str::<Json>(&to_json(&rows, |row| row == 1)).expect("valid"),
            json!([{"name": "Fabrikam", "extra": "{\"k\":1}"}])
        );
    }

    #[test]
    fn what_is_not_an_array_of_objects_is_an_error() {
        for bad in [r#"{"a": 1}"#, r#"[1]"#, r#"[{"a": 1}"#, r#"[{"a": 1}] x"#] {
            assert!(from_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_changed_cells_are_written_back() {
        let mut maps: Vec<Row> = vec![
            json!({"a": 1, "b": "x"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            json!({"a": 2}).as_object().cloned().unwrap_or_default(),
        ];
        let mut rows = from_maps(&maps);
        let batch = rows.wire_batch(&[0, 1], &[0]);
        assert_eq!(batch.values.len(), 2);
        // A plugin result that sets `a` of row 0 and leaves `b` out of row 1
        // (which does not have it: nothing to remove).
        let result = wire::Transformed {
            fields: vec!["a".into(), "b".into()],
            text: String::new(),
            references: Vec::new(),
            outcomes: vec![wire::Outcome::Changed, wire::Outcome::Changed],
            changes: vec![
                wire::FieldChange {
                    row: 0,
                    field: 0,
                    value: Some(wire::Value::Integer(10)),
                },
                wire::FieldChange {
                    row: 1,
                    field: 1,
                    value: None,
                },
            ],
        };
        rows.apply(&[0, 1], &[0], &result);
        write_back(&rows, maps.iter_mut(), &[Fate::Keep, Fate::Keep]);
        assert_eq!(Json::Object(maps[0].clone()), json!({"a": 10, "b": "x"}));
        assert_eq!(Json::Object(maps[1].clone()), json!({"a": 2}));
    }
}
