//! [`Row`]: one row of a batch, with typed getters and setters.
//!
//! A row shares its batch's schema (the field names, sent once per batch) and
//! owns its values. Setting a field the schema does not have adds it; the
//! SDK then adds that field to the result's schema. A row remembers which
//! fields it changed, so only those cross back (an untouched row crosses
//! back as `unchanged`, with no values at all).

use crate::bindings::types::{Date, DateTime, FieldChange, Reference, Value};
use crate::error::RowError;
use rust_decimal::Decimal;
use std::rc::Rc;

/// One row of a batch.
#[derive(Debug, Clone)]
pub struct Row {
    schema: Rc<[String]>,
    /// One slot per schema field; `None` when the field was removed.
    values: Vec<Option<Value>>,
    /// Fields set by the plugin that the schema does not have.
    added: Vec<(String, Option<Value>)>,
    /// The schema fields the plugin changed, each once, in the order it
    /// first changed them.
    touched: Vec<u32>,
}

macro_rules! getters {
    ($($(#[$doc:meta])* $name:ident, $opt:ident -> $ty:ty, $expected:literal, $pat:pat => $out:expr;)*) => {
        $(
            $(#[$doc])*
            ///
            /// An error when the field is missing, empty or of another type.
            pub fn $name(&self, field: &str) -> Result<$ty, RowError> {
                match self.$opt(field)? {
                    Some(value) => Ok(value),
                    None => Err(RowError::Null { field: field.to_owned(), expected: $expected }),
                }
            }

            $(#[$doc])*
            ///
            /// `None` when the field is empty; an error when it is missing or
            /// of another type.
            pub fn $opt(&self, field: &str) -> Result<Option<$ty>, RowError> {
                match self.value(field)? {
                    Value::Null => Ok(None),
                    $pat => Ok(Some($out)),
                    other => Err(RowError::WrongType {
                        field: field.to_owned(),
                        expected: $expected,
                        found: other.type_name(),
                    }),
                }
            }
        )*
    };
}

impl Row {
    /// A row of `values` under `schema`, one value per field.
    pub fn new(schema: Rc<[String]>, values: Vec<Value>) -> Self {
        debug_assert_eq!(schema.len(), values.len(), "one value per field");
        Row {
            schema,
            values: values.into_iter().map(Some).collect(),
            added: Vec::new(),
            touched: Vec::new(),
        }
    }

    /// The field's value, or `None` when the row does not have the field.
    pub fn get(&self, field: &str) -> Option<&Value> {
        match self.schema.iter().position(|name| name == field) {
            Some(index) => self.values[index].as_ref(),
            None => self
                .added
                .iter()
                .find(|(name, _)| name == field)
                .and_then(|(_, value)| value.as_ref()),
        }
    }

    /// Whether the row has the field (even if it is empty).
    pub fn has(&self, field: &str) -> bool {
        self.get(field).is_some()
    }

    /// The field's value; an error when the row does not have the field.
    pub fn value(&self, field: &str) -> Result<&Value, RowError> {
        self.get(field).ok_or_else(|| RowError::Missing {
            field: field.to_owned(),
        })
    }

    getters! {
        /// The field as text.
        text, opt_text -> &str, "text", Value::Text(text) => text.as_str();
        /// The field as a whole number.
        integer, opt_integer -> i64, "integer", Value::Integer(n) => *n;
        /// The field as a float (measurements only; money is a decimal).
        float, opt_float -> f64, "float", Value::Float(n) => *n;
        /// The field as a yes/no value.
        boolean, opt_boolean -> bool, "boolean", Value::Boolean(b) => *b;
        /// The field as a date.
        date, opt_date -> Date, "date", Value::Date(d) => *d;
        /// The field as a date-time (UTC).
        date_time, opt_date_time -> DateTime, "date-time", Value::DateTime(d) => *d;
        /// The field as a GUID.
        guid, opt_guid -> u128, "guid", Value::Guid(g) => u128::from(*g);
        /// The field as a choice (option set) value.
        choice, opt_choice -> i32, "choice", Value::Choice(c) => *c;
        /// The field as a reference to a row of another table.
        reference, opt_reference -> &Reference, "reference", Value::Reference(r) => r;
    }

    /// The field as an exact decimal; an integer field reads as a decimal
    /// too.
    ///
    /// An error when the field is missing, empty or of another type.
    pub fn decimal(&self, field: &str) -> Result<Decimal, RowError> {
        self.opt_decimal(field)?.ok_or_else(|| RowError::Null {
            field: field.to_owned(),
            expected: "decimal",
        })
    }

    /// The field as an exact decimal; an integer field reads as a decimal
    /// too.
    ///
    /// `None` when the field is empty; an error when it is missing or of
    /// another type.
    pub fn opt_decimal(&self, field: &str) -> Result<Option<Decimal>, RowError> {
        let wrong = |found| RowError::WrongType {
            field: field.to_owned(),
            expected: "decimal",
            found,
        };
        match self.value(field)? {
            Value::Null => Ok(None),
            Value::Integer(n) => Ok(Some(Decimal::from(*n))),
            Value::Decimal(d) => d
                .to_decimal()
                .map(Some)
                .ok_or_else(|| wrong("a malformed decimal")),
            other => Err(wrong(other.type_name())),
        }
    }

    /// Sets the field, adding it when the row does not have it. Setting a
    /// field to the value it already holds does not count as a change.
    pub fn set(&mut self, field: &str, value: impl Into<Value>) {
        self.put(field, Some(value.into()));
    }

    /// Empties the field (the target's value is cleared).
    pub fn set_null(&mut self, field: &str) {
        self.put(field, Some(Value::Null));
    }

    /// Leaves the field out of the row: the target keeps what it has.
    pub fn remove(&mut self, field: &str) {
        self.put(field, None);
    }

    /// The fields the row has, with their values, in schema order then in
    /// the order they were added.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &Value)> {
        let schema = self
            .schema
            .iter()
            .zip(&self.values)
            .filter_map(|(name, value)| Some((name.as_str(), value.as_ref()?)));
        let added = self
            .added
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.as_ref()?)));
        schema.chain(added)
    }

    /// Whether the plugin changed the row.
    pub fn is_changed(&self) -> bool {
        !self.touched.is_empty() || !self.added.is_empty()
    }

    fn put(&mut self, field: &str, value: Option<Value>) {
        if let Some(index) = self.schema.iter().position(|name| name == field) {
            if self.values[index] != value {
                self.values[index] = value;
                let index = index as u32;
                if !self.touched.contains(&index) {
                    self.touched.push(index);
                }
            }
        } else if let Some(added) = self.added.iter_mut().find(|(name, _)| name == field) {
            added.1 = value;
        } else if value.is_some() {
            self.added.push((field.to_owned(), value));
        }
    }

    /// Takes the row apart for the wire: the changes it made, pointing into
    /// `schema` (the batch's fields, then the fields rows added).
    pub(crate) fn into_changes(self, schema: &[String]) -> Vec<FieldChange> {
        let mut values = self.values;
        let mut changes: Vec<FieldChange> = self
            .touched
            .into_iter()
            .map(|field| FieldChange {
                field,
                value: values[field as usize].take(),
            })
            .collect();
        let base = self.schema.len();
        for (name, value) in self.added {
            if let Some(offset) = schema[base..].iter().position(|field| *field == name) {
                changes.push(FieldChange {
                    field: (base + offset) as u32,
                    value,
                });
            }
        }
        changes
    }

    /// The names of the fields the plugin added.
    pub(crate) fn added_fields(&self) -> impl Iterator<Item = &str> {
        self.added.iter().map(|(name, _)| name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn row() -> Row {
        let schema: Rc<[String]> = ["name", "limit", "count"].map(String::from).into();
        Row::new(
            schema,
            vec![
                Value::Text("Contoso".into()),
                Value::Decimal(Decimal::from_str("12.50").expect("decimal").into()),
                Value::Null,
            ],
        )
    }

    #[test]
    fn typed_getters_check_the_type() {
        let row = row();
        assert_eq!(row.text("name"), Ok("Contoso"));
        assert_eq!(
            row.decimal("limit").map(|d| d.to_string()),
            Ok("12.50".into())
        );
        assert_eq!(row.opt_integer("count"), Ok(None));
        assert_eq!(
            row.integer("count"),
            Err(RowError::Null {
                field: "count".into(),
                expected: "integer"
            })
        );
        assert_eq!(
            row.integer("name"),
            Err(RowError::WrongType {
                field: "name".into(),
                expected: "integer",
                found: "text"
            })
        );
        assert_eq!(
            row.text("missing"),
            Err(RowError::Missing {
                field: "missing".into()
            })
        );
    }

    #[test]
    fn setting_the_same_value_is_not_a_change() {
        let mut row = row();
        row.set("name", "Contoso");
        assert!(!row.is_changed());
        row.set("name", "Fabrikam");
        assert!(row.is_changed());
    }

    #[test]
    fn only_changes_go_to_the_wire() {
        let mut row = row();
        row.set("second", 2i64);
        row.set("first", 1i64);
        row.remove("limit");
        row.set("name", "Contoso");
        assert_eq!(row.added_fields().collect::<Vec<_>>(), ["second", "first"]);
        let schema: Vec<String> = ["name", "limit", "count", "first", "other", "second"]
            .map(String::from)
            .into();
        assert_eq!(
            row.into_changes(&schema),
            vec![
                FieldChange {
                    field: 1,
                    value: None
                },
                FieldChange {
                    field: 5,
                    value: Some(Value::Integer(2))
                },
                FieldChange {
                    field: 3,
                    value: Some(Value::Integer(1))
                },
            ]
        );
    }
}
