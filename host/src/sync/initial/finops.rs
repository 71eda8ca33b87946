//! A finops side's reconciliation pass while the map's copy reads it: each
//! row classified by what the host stored of it ([`classify`]), the page
//! stored with how far the copy's pass got ([`PageRead::store`]).
//!
//! - Copying: a row the host never saw is initial-sync; one whose hash
//!   changed since the copy stored it (a pass read again after a crash) is
//!   live; an unchanged one is left. A rerun also queues again, as
//!   initial-sync, an unchanged row not copied yet (its change failed and
//!   was discarded, or never landed), and counts the copied ones as read.
//! - Establishing (`initial_sync = "none"`): a new or changed row's hash
//!   and image are stored, nothing is queued.
//! - Live: reconciliation as usual.

use crate::checkpoint::{CheckpointError, CopyState, Phase, Seen, SideCopy};
use crate::connector::Row;

use super::super::Shared;
use super::super::capture;
use super::super::error::FlowError;
use super::super::runtime::MapRuntime;
use super::super::shape::{self, Side};

/// How a pass reads a side, by where its copy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::sync) enum Reading {
    /// The copy reads it (a rerun when `rerun`).
    Copy {
        /// The rows copied already are counted, not queued.
        rerun: bool,
    },
    /// Its first read stores rows without queueing them.
    Establish,
    /// Its changes are live.
    Live,
}

impl Reading {
    /// How a side whose copy is at `copy` is read.
    pub(in crate::sync) fn of(copy: &SideCopy) -> Reading {
        match copy.state {
            CopyState::Copying | CopyState::RerunAsked => Reading::Copy { rerun: copy.rerun },
            CopyState::Establishing => Reading::Establish,
            CopyState::Copied | CopyState::Established => Reading::Live,
        }
    }
}

/// What one page of a pass found.
#[derive(Debug, Default)]
pub(in crate::sync) struct PageRead {
    /// Changes to queue.
    changes: Vec<Seen>,
    /// Rows stored without queueing (establishing).
    established: Vec<Seen>,
    /// Keys a rerun found copied already.
    settled: Vec<String>,
    /// Why rows were left out.
    keyless: Vec<String>,
}

/// Classifies `raw`, read after `stamp` was taken, into `read`; returns its
/// key when it has one (the pass saw it).
#[expect(
    clippy::too_many_arguments,
    reason = "the row, where it was read from, and how the pass reads"
)]
pub(in crate::sync) fn classify(
    shared: &Shared,
    map: &MapRuntime,
    side: Side,
    select: &[String],
    raw: &Row,
    stamp: u64,
    reading: Reading,
    read: &mut PageRead,
) -> Result<Option<String>, FlowError> {
    let plan = &map.plan;
    let mut seen = match capture::seen_of(plan, side, select, raw, stamp) {
        Ok(seen) => seen,
        Err(why) => {
            read.keyless.push(why);
            return Ok(None);
        }
    };
    let key = seen.change.key.clone();
    let stored = capture::stored_same(shared, plan, side, &seen)?;
    match (reading, stored) {
        (_, Some(true)) if reading != (Reading::Copy { rerun: true }) => {}
        (Reading::Copy { .. }, Some(true)) => {
            if super::copied_already(shared, map, side, &key, &seen.change.row)? {
                read.settled.push(key.clone());
            } else if !super::queued(shared, map, side.direction(), &key)? {
                seen.change.phase = Phase::InitialSync;
                read.changes.push(*seen);
            }
        }
        (Reading::Copy { .. }, None) => {
            seen.change.phase = Phase::InitialSync;
            read.changes.push(*seen);
        }
        (Reading::Establish, _) => read.established.push(*seen),
        (_, _) => read.changes.push(*seen),
    }
    Ok(Some(key))
}

impl PageRead {
    /// Stores the page: queued (live), queued with the copy's position
    /// (`resume`: the next page's link, empty for the first page of
    /// `company`, and the pass's stamp; `None` at the last page), or
    /// established; counts it; counts its companies.
    pub(in crate::sync) async fn store(
        self,
        shared: &Shared,
        map: &MapRuntime,
        side: Side,
        copy: &SideCopy,
        resume: Option<(String, u64)>,
        company: Option<String>,
    ) -> Result<(), FlowError> {
        let plan = &map.plan;
        let mut mark = copy.clone();
        mark.company = company.filter(|_| resume.is_some());
        mark.resume = resume;
        match Reading::of(copy) {
            Reading::Live => {
                capture::queue(shared, map, side, &self.changes, self.keyless)?;
            }
            Reading::Copy { .. } => {
                let keyless = self.keyless.len();
                capture::queue_marked(shared, map, side, &self.changes, self.keyless, Some(&mark))?;
                let changes: Vec<_> = self.changes.iter().map(|seen| &seen.change).collect();
                super::count_read(shared, plan, &changes, &self.settled, keyless)?;
                let mut companies: Vec<String> = changes
                    .iter()
                    .map(|c| super::company_of(plan, &c.key))
                    .collect();
                companies.sort();
                companies.dedup();
                super::totals::count_companies(shared, map, &companies).await?;
            }
            Reading::Establish => {
                establish(shared, map, side, &self.established, &mark)?;
                capture::queue(shared, map, side, &[], self.keyless)?;
            }
        }
        Ok(())
    }
}

/// Stores the hashes and images of `rows` with `mark`, queueing nothing.
fn establish(
    shared: &Shared,
    map: &MapRuntime,
    side: Side,
    rows: &[Seen],
    mark: &SideCopy,
) -> Result<(), CheckpointError> {
    let fields = &map.side(side).fields;
    let images: Vec<(String, Row)> = rows
        .iter()
        .map(|seen| {
            (
                seen.change.key.clone(),
                shape::restrict(&seen.change.row, fields),
            )
        })
        .collect();
    let images: Vec<(&str, &Row)> = images.iter().map(|(k, i)| (k.as_str(), i)).collect();
    let hashes: Vec<(&str, &crate::checkpoint::RowHash)> = rows
        .iter()
        .filter_map(|seen| Some((seen.change.key.as_str(), seen.hash.as_ref()?)))
        .collect();
    shared.store.establish(
        map.name(),
        side.direction(),
        side.name(),
        None,
        &[],
        &images,
        &hashes,
        mark,
    )
}
