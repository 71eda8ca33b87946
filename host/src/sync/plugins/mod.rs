//! A map's plugin chain run over a batch of mapped rows: each step is one
//! call for the rows still alive, in config order. Rows cross as the
//! target's fields; JSON numbers with a fraction cross as exact decimals.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use serde_json::{Number, Value as Json};

use crate::checkpoint::Direction;
use crate::map::{self, MapPlan, PluginKind};
use crate::plugin::{self, Batch, Context, Outcome, Plugin, Runtime, Value, Verdict};

use super::SyncError;
use super::shape::{Row, decimal_json};

/// What became of a row in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Kept, possibly changed.
    Keep,
    /// Filtered out, with the plugin's reason.
    Skip(String),
    /// Failed: park it with this message.
    Fail(String),
}

struct Step {
    plugin: Arc<Plugin>,
    kind: PluginKind,
    direction: map::Direction,
    settings: Vec<(String, String)>,
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
    /// Loads and prewarms every plugin of `map`.
    pub fn load(runtime: &Runtime, map: &MapPlan) -> Result<Chain, SyncError> {
        let mut steps = Vec::new();
        for step in &map.plugins {
            let plugin =
                Plugin::load_file(runtime, &step.path, step.limits.clone()).map_err(|error| {
                    SyncError::Setup {
                        detail: format!(
                            "map `{}`: plugin {}: {error}",
                            map.name,
                            step.path.display()
                        ),
                    }
                })?;
            let kind = step.kind.unwrap_or(if plugin.has_transform() {
                PluginKind::Transform
            } else {
                PluginKind::Filter
            });
            let _ = plugin.prewarm();
            steps.push(Step {
                plugin: Arc::new(plugin),
                kind,
                direction: step.direction,
                settings: step
                    .settings
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            });
        }
        Ok(Chain { steps })
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
            match self.call(step, map, direction, rows, &alive) {
                Ok(results) => {
                    for (index, fate) in alive.into_iter().zip(results) {
                        fates[index] = fate;
                    }
                }
                // The batch call failed as a whole: find the row at fault
                // by running each row alone.
                Err(batch_error) if alive.len() == 1 => {
                    fates[alive[0]] =
                        Fate::Fail(format!("plugin {}: {batch_error}", step.plugin.id()));
                }
                Err(_) => {
                    for index in alive {
                        fates[index] = match self.call(step, map, direction, rows, &[index]) {
                            Ok(mut one) => one.pop().unwrap_or(Fate::Keep),
                            Err(error) => {
                                Fate::Fail(format!("plugin {}: {error}", step.plugin.id()))
                            }
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
        rows: &mut [(Option<String>, Row)],
        which: &[usize],
    ) -> Result<Vec<Fate>, plugin::PluginError> {
        let mut fields: Vec<String> = Vec::new();
        for &i in which {
            for name in rows[i].1.keys() {
                if !fields.contains(name) {
                    fields.push(name.clone());
                }
            }
        }
        let batch = Batch {
            rows: which
                .iter()
                .map(|&i| {
                    fields
                        .iter()
                        .map(|f| rows[i].1.get(f).map_or(Value::Null, to_value))
                        .collect()
                })
                .collect(),
            fields,
        };
        let mut companies = which.iter().map(|&i| rows[i].0.clone());
        let first = companies.next().flatten();
        let company = if companies.all(|c| c == first) {
            first
        } else {
            None
        };
        let context = Context {
            table_map: map.to_owned(),
            direction: match direction {
                Direction::LeftToRight => plugin::Direction::LeftToRight,
                Direction::RightToLeft => plugin::Direction::RightToLeft,
            },
            company,
            settings: step.settings.clone(),
        };
        match step.kind {
            PluginKind::Filter => {
                let call = step.plugin.filter(&context, &batch)?;
                Ok(call
                    .result
                    .into_iter()
                    .map(|verdict| match verdict {
                        Verdict::Keep => Fate::Keep,
                        Verdict::Skip(reason) => Fate::Skip(reason),
                        Verdict::Fail(message) => Fate::Fail(message),
                    })
                    .collect())
            }
            PluginKind::Transform => {
                let call = step.plugin.transform(&context, &batch)?;
                let result = call.result;
                let mut fates = Vec::with_capacity(which.len());
                for (n, &i) in which.iter().enumerate() {
                    fates.push(match result.outcomes.get(n) {
                        Some(Outcome::Unchanged) | None => Fate::Keep,
                        Some(Outcome::Changed(_)) => {
                            for (name, value) in result
                                .fields
                                .iter()
                                .zip(result.row(&batch, n).unwrap_or_default())
                            {
                                match value {
                                    Some(value) => rows[i].1.insert(name.clone(), to_json(&value)),
                                    None => rows[i].1.remove(name),
                                };
                            }
                            Fate::Keep
                        }
                        Some(Outcome::Skip(reason)) => Fate::Skip(reason.clone()),
                        Some(Outcome::Fail(message)) => Fate::Fail(message.clone()),
                    });
                }
                Ok(fates)
            }
        }
    }
}

fn runs_in(step: map::Direction, direction: Direction) -> bool {
    match direction {
        Direction::LeftToRight => step.writes_right(),
        Direction::RightToLeft => step.writes_left(),
    }
}

/// A service value as a plugin value: numbers with a fraction as exact
/// decimals.
pub fn to_value(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Boolean(*b),
        Json::String(s) => Value::Text(s.clone()),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => match rust_decimal::Decimal::from_str_exact(&n.to_string()) {
                Ok(d) => Value::Decimal(d.into()),
                Err(_) => Value::Float(n.as_f64().unwrap_or_default()),
            },
        },
        Json::Array(_) | Json::Object(_) => Value::Text(json.to_string()),
    }
}

/// A plugin value as the services write it.
pub fn to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Integer(i) => Json::from(*i),
        Value::Float(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Decimal(d) => d.to_decimal().map_or(Json::Null, decimal_json),
        Value::Text(s) => Json::String(s.clone()),
        Value::Date(d) => Json::String(format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)),
        Value::DateTime(t) => Utc
            .timestamp_opt(t.seconds, t.nanoseconds)
            .single()
            .map_or(Json::Null, |t| {
                Json::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            }),
        Value::Guid(g) => Json::String(uuid::Uuid::from(*g).to_string()),
        Value::Choice(c) => Json::from(*c),
        Value::Reference(r) => r
            .key
            .first()
            .map_or(Json::Null, |k| Json::String(k.value.clone())),
    }
}
