//! `dualwrite run -c FILE`: validates the config, starts the sync engine on
//! every map its state (or, at a map's first start, `enabled`) has run,
//! serves the admin API when `[engine] admin` is set, logs activity with `tracing`, and stops cleanly on
//! Ctrl-C or SIGTERM (the batch in flight is finished and checkpointed).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use std::sync::Arc;

use dualwrite::admin;
use dualwrite::checkpoint::Checkpoints;
use dualwrite::config::{InForce, PluginRegistry, in_force, load_file, validate_config_in};
use dualwrite::map::{Catalogue, EmulatorCatalogue, NoCatalogue, Problem};
use dualwrite::sync::{ConfigSource, Engine, EngineOptions, MapState};

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
    /// How the host writes its own log (to standard error): `text` for
    /// people, `json` for log shippers (one JSON object per line with
    /// `timestamp`, `level`, `target` and `fields`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Watch the config file and apply a change of its maps as a hot
    /// swap, after validating it (a file that does not validate changes
    /// nothing and is logged with its problems).
    #[arg(long)]
    pub watch: bool,
}

/// The format of the host's own log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people (coloured at a terminal).
    Text,
    /// JSON lines.
    Json,
}

/// Runs the engine until Ctrl-C or SIGTERM.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let catalogue: Arc<dyn Catalogue + Send + Sync> = if args.no_catalogue {
        Arc::new(NoCatalogue)
    } else {
        Arc::new(EmulatorCatalogue::builtin().context("loading the built-in table catalogue")?)
    };
    let refuse = |problems: Vec<Problem>| {
        for problem in &problems {
            eprintln!("{problem}");
        }
        let errors = problems.iter().filter(|p| p.is_error()).count();
        eprintln!(
            "{}: {errors} errors; fix them (dualwrite map validate -c {} lists them) and run again",
            args.config.display(),
            args.config.display()
        );
        Ok(ExitCode::FAILURE)
    };
    let config = match load_file(&args.config) {
        Ok(config) => config,
        Err(problems) => return refuse(problems),
    };
    // The store first: the maps' registry plugins are resolved in it.
    let data = config.data_dir(args.config.parent().unwrap_or(Path::new(".")));
    let store = match Checkpoints::open(&data) {
        Ok(store) => store,
        Err(error) => {
            eprintln!(
                "error: the checkpoint store in {} (engine.data) cannot be opened: {error}; name a directory the host may create and write, used by no other running host",
                data.display()
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    // The map versions an admin applied on this host run again, over the
    // entries of the file they were applied over.
    let InForce {
        config,
        applied,
        overridden,
    } = match in_force(&config, &store) {
        Ok(in_force) => in_force,
        Err(error) => {
            eprintln!(
                "error: the checkpoint store in {} cannot be read: {error}",
                data.display()
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let plan = match validate_config_in(
        &args.config,
        &config,
        &*catalogue,
        PluginRegistry::Store(&store),
    ) {
        Ok(plan) => plan,
        Err(problems) => {
            if !applied.is_empty() {
                let maps: Vec<String> = applied
                    .iter()
                    .map(|(map, version)| format!("{map} v{version}"))
                    .collect();
                eprintln!(
                    "note: these maps run versions applied on the host, not their entries in {}: {}; a problem of such a map is its applied version's: edit the map's entry in the file (the entry then runs) and run again",
                    args.config.display(),
                    maps.join(", ")
                );
            }
            return refuse(problems);
        }
    };
    for map in &overridden {
        if let Err(error) = store.clear_applied_map(map) {
            tracing::warn!(map = %map, %error, "The record of an applied map version could not be dropped.");
        }
        tracing::info!(map = %map, "The config file's entry of the map changed since a version was applied on the host; the file's entry runs.");
    }
    for (map, version) in &applied {
        tracing::info!(map = %map, version, "The map runs the version applied on the host (its entry in the config file is unchanged since).");
    }
    for warning in plan.warnings.iter().filter(|p: &&Problem| !p.is_error()) {
        tracing::warn!("{warning}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    runtime.block_on(async move {
        // Listened to before the engine starts: a SIGTERM while it starts
        // stops it cleanly once it runs, instead of killing the process.
        let mut stop = StopSignal::install()?;
        let systems: Vec<String> = plan
            .systems
            .values()
            .filter(|s| s.events_secret.is_some())
            .map(|s| s.name.clone())
            .collect();
        let data = plan.engine.data.clone();
        let admin_addr = plan.engine.admin;
        let admin_tls = plan.receiver_tls.clone();
        // Kept by the engine, so that it validates hot swaps as this.
        let source = ConfigSource {
            config,
            file: args.config.display().to_string(),
            base_dir: args.config.parent().unwrap_or(Path::new(".")).to_path_buf(),
            catalogue,
            env: Arc::new(|name: &str| std::env::var(name).ok()),
        };
        let options = EngineOptions {
            store: Some(store),
            source: Some(Arc::new(std::sync::Mutex::new(Some(source)))),
            ..EngineOptions::default()
        };
        let engine = Arc::new(Engine::start(plan, options).await?);
        let admin = match admin_addr {
            Some(addr) => {
                let token = std::env::var(admin::TOKEN_ENV).ok();
                match admin::serve(engine.clone(), addr, admin_tls.as_ref(), token).await {
                    Ok(admin) => Some(admin),
                    Err(error) => {
                        eprintln!("error: {error}");
                        engine.shutdown().await?;
                        return Ok(ExitCode::FAILURE);
                    }
                }
            }
            None => None,
        };
        // The maps whose persisted state (or, at a first start, `enabled`)
        // has them run.
        let maps: Vec<String> = engine
            .states()
            .into_iter()
            .filter(|(_, state)| state.lifecycle().is_active())
            .map(|(name, _)| name)
            .collect();
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
        if let Some(admin) = &admin {
            println!("the admin API is at {}/api/v1", admin.url());
        }
        let _watch = match args.watch {
            true => {
                let watch = crate::watch::spawn(engine.clone(), args.config.clone())
                    .with_context(|| format!("cannot watch {}", args.config.display()))?;
                println!("watching {} for changes of its maps", args.config.display());
                Some(watch)
            }
            false => None,
        };
        println!("press Ctrl-C to stop");
        // Nothing left to run (every map failed) ends a host without an
        // admin API with an error: a supervisor restarts it, or an admin
        // reads why. With an admin API the host waits to be told.
        let nothing_runs = tokio::select! {
            signal = stop.wait() => { signal?; false }
            _ = engine.none_running(), if admin.is_none() => true,
        };
        if nothing_runs {
            for (map, state) in engine.states() {
                if let MapState::Failed(reason) = state {
                    eprintln!("map `{map}` failed: {reason}");
                }
            }
            eprintln!("no map can run; stopping");
        } else {
            println!("stopping: finishing the batches in flight");
        }
        if let Some(admin) = admin {
            admin.stop().await;
        }
        engine.shutdown().await?;
        println!("stopped; every checkpoint is on disk");
        Ok(match nothing_runs {
            true => ExitCode::FAILURE,
            false => ExitCode::SUCCESS,
        })
    })
}

/// Ctrl-C, or SIGTERM on Unix, listened to from the moment it is
/// installed (a signal that comes before [`StopSignal::wait`] is kept).
pub(crate) struct StopSignal {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl StopSignal {
    /// Starts listening; within a Tokio runtime.
    pub(crate) fn install() -> anyhow::Result<StopSignal> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(StopSignal {
                interrupt: signal(SignalKind::interrupt()).context("could not wait for Ctrl-C")?,
                terminate: signal(SignalKind::terminate()).context("could not wait for SIGTERM")?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(StopSignal {})
        }
    }

    /// Until Ctrl-C or SIGTERM.
    pub(crate) async fn wait(&mut self) -> anyhow::Result<()> {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => Ok(()),
                _ = self.terminate.recv() => Ok(()),
            }
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c()
                .await
                .context("could not wait for Ctrl-C")
        }
    }
}

/// Ctrl-C, or SIGTERM on Unix, from now on.
pub(crate) async fn stop_signal() -> anyhow::Result<()> {
    StopSignal::install()?.wait().await
}
