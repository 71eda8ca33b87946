//! Errors of the `map` module.

/// A field or key string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at position {position}: {message}")]
pub struct FieldSyntaxError {
    /// Byte offset in the string where the fault was found.
    pub position: usize,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl FieldSyntaxError {
    pub(crate) fn new(position: usize, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
        }
    }
}
