//! The batch loop behind `#[filter]` and `#[transform]`: turns one call of the
//! contract into one call of the plugin function per row.
//!
//! Not part of the public API: the attribute macros call it through
//! `__private`. The native [`testing`](crate::testing) harness runs the same
//! code, so a unit test exercises exactly what runs in the component.

use crate::bindings::types::{self, Outcome as WireOutcome, Transformed, Value, Verdict};
use crate::{Context, Error, Outcome, Row};
use std::rc::Rc;

/// A filter function, as `#[filter]` normalises it.
pub type FilterFn = fn(&Row, &Context) -> Result<Outcome, Error>;

/// A transform function, as `#[transform]` normalises it.
pub type TransformFn = fn(&mut Row, &Context) -> Result<Outcome, Error>;

/// Runs `filter` over every row of `batch`: one verdict per row, in order.
pub fn run_filter(filter: FilterFn, context: types::Context, batch: types::Batch) -> Vec<Verdict> {
    install_panic_hook();
    let context = Context::from(context);
    let schema: Rc<[String]> = batch.fields.into();
    batch
        .rows
        .into_iter()
        .map(|values| {
            let row = match row(&schema, values) {
                Ok(row) => row,
                Err(message) => return Verdict::Fail(message),
            };
            match filter(&row, &context) {
                Ok(Outcome::Keep) => Verdict::Keep,
                Ok(Outcome::Skip(reason)) => Verdict::Skip(reason),
                Ok(Outcome::Fail(message)) => Verdict::Fail(message),
                Err(error) => Verdict::Fail(error.to_string()),
            }
        })
        .collect()
}

/// Runs `transform` over every row of `batch`: one outcome per row, in order,
/// under a schema of the batch's fields followed by the fields the rows added.
pub fn run_transform(
    transform: TransformFn,
    context: types::Context,
    batch: types::Batch,
) -> Transformed {
    install_panic_hook();
    let context = Context::from(context);
    let schema: Rc<[String]> = batch.fields.into();
    let mut decided = Vec::with_capacity(batch.rows.len());
    let mut fields: Vec<String> = schema.to_vec();
    for values in batch.rows {
        let mut row = match row(&schema, values) {
            Ok(row) => row,
            Err(message) => {
                decided.push(Err(WireOutcome::Fail(message)));
                continue;
            }
        };
        let outcome = match transform(&mut row, &context) {
            Ok(Outcome::Keep) if row.is_changed() => {
                for name in row.added_fields() {
                    if !fields[schema.len()..].iter().any(|field| field == name) {
                        fields.push(name.to_owned());
                    }
                }
                Ok(row)
            }
            Ok(Outcome::Keep) => Err(WireOutcome::Unchanged),
            Ok(Outcome::Skip(reason)) => Err(WireOutcome::Skip(reason)),
            Ok(Outcome::Fail(message)) => Err(WireOutcome::Fail(message)),
            Err(error) => Err(WireOutcome::Fail(error.to_string())),
        };
        decided.push(outcome);
    }
    let outcomes = decided
        .into_iter()
        .map(|decided| match decided {
            Ok(row) => WireOutcome::Changed(row.into_changes(&fields)),
            Err(outcome) => outcome,
        })
        .collect();
    Transformed { fields, outcomes }
}

fn row(schema: &Rc<[String]>, values: Vec<Value>) -> Result<Row, String> {
    if values.len() != schema.len() {
        return Err(format!(
            "the host sent {} values for the {} fields of the batch",
            values.len(),
            schema.len()
        ));
    }
    Ok(Row::new(Rc::clone(schema), values))
}

/// Reports a panic to the host's log (as an error line starting with
/// `panicked at`) before the component aborts, so the host can tell what
/// happened. Natively the default hook stays: test output shows panics.
fn install_panic_hook() {
    #[cfg(target_arch = "wasm32")]
    {
        static HOOK: std::sync::Once = std::sync::Once::new();
        HOOK.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("Box<dyn Any>");
                let line = match info.location() {
                    Some(at) => format!("panicked at {}:{}: {message}", at.file(), at.line()),
                    None => format!("panicked at an unknown place: {message}"),
                };
                crate::log::error(&line);
            }));
        });
    }
}
