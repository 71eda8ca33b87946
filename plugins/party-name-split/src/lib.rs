//! Splits a party's full name into first, middle and last name (left to
//! right), and joins them back into a full name (right to left), for the
//! contact and party maps.
//!
//! Settings (all optional): `full` (default `fullname`), `first`
//! (`firstname`), `middle` (`middlename`), `last` (`lastname`). Names written
//! "Last, First Middle" are understood, and particles such as "van" or "de"
//! stay with the last name.

use dualwrite_plugin_sdk::prelude::*;

/// Lower-case words that belong to the last name that follows them.
const PARTICLES: &[&str] = &[
    "al", "bin", "da", "de", "del", "della", "den", "der", "di", "du", "ibn", "la", "le", "st.",
    "ten", "ter", "van", "von",
];

/// Whether `word` is one of [`PARTICLES`] in any case. The particles are
/// ASCII and no other character lowercases into one of their letters (the
/// Kelvin sign lowercases to `k`, which none has), so comparing ASCII
/// letters without regard to case is the same test as `to_lowercase`, with
/// no string made for every word.
fn is_particle(word: &str) -> bool {
    PARTICLES
        .iter()
        .any(|particle| particle.eq_ignore_ascii_case(word))
}

/// A full name taken apart.
#[derive(Debug, PartialEq, Eq)]
pub struct Parts<'a> {
    /// The given name.
    pub first: &'a str,
    /// The middle names, space-separated.
    pub middle: String,
    /// The family name, with its particles.
    pub last: String,
}

/// Takes `full` apart: "First Middle Last", or "Last, First Middle".
pub fn split(full: &str) -> Parts<'_> {
    if let Some((last, rest)) = full.split_once(',') {
        let mut rest = rest.split_whitespace();
        let first = rest.next().unwrap_or("");
        return Parts {
            first,
            middle: rest.collect::<Vec<_>>().join(" "),
            last: last.split_whitespace().collect::<Vec<_>>().join(" "),
        };
    }
    let words: Vec<&str> = full.split_whitespace().collect();
    match words.as_slice() {
        [] => Parts {
            first: "",
            middle: String::new(),
            last: String::new(),
        },
        [only] => Parts {
            first: "",
            middle: String::new(),
            last: (*only).to_owned(),
        },
        [first, rest @ ..] => {
            let mut last_start = rest.len() - 1;
            while last_start > 0 && is_particle(rest[last_start - 1]) {
                last_start -= 1;
            }
            Parts {
                first,
                middle: rest[..last_start].join(" "),
                last: rest[last_start..].join(" "),
            }
        }
    }
}

/// The fields the transform reads: the full name left to right, its parts
/// right to left.
pub fn name_fields(ctx: &Context) -> Vec<String> {
    let setting = |name, default| ctx.setting(name).unwrap_or(default).to_owned();
    match ctx.direction() {
        Direction::LeftToRight => vec![setting("full", "fullname")],
        Direction::RightToLeft => vec![
            setting("first", "firstname"),
            setting("middle", "middlename"),
            setting("last", "lastname"),
        ],
    }
}

/// The plugin's transform, over one row (see the crate docs for its settings).
#[transform(reads = name_fields)]
pub fn split_name(row: &mut Row, ctx: &Context) -> Outcome {
    let full = ctx.setting("full").unwrap_or("fullname");
    let first = ctx.setting("first").unwrap_or("firstname");
    let middle = ctx.setting("middle").unwrap_or("middlename");
    let last = ctx.setting("last").unwrap_or("lastname");
    match ctx.direction() {
        Direction::LeftToRight => {
            let Some(name) = row.opt_text(full)? else {
                return Outcome::Keep;
            };
            let parts = split(name);
            let (given, middles, family) = (parts.first.to_owned(), parts.middle, parts.last);
            row.set(first, given);
            row.set(middle, middles);
            row.set(last, family);
        }
        Direction::RightToLeft => {
            let joined = [first, middle, last]
                .into_iter()
                .filter_map(|field| row.opt_text(field).ok().flatten())
                .flat_map(str::split_whitespace)
                .collect::<Vec<_>>()
                .join(" ");
            if joined.is_empty() {
                return Outcome::Keep;
            }
            row.set(full, joined);
        }
    }
    Outcome::Keep
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualwrite_plugin_sdk::testing::{self, Batch};

    #[test]
    fn splits_the_common_shapes() {
        let check = |full, first, middle: &str, last: &str| {
            let parts = split(full);
            assert_eq!(
                (parts.first, parts.middle.as_str(), parts.last.as_str()),
                (first, middle, last),
                "{full}"
            );
        };
        check("Ada Lovelace", "Ada", "", "Lovelace");
        check(
            "  John   Ronald Reuel  Tolkien ",
            "John",
            "Ronald Reuel",
            "Tolkien",
        );
        check("Ludwig van Beethoven", "Ludwig", "", "van Beethoven");
        check("Maria de la Cruz", "Maria", "", "de la Cruz");
        check("Pieter VAN DER Berg", "Pieter", "", "VAN DER Berg");
        check("Lovelace, Ada King", "Ada", "King", "Lovelace");
        check("Cher", "", "", "Cher");
        check("", "", "", "");
    }

    #[test]
    fn splits_left_to_right_and_joins_right_to_left() {
        let run = testing::transform(
            split_name,
            &Context::new("contacts", Direction::LeftToRight),
            Batch::new(["fullname"])
                .row(values!["Grace Brewster Hopper"])
                .row(values![Value::Null]),
        );
        assert_eq!(run.text(0, "firstname"), Some("Grace"));
        assert_eq!(run.text(0, "middlename"), Some("Brewster"));
        assert_eq!(run.text(0, "lastname"), Some("Hopper"));
        assert!(run.unchanged(1));

        let run = testing::transform(
            split_name,
            &Context::new("contacts", Direction::RightToLeft).with_setting("full", "Name"),
            Batch::new(["firstname", "middlename", "lastname"]).row(values!["Grace", "", "Hopper"]),
        );
        assert_eq!(run.text(0, "Name"), Some("Grace Hopper"));
    }

    #[test]
    fn a_full_name_of_another_type_fails_the_row() {
        let run = testing::transform(
            split_name,
            &Context::new("contacts", Direction::LeftToRight),
            Batch::new(["fullname"]).row(values![42i64]),
        );
        assert_eq!(
            run.failure(0),
            Some("field `fullname` holds integer; expected text")
        );
    }
}
