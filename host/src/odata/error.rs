//! Errors of the `odata` module and the OData error body.

use std::fmt;

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

/// Where in a batch a part stands, counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartPosition {
    /// The item of the batch.
    pub item: usize,
    /// The part inside that item when it is a change set.
    pub in_change_set: Option<usize>,
}

/// A `$batch` body or `Content-Type` that does not follow the format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The `Content-Type` is not `multipart/…`.
    #[error(
        "the $batch Content-Type '{content_type}' is not multipart: send Content-Type: multipart/mixed; boundary=..."
    )]
    NotMultipart {
        /// The header as received.
        content_type: String,
    },
    /// The `Content-Type` names no boundary.
    #[error(
        "the $batch Content-Type '{content_type}' has no boundary parameter: add boundary=... naming the delimiter the body uses"
    )]
    NoBoundary {
        /// The header as received.
        content_type: String,
    },
    /// No line of the body is a delimiter of the boundary.
    #[error("the $batch body has no delimiter line '--{boundary}': begin each part with it")]
    NoDelimiter {
        /// The boundary looked for.
        boundary: String,
    },
    /// The body ends before the closing delimiter.
    #[error(
        "the $batch body ends before its closing delimiter '--{boundary}--': the body was cut short, or its boundary is not the one declared"
    )]
    Truncated {
        /// The boundary whose closing delimiter is missing.
        boundary: String,
    },
    /// A part's MIME headers are broken or do not end.
    #[error(
        "{part} of the $batch: its MIME headers are not valid ({detail}): write Content-Type: application/http, then a blank line, then the HTTP message"
    )]
    PartHeaders {
        /// The part.
        part: PartPosition,
        /// What is wrong.
        detail: String,
    },
    /// A change set inside a change set.
    #[error("{part} of the $batch is a change set inside a change set: change sets do not nest")]
    NestedChangeSet {
        /// The part.
        part: PartPosition,
    },
    /// A request part whose first line is not a request line.
    #[error(
        "{part} of the $batch is not an HTTP request ('{line}': {detail}): write 'METHOD URL HTTP/1.1', headers, a blank line, then the body"
    )]
    RequestLine {
        /// The part.
        part: PartPosition,
        /// Its first line, shortened.
        line: String,
        /// What the parser found wrong.
        detail: String,
    },
    /// A response part whose first line is not a status line.
    #[error(
        "{part} of the $batch response is not an HTTP response ('{line}': {detail}): expected 'HTTP/1.1 CODE Reason', headers, a blank line, then the body"
    )]
    StatusLine {
        /// The part.
        part: PartPosition,
        /// Its first line, shortened.
        line: String,
        /// What the parser found wrong.
        detail: String,
    },
    /// A header line of a part's HTTP message is broken.
    #[error("{part} of the $batch has a broken header ({detail}): write 'Name: value' lines")]
    Header {
        /// The part.
        part: PartPosition,
        /// What the parser found wrong.
        detail: String,
    },
}

impl fmt::Display for PartPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.in_change_set {
            None => write!(f, "part {}", self.item),
            Some(inner) => write!(f, "part {inner} of change set {}", self.item),
        }
    }
}
