//! The JSON row format of `dualwrite plugin run`.
//!
//! A rows file is a JSON array of objects, one per row. Text, whole numbers,
//! other numbers, booleans and `null` are written naturally; the types JSON
//! cannot tell apart are tagged objects with one key:
//!
//! | type | JSON |
//! | --- | --- |
//! | decimal | `{"decimal": "1234.5600"}` (a string: exact) |
//! | date | `{"date": "2026-11-30"}` |
//! | date-time | `{"datetime": "2026-11-30T09:30:00Z"}` (RFC 3339) |
//! | guid | `{"guid": "0b4b9c1e-…"}` |
//! | choice | `{"choice": 3}` |
//! | reference | `{"reference": {"table": "accounts", "id": "…", "key": {"accountnumber": "A-1"}}}` |
//! | float | a number with a fraction or exponent, or `{"float": 1.5}` |
//!
//! The batch's schema is every field name in the order it first appears; a
//! row without a field gets `null` for it. Output rows use the same format.

use super::bindings::{
    Batch, Date, DateTime, Guid, KeyField, Outcome, Reference, Transformed, Value, Verdict,
};
use chrono::{Datelike, NaiveDate, TimeZone, Utc};
use serde_json::{Map, Number, Value as Json, json};
use std::str::FromStr;

/// A rows file that cannot be read, with the row and field at fault.
#[derive(Debug, thiserror::Error)]
pub enum RowsError {
    /// Not JSON at all.
    #[error("the rows are not valid JSON: {0}")]
    Syntax(#[from] serde_json::Error),
    /// Not an array of objects.
    #[error("the rows must be a JSON array of objects (one per row); {0}")]
    Shape(String),
    /// A value that cannot be read.
    #[error("row {row}, field `{field}`: {problem}")]
    Value {
        /// The row's index.
        row: usize,
        /// The field.
        field: String,
        /// What is wrong and what is expected.
        problem: String,
    },
}

/// Reads a rows file into a batch.
pub fn parse_rows(text: &str) -> Result<Batch, RowsError> {
    let Json::Array(rows) = serde_json::from_str::<Json>(text)? else {
        return Err(RowsError::Shape("the top level is not an array".into()));
    };
    let mut fields: Vec<String> = Vec::new();
    let mut objects = Vec::with_capacity(rows.len());
    for (index, row) in rows.into_iter().enumerate() {
        let Json::Object(object) = row else {
            return Err(RowsError::Shape(format!("row {index} is not an object")));
        };
        for key in object.keys() {
            if !fields.contains(key) {
                fields.push(key.clone());
            }
        }
        objects.push(object);
    }
    let rows = objects
        .into_iter()
        .enumerate()
        .map(|(row, mut object)| {
            fields
                .iter()
                .map(|field| match object.remove(field) {
                    None => Ok(Value::Null),
                    Some(json) => value_from_json(json).map_err(|problem| RowsError::Value {
                        row,
                        field: field.clone(),
                        problem,
                    }),
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Batch { fields, rows })
}

/// One value from its JSON form.
pub fn value_from_json(json: Json) -> Result<Value, String> {
    Ok(match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Boolean(b),
        Json::String(text) => Value::Text(text),
        Json::Number(number) => match number.as_i64() {
            Some(n) => Value::Integer(n),
            None => Value::Float(number.as_f64().ok_or("a number out of range")?),
        },
        Json::Array(_) => return Err("a list is not a field value".into()),
        Json::Object(object) => tagged(object)?,
    })
}

fn tagged(object: Map<String, Json>) -> Result<Value, String> {
    const EXPECTED: &str = "an object value must have one key: decimal, date, datetime, guid, choice, reference or float";
    let mut entries = object.into_iter();
    let (Some((tag, inner)), None) = (entries.next(), entries.next()) else {
        return Err(EXPECTED.into());
    };
    let text = |inner: &Json| {
        inner
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("`{tag}` takes a string"))
    };
    Ok(match tag.as_str() {
        "decimal" => {
            let text = match &inner {
                Json::Number(n) => n.to_string(),
                other => text(other)?,
            };
            let decimal = rust_decimal::Decimal::from_str_exact(&text).map_err(|error| {
                format!("`{text}` is not a decimal of at most 28 digits: {error}")
            })?;
            Value::Decimal(decimal.into())
        }
        "date" => {
            let text = text(&inner)?;
            let date = NaiveDate::from_str(&text)
                .map_err(|error| format!("`{text}` is not a date (YYYY-MM-DD): {error}"))?;
            Value::Date(Date {
                year: date.year(),
                month: date.month() as u8,
                day: date.day() as u8,
            })
        }
        "datetime" => {
            let text = text(&inner)?;
            let time = chrono::DateTime::parse_from_rfc3339(&text)
                .map_err(|error| format!("`{text}` is not an RFC 3339 date-time: {error}"))?;
            Value::DateTime(DateTime {
                seconds: time.timestamp(),
                nanoseconds: time.timestamp_subsec_nanos(),
            })
        }
        "guid" => Value::Guid(guid(&text(&inner)?)?),
        "choice" => Value::Choice(
            inner
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or("`choice` takes a whole number")?,
        ),
        "float" => Value::Float(inner.as_f64().ok_or("`float` takes a number")?),
        "reference" => {
            let Json::Object(mut reference) = inner else {
                return Err("`reference` takes an object with `table`, and `id` or `key`".into());
            };
            let table = reference
                .remove("table")
                .and_then(|t| t.as_str().map(str::to_owned))
                .ok_or("a reference needs a `table`")?;
            let id = match reference.remove("id") {
                None | Some(Json::Null) => None,
                Some(id) => Some(guid(
                    id.as_str().ok_or("a reference's `id` is a GUID string")?,
                )?),
            };
            let key = match reference.remove("key") {
                None => Vec::new(),
                Some(Json::Object(key)) => key
                    .into_iter()
                    .map(|(name, value)| KeyField {
                        value: match value {
                            Json::String(text) => text,
                            other => other.to_string(),
                        },
                        name,
                    })
                    .collect(),
                Some(_) => {
                    return Err("a reference's `key` is an object of field names to values".into());
                }
            };
            if let Some(unknown) = reference.keys().next() {
                return Err(format!(
                    "a reference has no `{unknown}`; it has table, id and key"
                ));
            }
            Value::Reference(Reference { table, id, key })
        }
        _ => return Err(EXPECTED.into()),
    })
}

fn guid(text: &str) -> Result<Guid, String> {
    uuid::Uuid::parse_str(text)
        .map(Guid::from)
        .map_err(|error| format!("`{text}` is not a GUID: {error}"))
}

/// One value in its JSON form.
pub fn value_to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Integer(n) => Json::Number((*n).into()),
        Value::Float(f) => {
            Number::from_f64(*f).map_or_else(|| json!({ "float": f.to_string() }), Json::Number)
        }
        Value::Decimal(d) => json!({ "decimal": d.to_decimal().map(|d| d.to_string()) }),
        Value::Text(text) => Json::String(text.clone()),
        Value::Date(d) => json!({ "date": format!("{:04}-{:02}-{:02}", d.year, d.month, d.day) }),
        Value::DateTime(t) => json!({
            "datetime": Utc
                .timestamp_opt(t.seconds, t.nanoseconds)
                .single()
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        }),
        Value::Guid(g) => json!({ "guid": uuid::Uuid::from(*g).to_string() }),
        Value::Choice(c) => json!({ "choice": c }),
        Value::Reference(r) => {
            let key: Map<String, Json> = r
                .key
                .iter()
                .map(|field| (field.name.clone(), Json::String(field.value.clone())))
                .collect();
            json!({ "reference": {
                "table": r.table,
                "id": r.id.map(|id| uuid::Uuid::from(id).to_string()),
                "key": key,
            }})
        }
    }
}

/// A filter's verdicts, as JSON: one object per row.
pub fn verdicts_to_json(verdicts: &[Verdict]) -> Json {
    Json::Array(
        verdicts
            .iter()
            .enumerate()
            .map(|(row, verdict)| match verdict {
                Verdict::Keep => json!({ "row": row, "outcome": "keep" }),
                Verdict::Skip(reason) => json!({ "row": row, "outcome": "skip", "reason": reason }),
                Verdict::Fail(message) => {
                    json!({ "row": row, "outcome": "fail", "message": message })
                }
            })
            .collect(),
    )
}

/// A transform's outcomes, as JSON: one object per row, kept rows in full
/// (the input with the transform's changes).
pub fn transformed_to_json(batch: &Batch, result: &Transformed) -> Json {
    Json::Array(
        result
            .outcomes
            .iter()
            .enumerate()
            .map(|(row, outcome)| match outcome {
                Outcome::Unchanged | Outcome::Changed(_) => {
                    let values = result
                        .row(batch, row)
                        .unwrap_or_default()
                        .iter()
                        .zip(&result.fields)
                        .filter_map(|(v, f)| Some((f.clone(), value_to_json(v.as_ref()?))))
                        .collect::<Map<_, _>>();
                    let changed = matches!(outcome, Outcome::Changed(_));
                    json!({ "row": row, "outcome": "keep", "changed": changed, "values": values })
                }
                Outcome::Skip(reason) => json!({ "row": row, "outcome": "skip", "reason": reason }),
                Outcome::Fail(message) => {
                    json!({ "row": row, "outcome": "fail", "message": message })
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips() {
        let text = r#"[
            {"name": "Contoso", "n": 3, "f": 1.5, "ok": true, "none": null,
             "limit": {"decimal": "1234.5600"}, "born": {"date": "1990-02-28"},
             "at": {"datetime": "2026-11-30T09:30:00Z"},
             "id": {"guid": "0b4b9c1e-1d2f-4a5b-8c7d-9e0f1a2b3c4d"}, "type": {"choice": 3},
             "parent": {"reference": {"table": "accounts", "key": {"accountnumber": "A-1"}}}},
            {"name": "Fabrikam"}
        ]"#;
        let batch = parse_rows(text).expect("valid rows");
        assert_eq!(batch.fields.len(), 11);
        assert_eq!(batch.rows[1][1], Value::Null, "a missing field is null");
        let json: Vec<Json> = batch.rows[0].iter().map(value_to_json).collect();
        let again: Vec<Value> = json
            .into_iter()
            .map(|j| value_from_json(j).expect("round trip"))
            .collect();
        assert_eq!(again, batch.rows[0]);
    }

    #[test]
    fn errors_name_the_row_and_field() {
        let error =
            parse_rows(r#"[{"a": 1}, {"a": {"decimal": "1.2.3"}}]"#).expect_err("bad decimal");
        assert!(
            error
                .to_string()
                .starts_with("row 1, field `a`: `1.2.3` is not a decimal"),
            "{error}"
        );
        let error = parse_rows(r#"[{"a": {"money": 1}}]"#).expect_err("unknown tag");
        assert!(
            error.to_string().contains("one key: decimal, date"),
            "{error}"
        );
        let error = parse_rows(r#"{"a": 1}"#).expect_err("not an array");
        assert!(error.to_string().contains("array of objects"), "{error}");
    }
}
