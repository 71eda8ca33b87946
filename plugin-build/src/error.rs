//! The one error type of the plugin build: each variant names the file,
//! crate or command at fault and, where there is one, what to do.

use std::path::PathBuf;
use std::process::ExitStatus;

/// Why a plugin could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A file or folder could not be read, written or created.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done: `read`, `write`, `create`, `list`.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A `Cargo.toml` that is not valid TOML.
    #[error("cannot parse {}", path.display())]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// The parser's reason.
        #[source]
        source: toml::de::Error,
    },
    /// A `Cargo.toml` that does not describe a plugin crate.
    #[error("{} is not a plugin crate: {problem}", path.display())]
    NotAPlugin {
        /// The manifest.
        path: PathBuf,
        /// What is missing and how to add it.
        problem: String,
    },
    /// A program could not be started.
    #[error("cannot run {command}")]
    Spawn {
        /// The command line, as written for a person.
        command: String,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A program ran and failed.
    #[error("{command} failed ({status})")]
    Failed {
        /// The command line, as written for a person.
        command: String,
        /// How it ended.
        status: ExitStatus,
    },
    /// A program or file the toolchain needs is not where it should be.
    #[error("{0}")]
    Missing(String),
    /// Neither way of getting a standard library for the wasm target
    /// worked.
    #[error(
        "no standard library for {target} can be had:\n  - {}\n\
         Install one of them (`rustup target add {target}`, or \
         `apt-get install rustc-web rust-web-src`) and run again.",
        tried.join("\n  - ")
    )]
    NoToolchain {
        /// The target (`wasm32-unknown-unknown`).
        target: &'static str,
        /// Why each way failed.
        tried: Vec<String>,
    },
    /// `cargo build` of the plugin crates failed; cargo printed why.
    #[error("building {what} failed ({status}); the compiler's messages are above")]
    Build {
        /// What was built: the plugins, or one crate.
        what: String,
        /// How cargo ended.
        status: ExitStatus,
    },
    /// The core module could not be made a component.
    #[error("cannot make plugin `{name}` a component")]
    Componentize {
        /// The plugin's name.
        name: String,
        /// The encoder's reason.
        #[source]
        source: anyhow::Error,
    },
}

impl BuildError {
    /// An I/O error of `action` on `path`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> BuildError {
        let path = path.into();
        move |source| BuildError::Io {
            action,
            path,
            source,
        }
    }
}
