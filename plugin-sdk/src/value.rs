//! [`Value`], a field's value as a plugin author holds it, and its
//! conversions to and from the wire and from Rust types.
//!
//! On the wire a text value is a span of the batch's one text buffer; a
//! [`Value`] owns its text. [`ValueRef`] is the borrowed view the row's
//! getters read without copying. Decimals convert to and from
//! [`rust_decimal::Decimal`] exactly (both are a 96-bit mantissa with a scale
//! of at most 28); GUIDs to and from `u128` (textual byte order).

use crate::bindings::types::{
    self as wire, Date, DateTime, Decimal as WireDecimal, Guid, Reference, Span,
};
use rust_decimal::Decimal;

/// A typed field value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// No value: the field is empty.
    Null,
    /// A yes/no value (Dataverse two-options, finops `NoYes`).
    Boolean(bool),
    /// A whole number.
    Integer(i64),
    /// A binary floating-point number, for measurements only; never money.
    Float(f64),
    /// An exact decimal: money, quantities, rates.
    Decimal(WireDecimal),
    /// Text.
    Text(String),
    /// A date without a time.
    Date(Date),
    /// An instant.
    DateTime(DateTime),
    /// A GUID.
    Guid(Guid),
    /// A choice (option set) value, by its integer value.
    Choice(i32),
    /// A reference to a row of another table.
    Reference(Reference),
}

/// A value borrowed from a batch or from a [`Value`]: what the row's typed
/// getters read, without copying text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ValueRef<'a> {
    Null,
    Boolean(bool),
    Integer(i64),
    Float(f64),
    Decimal(WireDecimal),
    Text(&'a str),
    Date(Date),
    DateTime(DateTime),
    Guid(Guid),
    Choice(i32),
    Reference(&'a Reference),
}

impl Value {
    /// The name of this value's type, as error messages print it.
    pub fn type_name(&self) -> &'static str {
        self.as_ref().type_name()
    }

    /// Whether this value is [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub(crate) fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::Boolean(b) => ValueRef::Boolean(*b),
            Value::Integer(n) => ValueRef::Integer(*n),
            Value::Float(f) => ValueRef::Float(*f),
            Value::Decimal(d) => ValueRef::Decimal(*d),
            Value::Text(text) => ValueRef::Text(text),
            Value::Date(d) => ValueRef::Date(*d),
            Value::DateTime(t) => ValueRef::DateTime(*t),
            Value::Guid(g) => ValueRef::Guid(*g),
            Value::Choice(c) => ValueRef::Choice(*c),
            Value::Reference(r) => ValueRef::Reference(r),
        }
    }

    /// This value on the wire, its text appended to `text` and a reference
    /// to `references`.
    pub(crate) fn to_wire(
        &self,
        text: &mut String,
        references: &mut Vec<Reference>,
    ) -> wire::Value {
        match self {
            Value::Null => wire::Value::Null,
            Value::Boolean(b) => wire::Value::Boolean(*b),
            Value::Integer(n) => wire::Value::Integer(*n),
            Value::Float(f) => wire::Value::Float(*f),
            Value::Decimal(d) => wire::Value::Decimal(*d),
            Value::Text(value) => wire::Value::Text(push_text(text, value)),
            Value::Date(d) => wire::Value::Date(*d),
            Value::DateTime(t) => wire::Value::DateTime(*t),
            Value::Guid(g) => wire::Value::Guid(*g),
            Value::Choice(c) => wire::Value::Choice(*c),
            Value::Reference(r) => {
                references.push(r.clone());
                wire::Value::Reference(u32::try_from(references.len() - 1).unwrap_or(u32::MAX))
            }
        }
    }
}

impl<'a> ValueRef<'a> {
    /// The view of a wire value whose text is in `text` and references in
    /// `references`; `None` when its span is not in `text` or splits a
    /// character, or its reference is not in `references`.
    #[inline]
    pub(crate) fn of_wire(
        value: &'a wire::Value,
        text: &'a str,
        references: &'a [Reference],
    ) -> Option<ValueRef<'a>> {
        Some(match value {
            wire::Value::Null => ValueRef::Null,
            wire::Value::Boolean(b) => ValueRef::Boolean(*b),
            wire::Value::Integer(n) => ValueRef::Integer(*n),
            wire::Value::Float(f) => ValueRef::Float(*f),
            wire::Value::Decimal(d) => ValueRef::Decimal(*d),
            wire::Value::Text(span) => ValueRef::Text(span_text(text, *span)?),
            wire::Value::Date(d) => ValueRef::Date(*d),
            wire::Value::DateTime(t) => ValueRef::DateTime(*t),
            wire::Value::Guid(g) => ValueRef::Guid(*g),
            wire::Value::Choice(c) => ValueRef::Choice(*c),
            wire::Value::Reference(r) => ValueRef::Reference(references.get(*r as usize)?),
        })
    }

    pub(crate) fn type_name(self) -> &'static str {
        match self {
            ValueRef::Null => "null",
            ValueRef::Boolean(_) => "boolean",
            ValueRef::Integer(_) => "integer",
            ValueRef::Float(_) => "float",
            ValueRef::Decimal(_) => "decimal",
            ValueRef::Text(_) => "text",
            ValueRef::Date(_) => "date",
            ValueRef::DateTime(_) => "date-time",
            ValueRef::Guid(_) => "guid",
            ValueRef::Choice(_) => "choice",
            ValueRef::Reference(_) => "reference",
        }
    }

    pub(crate) fn to_owned(self) -> Value {
        match self {
            ValueRef::Null => Value::Null,
            ValueRef::Boolean(b) => Value::Boolean(b),
            ValueRef::Integer(n) => Value::Integer(n),
            ValueRef::Float(f) => Value::Float(f),
            ValueRef::Decimal(d) => Value::Decimal(d),
            ValueRef::Text(text) => Value::Text(text.to_owned()),
            ValueRef::Date(d) => Value::Date(d),
            ValueRef::DateTime(t) => Value::DateTime(t),
            ValueRef::Guid(g) => Value::Guid(g),
            ValueRef::Choice(c) => Value::Choice(c),
            ValueRef::Reference(r) => Value::Reference(r.clone()),
        }
    }
}

/// Whether two names are equal: what `a == b` answers, without a call to
/// `memcmp`, which in WebAssembly is a byte loop behind a call (field and
/// setting names are short, and a plugin looks them up on every row).
#[inline]
pub(crate) fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut a_words = a.chunks_exact(8);
    let mut b_words = b.chunks_exact(8);
    for (x, y) in a_words.by_ref().zip(b_words.by_ref()) {
        if x != y {
            return false;
        }
    }
    a_words
        .remainder()
        .iter()
        .zip(b_words.remainder())
        .all(|(x, y)| x == y)
}

/// The text a span points at, or `None` when it is out of `text` or splits a
/// character.
#[inline]
pub(crate) fn span_text(text: &str, span: Span) -> Option<&str> {
    let start = span.start as usize;
    text.get(start..start.checked_add(span.len as usize)?)
}

/// Appends `value` to `text` and returns its span.
///
/// Batches are far under 4 GiB (the host caps a plugin's memory at 256 MiB),
/// so offsets fit a `u32`; a longer text saturates and fails the host's check
/// instead of wrapping.
pub(crate) fn push_text(text: &mut String, value: &str) -> Span {
    let start = u32::try_from(text.len()).unwrap_or(u32::MAX);
    text.push_str(value);
    Span {
        start,
        len: u32::try_from(value.len()).unwrap_or(u32::MAX),
    }
}

impl From<Decimal> for WireDecimal {
    fn from(value: Decimal) -> Self {
        let mantissa = value.mantissa().unsigned_abs();
        WireDecimal {
            lo: mantissa as u64,
            hi: (mantissa >> 64) as u32,
            scale: value.scale() as u8,
            negative: value.is_sign_negative() && !value.is_zero(),
        }
    }
}

impl WireDecimal {
    /// This decimal as a [`rust_decimal::Decimal`], or `None` when its scale
    /// is over 28 (a malformed value no host sends).
    pub fn to_decimal(&self) -> Option<Decimal> {
        if self.scale > 28 {
            return None;
        }
        let lo = self.lo as u32;
        let mid = (self.lo >> 32) as u32;
        Some(Decimal::from_parts(
            lo,
            mid,
            self.hi,
            self.negative,
            u32::from(self.scale),
        ))
    }
}

impl From<u128> for Guid {
    fn from(value: u128) -> Self {
        Guid {
            hi: (value >> 64) as u64,
            lo: value as u64,
        }
    }
}

impl From<Guid> for u128 {
    fn from(value: Guid) -> Self {
        (u128::from(value.hi) << 64) | u128::from(value.lo)
    }
}

macro_rules! value_from {
    ($($ty:ty => |$v:ident| $body:expr),* $(,)?) => {
        $(impl From<$ty> for Value {
            fn from($v: $ty) -> Self {
                $body
            }
        })*
    };
}

value_from! {
    bool => |v| Value::Boolean(v),
    i64 => |v| Value::Integer(v),
    i32 => |v| Value::Integer(i64::from(v)),
    u32 => |v| Value::Integer(i64::from(v)),
    f64 => |v| Value::Float(v),
    Decimal => |v| Value::Decimal(v.into()),
    WireDecimal => |v| Value::Decimal(v),
    String => |v| Value::Text(v),
    &str => |v| Value::Text(v.to_owned()),
    &String => |v| Value::Text(v.clone()),
    Date => |v| Value::Date(v),
    DateTime => |v| Value::DateTime(v),
    Guid => |v| Value::Guid(v),
    Reference => |v| Value::Reference(v),
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Self {
        value.map_or(Value::Null, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn decimals_round_trip_exactly() {
        for text in [
            "0",
            "-0.0000000001",
            "1234567890.1234567890",
            "79228162514264337593543950335",
            "-79228162514264337593543950335",
            "0.0000000000000000000000000001",
        ] {
            let decimal = Decimal::from_str(text).expect("valid decimal");
            let wit = WireDecimal::from(decimal);
            assert_eq!(wit.to_decimal(), Some(decimal), "{text}");
            assert_eq!(wit.to_decimal().map(|d| d.to_string()), Some(text.into()));
        }
    }

    #[test]
    fn an_out_of_range_scale_is_not_a_decimal() {
        let wit = WireDecimal {
            lo: 1,
            hi: 0,
            scale: 29,
            negative: false,
        };
        assert_eq!(wit.to_decimal(), None);
    }

    #[test]
    fn guids_keep_their_byte_order() {
        let n = 0x0011_2233_4455_6677_8899_aabb_ccdd_eeffu128;
        let guid = Guid::from(n);
        assert_eq!(guid.hi, 0x0011_2233_4455_6677);
        assert_eq!(u128::from(guid), n);
    }

    #[test]
    fn names_compare_as_strings_do() {
        for (a, b) in [
            ("", ""),
            ("a", "a"),
            ("a", "b"),
            ("dataAreaId", "dataAreaId"),
            ("dataAreaId", "dataAreaIe"),
            ("CUSTOMERACCOUNT", "CUSTOMERACCOUNT"),
            ("CUSTOMERACCOUNT", "CUSTOMERACCOUNS"),
            ("abcdefgh", "abcdefgi"),
            ("abc", "abcd"),
        ] {
            assert_eq!(same(a, b), a == b, "{a} {b}");
        }
    }

    #[test]
    fn text_crosses_as_a_span_of_one_buffer() {
        let mut text = String::from("ab");
        let wire = Value::from("héllo").to_wire(&mut text, &mut Vec::new());
        assert_eq!(text, "abhéllo");
        assert_eq!(
            ValueRef::of_wire(&wire, &text, &[]).map(ValueRef::to_owned),
            Some(Value::from("héllo"))
        );
        let split = wire::Value::Text(Span { start: 3, len: 1 });
        assert_eq!(
            ValueRef::of_wire(&split, &text, &[]),
            None,
            "a span that splits a character is refused"
        );
        let outside = wire::Value::Text(Span {
            start: u32::MAX,
            len: u32::MAX,
        });
        assert_eq!(ValueRef::of_wire(&outside, &text, &[]), None);
        assert_eq!(
            ValueRef::of_wire(&wire::Value::Reference(0), &text, &[]),
            None,
            "a reference outside the list is refused"
        );
    }
}
