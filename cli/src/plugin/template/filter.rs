//! `{{name}}`: a dualwrite filter. It keeps the rows of the companies
//! (the finops `dataAreaId`) listed in its `companies` setting, `usmf` when
//! the map gives none, and skips the others.

use dualwrite_plugin_sdk::prelude::*;

/// The company kept when the map's configuration gives no `companies`.
pub const DEFAULT_COMPANY: &str = "usmf";

/// Keeps a row whose `dataAreaId` is one of the `companies` setting
/// (compared without regard to case, as finops does); skips the rest. A
/// row without a company fails, and the host parks it.
#[filter(reads = ["dataAreaId"])]
pub fn by_company(row: &Row, ctx: &Context) -> Outcome {
    let company = row.text("dataAreaId")?;
    let listed = match ctx.setting("companies") {
        Some(_) => ctx
            .list("companies")
            .any(|listed| listed.eq_ignore_ascii_case(company)),
        None => company.eq_ignore_ascii_case(DEFAULT_COMPANY),
    };
    if listed {
        Outcome::Keep
    } else {
        Outcome::skip(format!("company {company} is not synced"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualwrite_plugin_sdk::testing::{self, Batch};

    #[test]
    fn keeps_the_listed_companies_and_skips_the_rest() {
        let ctx = Context::new("customers", Direction::LeftToRight)
            .with_setting("companies", "usmf, demf");
        let run = testing::filter(
            by_company,
            &ctx,
            Batch::new(["dataAreaId", "name"])
                .row(values!["USMF", "Contoso"])
                .row(values!["demf", "Fabrikam"])
                .row(values!["gbsi", "Litware"])
                .row(values![Value::Null, "Nobody"]),
        );
        assert!(run.kept(0));
        assert!(run.kept(1));
        assert_eq!(run.skipped(2), Some("company gbsi is not synced"));
        assert!(run.failure(3).is_some_and(|message| message.contains("dataAreaId")));
    }

    #[test]
    fn without_the_setting_only_the_default_company_is_kept() {
        let ctx = Context::new("customers", Direction::RightToLeft);
        let run = testing::filter(
            by_company,
            &ctx,
            Batch::new(["dataAreaId"])
                .row(values!["usmf"])
                .row(values!["demf"]),
        );
        assert!(run.kept(0));
        assert_eq!(run.skipped(1), Some("company demf is not synced"));
    }
}
