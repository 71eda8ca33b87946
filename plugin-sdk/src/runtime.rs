//! The batch loop behind `#[filter]` and `#[transform]`: turns one call of the
//! contract into one call of the plugin function per row.
//!
//! One [`Row`] view serves the whole batch, moved from row to row; results
//! go into one list of verdicts or outcomes, one list of changes and one text
//! buffer for the batch. So a row costs the plugin function's own work and no
//! allocation of the loop's.
//!
//! Not part of the public API: the attribute macros call it through
//! `__private`. The native [`testing`](crate::testing) harness runs the same
//! code, so a unit test exercises exactly what runs in the component.

use crate::bindings::types::{self, FieldChange, Outcome as WireOutcome, Transformed, Verdict};
use crate::row::Shared;
use crate::{Context, Error, Outcome, Row};
use std::rc::Rc;

/// A filter function, as `#[filter]` normalises it.
pub type FilterFn = fn(&Row, &Context) -> Result<Outcome, Error>;

/// A transform function, as `#[transform]` normalises it.
pub type TransformFn = fn(&mut Row, &Context) -> Result<Outcome, Error>;

/// The fields a plugin function reads under `context`, for the contract's
/// `reads`: what `declared` (the `reads = …` of the attribute) gives.
pub fn reads<I, S>(
    declared: impl FnOnce(&Context) -> I,
    context: types::Context,
) -> Option<Vec<String>>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    install_panic_hook();
    Some(collect_reads(declared, &Context::from(context)))
}

/// What `declared` (the `reads = …` of the attribute) gives under `context`.
pub fn collect_reads<I, S>(declared: impl FnOnce(&Context) -> I, context: &Context) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    declared(context).into_iter().map(Into::into).collect()
}

/// Runs `filter` over every row of `batch`: one verdict per row, in order.
pub fn run_filter(filter: FilterFn, context: types::Context, batch: types::Batch) -> Vec<Verdict> {
    install_panic_hook();
    let context = Context::from(context);
    let rows = batch.rows as usize;
    let shared = match Shared::new(batch) {
        Ok(shared) => Rc::new(shared),
        Err(message) => return vec![Verdict::Fail(message); rows],
    };
    let mut row = Row::at(shared, 0);
    let mut verdicts = Vec::with_capacity(rows);
    for index in 0..rows {
        row.move_to(index);
        verdicts.push(match filter(&row, &context) {
            Ok(Outcome::Keep) => Verdict::Keep,
            Ok(Outcome::Skip(reason)) => Verdict::Skip(reason),
            Ok(Outcome::Fail(message)) => Verdict::Fail(message),
            Err(error) => Verdict::Fail(error.to_string()),
        });
    }
    verdicts
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
    let rows = batch.rows as usize;
    let mut fields = batch.fields.clone();
    let shared = match Shared::new(batch) {
        Ok(shared) => Rc::new(shared),
        Err(message) => {
            return Transformed {
                fields,
                text: String::new(),
                references: Vec::new(),
                outcomes: vec![WireOutcome::Fail(message); rows],
                changes: Vec::new(),
            };
        }
    };
    let base = fields.len();
    let mut row = Row::at(shared, 0);
    let mut outcomes = Vec::with_capacity(rows);
    let mut changes = Vec::new();
    let mut text = String::new();
    let mut references = Vec::new();
    for index in 0..rows {
        row.move_to(index);
        let outcome = match transform(&mut row, &context) {
            Ok(Outcome::Keep) if row.is_changed() => {
                for name in row.added_fields() {
                    if !fields[base..].iter().any(|field| field == name) {
                        fields.push(name.to_owned());
                    }
                }
                for (field, value) in row.changes(&fields[base..]) {
                    changes.push(FieldChange {
                        row: index as u32,
                        field,
                        value: value.map(|value| value.to_wire(&mut text, &mut references)),
                    });
                }
                WireOutcome::Changed
            }
            Ok(Outcome::Keep) => WireOutcome::Unchanged,
            Ok(Outcome::Skip(reason)) => WireOutcome::Skip(reason),
            Ok(Outcome::Fail(message)) => WireOutcome::Fail(message),
            Err(error) => WireOutcome::Fail(error.to_string()),
        };
        outcomes.push(outcome);
    }
    Transformed {
        fields,
        text,
        references,
        outcomes,
        changes,
    }
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
