//! `dualwrite export` and `dualwrite import`: a tested set of maps, the
//! plugins they run and the alert rules added through the API, moved as
//! one package file from one environment's host to the next.
//!
//! `export` reads a running host through its admin API or, when none
//! answers, a stopped host's store with its config (`-c FILE`); with
//! `--key` it signs the package here, where the private key is. `import`
//! verifies the package here (every part's hash, the contract version,
//! and the signature with `--key`), then sends it to the running host,
//! which verifies it again and applies it. Into a stopped host (`-c
//! FILE`), it is verified and validated here against the host's config
//! and store, and its maps are kept as applied versions that run at the
//! next start (`package::import_stopped`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use dualwrite::checkpoint::Checkpoints;
use dualwrite::config::{PluginRegistry, load_file, validate_config_in};
use dualwrite::map::{Catalogue, EmulatorCatalogue, NoCatalogue};
use dualwrite::package::{self, ImportOptions, Package, PartKind, Verified};

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
    /// Into a stopped host: do not check tables and fields against the
    /// emulators' built-in tables (as `dualwrite run --no-catalogue`).
    #[arg(long)]
    pub no_catalogue: bool,
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
                // The maps as they run: the applied versions in force.
                let in_force = load_file(config)
                    .map_err(|problems| problems.into_iter().map(|p| p.to_string()).collect())
                    .and_then(|file| {
                        dualwrite::config::in_force(&file, &store)
                            .map_err(|error| vec![error.to_string()])
                    })
                    .map_err(|list: Vec<String>| {
                        Failure::Other(anyhow::anyhow!(
                            "{} does not read:\n{}",
                            config.display(),
                            list.join("\n")
                        ))
                    })?;
                let plan = validate_config_in(
                    config,
                    &in_force.config,
                    &NoCatalogue,
                    PluginRegistry::Store(&store),
                )
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
        let answer = match source(&args.host)? {
            Source::Host(client) => {
                let path = format!("/api/v1/import?dry_run={}", args.dry_run);
                block_on(async { client.post_bytes(&path, "application/json", bytes).await })?
            }
            Source::Store(store, _) => stopped_import(args, &store, &bytes, key.as_ref())?,
        };
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

/// Imports into the stopped host of `store`, whose config `-c` names;
/// the answer as the admin API gives it.
fn stopped_import(
    args: &ImportArgs,
    store: &Checkpoints,
    bytes: &[u8],
    key: Option<&package::VerifyingKey>,
) -> Result<serde_json::Value, Failure> {
    let Some(config) = &args.host.config else {
        return Err(Failure::Refused(
            "the host is stopped, and a stopped host's maps are checked against its config: give it with -c FILE (or import into the running host with --admin URL)".into(),
        ));
    };
    let catalogue: Box<dyn Catalogue> = match args.no_catalogue {
        true => Box::new(NoCatalogue),
        false => {
            Box::new(EmulatorCatalogue::builtin().context("loading the built-in table catalogue")?)
        }
    };
    // The host's own key, when its config names one, as a running host
    // checks it (the key given was checked already).
    let configured = match args
        .host
        .plan()?
        .and_then(|plan| plan.engine.package_key_file)
    {
        Some(file) => Some(package::verifying_key(&file).map_err(refused)?),
        None => None,
    };
    let options = ImportOptions {
        dry_run: args.dry_run,
        key: configured.as_ref().or(key),
    };
    let imported =
        package::import_stopped(store, config, &*catalogue, bytes, options).map_err(refused)?;
    Ok(serde_json::to_value(&imported).map_err(anyhow::Error::from)?)
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
