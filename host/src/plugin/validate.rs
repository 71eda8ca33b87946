//! Checking a plugin's result against the contract before the host uses it:
//! one verdict or outcome per row, a schema that starts with the batch's
//! fields, changes that point into the schema (and, in the current contract,
//! at `changed` rows in row order, their text and references into the
//! result's buffers), well-formed decimals, and an output under the size cap.

use super::bindings::{Batch, Outcome, Transformed, Value, Verdict, wire};
use super::limits::PluginLimits;
use super::rows::span_text;
use std::collections::HashSet;

/// Checks a filter's verdicts.
pub fn verdicts(rows: usize, verdicts: &[Verdict], limits: &PluginLimits) -> Result<(), String> {
    same_length(rows, verdicts.len(), "verdicts")?;
    let bytes: usize = verdicts
        .iter()
        .map(|verdict| match verdict {
            Verdict::Keep => 1,
            Verdict::Skip(text) | Verdict::Fail(text) => text.len(),
        })
        .sum();
    under_cap(bytes, limits)
}

/// Checks the `reads` a plugin declared.
pub fn reads(reads: &Option<Vec<String>>, limits: &PluginLimits) -> Result<(), String> {
    under_cap(
        reads.iter().flatten().map(String::len).sum::<usize>(),
        limits,
    )
}

/// Checks a transform's result in the current contract.
pub fn wire_transformed(
    batch: &wire::Batch,
    result: &wire::Transformed,
    limits: &PluginLimits,
) -> Result<(), String> {
    same_length(batch.rows as usize, result.outcomes.len(), "outcomes")?;
    schema(&batch.fields, &result.fields)?;
    let mut bytes: usize = result.fields.iter().map(String::len).sum::<usize>()
        + result.text.len()
        + result.references.iter().map(reference_bytes).sum::<usize>();
    for outcome in &result.outcomes {
        if let wire::Outcome::Skip(text) | wire::Outcome::Fail(text) = outcome {
            bytes += text.len();
        }
    }
    under_cap(bytes, limits)?;
    // For each field, the last row (counted from 1) that changed it.
    let mut changed_in_row = vec![0usize; result.fields.len()];
    let mut last_row = 0;
    for change in &result.changes {
        let row = change.row as usize;
        if row < last_row {
            return Err(format!(
                "a change of row {row} comes after one of row {last_row}; changes are in row order"
            ));
        }
        last_row = row;
        match result.outcomes.get(row) {
            Some(wire::Outcome::Changed) => {}
            Some(_) => return Err(format!("row {row} has changes but is not `changed`")),
            None => {
                return Err(format!(
                    "a change of row {row} in a batch of {} rows",
                    batch.rows
                ));
            }
        }
        let Some(field) = result.fields.get(change.field as usize) else {
            return Err(format!(
                "row {row} changes field {} of a schema of {} fields",
                change.field,
                result.fields.len()
            ));
        };
        if std::mem::replace(&mut changed_in_row[change.field as usize], row + 1) == row + 1 {
            return Err(format!("row {row} changes field `{field}` twice"));
        }
        if let Some(value) = &change.value {
            wire_value(value, result)
                .map_err(|problem| format!("row {row}, field `{field}`: {problem}"))?;
        }
    }
    Ok(())
}

/// What is malformed about a value of the current contract, if anything.
fn wire_value(value: &wire::Value, result: &wire::Transformed) -> Result<(), String> {
    match value {
        wire::Value::Text(span) if span_text(&result.text, *span).is_none() => Err(format!(
            "a text span of {} bytes at {} outside the result's {} bytes of text (or splitting a character)",
            span.len,
            span.start,
            result.text.len()
        )),
        wire::Value::Reference(index) if *index as usize >= result.references.len() => {
            Err(format!(
                "reference {index} of {} in the result",
                result.references.len()
            ))
        }
        wire::Value::Decimal(decimal) => decimal_ok(decimal.scale),
        wire::Value::Date(date) => date_ok(date.month, date.day),
        wire::Value::DateTime(time) => date_time_ok(time.nanoseconds),
        _ => Ok(()),
    }
}

fn reference_bytes(reference: &wire::Reference) -> usize {
    reference.table.len()
        + reference
            .key
            .iter()
            .map(|field| field.name.len() + field.value.len())
            .sum::<usize>()
}

/// Checks that a result's schema starts with the batch's fields and names
/// no field twice.
fn schema(sent: &[String], fields: &[String]) -> Result<(), String> {
    if !fields.starts_with(sent) {
        return Err(format!(
            "the result's schema {fields:?} does not start with the batch's fields {sent:?}"
        ));
    }
    let mut seen = HashSet::with_capacity(fields.len());
    if let Some(twice) = fields.iter().find(|field| !seen.insert(field.as_str())) {
        return Err(format!("the result's schema names field `{twice}` twice"));
    }
    Ok(())
}

fn decimal_ok(scale: u8) -> Result<(), String> {
    if scale > 28 {
        return Err(format!("a decimal with {scale} places (at most 28)"));
    }
    Ok(())
}

fn date_ok(month: u8, day: u8) -> Result<(), String> {
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(format!("a date with month {month} and day {day}"));
    }
    Ok(())
}

fn date_time_ok(nanoseconds: u32) -> Result<(), String> {
    if nanoseconds >= 1_000_000_000 {
        return Err(format!("a date-time with {nanoseconds} nanoseconds"));
    }
    Ok(())
}

/// Checks a transform's result in the released contract 0.1.0.
pub fn transformed(
    batch: &Batch,
    result: &Transformed,
    limits: &PluginLimits,
) -> Result<(), String> {
    same_length(batch.rows.len(), result.outcomes.len(), "outcomes")?;
    schema(&batch.fields, &result.fields)?;
    let mut bytes: usize = result.fields.iter().map(String::len).sum();
    // For each field, the last row (counted from 1) that changed it: one
    // buffer for the whole batch, so a duplicate change is caught without an
    // allocation per row.
    let mut changed_in_row = vec![0usize; result.fields.len()];
    for (index, outcome) in result.outcomes.iter().enumerate() {
        bytes += match outcome {
            Outcome::Unchanged => 1,
            Outcome::Skip(text) | Outcome::Fail(text) => text.len(),
            Outcome::Changed(changes) => {
                let mut row_bytes = 0;
                for change in changes {
                    let Some(field) = result.fields.get(change.field as usize) else {
                        return Err(format!(
                            "row {index} changes field {} of a schema of {} fields",
                            change.field,
                            result.fields.len()
                        ));
                    };
                    if std::mem::replace(&mut changed_in_row[change.field as usize], index + 1)
                        == index + 1
                    {
                        return Err(format!("row {index} changes field `{field}` twice"));
                    }
                    if let Some(value) = &change.value {
                        row_bytes += value_bytes(value).map_err(|problem| {
                            format!("row {index}, field `{field}`: {problem}")
                        })?;
                    }
                }
                row_bytes
            }
        };
        under_cap(bytes, limits)?;
    }
    Ok(())
}

fn same_length(rows: usize, results: usize, what: &str) -> Result<(), String> {
    if rows == results {
        Ok(())
    } else {
        Err(format!("it returned {results} {what} for {rows} rows"))
    }
}

fn under_cap(bytes: usize, limits: &PluginLimits) -> Result<(), String> {
    if bytes > limits.max_output_bytes {
        Err(format!(
            "its output is over the cap of {} KiB",
            limits.max_output_bytes / 1024
        ))
    } else {
        Ok(())
    }
}

/// The bytes a value carries, or what is malformed about it.
fn value_bytes(value: &Value) -> Result<usize, String> {
    Ok(match value {
        Value::Text(text) => text.len(),
        Value::Decimal(decimal) => decimal_ok(decimal.scale).map(|()| 8)?,
        Value::Date(date) => date_ok(date.month, date.day).map(|()| 8)?,
        Value::DateTime(time) => date_time_ok(time.nanoseconds).map(|()| 8)?,
        Value::Reference(reference) => {
            reference.table.len()
                + reference
                    .key
                    .iter()
                    .map(|field| field.name.len() + field.value.len())
                    .sum::<usize>()
        }
        _ => 8,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::bindings::FieldChange;

    fn batch() -> Batch {
        Batch {
            fields: vec!["a".into()],
            rows: vec![vec![Value::Integer(1)], vec![Value::Integer(2)]],
        }
    }

    fn result(rows: [Vec<FieldChange>; 2]) -> Transformed {
        Transformed {
            fields: vec!["a".into(), "b".into()],
            outcomes: rows.into_iter().map(Outcome::Changed).collect(),
        }
    }

    fn set(field: u32) -> FieldChange {
        FieldChange {
            field,
            value: Some(Value::Integer(0)),
        }
    }

    #[test]
    fn each_row_may_change_a_field_once() {
        let limits = PluginLimits::default();
        let fine = result([vec![set(0), set(1)], vec![set(1), set(0)]]);
        assert_eq!(transformed(&batch(), &fine, &limits), Ok(()));
        let twice = result([vec![set(1)], vec![set(0), set(0)]]);
        assert_eq!(
            transformed(&batch(), &twice, &limits),
            Err("row 1 changes field `a` twice".into())
        );
        let outside = result([vec![set(2)], vec![]]);
        assert_eq!(
            transformed(&batch(), &outside, &limits),
            Err("row 0 changes field 2 of a schema of 2 fields".into())
        );
    }

    #[test]
    fn the_schema_starts_with_the_batch_fields() {
        let mut renamed = result([vec![], vec![]]);
        renamed.fields[0] = "z".into();
        let error = transformed(&batch(), &renamed, &PluginLimits::default()).expect_err("refused");
        assert!(
            error.contains("does not start with the batch's fields"),
            "{error}"
        );
    }
}
