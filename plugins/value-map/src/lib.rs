//! Maps enum and option-set values one way and back: a finops enum symbol on
//! the left, a Dataverse choice (or any text) on the right.
//!
//! Settings: `field` (required), `values` (required: `left:right` pairs,
//! comma-separated, such as `Organization:3, Person:1`), and `default`
//! (optional: the value for anything unlisted, in the target's terms; without
//! it an unlisted value fails the row). Left to right, `Organization` becomes
//! the choice `3`; right to left, `3` becomes the text `Organization`. A right
//! side that is a whole number is written as a choice, anything else as text.
//! A left value may be written as a finops enum literal
//! (`Microsoft.Dynamics.DataEntities.CustomerType'Organization'`).

use dualwrite_plugin_sdk::prelude::*;
use dualwrite_plugin_sdk::{RowError, SettingError};
use std::borrow::Cow;

/// The pairs of the `values` setting.
pub fn pairs(values: &str) -> Result<Vec<(&str, &str)>, SettingError> {
    values
        .split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|item| pair(values, item))
        .collect()
}

/// One `left:right` item of the `values` setting (all of it, for the
/// message).
fn pair<'a>(values: &str, item: &'a str) -> Result<(&'a str, &'a str), SettingError> {
    item.split_once(':')
        .map(|(left, right)| (left.trim(), right.trim()))
        .ok_or_else(|| SettingError::Invalid {
            name: "values".into(),
            value: values.into(),
            reason: format!("`{item}` is not a `left:right` pair"),
        })
}

/// The symbol of a finops enum literal (`Ns.Enum'Symbol'` → `Symbol`), or
/// the text itself.
pub fn enum_symbol(text: &str) -> &str {
    match text.split_once('\'') {
        Some((_, rest)) => rest.strip_suffix('\'').unwrap_or(rest),
        None => text,
    }
}

fn typed(text: &str) -> Value {
    match text.parse::<i32>() {
        Ok(choice) => Value::Choice(choice),
        Err(_) => Value::from(text),
    }
}

/// The key a value is looked up by: a text's enum symbol (borrowed), or a
/// choice, number or yes/no as text.
fn as_key(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::Text(text) => Some(Cow::Borrowed(enum_symbol(text))),
        Value::Choice(choice) => Some(Cow::Owned(choice.to_string())),
        Value::Integer(n) => Some(Cow::Owned(n.to_string())),
        Value::Boolean(b) => Some(Cow::Owned(b.to_string())),
        _ => None,
    }
}

/// The one field the transform reads: the `field` setting (none when it is
/// not set; every row then fails for the missing setting).
pub fn mapped_field(ctx: &Context) -> Vec<String> {
    ctx.setting("field")
        .map(str::to_owned)
        .into_iter()
        .collect()
}

/// The plugin's transform, over one row (see the crate docs for its settings).
#[transform(reads = mapped_field)]
pub fn map_value(row: &mut Row, ctx: &Context) -> Outcome {
    let field = ctx.required("field")?;
    let values = ctx.required("values")?;
    // Text, the common case, is read in place; other types through a copy.
    let key = match row.opt_text(field) {
        Ok(Some(text)) => Cow::Borrowed(enum_symbol(text)),
        Ok(None) => return Outcome::Keep,
        Err(RowError::Missing { .. }) => return Outcome::Keep,
        Err(_) => {
            let value = row.value(field)?;
            match as_key(value) {
                Some(key) => Cow::Owned(key.into_owned()),
                None => {
                    return Outcome::fail(format!(
                        "field `{field}` holds {}; expected text or a choice",
                        value.type_name()
                    ));
                }
            }
        }
    };
    // Every pair is checked, so a malformed one fails every row, as it
    // should, not only the rows that get that far.
    let mut found = None;
    for item in ctx.list("values") {
        let (left, right) = pair(values, item)?;
        if found.is_none() {
            found = match ctx.direction() {
                Direction::LeftToRight => (left == key).then(|| typed(right)),
                Direction::RightToLeft => (right == key).then(|| Value::from(left)),
            };
        }
    }
    match found.or_else(|| ctx.setting("default").map(typed)) {
        Some(mapped) => {
            row.set(field, mapped);
            Outcome::Keep
        }
        None => Outcome::fail(format!(
            "value `{key}` of field `{field}` has no mapping; add it to the plugin's `values` or set a `default`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualwrite_plugin_sdk::testing::{self, Batch};

    fn ctx(direction: Direction) -> Context {
        Context::new("customers", direction)
            .with_setting("field", "customertypecode")
            .with_setting("values", "Organization:3, Person:1")
    }

    #[test]
    fn maps_one_way_and_back() {
        let run = testing::transform(
            map_value,
            &ctx(Direction::LeftToRight),
            Batch::new(["customertypecode"])
                .row(values!["Organization"])
                .row(values![
                    "Microsoft.Dynamics.DataEntities.CustomerType'Person'"
                ])
                .row(values!["Robot"])
                .row(values![Value::Null]),
        );
        assert_eq!(run.value(0, "customertypecode"), Some(&Value::Choice(3)));
        assert_eq!(run.value(1, "customertypecode"), Some(&Value::Choice(1)));
        assert_eq!(
            run.failure(2),
            Some(
                "value `Robot` of field `customertypecode` has no mapping; add it to the plugin's `values` or set a `default`"
            )
        );
        assert!(run.unchanged(3));

        let run = testing::transform(
            map_value,
            &ctx(Direction::RightToLeft),
            Batch::new(["customertypecode"]).row(values![Value::Choice(1)]),
        );
        assert_eq!(run.text(0, "customertypecode"), Some("Person"));
    }

    #[test]
    fn a_default_catches_the_rest() {
        let run = testing::transform(
            map_value,
            &ctx(Direction::LeftToRight).with_setting("default", "3"),
            Batch::new(["customertypecode"]).row(values!["Robot"]),
        );
        assert_eq!(run.value(0, "customertypecode"), Some(&Value::Choice(3)));
    }

    #[test]
    fn malformed_pairs_are_named() {
        let error = pairs("a:1, b").expect_err("b has no right side");
        assert!(error.to_string().contains("`b` is not a `left:right` pair"));
    }
}
