//! Echo fingerprints: a hash of what the host wrote to one side, restricted
//! to the mapped fields, so that when that side reports the row back the
//! engine can tell its own write from a user's edit.
//!
//! The hash is over a canonical form: fields in name order, a missing field
//! the same as `null`, numbers by value (`10.5`, `10.50` and `1.05e1` hash
//! alike: a service may echo a decimal with another scale), everything else
//! by its JSON text. Fields the target computes itself (`modifiedon`,
//! `versionnumber`, ETags) are not mapped, so they never take part.

use rust_decimal::Decimal;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::str::FromStr;

/// The fingerprint of `row` restricted to `fields`.
pub fn fingerprint<'a>(
    row: &Map<String, Value>,
    fields: impl IntoIterator<Item = &'a str>,
) -> [u8; 32] {
    let mut names: Vec<&str> = fields.into_iter().collect();
    names.sort_unstable();
    names.dedup();
    let mut hasher = Sha256::new();
    for name in names {
        hasher.update(name.as_bytes());
        hasher.update([0]);
        match row.get(name).unwrap_or(&Value::Null) {
            Value::Number(number) => {
                let text = number.to_string();
                match Decimal::from_str(&text).or_else(|_| Decimal::from_scientific(&text)) {
                    Ok(decimal) => hasher.update(decimal.normalize().to_string().as_bytes()),
                    Err(_) => hasher.update(text.as_bytes()),
                }
            }
            other => hasher.update(other.to_string().as_bytes()),
        }
        hasher.update([0]);
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::fingerprint;
    use serde_json::json;

    fn row(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn only_mapped_fields_count_and_their_order_does_not() {
        let ours = row(json!({"name": "Contoso", "creditlimit": 10.5}));
        let echoed = row(
            json!({"creditlimit": 10.50, "name": "Contoso", "modifiedon": "2026-11-30T10:00:00Z", "versionnumber": 7}),
        );
        assert_eq!(
            fingerprint(&ours, ["name", "creditlimit"]),
            fingerprint(&echoed, ["creditlimit", "name"])
        );
    }

    #[test]
    fn a_user_edit_changes_the_fingerprint() {
        let ours = row(json!({"name": "Contoso", "creditlimit": 10.5}));
        let edited = row(json!({"name": "Contoso Ltd", "creditlimit": 10.5}));
        assert_ne!(
            fingerprint(&ours, ["name", "creditlimit"]),
            fingerprint(&edited, ["name", "creditlimit"])
        );
        let emptied = row(json!({"name": "Contoso"}));
        assert_ne!(
            fingerprint(&ours, ["name", "creditlimit"]),
            fingerprint(&emptied, ["name", "creditlimit"])
        );
    }

    #[test]
    fn missing_is_null_and_text_is_not_a_number() {
        assert_eq!(
            fingerprint(&row(json!({"a": null})), ["a"]),
            fingerprint(&row(json!({})), ["a"])
        );
        assert_ne!(
            fingerprint(&row(json!({"a": "10"})), ["a"]),
            fingerprint(&row(json!({"a": 10})), ["a"])
        );
    }
}
