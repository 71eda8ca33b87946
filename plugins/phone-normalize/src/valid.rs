//! Whether a parsed number is valid: `phonenumber::is_valid`, with the
//! metadata's patterns compiled once per instance.
//!
//! `phonenumber` 0.3 keeps its patterns in `regex_cache::CachedRegex`, which
//! on every match locks the database's LRU cache and looks the pattern up by
//! its whole text: hashing and comparing the 2 KB fixed-line and mobile
//! patterns of the US took most of the plugin's time, natively and (some
//! five times slower) as wasm. The logic here is the crate's own
//! (`validator::is_valid_with`, `source_for`, `number_type` and
//! `Descriptor::is_match` of 0.3.10) over the same metadata; only where the
//! compiled patterns are kept differs: in a map keyed by where the pattern's
//! text lives in the crate's static database, compiled the first time an
//! instance needs it. (Upstream removed the cache after 0.3.10,
//! whisperfish/rust-phonenumber#102, not yet released.)

use phonenumber::PhoneNumber;
use phonenumber::metadata::{DATABASE, Descriptor, Metadata};
use regex::{Regex, RegexBuilder};
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

/// The compiled patterns, by the address of their text in [`DATABASE`]
/// (a static, so addresses never move), or `None` when one does not
/// compile (then it matches nothing, as the crate's cache would fail).
static COMPILED: LazyLock<Mutex<HashMap<usize, Option<Regex>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Whether `number` is a valid phone number: what `phonenumber::is_valid`
/// answers.
pub fn is_valid(number: &PhoneNumber) -> bool {
    let national = number.national().to_string();
    metadata_for(number.country().code(), &national).is_some_and(|meta| is_known(meta, &national))
}

/// The metadata the number belongs to (the crate's `source_for`).
fn metadata_for(code: u16, national: &str) -> Option<&'static Metadata> {
    let regions = DATABASE.region(&code)?;
    if let [only] = regions.as_slice() {
        return if *only == "001" {
            DATABASE.by_code(&code)?.into_iter().next()
        } else {
            only.parse::<phonenumber::country::Id>().ok()?;
            DATABASE.by_id(*only)
        };
    }
    for region in regions {
        let meta = DATABASE.by_id(region)?;
        let found = match meta.leading_digits() {
            Some(pattern) => find_at_start(pattern.as_str(), national),
            None => is_known(meta, national),
        };
        if found {
            return Some(meta);
        }
    }
    None
}

/// Whether the number has a known type under `meta`: the crate's
/// `number_type(meta, national) != Type::Unknown`. (Which type it is does not
/// matter here, so the crate's comparison of the whole fixed-line and mobile
/// patterns, 2 KB each for the US, is not needed.)
fn is_known(meta: &'static Metadata, national: &str) -> bool {
    let d = meta.descriptors();
    is_match(Some(d.general()), national)
        && [
            d.premium_rate(),
            d.toll_free(),
            d.shared_cost(),
            d.voip(),
            d.personal_number(),
            d.pager(),
            d.uan(),
            d.voicemail(),
            d.fixed_line(),
            d.mobile(),
        ]
        .into_iter()
        .any(|descriptor| is_match(descriptor, national))
}

/// The crate's `Descriptor::is_match`.
fn is_match(descriptor: Option<&'static Descriptor>, national: &str) -> bool {
    let Some(descriptor) = descriptor else {
        return false;
    };
    let lengths = descriptor.possible_length();
    if !lengths.is_empty() && !lengths.contains(&(national.len() as u16)) {
        return false;
    }
    find_at_start(descriptor.national_number().as_str(), national)
}

/// Whether `pattern` (compiled as the crate compiles it: whitespace in the
/// pattern ignored) first matches `text` at its start.
///
/// The leftmost match starts at 0 exactly when some match does, so the
/// pattern is compiled anchored (`^(?:…)`) and only asked whether it
/// matches: the search stops at the first byte that rules a match out. (The
/// newline ends a `#` comment the pattern might close with.)
fn find_at_start(pattern: &'static str, text: &str) -> bool {
    let mut compiled = COMPILED.lock().unwrap_or_else(|e| e.into_inner());
    compiled
        .entry(pattern.as_ptr() as usize)
        .or_insert_with(|| {
            RegexBuilder::new(&format!("^(?:{pattern}\n)"))
                .ignore_whitespace(true)
                .build()
                .ok()
        })
        .as_ref()
        .is_some_and(|regex| regex.is_match(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use phonenumber::country::Id;

    #[test]
    fn answers_as_the_crate_does() {
        for (region, number) in [
            (Id::US, "(206) 709-3400"),
            (Id::US, "+1 6502530000"),
            (Id::US, "+1 2530000"),
            (Id::CA, "+1 613 555 0123"),
            (Id::US, "+1 268 464 1234"),
            (Id::DE, "030 901820"),
            (Id::DE, "+49 1512 3456789"),
            (Id::GB, "+44 7912345678"),
            (Id::IT, "+39 0236618300"),
            (Id::FR, "+330631966543"),
            (Id::US, "+800 12345678"),
            (Id::US, "+979 123456789"),
            (Id::NZ, "+64 21387835"),
            (Id::US, "+1 800 555 0199"),
            (Id::US, "+1 900 555 0199"),
            (Id::US, "12345678901"),
        ] {
            let parsed = phonenumber::parse(Some(region), number).expect("parses");
            assert_eq!(
                is_valid(&parsed),
                phonenumber::is_valid(&parsed),
                "{region:?} {number}"
            );
        }
    }
}
