//! The generated host bindings of `wit/plugin.wit`, the only place the host
//! invokes `wasmtime::component::bindgen!`.
//!
//! The `plugin` world exports both interfaces; the runtime never instantiates
//! it as a whole but looks up `filter` and `transform` one by one through
//! their `GuestIndices`, so a component may export either or both.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "dualwrite:plugin/plugin@0.1.0",
    additional_derives: [PartialEq],
});

pub use self::dualwrite::plugin::host::Level;
pub use self::dualwrite::plugin::types::{
    Batch, Context, Date, DateTime, Decimal, Direction, FieldChange, Guid, KeyField, Outcome,
    Reference, Transformed, Value, Verdict,
};
pub use self::exports::dualwrite::plugin::filter::GuestIndices as FilterIndices;
pub use self::exports::dualwrite::plugin::transform::GuestIndices as TransformIndices;

/// The WIT package version this host speaks.
pub const CONTRACT_VERSION: &str = "0.1.0";

/// The interfaces a plugin may import (and nothing else).
pub const ALLOWED_IMPORTS: [&str; 2] = [
    "dualwrite:plugin/host@0.1.0",
    "dualwrite:plugin/types@0.1.0",
];

/// The interface a filter exports.
pub const FILTER_EXPORT: &str = "dualwrite:plugin/filter@0.1.0";

/// The interface a transform exports.
pub const TRANSFORM_EXPORT: &str = "dualwrite:plugin/transform@0.1.0";

impl From<rust_decimal::Decimal> for Decimal {
    fn from(value: rust_decimal::Decimal) -> Self {
        let mantissa = value.mantissa().unsigned_abs();
        Decimal {
            lo: mantissa as u64,
            hi: (mantissa >> 64) as u32,
            scale: value.scale() as u8,
            negative: value.is_sign_negative() && !value.is_zero(),
        }
    }
}

impl Decimal {
    /// This decimal as a [`rust_decimal::Decimal`]; `None` when its scale is
    /// over 28.
    pub fn to_decimal(&self) -> Option<rust_decimal::Decimal> {
        (self.scale <= 28).then(|| {
            rust_decimal::Decimal::from_parts(
                self.lo as u32,
                (self.lo >> 32) as u32,
                self.hi,
                self.negative,
                u32::from(self.scale),
            )
        })
    }
}

impl From<uuid::Uuid> for Guid {
    fn from(value: uuid::Uuid) -> Self {
        let n = value.as_u128();
        Guid {
            hi: (n >> 64) as u64,
            lo: n as u64,
        }
    }
}

impl From<Guid> for uuid::Uuid {
    fn from(value: Guid) -> Self {
        uuid::Uuid::from_u128((u128::from(value.hi) << 64) | u128::from(value.lo))
    }
}

impl Value {
    /// The name of this value's type, as messages print it.
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
}

impl Transformed {
    /// Row `index` of `batch` after the transform, under the result's
    /// schema: `None` for a field the row does not have. `None` altogether
    /// when the row was skipped or failed.
    pub fn row(&self, batch: &Batch, index: usize) -> Option<Vec<Option<Value>>> {
        let input = batch.rows.get(index)?;
        let mut row: Vec<Option<Value>> = input.iter().cloned().map(Some).collect();
        row.resize(self.fields.len(), None);
        match self.outcomes.get(index)? {
            Outcome::Unchanged => {}
            Outcome::Changed(changes) => {
                for change in changes {
                    if let Some(slot) = row.get_mut(change.field as usize) {
                        *slot = change.value.clone();
                    }
                }
            }
            Outcome::Skip(_) | Outcome::Fail(_) => return None,
        }
        Some(row)
    }
}
