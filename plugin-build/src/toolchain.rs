//! Finding (and if need be installing) a standard library for
//! `wasm32-unknown-unknown`.
//!
//! Two ways, tried in this order, the first that works is remembered in
//! `plugin-toolchain.json` in a cache folder the caller names, so later runs
//! skip the search (`cargo xtask` uses the workspace's target directory, so
//! `target/plugin-toolchain.json`; a crate built on its own, the target
//! directory it builds into):
//!
//! 1. rustup: `rustup target add wasm32-unknown-unknown`, under a 30 s
//!    timeout, since it hangs rather than failing when its server is out of
//!    reach.
//! 2. Debian's `rustc-web` with `rust-web-src`: cargo builds `std` for the
//!    target itself (`-Zbuild-std`), with Debian's rustc for the plugins only
//!    and the rustup toolchain's `rust-lld` as the linker.
//!
//! When both fail, the error names what is missing and how to get it.

use crate::BuildError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The target plugins are built for.
pub const TARGET: &str = "wasm32-unknown-unknown";
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";

/// How plugins get built for `wasm32-unknown-unknown`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Toolchain {
    /// The rustup toolchain has the target's standard library.
    Rustup,
    /// Debian's rustc builds the standard library from source.
    DebianBuildStd {
        /// Debian's rustc.
        rustc: PathBuf,
        /// The linker (`rust-lld` of the rustup toolchain).
        linker: PathBuf,
    },
}

impl fmt::Display for Toolchain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Toolchain::Rustup => write!(f, "rustup target {TARGET}"),
            Toolchain::DebianBuildStd { rustc, linker } => write!(
                f,
                "{} with -Zbuild-std, linked by {}",
                rustc.display(),
                linker.display()
            ),
        }
    }
}

impl Toolchain {
    /// Sets up `command` (a `cargo build`) to build for the target.
    pub fn configure(&self, command: &mut Command) {
        command.args(["--target", TARGET]);
        if let Toolchain::DebianBuildStd { rustc, linker } = self {
            command
                .env("RUSTC", rustc)
                .env("RUSTC_BOOTSTRAP", "1")
                .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", linker)
                .arg("-Zbuild-std=std,panic_abort");
        }
    }

    /// Whether this toolchain still works (nothing was uninstalled).
    fn is_usable(&self) -> bool {
        match self {
            Toolchain::Rustup => rustup_has_target(),
            Toolchain::DebianBuildStd { rustc, linker } => {
                rustc.exists() && linker.exists() && debian_sources_installed()
            }
        }
    }
}

/// The name of the file, in the cache folder, that remembers the toolchain.
pub const CACHE_FILE: &str = "plugin-toolchain.json";

/// The toolchain remembered in `cache_dir` if it still works, else the first
/// that can be found or installed (then remembered there).
pub fn find_or_install(cache_dir: &Path) -> Result<Toolchain, BuildError> {
    let cache = cache_dir.join(CACHE_FILE);
    if let Some(toolchain) = std::fs::read(&cache)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Toolchain>(&bytes).ok())
        .filter(Toolchain::is_usable)
    {
        return Ok(toolchain);
    }
    let toolchain = search()?;
    std::fs::create_dir_all(cache_dir).map_err(BuildError::io("create", cache_dir))?;
    let json = serde_json::to_vec_pretty(&toolchain)
        .map_err(|error| BuildError::io("write", &cache)(error.into()))?;
    // Written aside and renamed, so a build sharing the folder never reads
    // half a file (and searches again).
    let partial = cache_dir.join(format!("{CACHE_FILE}.{}.partial", std::process::id()));
    std::fs::write(&partial, json).map_err(BuildError::io("write", &partial))?;
    std::fs::rename(&partial, &cache).map_err(BuildError::io("write", &cache))?;
    eprintln!("plugin toolchain: {toolchain}");
    Ok(toolchain)
}

fn search() -> Result<Toolchain, BuildError> {
    let forced = std::env::var("DUALWRITE_PLUGIN_TOOLCHAIN").ok();
    let mut tried = Vec::new();
    if forced.as_deref() != Some("debian") {
        if rustup_has_target() || rustup_add_target() {
            return Ok(Toolchain::Rustup);
        }
        tried.push(format!(
            "rustup could not add {TARGET} within 30 s (no rustup, or its server is out of reach)"
        ));
    }
    match debian_build_std() {
        Ok(toolchain) => Ok(toolchain),
        Err(error) => {
            tried.push(format!("Debian's rustc-web: {}", chain(&error)));
            Err(BuildError::NoToolchain {
                target: TARGET,
                tried,
            })
        }
    }
}

fn rustup_has_target() -> bool {
    Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| {
            let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            Path::new(&sysroot)
                .join("lib/rustlib")
                .join(TARGET)
                .join("lib")
                .is_dir()
        })
        .unwrap_or(false)
}

fn rustup_add_target() -> bool {
    eprintln!("trying: rustup target add {TARGET}");
    let child = Command::new("rustup")
        .args(["target", "add", TARGET])
        .stdin(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return false;
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success() && rustup_has_target(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                eprintln!("rustup target add timed out");
                return false;
            }
        }
    }
}

fn debian_sources_installed() -> bool {
    dpkg_installed("rust-web-src") && dpkg_installed("rustc-web")
}

fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn debian_build_std() -> Result<Toolchain, BuildError> {
    if !debian_sources_installed() {
        eprintln!("installing Debian's rustc-web and rust-web-src");
        run(Command::new("apt-get").arg("update"))?;
        run(Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args([
                "install",
                "-y",
                "--no-install-recommends",
                "rustc-web",
                "rust-web-src",
            ]))?;
    }
    let rustc = PathBuf::from(DEBIAN_RUSTC);
    if !rustc.exists() {
        return Err(BuildError::Missing(format!(
            "{DEBIAN_RUSTC} is missing after installing rustc-web"
        )));
    }
    let linker = rust_lld()?;
    Ok(Toolchain::DebianBuildStd { rustc, linker })
}

/// The rustup toolchain's `rust-lld`.
fn rust_lld() -> Result<PathBuf, BuildError> {
    let spawn = |command: &str| {
        let command = command.to_owned();
        move |source| BuildError::Spawn { command, source }
    };
    let out = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .map_err(spawn("rustc --print sysroot"))?;
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let host = Command::new("rustc")
        .arg("-vV")
        .output()
        .map_err(spawn("rustc -vV"))?;
    let host = String::from_utf8_lossy(&host.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: ").map(str::to_owned))
        .unwrap_or_else(|| "x86_64-unknown-linux-gnu".into());
    let lld = Path::new(&sysroot)
        .join("lib/rustlib")
        .join(host)
        .join("bin/rust-lld");
    if !lld.exists() {
        return Err(BuildError::Missing(format!(
            "the rustup toolchain has no rust-lld at {}",
            lld.display()
        )));
    }
    Ok(lld)
}

fn run(command: &mut Command) -> Result<(), BuildError> {
    let status = command
        .stdin(Stdio::null())
        .status()
        .map_err(|source| BuildError::Spawn {
            command: format!("{command:?}"),
            source,
        })?;
    if !status.success() {
        return Err(BuildError::Failed {
            command: format!("{command:?}"),
            status,
        });
    }
    Ok(())
}

/// An error and its sources on one line, as `{:#}` of an `anyhow::Error`
/// writes them.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
