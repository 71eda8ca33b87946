//! Conversions between the contract's [`Value`] and Rust types.
//!
//! Decimals convert to and from [`rust_decimal::Decimal`] exactly (both are a
//! 96-bit mantissa with a scale of at most 28); GUIDs to and from `u128`
//! (textual byte order); text from `&str` and `String`.

use crate::bindings::types::{Date, DateTime, Decimal as WitDecimal, Guid, Reference, Value};
use rust_decimal::Decimal;

impl Value {
    /// The name of this value's type, as error messages print it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Boolean(_) => "boolean",
            Value::Integer(_) => "integer",
            Value::Float(_) => "float",
            Value::Decimal(_) => "decimal",
            Value::Text(_) => "text",
            Value::Date(_) => "date",
            Value::DateTime(_) => "date-time",
            Value::Guid(_) => "guid",
            Value::Choice(_) => "choice",
            Value::Reference(_) => "reference",
        }
    }

    /// Whether this value is [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

impl From<Decimal> for WitDecimal {
    fn from(value: Decimal) -> Self {
        let mantissa = value.mantissa().unsigned_abs();
        WitDecimal {
            lo: mantissa as u64,
            hi: (mantissa >> 64) as u32,
            scale: value.scale() as u8,
            negative: value.is_sign_negative() && !value.is_zero(),
        }
    }
}

impl WitDecimal {
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
    WitDecimal => |v| Value::Decimal(v),
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
            let wit = WitDecimal::from(decimal);
            assert_eq!(wit.to_decimal(), Some(decimal), "{text}");
            assert_eq!(wit.to_decimal().map(|d| d.to_string()), Some(text.into()));
        }
    }

    #[test]
    fn an_out_of_range_scale_is_not_a_decimal() {
        let wit = WitDecimal {
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
}
