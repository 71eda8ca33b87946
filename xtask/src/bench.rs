//! `cargo xtask bench`: runs every benchmark of the workspace, then the
//! sync benchmark again at a real service's latency, and prints the table
//! of figures that `BENCHMARKS.md` shows, each against its target.
//!
//! A benchmark reports a figure as one line of its output: a name holding
//! a `/`, optional words, and a number last (`sync/raw finops-to-dataverse
//! 0.62`, `plugins/transform-job 1.21x`). Every other line passes through.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// The latency of the second sync run, as a real service answers.
const SERVICE_LATENCY_MS: &str = "30";

/// One reported figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// What it measures (`sync/raw finops-to-dataverse`), with the run.
    pub name: String,
    /// The value as printed (`0.62`, `1.21x`).
    pub value: String,
}

/// Reads a figure line, if `line` is one.
pub fn figure(line: &str) -> Option<Figure> {
    let line = line.trim();
    let (name, value) = line.rsplit_once(' ')?;
    let first = name.split(' ').next()?;
    let number = value.strip_suffix('x').unwrap_or(value);
    let plain = |c: char| c.is_ascii_alphanumeric() || "/-_.@".contains(c);
    (first.contains('/')
        && name.chars().all(|c| plain(c) || c == ' ')
        && number.parse::<f64>().is_ok())
    .then(|| Figure {
        name: name.to_owned(),
        value: value.to_owned(),
    })
}

/// The target of a figure, as the performance goals set them.
fn target(name: &str) -> &'static str {
    match name {
        n if n.starts_with("sync/raw") && n.ends_with(&format!("({SERVICE_LATENCY_MS} ms)")) => {
            "≥ 0.8"
        }
        n if n.starts_with("sync/raw") => "≥ 0.5",
        "plugins/transform-job" => "≤ 1.3x",
        n if n.starts_with("plugins/") && n.ends_with("1024") => "≤ 1.5x",
        // 1,000,000 rows in at most 120 s.
        n if n.starts_with("initial/rows-per-second") => "≥ 8,334 (1,000,000 in ≤ 120 s)",
        n if n.starts_with("initial/ratio") => "≥ 0.8",
        n if n.starts_with("host/rss") => "≤ 100 MiB",
        // 10% of 6,000 requests in 5 minutes, for each of the two systems.
        n if n.starts_with("host/requests-per-second") => "≤ 4 (2 per system)",
        n if n.starts_with("sync/push-p95-ms") => "≤ 250",
        _ => "",
    }
}

/// Runs `cargo bench --workspace` with `extra`; with no `extra`, then the
/// sync benchmark at [`SERVICE_LATENCY_MS`]; prints the table of figures.
pub fn run(root: &Path, extra: &[String]) -> Result<()> {
    let mut figures = bench(root, &["bench", "--workspace"], extra, None, "")?;
    if extra.is_empty() {
        figures.extend(bench(
            root,
            &["bench", "-p", "dualwrite-tests", "--bench", "sync"],
            &[],
            Some(SERVICE_LATENCY_MS),
            &format!(" ({SERVICE_LATENCY_MS} ms)"),
        )?);
    }
    println!("\n## Figures\n");
    println!("| figure | measured | target |");
    println!("|---|---:|---|");
    for figure in &figures {
        println!(
            "| {} | {} | {} |",
            figure.name,
            figure.value,
            target(&figure.name)
        );
    }
    Ok(())
}

/// Runs one `cargo` benchmark command, echoing its output; returns the
/// figures it reported, each name followed by `suffix`.
fn bench(
    root: &Path,
    command: &[&str],
    extra: &[String],
    latency_ms: Option<&str>,
    suffix: &str,
) -> Result<Vec<Figure>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut child = Command::new(&cargo);
    child
        .args(command)
        .args(extra)
        .current_dir(root)
        .stdout(Stdio::piped());
    if let Some(ms) = latency_ms {
        child
            .env("SYNC_BENCH_LATENCY_MS", ms)
            .env("SYNC_BENCH_THROUGHPUT_ONLY", "1");
    }
    let mut child = child
        .spawn()
        .with_context(|| format!("cannot run cargo {}", command.join(" ")))?;
    let stdout = child.stdout.take().context("no output of cargo bench")?;
    let mut figures = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("cannot read the benchmark's output")?;
        println!("{line}");
        if let Some(mut figure) = figure(&line) {
            figure.name.push_str(suffix);
            figures.push(figure);
        }
    }
    let status = child.wait().context("cargo bench did not end")?;
    if !status.success() {
        bail!("cargo {} failed ({status})", command.join(" "));
    }
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figure_lines_are_read_and_other_lines_are_not() {
        let read = |line: &str| figure(line).map(|f| (f.name, f.value));
        assert_eq!(
            read("sync/raw finops-to-dataverse 0.62"),
            Some(("sync/raw finops-to-dataverse".into(), "0.62".into()))
        );
        assert_eq!(
            read("plugins/transform-job 1.21x"),
            Some(("plugins/transform-job".into(), "1.21x".into()))
        );
        assert_eq!(
            read("initial/rows-per-second 100000 2228"),
            Some(("initial/rows-per-second 100000".into(), "2228".into()))
        );
        for other in [
            "| sync finops → Dataverse | 1830 | 0.28 |",
            "Finished `bench` profile [optimized] target(s) in 0.5s",
            "sync raw 0.5",
            "sync/raw finops-to-dataverse soon",
            "",
        ] {
            assert_eq!(read(other), None, "{other}");
        }
    }

    #[test]
    fn targets_follow_the_goals() {
        assert_eq!(target("sync/raw finops-to-dataverse"), "≥ 0.5");
        assert_eq!(target("sync/raw finops-to-dataverse (30 ms)"), "≥ 0.8");
        assert_eq!(target("plugins/transform-job"), "≤ 1.3x");
        assert_eq!(target("sync/push-p95-ms finops-to-dataverse"), "≤ 250");
        assert_eq!(
            target("initial/rows-per-second 1000000"),
            "≥ 8,334 (1,000,000 in ≤ 120 s)"
        );
        assert_eq!(target("initial/ratio 100000"), "≥ 0.8");
        assert_eq!(target("initial/raw-batch-rows-per-second"), "");
        assert_eq!(
            target("host/requests-per-second 50-maps-idle"),
            "≤ 4 (2 per system)"
        );
    }
}
