//! The terminal view: plain lines, each with the seconds since the demo
//! started and who speaks (`finops` or `Dataverse` for a change the demo
//! made or a row it read back, `engine` for what the sync engine did), and
//! the tables of the initial copy and the closing summary.

use std::time::{Duration, Instant};

use serde_json::Value;

use dualwrite::checkpoint::{Action, Direction};
use dualwrite::connector::Row;
use dualwrite::sync::{FlowStats, SyncEvent};

/// Width of the "who" column.
const WHO: usize = 9;

/// A line from `who` at the current time.
pub fn line(start: Instant, who: &str, text: &str) {
    line_at(start, Instant::now(), who, text);
}

/// A line from `who` at time `at`.
fn line_at(start: Instant, at: Instant, who: &str, text: &str) {
    println!(
        "{:>6.1}s  {who:<WHO$}  {text}",
        at.saturating_duration_since(start).as_secs_f64()
    );
}

/// A line without a speaker.
pub fn note(start: Instant, text: &str) {
    line(start, "", text);
}

/// A heading before a group of lines.
pub fn heading(text: &str) {
    println!("\n── {text}");
}

/// How one direction of a map reads.
pub fn direction(direction: Direction) -> &'static str {
    match direction {
        Direction::LeftToRight => "finops → Dataverse",
        Direction::RightToLeft => "Dataverse → finops",
    }
}

/// How a plugin's pipeline reads.
pub fn plugin_direction(direction: dualwrite::map::Direction) -> &'static str {
    match direction {
        dualwrite::map::Direction::LeftToRight => "finops → Dataverse",
        dualwrite::map::Direction::RightToLeft => "Dataverse → finops",
        dualwrite::map::Direction::Both => "both ways",
    }
}

/// Prints what the engine did, with the time since the demo changed that
/// row at its source when it did.
pub fn event(start: Instant, at: Instant, event: &SyncEvent, latency: Option<Duration>) {
    let source = match event.direction {
        Direction::LeftToRight => "finops",
        Direction::RightToLeft => "Dataverse",
    };
    let what = match event.what {
        Action::Written | Action::Deleted => {
            // `accounts (accountnumber='…',_msdyn_company_value=…)`: the
            // table is enough here, the key is on the line already.
            let table = event.detail.split(" (").next().unwrap_or_default();
            let table = table.trim_start_matches("left the filter; deleted ");
            format!("{} in {table}{}", event.what, after(latency))
        }
        Action::Echo => {
            format!("echo: {source} reported the host's own write back; dropped, not sent again")
        }
        Action::Parked => format!(
            "parked in the error queue{}: {}",
            after(latency),
            event.detail
        ),
        Action::Waiting => format!("waiting: {}", event.detail),
        Action::Filtered | Action::Skipped => {
            format!("{}{}: {}", event.what, after(latency), event.detail)
        }
        other => format!("{other}: {}", shorten(&event.detail, 160)),
    };
    line_at(
        start,
        at,
        "engine",
        &format!(
            "{:<15} {:<18}  {:<13} {what}",
            event.map,
            direction(event.direction),
            event.key
        ),
    );
}

fn after(latency: Option<Duration>) -> String {
    latency.map_or_else(String::new, |l| format!(", {} after the change", millis(l)))
}

/// A duration as people read it: `84 ms`, `1.27 s`.
pub fn millis(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{} ms", duration.as_millis())
    } else {
        format!("{:.2} s", duration.as_secs_f64())
    }
}

fn shorten(text: &str, most: usize) -> String {
    match text.char_indices().nth(most) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// `name "Contoso", creditlimit 10.00`: the named fields of `row`.
pub fn fields(row: &Row, names: &[&str]) -> String {
    names
        .iter()
        .map(|name| format!("{name} {}", value(row.get(*name))))
        .collect::<Vec<_>>()
        .join(", ")
}

fn value(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "(empty)".into(),
        Some(Value::String(text)) => format!("{text:?}"),
        Some(other) => other.to_string(),
    }
}

/// One row of a counts table.
#[derive(Debug, Clone)]
pub struct StatsRow {
    /// The map.
    pub map: String,
    /// The direction.
    pub direction: Direction,
    /// Its counters.
    pub stats: FlowStats,
}

/// The counters of every map and direction that did anything, as a table.
pub fn stats_table(rows: &[StatsRow]) {
    println!(
        "  {:<16} {:<18}  {:>7} {:>7} {:>7} {:>7} {:>9} {:>6}",
        "map", "direction", "written", "deleted", "echoes", "skipped", "conflicts", "parked"
    );
    for row in rows {
        let s = row.stats;
        if s.captured == 0 && s.written == 0 && s.deleted == 0 && s.conflicts == 0 {
            continue;
        }
        println!(
            "  {:<16} {:<18}  {:>7} {:>7} {:>7} {:>7} {:>9} {:>6}",
            row.map,
            direction(row.direction),
            s.written,
            s.deleted,
            s.echoes,
            s.skipped,
            s.conflicts,
            s.parked
        );
    }
}

/// `45 ms to 1.30 s (median 120 ms)`.
pub fn spread(latencies: &[Duration]) -> String {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    match (sorted.first(), sorted.last()) {
        (Some(low), Some(high)) => format!(
            "{} to {} (median {})",
            millis(*low),
            millis(*high),
            millis(sorted[sorted.len() / 2])
        ),
        _ => "none".into(),
    }
}
