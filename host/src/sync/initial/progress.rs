//! [`InitialProgress`]: where a map's initial copy is, per map and per
//! company, computed from what the checkpoint store keeps (so a stopped
//! host's store tells it too): rows read, written, skipped and failed, the
//! rate of this run of the copy, and an ETA against the services' counts.
//!
//! The total is the rows both sides held when their copy began, as the
//! services counted them; a key both sides hold is two rows, each settled
//! once (one written, the other matched or lost to the master). Dataverse
//! counts at most 5,000 rows: past that its total is only a lower bound
//! (`total_at_least`) and there is no ETA; a total the service would not
//! give is unknown, and there is no ETA either.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::checkpoint::{CheckpointError, Checkpoints, CopyState, Lifecycle, Tally, Total};
use crate::map::{InitialSync, MapPlan};

use super::super::Shared;
use super::super::shape::{self, Side};

/// Where a map's initial copy is.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct InitialProgress {
    /// The map.
    pub map: String,
    /// What the map's first start copies (`left`, `right`: the master;
    /// `none`).
    #[schema(value_type = String)]
    pub initial_sync: InitialSync,
    /// Where the copy is.
    pub stage: CopyStage,
    /// A rerun (rows already copied are skipped and counted as read).
    pub rerun: bool,
    /// When the copy began (RFC 3339).
    pub began: Option<String>,
    /// Each side the map reads.
    pub sides: Vec<SideProgress>,
    /// The rows of the whole map.
    #[serde(flatten)]
    pub rows: RowProgress,
    /// The rows of each company, on a map striped by company (by
    /// `dataAreaId`, in lower case); empty otherwise.
    pub companies: Vec<CompanyProgress>,
}

/// The stage of a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CopyStage {
    /// A side is still being read (rows are written meanwhile).
    Reading,
    /// Every side was read; rows of the copy are still to be settled.
    Writing,
    /// Every row of the copy was settled: written, matched, or failed
    /// (listed, to rerun).
    Done,
    /// The map copies nothing (`initial_sync = "none"`).
    NotCopied,
}

/// One side of a copy.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SideProgress {
    /// `left` or `right`.
    #[schema(value_type = String)]
    pub side: &'static str,
    /// Where its read is.
    #[schema(value_type = String)]
    pub state: CopyState,
    /// When its read was done (RFC 3339).
    pub finished: Option<String>,
    /// Its rows, when the service counted them exactly.
    pub total: Option<u64>,
    /// A lower bound of its rows, when the service caps its count.
    pub total_at_least: Option<u64>,
}

/// The rows of a copy, of a map or a company.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RowProgress {
    /// Rows the copy read.
    pub read: u64,
    /// Rows written to (or deleted on) the other side.
    pub written: u64,
    /// Rows settled without a write (both sides agree, lost to the master,
    /// outside the filter, copied already), and rows that had changed
    /// during the copy and flowed as live changes.
    pub skipped: u64,
    /// Rows that failed and wait in the error queue
    /// ([`Checkpoints::initial_failures`](crate::checkpoint::Checkpoints::initial_failures)).
    pub failed: u64,
    /// Failed rows an admin discarded.
    pub discarded: u64,
    /// The rows to settle, when counted exactly.
    pub total: Option<u64>,
    /// A lower bound of the rows, when a count was capped.
    pub total_at_least: Option<u64>,
    /// Rows settled per second in this run of the copy.
    pub rows_per_second: f64,
    /// Seconds until every row is settled at that rate; `None` when the
    /// total is not known exactly or nothing settled yet.
    pub eta_seconds: Option<u64>,
}

/// The rows of one company.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CompanyProgress {
    /// The company (`dataAreaId`, lower case).
    pub company: String,
    /// Its rows.
    #[serde(flatten)]
    pub rows: RowProgress,
}

/// The progress of `map`'s initial copy; `None` when the engine runs no
/// such map or its copy never began.
pub(in crate::sync) fn progress(
    shared: &Shared,
    map: &str,
) -> Result<Option<InitialProgress>, CheckpointError> {
    match shared.map(map) {
        Some(runtime) => initial_progress(&shared.store, &runtime.plan),
        None => Ok(None),
    }
}

/// The progress of the initial copy of `plan`'s map as `store` keeps it:
/// a running engine's ([`RunningEngine::initial_progress`](super::super::RunningEngine::initial_progress)),
/// or a stopped host's store opened directly. `None` when its copy never
/// began and the map is not initializing (started with a copy that no side
/// has begun yet: every side is still to be read).
pub fn initial_progress(
    store: &Checkpoints,
    plan: &MapPlan,
) -> Result<Option<InitialProgress>, CheckpointError> {
    let map = plan.name.as_str();
    let flowing: Vec<Side> = Side::BOTH
        .into_iter()
        .filter(|side| shape::flows_to(plan, side.other()))
        .collect();
    let mut copies = Vec::new();
    for side in &flowing {
        if let Some(copy) = store.side_copy(map, side.name())? {
            copies.push((*side, copy));
        }
    }
    // A map started with a copy whose capture has not begun a side yet
    // (its task reads the side next): that side is still to be read.
    let record = store.map_record(map)?;
    let to_begin = record
        .as_ref()
        .is_some_and(|r| r.state == Lifecycle::Initializing)
        && copies.len() < flowing.len();
    let began = match copies.first() {
        Some((_, first)) => Some(first.began.clone()),
        None if to_begin => None,
        None => return Ok(None),
    };
    let rerun = copies.iter().any(|(_, copy)| copy.rerun);
    let tallies = store.tallies(map)?;
    let totals = store.totals(map)?;
    let failures = store.initial_failures(map)?;
    let run = store.copy_run(map)?;
    let time = |text: &str| {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    let since = run.as_ref().and_then(|run| time(&run.since));
    let last = run
        .as_ref()
        .and_then(|run| run.last_settled.as_deref())
        .and_then(time);
    let side_total = |side: Side, company: Option<&str>| -> Option<Total> {
        totals
            .iter()
            .find(|(s, c, _)| s == side.name() && c.as_deref() == company)
            .map(|(_, _, total)| *total)
    };
    let sum_totals = |company: Option<&str>| -> Vec<Option<Total>> {
        copies
            .iter()
            .map(|(side, _)| side_total(*side, company))
            .collect()
    };
    let map_tally = tallies
        .iter()
        .fold(Tally::default(), |sum, (_, t)| add(sum, t));
    let failed = failures.len() as u64;
    let reading = to_begin || copies.iter().any(|(_, copy)| copy.copying());
    let established = !copies.is_empty()
        && copies
            .iter()
            .all(|(_, c)| matches!(c.state, CopyState::Establishing | CopyState::Established));
    let stage = if established {
        CopyStage::NotCopied
    } else if reading {
        CopyStage::Reading
    } else if map_tally.done().saturating_add(failed) < map_tally.read {
        CopyStage::Writing
    } else {
        CopyStage::Done
    };
    // The rate of this run: up to now while rows are to be settled, up to
    // the last one settled once all are.
    let until = match stage {
        CopyStage::Done => last.unwrap_or_else(Utc::now),
        _ => Utc::now(),
    };
    let seconds = since
        .map(|since| (until - since).num_milliseconds().max(0) as f64 / 1000.0)
        .unwrap_or_default();
    let mut rows = rows_of(&map_tally, failed, &sum_totals(None), seconds);
    if matches!(stage, CopyStage::Done | CopyStage::NotCopied) {
        rows.eta_seconds = Some(0);
    }
    let mut companies = Vec::new();
    if plan.company_pair().is_some() {
        let mut names: Vec<String> = tallies
            .iter()
            .map(|(company, _)| company.clone())
            .chain(totals.iter().filter_map(|(_, company, _)| company.clone()))
            .filter(|company| !company.is_empty())
            .collect();
        names.sort();
        names.dedup();
        for company in names {
            let tally = tallies
                .iter()
                .find(|(c, _)| *c == company)
                .map(|(_, t)| *t)
                .unwrap_or_default();
            let failed = failures
                .iter()
                .filter(|f| super::company_of(plan, &f.key) == company)
                .count() as u64;
            let mut rows = rows_of(&tally, failed, &sum_totals(Some(&company)), seconds);
            if stage == CopyStage::Done {
                rows.eta_seconds = Some(0);
            }
            companies.push(CompanyProgress { company, rows });
        }
    }
    let sides = copies
        .iter()
        .map(|(side, copy)| {
            let total = side_total(*side, None);
            SideProgress {
                side: side.name(),
                state: copy.state,
                finished: copy.finished.clone(),
                total: total.filter(|t| t.exact).map(|t| t.count),
                total_at_least: total.filter(|t| !t.exact && t.count > 0).map(|t| t.count),
            }
        })
        .collect();
    // The mode the map was started with (`map start --initial-sync`), else
    // its config's.
    let initial_sync = record
        .and_then(|record| record.initial_sync)
        .and_then(|mode| mode.parse().ok())
        .unwrap_or(plan.initial_sync);
    Ok(Some(InitialProgress {
        map: map.to_owned(),
        initial_sync,
        stage,
        rerun,
        began,
        sides,
        rows,
        companies,
    }))
}

/// The rows of `tally` with `failed` rows waiting, against the `totals` of
/// each side (a side's missing total makes the sum unknown), `seconds`
/// into this run of the copy.
fn rows_of(tally: &Tally, failed: u64, totals: &[Option<Total>], seconds: f64) -> RowProgress {
    let exact = totals.iter().all(|t| t.is_some_and(|t| t.exact));
    let sum: u64 = totals
        .iter()
        .flatten()
        .fold(0u64, |sum, t| sum.saturating_add(t.count));
    let total = exact.then_some(sum);
    let total_at_least = (!exact && sum > 0).then_some(sum);
    let settled = tally.done().saturating_sub(tally.done_at_run);
    let rows_per_second = match seconds > 0.0 {
        true => settled as f64 / seconds,
        false => 0.0,
    };
    let eta_seconds = match (total, rows_per_second > 0.0) {
        (Some(total), true) => {
            let remaining = total.saturating_sub(tally.done().saturating_add(failed));
            // At most a year: a rate from a handful of rows says little.
            Some(
                (remaining as f64 / rows_per_second)
                    .ceil()
                    .min(31_536_000.0) as u64,
            )
        }
        _ => None,
    };
    RowProgress {
        read: tally.read,
        written: tally.written,
        skipped: tally.skipped.saturating_add(tally.live),
        failed,
        discarded: tally.discarded,
        total,
        total_at_least,
        rows_per_second,
        eta_seconds,
    }
}

fn add(sum: Tally, tally: &Tally) -> Tally {
    Tally {
        read: sum.read.saturating_add(tally.read),
        written: sum.written.saturating_add(tally.written),
        skipped: sum.skipped.saturating_add(tally.skipped),
        discarded: sum.discarded.saturating_add(tally.discarded),
        live: sum.live.saturating_add(tally.live),
        done_at_run: sum.done_at_run.saturating_add(tally.done_at_run),
    }
}
