//! `dualwrite map status|start|pause|resume|stop|deps`: the map lifecycle,
//! through the admin API of a running host. `status` and `deps` also read
//! a stopped host's store (`--data DIR`, or `-c FILE`'s data directory)
//! when no host answers.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use dualwrite::sync::{CaptureStatus, MapNode, MapStatus, dependency_graph, statuses, to_dot};

use crate::host::{Client, Failure, HostArgs, Source, block_on, exit, source};

/// `dualwrite map status`
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this map.
    pub name: Option<String>,
    #[command(flatten)]
    pub host: HostArgs,
}

/// The side whose rows win an initial sync, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InitialSyncArg {
    /// Copy the rows that exist; the left side's values win on keys both
    /// hold.
    Left,
    /// Copy the rows that exist; the right side's values win.
    Right,
    /// Copy nothing; sync only new changes.
    None,
}

/// `dualwrite map start`
#[derive(Debug, Args)]
pub struct StartArgs {
    /// The maps to start.
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Copy the rows that exist first, the named side winning on keys both
    /// hold, or `none` (default: the map's `initial_sync`).
    #[arg(long, value_enum)]
    pub initial_sync: Option<InitialSyncArg>,
    /// Start the maps they depend on first, in dependency order.
    #[arg(long)]
    pub with_dependencies: bool,
    /// Follow each initial copy until it is done, also when not at a
    /// terminal (at a terminal it is followed with a progress bar anyway).
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub host: HostArgs,
}

/// `dualwrite map pause`
#[derive(Debug, Args)]
pub struct PauseArgs {
    /// The maps to pause (each must be running).
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Also pause the running maps that depend on them.
    #[arg(long)]
    pub with_dependents: bool,
    #[command(flatten)]
    pub host: HostArgs,
}

/// What becomes of the changes queued while paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QueuedArg {
    /// Write every one of them, in order.
    Replay,
    /// Move them to the error queue, to be resubmitted later.
    Park,
    /// Drop them, each with an activity entry.
    Discard,
}

/// `dualwrite map resume`
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The maps to resume (each must be paused).
    #[arg(required = true)]
    pub names: Vec<String>,
    /// What becomes of the changes queued while paused.
    #[arg(long, value_enum, default_value = "replay")]
    pub queued: QueuedArg,
    #[command(flatten)]
    pub host: HostArgs,
}

/// `dualwrite map stop`
#[derive(Debug, Args)]
pub struct StopArgs {
    /// The maps to stop.
    #[arg(required = true)]
    pub names: Vec<String>,
    #[command(flatten)]
    pub host: HostArgs,
}

/// `dualwrite map deps`
#[derive(Debug, Args)]
pub struct DepsArgs {
    /// Print the graph in Graphviz DOT.
    #[arg(long)]
    pub dot: bool,
    #[command(flatten)]
    pub host: HostArgs,
}

fn read_statuses(source: &Source) -> Result<Vec<MapStatus>, Failure> {
    match source {
        Source::Host(client) => {
            let body = block_on(client.get("/api/v1/maps"))?;
            Ok(serde_json::from_value(body["maps"].clone())
                .context("the host's map list is not what this version reads")?)
        }
        Source::Store(store, plan) => {
            let maps = plan
                .as_ref()
                .as_ref()
                .map(|p| p.maps.as_slice())
                .unwrap_or(&[]);
            Ok(statuses(store, maps).context("reading the map states")?)
        }
    }
}

/// Runs `dualwrite map status`.
pub fn status(args: StatusArgs) -> ExitCode {
    exit((|| {
        let source = source(&args.host)?;
        let mut all = read_statuses(&source)?;
        if let Some(name) = &args.name {
            all.retain(|status| &status.name == name);
            if all.is_empty() {
                return Err(Failure::Refused(format!("there is no map `{name}`")));
            }
        }
        if args.host.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&all).context("printing")?
            );
        } else {
            print_statuses(&all);
        }
        Ok(())
    })())
}

fn print_statuses(all: &[MapStatus]) {
    let width = all.iter().map(|s| s.name.len()).max().unwrap_or(3).max(3);
    println!(
        "{:width$}  {:>7}  {:12}  {:24}  {:>9}  {:>9}",
        "MAP", "VERSION", "STATE", "SINCE", "QUEUED >", "QUEUED <"
    );
    for status in all {
        println!(
            "{:width$}  {:>7}  {:12}  {:24}  {:>9}  {:>9}",
            status.name,
            status.version.map_or("-".to_owned(), |v| format!("v{v}")),
            status.state.as_str(),
            if status.since.is_empty() {
                "-"
            } else {
                &status.since
            },
            status.backlog.left_to_right,
            status.backlog.right_to_left,
        );
        let mut notes = Vec::new();
        if !status.in_config {
            notes.push("not in the config any more (its queues are kept)".to_owned());
        }
        if status.mode.starts_with("live") {
            notes.push(status.mode.clone());
        }
        if let Some(reason) = &status.reason {
            notes.push(format!("reason: {reason}"));
        }
        if let Some(oldest) = &status.oldest_queued {
            notes.push(format!("oldest queued change captured at {oldest}"));
        }
        if let Some(waits) = &status.waits_for {
            notes.push(waits.clone());
        }
        if let Some(error) = &status.last_error
            && status.reason.as_ref() != Some(error)
        {
            notes.push(format!("last error: {error}"));
        }
        for capture in &status.capture {
            notes.push(capture_note(capture));
        }
        for note in notes {
            println!("{:width$}  {note}", "");
        }
    }
}

/// `left (finops): pushed, catch-all every 15m; budget 600 polls per 5 min
/// shared by 4 pollers`, and what the budget makes of the interval.
fn capture_note(capture: &CaptureStatus) -> String {
    let every = if capture.mode == "pushed" {
        "catch-all every"
    } else {
        "every"
    };
    let interval = if capture.stretched() {
        format!(
            "{every} {} (stretched from {} by the polling budget)",
            capture.effective, capture.configured
        )
    } else {
        format!("{every} {}", capture.effective)
    };
    format!(
        "{} ({}): {}, {interval}; budget {} polls per 5 min shared by {} poller{}",
        capture.side,
        capture.system,
        capture.mode,
        capture.budget_per_5_min,
        capture.pollers,
        if capture.pollers == 1 { "" } else { "s" }
    )
}

/// Sends one lifecycle operation and prints what it did.
fn operate(host: &HostArgs, path: &str, body: Value) -> ExitCode {
    exit(send(host, path, body).map(|_| ()))
}

/// Sends one lifecycle operation, prints what it did, and gives the client
/// and the host's answer.
fn send(host: &HostArgs, path: &str, body: Value) -> Result<(Client, Value), Failure> {
    let client = host.client()?;
    let done = block_on(client.post(path, &body))?;
    if host.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&done).context("printing")?
        );
        return Ok((client, done));
    }
    let moved: Vec<String> = serde_json::from_value(done["done"].clone()).unwrap_or_default();
    let all: Vec<MapStatus> = serde_json::from_value(done["maps"].clone()).unwrap_or_default();
    for name in &moved {
        let state = all
            .iter()
            .find(|s| &s.name == name)
            .map_or("?", |s| s.state.as_str());
        println!("{name}: {state}");
    }
    if moved.is_empty() {
        println!("nothing to do");
    }
    Ok((client, done))
}

/// Runs `dualwrite map start`. At a terminal (or with `--wait`), each map
/// that starts with an initial copy is followed with a progress bar until
/// its copy is done.
pub fn start(args: StartArgs) -> ExitCode {
    let initial_sync = args.initial_sync.map(|mode| match mode {
        InitialSyncArg::Left => "left",
        InitialSyncArg::Right => "right",
        InitialSyncArg::None => "none",
    });
    let body = json!({"maps": args.names, "initial_sync": initial_sync, "with_dependencies": args.with_dependencies});
    exit((|| {
        let (client, done) = send(&args.host, "/api/v1/maps/start", body)?;
        let follow = args.wait || (std::io::stderr().is_terminal() && !args.host.json);
        if !follow {
            return Ok(());
        }
        let moved: Vec<String> = serde_json::from_value(done["done"].clone()).unwrap_or_default();
        let all: Vec<MapStatus> = serde_json::from_value(done["maps"].clone()).unwrap_or_default();
        for name in moved {
            let copying = all.iter().any(|s| {
                s.name == name && s.state == dualwrite::checkpoint::Lifecycle::Initializing
            });
            if copying {
                let last = block_on(crate::progress::follow(&client, &name))?;
                if !args.host.json {
                    println!(
                        "{name}: initial copy {}",
                        last["stage"].as_str().unwrap_or_default()
                    );
                }
            }
        }
        Ok(())
    })())
}

/// Runs `dualwrite map pause`.
pub fn pause(args: PauseArgs) -> ExitCode {
    operate(
        &args.host,
        "/api/v1/maps/pause",
        json!({"maps": args.names, "with_dependents": args.with_dependents}),
    )
}

/// Runs `dualwrite map resume`.
pub fn resume(args: ResumeArgs) -> ExitCode {
    let queued = match args.queued {
        QueuedArg::Replay => "replay",
        QueuedArg::Park => "park",
        QueuedArg::Discard => "discard",
    };
    operate(
        &args.host,
        "/api/v1/maps/resume",
        json!({"maps": args.names, "queued": queued}),
    )
}

/// Runs `dualwrite map stop`.
pub fn stop(args: StopArgs) -> ExitCode {
    operate(&args.host, "/api/v1/maps/stop", json!({"maps": args.names}))
}

/// Runs `dualwrite map deps`.
pub fn deps(args: DepsArgs) -> ExitCode {
    exit((|| {
        let source = source(&args.host)?;
        let nodes: Vec<MapNode> = match &source {
            Source::Host(client) => {
                let body = block_on(client.get("/api/v1/deps"))?;
                serde_json::from_value(body["maps"].clone())
                    .context("the host's dependency graph is not what this version reads")?
            }
            Source::Store(_, plan) => {
                let Some(plan) = plan.as_ref() else {
                    return Err(Failure::Refused(
                        "the dependency graph comes from the config: add -c FILE".into(),
                    ));
                };
                let all = read_statuses(&source)?;
                dependency_graph(&plan.maps, &all)
            }
        };
        if args.dot {
            print!("{}", to_dot(&nodes));
        } else if args.host.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&nodes).context("printing")?
            );
        } else {
            for node in &nodes {
                println!("{} ({})", node.name, node.state);
                for parent in &node.depends_on {
                    println!("  depends on {parent}");
                }
                for lookup in &node.lookups {
                    println!("  looks up {} via {}", lookup.field, lookup.map);
                }
            }
        }
        Ok(())
    })())
}
