//! `dualwrite logs [--map M] [--key K] [--errors] [--since T] [--follow]
//! [--json]`: the activity log, one timeline for all maps, through the
//! admin API of a running host (`--follow` streams new entries from
//! `/api/v1/logs/stream`) or in a stopped host's store.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use eventsource_stream::Eventsource as _;
use futures_util::StreamExt as _;

use dualwrite::checkpoint::LogFilter;
use dualwrite::sync::LogEntry;
use dualwrite::sync::log::parse_since;

use crate::host::{Failure, HostArgs, Source, block_on, exit, source};

/// `dualwrite logs`
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Only this map's entries.
    #[arg(long)]
    pub map: Option<String>,
    /// Only this key's entries (as the map writes keys: `C-1|usmf`).
    #[arg(long)]
    pub key: Option<String>,
    /// Only errors (entries with an error class).
    #[arg(long)]
    pub errors: bool,
    /// Only entries at or after this time: RFC 3339, or a duration ago
    /// (`15m`, `2h`, `1d`).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// The newest this many entries (default 100, at most 10000).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Then keep printing entries as they happen, until Ctrl-C (a running
    /// host only).
    #[arg(long)]
    pub follow: bool,
    #[command(flatten)]
    pub host: HostArgs,
}

/// Runs `dualwrite logs`.
pub fn run(args: LogsArgs) -> ExitCode {
    exit(logs(&args))
}

/// The query string of `/api/v1/logs` (`listing`: with `since` and
/// `limit`) or of its stream (after `after`, or from now on).
fn query(args: &LogsArgs, listing: bool, after: Option<u64>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    if let Some(map) = &args.map {
        query.append_pair("map", map);
    }
    if let Some(key) = &args.key {
        query.append_pair("key", key);
    }
    if args.errors {
        query.append_pair("errors", "true");
    }
    if let Some(after) = after {
        query.append_pair("after", &after.to_string());
    }
    if listing {
        if let Some(since) = &args.since {
            query.append_pair("since", since);
        }
        query.append_pair("limit", &args.limit.to_string());
    }
    query.finish()
}

fn logs(args: &LogsArgs) -> Result<(), Failure> {
    let source = source(&args.host)?;
    let read = |path: String| -> Result<Vec<LogEntry>, Failure> {
        let Source::Host(client) = &source else {
            return Ok(Vec::new());
        };
        let body = block_on(client.get(&path))?;
        Ok(serde_json::from_value(body["entries"].clone())
            .context("the host's log is not what this version reads")?)
    };
    // Where the whole log stands before the listing: a follower streams
    // from there when the listing shows nothing, so no line stored between
    // the listing and the stream's start is lost.
    let head = match args.follow {
        true => read("/api/v1/logs?limit=1".into())?
            .last()
            .map(|entry| entry.seq),
        false => None,
    };
    let entries: Vec<LogEntry> = match &source {
        Source::Host(_) => read(format!("/api/v1/logs?{}", query(args, true, None)))?,
        Source::Store(store, _) => {
            if args.follow {
                return Err(Failure::Refused(
                    "--follow needs a running host: name it with --admin URL (a stopped host's log does not change)".into(),
                ));
            }
            let since = match &args.since {
                Some(since) => Some(parse_since(since).map_err(Failure::Refused)?),
                None => None,
            };
            let filter = LogFilter {
                map: args.map.clone(),
                key: args.key.clone(),
                errors: args.errors,
                class: None,
                since,
                after: None,
            };
            store
                .log(&filter, args.limit.clamp(1, 10_000), true)
                .context("reading the activity log")?
                .into_iter()
                .map(LogEntry::from)
                .collect()
        }
    };
    for entry in &entries {
        print_entry(entry, args.host.json)?;
    }
    let Source::Host(client) = &source else {
        return Ok(());
    };
    if !args.follow {
        return Ok(());
    }
    // After the last entry printed; nothing printed: after the log's head
    // before the listing (an empty log: from now on).
    let after = entries.last().map(|entry| entry.seq).or(head);
    let path = format!("/api/v1/logs/stream?{}", query(args, false, after));
    block_on(async {
        let response = client.stream(&path).await?;
        let mut events = response.bytes_stream().eventsource();
        while let Some(event) = events.next().await {
            let event = event.map_err(|error| {
                Failure::Unreachable(format!("the host's log stream ended: {error}"))
            })?;
            match event.event.as_str() {
                "entry" => {
                    let entry: LogEntry = serde_json::from_str(&event.data)
                        .context("the host's log entry is not what this version reads")?;
                    print_entry(&entry, args.host.json)?;
                }
                "error" => eprintln!("warning: {}", event.data),
                _ => {}
            }
        }
        Err(Failure::Unreachable(
            "the host closed the log stream (it stopped?)".into(),
        ))
    })
}

fn print_entry(entry: &LogEntry, json: bool) -> Result<(), Failure> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let line = if json {
        serde_json::to_string(entry).context("printing")?
    } else {
        let arrow = match entry.direction.as_deref() {
            Some("left-to-right") => ">",
            Some(_) => "<",
            // An alert's line is of no flow.
            None => "!",
        };
        let step = match (&entry.step, &entry.class) {
            (Some(step), Some(class)) => format!(" [{step}, {class}]"),
            (Some(step), None) => format!(" [{step}]"),
            (None, Some(class)) => format!(" [{class}]"),
            (None, None) => String::new(),
        };
        let map = match entry.map_version {
            Some(version) => format!("{}@v{version}", entry.map),
            None => entry.map.clone(),
        };
        format!(
            "{}  {map} {arrow} {}  {}{step}  {}",
            entry.at.as_deref().unwrap_or("-"),
            if entry.key.is_empty() {
                "-"
            } else {
                &entry.key
            },
            entry.action,
            entry.message
        )
    };
    // A reader that went away (`| head`) ends the command quietly.
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
    Ok(())
}
