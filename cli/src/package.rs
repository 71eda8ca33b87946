//! `dualwrite export` and `dualwrite import`: a tested set of maps, the
//! plugins they run and the alert rules added through the API, moved as
//! one package file from one environment's host to the next.
//!
//! `export` reads a running host through its admin API or, when none
//! answers, a stopped host's store with its config (`-c FILE`); with
//! `--key` it signs the package here, where the private key is. `import`
//! verifies the package here (every part's hash, the contract version,
//! and the signature with `--key`), then sends it to the running host,
//! which verifies it again and applies it. A stopped host is refused: its
//! maps are its config file's, and the maps of a package are validated
//! and applied by the running engine.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use dualwrite::config::{PluginRegistry, validate_file_in};
use dualwrite::map::NoCatalogue;
use dualwrite::package::{self, Package, PartKind, Verified};

use crate::host::{Failure, HostArgs, Source, block_on, exit, source};
use crate::swap::{print_diff, print_swapped};

/// `export -o FILE`
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Only these maps (comma-separated; default: every map).
    #[arg(long, value_delimiter = ',', value_name = "MAP,...")]
    pub maps: Vec<String>,
    /// The package file to write.
    #[arg(long, short, value_name = "FILE")]
    pub output: PathBuf,
    /// Sign the package's manifest with this ed25519 private key (PEM,
    /// as `openssl genpkey -algorithm ed25519` writes it).
    #[arg(long, value_name = "KEYFILE")]
    pub key: Option<PathBuf>,
    #[command(flatten)]
    pub host: HostArgs,
}

/// `import FILE`
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The package, as `dualwrite export` writes it.
    pub file: PathBuf,
    /// Only show what would change (verified and validated as a real
    /// import is).
    #[arg(long)]
    pub dry_run: bool,
    /// Refuse the package unless its manifest's signature verifies with
    /// this ed25519 public key (PEM; a private key file serves too).
    #[arg(long, value_name = "PUBKEYFILE")]
    pub key: Option<PathBuf>,
    #[command(flatten)]
    pub host: HostArgs,
}

fn refused(error: package::PackageError) -> Failure {
    match error {
        package::PackageError::Store(error) => Failure::Other(error.into()),
        refusal => Failure::Refused(refusal.to_string()),
    }
}

/// Runs `export`.
pub fn export(args: &ExportArgs) -> ExitCode {
    exit((|| {
        let key = match &args.key {
            Some(file) => Some(package::signing_key(file).map_err(refused)?),
            None => None,
        };
        let maps = (!args.maps.is_empty()).then_some(args.maps.as_slice());
        let mut package = match source(&args.host)? {
            Source::Host(client) => {
                let path = match maps {
                    Some(maps) => format!("/api/v1/export?maps={}", encode(&maps.join(","))),
                    None => "/api/v1/export".to_owned(),
                };
                let answer = block_on(async { client.get(&path).await })?;
                let bytes = serde_json::to_vec(&answer).map_err(anyhow::Error::from)?;
                Package::from_bytes(&bytes).map_err(refused)?
            }
            Source::Store(store, _) => {
                let Some(config) = &args.host.config else {
                    return Err(Failure::Refused(
                        "a stopped host's maps are its config file's: give it with -c FILE (or export from the running host with --admin URL)".into(),
                    ));
                };
                let plan = validate_file_in(config, &NoCatalogue, PluginRegistry::Store(&store))
                    .map_err(|problems| {
                        let list: Vec<String> = problems
                            .iter()
                            .filter(|p| p.is_error())
                            .map(ToString::to_string)
                            .collect();
                        Failure::Other(anyhow::anyhow!(
                            "{} does not validate:\n{}",
                            config.display(),
                            list.join("\n")
                        ))
                    })?;
                package::export(&store, &plan, maps).map_err(refused)?
            }
        };
        package.verify(None).map_err(refused)?;
        if let Some(key) = &key {
            package.sign(key);
        }
        write(&args.output, &package.to_bytes())?;
        if args.host.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&package.manifest).map_err(anyhow::Error::from)?
            );
            return Ok(());
        }
        println!("wrote {}", args.output.display());
        for part in &package.manifest.parts {
            let what = match part.kind {
                PartKind::Map => format!(
                    "map {}{}",
                    part.name,
                    part.version
                        .as_deref()
                        .map_or(String::new(), |v| format!(" v{v}"))
                ),
                PartKind::Plugin => format!(
                    "plugin {}@{}",
                    part.name,
                    part.version.as_deref().unwrap_or_default()
                ),
                PartKind::AlertRules => "alert rules".to_owned(),
            };
            println!("  {what:<40} sha256 {}", part.sha256);
        }
        match &package.signature {
            Some(signature) => println!("signed with key {}", signature.key),
            None => println!("unsigned (sign it with --key PRIVATE.pem)"),
        }
        Ok(())
    })())
}

/// Writes `bytes` to `file` whole or not at all.
fn write(file: &std::path::Path, bytes: &[u8]) -> Result<(), Failure> {
    let dir = file
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut temporary = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    std::io::Write::write_all(&mut temporary, bytes)
        .with_context(|| format!("cannot write {}", file.display()))?;
    temporary
        .persist(file)
        .with_context(|| format!("cannot write {}", file.display()))?;
    Ok(())
}

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Runs `import`.
pub fn import(args: &ImportArgs) -> ExitCode {
    exit((|| {
        let bytes = std::fs::read(&args.file)
            .with_context(|| format!("cannot read {}", args.file.display()))?;
        let key = match &args.key {
            Some(file) => Some(package::verifying_key(file).map_err(refused)?),
            None => None,
        };
        let package = Package::from_bytes(&bytes).map_err(refused)?;
        let verified = package.verify(key.as_ref()).map_err(refused)?;
        let client = match source(&args.host)? {
            Source::Host(client) => client,
            Source::Store(..) => {
                return Err(Failure::Refused(format!(
                    "{} verifies ({}), and the host is stopped: a stopped host's maps are its config file's, and a package's maps are validated and applied by the running engine; start the host (`dualwrite run -c FILE`) and import into it",
                    args.file.display(),
                    seal(&package, &verified)
                )));
            }
        };
        let path = format!("/api/v1/import?dry_run={}", args.dry_run);
        let answer = block_on(async { client.post_bytes(&path, "application/json", bytes).await })?;
        if args.host.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&answer).map_err(anyhow::Error::from)?
            );
            return Ok(());
        }
        println!("{}: {}", args.file.display(), seal(&package, &verified));
        for plugin in answer["plugins"].as_array().into_iter().flatten() {
            let change = plugin["change"].as_str().unwrap_or_default();
            let from = match plugin["from"].as_str() {
                Some(from) if change != "new" && change != "unchanged" => {
                    format!(" (the registry's highest: {from})")
                }
                _ => String::new(),
            };
            println!(
                "plugin {}: {}{from}",
                plugin["plugin"].as_str().unwrap_or_default(),
                verb(args.dry_run, change)
            );
        }
        for map in answer["maps"].as_array().into_iter().flatten() {
            print_swapped(map, args.dry_run);
        }
        for rule in answer["alert_rules"].as_array().into_iter().flatten() {
            println!(
                "alert rule {}: {}",
                rule["rule"].as_str().unwrap_or_default(),
                verb(args.dry_run, rule["change"].as_str().unwrap_or_default())
            );
            print_diff(&rule["diff"]);
        }
        if args.dry_run {
            println!("dry run: nothing changed");
        }
        Ok(())
    })())
}

/// How a change reads, done or (in a dry run) to be done.
fn verb(dry_run: bool, change: &str) -> String {
    match (dry_run, change) {
        (true, "unchanged") | (false, _) => change.to_owned(),
        (true, change) => format!("would be {change}"),
    }
}

/// What the verification established, in words.
fn seal(package: &Package, verified: &Verified) -> String {
    let signature = match (&verified.key, &package.signature) {
        (Some(key), _) => format!("signature verified with key {key}"),
        (None, Some(signature)) => format!(
            "signed with key {}, not verified (give --key PUBLIC.pem)",
            signature.key
        ),
        (None, None) => "unsigned".to_owned(),
    };
    format!(
        "{} parts match the manifest, contract {}, made by dualwrite {} at {}, {signature}",
        verified.parts,
        package.manifest.contract,
        package.manifest.host_version,
        package.manifest.created
    )
}
