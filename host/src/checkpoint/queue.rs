//! A flow's queue as a whole: how many changes it holds, its oldest
//! change waiting, and every change of it parked or discarded at once (what
//! a resume does with a paused map's backlog when it is not replayed).
//!
//! - [`Checkpoints::queued`] (in `ops.rs`) reads the count `tally.rs`
//!   keeps; [`Checkpoints::oldest_queued`]: the first change of the flow
//!   whose key is not parked, with the time it was queued
//!   ([`QueuedChange::captured`]), read from where the last read found
//!   only parked keys' changes before it (`tally.rs`).
//! - [`QueueLimits`] ([`Checkpoints::with_limits`]): at `max_changes`
//!   changes, or with its oldest change waiting older than `max_age`, a
//!   flow takes no more ([`Checkpoints::queue_hold`] says why). A capture
//!   queues at most what fits: the rest is left out, and with it the
//!   cursor of the page (a page partly queued is read again from the old
//!   cursor; the changes queued are not queued twice) and the row hashes
//!   of the rows left out (the next reconciliation finds them changed). The
//!   source keeps what was left out. Parked changes count toward
//!   `max_changes` (the store holds them); the age is that of the oldest
//!   change waiting for the map, not of a parked one.
//! - [`Checkpoints::park_queued`] and [`Checkpoints::discard_queued`]: every
//!   change queued before the call, a chunk of [`CHUNK`] per flushed
//!   transaction. A key parked already (the error queue) keeps its entry
//!   and changes: they wait for `resubmit` or `discard` as before.
//!
//! Both keep the invariants of `park` and `discard`. Parking makes one
//! [`Parked`] entry per key, at the key's first change, its later changes
//! behind it, so the map writes none of them until `resubmit`. Discarding
//! removes each change from the queue and its index by key, but keeps the
//! key's latest captured version (tree `latest`) and, for a side read by
//! comparison, its row hash: a discarded change counts as captured, so the
//! same version read again (a page re-read after a crash, a webhook's row
//! read by polling) is not queued again, while the row's next change is.
//! The images are kept too: they say what each side held when the host
//! last wrote or saw it, which a discarded change never reached.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

use super::ops::{TxResult, canon, dequeue, flow, join, json, parse, prefix, unwrap_tx};
use super::tally::Tally;
use super::{Action, Activity, CheckpointError, Checkpoints, Direction, Parked, QueuedChange};

/// Changes one transaction of [`Checkpoints::park_queued`] or
/// [`Checkpoints::discard_queued`] handles.
pub const CHUNK: usize = 1_000;

/// How much one flow's queue may hold (`[engine.queue]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Most changes queued, parked ones included.
    pub max_changes: usize,
    /// Oldest a change waiting for the map may be.
    pub max_age: Duration,
}

impl QueueLimits {
    /// No limit: what [`Checkpoints::open`] starts with.
    pub const NONE: QueueLimits = QueueLimits {
        max_changes: usize::MAX,
        max_age: Duration::MAX,
    };
}

/// Why a flow's queue takes no more changes now.
#[derive(Debug, Clone, PartialEq)]
pub enum QueueHold {
    /// It holds `max_changes` changes or more.
    Full {
        /// The changes queued (parked ones included).
        queued: usize,
        /// The limit.
        max_changes: usize,
    },
    /// Its oldest change waiting was queued longer than `max_age` ago.
    Old {
        /// That change.
        oldest: OldestQueued,
        /// The limit.
        max_age: Duration,
    },
}

/// The oldest change of a flow waiting to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct OldestQueued {
    /// Its place in the queue.
    pub seq: u64,
    /// Its key.
    pub key: String,
    /// When it was queued; `None` for a change queued by a build that did
    /// not record it.
    pub captured: Option<DateTime<Utc>>,
}

impl Checkpoints {
    /// The store with `limits` on every flow's queue, for its captures from
    /// now on (and its clones made from it).
    pub fn with_limits(mut self, limits: QueueLimits) -> Checkpoints {
        self.limits = limits;
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> QueueLimits {
        self.limits
    }

    /// Why a map's direction takes no more changes now, if it does not: it
    /// holds `max_changes`, or its oldest change waiting is older than
    /// `max_age`. Capture then waits; the source keeps its changes.
    pub fn queue_hold(
        &self,
        map: &str,
        direction: Direction,
    ) -> Result<Option<QueueHold>, CheckpointError> {
        self.hold_at(&mut self.counts.lock(), &flow(map, direction))
    }

    /// How many new changes `flow` takes now, with the tally locked.
    pub(super) fn room(&self, tally: &mut Tally, flow: &[u8]) -> Result<usize, CheckpointError> {
        Ok(match self.hold_at(tally, flow)? {
            Some(_) => 0,
            None => self.limits.max_changes.saturating_sub(tally.queued(flow)),
        })
    }

    fn hold_at(
        &self,
        tally: &mut Tally,
        flow: &[u8],
    ) -> Result<Option<QueueHold>, CheckpointError> {
        let QueueLimits {
            max_changes,
            max_age,
        } = self.limits;
        let queued = tally.queued(flow);
        if queued >= max_changes {
            return Ok(Some(QueueHold::Full {
                queued,
                max_changes,
            }));
        }
        if max_age == Duration::MAX || queued == 0 {
            return Ok(None);
        }
        let Some(oldest) = self.oldest_in(tally, flow)? else {
            return Ok(None);
        };
        let Some(captured) = oldest.captured else {
            return Ok(None);
        };
        // A time in the future (a clock set back) is no age at all.
        let age = Utc::now()
            .signed_duration_since(captured)
            .to_std()
            .unwrap_or(Duration::ZERO);
        Ok((age > max_age).then_some(QueueHold::Old { oldest, max_age }))
    }

    /// The oldest change of a map's direction waiting to be written: the
    /// first in the queue whose key is not parked (a parked key's changes
    /// wait for an admin, not for the map). Reads the queue past the
    /// changes of parked keys, from where the last call found only those.
    pub fn oldest_queued(
        &self,
        map: &str,
        direction: Direction,
    ) -> Result<Option<OldestQueued>, CheckpointError> {
        self.oldest_in(&mut self.counts.lock(), &flow(map, direction))
    }

    /// [`Checkpoints::oldest_queued`] of `flow`, with the tally locked (no
    /// change is queued meanwhile; see `tally.rs`).
    fn oldest_in(
        &self,
        tally: &mut Tally,
        flow: &[u8],
    ) -> Result<Option<OldestQueued>, CheckpointError> {
        let prefix = prefix(flow);
        let start = join(&[flow, &tally.parked_below(flow).to_be_bytes()]);
        let mut parked: HashMap<Vec<u8>, bool> = HashMap::new();
        let mut past = None;
        for entry in self.queue.range(start..) {
            let (slot, value) = entry?;
            if !slot.starts_with(&prefix) {
                break;
            }
            let queued: QueuedChange = parse(&slot, &value)?;
            let key = canon(&queued.change.key);
            let is_parked = match parked.get(&key) {
                Some(is_parked) => *is_parked,
                None => {
                    let is_parked = self.is_parked(flow, &queued.change.key)?;
                    parked.insert(key, is_parked);
                    is_parked
                }
            };
            if !is_parked {
                tally.set_parked_below(flow, queued.seq);
                return Ok(Some(OldestQueued {
                    seq: queued.seq,
                    key: queued.change.key,
                    captured: queued.captured,
                }));
            }
            past = Some(queued.seq.saturating_add(1));
        }
        if let Some(past) = past {
            tally.set_parked_below(flow, past);
        }
        Ok(None)
    }

    /// Moves every change queued in a map's direction to the error queue
    /// with `reason` (say "parked on resume"): each key gets one parked
    /// entry at its first change, its later changes behind it, and every
    /// change an activity line (`parked`). The map writes none of them until
    /// each key is resubmitted. A key parked already keeps its entry, its
    /// reason and its changes; a resubmitted key is parked again, its count
    /// of attempts kept. Changes queued after the call began are left to
    /// flow. Returns how many changes were parked.
    ///
    /// Call it while the map writes nothing (paused, its batches landed): a
    /// batch in flight that lands afterwards finishes its change and frees
    /// its key, as a write of a resubmitted key does.
    pub fn park_queued(
        &self,
        map: &str,
        direction: Direction,
        reason: &str,
    ) -> Result<usize, CheckpointError> {
        let flow = flow(map, direction);
        let until = self.stamp()?;
        // Read before any transaction: the lines are made inside them.
        let version = self.map_version(map);
        let mut ours: HashSet<Vec<u8>> = HashSet::new();
        let mut from = 0;
        let mut total = 0;
        loop {
            let chunk = self.chunk(&flow, from, until)?;
            let Some(last) = chunk.last() else {
                return Ok(total);
            };
            from = last.seq.saturating_add(1);
            let (parked, newly) = (&self.queue, &self.parked, &self.activity)
                .transaction(
                    |(queue, parked, log)| -> TxResult<(usize, HashSet<Vec<u8>>)> {
                        let mut count = 0;
                        let mut newly = HashSet::new();
                        for queued in &chunk {
                            if queue
                                .get(join(&[&flow, &queued.seq.to_be_bytes()]))?
                                .is_none()
                            {
                                continue;
                            }
                            let key = canon(&queued.change.key);
                            let slot = join(&[&flow, &key]);
                            let mine = ours.contains(&key) || newly.contains(&key);
                            let existing = match parked.get(&slot)? {
                                Some(bytes) => Some(
                                    parse::<Parked>(&slot, &bytes)
                                        .map_err(ConflictableTransactionError::Abort)?,
                                ),
                                None => None,
                            };
                            match existing {
                                // In the error queue before the call: left as it is.
                                Some(entry) if !entry.resubmitted && !mine => continue,
                                // Behind the entry this call made.
                                Some(entry) if !entry.resubmitted => {}
                                other => {
                                    let entry = Parked {
                                        seq: queued.seq,
                                        reason: reason.to_owned(),
                                        attempts: other.map_or(0, |entry| entry.attempts),
                                        resubmitted: false,
                                        key: queued.change.key.clone(),
                                        phase: queued.change.phase,
                                        at: Some(super::now()),
                                        catch_up: true,
                                    };
                                    let value = json(&entry)
                                        .map_err(ConflictableTransactionError::Abort)?;
                                    parked.insert(slot, value)?;
                                    newly.insert(key);
                                }
                            }
                            let line =
                                line(map, direction, queued, Action::Parked, reason, version);
                            let value = json(&line).map_err(ConflictableTransactionError::Abort)?;
                            log.insert(&log.generate_id()?.to_be_bytes()[..], value)?;
                            count += 1;
                        }
                        Ok((count, newly))
                    },
                )
                .map_err(unwrap_tx)?;
            ours.extend(newly);
            total += parked;
            self.db.flush()?;
        }
    }

    /// Drops every change queued in a map's direction, each with an
    /// activity line (`discarded`, its key, `reason`). The changes of a
    /// parked key stay in the error queue, for `resubmit` or `discard`; a
    /// resubmitted key's changes are dropped with its parked entry. Changes
    /// queued after the call began are left to flow. Returns how many
    /// changes were dropped.
    ///
    /// The key's latest captured version and row hash are kept (see the
    /// module doc): the same version read again is not queued again; the
    /// row's next change is.
    pub fn discard_queued(
        &self,
        map: &str,
        direction: Direction,
        reason: &str,
    ) -> Result<usize, CheckpointError> {
        let flow = flow(map, direction);
        let until = self.stamp()?;
        let version = self.map_version(map);
        let mut from = 0;
        let mut total = 0;
        loop {
            let chunk = self.chunk(&flow, from, until)?;
            let Some(last) = chunk.last() else {
                return Ok(total);
            };
            from = last.seq.saturating_add(1);
            let dropped = (
                &self.queue,
                &self.parked,
                &self.activity,
                &self.by_key,
                &self.intent,
            )
                .transaction(|(queue, parked, log, by_key, intents)| -> TxResult<usize> {
                    let mut count = 0;
                    for queued in &chunk {
                        let slot = join(&[&flow, &canon(&queued.change.key)]);
                        let existing = match parked.get(&slot)? {
                            Some(bytes) => Some(
                                parse::<Parked>(&slot, &bytes)
                                    .map_err(ConflictableTransactionError::Abort)?,
                            ),
                            None => None,
                        };
                        if existing.as_ref().is_some_and(|entry| !entry.resubmitted) {
                            continue;
                        }
                        if !dequeue(&flow, queued, queue, by_key)? {
                            continue;
                        }
                        intents.remove(super::intent::slot(&flow, queued.seq))?;
                        if existing.is_some() {
                            parked.remove(slot)?;
                        }
                        let line = line(map, direction, queued, Action::Discarded, reason, version);
                        let value = json(&line).map_err(ConflictableTransactionError::Abort)?;
                        log.insert(&log.generate_id()?.to_be_bytes()[..], value)?;
                        count += 1;
                    }
                    Ok(count)
                })
                .map_err(unwrap_tx)?;
            self.counts.sub(&flow, dropped);
            total += dropped;
            self.db.flush()?;
        }
    }

    /// Up to [`CHUNK`] changes of `flow` from seq `from` to before `until`.
    fn chunk(
        &self,
        flow: &[u8],
        from: u64,
        until: u64,
    ) -> Result<Vec<QueuedChange>, CheckpointError> {
        let start = join(&[flow, &from.to_be_bytes()]);
        let end = join(&[flow, &until.to_be_bytes()]);
        self.queue
            .range(start..end)
            .take(CHUNK)
            .map(|entry| {
                let (slot, value) = entry?;
                parse(&slot, &value)
            })
            .collect()
    }
}

/// The activity line of `queued` parked or discarded for `reason`.
fn line(
    map: &str,
    direction: Direction,
    queued: &QueuedChange,
    what: Action,
    reason: &str,
    map_version: Option<u32>,
) -> Activity {
    let mut line = Activity::new(
        map,
        direction,
        &queued.change.key,
        what,
        format!("{reason} (version {})", queued.change.version),
    )
    .step(super::Step::Admin)
    .row(&queued.change.row);
    line.map_version = map_version;
    line
}

#[cfg(test)]
mod tests;
