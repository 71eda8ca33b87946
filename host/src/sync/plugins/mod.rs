//! A map's plugin chain run over a batch of mapped rows: each step is one
//! call for the rows still alive, in config order. Rows cross as the
//! target's fields; JSON numbers with a fraction cross as exact decimals.
//!
//! The batch is converted once into plugin [`Rows`] and passes from step to
//! step in that form: each step is sent only the fields its plugin reads
//! (asked once per step and direction when the chain loads), and a
//! transform's changes are written into the rows. Only the cells a plugin
//! changed are written back into the engine's rows at the end ([`json`]).

pub mod json;

use std::sync::Arc;

use crate::checkpoint::Direction;
use crate::map::{self, MapPlan, PluginKind};
use crate::plugin::{self, Context, Interface, Plugin, Rows, Runtime, Verdict};

use super::SyncError;
use super::shape::Row;

/// What became of a row in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Kept, possibly changed.
    Keep,
    /// Filtered out by plugin `NAME@VERSION` (the first), with its reason.
    Skip(String, String),
    /// Failed in plugin `NAME@VERSION` (the first): park it with this
    /// message.
    Fail(String, String),
}

struct Step {
    plugin: Arc<Plugin>,
    kind: PluginKind,
    direction: map::Direction,
    settings: Vec<(String, String)>,
    /// The fields the step reads left to right and right to left (`None`:
    /// every field), as its plugin answered when the chain loaded.
    reads: [Option<Vec<String>>; 2],
}

/// The loaded plugins of one map.
pub struct Chain {
    steps: Vec<Step>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.steps.iter().map(|s| s.plugin.id()))
            .finish()
    }
}

impl Chain {
    /// Loads and prewarms every plugin of `map`, and asks each which fields
    /// it reads in the directions it runs in. A plugin that cannot answer
    /// is sent every field (and logged).
    pub fn load(runtime: &Runtime, map: &MapPlan) -> Result<Chain, SyncError> {
        let mut steps = Vec::new();
        for step in &map.plugins {
            let plugin = Plugin::load(runtime, &step.shown(), &step.bytes, step.limits.clone())
                .map_err(|error| SyncError::Setup {
                    detail: format!("map `{}`: plugin {}: {error}", map.name, step.shown()),
                })?;
            let kind = step.kind.unwrap_or(if plugin.has_transform() {
                PluginKind::Transform
            } else {
                PluginKind::Filter
            });
            let _ = plugin.prewarm();
            let settings: Vec<(String, String)> = step
                .settings
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let mut reads = [None, None];
            for direction in [Direction::LeftToRight, Direction::RightToLeft] {
                if !runs_in(step.direction, direction) {
                    continue;
                }
                let context = context(&map.name, direction, None, &settings);
                reads[index(direction)] = match plugin.reads(interface(kind), &context) {
                    Ok(call) => call.result,
                    Err(error) => {
                        tracing::warn!(map = %map.name, plugin = %plugin.id(), %error, "the plugin did not say which fields it reads; it is sent every field");
                        None
                    }
                };
            }
            steps.push(Step {
                plugin: Arc::new(plugin),
                kind,
                direction: step.direction,
                settings,
                reads,
            });
        }
        Ok(Chain { steps })
    }

    /// The plugins of the chain, `name@version`, in order.
    pub fn ids(&self) -> Vec<String> {
        self.steps
            .iter()
            .map(|step| step.plugin.id().to_owned())
            .collect()
    }

    /// This chain with every step sent every field, as if no plugin named
    /// the fields it reads: what projection saves, for measuring it.
    pub fn sending_every_field(mut self) -> Chain {
        for step in &mut self.steps {
            step.reads = [None, None];
        }
        self
    }

    /// The plugins quarantined now (`NAME@VERSION`), each with its last
    /// failure.
    pub fn quarantined(&self) -> Vec<(String, String)> {
        self.steps
            .iter()
            .filter_map(|step| {
                let health = step.plugin.health();
                health.quarantined.then(|| {
                    (
                        step.plugin.id().to_owned(),
                        health
                            .last_failure
                            .unwrap_or_else(|| "no failure recorded".into()),
                    )
                })
            })
            .collect()
    }

    /// Whether no step runs in `direction`.
    pub fn is_empty_for(&self, direction: Direction) -> bool {
        !self.steps.iter().any(|s| runs_in(s.direction, direction))
    }

    /// Runs the chain over `rows` (each with its company), changing kept
    /// rows in place; one fate per row.
    pub fn run(
        &self,
        map: &str,
        direction: Direction,
        rows: &mut [(Option<String>, Row)],
    ) -> Vec<Fate> {
        let mut flat = json::from_maps(rows.iter().map(|(_, row)| row));
        let companies: Vec<Option<String>> =
            rows.iter().map(|(company, _)| company.clone()).collect();
        let fates = self.run_rows(map, direction, &mut flat, &companies);
        json::write_back(&flat, rows.iter_mut().map(|(_, row)| row), &fates);
        fates
    }

    /// Runs the chain over `rows` (row `i` of company `companies[i]`, when
    /// given), writing the transforms' changes into them; one fate per row.
    pub fn run_rows(
        &self,
        map: &str,
        direction: Direction,
        rows: &mut Rows,
        companies: &[Option<String>],
    ) -> Vec<Fate> {
        let mut fates = vec![Fate::Keep; rows.len()];
        for step in self
            .steps
            .iter()
            .filter(|s| runs_in(s.direction, direction))
        {
            let alive: Vec<usize> = (0..rows.len())
                .filter(|&i| fates[i] == Fate::Keep)
                .collect();
            if alive.is_empty() {
                break;
            }
            match self.call(step, map, direction, rows, companies, &alive) {
                Ok(results) => {
                    for (index, fate) in alive.into_iter().zip(results) {
                        fates[index] = fate;
                    }
                }
                // The batch call failed as a whole: find the row at fault
                // by running each row alone.
                Err(batch_error) if alive.len() == 1 => {
                    fates[alive[0]] = Fate::Fail(
                        step.plugin.id().to_owned(),
                        format!("plugin {}: {batch_error}", step.plugin.id()),
                    );
                }
                Err(_) => {
                    for index in alive {
                        fates[index] =
                            match self.call(step, map, direction, rows, companies, &[index]) {
                                Ok(mut one) => one.pop().unwrap_or(Fate::Keep),
                                Err(error) => Fate::Fail(
                                    step.plugin.id().to_owned(),
                                    format!("plugin {}: {error}", step.plugin.id()),
                                ),
                            };
                    }
                }
            }
        }
        fates
    }

    fn call(
        &self,
        step: &Step,
        map: &str,
        direction: Direction,
        rows: &mut Rows,
        companies: &[Option<String>],
        which: &[usize],
    ) -> Result<Vec<Fate>, plugin::PluginError> {
        let mut of_rows = which
            .iter()
            .map(|&i| companies.get(i).and_then(Option::as_deref));
        let first = of_rows.next().flatten();
        let company = of_rows.all(|c| c == first).then_some(first).flatten();
        let context = context(map, direction, company, &step.settings);
        let reads = step.reads[index(direction)].as_deref();
        let verdicts = match step.kind {
            PluginKind::Filter => step.plugin.filter_rows(&context, rows, which, reads)?,
            PluginKind::Transform => step.plugin.transform_rows(&context, rows, which, reads)?,
        };
        Ok(verdicts
            .result
            .into_iter()
            .map(|verdict| match verdict {
                Verdict::Keep => Fate::Keep,
                Verdict::Skip(reason) => Fate::Skip(step.plugin.id().to_owned(), reason),
                Verdict::Fail(message) => Fate::Fail(step.plugin.id().to_owned(), message),
            })
            .collect())
    }
}

fn context(
    map: &str,
    direction: Direction,
    company: Option<&str>,
    settings: &[(String, String)],
) -> Context {
    Context {
        table_map: map.to_owned(),
        direction: match direction {
            Direction::LeftToRight => plugin::Direction::LeftToRight,
            Direction::RightToLeft => plugin::Direction::RightToLeft,
        },
        company: company.map(str::to_owned),
        settings: settings.to_vec(),
    }
}

fn interface(kind: PluginKind) -> Interface {
    match kind {
        PluginKind::Filter => Interface::Filter,
        PluginKind::Transform => Interface::Transform,
    }
}

fn index(direction: Direction) -> usize {
    match direction {
        Direction::LeftToRight => 0,
        Direction::RightToLeft => 1,
    }
}

fn runs_in(step: map::Direction, direction: Direction) -> bool {
    match direction {
        Direction::LeftToRight => step.writes_right(),
        Direction::RightToLeft => step.writes_left(),
    }
}
