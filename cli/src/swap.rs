//! `dualwrite map apply|rollback|history` and `dualwrite plugin swap`:
//! hot swaps on a running host, through its admin API. Each takes effect
//! between batches; one that does not validate changes nothing and says
//! why (the problems `map validate` would name).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use serde_json::{Value, json};

use crate::host::{HostArgs, block_on, exit};

/// `map apply FILE`
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A TOML file of `[[maps]]` entries: maps changed or new.
    pub file: PathBuf,
    /// Only show what would change (validated as a real apply is).
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub host: HostArgs,
}

/// `map rollback MAP`
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The map.
    pub map: String,
    /// The version whose definition it goes back to (default: the one
    /// before the current).
    #[arg(long)]
    pub to: Option<u32>,
    #[command(flatten)]
    pub host: HostArgs,
}

/// `map history MAP`
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The map.
    pub map: String,
    #[command(flatten)]
    pub host: HostArgs,
}

/// `plugin swap MAP NAME@VERSION`
#[derive(Debug, Args)]
pub struct SwapArgs {
    /// The map.
    pub map: String,
    /// The registry plugin: `NAME@VERSION` (or `NAME@^1.2`).
    pub plugin: String,
    #[command(flatten)]
    pub host: HostArgs,
}

/// Runs `map apply`.
pub fn apply(args: &ApplyArgs) -> ExitCode {
    exit((|| {
        let toml = std::fs::read_to_string(&args.file)
            .with_context(|| format!("cannot read {}", args.file.display()))?;
        let client = args.host.client()?;
        let body = json!({"toml": toml, "dry_run": args.dry_run});
        let answer = block_on(async { client.post("/api/v1/maps/apply", &body).await })?;
        for map in answer["maps"].as_array().into_iter().flatten() {
            print_swapped(map, args.dry_run);
        }
        Ok(())
    })())
}

/// Runs `map rollback`.
pub fn rollback(args: &RollbackArgs) -> ExitCode {
    exit((|| {
        let client = args.host.client()?;
        let path = format!("/api/v1/maps/{}/rollback", args.map);
        let answer = block_on(async { client.post(&path, &json!({"to": args.to})).await })?;
        print_swapped(&answer, false);
        Ok(())
    })())
}

/// Runs `plugin swap`.
pub fn swap(args: &SwapArgs) -> ExitCode {
    exit((|| {
        let client = args.host.client()?;
        let path = format!("/api/v1/maps/{}/swap", args.map);
        let answer = block_on(async { client.post(&path, &json!({"plugin": args.plugin})).await })?;
        print_swapped(&answer, false);
        Ok(())
    })())
}

/// Runs `map history`.
pub fn history(args: &HistoryArgs) -> ExitCode {
    exit((|| {
        let client = args.host.client()?;
        let path = format!("/api/v1/maps/{}/versions", args.map);
        let answer = block_on(async { client.get(&path).await })?;
        if args.host.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&answer).map_err(anyhow::Error::from)?
            );
            return Ok(());
        }
        for version in answer["versions"].as_array().into_iter().flatten() {
            let current = match version["current"].as_bool() {
                Some(true) => "  (current)",
                _ => "",
            };
            println!(
                "v{}  {}{current}",
                version["version"],
                version["at"].as_str().unwrap_or_default()
            );
            print_diff(&version["diff"]);
        }
        Ok(())
    })())
}

pub(crate) fn print_swapped(map: &Value, dry_run: bool) {
    let name = map["map"].as_str().unwrap_or_default();
    let version = |v: &Value| v.as_u64().map_or("-".into(), |v| format!("v{v}"));
    let change = map["change"].as_str().unwrap_or_default();
    let verb = match (dry_run, change) {
        (true, "unchanged") => "unchanged".to_owned(),
        (true, change) => format!("would be {change}"),
        (false, change) => change.to_owned(),
    };
    println!(
        "{name}: {verb} ({} -> {})",
        version(&map["from"]),
        version(&map["to"])
    );
    let plugins: Vec<&str> = map["plugins"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !plugins.is_empty() {
        println!("  plugins: {}", plugins.join(", "));
    }
    print_diff(&map["diff"]);
}

pub(crate) fn print_diff(diff: &Value) {
    for difference in diff.as_array().into_iter().flatten() {
        let path = difference["path"].as_str().unwrap_or_default();
        let shown = |v: &Value| match v {
            Value::Null => None,
            v => Some(v.to_string()),
        };
        match (shown(&difference["before"]), shown(&difference["after"])) {
            (Some(before), Some(after)) => println!("  ~ {path}: {before} -> {after}"),
            (Some(before), None) => println!("  - {path}: {before}"),
            (None, Some(after)) => println!("  + {path}: {after}"),
            (None, None) => {}
        }
    }
}
