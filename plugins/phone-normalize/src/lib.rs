//! Normalises phone numbers to E.164 (`+14255550100`), failing the rows whose
//! numbers cannot be read.
//!
//! Settings: `fields` (default `telephone1`), `region` (the ISO 3166 country
//! assumed for numbers without a country code; default `US`). Empty fields
//! are left alone.

use dualwrite_plugin_sdk::SettingError;
use dualwrite_plugin_sdk::prelude::*;
use phonenumber::Mode;
use phonenumber::country::Id;

mod valid;

/// `number` in E.164, reading it as a number of `region` when it has no
/// country code; `None` when it is not a valid phone number.
pub fn normalize(number: &str, region: Id) -> Option<String> {
    let parsed = phonenumber::parse(Some(region), number).ok()?;
    valid::is_valid(&parsed).then(|| parsed.format().mode(Mode::E164).to_string())
}

fn region(ctx: &Context) -> Result<Id, SettingError> {
    let code = ctx.setting("region").unwrap_or("US");
    code.trim()
        .to_ascii_uppercase()
        .parse()
        .map_err(|_| SettingError::Invalid {
            name: "region".into(),
            value: code.into(),
            reason: "expected a two-letter ISO 3166 country code such as US or DE".into(),
        })
}

/// The fields the transform reads and normalises: those of the `fields`
/// setting, or `telephone1`.
pub fn phone_fields(ctx: &Context) -> Vec<String> {
    match ctx.setting("fields") {
        Some(_) => ctx.list("fields").map(str::to_owned).collect(),
        None => vec!["telephone1".to_owned()],
    }
}

/// The plugin's transform, over one row (see the crate docs for its settings).
#[transform(reads = phone_fields)]
pub fn normalize_phones(row: &mut Row, ctx: &Context) -> Outcome {
    let region = region(ctx)?;
    let fields: Vec<&str> = match ctx.setting("fields") {
        Some(_) => ctx.list("fields").collect(),
        None => vec!["telephone1"],
    };
    for field in fields {
        if !row.has(field) {
            continue;
        }
        let Some(number) = row.opt_text(field)? else {
            continue;
        };
        if number.trim().is_empty() {
            continue;
        }
        match normalize(number, region) {
            Some(e164) => row.set(field, e164),
            None => {
                return Outcome::fail(format!(
                    "field `{field}`: `{number}` is not a valid phone number for region {region:?}; fix it at the source"
                ));
            }
        }
    }
    Outcome::Keep
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualwrite_plugin_sdk::testing::{self, Batch};

    #[test]
    fn normalizes_national_and_international_numbers() {
        assert_eq!(
            normalize("(206) 709-3400", Id::US).as_deref(),
            Some("+12067093400")
        );
        assert_eq!(
            normalize("+49 30 901820", Id::US).as_deref(),
            Some("+4930901820")
        );
        assert_eq!(
            normalize("030 901820", Id::DE).as_deref(),
            Some("+4930901820")
        );
        assert_eq!(normalize("12", Id::US), None);
    }

    #[test]
    fn fails_rows_that_cannot_be_read() {
        let ctx = Context::new("contacts", Direction::LeftToRight)
            .with_setting("fields", "telephone1, mobilephone");
        let run = testing::transform(
            normalize_phones,
            &ctx,
            Batch::new(["telephone1", "mobilephone"])
                .row(values!["206-709-3400", Value::Null])
                .row(values!["+12067093400", ""])
                .row(values!["not a number", Value::Null]),
        );
        assert_eq!(run.text(0, "telephone1"), Some("+12067093400"));
        assert!(run.unchanged(1));
        assert!(
            run.failure(2)
                .is_some_and(|m| m.contains("`not a number` is not a valid phone number"))
        );
    }

    #[test]
    fn a_bad_region_is_named() {
        let ctx =
            Context::new("contacts", Direction::LeftToRight).with_setting("region", "Atlantis");
        let run = testing::transform(
            normalize_phones,
            &ctx,
            Batch::new(["telephone1"]).row(values!["1"]),
        );
        assert!(
            run.failure(0)
                .is_some_and(|m| m.contains("setting `region` = `Atlantis`"))
        );
    }
}
