//! The `dualwrite` binary: parses the command line and hands it to
//! [`dualwrite_cli`].

use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = dualwrite_cli::Cli::parse();
    let default = cli.command.default_log_filter();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("DUALWRITE_LOG").unwrap_or_else(|_| EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match dualwrite_cli::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
