//! What `map status` shows of each map: its state and since when, its
//! backlog per direction, the oldest queued change, what it waits for, and
//! its last error. [`statuses`] reads it from a checkpoint store alone (a
//! stopped host's data directory); [`RunningEngine::statuses`] adds what
//! only the running host knows (an unreachable target, a parent that does
//! not run).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::checkpoint::{CheckpointError, Checkpoints, Direction, Lifecycle, MapRecord};
use crate::map::{MapPlan, Side};

use super::RunningEngine;
use super::pipeline::idle_parent;
use super::push::Push;

/// Changes queued per direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Backlog {
    /// Captured on the left, waiting to be written on the right.
    pub left_to_right: usize,
    /// Captured on the right, waiting to be written on the left.
    pub right_to_left: usize,
}

/// One map's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MapStatus {
    /// The map.
    pub name: String,
    /// The version of its definition the host runs (or last ran): each
    /// distinct `[[maps]]` entry is numbered from 1.
    #[serde(default)]
    pub version: Option<u32>,
    /// `not-running`, `initializing`, `running`, `paused`, `resuming`,
    /// `stopped` or `failed`.
    #[schema(value_type = String)]
    pub state: Lifecycle,
    /// Since when (RFC 3339); empty for a map never started.
    pub since: String,
    /// Why it is in this state (a failure's reason).
    pub reason: Option<String>,
    /// False for a map the store knows that the config no longer has: it
    /// is reported, not dropped; its queues stay.
    pub in_config: bool,
    /// How it syncs: `async`, or for a live map `live from Dataverse,
    /// async from finops` (finops documents no synchronous outbound
    /// hook); empty for a map the config no longer has.
    #[serde(default)]
    pub mode: String,
    /// The initial sync it was started with (`left`, `right`, `none`).
    pub initial_sync: Option<String>,
    /// The maps it depends on.
    pub depends_on: Vec<String>,
    /// Changes queued per direction.
    pub backlog: Backlog,
    /// When the oldest change still waiting to be written (not parked)
    /// was captured (RFC 3339): the map's true lag.
    pub oldest_queued: Option<String>,
    /// What it waits for: an unreachable target system, or a map it
    /// depends on that does not run.
    pub waits_for: Option<String>,
    /// The last error it met.
    pub last_error: Option<String>,
    /// How each side that flows is captured: pushed or polled, and how
    /// often the system's polling budget lets it poll. Only a running host
    /// knows it; empty when read from a stopped host's store.
    #[serde(default)]
    pub capture: Vec<CaptureStatus>,
}

/// How one side of a map is captured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CaptureStatus {
    /// `left` or `right`.
    pub side: String,
    /// The system it reads.
    pub system: String,
    /// `pushed` (webhook steps or data events, polling only as the
    /// catch-all), `polled`, or `polled (push refused: why)`.
    pub mode: String,
    /// The interval the config asks for (`poll_interval`, or
    /// `catch_all_interval` when pushed), as `humantime` writes it.
    pub configured: String,
    /// The interval the system's polling budget allows (at least
    /// `configured`).
    pub effective: String,
    /// Capture tasks sharing the system's budget.
    pub pollers: usize,
    /// Polls all of them may make in 5 minutes
    /// (`[engine] polling_share` of `[systems.X] request_limit`).
    pub budget_per_5_min: u32,
}

impl CaptureStatus {
    /// Whether the budget stretches the configured interval.
    pub fn stretched(&self) -> bool {
        self.configured != self.effective
    }
}

/// How `plan` syncs, in words.
fn mode_of(plan: &MapPlan) -> String {
    match plan.mode {
        crate::map::SyncMode::Async => "async".into(),
        crate::map::SyncMode::Live { fallback } => format!(
            "live from Dataverse (a save commits once finops has it; {} while the map does not run), async from finops (it has no synchronous hook)",
            match fallback {
                crate::map::LiveFallback::Fail => "saves fail",
                crate::map::LiveFallback::Queue => "saves are queued",
            }
        ),
    }
}

fn status(
    store: &Checkpoints,
    name: &str,
    record: Option<&MapRecord>,
    plan: Option<&MapPlan>,
) -> Result<MapStatus, CheckpointError> {
    let backlog = Backlog {
        left_to_right: store.queued(name, Direction::LeftToRight),
        right_to_left: store.queued(name, Direction::RightToLeft),
    };
    let mut oldest = None;
    for direction in [Direction::LeftToRight, Direction::RightToLeft] {
        if let Some(captured) = store
            .oldest_queued(name, direction)?
            .and_then(|o| o.captured)
        {
            oldest = Some(
                oldest.map_or(captured, |known: chrono::DateTime<chrono::Utc>| {
                    known.min(captured)
                }),
            );
        }
    }
    Ok(MapStatus {
        name: name.to_owned(),
        version: store.map_version(name),
        state: record.map_or(Lifecycle::NotRunning, |r| r.state),
        since: record.map(|r| r.since.clone()).unwrap_or_default(),
        reason: record.and_then(|r| r.reason.clone()),
        in_config: plan.is_some(),
        mode: plan.map(mode_of).unwrap_or_default(),
        initial_sync: record.and_then(|r| r.initial_sync.clone()),
        depends_on: plan.map(|p| p.depends_on.clone()).unwrap_or_default(),
        backlog,
        oldest_queued: oldest.map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        waits_for: None,
        last_error: record.and_then(|r| r.last_error.clone()),
        capture: Vec::new(),
    })
}

/// The status of every map of `maps` (the config's, in its order), then of
/// every map the store knows that `maps` does not have.
pub fn statuses(store: &Checkpoints, maps: &[MapPlan]) -> Result<Vec<MapStatus>, CheckpointError> {
    let records = store.map_records()?;
    let record = |name: &str| records.iter().find(|(n, _)| n == name).map(|(_, r)| r);
    let mut all = Vec::new();
    for plan in maps {
        all.push(status(store, &plan.name, record(&plan.name), Some(plan))?);
    }
    for (name, record) in &records {
        if !maps.iter().any(|plan| &plan.name == name) {
            all.push(status(store, name, Some(record), None)?);
        }
    }
    Ok(all)
}

impl RunningEngine {
    /// The status of every map: the config's, then those the store knows
    /// that the config no longer has.
    pub fn statuses(&self) -> Result<Vec<MapStatus>, CheckpointError> {
        let mut all = statuses(&self.shared.store, &self.shared.plan().maps)?;
        for status in &mut all {
            let Some(runtime) = self.shared.map(&status.name) else {
                continue;
            };
            // The running map's own view, written through to the store.
            let record = runtime.record();
            status.state = record.state;
            status.since = record.since;
            status.reason = record.reason;
            if !record.state.is_active() {
                continue;
            }
            status.capture = self.capture_statuses(&runtime);
            // A target that fails every attempt now (its requests still
            // retrying), or whose last batch failed after its retries.
            let failing = runtime.directions().find_map(|direction| {
                let system = &runtime.plan.side(Side::source_of(direction).other()).system;
                let failing = self.shared.systems.get(system)?.failing()?;
                Some((system.clone(), failing.since, failing.last))
            });
            let outage = failing.or_else(|| {
                runtime
                    .outage()
                    .map(|outage| (outage.system, outage.since, outage.error))
            });
            let mut waits = Vec::new();
            if let Some((system, since, error)) = outage {
                waits.push(format!("waiting for {system} since {since}: {error}"));
            }
            for direction in runtime.directions() {
                if let Some(hold) = self.shared.store.queue_hold(&status.name, direction)? {
                    waits.push(format!(
                        "capture {direction} waits: {}",
                        super::capture::describe(&hold)
                    ));
                }
            }
            if let Some((parent, state)) = idle_parent(&self.shared, &runtime) {
                waits.push(format!(
                    "waiting for map `{parent}` ({}): its rows are looked up",
                    state.lifecycle()
                ));
            }
            status.waits_for = (!waits.is_empty()).then(|| waits.join("; "));
        }
        Ok(all)
    }
}

impl RunningEngine {
    fn capture_statuses(&self, runtime: &super::runtime::MapRuntime) -> Vec<CaptureStatus> {
        self.polling(runtime.name())
            .into_iter()
            .map(|(side, polling)| {
                let pushed = super::capture::pushed(
                    &self.shared,
                    runtime,
                    side,
                    self.webhook_addr.is_some(),
                );
                let mode = match runtime.push_state(side) {
                    _ if pushed => "pushed".to_owned(),
                    Push::Refused(why) => format!("polled (push refused: {why})"),
                    _ => "polled".to_owned(),
                };
                CaptureStatus {
                    side: side.name().to_owned(),
                    system: polling.system,
                    mode,
                    configured: humantime::format_duration(polling.configured).to_string(),
                    effective: humantime::format_duration(polling.effective).to_string(),
                    pollers: polling.pollers,
                    budget_per_5_min: polling.budget_per_5_min,
                }
            })
            .collect()
    }
}

/// A lookup of one map into the rows another map syncs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LookupEdge {
    /// The field holding the lookup (as the map's right side names it).
    pub field: String,
    /// The map that syncs the table looked up.
    pub map: String,
}

/// One map of the dependency graph: its state, the maps it depends on and
/// its lookups (dual-write's "Show related table maps").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MapNode {
    /// The map.
    pub name: String,
    /// Its state.
    #[schema(value_type = String)]
    pub state: Lifecycle,
    /// The maps it depends on (`depends_on`).
    pub depends_on: Vec<String>,
    /// Its lookups into other maps' rows.
    pub lookups: Vec<LookupEdge>,
}

/// The dependency graph of `maps` (in dependency order), each map with its
/// state from `statuses`.
pub fn dependency_graph(maps: &[MapPlan], statuses: &[MapStatus]) -> Vec<MapNode> {
    maps.iter()
        .map(|plan| MapNode {
            name: plan.name.clone(),
            state: statuses
                .iter()
                .find(|s| s.name == plan.name)
                .map_or(Lifecycle::NotRunning, |s| s.state),
            depends_on: plan.depends_on.clone(),
            lookups: super::shape::mappings(plan)
                .filter_map(|mapping| {
                    let lookup = mapping.lookup.as_ref()?;
                    Some(LookupEdge {
                        field: mapping.right.clone().unwrap_or_default(),
                        map: lookup.map.clone()?,
                    })
                })
                .collect(),
        })
        .collect()
}

/// The graph in Graphviz DOT: a node per map labelled with its state, a
/// solid edge per dependency and a dashed one per lookup, child to parent.
pub fn to_dot(nodes: &[MapNode]) -> String {
    let quote = |text: &str| format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""));
    let mut dot = String::from("digraph maps {\n  rankdir=BT;\n");
    for node in nodes {
        let label = format!("{}\\n{}", node.name, node.state);
        dot.push_str(&format!(
            "  {} [label={}];\n",
            quote(&node.name),
            quote(&label)
        ));
    }
    for node in nodes {
        for parent in &node.depends_on {
            dot.push_str(&format!("  {} -> {};\n", quote(&node.name), quote(parent)));
        }
        for lookup in &node.lookups {
            if node.depends_on.contains(&lookup.map) {
                continue;
            }
            dot.push_str(&format!(
                "  {} -> {} [style=dashed, label={}];\n",
                quote(&node.name),
                quote(&lookup.map),
                quote(&lookup.field)
            ));
        }
    }
    dot.push_str("}\n");
    dot
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_the_config_dropped_is_reported_not_dropped() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = Checkpoints::open(dir.path()).expect("store");
        store
            .set_map_record("gone", &MapRecord::new(Lifecycle::Paused))
            .expect("written");
        let all = statuses(&store, &[]).expect("statuses");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].name, "gone");
        assert_eq!(all[0].state, Lifecycle::Paused);
        assert!(!all[0].in_config);
    }

    #[test]
    fn dot_quotes_names_and_draws_each_dependency() {
        let nodes = vec![
            MapNode {
                name: "legal-entities".into(),
                state: Lifecycle::Running,
                depends_on: vec![],
                lookups: vec![],
            },
            MapNode {
                name: "cust\"omers".into(),
                state: Lifecycle::Paused,
                depends_on: vec!["legal-entities".into()],
                lookups: vec![LookupEdge {
                    field: "msdyn_company".into(),
                    map: "legal-entities".into(),
                }],
            },
        ];
        let dot = to_dot(&nodes);
        assert!(
            dot.contains("\"cust\\\"omers\" -> \"legal-entities\";"),
            "{dot}"
        );
        assert!(dot.contains("paused"), "{dot}");
        assert!(
            !dot.contains("dashed"),
            "a lookup along a dependency is drawn once: {dot}"
        );
    }
}
