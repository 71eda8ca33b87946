//! Errors of the `config` module.

/// A config file that cannot be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("could not read config file {path}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is invalid or does not match the format.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// 1-based line of the fault (0 when unknown).
        line: usize,
        /// 1-based column of the fault (0 when unknown).
        column: usize,
        /// What the TOML parser said.
        message: String,
    },
}
