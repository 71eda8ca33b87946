//! Hot swap: a running engine takes new or changed map definitions
//! ([`RunningEngine::apply_maps`]), a plugin version for one map
//! ([`RunningEngine::swap_plugin`]) or an earlier version of a map
//! ([`RunningEngine::rollback_map`]) without restarting, and without
//! touching the other maps.
//!
//! Every operation first builds the whole config again with the maps
//! merged in, against the catalogue and registry it was built with: a
//! problem (the codes of `dualwrite map validate`) refuses the whole
//! operation and nothing changes. Each changed map's chain is loaded
//! before any map moves. Then each map takes its new version between
//! batches: its supervisor ends its tasks once the batches in flight have
//! landed (on the version they started with) and starts them again on the
//! new one, whose number stamps every line from then on
//! ([`Checkpoints::use_map_version`](crate::checkpoint::Checkpoints)).
//! A map's tables and systems do not change on a running host: its
//! cursors and queues are theirs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::checkpoint::{CheckpointError, Lifecycle, MapRecord, definition_sha256};
use crate::config::{BuildOptions, Config, MapConfig, PluginRegistry};
use crate::map::{Catalogue, MapPlan, Problem};

use super::RunningEngine;
use super::plugins::Chain;
use super::runtime::{GRACE, MapRuntime};
use super::supervise::{self, Order, Swap};

/// Reads an environment variable.
pub type Env = dyn Fn(&str) -> Option<String> + Send + Sync;

/// The config an engine was built from: what a hot swap merges maps into
/// and builds again.
pub struct ConfigSource {
    /// The config as parsed.
    pub config: Config,
    /// Its file, as problems name it.
    pub file: String,
    /// The folder its relative paths start from.
    pub base_dir: PathBuf,
    /// The catalogue it was checked against.
    pub catalogue: Arc<dyn Catalogue + Send + Sync>,
    /// Reads an environment variable (secrets), as when it was built.
    pub env: Arc<Env>,
}

impl std::fmt::Debug for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigSource")
            .field("file", &self.file)
            .field("base_dir", &self.base_dir)
            .finish_non_exhaustive()
    }
}

/// Why a swap changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    /// The merged config does not validate.
    #[error("the maps do not validate ({} problems); nothing changed:\n{}", .0.len(), list(.0))]
    Invalid(Vec<Problem>),
    /// The swap cannot be made; the reason says what to do.
    #[error("{0}; nothing changed")]
    Refused(String),
    /// No such map.
    #[error("no map `{map}` runs on this host")]
    UnknownMap {
        /// The name asked for.
        map: String,
    },
    /// The engine was started without its config.
    #[error(
        "this engine was started without its config, so it cannot validate a swap: start the host with `dualwrite run -c FILE`"
    )]
    NoSource,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] CheckpointError),
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where maps applied to a running engine come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// An admin (the API, an import): kept past a restart as applied.
    Admin,
    /// The config file (`run --watch`): the file's entries run.
    ConfigFile,
}

/// What became of one map.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Swapped {
    /// The map.
    pub map: String,
    /// What the apply did to it.
    pub change: Change,
    /// The version it ran before (none for a map added).
    pub from: Option<u32>,
    /// The version it runs now (or would, in a dry run).
    pub to: Option<u32>,
    /// The plugins of its chain, `name@version`.
    pub plugins: Vec<String>,
    /// The fields of the definition that changed.
    pub diff: Vec<Difference>,
}

/// What an apply did to a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// A map the config did not have.
    Added,
    /// A new version of a map.
    Changed,
    /// The same definition and plugins as it runs.
    Unchanged,
}

/// One field of a definition that differs between two versions.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Difference {
    /// Where: `fields`, `plugins[0].settings.mode`, …
    pub path: String,
    /// Before (none: added).
    #[schema(value_type = Object)]
    pub before: Option<Value>,
    /// After (none: removed).
    #[schema(value_type = Object)]
    pub after: Option<Value>,
}

/// The fields that differ from `before` to `after`: objects key by key,
/// lists of plain values as items removed and added, other lists item by
/// item.
pub fn diff(before: &Value, after: &Value) -> Vec<Difference> {
    let mut out = Vec::new();
    walk("", before, after, &mut out);
    out
}

fn walk(path: &str, before: &Value, after: &Value, out: &mut Vec<Difference>) {
    let at = |key: &str| match path.is_empty() {
        true => key.to_owned(),
        false => format!("{path}.{key}"),
    };
    match (before, after) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => walk(&at(key), x, y, out),
                    (x, y) => out.push(Difference {
                        path: at(key),
                        before: x.cloned(),
                        after: y.cloned(),
                    }),
                }
            }
        }
        (Value::Array(a), Value::Array(b))
            if a.iter().chain(b).all(|v| !v.is_object() && !v.is_array()) =>
        {
            for gone in a.iter().filter(|v| !b.contains(v)) {
                out.push(Difference {
                    path: path.to_owned(),
                    before: Some(gone.clone()),
                    after: None,
                });
            }
            for new in b.iter().filter(|v| !a.contains(v)) {
                out.push(Difference {
                    path: path.to_owned(),
                    before: None,
                    after: Some(new.clone()),
                });
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for index in 0..a.len().max(b.len()) {
                let here = format!("{path}[{index}]");
                match (a.get(index), b.get(index)) {
                    (Some(x), Some(y)) => walk(&here, x, y, out),
                    (x, y) => out.push(Difference {
                        path: here,
                        before: x.cloned(),
                        after: y.cloned(),
                    }),
                }
            }
        }
        (a, b) if a != b => out.push(Difference {
            path: path.to_owned(),
            before: Some(a.clone()),
            after: Some(b.clone()),
        }),
        _ => {}
    }
}

/// A map ready to take its new version.
struct Prepared {
    plan: MapPlan,
    chain: Option<Chain>,
    current: Option<Arc<MapRuntime>>,
}

impl RunningEngine {
    /// Validates `maps` merged into the running config and, unless
    /// `dry_run`, swaps each changed map to its new version (and starts
    /// each new enabled map); between batches, the others untouched.
    /// The versions it puts in force are kept past a restart while the
    /// config file's entries of those maps stay as they are
    /// ([`config::in_force`](crate::config::in_force)).
    pub async fn apply_maps(
        &self,
        maps: Vec<MapConfig>,
        dry_run: bool,
    ) -> Result<Vec<Swapped>, SwapError> {
        self.apply(maps, dry_run, Origin::Admin).await
    }

    /// [`RunningEngine::apply_maps`] for maps read from the config file
    /// itself (`dualwrite run --watch`): their entries are what runs, so
    /// they leave no applied record.
    pub async fn apply_config_file(&self, maps: Vec<MapConfig>) -> Result<Vec<Swapped>, SwapError> {
        self.apply(maps, false, Origin::ConfigFile).await
    }

    async fn apply(
        &self,
        maps: Vec<MapConfig>,
        dry_run: bool,
        origin: Origin,
    ) -> Result<Vec<Swapped>, SwapError> {
        let _one = self.control.serialize().await;
        let mut source = self.shared.source.lock().await;
        let Some(source) = source.as_mut() else {
            return Err(SwapError::NoSource);
        };
        let mut merged = source.config.clone();
        merged.merge_maps(&maps);
        let plan = merged
            .build(&BuildOptions {
                file: source.file.clone(),
                base_dir: source.base_dir.clone(),
                catalogue: &*source.catalogue,
                env: &*source.env,
                registry: PluginRegistry::Store(&self.shared.store),
            })
            .map_err(|problems| {
                SwapError::Invalid(problems.into_iter().filter(Problem::is_error).collect())
            })?;
        let mut prepared = Vec::new();
        let mut report = Vec::new();
        for map in &maps {
            let Some(next) = plan.map(&map.name).cloned() else {
                continue;
            };
            let current = self.shared.map(&map.name);
            let ids = super::registry_ids(&next);
            if let Some(current) = &current {
                same_tables(&current.plan, &next)?;
                let unchanged = current.plan.definition == next.definition
                    && super::registry_ids(&current.plan) == ids;
                if unchanged {
                    report.push(Swapped {
                        map: next.name.clone(),
                        change: Change::Unchanged,
                        from: self.shared.store.map_version(&next.name),
                        to: self.shared.store.map_version(&next.name),
                        plugins: chain_ids(current),
                        diff: Vec::new(),
                    });
                    continue;
                }
            }
            let chain = match (&self.shared.plugins, next.plugins.is_empty()) {
                (_, true) => None,
                (Some(runtime), false) => Some(Chain::load(runtime, &next).map_err(|error| {
                    SwapError::Refused(format!("map `{}`: {error}", next.name))
                })?),
                (None, false) => {
                    return Err(SwapError::Refused(format!(
                        "map `{}` has plugins, and this host started without a plugin runtime",
                        next.name
                    )));
                }
            };
            prepared.push(Prepared {
                plan: next,
                chain,
                current,
            });
        }
        let mut swaps = Vec::new();
        for Prepared {
            plan: next,
            chain,
            current,
        } in prepared
        {
            let before = current.as_ref().map(|c| c.plan.definition.clone());
            let from = current
                .as_ref()
                .and_then(|_| self.shared.store.map_version(&next.name));
            let to = match dry_run {
                true => None,
                false => Some(
                    self.shared
                        .store
                        .store_map_version(&next.name, &next.definition)?,
                ),
            };
            report.push(Swapped {
                map: next.name.clone(),
                change: match current {
                    Some(_) => Change::Changed,
                    None => Change::Added,
                },
                from,
                to,
                plugins: chain.as_ref().map(Chain::ids).unwrap_or_default(),
                diff: diff(before.as_ref().unwrap_or(&Value::Null), &next.definition),
            });
            swaps.push((next, chain, current, to));
        }
        if dry_run {
            return Ok(report);
        }
        // What the config file's entry of each map was: an applied
        // record's, else the running config's (the file's, or the map's
        // entry as the file gave it).
        let mut entries = Vec::new();
        for (next, ..) in &swaps {
            let entry = match (origin, self.shared.store.applied_map(&next.name)?) {
                (Origin::ConfigFile, _) => None,
                (Origin::Admin, Some(record)) => Some(record.config_sha256),
                (Origin::Admin, None) => Some(
                    source
                        .config
                        .maps
                        .iter()
                        .find(|m| m.name == next.name)
                        .map(|m| definition_sha256(&m.definition)),
                ),
            };
            entries.push(entry);
        }
        self.shared.set_plan(plan);
        source.config = merged;
        for ((next, chain, current, to), entry) in swaps.into_iter().zip(entries) {
            let version = to.unwrap_or_default();
            match entry {
                Some(config_sha256) => self.shared.store.set_applied_map(
                    &next.name,
                    version,
                    &next.definition,
                    config_sha256,
                )?,
                None => self.shared.store.clear_applied_map(&next.name)?,
            }
            match current {
                Some(current) => {
                    let runtime =
                        Arc::new(current.next_version(next, Ok(chain), &self.shared.metrics));
                    self.swap_runtime(runtime, version).await;
                }
                None => self.add_map(next, chain, version).await?,
            }
        }
        Ok(report)
    }

    /// Puts `runtime` in its map's place: through its supervisor between
    /// batches when its tasks run, else at once.
    async fn swap_runtime(&self, runtime: Arc<MapRuntime>, version: u32) {
        let name = runtime.name().to_owned();
        if let Some(sender) = self.control.sender(&name) {
            let (done, started) = tokio::sync::oneshot::channel();
            let order = Order::Swap(Box::new(Swap {
                next: runtime.clone(),
                version,
                done,
            }));
            if sender.send(order).await.is_ok() {
                if tokio::time::timeout(GRACE + Duration::from_secs(5), started)
                    .await
                    .is_err()
                {
                    tracing::warn!(map = %name, "The map's tasks took long to start on the new version.");
                }
                return;
            }
        }
        supervise::activate(&self.shared, &runtime, version);
    }

    /// Starts a map the config did not have (when enabled).
    async fn add_map(
        &self,
        plan: MapPlan,
        chain: Option<Chain>,
        version: u32,
    ) -> Result<(), SwapError> {
        let store = &self.shared.store;
        let record = MapRecord::new(match plan.enabled {
            true => Lifecycle::Initializing,
            false => Lifecycle::NotRunning,
        });
        store.set_map_record(&plan.name, &record)?;
        let runtime = Arc::new(MapRuntime::new(
            plan,
            Ok(chain),
            store.clone(),
            record,
            &self.shared.metrics,
        ));
        supervise::activate(&self.shared, &runtime, version);
        if runtime.state().lifecycle().is_active() {
            self.control.spawn(&self.shared, runtime).await;
        }
        Ok(())
    }

    /// Swaps the plugin step of `map` that runs plugin `name` to the
    /// registry's `name@version` (`reference`): a new version of the map.
    pub async fn swap_plugin(&self, map: &str, reference: &str) -> Result<Swapped, SwapError> {
        let parsed: crate::registry::PluginRef = reference
            .parse()
            .map_err(|error: String| SwapError::Refused(error))?;
        let runtime = self.shared.map(map).ok_or_else(|| SwapError::UnknownMap {
            map: map.to_owned(),
        })?;
        let mut definition = runtime.plan.definition.clone();
        let steps: Vec<usize> = runtime
            .plan
            .plugins
            .iter()
            .enumerate()
            .filter(|(_, step)| step.inspection.name == parsed.name)
            .map(|(index, _)| index)
            .collect();
        if steps.is_empty() {
            let names: Vec<String> = runtime
                .plan
                .plugins
                .iter()
                .map(|s| s.inspection.id())
                .collect();
            return Err(SwapError::Refused(format!(
                "map `{map}` runs no plugin `{}` (it runs: {}); add it to the map with `dualwrite map apply`",
                parsed.name,
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                }
            )));
        }
        for index in steps {
            let Some(step) = definition
                .get_mut("plugins")
                .and_then(|p| p.get_mut(index))
                .and_then(Value::as_object_mut)
            else {
                return Err(SwapError::Refused(format!(
                    "map `{map}`: its definition has no plugins[{index}]"
                )));
            };
            step.remove("path");
            step.insert("plugin".into(), Value::String(parsed.to_string()));
        }
        let config = MapConfig::from_definition(&definition)
            .map_err(|error| SwapError::Refused(format!("map `{map}`: {error}")))?;
        self.apply_one(config).await
    }

    /// Swaps `map` back to the definition of version `to` (default: the
    /// one before the current), which runs as the next version number.
    pub async fn rollback_map(&self, map: &str, to: Option<u32>) -> Result<Swapped, SwapError> {
        let store = &self.shared.store;
        if self.shared.map(map).is_none() {
            return Err(SwapError::UnknownMap {
                map: map.to_owned(),
            });
        }
        let versions = store.map_versions(map)?;
        let current = store.map_version(map).unwrap_or_default();
        let target = match to {
            Some(to) => versions.iter().find(|v| v.version == to),
            None => versions.iter().rev().find(|v| v.version < current),
        };
        let Some(target) = target else {
            let known: Vec<String> = versions.iter().map(|v| v.version.to_string()).collect();
            return Err(SwapError::Refused(format!(
                "map `{map}` has no version {} to roll back to (it has {}; `dualwrite map history {map}` lists them)",
                to.map_or("before the current".into(), |v| v.to_string()),
                known.join(", ")
            )));
        };
        let config = MapConfig::from_definition(&target.definition).map_err(|error| {
            SwapError::Refused(format!("map `{map}` version {}: {error}", target.version))
        })?;
        self.apply_one(config).await
    }

    async fn apply_one(&self, config: MapConfig) -> Result<Swapped, SwapError> {
        let name = config.name.clone();
        self.apply_maps(vec![config], false)
            .await?
            .into_iter()
            .next()
            .ok_or(SwapError::UnknownMap { map: name })
    }
}

/// Refuses a new version that moves the map to other tables or systems.
pub(crate) fn same_tables(current: &MapPlan, next: &MapPlan) -> Result<(), SwapError> {
    for (side, a, b) in [
        ("left", &current.left, &next.left),
        ("right", &current.right, &next.right),
    ] {
        if a.system != b.system || a.table != b.table {
            return Err(SwapError::Refused(format!(
                "map `{}` would move its {side} side from {}/{} to {}/{}: a map's tables do not change on a running host (its cursors and queues are theirs); give the new one another name",
                current.name, a.system, a.table, b.system, b.table
            )));
        }
    }
    Ok(())
}

fn chain_ids(runtime: &MapRuntime) -> Vec<String> {
    runtime.chain.as_ref().map(Chain::ids).unwrap_or_default()
}
