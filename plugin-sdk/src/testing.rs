//! A native test harness: run a plugin function over a batch with plain
//! `cargo test`, no WebAssembly needed.
//!
//! The harness runs the same batch loop the component runs, so what a unit
//! test sees (outcomes, added fields, log lines) is what the host will see.
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
use crate::bindings::types::{self, Outcome as WireOutcome, Transformed, Value, Verdict};
use crate::log::Level;
use crate::runtime::{FilterFn, TransformFn};

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

    /// The batch as it crosses the contract.
    pub fn into_wire(self) -> types::Batch {
        types::Batch {
            fields: self.fields,
            rows: self.rows,
        }
    }
}

/// What a filter decided for a batch.
#[derive(Debug, Clone)]
pub struct FilterRun {
    /// One verdict per row, in order.
    pub verdicts: Vec<Verdict>,
    /// The lines the plugin logged.
    pub logs: Vec<(Level, String)>,
}

/// What a transform made of a batch.
#[derive(Debug, Clone)]
pub struct TransformRun {
    input: Batch,
    /// The schema of changed rows.
    pub fields: Vec<String>,
    /// One outcome per row, in order.
    pub outcomes: Vec<WireOutcome>,
    /// The lines the plugin logged.
    pub logs: Vec<(Level, String)>,
}

/// Runs `filter` over `batch` with `context`.
pub fn filter(filter: FilterFn, context: &Context, batch: Batch) -> FilterRun {
    crate::log::take();
    let verdicts = crate::runtime::run_filter(filter, context.clone().into(), batch.into_wire());
    FilterRun {
        verdicts,
        logs: crate::log::take(),
    }
}

/// Runs `transform` over `batch` with `context`.
pub fn transform(transform: TransformFn, context: &Context, batch: Batch) -> TransformRun {
    crate::log::take();
    let Transformed { fields, outcomes } =
        crate::runtime::run_transform(transform, context.clone().into(), batch.clone().into_wire());
    TransformRun {
        input: batch,
        fields,
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
        match self.outcomes.get(index)? {
            WireOutcome::Unchanged => {
                let position = self.input.fields.iter().position(|name| name == field)?;
                self.input.rows.get(index)?.get(position)
            }
            WireOutcome::Changed(changes) => {
                let position = self.fields.iter().position(|name| name == field)?;
                match changes
                    .iter()
                    .find(|change| change.field as usize == position)
                {
                    Some(change) => change.value.as_ref(),
                    None => self.input.rows.get(index)?.get(position),
                }
            }
            WireOutcome::Skip(_) | WireOutcome::Fail(_) => None,
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
        matches!(self.outcomes.get(index), Some(WireOutcome::Unchanged))
    }

    /// The reason row `index` was skipped, if it was.
    pub fn skipped(&self, index: usize) -> Option<&str> {
        match self.outcomes.get(index) {
            Some(WireOutcome::Skip(reason)) => Some(reason),
            _ => None,
        }
    }

    /// The message row `index` failed with, if it failed.
    pub fn failure(&self, index: usize) -> Option<&str> {
        match self.outcomes.get(index) {
            Some(WireOutcome::Fail(message)) => Some(message),
            _ => None,
        }
    }
}
