//! `dualwrite errors list|show|retry|retry-all|dismiss`: the error queue,
//! every parked row of every map (live, catch-up and initial-sync), through
//! the admin API of a running host or, when none answers, in a stopped
//! host's store (`--data DIR`, or `-c FILE`'s data directory). A retry on
//! a stopped host's store flows when the host starts again.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use dualwrite::sync::ErrorRow;
use dualwrite::sync::errors::{
    ErrorQueueError, dismiss_error, error_row, error_rows, known_maps, retry_all, retry_error,
};

use crate::host::{Failure, HostArgs, Source, block_on, exit, source};

/// `dualwrite errors …`
#[derive(Debug, Subcommand)]
pub enum ErrorsCommand {
    /// List the parked rows, oldest first: id, map, direction, phase,
    /// attempts, when, key and why.
    List(ListArgs),
    /// Show one parked row with its failed change.
    Show(IdArgs),
    /// Retry parked rows: each runs again through the map and its plugins
    /// as they are now, in order, before any later change of its key.
    Retry(IdsArgs),
    /// Retry every parked row (of `--map`).
    RetryAll(ListArgs),
    /// Dismiss parked rows: each failed change ends unwritten, with an
    /// activity entry, and the changes behind it flow.
    Dismiss(IdsArgs),
}

/// The rows of which map.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this map's rows.
    #[arg(long)]
    pub map: Option<String>,
    #[command(flatten)]
    pub host: HostArgs,
}

/// One parked row.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// The row's id, as `errors list` shows it.
    pub id: u64,
    #[command(flatten)]
    pub host: HostArgs,
}

/// Parked rows.
#[derive(Debug, Args)]
pub struct IdsArgs {
    /// The rows' ids, as `errors list` shows them.
    #[arg(required = true)]
    pub ids: Vec<u64>,
    #[command(flatten)]
    pub host: HostArgs,
}

/// Runs `dualwrite errors …`.
pub fn run(command: ErrorsCommand) -> ExitCode {
    match command {
        ErrorsCommand::List(args) => exit(list(&args)),
        ErrorsCommand::Show(args) => exit(show(&args)),
        ErrorsCommand::Retry(args) => exit(each(&args, "retried", Op::Retry)),
        ErrorsCommand::RetryAll(args) => exit(retry_every(&args)),
        ErrorsCommand::Dismiss(args) => exit(each(&args, "dismissed", Op::Dismiss)),
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Retry,
    Dismiss,
}

fn refused(error: ErrorQueueError) -> Failure {
    match error {
        ErrorQueueError::Checkpoint(error) => Failure::Other(error.into()),
        refusal => Failure::Refused(refusal.to_string()),
    }
}

/// The config's maps and those the store's records name.
fn maps(source: &Source) -> Result<Vec<String>, Failure> {
    let Source::Store(store, plan) = source else {
        return Ok(Vec::new());
    };
    let config: Vec<String> = plan
        .as_ref()
        .as_ref()
        .map(|plan| plan.maps.iter().map(|m| m.name.clone()).collect())
        .unwrap_or_default();
    Ok(known_maps(store, &config).context("reading the store's maps")?)
}

fn rows(value: &Value) -> Result<Vec<ErrorRow>, Failure> {
    Ok(serde_json::from_value(value["errors"].clone())
        .context("the host's error queue is not what this version reads")?)
}

fn row(value: Value) -> Result<ErrorRow, Failure> {
    Ok(
        serde_json::from_value(value)
            .context("the host's answer is not what this version reads")?,
    )
}

fn query(map: Option<&str>) -> String {
    match map {
        Some(map) => format!("?map={}", urlencoding(map)),
        None => String::new(),
    }
}

/// Percent-encodes a query value.
fn urlencoding(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn list(args: &ListArgs) -> Result<(), Failure> {
    let source = source(&args.host)?;
    let all = match &source {
        Source::Host(client) => rows(&block_on(
            client.get(&format!("/api/v1/errors{}", query(args.map.as_deref()))),
        )?)?,
        Source::Store(store, _) => {
            error_rows(store, &maps(&source)?, args.map.as_deref()).map_err(refused)?
        }
    };
    if args.host.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&all).context("printing")?
        );
    } else {
        print_rows(&all);
    }
    Ok(())
}

fn show(args: &IdArgs) -> Result<(), Failure> {
    let source = source(&args.host)?;
    let found = match &source {
        Source::Host(client) => row(block_on(
            client.get(&format!("/api/v1/errors/{}", args.id)),
        )?)?,
        Source::Store(store, _) => error_row(store, &maps(&source)?, args.id).map_err(refused)?,
    };
    if args.host.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&found).context("printing")?
        );
    } else {
        print_rows(std::slice::from_ref(&found));
        if let Some(change) = &found.change {
            println!(
                "\nthe failed change:\n{}",
                serde_json::to_string_pretty(change).context("printing")?
            );
        }
    }
    Ok(())
}

fn each(args: &IdsArgs, done: &str, op: Op) -> Result<(), Failure> {
    let source = source(&args.host)?;
    let known = maps(&source)?;
    let mut handled = Vec::new();
    for id in &args.ids {
        let row = match (&source, op) {
            (Source::Host(client), Op::Retry) => row(block_on(
                client.post(&format!("/api/v1/errors/{id}/retry"), &json!({})),
            )?)?,
            (Source::Host(client), Op::Dismiss) => row(block_on(
                client.post(&format!("/api/v1/errors/{id}/dismiss"), &json!({})),
            )?)?,
            (Source::Store(store, _), Op::Retry) => {
                retry_error(store, &known, *id).map_err(refused)?
            }
            (Source::Store(store, _), Op::Dismiss) => {
                dismiss_error(store, &known, *id).map_err(refused)?
            }
        };
        if !args.host.json {
            println!(
                "{}: {done} ({} {}, {})",
                row.id, row.map, row.direction, row.key
            );
        }
        handled.push(row);
    }
    if args.host.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&handled).context("printing")?
        );
    }
    Ok(())
}

fn retry_every(args: &ListArgs) -> Result<(), Failure> {
    let source = source(&args.host)?;
    let retried = match &source {
        Source::Host(client) => rows(&block_on(
            client.post("/api/v1/errors/retry-all", &json!({ "map": args.map })),
        )?)?,
        Source::Store(store, _) => {
            retry_all(store, &maps(&source)?, args.map.as_deref()).map_err(refused)?
        }
    };
    if args.host.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&retried).context("printing")?
        );
    } else {
        println!("{} parked rows retried", retried.len());
    }
    Ok(())
}

fn print_rows(rows: &[ErrorRow]) {
    if rows.is_empty() {
        println!("the error queue is empty");
        return;
    }
    let width = rows.iter().map(|r| r.map.len()).max().unwrap_or(3).max(3);
    println!(
        "{:>8}  {:width$}  {:13}  {:12}  {:>8}  {:24}  KEY",
        "ID", "MAP", "DIRECTION", "PHASE", "ATTEMPTS", "PARKED AT"
    );
    for row in rows {
        println!(
            "{:>8}  {:width$}  {:13}  {:12}  {:>8}  {:24}  {}",
            row.id,
            row.map,
            row.direction.name(),
            row.phase,
            row.attempts,
            row.parked_at.as_deref().unwrap_or("-"),
            row.key
        );
        println!("{:>8}  {}", "", row.reason);
    }
}
