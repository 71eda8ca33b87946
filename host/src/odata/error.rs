//! Errors of the `odata` module and the OData error body.

use serde::{Deserialize, Serialize};

/// A `$filter` expression that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid $filter at position {position}: {message}")]
pub struct FilterError {
    /// Byte offset in the filter text where the fault was found.
    pub position: usize,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl FilterError {
    pub(crate) fn new(position: usize, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
        }
    }
}

/// The OData JSON error body: `{"error":{"code":"…","message":"…"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ODataError {
    /// The single top-level member OData prescribes.
    pub error: ODataErrorBody,
}

/// The inside of [`ODataError`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ODataErrorBody {
    /// Service-specific code, e.g. Dataverse `0x80040217`.
    pub code: String,
    /// Human-readable message naming the field or row at fault.
    pub message: String,
}

impl ODataError {
    /// Builds an error body from a code and a message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ODataErrorBody {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}
