//! The generated host bindings of the plugin contract, the only place the
//! host invokes `wasmtime::component::bindgen!`: [`v0_2`] for the current
//! contract (`wit/plugin.wit`, `dualwrite:plugin@0.2.0`) and [`v0_1`] for the
//! released 0.1.0 (`wit/v0.1.0/plugin.wit`), which the host keeps loading.
//!
//! Each `plugin` world exports both interfaces; the runtime never
//! instantiates it as a whole but looks up `filter` and `transform` one by
//! one through their `GuestIndices`, so a component may export either or
//! both.
//!
//! The 0.1.0 types ([`Batch`], [`Value`], [`Transformed`], …: a list of
//! rows, each a list of values that own their text) are also the host's
//! owned row form, the one `dualwrite plugin run`, the tests and
//! [`Plugin::filter`](super::Plugin::filter) use; [`Rows`](super::Rows) is
//! the flat form the 0.2.0 wire is built from.

/// The released contract `dualwrite:plugin@0.1.0`.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "dualwrite:plugin/plugin@0.1.0",
        additional_derives: [PartialEq],
    });
}

/// The current contract `dualwrite:plugin@0.2.0`.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "dualwrite:plugin/plugin@0.2.0",
        additional_derives: [PartialEq],
    });
}

pub use self::v0_1::dualwrite::plugin::host::Level;
pub use self::v0_1::dualwrite::plugin::types::{
    Batch, Context, Date, DateTime, Decimal, Direction, FieldChange, Guid, KeyField, Outcome,
    Reference, Transformed, Value, Verdict,
};

/// The wire types of the current contract.
pub mod wire {
    pub use super::v0_2::dualwrite::plugin::types::*;
    pub use super::v0_2::exports::dualwrite::plugin::filter::GuestIndices as FilterIndices;
    pub use super::v0_2::exports::dualwrite::plugin::transform::GuestIndices as TransformIndices;
}

/// The export indices of the released contract.
pub mod released {
    pub use super::v0_1::exports::dualwrite::plugin::filter::GuestIndices as FilterIndices;
    pub use super::v0_1::exports::dualwrite::plugin::transform::GuestIndices as TransformIndices;
}

/// The WIT package version this host speaks.
pub const CONTRACT_VERSION: &str = "0.2.0";

/// The released versions this host still loads, besides [`CONTRACT_VERSION`].
pub const RELEASED_VERSIONS: [&str; 1] = ["0.1.0"];

/// The interfaces a plugin may import (and nothing else).
pub const ALLOWED_IMPORTS: [&str; 4] = [
    "dualwrite:plugin/host@0.2.0",
    "dualwrite:plugin/types@0.2.0",
    "dualwrite:plugin/host@0.1.0",
    "dualwrite:plugin/types@0.1.0",
];

/// The interface a filter exports (in the current contract).
pub const FILTER_EXPORT: &str = "dualwrite:plugin/filter@0.2.0";

/// The interface a transform exports (in the current contract).
pub const TRANSFORM_EXPORT: &str = "dualwrite:plugin/transform@0.2.0";

/// The interface a filter of the released 0.1.0 exports.
pub const FILTER_EXPORT_0_1: &str = "dualwrite:plugin/filter@0.1.0";

/// The interface a transform of the released 0.1.0 exports.
pub const TRANSFORM_EXPORT_0_1: &str = "dualwrite:plugin/transform@0.1.0";

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

impl wire::Decimal {
    /// This decimal as a [`rust_decimal::Decimal`]; `None` when its scale is
    /// over 28.
    pub fn to_decimal(&self) -> Option<rust_decimal::Decimal> {
        Decimal::from(*self).to_decimal()
    }
}

impl From<rust_decimal::Decimal> for wire::Decimal {
    fn from(value: rust_decimal::Decimal) -> Self {
        Decimal::from(value).into()
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

/// The same scalar records in both contracts, converted field by field.
macro_rules! same_record {
    ($($name:ident { $($field:ident),* })*) => {
        $(
            impl From<$name> for wire::$name {
                fn from(value: $name) -> Self {
                    wire::$name { $($field: value.$field),* }
                }
            }

            impl From<wire::$name> for $name {
                fn from(value: wire::$name) -> Self {
                    $name { $($field: value.$field),* }
                }
            }
        )*
    };
}

same_record! {
    Decimal { lo, hi, scale, negative }
    Date { year, month, day }
    DateTime { seconds, nanoseconds }
    Guid { hi, lo }
}

impl From<&KeyField> for wire::KeyField {
    fn from(value: &KeyField) -> Self {
        wire::KeyField {
            name: value.name.clone(),
            value: value.value.clone(),
        }
    }
}

impl From<&wire::KeyField> for KeyField {
    fn from(value: &wire::KeyField) -> Self {
        KeyField {
            name: value.name.clone(),
            value: value.value.clone(),
        }
    }
}

impl From<&Reference> for wire::Reference {
    fn from(value: &Reference) -> Self {
        wire::Reference {
            table: value.table.clone(),
            id: value.id.map(Into::into),
            key: value.key.iter().map(Into::into).collect(),
        }
    }
}

impl From<&wire::Reference> for Reference {
    fn from(value: &wire::Reference) -> Self {
        Reference {
            table: value.table.clone(),
            id: value.id.map(Into::into),
            key: value.key.iter().map(Into::into).collect(),
        }
    }
}

impl From<&Context> for wire::Context {
    fn from(value: &Context) -> Self {
        wire::Context {
            table_map: value.table_map.clone(),
            direction: match value.direction {
                Direction::LeftToRight => wire::Direction::LeftToRight,
                Direction::RightToLeft => wire::Direction::RightToLeft,
            },
            company: value.company.clone(),
            settings: value.settings.clone(),
        }
    }
}
