//! What goes wrong for one row: [`Error`], and the typed [`RowError`] and
//! [`SettingError`] the SDK's accessors return.
//!
//! An [`Error`] that leaves a plugin function (by `?` or `Err`) fails that
//! row: the host parks it in the error queue with the error's message.

use std::fmt;

/// A row-level error. Any [`std::error::Error`] converts into it, so `?` works
/// on the SDK's accessors and on the standard library's parsers alike.
///
/// It deliberately does not implement [`std::error::Error`] itself (as
/// `anyhow::Error` does not), which is what makes that blanket conversion
/// possible.
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
}

impl Error {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
        }
    }

    /// The message the host will park the row with.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl<E: std::error::Error> From<E> for Error {
    fn from(error: E) -> Self {
        Error::new(error.to_string())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.message, f)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A field of a row is missing or does not hold the type asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowError {
    /// The batch's schema has no such field.
    Missing {
        /// The field asked for.
        field: String,
    },
    /// The field is empty where a value was required.
    Null {
        /// The field asked for.
        field: String,
        /// The type that was asked for.
        expected: &'static str,
    },
    /// The field holds a value of another type.
    WrongType {
        /// The field asked for.
        field: String,
        /// The type that was asked for.
        expected: &'static str,
        /// The type the field holds.
        found: &'static str,
    },
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowError::Missing { field } => write!(
                f,
                "field `{field}` is not in the row; map it in the table map or read it with `row.get`"
            ),
            RowError::Null { field, expected } => {
                write!(f, "field `{field}` is empty; expected {expected}")
            }
            RowError::WrongType {
                field,
                expected,
                found,
            } => write!(f, "field `{field}` holds {found}; expected {expected}"),
        }
    }
}

impl std::error::Error for RowError {}

/// A plugin setting is missing or cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingError {
    /// The map's configuration does not set it.
    Missing {
        /// The setting's name.
        name: String,
    },
    /// Its value does not parse.
    Invalid {
        /// The setting's name.
        name: String,
        /// The value as configured.
        value: String,
        /// Why it does not parse.
        reason: String,
    },
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingError::Missing { name } => write!(
                f,
                "setting `{name}` is required; add it to the plugin's settings in the table map"
            ),
            SettingError::Invalid {
                name,
                value,
                reason,
            } => write!(f, "setting `{name}` = `{value}` is invalid: {reason}"),
        }
    }
}

impl std::error::Error for SettingError {}
