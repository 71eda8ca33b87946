//! Keeps the rows whose company is in a configured list; skips the rest.
//!
//! Settings: `companies` (required, comma-separated; finops company ids are
//! compared without regard to case, as finops does) and `field` (default
//! `dataAreaId`). A row without the field is judged by the batch's company,
//! for maps striped by company; a row with neither fails.

use dualwrite_plugin_sdk::SettingError;
use dualwrite_plugin_sdk::prelude::*;

/// The one field the filter reads: the `field` setting, or `dataAreaId`.
pub fn company_field(ctx: &Context) -> Vec<String> {
    vec![ctx.setting("field").unwrap_or("dataAreaId").to_owned()]
}

/// The plugin's filter, over one row (see the crate docs for its settings).
#[filter(reads = company_field)]
pub fn by_company(row: &Row, ctx: &Context) -> Outcome {
    let field = ctx.setting("field").unwrap_or("dataAreaId");
    let company = match row.has(field) {
        true => row.opt_text(field)?,
        false => ctx.company(),
    };
    let Some(company) = company else {
        return Outcome::fail(format!(
            "the row has no company: field `{field}` is missing or empty and the batch has none"
        ));
    };
    let mut companies = ctx.list("companies").peekable();
    if companies.peek().is_none() {
        return Outcome::fail(
            SettingError::Missing {
                name: "companies".into(),
            }
            .to_string(),
        );
    }
    if companies.any(|allowed| allowed.eq_ignore_ascii_case(company)) {
        Outcome::Keep
    } else {
        Outcome::skip(format!(
            "company {company} is not one of {}",
            ctx.setting("companies").unwrap_or_default().trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualwrite_plugin_sdk::testing::{self, Batch};

    #[test]
    fn keeps_listed_companies_in_any_case() {
        let ctx = Context::new("customers", Direction::LeftToRight)
            .with_setting("companies", "usmf, DEMF");
        let run = testing::filter(
            by_company,
            &ctx,
            Batch::new(["dataAreaId"])
                .row(values!["USMF"])
                .row(values!["demf"])
                .row(values!["gbsi"])
                .row(values![Value::Null]),
        );
        assert!(run.kept(0));
        assert!(run.kept(1));
        assert_eq!(
            run.skipped(2),
            Some("company gbsi is not one of usmf, DEMF")
        );
        assert!(run.failure(3).is_some_and(|m| m.contains("has no company")));
    }

    #[test]
    fn falls_back_to_the_batch_company() {
        let ctx = Context::new("customers", Direction::RightToLeft)
            .with_setting("companies", "usmf")
            .with_company("usmf");
        let run = testing::filter(
            by_company,
            &ctx,
            Batch::new(["name"]).row(values!["Contoso"]),
        );
        assert!(run.kept(0));
    }

    #[test]
    fn only_the_company_field_is_sent() {
        let ctx = Context::new("customers", Direction::LeftToRight)
            .with_setting("companies", "usmf")
            .with_setting("field", "company");
        let run = testing::filter(
            by_company,
            &ctx,
            Batch::new(["name", "company"]).row(values!["Contoso", "usmf"]),
        );
        assert_eq!(run.reads, Some(vec!["company".to_owned()]));
        assert!(run.kept(0));
    }

    #[test]
    fn the_company_list_is_required() {
        let run = testing::filter(
            by_company,
            &Context::new("customers", Direction::LeftToRight),
            Batch::new(["dataAreaId"]).row(values!["usmf"]),
        );
        assert!(
            run.failure(0)
                .is_some_and(|m| m.contains("setting `companies` is required"))
        );
    }
}
