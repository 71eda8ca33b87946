//! `dualwrite map progress NAME`, `map failures NAME` and `map rerun NAME`:
//! a map's initial copy as the admin follows it. Progress is an `indicatif`
//! bar (rows settled of the total when the services gave an exact count,
//! a spinner otherwise) with the rate, the ETA and a line per company,
//! redrawn until the copy is done; `--json` prints one snapshot.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use crate::host::{Client, Failure, HostArgs, block_on, exit};

/// `dualwrite map progress`
#[derive(Debug, Args)]
pub struct ProgressArgs {
    /// The map.
    pub name: String,
    /// Print one snapshot and return, instead of following the copy.
    #[arg(long)]
    pub once: bool,
    #[command(flatten)]
    pub host: HostArgs,
}

/// `dualwrite map failures`
#[derive(Debug, Args)]
pub struct FailuresArgs {
    /// The map.
    pub name: String,
    #[command(flatten)]
    pub host: HostArgs,
}

/// `dualwrite map rerun`
#[derive(Debug, Args)]
pub struct RerunArgs {
    /// The map (started).
    pub name: String,
    /// Only the rows of the initial copy that failed; without it, every
    /// row not already copied is copied again.
    #[arg(long)]
    pub failed_only: bool,
    #[command(flatten)]
    pub host: HostArgs,
}

fn count(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

/// Rows settled (written, skipped as already equal, failed, discarded).
fn settled(rows: &Value) -> u64 {
    ["written", "skipped", "failed", "discarded"]
        .iter()
        .map(|field| count(&rows[field]))
        .sum()
}

fn line(rows: &Value) -> String {
    let eta = rows["eta_seconds"]
        .as_u64()
        .map(|s| {
            format!(
                ", ETA {}",
                humantime::format_duration(Duration::from_secs(s))
            )
        })
        .unwrap_or_default();
    format!(
        "read {}, written {}, failed {}, {:.0} rows/s{eta}",
        count(&rows["read"]),
        count(&rows["written"]),
        count(&rows["failed"]),
        rows["rows_per_second"].as_f64().unwrap_or(0.0),
    )
}

fn bar(total: Option<u64>, target: ProgressDrawTarget) -> ProgressBar {
    let bar = match total {
        Some(total) => ProgressBar::with_draw_target(Some(total), target).with_style(
            ProgressStyle::with_template("{prefix:>16} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        ),
        None => ProgressBar::with_draw_target(None, target).with_style(
            ProgressStyle::with_template("{prefix:>16} {spinner} {pos} rows {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Follows `map`'s copy with bars until it is done (or only prints its
/// state once, when not copying). Returns the last snapshot.
pub async fn follow(client: &Client, map: &str) -> Result<Value, Failure> {
    let path = format!("/api/v1/maps/{map}/progress");
    let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let mut total_bar: Option<ProgressBar> = None;
    let mut companies: Vec<(String, ProgressBar)> = Vec::new();
    loop {
        let progress = client.get(&path).await?;
        let total = progress["total"].as_u64();
        let whole = total_bar.get_or_insert_with(|| {
            let bar = bars.add(bar(total, ProgressDrawTarget::hidden()));
            bar.set_prefix(map.to_owned());
            bar
        });
        if let Some(total) = total {
            whole.set_length(total);
        }
        whole.set_position(settled(&progress));
        whole.set_message(line(&progress));
        for company in progress["companies"].as_array().into_iter().flatten() {
            let name = company["company"].as_str().unwrap_or_default().to_owned();
            let rows = &company["rows"];
            let index = match companies.iter().position(|(known, _)| *known == name) {
                Some(index) => index,
                None => {
                    let bar = bars.add(bar(rows["total"].as_u64(), ProgressDrawTarget::hidden()));
                    bar.set_prefix(name.clone());
                    companies.push((name, bar));
                    companies.len() - 1
                }
            };
            let bar = &companies[index].1;
            bar.set_position(settled(rows));
            bar.set_message(line(rows));
        }
        let stage = progress["stage"].as_str().unwrap_or_default();
        if matches!(stage, "done" | "not-copied") {
            whole.finish_with_message(format!("{} ({stage})", line(&progress)));
            for (_, bar) in &companies {
                bar.finish();
            }
            return Ok(progress);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs `dualwrite map progress`.
pub fn progress(args: ProgressArgs) -> ExitCode {
    exit((|| {
        let client = args.host.client()?;
        let path = format!("/api/v1/maps/{}/progress", args.name);
        if args.host.json || args.once {
            let progress = block_on(client.get(&path))?;
            if args.host.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&progress).context("printing")?
                );
            } else {
                println!(
                    "{}: {} ({})",
                    args.name,
                    line(&progress),
                    progress["stage"].as_str().unwrap_or_default()
                );
            }
            return Ok(());
        }
        let last = block_on(follow(&client, &args.name))?;
        println!(
            "{}: {} ({})",
            args.name,
            line(&last),
            last["stage"].as_str().unwrap_or_default()
        );
        Ok(())
    })())
}

/// Runs `dualwrite map failures`.
pub fn failures(args: FailuresArgs) -> ExitCode {
    exit((|| {
        let client = args.host.client()?;
        let body = block_on(client.get(&format!("/api/v1/maps/{}/failures", args.name)))?;
        if args.host.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&body["failures"]).context("printing")?
            );
            return Ok(());
        }
        let all = body["failures"].as_array().cloned().unwrap_or_default();
        for failure in &all {
            println!(
                "{} ({}, {} attempts): {}",
                failure["key"].as_str().unwrap_or_default(),
                failure["direction"].as_str().unwrap_or_default(),
                count(&failure["attempts"]),
                failure["reason"].as_str().unwrap_or_default()
            );
        }
        println!("{} rows of the initial copy failed", all.len());
        Ok(())
    })())
}

/// Runs `dualwrite map rerun`.
pub fn rerun(args: RerunArgs) -> ExitCode {
    exit((|| {
        let client = args.host.client()?;
        let body = block_on(client.post(
            &format!("/api/v1/maps/{}/rerun", args.name),
            &json!({"only_failed": args.failed_only}),
        ))?;
        if args.host.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&body).context("printing")?
            );
        } else if args.failed_only {
            println!(
                "{}: {} failed rows resubmitted",
                args.name,
                count(&body["asked"])
            );
        } else {
            println!(
                "{}: the copy runs again over {} sides; rows already copied are skipped",
                args.name,
                count(&body["asked"])
            );
        }
        Ok(())
    })())
}
