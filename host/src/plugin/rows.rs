//! [`Rows`]: a batch held flat, for a chain of plugin calls.
//!
//! Rows keep one column per field, each cell a value of the current wire
//! contract (`None` when the row does not have the field), all text in one
//! buffer and all references in one list. A plugin call sends the rows still
//! alive and only the columns the plugin reads ([`Rows::wire_batch`]); a
//! transform's changes are written back into the cells they name
//! ([`Rows::apply`]) and marked, so consecutive steps of a map pass the same
//! rows along without converting them back to service JSON in between, and
//! the caller writes back only what changed ([`Rows::is_changed`]).
//!
//! **Invariant**: every cell's text span and reference index point into this
//! batch's own buffers; values from a plugin are checked before they are
//! applied ([`validate`](super::validate)).

use super::bindings::{Batch, Outcome, Transformed, Value, Verdict, wire};

/// A batch of rows sharing one schema, held flat.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    fields: Vec<String>,
    columns: Vec<Column>,
    len: usize,
    text: String,
    references: Vec<wire::Reference>,
}

#[derive(Debug, Clone, Default)]
struct Column {
    /// One cell per row; `None` when the row does not have the field.
    cells: Vec<Option<wire::Value>>,
    /// Which rows a plugin changed; empty until one did.
    changed: Vec<bool>,
}

/// A value of [`Rows`], borrowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// No value.
    Null,
    /// A yes/no value.
    Boolean(bool),
    /// A whole number.
    Integer(i64),
    /// A float (measurements only).
    Float(f64),
    /// An exact decimal.
    Decimal(wire::Decimal),
    /// Text.
    Text(&'a str),
    /// A date.
    Date(wire::Date),
    /// An instant.
    DateTime(wire::DateTime),
    /// A GUID.
    Guid(wire::Guid),
    /// A choice value.
    Choice(i32),
    /// A reference to a row of another table.
    Reference(&'a wire::Reference),
}

impl Rows {
    /// No rows, no fields.
    pub fn new() -> Rows {
        Rows::default()
    }

    /// The field names, in column order.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// How many rows there are.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The column of `name`, if there is one.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|field| field == name)
    }

    /// The column of `name`, added when there is none, trying column
    /// `hint` first: rows from one source usually list their fields in the
    /// same order, so the `n`th field of a row is usually column `n`.
    pub fn field_near(&mut self, name: &str, hint: usize) -> usize {
        match self.fields.get(hint) {
            Some(field) if field == name => hint,
            _ => self.field(name),
        }
    }

    /// The column of `name`, added (no row has it yet) when there is none.
    pub fn field(&mut self, name: &str) -> usize {
        match self.position(name) {
            Some(column) => column,
            None => {
                self.fields.push(name.to_owned());
                self.columns.push(Column {
                    cells: vec![None; self.len],
                    changed: Vec::new(),
                });
                self.columns.len() - 1
            }
        }
    }

    /// Adds a row that has no field yet; returns its index.
    pub fn push_row(&mut self) -> usize {
        for column in &mut self.columns {
            column.cells.push(None);
            if !column.changed.is_empty() {
                column.changed.push(false);
            }
        }
        self.len += 1;
        self.len - 1
    }

    /// Sets a cell as the source gave it (not a change).
    pub fn put(&mut self, row: usize, column: usize, value: ValueRef<'_>) {
        let value = self.store(value);
        self.columns[column].cells[row] = Some(value);
    }

    /// The value of a cell, `None` when the row does not have the field.
    pub fn get(&self, row: usize, column: usize) -> Option<ValueRef<'_>> {
        let value = self.columns.get(column)?.cells.get(row)?.as_ref()?;
        Some(self.view(value))
    }

    /// Whether a plugin changed the cell.
    pub fn is_changed(&self, row: usize, column: usize) -> bool {
        self.columns
            .get(column)
            .and_then(|column| column.changed.get(row))
            .copied()
            .unwrap_or(false)
    }

    /// Whether a plugin changed any cell of `row`.
    pub fn row_changed(&self, row: usize) -> bool {
        (0..self.columns.len()).any(|column| self.is_changed(row, column))
    }

    /// The rows of an owned batch.
    pub fn from_batch(batch: &Batch) -> Rows {
        let mut rows = Rows::new();
        for field in &batch.fields {
            rows.field(field);
        }
        for values in &batch.rows {
            let row = rows.push_row();
            for (column, value) in values.iter().enumerate().take(rows.fields.len()) {
                let value = rows.store_owned(value);
                rows.columns[column].cells[row] = Some(value);
            }
        }
        rows
    }

    /// The columns of `reads` these rows have, in column order; every
    /// column when `reads` is `None`.
    pub fn columns_for(&self, reads: Option<&[String]>) -> Vec<usize> {
        (0..self.fields.len())
            .filter(|&column| reads.is_none_or(|reads| reads.contains(&self.fields[column])))
            .collect()
    }

    /// The wire batch of rows `rows`, fields `columns`: what a plugin of the
    /// current contract is sent. A cell a row does not have is sent as null.
    pub fn wire_batch(&self, rows: &[usize], columns: &[usize]) -> wire::Batch {
        let mut text = String::new();
        let mut references = Vec::new();
        let mut values = Vec::with_capacity(rows.len() * columns.len());
        for &row in rows {
            for &column in columns {
                values.push(match &self.columns[column].cells[row] {
                    None => wire::Value::Null,
                    Some(value) => copy_value(value, self, &mut text, &mut references),
                });
            }
        }
        wire::Batch {
            fields: columns.iter().map(|&c| self.fields[c].clone()).collect(),
            rows: saturate(rows.len()),
            text,
            references,
            values,
        }
    }

    /// The owned batch of rows `rows` and every field: what a plugin of the
    /// released contract 0.1.0 is sent.
    pub fn owned_batch(&self, rows: &[usize]) -> Batch {
        Batch {
            fields: self.fields.clone(),
            rows: rows
                .iter()
                .map(|&row| {
                    (0..self.columns.len())
                        .map(|column| self.get(row, column).map_or(Value::Null, owned_value))
                        .collect()
                })
                .collect(),
        }
    }

    /// Writes a checked result of the current contract for `batch` (sent
    /// for rows `rows`, fields `columns`) into the cells it changes; one
    /// verdict per row sent.
    pub fn apply(
        &mut self,
        rows: &[usize],
        columns: &[usize],
        result: &wire::Transformed,
    ) -> Vec<Verdict> {
        let targets = self.targets(columns, &result.fields);
        for change in &result.changes {
            let (Some(&row), Some(&column)) = (
                rows.get(change.row as usize),
                targets.get(change.field as usize),
            ) else {
                continue;
            };
            let value = change.value.as_ref().map(|value| {
                let view = view_in(value, &result.text, &result.references);
                self.store(view)
            });
            self.change(row, column, value);
        }
        result
            .outcomes
            .iter()
            .map(|outcome| match outcome {
                wire::Outcome::Unchanged | wire::Outcome::Changed => Verdict::Keep,
                wire::Outcome::Skip(reason) => Verdict::Skip(reason.clone()),
                wire::Outcome::Fail(message) => Verdict::Fail(message.clone()),
            })
            .collect()
    }

    /// Writes a checked result of the released contract 0.1.0 (sent for
    /// rows `rows` and every field) into the cells it changes; one verdict
    /// per row sent.
    pub fn apply_owned(&mut self, rows: &[usize], result: &Transformed) -> Vec<Verdict> {
        let columns: Vec<usize> = (0..self.columns.len()).collect();
        let targets = self.targets(&columns, &result.fields);
        let mut verdicts = Vec::with_capacity(rows.len());
        for (outcome, &row) in result.outcomes.iter().zip(rows) {
            verdicts.push(match outcome {
                Outcome::Unchanged => Verdict::Keep,
                Outcome::Changed(changes) => {
                    for change in changes {
                        if let Some(&column) = targets.get(change.field as usize) {
                            let value = change.value.as_ref().map(|value| self.store_owned(value));
                            self.change(row, column, value);
                        }
                    }
                    Verdict::Keep
                }
                Outcome::Skip(reason) => Verdict::Skip(reason.clone()),
                Outcome::Fail(message) => Verdict::Fail(message.clone()),
            });
        }
        verdicts
    }

    /// The owned result of a transform these rows went through, in the
    /// shape of the released contract: every row's changed cells, under
    /// the schema of these rows' fields (those it was given first).
    pub fn transformed(&self, verdicts: &[Verdict]) -> Transformed {
        let outcomes = verdicts
            .iter()
            .enumerate()
            .map(|(row, verdict)| match verdict {
                Verdict::Keep if self.row_changed(row) => Outcome::Changed(
                    (0..self.columns.len())
                        .filter(|&column| self.is_changed(row, column))
                        .map(|column| super::bindings::FieldChange {
                            field: column as u32,
                            value: self.get(row, column).map(owned_value),
                        })
                        .collect(),
                ),
                Verdict::Keep => Outcome::Unchanged,
                Verdict::Skip(reason) => Outcome::Skip(reason.clone()),
                Verdict::Fail(message) => Outcome::Fail(message.clone()),
            })
            .collect();
        Transformed {
            fields: self.fields.clone(),
            outcomes,
        }
    }

    /// For each field of a result's schema, the column it writes: the sent
    /// columns first, then the named ones (a field the plugin was not sent
    /// but the rows have, or a new column).
    fn targets(&mut self, columns: &[usize], fields: &[String]) -> Vec<usize> {
        let mut targets = columns.to_vec();
        for name in fields.iter().skip(columns.len()) {
            targets.push(self.field(name));
        }
        targets
    }

    /// Sets a cell to what a plugin made it, marking it changed unless it
    /// already held that value.
    fn change(&mut self, row: usize, column: usize, value: Option<wire::Value>) {
        let same = match (&self.columns[column].cells[row], &value) {
            (None, None) => true,
            (Some(old), Some(new)) => self.view(old) == self.view(new),
            _ => false,
        };
        if same {
            return;
        }
        let len = self.len;
        let column = &mut self.columns[column];
        column.cells[row] = value;
        if column.changed.is_empty() {
            column.changed = vec![false; len];
        }
        column.changed[row] = true;
    }

    /// `value` with its text and reference in this batch's buffers.
    fn store(&mut self, value: ValueRef<'_>) -> wire::Value {
        match value {
            ValueRef::Null => wire::Value::Null,
            ValueRef::Boolean(b) => wire::Value::Boolean(b),
            ValueRef::Integer(n) => wire::Value::Integer(n),
            ValueRef::Float(f) => wire::Value::Float(f),
            ValueRef::Decimal(d) => wire::Value::Decimal(d),
            ValueRef::Text(text) => wire::Value::Text(push_text(&mut self.text, text)),
            ValueRef::Date(d) => wire::Value::Date(d),
            ValueRef::DateTime(t) => wire::Value::DateTime(t),
            ValueRef::Guid(g) => wire::Value::Guid(g),
            ValueRef::Choice(c) => wire::Value::Choice(c),
            ValueRef::Reference(r) => {
                self.references.push(r.clone());
                wire::Value::Reference(saturate(self.references.len() - 1))
            }
        }
    }

    /// An owned value with its text and reference in this batch's buffers.
    fn store_owned(&mut self, value: &Value) -> wire::Value {
        match value {
            Value::Null => wire::Value::Null,
            Value::Boolean(b) => wire::Value::Boolean(*b),
            Value::Integer(n) => wire::Value::Integer(*n),
            Value::Float(f) => wire::Value::Float(*f),
            Value::Decimal(d) => wire::Value::Decimal((*d).into()),
            Value::Text(text) => wire::Value::Text(push_text(&mut self.text, text)),
            Value::Date(d) => wire::Value::Date((*d).into()),
            Value::DateTime(t) => wire::Value::DateTime((*t).into()),
            Value::Guid(g) => wire::Value::Guid((*g).into()),
            Value::Choice(c) => wire::Value::Choice(*c),
            Value::Reference(r) => {
                self.references.push(r.into());
                wire::Value::Reference(saturate(self.references.len() - 1))
            }
        }
    }

    fn view<'a>(&'a self, value: &'a wire::Value) -> ValueRef<'a> {
        view_in(value, &self.text, &self.references)
    }
}

/// A value read against the buffers it points into. Spans and indices were
/// checked (or written by [`Rows`] itself), so a miss reads as null rather
/// than panicking.
fn view_in<'a>(
    value: &'a wire::Value,
    text: &'a str,
    references: &'a [wire::Reference],
) -> ValueRef<'a> {
    match value {
        wire::Value::Null => ValueRef::Null,
        wire::Value::Boolean(b) => ValueRef::Boolean(*b),
        wire::Value::Integer(n) => ValueRef::Integer(*n),
        wire::Value::Float(f) => ValueRef::Float(*f),
        wire::Value::Decimal(d) => ValueRef::Decimal(*d),
        wire::Value::Text(span) => span_text(text, *span).map_or(ValueRef::Null, ValueRef::Text),
        wire::Value::Date(d) => ValueRef::Date(*d),
        wire::Value::DateTime(t) => ValueRef::DateTime(*t),
        wire::Value::Guid(g) => ValueRef::Guid(*g),
        wire::Value::Choice(c) => ValueRef::Choice(*c),
        wire::Value::Reference(index) => references
            .get(*index as usize)
            .map_or(ValueRef::Null, ValueRef::Reference),
    }
}

/// A cell of `rows` copied into another batch's buffers.
fn copy_value(
    value: &wire::Value,
    rows: &Rows,
    text: &mut String,
    references: &mut Vec<wire::Reference>,
) -> wire::Value {
    match value {
        wire::Value::Text(span) => wire::Value::Text(push_text(
            text,
            span_text(&rows.text, *span).unwrap_or_default(),
        )),
        wire::Value::Reference(index) => match rows.references.get(*index as usize) {
            Some(reference) => {
                references.push(reference.clone());
                wire::Value::Reference(saturate(references.len() - 1))
            }
            None => wire::Value::Null,
        },
        other => *other,
    }
}

/// The text `span` points at in `text`: `None` when it is outside `text` or
/// splits a character.
pub(super) fn span_text(text: &str, span: wire::Span) -> Option<&str> {
    let start = span.start as usize;
    text.get(start..start.checked_add(span.len as usize)?)
}

/// Appends `value` to `text`; its span. A batch's text is far under 4 GiB
/// (a plugin's memory is capped at 256 MiB); a longer one saturates, and
/// the span then fails the checks instead of wrapping.
fn push_text(text: &mut String, value: &str) -> wire::Span {
    let start = saturate(text.len());
    text.push_str(value);
    wire::Span {
        start,
        len: saturate(value.len()),
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// An owned copy of a borrowed value.
pub fn owned_value(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Boolean(b) => Value::Boolean(b),
        ValueRef::Integer(n) => Value::Integer(n),
        ValueRef::Float(f) => Value::Float(f),
        ValueRef::Decimal(d) => Value::Decimal(d.into()),
        ValueRef::Text(text) => Value::Text(text.to_owned()),
        ValueRef::Date(d) => Value::Date(d.into()),
        ValueRef::DateTime(t) => Value::DateTime(t.into()),
        ValueRef::Guid(g) => Value::Guid(g.into()),
        ValueRef::Choice(c) => Value::Choice(c),
        ValueRef::Reference(r) => Value::Reference(r.into()),
    }
}
