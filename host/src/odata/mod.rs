//! OData v4 pieces shared by the emulators and the sync engine.
//!
//! - [`Filter`]: the one `$filter` parser and evaluator. [`Filter::parse`]
//!   turns the text into an expression tree (or a [`FilterError`] carrying the
//!   byte position of the fault); [`Filter::matches`] evaluates it against a
//!   row given as a `serde_json::Map` or any [`FilterRow`].
//! - [`ODataError`]: the `{"error":{"code":…,"message":…}}` body both services
//!   answer with.
//! - [`batch`]: the `$batch` multipart codec ([`batch::Batch`] of requests or
//!   responses, [`batch::BatchError`]), which the connectors and the
//!   emulators both read and write with.
//!
//! This module knows nothing about HTTP clients or servers, storage or either
//! emulator: the sync engine uses the same parser for its map filters, and
//! `batch` only frames messages, it never sends them.
//!
//! ```
//! use dualwrite::odata::Filter;
//! use serde_json::json;
//!
//! let filter = Filter::parse("customertypecode eq 3 and startswith(name, 'con')").unwrap();
//! let row = json!({"customertypecode": 3, "name": "Contoso"});
//! assert!(filter.matches(row.as_object().unwrap()));
//! assert_eq!(filter.field_names(), ["customertypecode", "name"]);
//!
//! let error = Filter::parse("name eq").unwrap_err();
//! assert_eq!(error.position, 7);
//! ```
//!
//! Invariants:
//! - Parsing never panics, whatever the input; every failure names a position.
//! - String comparisons (`eq`, `startswith`, …) are case-insensitive, as both
//!   services compare with a case-insensitive SQL collation.
//! - A comparison between values of types that do not compare (a string with a
//!   number, a missing field with a number) is false, never an error: rows
//!   are data, the filter was already validated.

pub mod batch;
mod error;
mod eval;
mod lexer;
mod parser;

pub use error::{BatchError, FilterError, ODataError, ODataErrorBody, PartPosition};
pub use eval::FilterRow;
pub use parser::{CompareOp, Expr, Filter, Function, Literal, Operand};
