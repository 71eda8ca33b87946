//! `dualwrite map validate`: checks a config file and prints its problems;
//! the lifecycle commands (`status`, `start`, …) are in `lifecycle`.
//!
//! With `--live`, each system's tables come from the service itself
//! (Dataverse `EntityDefinitions`, finops `$metadata`), read with the
//! config's URL and client credentials before validation; a system that
//! cannot be read is a `DW021 metadata-unreachable` warning and is checked
//! against the built-in tables instead.

use std::path::Path;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use dualwrite::config::{Config, SystemConfig, validate_file};
use dualwrite::connector::{ConnectorError, MetadataReader};
use dualwrite::map::{
    Catalogue, EmulatorCatalogue, LiveCatalogue, NoCatalogue, Problem, ProblemCode, SystemKind,
};
use dualwrite::preflight::{SystemTarget, describe};

use crate::{lifecycle, progress, swap};
use dualwrite::schema::TableDef;

/// `dualwrite map …`
#[derive(Debug, Subcommand)]
pub enum MapCommand {
    /// Check a config file: systems, maps, fields, keys, lookups,
    /// dependencies and plugins. Exits non-zero when there is an error.
    Validate(MapArgs),
    /// Show each map's state, since when, its backlog per direction, what
    /// it waits for and its last error (a running host, or a stopped
    /// host's store with --data or -c).
    Status(lifecycle::StatusArgs),
    /// Start maps, with an initial sync (`--initial-sync left|right|none`),
    /// optionally after the maps they depend on.
    Start(lifecycle::StartArgs),
    /// Pause running maps: changes keep queueing, nothing is written.
    Pause(lifecycle::PauseArgs),
    /// Resume paused maps: the changes queued meanwhile are written in
    /// order (catch-up).
    Resume(lifecycle::ResumeArgs),
    /// Stop maps: nothing is captured or written until they start again.
    Stop(lifecycle::StopArgs),
    /// Show the dependency graph: each map with its state, the maps it
    /// depends on and its lookups (`--dot` for Graphviz).
    Deps(lifecycle::DepsArgs),
    /// Follow a map's initial copy: rows read, written and failed, rows
    /// per second and ETA, per company, as a progress bar.
    Progress(progress::ProgressArgs),
    /// List every row of a map's initial copy that failed, with the
    /// service's message.
    Failures(progress::FailuresArgs),
    /// Rerun a map's initial copy: only the failed rows (`--failed-only`),
    /// or every row not already copied.
    Rerun(progress::RerunArgs),
    /// Apply changed or new map definitions (a TOML file of `[[maps]]`)
    /// to a running host, between batches, without a restart; one that
    /// does not validate changes nothing (`--dry-run`: show the changes).
    Apply(swap::ApplyArgs),
    /// Swap a map of a running host back to an earlier version of its
    /// definition (default: the one before the current).
    Rollback(swap::RollbackArgs),
    /// List a map's versions, each with the fields that changed.
    History(swap::HistoryArgs),
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
    /// Read each system's tables from the service (Dataverse
    /// `EntityDefinitions`, finops `$metadata`) with the config's URL and
    /// credentials. A system that cannot be read is a warning, and is
    /// checked against the built-in tables (none with --no-catalogue).
    #[arg(long)]
    pub live: bool,
}

/// Runs `dualwrite map …`.
pub fn run(command: MapCommand) -> anyhow::Result<ExitCode> {
    match command {
        MapCommand::Validate(args) => validate(&args),
        MapCommand::Status(args) => Ok(lifecycle::status(args)),
        MapCommand::Start(args) => Ok(lifecycle::start(args)),
        MapCommand::Pause(args) => Ok(lifecycle::pause(args)),
        MapCommand::Resume(args) => Ok(lifecycle::resume(args)),
        MapCommand::Stop(args) => Ok(lifecycle::stop(args)),
        MapCommand::Deps(args) => Ok(lifecycle::deps(args)),
        MapCommand::Progress(args) => Ok(progress::progress(args)),
        MapCommand::Failures(args) => Ok(progress::failures(args)),
        MapCommand::Rerun(args) => Ok(progress::rerun(args)),
        MapCommand::Apply(args) => Ok(swap::apply(&args)),
        MapCommand::Rollback(args) => Ok(swap::rollback(&args)),
        MapCommand::History(args) => Ok(swap::history(&args)),
    }
}

fn validate(args: &MapArgs) -> anyhow::Result<ExitCode> {
    let builtin: Box<dyn Catalogue + Send + Sync> = if args.no_catalogue {
        Box::new(NoCatalogue)
    } else {
        Box::new(EmulatorCatalogue::builtin().context("loading the built-in table catalogue")?)
    };
    let (catalogue, mut problems, read) = if args.live {
        let live = read_live(&args.config, builtin, args.no_catalogue)?;
        let catalogue: Box<dyn Catalogue + Send + Sync> = Box::new(live.catalogue);
        (catalogue, live.problems, live.read)
    } else {
        (builtin, Vec::new(), Vec::new())
    };
    let summary = match validate_file(&args.config, catalogue.as_ref()) {
        Ok(plan) => {
            let order: Vec<&str> = plan.maps.iter().map(|map| map.name.as_str()).collect();
            problems.extend(plan.warnings);
            Some(format!(
                "{}: {} maps valid, in order: {}",
                args.config.display(),
                order.len(),
                order.join(", ")
            ))
        }
        Err(found) => {
            problems.extend(found);
            None
        }
    };
    problems.sort_by_key(|problem| std::cmp::Reverse(problem.severity));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&problems)?);
    } else {
        print_problems(&problems);
        if !read.is_empty() {
            println!("tables read from {}", read.join(", "));
        }
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

/// What `--live` read before validation.
struct LiveRead {
    /// The tables read, over the built-in ones.
    catalogue: LiveCatalogue,
    /// A `DW021` warning per system that could not be read.
    problems: Vec<Problem>,
    /// `` `name` (N tables) `` per system read.
    read: Vec<String>,
}

/// Reads the tables of every system of the config. A file that does not
/// parse reads nothing: validation reports it.
fn read_live(
    path: &Path,
    builtin: Box<dyn Catalogue + Send + Sync>,
    no_catalogue: bool,
) -> anyhow::Result<LiveRead> {
    let mut catalogue = LiveCatalogue::new(builtin);
    let Ok(config) = Config::load(path) else {
        return Ok(LiveRead {
            catalogue,
            problems: Vec::new(),
            read: Vec::new(),
        });
    };
    let mut failed: Vec<(String, SystemKind, String)> = Vec::new();
    let mut readers = Vec::new();
    for (name, system) in &config.systems {
        let base_dir = path.parent().unwrap_or(Path::new("."));
        match reader(name, system, base_dir) {
            Ok(reader) => readers.push((name.clone(), system.kind, reader)),
            Err(reason) => failed.push((name.clone(), system.kind, reason)),
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    let results: Vec<(String, SystemKind, Result<Vec<TableDef>, ConnectorError>)> = runtime
        .block_on(async {
            let mut reads = tokio::task::JoinSet::new();
            for (name, kind, reader) in readers {
                reads.spawn(async move { (name, kind, reader.tables().await) });
            }
            let mut results = Vec::new();
            while let Some(joined) = reads.join_next().await {
                results.push(joined.context("a metadata read stopped unexpectedly")?);
            }
            anyhow::Ok(results)
        })?;
    let mut read = Vec::new();
    for (name, kind, result) in results {
        match result {
            Ok(tables) => {
                read.push((name.clone(), format!("`{name}` ({} tables)", tables.len())));
                catalogue.add(kind, tables);
            }
            Err(error) => failed.push((name, kind, describe(&error))),
        }
    }
    read.sort();
    failed.sort_by(|a, b| a.0.cmp(&b.0));
    let instead = if no_catalogue {
        "its tables and fields were not checked"
    } else {
        "its tables and fields were checked against the built-in catalogue"
    };
    let mut problems = Vec::new();
    for (name, kind, reason) in failed {
        catalogue.add_fallback(kind);
        let mut problem = Problem::new(
            ProblemCode::MetadataUnreachable,
            format!("system `{name}`: could not read its metadata: {reason}"),
            format!(
                "{instead}; check `url` and `auth` of `[systems.{name}]`, the secret and that the service is up, or validate without `--live`"
            ),
        )
        .at_field(format!("systems.{name}"));
        problem.file = path.display().to_string();
        problems.push(problem);
    }
    Ok(LiveRead {
        catalogue,
        problems,
        read: read.into_iter().map(|(_, text)| text).collect(),
    })
}

/// A metadata reader for one system, or why there is none.
fn reader(name: &str, system: &SystemConfig, base_dir: &Path) -> Result<MetadataReader, String> {
    let env = |variable: &str| std::env::var(variable).ok();
    SystemTarget::from_config(name, system, base_dir, &env)
        .map(|target| target.metadata_reader())
        .map_err(|error| error.to_string())
}
