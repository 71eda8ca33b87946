//! Checking a plugin's result against the contract before the host uses it:
//! one verdict or outcome per row, a schema that starts with the batch's
//! fields, rows as wide as the schema, well-formed decimals, and an output
//! under the size cap.

use super::bindings::{Batch, Outcome, Transformed, Value, Verdict};
use super::limits::PluginLimits;
use std::collections::HashSet;

/// Checks a filter's verdicts.
pub fn verdicts(batch: &Batch, verdicts: &[Verdict], limits: &PluginLimits) -> Result<(), String> {
    same_length(batch.rows.len(), verdicts.len(), "verdicts")?;
    let bytes: usize = verdicts
        .iter()
        .map(|verdict| match verdict {
            Verdict::Keep => 1,
            Verdict::Skip(text) | Verdict::Fail(text) => text.len(),
        })
        .sum();
    under_cap(bytes, limits)
}

/// Checks a transform's result.
pub fn transformed(
    batch: &Batch,
    result: &Transformed,
    limits: &PluginLimits,
) -> Result<(), String> {
    same_length(batch.rows.len(), result.outcomes.len(), "outcomes")?;
    if !result.fields.starts_with(&batch.fields) {
        return Err(format!(
            "the result's schema {:?} does not start with the batch's fields {:?}",
            result.fields, batch.fields
        ));
    }
    let mut seen = HashSet::with_capacity(result.fields.len());
    if let Some(twice) = result
        .fields
        .iter()
        .find(|field| !seen.insert(field.as_str()))
    {
        return Err(format!("the result's schema names field `{twice}` twice"));
    }
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
        Value::Decimal(decimal) if decimal.scale > 28 => {
            return Err(format!(
                "a decimal with {} places (at most 28)",
                decimal.scale
            ));
        }
        Value::Date(date) if !(1..=12).contains(&date.month) || !(1..=31).contains(&date.day) => {
            return Err(format!(
                "a date with month {} and day {}",
                date.month, date.day
            ));
        }
        Value::DateTime(time) if time.nanoseconds >= 1_000_000_000 => {
            return Err(format!("a date-time with {} nanoseconds", time.nanoseconds));
        }
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
