//! `dualwrite plugin add|list|show|remove`: the plugin registry of a
//! running host through its admin API or, when none answers, of a stopped
//! host's store (`--data DIR` or `-c FILE`). A plugin is added only after
//! the checks `plugin check` makes, compiled into the store's cache, by
//! the name and version its metadata carries.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use serde_json::Value;

use dualwrite::registry::{self, InUse, RegistryError};

use crate::host::{Client, Failure, HostArgs, Source, block_on, exit, source};

/// `plugin add FILE.wasm`
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The component (`.wasm`), as `dualwrite plugin build` makes it.
    pub file: PathBuf,
    /// Its name, where its metadata has none.
    #[arg(long)]
    pub name: Option<String>,
    /// Its version, where its metadata has none.
    #[arg(long)]
    pub version: Option<String>,
    /// First run map MAP's latest changes (from the activity log) through
    /// the version it runs and this one, and show the rows whose result
    /// differs (a running host).
    #[arg(long, value_name = "MAP")]
    pub canary: Option<String>,
    /// With --canary: run these rows instead (a JSON array of objects, the
    /// source side's fields, as the activity log keeps rows).
    #[arg(long, value_name = "FILE", requires = "canary")]
    pub sample: Option<PathBuf>,
    /// With --sample: the direction the rows flow.
    #[arg(long, default_value = "left-to-right", value_parser = ["left-to-right", "right-to-left"], requires = "sample")]
    pub direction: String,
    #[command(flatten)]
    pub host: HostArgs,
}

/// `plugin list`
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub host: HostArgs,
}

/// `plugin show NAME`
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The plugin's name.
    pub name: String,
    #[command(flatten)]
    pub host: HostArgs,
}

/// `plugin remove NAME@VERSION`
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The version to remove, `NAME@VERSION`.
    pub plugin: String,
    #[command(flatten)]
    pub host: HostArgs,
}

fn refused(error: RegistryError) -> Failure {
    match error {
        RegistryError::Store(error) => Failure::Other(error.into()),
        refusal => Failure::Refused(refusal.to_string()),
    }
}

/// Runs `plugin add`.
pub fn add(args: &AddArgs) -> ExitCode {
    exit((|| {
        let bytes = std::fs::read(&args.file)
            .with_context(|| format!("cannot read {}", args.file.display()))?;
        let source = source(&args.host)?;
        if let Some(map) = &args.canary {
            let Source::Host(client) = &source else {
                return Err(Failure::Refused(
                    "a canary runs on a running host (it runs the map's chain): start it, or add without --canary".into(),
                ));
            };
            canary(client, map, &bytes, args)?;
        }
        let added = match source {
            Source::Host(client) => {
                let mut query = Vec::new();
                if let Some(name) = &args.name {
                    query.push(format!("name={}", encode(name)));
                }
                if let Some(version) = &args.version {
                    query.push(format!("version={}", encode(version)));
                }
                let path = match query.is_empty() {
                    true => "/api/v1/plugins".to_owned(),
                    false => format!("/api/v1/plugins?{}", query.join("&")),
                };
                let answer =
                    block_on(async { client.post_bytes(&path, "application/wasm", bytes).await })?;
                serde_json::from_value::<registry::Added>(answer)
                    .context("the host's answer is not what this version reads")?
            }
            Source::Store(store, _) => {
                let data = args
                    .host
                    .data_dir(args.host.plan()?.as_ref())
                    .unwrap_or_default();
                registry::add(
                    &store,
                    &registry::compiled_dir(&data),
                    &args.file.display().to_string(),
                    &bytes,
                    args.name.as_deref(),
                    args.version.as_deref(),
                )
                .map_err(refused)?
            }
        };
        let entry = &added.entry;
        match added.new {
            true => println!(
                "added {} ({}, sha256 {}), compiled",
                entry.id(),
                entry.kinds.join(" and "),
                entry.sha256
            ),
            false => println!(
                "{} is in the registry already, with these bytes",
                entry.id()
            ),
        }
        Ok(())
    })())
}

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The registry, from the host or its store.
fn all(host: &HostArgs) -> Result<Vec<InUse>, Failure> {
    match source(host)? {
        Source::Host(client) => {
            let answer = block_on(async { client.get("/api/v1/plugins").await })?;
            Ok(serde_json::from_value(answer["plugins"].clone())
                .context("the host's answer is not what this version reads")?)
        }
        Source::Store(store, _) => {
            Ok(registry::list_in_use(&store).map_err(|error| Failure::Other(error.into()))?)
        }
    }
}

/// Runs `plugin list`.
pub fn list(args: &ListArgs) -> ExitCode {
    exit((|| {
        let all = all(&args.host)?;
        if args.host.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&all).map_err(anyhow::Error::from)?
            );
            return Ok(());
        }
        if all.is_empty() {
            println!(
                "the registry holds no plugin (add one with `dualwrite plugin add FILE.wasm`)"
            );
            return Ok(());
        }
        println!(
            "{:<28} {:<10} {:<18} {:<14} USED BY",
            "PLUGIN", "VERSION", "KINDS", "SHA256"
        );
        for plugin in &all {
            let entry = &plugin.entry;
            println!(
                "{:<28} {:<10} {:<18} {:<14} {}",
                entry.name,
                entry.version,
                entry.kinds.join(","),
                &entry.sha256[..12.min(entry.sha256.len())],
                match plugin.used_by.is_empty() {
                    true => "-".to_owned(),
                    false => plugin.used_by.join(", "),
                }
            );
        }
        Ok(())
    })())
}

/// Runs `plugin show`.
pub fn show(args: &ShowArgs) -> ExitCode {
    exit((|| {
        let versions: Vec<InUse> = all(&args.host)?
            .into_iter()
            .filter(|p| p.entry.name == args.name)
            .collect();
        if versions.is_empty() {
            return Err(Failure::Refused(format!(
                "no plugin `{}` in the registry (`dualwrite plugin list` shows what it holds)",
                args.name
            )));
        }
        if args.host.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&versions).map_err(anyhow::Error::from)?
            );
            return Ok(());
        }
        for plugin in &versions {
            let entry = &plugin.entry;
            println!("{}", entry.id());
            println!("  kinds     {}", entry.kinds.join(", "));
            println!("  contract  {}", entry.contract.as_deref().unwrap_or("-"));
            println!("  sha256    {}", entry.sha256);
            println!("  size      {} bytes", entry.size);
            println!("  added     {}", entry.added);
            println!(
                "  used by   {}",
                match plugin.used_by.is_empty() {
                    true => "-".to_owned(),
                    false => plugin.used_by.join(", "),
                }
            );
        }
        Ok(())
    })())
}

/// Runs `plugin remove`.
pub fn remove(args: &RemoveArgs) -> ExitCode {
    exit((|| {
        let Some((name, version)) = args.plugin.split_once('@') else {
            return Err(Failure::Refused(format!(
                "`{}` names no version: write NAME@VERSION (`dualwrite plugin show NAME` lists them)",
                args.plugin
            )));
        };
        match source(&args.host)? {
            Source::Host(client) => {
                let path = format!("/api/v1/plugins/{}/{}", encode(name), encode(version));
                block_on(async { client.delete(&path).await })?;
            }
            Source::Store(store, _) => {
                registry::remove(&store, name, version).map_err(refused)?;
            }
        }
        println!("removed {name}@{version}");
        Ok(())
    })())
}

/// Runs the canary of `bytes` on `map` and prints the rows that differ.
fn canary(client: &Client, map: &str, bytes: &[u8], args: &AddArgs) -> Result<(), Failure> {
    use base64::Engine as _;
    let sample = match &args.sample {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let rows: Value = serde_json::from_str(&text).with_context(|| {
                format!("{} is not JSON (a list of row objects)", file.display())
            })?;
            Some(rows)
        }
        None => None,
    };
    let body = serde_json::json!({
        "wasm": base64::engine::general_purpose::STANDARD.encode(bytes),
        "sample": sample,
        "direction": args.direction,
    });
    let path = format!("/api/v1/maps/{}/canary", encode(map));
    let found = block_on(async { client.post(&path, &body).await })?;
    let differ = found["differ"].as_array().cloned().unwrap_or_default();
    println!(
        "canary on map `{map}`: {} rows run through {} and {}; {} differ",
        found["rows"],
        found["old"].as_str().unwrap_or_default(),
        found["new"].as_str().unwrap_or_default(),
        differ.len()
    );
    for row in &differ {
        println!(
            "  {} {}\n    old: {}\n    new: {}",
            row["direction"].as_str().unwrap_or_default(),
            row["key"].as_str().unwrap_or_default(),
            row["old"],
            row["new"]
        );
    }
    Ok(())
}
