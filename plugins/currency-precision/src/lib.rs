//! Rounds or rescales decimal fields to a configured number of places,
//! exactly: money stays a decimal from end to end.
//!
//! Settings: `fields` (required, comma-separated), `places` (0 to 10,
//! default 2), `rounding` (`half-even`, the default and banker's rounding;
//! `half-up`; `half-down`; `down`, towards zero; `up`, away from zero;
//! `floor`; `ceiling`). Every value comes out with exactly `places` decimal
//! places (12.5 becomes 12.50). A field the row does not carry, or an empty
//! one, is left alone; a field that is not a number fails the row.

use dualwrite_plugin_sdk::SettingError;
use dualwrite_plugin_sdk::prelude::*;
use dualwrite_plugin_sdk::rust_decimal::RoundingStrategy;

/// The most decimal places dual-write carries for currency.
pub const MAX_PLACES: u32 = 10;

/// Reads `rounding` as a strategy.
pub fn strategy(name: &str) -> Result<RoundingStrategy, SettingError> {
    Ok(match name {
        "half-even" => RoundingStrategy::MidpointNearestEven,
        "half-up" => RoundingStrategy::MidpointAwayFromZero,
        "half-down" => RoundingStrategy::MidpointTowardZero,
        "down" => RoundingStrategy::ToZero,
        "up" => RoundingStrategy::AwayFromZero,
        "floor" => RoundingStrategy::ToNegativeInfinity,
        "ceiling" => RoundingStrategy::ToPositiveInfinity,
        other => {
            return Err(SettingError::Invalid {
                name: "rounding".into(),
                value: other.into(),
                reason: "expected half-even, half-up, half-down, down, up, floor or ceiling".into(),
            });
        }
    })
}

/// `value` rounded to `places` with `strategy`, carrying exactly `places`
/// decimal places.
pub fn round(value: Decimal, places: u32, strategy: RoundingStrategy) -> Decimal {
    let mut rounded = value.round_dp_with_strategy(places, strategy);
    rounded.rescale(places);
    rounded
}

/// The fields the transform reads: those of the `fields` setting.
pub fn listed_fields(ctx: &Context) -> Vec<String> {
    ctx.list("fields").map(str::to_owned).collect()
}

/// The plugin's transform, over one row (see the crate docs for its settings).
#[transform(reads = listed_fields)]
pub fn round_fields(row: &mut Row, ctx: &Context) -> Outcome {
    let places: u32 = ctx.parse_or("places", 2)?;
    if places > MAX_PLACES {
        return Outcome::fail(format!(
            "setting `places` = {places} is over {MAX_PLACES}, the most places a currency carries"
        ));
    }
    let strategy = strategy(ctx.setting("rounding").unwrap_or("half-even"))?;
    let mut fields = ctx.list("fields").peekable();
    if fields.peek().is_none() {
        return Outcome::fail(
            SettingError::Missing {
                name: "fields".into(),
            }
            .to_string(),
        );
    }
    for field in fields {
        if !row.has(field) {
            continue;
        }
        if let Some(value) = row.opt_decimal(field)? {
            row.set(field, round(value, places, strategy));
        }
    }
    Outcome::Keep
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualwrite_plugin_sdk::testing::{self, Batch};
    use std::str::FromStr;

    fn dec(text: &str) -> Decimal {
        Decimal::from_str(text).expect("a decimal")
    }

    #[test]
    fn rounds_with_every_strategy() {
        let check = |rounding: &str, value: &str, expected: &str| {
            let rounded = round(dec(value), 2, strategy(rounding).expect("known"));
            assert_eq!(rounded.to_string(), expected, "{rounding} {value}");
        };
        check("half-even", "2.345", "2.34");
        check("half-even", "2.355", "2.36");
        check("half-up", "2.345", "2.35");
        check("half-down", "2.345", "2.34");
        check("down", "-2.349", "-2.34");
        check("up", "2.341", "2.35");
        check("floor", "-2.341", "-2.35");
        check("ceiling", "-2.349", "-2.34");
        check("half-even", "12.5", "12.50");
        check(
            "half-even",
            "1234567890123456.9999999999",
            "1234567890123457.00",
        );
    }

    #[test]
    fn rescales_configured_fields_and_leaves_the_rest() {
        let ctx = Context::new("customers", Direction::LeftToRight)
            .with_setting("fields", "creditlimit, balance")
            .with_setting("places", "4");
        let run = testing::transform(
            round_fields,
            &ctx,
            Batch::new(["creditlimit", "balance", "other"])
                .row(values![dec("100.123456"), 7i64, dec("1.999999")])
                .row(values![Value::Null, dec("0.0000"), dec("3")])
                .row(values!["lots", Value::Null, Value::Null]),
        );
        assert_eq!(
            run.value(0, "creditlimit"),
            Some(&Value::from(dec("100.1235")))
        );
        assert_eq!(run.value(0, "balance"), Some(&Value::from(dec("7.0000"))));
        assert_eq!(run.value(0, "other"), Some(&Value::from(dec("1.999999"))));
        assert_eq!(
            run.fields,
            ["creditlimit", "balance"],
            "only the listed fields are sent"
        );
        assert!(run.unchanged(1), "already at four places");
        assert_eq!(
            run.failure(2),
            Some("field `creditlimit` holds text; expected decimal")
        );
    }

    #[test]
    fn bad_settings_fail_with_their_name() {
        let batch = || Batch::new(["x"]).row(values![dec("1")]);
        let run = testing::transform(
            round_fields,
            &Context::new("m", Direction::LeftToRight),
            batch(),
        );
        assert!(
            run.failure(0)
                .is_some_and(|m| m.contains("setting `fields` is required"))
        );
        let ctx = Context::new("m", Direction::LeftToRight)
            .with_setting("fields", "x")
            .with_setting("places", "11");
        let run = testing::transform(round_fields, &ctx, batch());
        assert!(run.failure(0).is_some_and(|m| m.contains("over 10")));
        let ctx = Context::new("m", Direction::LeftToRight)
            .with_setting("fields", "x")
            .with_setting("rounding", "sideways");
        let run = testing::transform(round_fields, &ctx, batch());
        assert!(
            run.failure(0)
                .is_some_and(|m| m.contains("`rounding` = `sideways`"))
        );
    }
}
