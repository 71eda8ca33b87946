//! Field and key strings: `"LEFT = right via MAP default V map { a: 1 }"`.
//!
//! The grammar, in the order the parts must come:
//!
//! ```text
//! mapping  := side dir side [via MAP] [default LITERAL] [map { LIT: LIT, … }]
//! side     := FIELD | COLUMN.KEYFIELD (right side only: a lookup) | none | (nothing)
//! dir      := "=" both ways | ">" left to right | "<" right to left
//! LITERAL  := 'quoted text' | "quoted text" | true | false | 12 | 1.50 | bare-word
//! ```
//!
//! A side written `none` (or left out) has no field: the mapping then writes
//! its `default` to the other side. Key strings use the same grammar without
//! `default` and `map`.

use std::fmt;

use rust_decimal::Decimal;
use serde::Deserialize;

use super::error::FieldSyntaxError;

/// Which way a mapping copies values. In the config it is written `=`,
/// `>` or `<`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Direction {
    /// `=`: both ways.
    Both,
    /// `>`: left to right.
    LeftToRight,
    /// `<`: right to left.
    RightToLeft,
}

impl Direction {
    /// Whether values flow from left to right.
    pub fn writes_right(self) -> bool {
        matches!(self, Direction::Both | Direction::LeftToRight)
    }

    /// Whether values flow from right to left.
    pub fn writes_left(self) -> bool {
        matches!(self, Direction::Both | Direction::RightToLeft)
    }

    /// The symbol in the config: `=`, `>` or `<`.
    pub fn symbol(self) -> &'static str {
        match self {
            Direction::Both => "=",
            Direction::LeftToRight => ">",
            Direction::RightToLeft => "<",
        }
    }

    /// Parses `=`, `>` or `<`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "=" => Some(Direction::Both),
            ">" => Some(Direction::LeftToRight),
            "<" => Some(Direction::RightToLeft),
            _ => None,
        }
    }
}

impl TryFrom<String> for Direction {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Direction::parse(&text)
            .ok_or_else(|| format!("expected a direction `=`, `>` or `<`, found `{text}`"))
    }
}

/// A constant in a `default` or a value map. Numbers with a fraction stay
/// exact decimals.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Literal {
    /// Text, quoted or a bare word.
    Text(String),
    /// `true` or `false` (any case).
    Boolean(bool),
    /// A whole number.
    Integer(i64),
    /// A number with a fraction.
    Decimal(Decimal),
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Text(text) => write!(f, "'{text}'"),
            Literal::Boolean(value) => write!(f, "{value}"),
            Literal::Integer(value) => write!(f, "{value}"),
            Literal::Decimal(value) => write!(f, "{value}"),
        }
    }
}

/// A right-side field that points at a row of another table: the mapping
/// writes the lookup `column`, found by `key_field` on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The target table's field matched against the left value.
    pub key_field: String,
    /// The map that syncs the target table: named with `via`, or resolved
    /// by validation from the catalogue.
    pub map: Option<String>,
}

/// One parsed field or key mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMapping {
    /// The left field; `None` when the mapping only writes a default.
    pub left: Option<String>,
    /// The right field (the lookup column for a lookup); `None` when the
    /// mapping only writes a default.
    pub right: Option<String>,
    /// Which way values flow.
    pub direction: Direction,
    /// Written when the source has no value (or no field).
    pub default: Option<Literal>,
    /// Left value → right value; read backwards when writing left.
    pub value_map: Vec<(Literal, Literal)>,
    /// The right side is a lookup through another table.
    pub lookup: Option<Lookup>,
}

impl FieldMapping {
    /// Parses a `fields` string.
    pub fn parse(text: &str) -> Result<Self, FieldSyntaxError> {
        let mut cursor = Cursor { text, pos: 0 };
        let left = cursor.side()?;
        if let Some((_, Some(_))) = left {
            return Err(FieldSyntaxError::new(
                0,
                "a lookup (`column.keyfield`) is written on the right side",
            ));
        }
        cursor.skip_ws();
        let at = cursor.pos;
        let symbol = cursor.word();
        let direction = Direction::parse(symbol).ok_or_else(|| {
            FieldSyntaxError::new(
                at,
                format!("expected a direction `=`, `>` or `<`, found `{symbol}`"),
            )
        })?;
        cursor.skip_ws();
        let right_at = cursor.pos;
        let right = cursor.side()?;
        let mut mapping = FieldMapping {
            left: left.map(|(name, _)| name),
            right: None,
            direction,
            default: None,
            value_map: Vec::new(),
            lookup: None,
        };
        if let Some((name, key_field)) = right {
            mapping.right = Some(name);
            mapping.lookup = key_field.map(|key_field| Lookup {
                key_field,
                map: None,
            });
        }
        cursor.tail(&mut mapping, right_at)?;
        mapping.check_sides()?;
        Ok(mapping)
    }

    /// Parses a `key` string: a mapping without `default` or `map`.
    pub fn parse_key(text: &str) -> Result<Self, FieldSyntaxError> {
        let mapping = Self::parse(text)?;
        if mapping.default.is_some() || !mapping.value_map.is_empty() {
            return Err(FieldSyntaxError::new(
                0,
                "a key pair takes no `default` or `map`",
            ));
        }
        if mapping.left.is_none() || mapping.right.is_none() {
            return Err(FieldSyntaxError::new(
                0,
                "a key pair names a field on both sides",
            ));
        }
        Ok(mapping)
    }

    fn check_sides(&self) -> Result<(), FieldSyntaxError> {
        match (&self.left, &self.right) {
            (None, None) => Err(FieldSyntaxError::new(
                0,
                "name a field on at least one side",
            )),
            (None, Some(_)) if self.direction != Direction::LeftToRight => Err(
                FieldSyntaxError::new(0, "with no left field, write `> right default VALUE`"),
            ),
            (Some(_), None) if self.direction != Direction::RightToLeft => Err(
                FieldSyntaxError::new(0, "with no right field, write `LEFT < default VALUE`"),
            ),
            (None, _) | (_, None) if self.default.is_none() => Err(FieldSyntaxError::new(
                0,
                "a mapping with one side only needs a `default VALUE`",
            )),
            _ => Ok(()),
        }
    }
}

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

/// A side as written: the field and, for a lookup, the target's key field.
type SideText = (String, Option<String>);

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or("")
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    /// The next run of characters up to whitespace, `,`, `:` or `}`.
    fn word(&mut self) -> &'a str {
        self.skip_ws();
        let start = self.pos;
        let len = self
            .rest()
            .find(|c: char| c.is_whitespace() || matches!(c, ',' | ':' | '}' | '{'))
            .unwrap_or(self.rest().len());
        self.pos += len;
        self.text.get(start..self.pos).unwrap_or("")
    }

    fn peek_word(&mut self) -> String {
        let saved = self.pos;
        let word = self.word().to_string();
        self.pos = saved;
        word
    }

    /// A field, `none`, nothing (a direction or keyword follows), or a lookup.
    fn side(&mut self) -> Result<Option<SideText>, FieldSyntaxError> {
        let next = self.peek_word();
        if next.is_empty()
            || Direction::parse(&next).is_some()
            || matches!(next.as_str(), "via" | "default" | "map")
        {
            return Ok(None);
        }
        self.skip_ws();
        let at = self.pos;
        let word = self.word();
        if word == "none" {
            return Ok(None);
        }
        let (field, key_field) = match word.split_once('.') {
            Some((field, key_field)) => (field, Some(key_field)),
            None => (word, None),
        };
        for part in std::iter::once(field).chain(key_field) {
            if part.is_empty() || !part.chars().all(|c| c.is_alphanumeric() || c == '_') {
                return Err(FieldSyntaxError::new(
                    at,
                    format!(
                        "`{word}` is not a field name (letters, digits, `_`, one `.` for a lookup)"
                    ),
                ));
            }
        }
        Ok(Some((field.to_string(), key_field.map(str::to_string))))
    }

    fn tail(
        &mut self,
        mapping: &mut FieldMapping,
        right_at: usize,
    ) -> Result<(), FieldSyntaxError> {
        let mut stage = 0;
        loop {
            self.skip_ws();
            let at = self.pos;
            match self.word() {
                "" => return Ok(()),
                "via" if stage < 1 => {
                    let name = self.word().to_string();
                    let Some(lookup) = mapping.lookup.as_mut() else {
                        return Err(FieldSyntaxError::new(
                            right_at,
                            "`via MAP` needs a lookup on the right: `column.keyfield`",
                        ));
                    };
                    if name.is_empty() {
                        return Err(FieldSyntaxError::new(self.pos, "`via` needs a map name"));
                    }
                    lookup.map = Some(name);
                    stage = 1;
                }
                "default" if stage < 2 => {
                    mapping.default = Some(self.literal()?);
                    stage = 2;
                }
                "map" if stage < 3 => {
                    mapping.value_map = self.value_map()?;
                    stage = 3;
                }
                word => {
                    return Err(FieldSyntaxError::new(
                        at,
                        format!(
                            "unexpected `{word}`: after the fields come `via`, `default`, `map`, in that order"
                        ),
                    ));
                }
            }
        }
    }

    fn literal(&mut self) -> Result<Literal, FieldSyntaxError> {
        self.skip_ws();
        let at = self.pos;
        if let Some(quote) = self
            .rest()
            .chars()
            .next()
            .filter(|c| matches!(c, '\'' | '"'))
        {
            let body = self.rest().get(1..).unwrap_or("");
            let Some(end) = body.find(quote) else {
                return Err(FieldSyntaxError::new(at, "unterminated quoted text"));
            };
            let text = body.get(..end).unwrap_or("").to_string();
            self.pos += end + 2;
            return Ok(Literal::Text(text));
        }
        let word = self.word();
        if word.is_empty() {
            return Err(FieldSyntaxError::new(at, "expected a value"));
        }
        Ok(if word.eq_ignore_ascii_case("true") {
            Literal::Boolean(true)
        } else if word.eq_ignore_ascii_case("false") {
            Literal::Boolean(false)
        } else if let Ok(value) = word.parse::<i64>() {
            Literal::Integer(value)
        } else if let Ok(value) = word.parse::<Decimal>() {
            Literal::Decimal(value)
        } else {
            Literal::Text(word.to_string())
        })
    }

    fn expect(&mut self, symbol: char) -> Result<(), FieldSyntaxError> {
        self.skip_ws();
        if self.rest().starts_with(symbol) {
            self.pos += symbol.len_utf8();
            Ok(())
        } else {
            Err(FieldSyntaxError::new(
                self.pos,
                format!("expected `{symbol}`"),
            ))
        }
    }

    fn value_map(&mut self) -> Result<Vec<(Literal, Literal)>, FieldSyntaxError> {
        self.expect('{')?;
        let mut pairs = Vec::new();
        loop {
            self.skip_ws();
            if self.rest().starts_with('}') {
                self.pos += 1;
                break;
            }
            let from = self.literal()?;
            self.expect(':')?;
            let to = self.literal()?;
            pairs.push((from, to));
            self.skip_ws();
            if self.rest().starts_with(',') {
                self.pos += 1;
            } else if !self.rest().starts_with('}') {
                return Err(FieldSyntaxError::new(
                    self.pos,
                    "expected `,` or `}` in the value map",
                ));
            }
        }
        if pairs.is_empty() {
            return Err(FieldSyntaxError::new(
                self.pos,
                "a value map needs at least one `from: to` pair",
            ));
        }
        Ok(pairs)
    }
}

#[cfg(test)]
mod tests;
