//! The `dualwrite` binary: parses the command line and hands it to
//! [`dualwrite_cli`].

use clap::Parser;
use dualwrite_cli::run::LogFormat;
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// mimalloc rather than the system allocator: a sync allocates and frees
/// many small values per row, and glibc's malloc took about a third of a
/// sync's CPU (`BENCHMARKS.md`, "Sync engine").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = dualwrite_cli::Cli::parse();
    let default = cli.command.default_log_filter();
    let filter =
        EnvFilter::try_from_env("DUALWRITE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.command.log_format() {
        LogFormat::Text => log.with_ansi(std::io::stderr().is_terminal()).init(),
        // One object per line (`timestamp`, `level`, `target`, and the
        // message with its fields under `fields`), for log shippers.
        LogFormat::Json => log
            .json()
            .flatten_event(false)
            .with_current_span(false)
            .init(),
    }
    match dualwrite_cli::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
