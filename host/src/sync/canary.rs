//! A canary for a new plugin version: before it is activated, a map's
//! recent changes (their rows as the activity log kept them, mapped to
//! the target's fields as the pipeline maps them) or sample rows are run
//! through the map's chain as it is and through the same chain with the
//! new component in place of its plugin of that name; the rows whose
//! result differs (kept, skipped or failed, and the fields written) are
//! shown. Nothing is written and nothing changes.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::checkpoint::{Direction, LogFilter};
use crate::map::{PluginSource, Side};
use crate::plugin::inspect;

use super::plugins::{Chain, Fate};
use super::shape::{self, Row};
use super::{RunningEngine, SwapError};

/// How many of the map's latest changes a canary runs.
pub const CANARY_ROWS: usize = 200;

/// One row whose result differs.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CanaryRow {
    /// The row's key (empty for a sample row).
    pub key: String,
    /// `left-to-right` or `right-to-left`.
    pub direction: String,
    /// What the chain made of it now.
    #[schema(value_type = Object)]
    pub old: Value,
    /// What it would make of it with the new version.
    #[schema(value_type = Object)]
    pub new: Value,
}

/// What a canary found.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Canary {
    /// The map.
    pub map: String,
    /// The version the map runs (`name@version`).
    pub old: String,
    /// The version tried.
    pub new: String,
    /// Rows run through both.
    pub rows: usize,
    /// Those whose result differs.
    pub differ: Vec<CanaryRow>,
}

impl RunningEngine {
    /// Runs `map`'s latest changes (or `sample`: rows of the source side
    /// of `direction`) through its chain and through the chain with the
    /// component `bytes` in place of its plugin of the same name.
    pub fn canary(
        &self,
        map: &str,
        bytes: &[u8],
        sample: Option<(Direction, Vec<Row>)>,
    ) -> Result<Canary, SwapError> {
        let runtime = self.shared.map(map).ok_or_else(|| SwapError::UnknownMap {
            map: map.to_owned(),
        })?;
        let inspection = inspect("the new version", bytes)
            .map_err(|error| SwapError::Refused(error.to_string()))?;
        if let Some(problem) = inspection.problems().into_iter().next() {
            return Err(SwapError::Refused(problem.to_string()));
        }
        let plan = &runtime.plan;
        let steps: Vec<usize> = plan
            .plugins
            .iter()
            .enumerate()
            .filter(|(_, step)| step.inspection.name == inspection.name)
            .map(|(index, _)| index)
            .collect();
        let (Some(&first), Some(old)) = (steps.first(), runtime.chain.as_ref()) else {
            return Err(SwapError::Refused(format!(
                "map `{map}` runs no plugin `{}`: a canary compares a new version with the one a map runs",
                inspection.name
            )));
        };
        let mut next = plan.clone();
        for index in &steps {
            let step = &mut next.plugins[*index];
            step.bytes = Arc::from(bytes);
            step.inspection = inspection.clone();
            step.source = PluginSource::File(inspection.id().into());
        }
        let Some(plugins) = &self.shared.plugins else {
            return Err(SwapError::Refused(
                "this host runs no plugin runtime".into(),
            ));
        };
        let new = Chain::load(plugins, &next).map_err(|error| {
            SwapError::Refused(format!("the new version does not load: {error}"))
        })?;
        let rows: Vec<(String, Direction, Row)> = match sample {
            Some((direction, rows)) => rows
                .into_iter()
                .map(|row| (String::new(), direction, row))
                .collect(),
            None => {
                let filter = LogFilter {
                    map: Some(map.to_owned()),
                    ..LogFilter::default()
                };
                self.shared
                    .store
                    .log(&filter, CANARY_ROWS, true)?
                    .into_iter()
                    .filter_map(|line| {
                        let row = line.line.row?.as_object()?.clone();
                        Some((line.line.key, line.line.direction?, row))
                    })
                    .collect()
            }
        };
        let mut differ = Vec::new();
        let count = rows.len();
        for (key, direction, row) in rows {
            let Ok(mapped) = shape::map_row(plan, Side::source_of(direction), &row) else {
                continue;
            };
            let before = outcome(old, map, direction, mapped.clone());
            let after = outcome(&new, map, direction, mapped);
            if before != after {
                differ.push(CanaryRow {
                    key,
                    direction: direction.name().to_owned(),
                    old: before,
                    new: after,
                });
            }
        }
        Ok(Canary {
            map: map.to_owned(),
            old: plan.plugins[first].inspection.id(),
            new: inspection.id(),
            rows: count,
            differ,
        })
    }
}

/// What `chain` makes of `row`: `{"kept": row}`, `{"skipped": reason}` or
/// `{"failed": message}`.
fn outcome(chain: &Chain, map: &str, direction: Direction, row: Row) -> Value {
    let mut rows = vec![(None, row)];
    let fate = chain.run(map, direction, &mut rows).pop();
    match fate {
        Some(Fate::Keep) | None => {
            serde_json::json!({"kept": Value::Object(rows.pop().map(|(_, r)| r).unwrap_or_default())})
        }
        Some(Fate::Skip(_, reason)) => serde_json::json!({"skipped": reason}),
        Some(Fate::Fail(_, message)) => serde_json::json!({"failed": message}),
    }
}
