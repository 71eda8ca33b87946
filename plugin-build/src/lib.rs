//! Building dualwrite plugin crates into WebAssembly components: the one
//! place that knows how, used by `cargo xtask plugins` (every plugin of the
//! workspace) and by `dualwrite plugin build` (one crate anywhere on disk).
//!
//! - [`toolchain`]: finds (or installs) a standard library for
//!   `wasm32-unknown-unknown` and sets up a `cargo` command to use it.
//! - [`wasm_build_command`]: the `cargo build --profile plugin` of plugin
//!   crates for that target; [`core_module`] says where the module lands.
//! - [`componentize`]: the core module made a component, stamped with the
//!   crate's name and version.
//! - [`PluginCrate`]: what the build reads from a crate's `Cargo.toml`.
//! - [`build`]: all of it for one crate anywhere on disk, into
//!   `<target_dir>/plugin/<name>.wasm` ([`BuiltPlugin`]).
//!
//! Every failure is a [`BuildError`] naming the file, crate or command at
//! fault.
//!
//! **Invariant**: the guests' build never uses the host's target directory,
//! `RUSTC`, `RUSTC_WRAPPER` or `RUSTFLAGS`.

mod build;
mod cargo;
mod componentize;
mod error;
mod manifest;
pub mod toolchain;

pub use build::{BuiltPlugin, COMPONENTS_DIR, build};
pub use cargo::{PROFILE, core_module, wasm_build_command};
pub use componentize::componentize;
pub use error::BuildError;
pub use manifest::PluginCrate;
pub use toolchain::Toolchain;
