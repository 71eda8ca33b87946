//! `dualwrite demo`: the product's main job, live, on this machine. Both
//! emulators start in-process with their seed data, the sync engine runs
//! the standard maps (with the example plugins) between them, copies what
//! each side has, then the demo changes rows on both sides and shows them
//! arriving on the other, until `--for` elapses or Ctrl-C.
//!
//! - `setup`: the emulators, the demo's plan (the standard maps plus
//!   plugins) and the engine ([`setup::World`]).
//! - `feed`: the engine's events printed as they come ([`feed::Feed`]).
//! - `script`: the scripted changes and the repeated ones.
//! - `view`: how lines and tables look.
//! - `plugins`: `--plugins-only`, the plugins over sample rows without the
//!   engine, and a looping plugin stopped at its deadline.
//!
//! The demo prints plain lines to stdout and changes nothing outside its
//! temporary folders; it exits 1 when a scripted change did not arrive or
//! the two sides disagree at the end.

mod feed;
mod plugins;
mod script;
mod setup;
mod summary;
mod view;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;

use super::run::stop_signal;
use feed::Feed;
use script::Script;

/// `dualwrite demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the plugin components are (`cargo xtask plugins` builds them
    /// into `target/plugins`).
    #[arg(long, default_value = "target/plugins")]
    pub plugins: PathBuf,
    /// End the demo after this long (`30s`, `5m`); without it, the demo
    /// runs until Ctrl-C.
    #[arg(long = "for", value_name = "DURATION")]
    pub run_for: Option<humantime::Duration>,
    /// Only run the example plugins over sample rows, without the engine or
    /// the emulators.
    #[arg(long)]
    pub plugins_only: bool,
}

/// How long between two repeated changes after the script.
const TICK: Duration = Duration::from_secs(4);

/// Runs the demo.
pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if args.plugins_only {
        return plugins::run(&args.plugins);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    runtime.block_on(live(args))
}

async fn live(args: DemoArgs) -> anyhow::Result<ExitCode> {
    setup::check_plugins(&args.plugins)?;
    let start = Instant::now();
    // A span too long to add to a clock reading is as good as none.
    let deadline = args
        .run_for
        .and_then(|span| start.checked_add(Duration::from(span)));
    println!("dualwrite demo: Finance and Operations and Dataverse kept in sync, live\n");
    println!("starting both emulators, then the sync engine…");
    let world = setup::start(&args.plugins).await?;
    let mut feed = Feed::new(world.engine.subscribe(), start);
    summary::header(&world, deadline.map(|d| d - start));

    let ended = {
        let show = show(&world, &mut feed, start);
        tokio::select! {
            result = show => result.map(|()| "the script ended"),
            () = until(deadline) => Ok("time is up"),
            result = stop_signal() => result.map(|()| "interrupted"),
        }
    };
    let ended = match ended {
        Ok(ended) => ended,
        Err(error) => {
            let _ = shutdown(world).await;
            return Err(error);
        }
    };
    // A second Ctrl-C skips the summary.
    let verdict = tokio::select! {
        verdict = summary::close(&world, &mut feed, ended) => verdict,
        result = stop_signal() => result.map(|()| {
            println!("\nstopping without the summary");
            true
        }),
    };
    shutdown(world).await?;
    Ok(if verdict? {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The initial copy, the script, then a repeated change every [`TICK`],
/// for ever: it returns only on an error. Cancelled by the deadline or
/// Ctrl-C at any await; a change already sent is still synced, and the
/// summary waits for it.
async fn show(world: &setup::World, feed: &mut Feed, start: Instant) -> anyhow::Result<()> {
    summary::initial_copy(world, feed, start).await;
    Script::new(world, feed).run().await?;
    view::heading("The engine keeps running: one change every few seconds, on alternate sides");
    view::note(
        start,
        "change rows yourself too (the addresses are at the top); Ctrl-C ends the demo",
    );
    let mut script = Script::new(world, feed);
    let mut round = 0;
    loop {
        script.idle(TICK).await;
        script.tick(round).await?;
        round += 1;
    }
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

async fn shutdown(world: setup::World) -> anyhow::Result<()> {
    world
        .engine
        .shutdown()
        .await
        .context("stopping the sync engine")?;
    world
        .finops
        .shutdown()
        .await
        .context("stopping the finops emulator")?;
    world
        .dataverse
        .shutdown()
        .await
        .context("stopping the Dataverse emulator")?;
    drop(world.data);
    Ok(())
}
