//! What the checkpoint store keeps of each map's initial copy, in tree
//! `initial`: per side where its copy is ([`SideCopy`]), per company the
//! rows the copy read and settled ([`Tally`]), the totals the services
//! counted ([`Total`]), and when this run of the copy began ([`CopyRun`]);
//! the failed rows of a copy ([`Checkpoints::initial_failures`]) and its
//! two reruns ([`Checkpoints::rerun_failed`], [`Checkpoints::rerun_initial`]).
//!
//! A side's copy state changes with the read it describes: the last page of
//! a copy is queued in the transaction that marks the copy read
//! ([`Checkpoints::capture_copied`]), and a map that copies nothing
//! (`initial_sync = "none"`) stores each page's row ids, images and hashes
//! with the cursor, queueing nothing ([`Checkpoints::establish`]).
//!
//! The tallies and totals are progress for people: they are kept beside
//! the protocol's transactions, not in them, so a crash may lose the count
//! of the last page or batch, never a row.
//!
//! Key layout (tree `initial`): `side\0<map>\0<side>` → [`SideCopy`];
//! `tally\0<map>\0<company>` → [`Tally`]; `total\0<map>\0<side>\0` →
//! the side's [`Total`], `total\0<map>\0<side>\0<company>` → one company's;
//! `run\0<map>` → [`CopyRun`]; all JSON; `failed\0<map>\0<direction>\0<key>`
//! → the company of a failed row of the copy (its discard is counted
//! there). A map without companies counts under the company `""`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

use super::ops::{canon, flow, join, json, parse, prefix};
use super::seen::{self, RowHash};
use super::{Action, CheckpointError, Checkpoints, Direction, Parked, Phase};

/// Where the initial copy of one side of a map is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CopyState {
    /// The side is being read: what the read queues is initial-sync.
    Copying,
    /// The side was read to its end; what it reports now is live.
    Copied,
    /// The map copies nothing (`none`): the side's first read is storing
    /// its position and rows without queueing them.
    Establishing,
    /// The map copies nothing: the side's first read stored its position
    /// and rows; what it reports now is live.
    Established,
    /// A rerun was asked: the side's next read starts the copy again,
    /// skipping the rows already copied.
    RerunAsked,
}

/// The initial copy of one side of a map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideCopy {
    /// Where it is.
    pub state: CopyState,
    /// When it began (RFC 3339, the host's clock): a row the service says
    /// was modified later changed during the copy, and is live.
    pub began: String,
    /// The store's stamp taken when it began.
    pub began_stamp: u64,
    /// When the read reached the end (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    /// A rerun: the rows already copied are skipped.
    #[serde(default)]
    pub rerun: bool,
    /// The side was read once more after its copy's read was done: every
    /// change made there while the copy ran is queued, so the other side's
    /// copy may be written to it (the high watermark of DBLog).
    #[serde(default)]
    pub caught_up: bool,
    /// Where a paged read of the copy goes on after a restart (the next
    /// link of a finops pass or of a rerun's read, empty for the first
    /// page of `company`), and the stamp taken before that read's first
    /// page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<(String, u64)>,
    /// On a map striped by company, the company whose rows the finops
    /// pass reads at `resume` (it reads one company at a time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
}

impl SideCopy {
    /// A copy beginning now, at `stamp`.
    pub fn begin(stamp: u64, began: String, rerun: bool) -> SideCopy {
        SideCopy {
            state: CopyState::Copying,
            began,
            began_stamp: stamp,
            finished: None,
            rerun,
            caught_up: false,
            resume: None,
            company: None,
        }
    }

    /// Whether the side's read of the copy is still to finish.
    pub fn copying(&self) -> bool {
        matches!(self.state, CopyState::Copying | CopyState::RerunAsked)
    }

    /// Whether what the other side's copy queued must wait before it is
    /// written to this side: until this side's own first read (or copy) is
    /// done and it was read once more after, so that no change made here
    /// while the copy ran is overwritten by older copied data.
    pub fn holds_writes(&self) -> bool {
        match self.state {
            CopyState::Copying | CopyState::RerunAsked | CopyState::Establishing => true,
            CopyState::Copied => !self.caught_up,
            CopyState::Established => false,
        }
    }
}

/// The rows of one company (or of a map without companies) that a copy
/// read and settled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Rows the copy read (queued, found copied already by a rerun, or
    /// left out for want of a key).
    pub read: u64,
    /// Rows written to (or deleted on) the other side.
    pub written: u64,
    /// Rows settled without a write: both sides agree, lost to the master,
    /// the host's own write, outside the filter, already copied.
    pub skipped: u64,
    /// Failed rows an admin discarded.
    pub discarded: u64,
    /// Rows the copy read that had changed during it: they sync as live
    /// changes, so the copy counts them settled when read.
    #[serde(default)]
    pub live: u64,
    /// `written + skipped + discarded` when this run of the copy began:
    /// the rate counts from there.
    #[serde(default)]
    pub done_at_run: u64,
}

impl Tally {
    /// The rows settled so far (failed ones apart).
    pub fn done(&self) -> u64 {
        self.written
            .saturating_add(self.skipped)
            .saturating_add(self.discarded)
            .saturating_add(self.live)
    }
}

/// A row count a service gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Total {
    /// The count.
    pub count: u64,
    /// False when the service caps its count (Dataverse at 5,000) and the
    /// rows may be more: then `count` is a lower bound.
    pub exact: bool,
}

/// This run of a map's copy: since the host (re)started it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyRun {
    /// When (RFC 3339).
    pub since: String,
    /// When a row of the copy was last settled in this run (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_settled: Option<String>,
}

/// A row of the initial copy that failed, with the service's message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct InitialFailure {
    /// The direction it failed in.
    #[schema(value_type = String)]
    pub direction: Direction,
    /// The row's key.
    pub key: String,
    /// Why it failed: the service's message.
    pub reason: String,
    /// How many times it was tried.
    pub attempts: u32,
}

impl Checkpoints {
    /// Where the copy of `side` of `map` is; `None` when it never began.
    pub fn side_copy(&self, map: &str, side: &str) -> Result<Option<SideCopy>, CheckpointError> {
        self.side_copy_of(map, side)
    }

    /// Whether a copy of either side of `map` ever began.
    pub fn initial_begun(&self, map: &str) -> Result<bool, CheckpointError> {
        Ok(self.side_copy_of(map, "left")?.is_some() || self.side_copy_of(map, "right")?.is_some())
    }

    fn side_copy_of(&self, map: &str, side: &str) -> Result<Option<SideCopy>, CheckpointError> {
        let slot = side_slot(map, side);
        match self.initial.get(&slot)? {
            Some(bytes) => Ok(Some(parse(&slot, &bytes)?)),
            None => Ok(None),
        }
    }

    /// Stores where the copy of `side` of `map` is. Flushes.
    pub fn set_side_copy(
        &self,
        map: &str,
        side: &str,
        copy: &SideCopy,
    ) -> Result<(), CheckpointError> {
        self.initial.insert(side_slot(map, side), json(copy)?)?;
        self.db.flush()?;
        Ok(())
    }

    /// [`Checkpoints::capture_seen`] of a page of `side`'s copy (finops
    /// reconciliation): in the same transaction the copy is marked `copy`
    /// (how far its pass got). Returns how many changes were new.
    pub fn capture_seen_copied(
        &self,
        map: &str,
        direction: Direction,
        side: &str,
        seen: &[super::Seen],
        copy: &SideCopy,
    ) -> Result<usize, CheckpointError> {
        let mark = (side_slot(map, side), json(copy)?);
        let changes: Vec<(&super::Change, Option<&RowHash>)> = seen
            .iter()
            .map(|seen| (&seen.change, seen.hash.as_ref()))
            .collect();
        self.capture_marked(map, direction, &changes, None, &[], Some(side), Some(&mark))
    }

    /// [`Checkpoints::capture_page`] of the last page of `side`'s copy: in
    /// the same transaction the copy is marked `copy`, so a crash cannot
    /// leave the page's rows queued and the copy unfinished, or the other
    /// way round. Returns how many changes were new.
    #[expect(
        clippy::too_many_arguments,
        reason = "capture_page's arguments and the copy it finishes"
    )]
    pub fn capture_copied(
        &self,
        map: &str,
        direction: Direction,
        changes: &[super::Change],
        cursor: Option<&str>,
        ids: &[(&str, &str, &str)],
        side: &str,
        copy: &SideCopy,
    ) -> Result<usize, CheckpointError> {
        let mark = (side_slot(map, side), json(copy)?);
        let changes: Vec<(&super::Change, Option<&RowHash>)> =
            changes.iter().map(|change| (change, None)).collect();
        self.capture_marked(map, direction, &changes, cursor, ids, None, Some(&mark))
    }

    /// One page of a side's first read when the map copies nothing: the
    /// rows' ids (`(side, id, key)`), images (`(key, mapped fields)`) and
    /// hashes (`(key, hash)`, a finops side) are stored as capture and the
    /// writes would store them, with the cursor and `copy`, in one
    /// transaction, and nothing is queued: later deletes find their keys,
    /// and later changes compare with what the side held. Flushes.
    #[expect(
        clippy::too_many_arguments,
        reason = "everything one page of the first read stores, in one transaction"
    )]
    pub fn establish(
        &self,
        map: &str,
        direction: Direction,
        side: &str,
        cursor: Option<&str>,
        ids: &[(&str, &str)],
        images: &[(&str, &Map<String, Value>)],
        hashes: &[(&str, &RowHash)],
        copy: &SideCopy,
    ) -> Result<(), CheckpointError> {
        let flow = flow(map, direction);
        let mark = json(copy)?;
        let ids: Vec<(Vec<u8>, Vec<u8>)> = ids
            .iter()
            .map(|(id, key)| {
                (
                    join(&[map.as_bytes(), side.as_bytes(), id.as_bytes()]),
                    key.as_bytes().to_vec(),
                )
            })
            .collect();
        let images = images
            .iter()
            .map(|(key, image)| {
                Ok((
                    join(&[map.as_bytes(), side.as_bytes(), &canon(key)]),
                    json(image)?,
                ))
            })
            .collect::<Result<Vec<_>, CheckpointError>>()?;
        let hashes = hashes
            .iter()
            .map(|(key, hash)| Ok((seen::slot(map, side, key), seen::encode(hash)?)))
            .collect::<Result<Vec<_>, CheckpointError>>()?;
        (
            &self.ids,
            &self.images,
            &self.hashes,
            &self.cursor,
            &self.initial,
        )
            .transaction(
                |(id_tree, image_tree, hash_tree, cursors, initial)| -> Result<(), ConflictableTransactionError<CheckpointError>> {
                    for (slot, key) in &ids {
                        id_tree.insert(slot.as_slice(), key.as_slice())?;
                    }
                    for (slot, image) in &images {
                        image_tree.insert(slot.as_slice(), image.as_slice())?;
                    }
                    for (slot, hash) in &hashes {
                        hash_tree.insert(slot.as_slice(), hash.as_slice())?;
                    }
                    if let Some(cursor) = cursor {
                        cursors.insert(flow.as_slice(), cursor.as_bytes())?;
                    }
                    initial.insert(side_slot(map, side), mark.as_slice())?;
                    Ok(())
                },
            )
            .map_err(super::ops::unwrap_tx)?;
        self.db.flush()?;
        Ok(())
    }

    /// The tallies of `map`'s copy by company.
    pub fn tallies(&self, map: &str) -> Result<Vec<(String, Tally)>, CheckpointError> {
        let start = prefix(&join(&[b"tally", map.as_bytes()]));
        let mut tallies = Vec::new();
        for entry in self.initial.scan_prefix(&start) {
            let (slot, bytes) = entry?;
            let company = String::from_utf8_lossy(&slot[start.len()..]).into_owned();
            tallies.push((company, parse(&slot, &bytes)?));
        }
        Ok(tallies)
    }

    /// Adds to the tallies of `map`'s copy: per company, `change` applied.
    pub fn count_initial(
        &self,
        map: &str,
        counts: &[(&str, TallyChange)],
    ) -> Result<(), CheckpointError> {
        for (company, change) in counts {
            self.update_tally(&tally_slot(map, company), |tally| change.apply(tally))?;
        }
        Ok(())
    }

    /// Applies `change` to the tally at `slot`, atomically (the batches of
    /// both directions count at once).
    fn update_tally(
        &self,
        slot: &[u8],
        change: impl Fn(&mut Tally),
    ) -> Result<(), CheckpointError> {
        loop {
            let old = self.initial.get(slot)?;
            let mut tally: Tally = match &old {
                Some(bytes) => parse(slot, bytes)?,
                None => Tally::default(),
            };
            change(&mut tally);
            let swapped = self
                .initial
                .compare_and_swap(slot, old, Some(json(&tally)?))?;
            if swapped.is_ok() {
                return Ok(());
            }
        }
    }

    /// The totals the services counted for `map`'s copy: per side, the
    /// whole side (company `None`) and each company counted.
    pub fn totals(
        &self,
        map: &str,
    ) -> Result<Vec<(String, Option<String>, Total)>, CheckpointError> {
        let start = prefix(&join(&[b"total", map.as_bytes()]));
        let mut totals = Vec::new();
        for entry in self.initial.scan_prefix(&start) {
            let (slot, bytes) = entry?;
            let rest = &slot[start.len()..];
            let Some(at) = rest.iter().position(|b| *b == 0) else {
                continue;
            };
            let side = String::from_utf8_lossy(&rest[..at]).into_owned();
            let company = String::from_utf8_lossy(&rest[at + 1..]).into_owned();
            let company = (!company.is_empty()).then_some(company);
            totals.push((side, company, parse(&slot, &bytes)?));
        }
        Ok(totals)
    }

    /// Stores a total of `map`'s `side` (of one company, or the whole side).
    pub fn set_total(
        &self,
        map: &str,
        side: &str,
        company: Option<&str>,
        total: Total,
    ) -> Result<(), CheckpointError> {
        let slot = join(&[
            b"total",
            map.as_bytes(),
            side.as_bytes(),
            company.unwrap_or_default().as_bytes(),
        ]);
        self.initial.insert(slot, json(&total)?)?;
        Ok(())
    }

    /// When this run of `map`'s copy began, if it did.
    pub fn copy_run(&self, map: &str) -> Result<Option<CopyRun>, CheckpointError> {
        let slot = join(&[b"run", map.as_bytes()]);
        match self.initial.get(&slot)? {
            Some(bytes) => Ok(Some(parse(&slot, &bytes)?)),
            None => Ok(None),
        }
    }

    /// A run of `map`'s copy begins (at the host's start, or a rerun): the
    /// rate counts from here.
    pub fn begin_copy_run(&self, map: &str, since: String) -> Result<(), CheckpointError> {
        for (company, _) in self.tallies(map)? {
            self.update_tally(&tally_slot(map, &company), |tally| {
                tally.done_at_run = tally.done();
            })?;
        }
        let run = CopyRun {
            since,
            last_settled: None,
        };
        self.initial
            .insert(join(&[b"run", map.as_bytes()]), json(&run)?)?;
        Ok(())
    }

    /// Notes that rows of `map`'s copy were settled at `at` (RFC 3339): a
    /// finished copy's rate ends there.
    pub fn copy_settled(&self, map: &str, at: String) -> Result<(), CheckpointError> {
        let slot = join(&[b"run", map.as_bytes()]);
        if let Some(bytes) = self.initial.get(&slot)? {
            let mut run: CopyRun = parse(&slot, &bytes)?;
            run.last_settled = Some(at);
            self.initial.insert(slot, json(&run)?)?;
        }
        Ok(())
    }

    /// Every row of `map`'s initial copy that failed and is parked, both
    /// directions, with the service's message: all of them.
    pub fn initial_failures(&self, map: &str) -> Result<Vec<InitialFailure>, CheckpointError> {
        let mut failures = Vec::new();
        for direction in [Direction::LeftToRight, Direction::RightToLeft] {
            for (key, parked) in self.parked(map, direction)? {
                if parked.phase == Phase::InitialSync {
                    failures.push(failure(direction, key, parked));
                }
            }
        }
        Ok(failures)
    }

    /// Resubmits only the failed rows of `map`'s initial copy: each flows
    /// again from the change that failed (a running map takes them at its
    /// next batch). Returns how many.
    pub fn rerun_failed(&self, map: &str) -> Result<usize, CheckpointError> {
        let failures = self.initial_failures(map)?;
        for failure in &failures {
            self.resubmit(map, failure.direction, &failure.key)?;
        }
        Ok(failures.len())
    }

    /// Asks for `map`'s initial copy again: each side that was copied is
    /// read again from its first row (a running map's next read of the side
    /// begins it), and every row not already copied is queued: a row whose
    /// key both sides hold with the values the host last synced is skipped,
    /// so no row is written twice. The progress starts again. Returns how
    /// many sides will be read.
    pub fn rerun_initial(&self, map: &str) -> Result<usize, CheckpointError> {
        let mut sides = 0;
        for side in ["left", "right"] {
            let Some(mut copy) = self.side_copy(map, side)? else {
                continue;
            };
            copy.state = CopyState::RerunAsked;
            copy.resume = None;
            copy.caught_up = false;
            self.initial.insert(side_slot(map, side), json(&copy)?)?;
            sides += 1;
        }
        for tree_prefix in [&b"tally"[..], b"total", b"run", b"failed"] {
            let start = prefix(&join(&[tree_prefix, map.as_bytes()]));
            for entry in self.initial.scan_prefix(&start) {
                let (slot, _) = entry?;
                self.initial.remove(slot)?;
            }
            self.initial.remove(join(&[tree_prefix, map.as_bytes()]))?;
        }
        self.db.flush()?;
        Ok(sides)
    }

    /// Notes the company of a row of the copy that failed in `direction`,
    /// so that its discard is counted there. Stored with the next flush
    /// (the park that follows).
    pub fn note_initial_failure(
        &self,
        map: &str,
        direction: Direction,
        key: &str,
        company: &str,
    ) -> Result<(), CheckpointError> {
        self.initial
            .insert(failed_slot(map, direction, key), company.as_bytes())?;
        Ok(())
    }

    /// A failed row of the copy was discarded: counted for its company.
    pub(super) fn initial_discarded(
        &self,
        map: &str,
        direction: Direction,
        key: &str,
    ) -> Result<(), CheckpointError> {
        let company = self
            .initial
            .remove(failed_slot(map, direction, key))?
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
        self.count_initial(map, &[(&company, TallyChange::Settled(Action::Discarded))])
    }

    /// Whether the host holds an image of any row of `map`'s `side`.
    pub fn knows_rows(&self, map: &str, side: &str) -> Result<bool, CheckpointError> {
        let start = prefix(&join(&[map.as_bytes(), side.as_bytes()]));
        Ok(self.images.scan_prefix(start).next().transpose()?.is_some())
    }

    /// Forgets the latest version captured for each of `keys` in a map's
    /// direction, so that a rerun can queue a row again whose version was
    /// captured but never copied (its change was discarded).
    pub fn forget_latest(
        &self,
        map: &str,
        direction: Direction,
        keys: &[&str],
    ) -> Result<(), CheckpointError> {
        let flow = flow(map, direction);
        for key in keys {
            self.latest.remove(join(&[&flow, &canon(key)]))?;
        }
        Ok(())
    }
}

/// A change to one company's [`Tally`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TallyChange {
    /// `n` rows read.
    Read(u64),
    /// `n` rows read that had changed during the copy: settled as live.
    ReadLive(u64),
    /// A row settled as `action`: written (or deleted), discarded, or
    /// skipped (any other outcome).
    Settled(Action),
}

impl TallyChange {
    fn apply(self, tally: &mut Tally) {
        let add = |n: &mut u64, by: u64| *n = n.saturating_add(by);
        match self {
            TallyChange::Read(n) => add(&mut tally.read, n),
            TallyChange::ReadLive(n) => {
                add(&mut tally.read, n);
                add(&mut tally.live, n);
            }
            TallyChange::Settled(Action::Written | Action::Deleted) => add(&mut tally.written, 1),
            TallyChange::Settled(Action::Discarded) => add(&mut tally.discarded, 1),
            // Parked and waiting rows are not settled yet.
            TallyChange::Settled(Action::Parked | Action::Waiting) => {}
            TallyChange::Settled(_) => add(&mut tally.skipped, 1),
        }
    }
}

fn failure(direction: Direction, key: String, parked: Parked) -> InitialFailure {
    InitialFailure {
        direction,
        key,
        reason: parked.reason,
        attempts: parked.attempts,
    }
}

fn side_slot(map: &str, side: &str) -> Vec<u8> {
    join(&[b"side", map.as_bytes(), side.as_bytes()])
}

fn failed_slot(map: &str, direction: Direction, key: &str) -> Vec<u8> {
    join(&[b"failed", &flow(map, direction), &canon(key)])
}

fn tally_slot(map: &str, company: &str) -> Vec<u8> {
    join(&[b"tally", map.as_bytes(), company.as_bytes()])
}
