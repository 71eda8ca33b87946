//! The `dualwrite` command line: a thin shell over the library.
//!
//! Each subcommand parses its arguments with clap, calls the library, and
//! prints; none holds logic of its own that the admin API would need again.

pub mod alerts;
pub mod check;
mod demo;
pub mod emulate;
pub mod errors;
pub mod host;
mod lifecycle;
mod logs;
pub mod map;
mod package;
mod plugin;
mod progress;
mod registry;
pub mod run;
mod swap;
mod watch;

use clap::{Parser, Subcommand};

/// The `dualwrite` command.
#[derive(Debug, Parser)]
#[command(
    name = "dualwrite",
    version,
    about = "Keeps Finance and Operations and Dataverse in sync, with WebAssembly plugins"
)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with plugin components: run one over sample rows, or check it.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Check a config against the live systems before go-live: every
    /// system answers, TLS verifies, a token can be had, every mapped table
    /// and field exists, change tracking, alternate keys, public entities
    /// and privileges. Exits non-zero when a problem would stop a map.
    Check(check::CheckArgs),
    /// Run the live demo: both emulators, the standard maps with the
    /// example plugins, changes on both sides arriving on the other, until
    /// `--for` elapses or Ctrl-C (`--plugins-only`: the plugins alone).
    Demo(demo::DemoArgs),
    /// Run an emulated Dataverse or Finance and Operations service.
    Emulate(emulate::EmulateArgs),
    /// Work with table maps: validate a config file; see and drive the
    /// maps of a running host (status, start, pause, resume, stop, deps).
    #[command(subcommand)]
    Map(map::MapCommand),
    /// Work the error queue: every parked row of every map (live,
    /// catch-up, initial sync), listed, shown, retried or dismissed, on a
    /// running host or a stopped host's store.
    #[command(subcommand)]
    Errors(errors::ErrorsCommand),
    /// Work the alert rules: list them (and what fires), add or remove a
    /// rule, send a test notification to the webhooks.
    #[command(subcommand)]
    Alerts(alerts::AlertsCommand),
    /// Show the activity log: one timeline of every map's outcomes, with
    /// the step that decided each and an error's class and message
    /// (`--follow` streams new entries from a running host).
    Logs(logs::LogsArgs),
    /// Run the sync engine on every enabled map of a config file, until
    /// Ctrl-C.
    Run(run::RunArgs),
    /// Write a package: the maps as they run, the plugins they run and
    /// the alert rules added through the API, with a manifest of each
    /// part's SHA-256, optionally signed (`--key`).
    Export(package::ExportArgs),
    /// Import a package into a running host: verify it, show what would
    /// change (`--dry-run`), then apply its plugins, maps and alert rules.
    Import(package::ImportArgs),
}

impl Command {
    /// The log filter used when `DUALWRITE_LOG` is unset: `run` logs
    /// activity, the other commands only warnings.
    pub fn default_log_filter(&self) -> &'static str {
        match self {
            Command::Run(_) => "warn,dualwrite=info,dualwrite_cli=info",
            // A certificate that does not verify is reported as a problem;
            // the verifier's own log line would only repeat it.
            Command::Check(_) => "warn,rustls_platform_verifier=off",
            _ => "warn",
        }
    }

    /// How the host's own log is written: `run --log-format`, text for
    /// every other command.
    pub fn log_format(&self) -> run::LogFormat {
        match self {
            Command::Run(args) => args.log_format,
            _ => run::LogFormat::Text,
        }
    }
}

/// Runs the command line; the exit code is what `main` returns.
pub fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    match cli.command {
        Command::Plugin(command) => plugin::run(command),
        Command::Check(args) => check::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Emulate(args) => emulate::run(args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Map(command) => map::run(command),
        Command::Errors(command) => Ok(errors::run(command)),
        Command::Alerts(command) => Ok(alerts::run(command)),
        Command::Logs(args) => Ok(logs::run(args)),
        Command::Run(args) => run::run(args),
        Command::Export(args) => Ok(package::export(&args)),
        Command::Import(args) => Ok(package::import(&args)),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn every_command_is_well_formed() {
        // clap checks names and flags of every subcommand only when one is
        // parsed; this checks them all at once.
        super::Cli::command().debug_assert();
    }
}
