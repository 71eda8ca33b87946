//! `dualwrite plugin …`: run a component over sample rows or check it
//! (here), and make, build and test a plugin crate of one's own
//! (`new.rs`, `crate_dir.rs`).
//!
//! `run` and `test` call a plugin through the host's real runtime with
//! [`call_and_print`]: the outcomes as JSON on stdout, what the call used
//! on stderr.

mod crate_dir;
mod new;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand, ValueEnum};
use dualwrite::plugin::json;
use dualwrite::plugin::{
    Batch, Call, Context, Direction, Outcome, Plugin, PluginError, PluginLimits, Runtime,
    RuntimeConfig, Verdict,
};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// `dualwrite plugin …`
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Run a plugin over rows from a JSON file; print the outcomes as JSON
    /// (stdout), then the time, memory and fuel used (stderr).
    Run(RunArgs),
    /// Report what a component exports and imports, and why the host would
    /// refuse it.
    Check {
        /// The component (`.wasm`).
        component: PathBuf,
    },
    /// Make a plugin crate of your own, outside this repository: a sample
    /// filter or transform with a native test, sample rows and a README.
    New(new::NewArgs),
    /// Build a plugin crate into a component
    /// (`target/plugin/NAME.wasm`, or under `CARGO_TARGET_DIR`).
    Build(crate_dir::CrateArgs),
    /// Run a plugin crate's native tests, build its component and run it
    /// over the crate's `rows.json` in the host's runtime; exits non-zero
    /// when a test fails (1), the host refuses the component (2) or a call
    /// traps or breaks the contract (3).
    Test(crate_dir::CrateArgs),
    /// Add a component to the host's registry, by the name and version
    /// its metadata carries, after `check`'s checks; compiled on the way.
    Add(crate::registry::AddArgs),
    /// List the registry: every plugin version, and the maps that run it.
    List(crate::registry::ListArgs),
    /// Show the versions of one plugin.
    Show(crate::registry::ShowArgs),
    /// Remove a version from the registry (refused while a map runs it).
    Remove(crate::registry::RemoveArgs),
    /// Swap a map of a running host to a registry plugin version, between
    /// batches, without a restart.
    Swap(crate::swap::SwapArgs),
}

/// `dualwrite plugin run`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The component (`.wasm`).
    pub component: PathBuf,
    /// The rows: a JSON array of objects (see the README for the format).
    #[arg(long, short)]
    pub input: PathBuf,
    /// A plugin setting, as the map's configuration would give it.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_setting)]
    pub settings: Vec<(String, String)>,
    /// Run the plugin's filter.
    #[arg(long, conflicts_with = "transform")]
    pub filter: bool,
    /// Run the plugin's transform.
    #[arg(long)]
    pub transform: bool,
    /// The map name the plugin is told.
    #[arg(long, default_value = "local")]
    pub map: String,
    /// The direction the plugin is told.
    #[arg(long, value_enum, default_value_t = Flow::LeftToRight)]
    pub direction: Flow,
    /// The company the plugin is told.
    #[arg(long)]
    pub company: Option<String>,
    /// The call's deadline.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub timeout: Duration,
    /// The memory cap, in MiB.
    #[arg(long, default_value_t = 64)]
    pub memory_mib: usize,
    /// An instruction (fuel) budget for the call.
    #[arg(long)]
    pub fuel: Option<u64>,
}

/// A map direction, as the command line spells it.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Flow {
    /// Left to right (`>`).
    LeftToRight,
    /// Right to left (`<`).
    RightToLeft,
}

fn parse_setting(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(key, value)| (key.trim().to_owned(), value.to_owned()))
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE"))
}

/// Runs `dualwrite plugin …`.
pub fn run(command: PluginCommand) -> anyhow::Result<ExitCode> {
    match command {
        PluginCommand::Run(args) => run_plugin(args),
        PluginCommand::Check { component } => check(&component),
        PluginCommand::Add(args) => Ok(crate::registry::add(&args)),
        PluginCommand::List(args) => Ok(crate::registry::list(&args)),
        PluginCommand::Show(args) => Ok(crate::registry::show(&args)),
        PluginCommand::Remove(args) => Ok(crate::registry::remove(&args)),
        PluginCommand::Swap(args) => Ok(crate::swap::swap(&args)),
        PluginCommand::New(args) => new::run(args),
        PluginCommand::Build(args) => crate_dir::build(&args),
        PluginCommand::Test(args) => crate_dir::test(&args),
    }
}

/// Which export of a plugin a call uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Export {
    Filter,
    Transform,
}

impl Export {
    fn name(self) -> &'static str {
        match self {
            Export::Filter => "filter",
            Export::Transform => "transform",
        }
    }
}

/// How a call's rows came out.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    kept: usize,
    /// Of the kept rows, those a transform changed (`None`: a filter's).
    changed: Option<usize>,
    skipped: usize,
    failed: usize,
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} kept", self.kept)?;
        if let Some(changed) = self.changed {
            write!(f, " ({changed} changed)")?;
        }
        write!(f, ", {} skipped, {} failed", self.skipped, self.failed)
    }
}

/// The limits a command-line call runs under: those given, never
/// quarantined (every call is the first and the last).
fn cli_limits(timeout: Duration, memory: usize, fuel: Option<u64>) -> PluginLimits {
    PluginLimits {
        timeout,
        memory,
        fuel,
        quarantine_after: u32::MAX,
        ..PluginLimits::default()
    }
}

/// The runtime of the command-line calls: it counts fuel, so every call
/// reports what it used.
fn cli_runtime() -> anyhow::Result<Runtime> {
    Ok(Runtime::new(RuntimeConfig {
        fuel: true,
        ..RuntimeConfig::default()
    })?)
}

/// Calls `export` of `plugin` over `batch`, prints the outcomes as JSON
/// (stdout) and what the call used (stderr), and counts the outcomes. The
/// outer error is the call's own (a trap, a contract breach); the inner
/// one, printing's.
fn call_and_print(
    plugin: &Plugin,
    export: Export,
    context: &Context,
    batch: &Batch,
) -> Result<anyhow::Result<Tally>, PluginError> {
    Ok(match export {
        Export::Filter => {
            let call = plugin.filter(context, batch)?;
            print_call(&call, |verdicts| json::verdicts_to_json(verdicts))
                .map(|()| tally_verdicts(&call.result))
        }
        Export::Transform => {
            let call = plugin.transform(context, batch)?;
            print_call(&call, |result| json::transformed_to_json(batch, result))
                .map(|()| tally_outcomes(&call.result.outcomes))
        }
    })
}

fn tally_verdicts(verdicts: &[Verdict]) -> Tally {
    let mut tally = Tally::default();
    for verdict in verdicts {
        match verdict {
            Verdict::Keep => tally.kept += 1,
            Verdict::Skip(_) => tally.skipped += 1,
            Verdict::Fail(_) => tally.failed += 1,
        }
    }
    tally
}

fn tally_outcomes(outcomes: &[Outcome]) -> Tally {
    let mut tally = Tally::default();
    let mut changed = 0;
    for outcome in outcomes {
        match outcome {
            Outcome::Unchanged => tally.kept += 1,
            Outcome::Changed(_) => {
                tally.kept += 1;
                changed += 1;
            }
            Outcome::Skip(_) => tally.skipped += 1,
            Outcome::Fail(_) => tally.failed += 1,
        }
    }
    tally.changed = Some(changed);
    tally
}

/// Says on stderr that a call's failure was contained.
fn report_contained(error: &PluginError) {
    eprintln!("contained: {error}");
    if let PluginError::Trap(_) | PluginError::Contract { .. } = error {
        eprintln!(
            "the host dropped the plugin's instance and would serve its next call with a fresh one"
        );
    }
}

fn run_plugin(args: RunArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.input)
        .with_context(|| format!("cannot read the rows file {}", args.input.display()))?;
    let batch = json::parse_rows(&text).with_context(|| format!("in {}", args.input.display()))?;
    let runtime = cli_runtime()?;
    let limits = cli_limits(args.timeout, args.memory_mib << 20, args.fuel);
    let plugin = match Plugin::load_file(&runtime, &args.component, limits) {
        Ok(plugin) => plugin,
        Err(error) => {
            eprintln!("refused: {error}");
            return Ok(ExitCode::from(2));
        }
    };
    let context = Context {
        table_map: args.map.clone(),
        direction: match args.direction {
            Flow::LeftToRight => Direction::LeftToRight,
            Flow::RightToLeft => Direction::RightToLeft,
        },
        company: args.company.clone(),
        settings: args.settings.clone(),
    };
    let export = match (args.filter, args.transform) {
        (true, _) => Export::Filter,
        (_, true) => Export::Transform,
        _ => match (plugin.has_filter(), plugin.has_transform()) {
            (true, false) => Export::Filter,
            (false, true) => Export::Transform,
            _ => bail!(
                "plugin {} exports both a filter and a transform; choose one with --filter or --transform",
                plugin.id()
            ),
        },
    };
    match call_and_print(&plugin, export, &context, &batch) {
        Ok(printed) => printed.map(|_| ExitCode::SUCCESS),
        Err(error) => {
            report_contained(&error);
            Ok(ExitCode::from(3))
        }
    }
}

fn print_call<T>(
    call: &Call<T>,
    to_json: impl FnOnce(&T) -> serde_json::Value,
) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&to_json(&call.result))?);
    let stats = &call.stats;
    for line in &stats.logs {
        eprintln!("log {}: {}", line.level, line.message);
    }
    if stats.dropped_logs > 0 {
        eprintln!(
            "log: {} more lines over the cap were dropped",
            stats.dropped_logs
        );
    }
    eprintln!(
        "time {:?} ({} instance), memory peak {:.1} MiB, fuel {}",
        stats.elapsed,
        if stats.fresh_instance {
            "fresh"
        } else {
            "warm"
        },
        stats.peak_memory as f64 / (1 << 20) as f64,
        stats
            .fuel
            .map_or("not counted".into(), |fuel| fuel.to_string()),
    );
    Ok(())
}

fn check(component: &std::path::Path) -> anyhow::Result<ExitCode> {
    let bytes =
        std::fs::read(component).with_context(|| format!("cannot read {}", component.display()))?;
    let inspection = match dualwrite::plugin::inspect(&component.display().to_string(), &bytes) {
        Ok(inspection) => inspection,
        Err(error) => {
            println!("refused: {error}");
            return Ok(ExitCode::from(2));
        }
    };
    println!("plugin   {}", inspection.id());
    println!("exports  {}", list(&inspection.exports));
    println!("imports  {}", list(&inspection.imports));
    let mut problems: Vec<String> = inspection
        .problems()
        .iter()
        .map(ToString::to_string)
        .collect();
    if problems.is_empty() {
        let runtime = Runtime::new(RuntimeConfig::default())?;
        if let Err(error) = Plugin::load(
            &runtime,
            &component.display().to_string(),
            &bytes,
            PluginLimits::default(),
        ) {
            problems.push(error.to_string());
        }
    }
    if problems.is_empty() {
        let mut kinds = Vec::new();
        if inspection.exports_filter() {
            kinds.push("filter");
        }
        if inspection.exports_transform() {
            kinds.push("transform");
        }
        println!("accepted as a {}", kinds.join(" and "));
        Ok(ExitCode::SUCCESS)
    } else {
        for problem in problems {
            println!("refused: {problem}");
        }
        Ok(ExitCode::from(2))
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".into()
    } else {
        names.join(", ")
    }
}
