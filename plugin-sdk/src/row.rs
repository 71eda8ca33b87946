//! [`Row`]: one row of a batch, with typed getters and setters.
//!
//! A row is a view into its batch: the field names (sent once per batch), the
//! batch's flat list of values and its one text buffer are shared by every
//! row, so reading a field copies nothing (`row.text("name")` borrows from
//! the batch). Setting a field records the change; setting a field the schema
//! does not have adds it, and the SDK then adds that field to the result's
//! schema. Only changes cross back: an untouched row crosses back as
//! `unchanged`, with no values at all.
//!
//! The batch loop keeps one `Row` for a whole batch and moves it from row to
//! row, so a row costs no allocation of its own.

use crate::bindings::types::{self as wire, Date, DateTime, Reference};
use crate::error::RowError;
use crate::value::{Value, ValueRef};
use rust_decimal::Decimal;
use std::cell::OnceCell;
use std::rc::Rc;

/// What the rows of a batch share: the schema, the values of every row, and
/// the text they point into.
#[derive(Debug)]
pub(crate) struct Shared {
    pub fields: Vec<String>,
    pub text: String,
    pub references: Vec<Reference>,
    pub values: Vec<wire::Value>,
}

impl Shared {
    /// A batch's shared data, or what is malformed about it (a host that
    /// keeps the contract never sends one).
    pub fn new(batch: wire::Batch) -> Result<Shared, String> {
        let width = batch.fields.len();
        let expected = (batch.rows as usize).checked_mul(width);
        if expected != Some(batch.values.len()) {
            return Err(format!(
                "the host sent {} values for {} rows of {} fields",
                batch.values.len(),
                batch.rows,
                width
            ));
        }
        if let Some(position) = batch
            .values
            .iter()
            .position(|value| ValueRef::of_wire(value, &batch.text, &batch.references).is_none())
        {
            return Err(format!(
                "the host sent a text or reference value (row {}, field `{}`) outside the batch's",
                position / width.max(1),
                batch.fields[position % width.max(1)]
            ));
        }
        Ok(Shared {
            fields: batch.fields,
            text: batch.text,
            references: batch.references,
            values: batch.values,
        })
    }
}

/// One row of a batch.
#[derive(Debug, Clone)]
pub struct Row {
    shared: Rc<Shared>,
    /// The position of the row's first value in `shared.values`.
    start: usize,
    /// Owned copies of schema fields, made when [`Row::get`] asks for one.
    owned: Vec<OnceCell<Value>>,
    /// The schema fields the plugin changed, each once, in the order it
    /// first changed them; `None` when it removed the field.
    changed: Vec<(u32, Option<Value>)>,
    /// Fields set or removed by the plugin that the schema does not have.
    added: Vec<(String, Option<Value>)>,
}

macro_rules! getters {
    ($($(#[$doc:meta])* $name:ident, $opt:ident -> $ty:ty, $expected:literal, $pat:pat => $out:expr;)*) => {
        $(
            $(#[$doc])*
            ///
            /// An error when the field is missing, empty or of another type.
            #[inline]
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
            #[inline]
            pub fn $opt(&self, field: &str) -> Result<Option<$ty>, RowError> {
                match self.value_ref(field)? {
                    ValueRef::Null => Ok(None),
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
        let mut text = String::new();
        let mut references = Vec::new();
        let values = values
            .iter()
            .map(|value| value.to_wire(&mut text, &mut references))
            .collect();
        Row::at(
            Rc::new(Shared {
                fields: schema.to_vec(),
                text,
                references,
                values,
            }),
            0,
        )
    }

    /// Row `index` of a batch.
    pub(crate) fn at(shared: Rc<Shared>, index: usize) -> Row {
        let width = shared.fields.len();
        Row {
            owned: vec![OnceCell::new(); width],
            start: index * width,
            shared,
            changed: Vec::new(),
            added: Vec::new(),
        }
    }

    /// Moves this row to row `index` of its batch, forgetting its changes.
    pub(crate) fn move_to(&mut self, index: usize) {
        self.start = index * self.shared.fields.len();
        self.changed.clear();
        self.added.clear();
        for slot in &mut self.owned {
            slot.take();
        }
    }

    /// The field's value, or `None` when the row does not have the field.
    pub fn get(&self, field: &str) -> Option<&Value> {
        match self.position(field) {
            Some(index) => match self.change(index) {
                Some(changed) => changed.as_ref(),
                None => Some(self.owned[index].get_or_init(|| self.input(index).to_owned())),
            },
            None => self
                .added
                .iter()
                .find(|(name, _)| name == field)
                .and_then(|(_, value)| value.as_ref()),
        }
    }

    /// Whether the row has the field (even if it is empty).
    #[inline]
    pub fn has(&self, field: &str) -> bool {
        self.find(field).is_some()
    }

    /// The field's value; an error when the row does not have the field.
    pub fn value(&self, field: &str) -> Result<&Value, RowError> {
        self.get(field).ok_or_else(|| RowError::Missing {
            field: field.to_owned(),
        })
    }

    getters! {
        /// The field as text.
        text, opt_text -> &str, "text", ValueRef::Text(text) => text;
        /// The field as a whole number.
        integer, opt_integer -> i64, "integer", ValueRef::Integer(n) => n;
        /// The field as a float (measurements only; money is a decimal).
        float, opt_float -> f64, "float", ValueRef::Float(n) => n;
        /// The field as a yes/no value.
        boolean, opt_boolean -> bool, "boolean", ValueRef::Boolean(b) => b;
        /// The field as a date.
        date, opt_date -> Date, "date", ValueRef::Date(d) => d;
        /// The field as a date-time (UTC).
        date_time, opt_date_time -> DateTime, "date-time", ValueRef::DateTime(d) => d;
        /// The field as a GUID.
        guid, opt_guid -> u128, "guid", ValueRef::Guid(g) => u128::from(g);
        /// The field as a choice (option set) value.
        choice, opt_choice -> i32, "choice", ValueRef::Choice(c) => c;
        /// The field as a reference to a row of another table.
        reference, opt_reference -> &Reference, "reference", ValueRef::Reference(r) => r;
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
    #[inline]
    pub fn opt_decimal(&self, field: &str) -> Result<Option<Decimal>, RowError> {
        let wrong = |found| RowError::WrongType {
            field: field.to_owned(),
            expected: "decimal",
            found,
        };
        match self.value_ref(field)? {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(n) => Ok(Some(Decimal::from(n))),
            ValueRef::Decimal(d) => d
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
            .shared
            .fields
            .iter()
            .filter_map(|name| Some((name.as_str(), self.get(name)?)));
        let added = self
            .added
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.as_ref()?)));
        schema.chain(added)
    }

    /// Whether the plugin changed the row.
    pub fn is_changed(&self) -> bool {
        !self.changed.is_empty() || !self.added.is_empty()
    }

    #[inline]
    fn position(&self, field: &str) -> Option<usize> {
        self.shared
            .fields
            .iter()
            .position(|name| crate::value::same(name, field))
    }

    /// The change the plugin made to schema field `index`, if it made one.
    #[inline]
    fn change(&self, index: usize) -> Option<&Option<Value>> {
        self.changed
            .iter()
            .find(|(changed, _)| *changed as usize == index)
            .map(|(_, value)| value)
    }

    /// Schema field `index` as the batch sent it. The batch's spans were
    /// checked when it arrived, so a text value is always found.
    #[inline]
    fn input(&self, index: usize) -> ValueRef<'_> {
        let shared = &*self.shared;
        ValueRef::of_wire(
            &shared.values[self.start + index],
            &shared.text,
            &shared.references,
        )
        .unwrap_or(ValueRef::Null)
    }

    /// The field's current value, `None` when the row does not have it.
    #[inline]
    fn find(&self, field: &str) -> Option<ValueRef<'_>> {
        match self.position(field) {
            Some(index) => match self.change(index) {
                Some(changed) => changed.as_ref().map(Value::as_ref),
                None => Some(self.input(index)),
            },
            None => self
                .added
                .iter()
                .find(|(name, _)| name == field)
                .and_then(|(_, value)| value.as_ref().map(Value::as_ref)),
        }
    }

    #[inline]
    fn value_ref(&self, field: &str) -> Result<ValueRef<'_>, RowError> {
        self.find(field).ok_or_else(|| RowError::Missing {
            field: field.to_owned(),
        })
    }

    fn put(&mut self, field: &str, value: Option<Value>) {
        if let Some(index) = self.position(field) {
            if let Some(entry) = self
                .changed
                .iter_mut()
                .find(|(changed, _)| *changed as usize == index)
            {
                entry.1 = value;
            } else if value.as_ref().map(Value::as_ref) != Some(self.input(index)) {
                self.owned[index].take();
                self.changed.push((index as u32, value));
            }
        } else if let Some(added) = self.added.iter_mut().find(|(name, _)| name == field) {
            added.1 = value;
        } else {
            // Kept even when `value` is `None`: the field may be one the row
            // has but the plugin was not sent, and the host must remove it.
            self.added.push((field.to_owned(), value));
        }
    }

    /// The changes the row made, for the wire: `(position in the result's
    /// schema, value)`, where the result's schema is the batch's fields then
    /// `added` (every name the rows of the batch added, in order).
    pub(crate) fn changes<'a>(
        &'a self,
        added: &'a [String],
    ) -> impl Iterator<Item = (u32, Option<&'a Value>)> + 'a {
        let base = self.shared.fields.len();
        let schema = self
            .changed
            .iter()
            .map(|(field, value)| (*field, value.as_ref()));
        let new = self.added.iter().filter_map(move |(name, value)| {
            let offset = added.iter().position(|field| field == name)?;
            Some(((base + offset) as u32, value.as_ref()))
        });
        schema.chain(new)
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
        assert_eq!(row.get("name"), Some(&Value::from("Contoso")));
    }

    #[test]
    fn setting_the_same_value_is_not_a_change() {
        let mut row = row();
        row.set("name", "Contoso");
        assert!(!row.is_changed());
        row.set("name", "Fabrikam");
        assert!(row.is_changed());
        assert_eq!(row.text("name"), Ok("Fabrikam"), "reads see the change");
        assert_eq!(row.get("name"), Some(&Value::from("Fabrikam")));
    }

    #[test]
    fn only_changes_go_to_the_wire() {
        let mut row = row();
        row.set("second", 2i64);
        row.set("first", 1i64);
        row.remove("limit");
        row.set("name", "Contoso");
        row.remove("unsent");
        assert_eq!(
            row.added_fields().collect::<Vec<_>>(),
            ["second", "first", "unsent"]
        );
        assert!(!row.has("limit") && !row.has("unsent") && row.has("count"));
        let added: Vec<String> = ["first", "other", "second", "unsent"]
            .map(String::from)
            .into();
        assert_eq!(
            row.changes(&added).collect::<Vec<_>>(),
            vec![
                (1, None),
                (5, Some(&Value::Integer(2))),
                (3, Some(&Value::Integer(1))),
                (6, None),
            ],
            "a removed field the row was not sent is reported too, so the host removes it"
        );
    }

    #[test]
    fn a_moved_row_forgets_the_last_rows_changes() {
        let mut text = String::new();
        let values = ["a", "b"]
            .map(|name| Value::from(name).to_wire(&mut text, &mut Vec::new()))
            .into();
        let shared = Shared::new(wire::Batch {
            fields: vec!["name".into()],
            rows: 2,
            text,
            references: Vec::new(),
            values,
        })
        .expect("a well-formed batch");
        let mut row = Row::at(Rc::new(shared), 0);
        assert_eq!(row.get("name"), Some(&Value::from("a")));
        row.set("name", "z");
        row.move_to(1);
        assert!(!row.is_changed());
        assert_eq!(row.text("name"), Ok("b"));
        assert_eq!(row.get("name"), Some(&Value::from("b")));
    }

    #[test]
    fn a_malformed_batch_is_named() {
        let error = Shared::new(wire::Batch {
            fields: vec!["name".into()],
            rows: 2,
            text: String::new(),
            references: Vec::new(),
            values: vec![wire::Value::Null],
        })
        .expect_err("one value for two rows");
        assert_eq!(error, "the host sent 1 values for 2 rows of 1 fields");
    }
}
