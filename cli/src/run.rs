//! `dualwrite run -c FILE`: validates the config, starts the sync engine on
//! every enabled map, logs activity with `tracing`, and stops cleanly on
//! Ctrl-C or SIGTERM (the batch in flight is finished and checkpointed).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use dualwrite::config::validate_file;
use dualwrite::map::{Catalogue, EmulatorCatalogue, NoCatalogue, Problem};
use dualwrite::plugin::RuntimeConfig;
use dualwrite::sync::{Engine, EngineOptions};

/// `dualwrite run`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The config file.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Do not check tables and fields against the emulators' built-in
    /// tables (for custom tables the catalogue does not know).
    #[arg(long)]
    pub no_catalogue: bool,
}

/// Runs the engine until Ctrl-C or SIGTERM.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let emulator;
    let catalogue: &dyn Catalogue = if args.no_catalogue {
        &NoCatalogue
    } else {
        emulator = EmulatorCatalogue::builtin().context("loading the built-in table catalogue")?;
        &emulator
    };
    let plan = match validate_file(&args.config, catalogue) {
        Ok(plan) => plan,
        Err(problems) => {
            for problem in &problems {
                eprintln!("{problem}");
            }
            let errors = problems.iter().filter(|p| p.is_error()).count();
            eprintln!(
                "{}: {errors} errors; fix them (dualwrite map validate -c {} lists them) and run again",
                args.config.display(),
                args.config.display()
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    for warning in plan.warnings.iter().filter(|p: &&Problem| !p.is_error()) {
        tracing::warn!("{warning}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    runtime.block_on(async move {
        let maps: Vec<String> = plan
            .maps
            .iter()
            .filter(|m| m.enabled)
            .map(|m| m.name.clone())
            .collect();
        let systems: Vec<String> = plan
            .systems
            .values()
            .filter(|s| s.events_secret.is_some())
            .map(|s| s.name.clone())
            .collect();
        let data = plan.engine.data.clone();
        // The plugin engine is made once, so it counts fuel from the start
        // when a plugin's `limits` set a fuel budget.
        let options = EngineOptions {
            runtime: RuntimeConfig::default().counting_fuel_for(plan.plugin_limits()),
            ..EngineOptions::default()
        };
        let engine = Engine::start(plan, options).await?;
        println!(
            "dualwrite is running {} maps ({}), checkpoints in {}",
            maps.len(),
            maps.join(", "),
            data.display()
        );
        for system in systems {
            if let Some(url) = engine.webhook_url(&system) {
                println!("data events of `{system}` are received at {url}");
            }
        }
        println!("press Ctrl-C to stop");
        stop_signal().await?;
        println!("stopping: finishing the batches in flight");
        engine.shutdown().await?;
        println!("stopped; every checkpoint is on disk");
        Ok(ExitCode::SUCCESS)
    })
}

/// Ctrl-C, or SIGTERM on Unix.
pub(crate) async fn stop_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("could not wait for SIGTERM")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("could not wait for Ctrl-C"),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .context("could not wait for Ctrl-C")
    }
}
