//! `dualwrite plugin new`: a plugin crate of one's own, anywhere on disk.
//!
//! The crate is its own workspace (an empty `[workspace]` table), depends on
//! the released SDK by version and, when the SDK this `dualwrite` was built
//! from is on this machine (or `--sdk-path` names one), patches that
//! dependency to it; the lock file of the SDK's workspace then comes along,
//! so the crate resolves to the versions the SDK was tested with, which are
//! in the local registry cache.
//!
//! Every check runs before anything is written: a bad name or a folder
//! that is not empty writes nothing.

use anyhow::{Context as _, bail};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `dualwrite plugin new`
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The crate's name, which is also the plugin's: ASCII letters, digits,
    /// `-` and `_`, starting with a letter.
    pub name: String,
    /// Make a filter (it keeps or skips rows).
    #[arg(long, conflicts_with = "transform")]
    pub filter: bool,
    /// Make a transform (it changes rows); the default.
    #[arg(long)]
    pub transform: bool,
    /// The folder to make the crate in (default `./NAME`); it must not
    /// exist, or be empty.
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
    /// The plugin SDK to build against instead of the released one: the
    /// `plugin-sdk/` folder of a dualwrite checkout (default: the one this
    /// `dualwrite` was built from, when it is on this machine).
    #[arg(long, value_name = "DIR")]
    pub sdk_path: Option<PathBuf>,
}

/// The SDK version a new crate depends on: this `dualwrite`'s (the SDK and
/// the command are released together).
const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The SDK's package name.
const SDK_PACKAGE: &str = "dualwrite-plugin-sdk";

/// The kind of plugin a new crate holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Filter,
    Transform,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Filter => "filter",
            Kind::Transform => "transform",
        }
    }

    /// The sample `src/lib.rs` and `rows.json`.
    fn sample(self) -> (&'static str, &'static str) {
        match self {
            Kind::Filter => (
                include_str!("template/filter.rs"),
                include_str!("template/filter-rows.json"),
            ),
            Kind::Transform => (
                include_str!("template/transform.rs"),
                include_str!("template/transform-rows.json"),
            ),
        }
    }
}

/// Runs `dualwrite plugin new`.
pub fn run(args: NewArgs) -> anyhow::Result<ExitCode> {
    check_name(&args.name)?;
    let kind = if args.filter {
        Kind::Filter
    } else {
        Kind::Transform
    };
    let dir = args.path.unwrap_or_else(|| PathBuf::from(&args.name));
    check_empty(&dir)?;
    let sdk = match &args.sdk_path {
        Some(path) => Some(checked_sdk(path)?),
        None => built_from_sdk(),
    };
    let files = files(&args.name, kind, sdk.as_deref())?;
    write_all(&dir, &files)?;
    println!(
        "made the {} plugin crate `{}` in {}",
        kind.name(),
        args.name,
        dir.display()
    );
    match &sdk {
        Some(sdk) => println!(
            "  {SDK_PACKAGE} {SDK_VERSION}, patched to the SDK at {}",
            sdk.display()
        ),
        None => println!("  {SDK_PACKAGE} {SDK_VERSION} from crates.io"),
    }
    println!("next:");
    println!("  cd {}", dir.display());
    println!("  dualwrite plugin test     # its tests, then the component over rows.json");
    println!(
        "  dualwrite plugin build    # target/plugin/{}.wasm",
        args.name
    );
    Ok(ExitCode::SUCCESS)
}

/// Refuses a name cargo would refuse, or one that would shadow a crate the
/// plugin links.
fn check_name(name: &str) -> anyhow::Result<()> {
    const RESERVED: &[&str] = &[
        "alloc",
        "core",
        "std",
        "proc_macro",
        "test",
        "dualwrite_plugin_sdk",
        "dualwrite_plugin_sdk_macros",
    ];
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let starts_with_letter = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    if name.is_empty() || name.len() > 64 || !valid_chars || !starts_with_letter {
        bail!(
            "`{name}` is not a valid crate name: use 1 to 64 ASCII letters, digits, `-` and `_`, \
             starting with a letter (for example `my-filter`)"
        );
    }
    let lib_name = name.replace('-', "_");
    if RESERVED.contains(&lib_name.as_str()) || is_keyword(&lib_name) {
        bail!(
            "`{name}` is not a valid crate name: `{lib_name}` is a Rust keyword or the name of a \
             crate the plugin links; choose another"
        );
    }
    Ok(())
}

fn is_keyword(word: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
        "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
        "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub",
        "ref", "return", "self", "static", "struct", "super", "trait", "true", "try", "type",
        "typeof", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
    ];
    KEYWORDS.contains(&word)
}

/// Refuses a folder that exists and is not empty, or a path that is a
/// file.
fn check_empty(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    if !dir.is_dir() {
        bail!(
            "{} exists and is not a folder; choose another --path",
            dir.display()
        );
    }
    let mut entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    if entries.next().is_some() {
        bail!(
            "{} exists and is not empty; nothing was written (choose another --path, or empty it)",
            dir.display()
        );
    }
    Ok(())
}

/// The SDK folder `path`, made absolute, once it is shown to hold the SDK.
fn checked_sdk(path: &Path) -> anyhow::Result<PathBuf> {
    let manifest = path.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).with_context(|| {
        format!(
            "--sdk-path {}: cannot read {}; give the `plugin-sdk/` folder of a dualwrite checkout",
            path.display(),
            manifest.display()
        )
    })?;
    let parsed: toml::Table = toml::from_str(&text)
        .with_context(|| format!("--sdk-path: cannot parse {}", manifest.display()))?;
    let name = parsed
        .get("package")
        .and_then(|package| package.get("name"))
        .and_then(toml::Value::as_str);
    if name != Some(SDK_PACKAGE) {
        bail!(
            "--sdk-path {}: {} is not the manifest of {SDK_PACKAGE}; give the `plugin-sdk/` \
             folder of a dualwrite checkout",
            path.display(),
            manifest.display()
        );
    }
    std::fs::canonicalize(path).with_context(|| format!("cannot resolve {}", path.display()))
}

/// The SDK this `dualwrite` was built from, when that checkout is still on
/// this machine.
fn built_from_sdk() -> Option<PathBuf> {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk");
    if !sdk.join("Cargo.toml").is_file() {
        return None;
    }
    std::fs::canonicalize(sdk).ok()
}

/// The new crate's files, relative to its folder. (The manifest's template
/// is not named `Cargo.toml`: cargo would take its folder for a package and
/// leave it out of this one.)
fn files(name: &str, kind: Kind, sdk: Option<&Path>) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{kind}}", kind.name())
            .replace("{{sdk_version}}", SDK_VERSION)
    };
    let mut manifest = fill(include_str!("template/Cargo.toml.in"));
    let mut files = Vec::new();
    if let Some(sdk) = sdk {
        let Some(path) = sdk.to_str() else {
            bail!(
                "the SDK's path {} is not UTF-8, so Cargo.toml cannot name it; give --sdk-path",
                sdk.display()
            );
        };
        // A TOML string, quoted and escaped.
        let path = toml::Value::String(path.to_owned()).to_string();
        manifest.push_str(&include_str!("template/patch.toml").replace("{{sdk_path}}", &path));
        // The versions the SDK's workspace builds and tests it with.
        if let Some(lock) = sdk
            .parent()
            .map(|workspace| workspace.join("Cargo.lock"))
            .and_then(|lock| std::fs::read_to_string(lock).ok())
        {
            files.push((PathBuf::from("Cargo.lock"), lock));
        }
    }
    let (lib, rows) = kind.sample();
    files.extend([
        (PathBuf::from("Cargo.toml"), manifest),
        (PathBuf::from("src/lib.rs"), fill(lib)),
        (PathBuf::from("rows.json"), rows.to_owned()),
        (
            PathBuf::from("README.md"),
            fill(include_str!("template/README.md")),
        ),
        (
            PathBuf::from(".gitignore"),
            include_str!("template/gitignore").to_owned(),
        ),
    ]);
    Ok(files)
}

/// Writes `files` under `dir`; when one cannot be written, removes what
/// this call made, so a failed `new` leaves the folder as it found it.
fn write_all(dir: &Path, files: &[(PathBuf, String)]) -> anyhow::Result<()> {
    let existed = dir.exists();
    let result = files.iter().try_for_each(|(relative, text)| {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    });
    if result.is_err() {
        let cleanup = if existed {
            std::fs::read_dir(dir).and_then(|entries| {
                entries.flatten().try_for_each(|entry| {
                    let path = entry.path();
                    if path.is_dir() {
                        std::fs::remove_dir_all(path)
                    } else {
                        std::fs::remove_file(path)
                    }
                })
            })
        } else {
            std::fs::remove_dir_all(dir)
        };
        if let Err(error) = cleanup {
            eprintln!(
                "could not remove what was written in {}: {error}",
                dir.display()
            );
        }
    }
    result
}
