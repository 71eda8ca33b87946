//! `dualwrite map validate`: checks a config file and prints its problems.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::config::validate_file;
use crate::map::{Catalogue, EmulatorCatalogue, NoCatalogue, Problem};

/// `dualwrite map …`
#[derive(Debug, Subcommand)]
pub enum MapCommand {
    /// Check a config file: systems, maps, fields, keys, lookups,
    /// dependencies and plugins. Exits non-zero when there is an error.
    Validate(MapArgs),
}

/// `dualwrite map validate`
#[derive(Debug, Args)]
pub struct MapArgs {
    /// The config file.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Print the problems as a JSON array.
    #[arg(long)]
    pub json: bool,
    /// Do not check tables and fields against the emulators' built-in
    /// tables (for custom tables the catalogue does not know).
    #[arg(long)]
    pub no_catalogue: bool,
}

/// Runs `dualwrite map …`.
pub fn run(command: MapCommand) -> anyhow::Result<ExitCode> {
    match command {
        MapCommand::Validate(args) => validate(&args),
    }
}

fn validate(args: &MapArgs) -> anyhow::Result<ExitCode> {
    let emulator;
    let catalogue: &dyn Catalogue = if args.no_catalogue {
        &NoCatalogue
    } else {
        emulator = EmulatorCatalogue::builtin().context("loading the built-in table catalogue")?;
        &emulator
    };
    let (problems, summary) = match validate_file(&args.config, catalogue) {
        Ok(plan) => {
            let order: Vec<&str> = plan.maps.iter().map(|map| map.name.as_str()).collect();
            let summary = format!(
                "{}: {} maps valid, in order: {}",
                args.config.display(),
                order.len(),
                order.join(", ")
            );
            (plan.warnings, Some(summary))
        }
        Err(problems) => (problems, None),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&problems)?);
    } else {
        print_problems(&problems);
        if let Some(summary) = &summary {
            println!("{summary}");
        }
    }
    Ok(if problems.iter().any(Problem::is_error) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_problems(problems: &[Problem]) {
    for problem in problems {
        println!("{problem}");
    }
    let errors = problems.iter().filter(|problem| problem.is_error()).count();
    if !problems.is_empty() {
        println!("{errors} errors, {} warnings", problems.len() - errors);
    }
}
