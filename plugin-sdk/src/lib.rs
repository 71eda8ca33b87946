#![doc = include_str!("../README.md")]

extern crate self as dualwrite_plugin_sdk;

pub mod bindings;
mod context;
mod error;
pub mod log;
mod outcome;
mod row;
mod runtime;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
mod value;

pub use bindings::types::{Date, DateTime, Decimal as WireDecimal, Guid, KeyField, Reference};
pub use context::{Context, Direction};
pub use dualwrite_plugin_sdk_macros::{filter, transform};
pub use error::{Error, RowError, SettingError};
pub use outcome::Outcome;
pub use row::Row;
pub use rust_decimal::{self, Decimal};
pub use value::Value;

/// What a plugin needs, in one `use`.
pub mod prelude {
    pub use crate::{
        Context, Decimal, Direction, Error, Outcome, Row, Value, filter, transform, values,
    };
}

/// A `Vec<Value>` from values of mixed types: `values!["Contoso", 3i64, Value::Null]`.
#[macro_export]
macro_rules! values {
    ($($value:expr),* $(,)?) => {
        ::std::vec![$($crate::Value::from($value)),*]
    };
}

#[doc(hidden)]
pub mod __private {
    pub use crate::context::ReadsProbe;
    pub use crate::runtime::{
        FilterFn, TransformFn, collect_reads, reads, run_filter, run_transform,
    };
    pub use wit_bindgen;
}
