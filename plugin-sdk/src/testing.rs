//! A native test harness: run a plugin function over a batch with plain
//! `cargo test`, no WebAssembly needed.
//!
//! The harness runs the same batch loop the component runs, and sends the
//! function only the fields it declares it reads (`reads = …`), as the host
//! does, so what a unit test sees (outcomes, added fields, log lines, a
//! field it forgot to declare) is what the host will see.
//!
//! ```
//! use dualwrite_plugin_sdk::prelude::*;
//! use dualwrite_plugin_sdk::testing::{self, Batch};
//!
//! #[transform]
//! fn shout(row: &mut Row) -> Outcome {
//!     let name = row.text("name")?.to_uppercase();
//!     row.set("name", name);
//!     Outcome::Keep
//! }
//!
//! let run = testing::transform(shout, &Context::new("accounts", Direction::LeftToRight),
//!     Batch::new(["name"]).row(values!["Contoso"]).row(values![Value::Null]));
//! assert_eq!(run.text(0, "name"), Some("CONTOSO"));
//! assert_eq!(run.failure(1), Some("field `name` is empty; expected text"));
//! ```

use crate::Context;
use crate::Row;
use crate::bindings::types::{self, Outcome as WireOutcome, Transformed, Verdict};
use crate::log::Level;
use crate::runtime::{FilterFn, TransformFn};
use crate::value::{Value, ValueRef};

/// Builds a batch: a schema, then rows (see [`values!`](crate::values)).
#[derive(Debug, Clone, Default)]
pub struct Batch {
    fields: Vec<String>,
    rows: Vec<Vec<Value>>,
}

impl Batch {
    /// An empty batch with these fields.
    pub fn new<S: Into<String>>(fields: impl IntoIterator<Item = S>) -> Self {
        Batch {
            fields: fields.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// This batch with one more row.
    ///
    /// # Panics
    ///
    /// When the row does not have one value per field: a mistake in the test.
    pub fn row(mut self, values: Vec<Value>) -> Self {
        assert_eq!(
            values.len(),
            self.fields.len(),
            "a test row needs one value per field of {:?}",
            self.fields
        );
        self.rows.push(values);
        self
    }

    /// The batch as it crosses the contract: every field, or only those of
    /// `reads` the batch has (in the batch's order), as the host sends them.
    pub fn into_wire(self, reads: Option<&[String]>) -> types::Batch {
        let sent: Vec<usize> = (0..self.fields.len())
            .filter(|&index| reads.is_none_or(|reads| reads.contains(&self.fields[index])))
            .collect();
        let mut text = String::new();
        let mut references = Vec::new();
        let mut values = Vec::with_capacity(self.rows.len() * sent.len());
        for row in &self.rows {
            for &index in &sent {
                values.push(row[index].to_wire(&mut text, &mut references));
            }
        }
        types::Batch {
            fields: sent
                .iter()
                .map(|&index| self.fields[index].clone())
                .collect(),
            rows: u32::try_from(self.rows.len()).unwrap_or(u32::MAX),
            text,
            references,
            values,
        }
    }
}

/// What a filter decided for a batch.
#[derive(Debug, Clone)]
pub struct FilterRun {
    /// The fields the filter declared it reads (`None`: all of them); the
    /// harness sent it only those, as the host does.
    pub reads: Option<Vec<String>>,
    /// One verdict per row, in order.
    pub verdicts: Vec<Verdict>,
    /// The lines the plugin logged.
    pub logs: Vec<(Level, String)>,
}

/// What a transform did to one row.
#[derive(Debug, Clone, PartialEq)]
pub enum RowResult {
    /// It went on as it came in.
    Unchanged,
    /// It went on with these changes: field and new value (`None`: left
    /// out of the row).
    Changed(Vec<(String, Option<Value>)>),
    /// It was filtered out, for this reason.
    Skip(String),
    /// It failed with this message.
    Fail(String),
}

/// What a transform made of a batch.
#[derive(Debug, Clone)]
pub struct TransformRun {
    input: Batch,
    /// The fields the transform declared it reads (`None`: all of them);
    /// the harness sent it only those, as the host does.
    pub reads: Option<Vec<String>>,
    /// The schema of the result: the fields sent, then those it added.
    pub fields: Vec<String>,
    /// One result per row, in order.
    pub outcomes: Vec<RowResult>,
    /// The lines the plugin logged.
    pub logs: Vec<(Level, String)>,
}

/// Runs `filter` over `batch` with `context`, sending it only the fields
/// it declares it reads.
pub fn filter(filter: FilterFn, context: &Context, batch: Batch) -> FilterRun {
    let reads = context.ask_reads(|probe| {
        let _ = filter(&Row::new(Vec::new().into(), Vec::new()), probe);
    });
    crate::log::take();
    let wire = batch.into_wire(reads.as_deref());
    let verdicts = crate::runtime::run_filter(filter, context.clone().into(), wire);
    FilterRun {
        reads,
        verdicts,
        logs: crate::log::take(),
    }
}

/// Runs `transform` over `batch` with `context`, sending it only the fields
/// it declares it reads.
pub fn transform(transform: TransformFn, context: &Context, batch: Batch) -> TransformRun {
    let reads = context.ask_reads(|probe| {
        let _ = transform(&mut Row::new(Vec::new().into(), Vec::new()), probe);
    });
    crate::log::take();
    let wire = batch.clone().into_wire(reads.as_deref());
    let rows = batch.rows.len();
    let result = crate::runtime::run_transform(transform, context.clone().into(), wire);
    let mut outcomes: Vec<RowResult> = result
        .outcomes
        .iter()
        .map(|outcome| match outcome {
            WireOutcome::Unchanged => RowResult::Unchanged,
            WireOutcome::Changed => RowResult::Changed(Vec::new()),
            WireOutcome::Skip(reason) => RowResult::Skip(reason.clone()),
            WireOutcome::Fail(message) => RowResult::Fail(message.clone()),
        })
        .collect();
    outcomes.resize(rows, RowResult::Unchanged);
    for change in &result.changes {
        let name = result.fields[change.field as usize].clone();
        let value = change.value.as_ref().map(|value| {
            ValueRef::of_wire(value, &result.text, &result.references)
                .expect("the SDK writes spans into its own text")
                .to_owned()
        });
        if let Some(RowResult::Changed(changes)) = outcomes.get_mut(change.row as usize) {
            changes.push((name, value));
        }
    }
    TransformRun {
        input: batch,
        reads,
        fields: result.fields,
        outcomes,
        logs: crate::log::take(),
    }
}

/// Runs `transform` over a batch already in its wire form, as the component
/// would: for benchmarks that compare native and component runs.
pub fn transform_wire(
    transform: TransformFn,
    context: types::Context,
    batch: types::Batch,
) -> Transformed {
    crate::runtime::run_transform(transform, context, batch)
}

/// Runs `filter` over a batch already in its wire form, as the component
/// would: for benchmarks that compare native and component runs.
pub fn filter_wire(filter: FilterFn, context: types::Context, batch: types::Batch) -> Vec<Verdict> {
    crate::runtime::run_filter(filter, context, batch)
}

impl FilterRun {
    /// Whether row `index` was kept.
    pub fn kept(&self, index: usize) -> bool {
        matches!(self.verdicts.get(index), Some(Verdict::Keep))
    }

    /// The reason row `index` was skipped, if it was.
    pub fn skipped(&self, index: usize) -> Option<&str> {
        match self.verdicts.get(index) {
            Some(Verdict::Skip(reason)) => Some(reason),
            _ => None,
        }
    }

    /// The message row `index` failed with, if it failed.
    pub fn failure(&self, index: usize) -> Option<&str> {
        match self.verdicts.get(index) {
            Some(Verdict::Fail(message)) => Some(message),
            _ => None,
        }
    }
}

impl TransformRun {
    /// Field `field` of row `index` after the transform: `None` when the row
    /// was skipped or failed or does not have the field.
    pub fn value(&self, index: usize, field: &str) -> Option<&Value> {
        let input = || {
            let position = self.input.fields.iter().position(|name| name == field)?;
            self.input.rows.get(index)?.get(position)
        };
        match self.outcomes.get(index)? {
            RowResult::Unchanged => input(),
            RowResult::Changed(changes) => match changes.iter().find(|(name, _)| name == field) {
                Some((_, value)) => value.as_ref(),
                None => input(),
            },
            RowResult::Skip(_) | RowResult::Fail(_) => None,
        }
    }

    /// Field `field` of row `index` after the transform, as text.
    pub fn text(&self, index: usize, field: &str) -> Option<&str> {
        match self.value(index, field)? {
            Value::Text(text) => Some(text),
            _ => None,
        }
    }

    /// Whether row `index` went on unchanged.
    pub fn unchanged(&self, index: usize) -> bool {
        matches!(self.outcomes.get(index), Some(RowResult::Unchanged))
    }

    /// The reason row `index` was skipped, if it was.
    pub fn skipped(&self, index: usize) -> Option<&str> {
        match self.outcomes.get(index) {
            Some(RowResult::Skip(reason)) => Some(reason),
            _ => None,
        }
    }

    /// The message row `index` failed with, if it failed.
    pub fn failure(&self, index: usize) -> Option<&str> {
        match self.outcomes.get(index) {
            Some(RowResult::Fail(message)) => Some(message),
            _ => None,
        }
    }
}
