//! [`Key`]: the key of one row as OData writes it in a URL,
//! `(accountnumber='A-1')` or `(dataAreaId='usmf',CustomerAccount='US-001')`.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value};

/// One part of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyValue {
    /// Text, written quoted: `'it''s'`.
    Text(String),
    /// A GUID, written bare (Dataverse ids and lookup values in keys).
    Guid(uuid::Uuid),
    /// A whole number, written bare.
    Number(i64),
}

/// A key: its fields in order, the full compound key for finops
/// (`dataAreaId` included) or an alternate key for Dataverse.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Key {
    /// Field name and value, in the order written.
    pub parts: Vec<(String, KeyValue)>,
}

impl Key {
    /// An empty key; add parts with [`Key::text`] and friends.
    pub fn new() -> Self {
        Self::default()
    }

    /// A one-field text key.
    pub fn single(field: &str, value: &str) -> Self {
        Self::new().text(field, value)
    }

    /// Adds a text part.
    pub fn text(mut self, field: &str, value: &str) -> Self {
        self.parts
            .push((field.to_string(), KeyValue::Text(value.to_string())));
        self
    }

    /// Adds a GUID part.
    pub fn guid(mut self, field: &str, value: uuid::Uuid) -> Self {
        self.parts.push((field.to_string(), KeyValue::Guid(value)));
        self
    }

    /// Adds a whole-number part.
    pub fn number(mut self, field: &str, value: i64) -> Self {
        self.parts
            .push((field.to_string(), KeyValue::Number(value)));
        self
    }

    /// A key from a JSON object (the key fields of a finops row):
    /// strings are text, whole numbers are numbers; anything else is refused
    /// with the field's name.
    pub fn from_json(object: &Map<String, Value>) -> Result<Self, String> {
        let mut key = Self::new();
        for (field, value) in object {
            key = match value {
                Value::String(s) => key.text(field, s),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => key.number(field, i),
                    None => return Err(format!("key field '{field}' is not a whole number: {n}")),
                },
                other => return Err(format!("key field '{field}' cannot be {other}")),
            };
        }
        Ok(key)
    }

    /// The key as JSON fields (GUIDs as strings), to merge into a row.
    pub fn to_json(&self) -> Map<String, Value> {
        self.parts
            .iter()
            .map(|(field, value)| {
                let v = match value {
                    KeyValue::Text(s) => Value::String(s.clone()),
                    KeyValue::Guid(g) => Value::String(g.to_string()),
                    KeyValue::Number(n) => Value::from(*n),
                };
                (field.clone(), v)
            })
            .collect()
    }

    /// The parenthesised segment, percent-encoded for a URL path:
    /// `(f1='v1',f2=v2)`.
    pub fn segment(&self) -> String {
        let inner: Vec<String> = self
            .parts
            .iter()
            .map(|(field, value)| {
                let literal = match value {
                    KeyValue::Text(s) => format!("'{}'", s.replace('\'', "''")),
                    KeyValue::Guid(g) => g.to_string(),
                    KeyValue::Number(n) => n.to_string(),
                };
                format!("{field}={}", encode_path(&literal))
            })
            .collect();
        format!("({})", inner.join(","))
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.segment())
    }
}

/// What a key literal percent-encodes: everything but letters, digits and
/// the usual key characters, so quotes and commas stay readable.
const KEY_LITERAL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'\'')
    .remove(b',')
    .remove(b':')
    .remove(b'@')
    .remove(b'!')
    .remove(b'$')
    .remove(b'*');

/// Percent-encodes what may not stand in a path segment.
fn encode_path(text: &str) -> String {
    utf8_percent_encode(text, KEY_LITERAL).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_quote_escape_and_encode() {
        let id = uuid::Uuid::nil();
        let cases = [
            (Key::single("accountnumber", "A-1"), "(accountnumber='A-1')"),
            (
                Key::new()
                    .text("dataAreaId", "usmf")
                    .text("CustomerAccount", "US 001"),
                "(dataAreaId='usmf',CustomerAccount='US%20001')",
            ),
            (Key::single("name", "it's/#?"), "(name='it''s%2F%23%3F')"),
            (
                Key::new()
                    .text("msdyn_groupid", "10")
                    .guid("_msdyn_company_value", id),
                "(msdyn_groupid='10',_msdyn_company_value=00000000-0000-0000-0000-000000000000)",
            ),
            (Key::new().number("Line", 3), "(Line=3)"),
        ];
        for (key, expected) in cases {
            assert_eq!(key.segment(), expected);
        }
    }

    #[test]
    fn json_keys_round_trip_and_refuse_other_types() {
        let object = serde_json::json!({"dataAreaId": "usmf", "Line": 4});
        let key = Key::from_json(object.as_object().expect("object")).expect("key");
        assert_eq!(key.segment(), "(dataAreaId='usmf',Line=4)");
        assert_eq!(Value::Object(key.to_json()), object);
        let bad = serde_json::json!({"Flag": true});
        let error = Key::from_json(bad.as_object().expect("object")).expect_err("refused");
        assert!(error.contains("Flag"), "{error}");
    }
}
