//! `dualwrite check`: the preflight before go-live. Every system of the
//! config is reached (it answers, TLS verifies, a token can be had, its
//! tables can be read), the config is validated against those tables, and
//! every enabled map is checked against the systems (change tracking,
//! alternate keys, public entities, privileges). The library does the
//! checks (`dualwrite::preflight`); this prints them.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use dualwrite::preflight::{self, Report, SystemSummary};

/// `dualwrite check`
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The config file.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Print the report as JSON (`systems`, `problems` with code, system,
    /// map, table, field, message, severity).
    #[arg(long)]
    pub json: bool,
}

/// Runs `dualwrite check`: exits non-zero when a problem would stop a map.
pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    let env = |name: &str| std::env::var(name).ok();
    let report = runtime.block_on(preflight::check_file(&args.config, &env));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(if report.has_errors() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_report(report: &Report) {
    for system in &report.systems {
        println!("{}", describe(system));
    }
    for problem in &report.problems {
        println!("{problem}");
    }
    for note in &report.notes {
        println!("note: {note}");
    }
    let errors = report.problems.iter().filter(|p| p.is_error()).count();
    if !report.problems.is_empty() {
        println!(
            "{errors} errors, {} warnings",
            report.problems.len() - errors
        );
    }
    let verdict = if report.ready { "ready" } else { "not ready" };
    println!(
        "{}: {verdict}: {} of {} maps checked, against {} of {} systems",
        report.file,
        report.maps_checked.len(),
        report.maps_total,
        report.systems.iter().filter(|s| s.tables.is_some()).count(),
        report.systems.len()
    );
}

fn describe(system: &SystemSummary) -> String {
    let kind = match system.kind {
        dualwrite::map::SystemKind::Dataverse => "dataverse",
        dualwrite::map::SystemKind::Finops => "finops",
    };
    let mut parts = vec![if system.answered {
        "answers".to_string()
    } else {
        "not reached".to_string()
    }];
    if let Some(user) = &system.user_id {
        parts.push(format!("user {user}"));
    }
    if let Some(tables) = system.tables {
        parts.push(format!("{tables} tables read"));
    }
    format!(
        "system `{}` ({kind}, {}): {}",
        system.name,
        system.url,
        parts.join(", ")
    )
}
