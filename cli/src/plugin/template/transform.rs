//! `{{name}}`: a dualwrite transform. It tidies the text fields named in
//! its `fields` setting (comma-separated; `name` when the map gives none):
//! no spaces around the text and one between its words, so
//! `"  Contoso   Ltd "` becomes `"Contoso Ltd"`. A named field that holds
//! something other than text fails the row, and the host parks it.

use dualwrite_plugin_sdk::prelude::*;

/// The fields the transform reads and tidies: the `fields` setting, or
/// `name`. The host sends only these.
pub fn text_fields(ctx: &Context) -> Vec<String> {
    match ctx.setting("fields") {
        Some(_) => ctx.list("fields").map(str::to_owned).collect(),
        None => vec!["name".to_owned()],
    }
}

/// `text` without spaces around it and with one between its words.
pub fn tidy(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Tidies each of the row's [`text_fields`]; a row already tidy crosses
/// back unchanged.
#[transform(reads = text_fields)]
pub fn tidy_text(row: &mut Row, ctx: &Context) -> Outcome {
    for field in text_fields(ctx) {
        if !row.has(&field) {
            continue;
        }
        let Some(text) = row.opt_text(&field)? else {
            continue;
        };
        let tidied = tidy(text);
        if tidied != text {
            row.set(&field, tidied);
        }
    }
    Outcome::Keep
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualwrite_plugin_sdk::testing::{self, Batch};

    #[test]
    fn tidies_the_named_fields() {
        let ctx = Context::new("customers", Direction::LeftToRight)
            .with_setting("fields", "name, city");
        let run = testing::transform(
            tidy_text,
            &ctx,
            Batch::new(["name", "city"])
                .row(values!["  Contoso   Ltd ", " Redmond"])
                .row(values!["Fabrikam", Value::Null])
                .row(values![42i64, "Oslo"]),
        );
        assert_eq!(run.text(0, "name"), Some("Contoso Ltd"));
        assert_eq!(run.text(0, "city"), Some("Redmond"));
        assert!(run.unchanged(1));
        assert!(run.failure(2).is_some_and(|message| message.contains("`name`")));
    }

    #[test]
    fn without_the_setting_only_the_name_is_read() {
        let ctx = Context::new("customers", Direction::RightToLeft);
        let run = testing::transform(
            tidy_text,
            &ctx,
            Batch::new(["name", "accountnumber"]).row(values!["Contoso  Ltd", " C-1 "]),
        );
        assert_eq!(run.reads, Some(vec!["name".to_owned()]));
        assert_eq!(run.text(0, "name"), Some("Contoso Ltd"));
    }
}
