//! The `dualwrite` command.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "dualwrite",
    version,
    about = "Open, self-hosted dual-write host"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an emulated Dataverse or Finance and Operations service.
    Emulate(dualwrite::cli::emulate::EmulateArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    match Cli::parse().command {
        Command::Emulate(args) => dualwrite::cli::emulate::run(args),
    }
}
