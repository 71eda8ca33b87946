//! [`Outcome`]: what a plugin function decides for one row.

/// What a filter or transform decides for one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The row goes on (with the changes a transform made to it).
    Keep,
    /// The row is filtered out, for this reason.
    Skip(String),
    /// The row is in error: the host parks it with this message.
    Fail(String),
}

impl Outcome {
    /// The row is filtered out, for this reason.
    pub fn skip(reason: impl Into<String>) -> Self {
        Outcome::Skip(reason.into())
    }

    /// The row is in error, with this message.
    pub fn fail(message: impl Into<String>) -> Self {
        Outcome::Fail(message.into())
    }
}
