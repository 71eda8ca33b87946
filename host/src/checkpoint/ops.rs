//! [`Checkpoints`]: the operations of the checkpoint protocol over sled.

use super::echo;
use super::intent;
use super::queue::QueueLimits;
use super::seen::{self, RowHash, Seen};
use super::tally::Counts;
use super::{
    Action, Activity, Change, CheckpointError, Direction, Finish, LAYOUT, Parked, QueuedChange,
};
use chrono::Utc;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

/// The checkpoint store of one host.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    pub(super) db: sled::Db,
    pub(super) queue: sled::Tree,
    pub(super) cursor: sled::Tree,
    pub(super) parked: sled::Tree,
    echo: sled::Tree,
    pub(super) activity: sled::Tree,
    pub(super) latest: sled::Tree,
    pub(super) by_key: sled::Tree,
    pub(super) ids: sled::Tree,
    pub(super) images: sled::Tree,
    pub(super) hashes: sled::Tree,
    pub(super) maps: sled::Tree,
    /// The changes queued per flow, shared by every clone of the handle.
    pub(super) counts: Arc<Counts>,
    /// How much each flow's queue may hold.
    pub(super) limits: QueueLimits,
    pub(super) initial: sled::Tree,
    pub(super) intent: sled::Tree,
    /// The version current per map (`versions.rs`), and every version.
    pub(super) current_versions: super::versions::Current,
    pub(super) versions: sled::Tree,
    /// The alert rules the API added, and the outbox (`alerts.rs`).
    pub(super) alert_rules: sled::Tree,
    pub(super) notifications: sled::Tree,
    /// The plugin registry: versions and their bytes (`plugins.rs`).
    pub(super) plugins: sled::Tree,
    pub(super) plugin_bytes: sled::Tree,
    /// The map versions an admin put in force (`applied.rs`).
    pub(super) applied: sled::Tree,
}

pub(super) type TxResult<T> = Result<T, ConflictableTransactionError<CheckpointError>>;

impl Checkpoints {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Checkpoints, CheckpointError> {
        let db = open_sled(dir)?;
        let meta = db.open_tree("meta")?;
        match meta.get("layout")? {
            None => {
                meta.insert("layout", LAYOUT)?;
            }
            Some(found) if &*found == LAYOUT.as_bytes() => {}
            Some(found) => {
                return Err(CheckpointError::Layout {
                    found: String::from_utf8_lossy(&found).into_owned(),
                });
            }
        }
        let queue = db.open_tree("queue")?;
        Ok(Checkpoints {
            counts: Arc::new(Counts::of_queue(&queue)?),
            limits: QueueLimits::NONE,
            queue,
            cursor: db.open_tree("cursor")?,
            parked: db.open_tree("parked")?,
            echo: db.open_tree("echo")?,
            activity: db.open_tree("activity")?,
            latest: db.open_tree("latest")?,
            by_key: db.open_tree("by_key")?,
            ids: db.open_tree("ids")?,
            images: db.open_tree("images")?,
            hashes: db.open_tree("hashes")?,
            maps: db.open_tree("maps")?,
            initial: db.open_tree("initial")?,
            intent: db.open_tree("intent")?,
            current_versions: Default::default(),
            versions: db.open_tree("map_versions")?,
            alert_rules: db.open_tree("alert_rules")?,
            notifications: db.open_tree("notifications")?,
            plugins: db.open_tree("plugins")?,
            plugin_bytes: db.open_tree("plugin_bytes")?,
            applied: db.open_tree("map_applied")?,
            db,
        })
    }

    /// Step 2: queues `changes` and stores `cursor`, atomically, then
    /// flushes. A change whose version is not newer than the latest
    /// captured for its key (by number when both are whole numbers, else by
    /// being the same) is not queued again. Within the [`QueueLimits`]: the
    /// new changes past what the flow's queue takes are left out, and then
    /// the cursor is not stored, so the page is read again from the old
    /// one ([`Checkpoints::queue_hold`] says why). Returns how many were
    /// queued.
    pub fn capture(
        &self,
        map: &str,
        direction: Direction,
        changes: &[Change],
        cursor: &str,
    ) -> Result<usize, CheckpointError> {
        self.capture_page(map, direction, changes, Some(cursor), &[])
    }

    /// [`Checkpoints::capture`], also remembering which integration key each
    /// of `ids` (`(side, id, key)`: a Dataverse row id) belongs to, so that a
    /// later delete reported by id can be queued by key. A `cursor` of
    /// `None` leaves the stored one (changes pushed by a webhook).
    pub fn capture_page(
        &self,
        map: &str,
        direction: Direction,
        changes: &[Change],
        cursor: Option<&str>,
        ids: &[(&str, &str, &str)],
    ) -> Result<usize, CheckpointError> {
        let changes: Vec<(&Change, Option<&RowHash>)> =
            changes.iter().map(|change| (change, None)).collect();
        self.capture_marked(map, direction, &changes, cursor, ids, None, None)
    }

    /// Step 2 for a read of `side` compared with what it last showed
    /// (finops reconciliation, a data event's re-read): queues each change
    /// as [`Checkpoints::capture_page`] does and, in the same transaction,
    /// stores the hash of the row it read (an upsert) or forgets the key's
    /// hash (a delete), for the changes queued only: a change older than
    /// one captured already leaves the newer hash. Flushes. Returns how
    /// many were queued. Within the [`QueueLimits`] as
    /// [`Checkpoints::capture`]: a row left out keeps its old hash (or
    /// none), so the next read finds it changed again.
    pub fn capture_seen(
        &self,
        map: &str,
        direction: Direction,
        side: &str,
        seen: &[Seen],
    ) -> Result<usize, CheckpointError> {
        let changes: Vec<(&Change, Option<&RowHash>)> = seen
            .iter()
            .map(|seen| (&seen.change, seen.hash.as_ref()))
            .collect();
        self.capture_marked(map, direction, &changes, None, &[], Some(side), None)
    }

    /// The one transaction of step 2; `hashed` names the side whose row
    /// hashes the changes carry; `mark` (a slot and value of tree
    /// `initial`) records how far the side's initial copy got with them.
    #[expect(
        clippy::too_many_arguments,
        reason = "everything step 2 stores, in one transaction"
    )]
    pub(super) fn capture_marked(
        &self,
        map: &str,
        direction: Direction,
        changes: &[(&Change, Option<&RowHash>)],
        cursor: Option<&str>,
        ids: &[(&str, &str, &str)],
        hashed: Option<&str>,
        mark: Option<&(Vec<u8>, Vec<u8>)>,
    ) -> Result<usize, CheckpointError> {
        let flow = flow(map, direction);
        let encoded = changes
            .iter()
            .map(|(change, hash)| {
                let hash = match (hashed, hash) {
                    (Some(_), Some(hash)) => Some(seen::encode(hash)?),
                    _ => None,
                };
                let slot = hashed.map(|side| seen::slot(map, side, &change.key));
                Ok((*change, slot, hash))
            })
            .collect::<Result<Vec<_>, CheckpointError>>()?;
        let captured = Utc::now();
        // Locked from deciding what fits to counting what was queued.
        let mut tally = self.counts.lock();
        let room = self.room(&mut tally, &flow)?;
        let added = (
            &self.queue,
            &self.cursor,
            &self.latest,
            &self.by_key,
            &self.ids,
            &self.hashes,
            &self.initial,
        )
            .transaction(
                |(queue, cursors, latest, by_key, id_tree, hash_tree, initial)| -> TxResult<usize> {
                    let mut added = 0;
                    let mut left_out = false;
                    for (change, hash_slot, hash) in &encoded {
                        let slot = join(&[&flow, &canon(&change.key)]);
                        if let Some(seen) = latest.get(&slot)?
                            && !newer(&change.version, &seen)
                        {
                            continue;
                        }
                        if added >= room {
                            left_out = true;
                            continue;
                        }
                        let seq = queue.generate_id()?;
                        let entry = QueuedChange {
                            seq,
                            change: (*change).clone(),
                            captured: Some(captured),
                        };
                        let value = json(&entry).map_err(ConflictableTransactionError::Abort)?;
                        queue.insert(join(&[&flow, &seq.to_be_bytes()]), value)?;
                        latest.insert(slot, change.version.as_bytes())?;
                        by_key.insert(
                            join(&[&flow, &canon(&change.key), &seq.to_be_bytes()]),
                            &[][..],
                        )?;
                        match (hash_slot, hash) {
                            (Some(hash_slot), Some(hash)) => {
                                hash_tree.insert(hash_slot.as_slice(), hash.as_slice())?;
                            }
                            (Some(hash_slot), None) => {
                                hash_tree.remove(hash_slot.as_slice())?;
                            }
                            (None, _) => {}
                        }
                        added += 1;
                    }
                    for (side, id, key) in ids {
                        id_tree.insert(
                            join(&[map.as_bytes(), side.as_bytes(), id.as_bytes()]),
                            key.as_bytes(),
                        )?;
                    }
                    // A change left out is read again from the old cursor.
                    if let Some(cursor) = cursor
                        && !left_out
                    {
                        cursors.insert(flow.as_slice(), cursor.as_bytes())?;
                    }
                    if let Some((slot, value)) = mark {
                        initial.insert(slot.as_slice(), value.as_slice())?;
                    }
                    Ok(added)
                },
            )
            .map_err(unwrap_tx)?;
        tally.add(&flow, added);
        drop(tally);
        self.db.flush()?;
        Ok(added)
    }

    /// The stored cursor of a map's direction.
    pub fn cursor(
        &self,
        map: &str,
        direction: Direction,
    ) -> Result<Option<String>, CheckpointError> {
        Ok(self
            .cursor
            .get(flow(map, direction))?
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Step 3: up to `max` changes from the head of the queue, at most one
    /// per key, none of a parked key.
    pub fn next_batch(
        &self,
        map: &str,
        direction: Direction,
        max: usize,
    ) -> Result<Vec<QueuedChange>, CheckpointError> {
        self.next_batch_except(map, direction, max, &|_| false)
    }

    /// [`Checkpoints::next_batch`] without the keys `hold` is true for (rows
    /// waiting for a lookup): their changes and those behind them wait.
    pub fn next_batch_except(
        &self,
        map: &str,
        direction: Direction,
        max: usize,
        hold: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<QueuedChange>, CheckpointError> {
        let flow = flow(map, direction);
        let mut seen = HashSet::new();
        let mut batch = Vec::new();
        for entry in self.queue.scan_prefix(prefix(&flow)) {
            if batch.len() >= max {
                break;
            }
            let (key, value) = entry?;
            let queued: QueuedChange = parse(&key, &value)?;
            let first_of_key = seen.insert(queued.change.key.to_lowercase());
            if !first_of_key
                || hold(&queued.change.key)
                || self.is_parked(&flow, &queued.change.key)?
            {
                continue;
            }
            // A parked change an admin dismissed (or discarded) between the
            // scan's read and the check above left the queue and the error
            // queue in one transaction: the check saw it unparked, so it
            // must still be queued to be taken.
            if !self.queue.contains_key(&key)? {
                continue;
            }
            batch.push(queued);
        }
        Ok(batch)
    }

    /// Step 4: the target confirmed these writes: removes `done` from the
    /// queue, stores the echo fingerprints (`(side, key, fingerprint)`) and
    /// appends `activity`, atomically, then flushes.
    pub fn complete(
        &self,
        map: &str,
        direction: Direction,
        done: &[QueuedChange],
        echoes: &[(&str, &str, [u8; 32])],
        activity: &[Activity],
    ) -> Result<(), CheckpointError> {
        self.finish(
            map,
            direction,
            &Finish {
                done,
                echoes,
                activity,
                ..Finish::default()
            },
        )
    }

    /// Step 4 with everything the engine records: [`Checkpoints::complete`]
    /// plus the images of each side's mapped fields (`None` forgets one).
    /// The intents of the changes done and of the rivals settled leave in
    /// the same transaction.
    pub fn finish(
        &self,
        map: &str,
        direction: Direction,
        finish: &Finish<'_>,
    ) -> Result<(), CheckpointError> {
        let flow = flow(map, direction);
        let rival_flow = self::flow(map, direction.reverse());
        let lines = finish
            .activity
            .iter()
            .map(|line| self.line(line))
            .collect::<Result<Vec<_>, _>>()?;
        let images = finish
            .images
            .iter()
            .map(|(side, key, image)| {
                let slot = join(&[map.as_bytes(), side.as_bytes(), &canon(key)]);
                Ok((slot, image.as_ref().map(json).transpose()?))
            })
            .collect::<Result<Vec<_>, CheckpointError>>()?;
        let removed = (
            &self.queue,
            &self.echo,
            &self.activity,
            &self.parked,
            &self.by_key,
            &self.images,
            &self.ids,
            &self.intent,
        )
            .transaction(
                |(queue, echoes, log, parked, by_key, image_tree, id_tree, intents)| -> TxResult<Removed> {
                    let mut removed = Removed::default();
                    for (side, id, key) in finish.ids {
                        id_tree.insert(
                            join(&[map.as_bytes(), side.as_bytes(), id.as_bytes()]),
                            key.as_bytes(),
                        )?;
                    }
                    for queued in finish.done {
                        removed.done += usize::from(dequeue(&flow, queued, queue, by_key)?);
                        let slot = join(&[&flow, &canon(&queued.change.key)]);
                        removed.unparked |= parked.remove(slot)?.is_some();
                        intents.remove(intent::slot(&flow, queued.seq))?;
                    }
                    for queued in finish.rivals {
                        removed.rivals += usize::from(dequeue(&rival_flow, queued, queue, by_key)?);
                        let slot = join(&[&rival_flow, &canon(&queued.change.key)]);
                        removed.rivals_unparked |= parked.remove(slot)?.is_some();
                        intents.remove(intent::slot(&rival_flow, queued.seq))?;
                    }
                    let slot = |side: &str, key: &str| {
                        join(&[map.as_bytes(), side.as_bytes(), &canon(key)])
                    };
                    let rewrite = |slot: Vec<u8>, kept: Vec<u8>| -> TxResult<()> {
                        if kept.is_empty() {
                            echoes.remove(slot)?;
                        } else {
                            echoes.insert(slot, kept)?;
                        }
                        Ok(())
                    };
                    for (side, key, fingerprint) in finish.consumed {
                        let slot = slot(side, key);
                        if let Some(stored) = echoes.get(&slot)? {
                            rewrite(slot, echo::consume(&stored, fingerprint))?;
                        }
                    }
                    for (side, key, seq) in finish.superseded {
                        let slot = slot(side, key);
                        if let Some(stored) = echoes.get(&slot)? {
                            rewrite(slot, echo::supersede(&stored, *seq))?;
                        }
                    }
                    for (side, key, fingerprint) in finish.echoes {
                        let slot = slot(side, key);
                        let stored = echoes.get(&slot)?;
                        let written = echo::Written {
                            fingerprint: *fingerprint,
                            id: echoes.generate_id()?,
                        };
                        echoes.insert(slot, echo::remember(stored.as_deref(), written))?;
                    }
                    for (slot, image) in &images {
                        match image {
                            Some(image) => image_tree.insert(slot.as_slice(), image.as_slice())?,
                            None => image_tree.remove(slot.as_slice())?,
                        };
                    }
                    for line in &lines {
                        log.insert(&log.generate_id()?.to_be_bytes()[..], line.as_slice())?;
                    }
                    Ok(removed)
                },
            )
            .map_err(unwrap_tx)?;
        self.counts.sub(&flow, removed.done);
        self.counts.sub(&rival_flow, removed.rivals);
        if removed.unparked {
            self.counts.unparked(&flow);
        }
        if removed.rivals_unparked {
            self.counts.unparked(&rival_flow);
        }
        self.db.flush()?;
        Ok(())
    }

    /// Whether a change reported by `side` for `key` hashing to
    /// `fingerprint` is the echo of one of the host's recent writes there
    /// not echoed yet.
    pub fn is_echo(
        &self,
        map: &str,
        side: &str,
        key: &str,
        fingerprint: &[u8; 32],
    ) -> Result<bool, CheckpointError> {
        Ok(self.echo(map, side, key)?.contains(fingerprint))
    }

    /// Parks the key of `failed`: its later changes wait behind it, and
    /// its write's intent (a write refused, or never sent) is dropped.
    /// Flushes.
    /// `catch_up`: the map was replaying its queue after a pause.
    pub fn park(
        &self,
        map: &str,
        direction: Direction,
        failed: &QueuedChange,
        reason: &str,
        catch_up: bool,
    ) -> Result<(), CheckpointError> {
        let flow = flow(map, direction);
        let slot = join(&[&flow, &canon(&failed.change.key)]);
        let attempts = match self.parked.get(&slot)? {
            Some(bytes) => parse::<Parked>(&slot, &bytes)?.attempts + 1,
            None => 1,
        };
        let parked = Parked {
            seq: failed.seq,
            reason: reason.to_owned(),
            attempts,
            resubmitted: false,
            key: failed.change.key.clone(),
            phase: failed.change.phase,
            at: Some(super::now()),
            catch_up,
        };
        let parked = json(&parked)?;
        let intent = intent::slot(&flow, failed.seq);
        (&self.parked, &self.intent)
            .transaction(|(parked_tree, intents)| -> TxResult<()> {
                parked_tree.insert(slot.as_slice(), parked.as_slice())?;
                intents.remove(intent.as_slice())?;
                Ok(())
            })
            .map_err(unwrap_tx)?;
        self.db.flush()?;
        Ok(())
    }

    /// The parked keys of a map's direction, with why.
    pub fn parked(
        &self,
        map: &str,
        direction: Direction,
    ) -> Result<Vec<(String, Parked)>, CheckpointError> {
        let flow = flow(map, direction);
        let start = flow.len() + 1;
        let mut parked = Vec::new();
        for entry in self.parked.scan_prefix(prefix(&flow)) {
            let (key, value) = entry?;
            let entry: Parked = parse(&key, &value)?;
            if !entry.resubmitted {
                let key = match entry.key.is_empty() {
                    true => String::from_utf8_lossy(&key[start..]).into_owned(),
                    false => entry.key.clone(),
                };
                parked.push((key, entry));
            }
        }
        Ok(parked)
    }

    /// Unparks `key`: its failed change and those behind it flow again.
    pub fn resubmit(
        &self,
        map: &str,
        direction: Direction,
        key: &str,
    ) -> Result<(), CheckpointError> {
        let flow = flow(map, direction);
        let slot = join(&[&flow, &canon(key)]);
        let mut parked = self.still_parked(&slot, map, direction, key)?;
        parked.resubmitted = true;
        self.parked.insert(slot, json(&parked)?)?;
        self.counts.unparked(&flow);
        self.db.flush()?;
        Ok(())
    }

    /// Drops the failed change of a parked key and unparks it: the changes
    /// behind it flow.
    pub fn discard(
        &self,
        map: &str,
        direction: Direction,
        key: &str,
    ) -> Result<(), CheckpointError> {
        self.discard_as(map, direction, key, Action::Discarded)
    }

    /// [`Checkpoints::discard`], its activity line saying `what`.
    pub(super) fn discard_as(
        &self,
        map: &str,
        direction: Direction,
        key: &str,
        what: Action,
    ) -> Result<(), CheckpointError> {
        let flow = flow(map, direction);
        let slot = join(&[&flow, &canon(key)]);
        let parked = self.still_parked(&slot, map, direction, key)?;
        let entry = join(&[&flow, &parked.seq.to_be_bytes()]);
        let queued = match self.queue.get(&entry)? {
            Some(bytes) => Some(parse::<QueuedChange>(&entry, &bytes)?),
            None => None,
        };
        let mut activity = Activity::new(map, direction, key, what, parked.reason.clone())
            .step(super::Step::Admin);
        if let Some(queued) = &queued {
            activity = activity.row(&queued.change.row);
        }
        let line = self.line(&activity)?;
        let intent = intent::slot(&flow, parked.seq);
        let removed = (
            &self.queue,
            &self.parked,
            &self.activity,
            &self.by_key,
            &self.intent,
        )
            .transaction(
                |(queue, parked_tree, log, by_key, intents)| -> TxResult<bool> {
                    let removed = match &queued {
                        Some(queued) => dequeue(&flow, queued, queue, by_key)?,
                        None => false,
                    };
                    intents.remove(intent.as_slice())?;
                    parked_tree.remove(slot.as_slice())?;
                    log.insert(&log.generate_id()?.to_be_bytes()[..], line.as_slice())?;
                    Ok(removed)
                },
            )
            .map_err(unwrap_tx)?;
        self.counts.sub(&flow, usize::from(removed));
        self.counts.unparked(&flow);
        self.db.flush()?;
        if queued
            .as_ref()
            .is_some_and(|q| q.change.phase == super::Phase::InitialSync)
        {
            self.initial_discarded(map, direction, key)?;
        }
        Ok(())
    }

    /// How many changes wait in a map's direction (parked ones included),
    /// without reading the queue: the store counts them.
    pub fn queued(&self, map: &str, direction: Direction) -> usize {
        self.counts.get(&flow(map, direction))
    }

    /// A fresh id on the store's one counter, which also numbers the queue
    /// and the echo history: taken before reading a source, it orders the
    /// read against the host's writes.
    pub fn stamp(&self) -> Result<u64, CheckpointError> {
        Ok(self.db.generate_id()?)
    }

    /// Writes everything to disk.
    pub fn flush(&self) -> Result<(), CheckpointError> {
        self.db.flush()?;
        Ok(())
    }

    /// The activity log, oldest first.
    pub fn activity(&self) -> Result<Vec<Activity>, CheckpointError> {
        self.activity
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                parse(&key, &value)
            })
            .collect()
    }

    /// The parked entry at `slot`, unless there is none or it was
    /// resubmitted already.
    pub(super) fn still_parked(
        &self,
        slot: &[u8],
        map: &str,
        direction: Direction,
        key: &str,
    ) -> Result<Parked, CheckpointError> {
        match self.parked.get(slot)? {
            Some(bytes) => {
                let parked: Parked = parse(slot, &bytes)?;
                if parked.resubmitted {
                    Err(not_parked(map, direction, key))
                } else {
                    Ok(parked)
                }
            }
            None => Err(not_parked(map, direction, key)),
        }
    }

    pub(super) fn echo_tree(&self) -> &sled::Tree {
        &self.echo
    }

    pub(super) fn queue_tree(&self) -> &sled::Tree {
        &self.queue
    }

    pub(super) fn is_parked(&self, flow: &[u8], key: &str) -> Result<bool, CheckpointError> {
        let slot = join(&[flow, &canon(key)]);
        match self.parked.get(&slot)? {
            Some(bytes) => Ok(!parse::<Parked>(&slot, &bytes)?.resubmitted),
            None => Ok(false),
        }
    }
}

/// How long [`open_sled`] waits for a store another handle of this process
/// lets go of.
const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Opens the sled database in `dir`. A database just dropped by this
/// process (an engine shut down and started again) stays locked until
/// sled's flusher thread has ended, which a busy machine delays: a lock
/// refusal is retried for [`RELEASE_WAIT`]; a lock another process holds
/// is still refused after it.
pub fn open_sled(dir: &Path) -> sled::Result<sled::Db> {
    let started = std::time::Instant::now();
    loop {
        match sled::open(dir) {
            Err(sled::Error::Io(error))
                if error.to_string().contains("could not acquire lock")
                    && started.elapsed() < RELEASE_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            opened => return opened,
        }
    }
}

pub(super) fn flow(map: &str, direction: Direction) -> Vec<u8> {
    join(&[map.as_bytes(), direction.code().as_bytes()])
}

pub(super) fn prefix(flow: &[u8]) -> Vec<u8> {
    let mut prefix = flow.to_vec();
    prefix.push(0);
    prefix
}

/// A key as the store indexes it: in lower case, since both services
/// compare keys without case (`usmf` and `USMF` are one company).
pub(super) fn canon(key: &str) -> Vec<u8> {
    key.to_lowercase().into_bytes()
}

/// Parts joined by NUL bytes (no part of a key holds a NUL byte: map names,
/// keys and versions are text from configuration and OData).
pub(super) fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut key = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            key.push(0);
        }
        key.extend_from_slice(part);
    }
    key
}

pub(super) fn json(value: &impl Serialize) -> Result<Vec<u8>, CheckpointError> {
    serde_json::to_vec(value).map_err(|error| CheckpointError::Corrupt {
        key: "(new entry)".into(),
        detail: error.to_string(),
    })
}

pub(super) fn parse<T: DeserializeOwned>(key: &[u8], value: &[u8]) -> Result<T, CheckpointError> {
    serde_json::from_slice(value).map_err(|error| CheckpointError::Corrupt {
        key: String::from_utf8_lossy(key).replace('\0', "/"),
        detail: error.to_string(),
    })
}

/// What a [`Checkpoints::finish`] took out of the queues.
#[derive(Debug, Default)]
struct Removed {
    /// Changes of the batch's flow dequeued.
    done: usize,
    /// Changes of the other direction dequeued.
    rivals: usize,
    /// Whether a parked entry of the batch's flow went.
    unparked: bool,
    /// Whether a parked entry of the other direction went.
    rivals_unparked: bool,
}

/// Removes `queued` from its queue and the queue's index by key; false
/// when it was not queued (any more).
pub(super) fn dequeue(
    flow: &[u8],
    queued: &QueuedChange,
    queue: &TransactionalTree,
    by_key: &TransactionalTree,
) -> TxResult<bool> {
    let seq = queued.seq.to_be_bytes();
    let removed = queue.remove(join(&[flow, &seq]))?.is_some();
    by_key.remove(join(&[flow, &canon(&queued.change.key), &seq]))?;
    Ok(removed)
}

/// Whether source version `new` comes after `seen`: by number when both are
/// whole numbers (row versions, `versionnumber`), else whenever they differ.
fn newer(new: &str, seen: &[u8]) -> bool {
    let seen = String::from_utf8_lossy(seen);
    match (new.parse::<u64>(), seen.parse::<u64>()) {
        (Ok(new), Ok(seen)) => new > seen,
        _ => new != seen || new.is_empty(),
    }
}

fn not_parked(map: &str, direction: Direction, key: &str) -> CheckpointError {
    CheckpointError::NotParked {
        map: map.to_owned(),
        direction,
        key: key.to_owned(),
    }
}

pub(super) fn unwrap_tx(error: TransactionError<CheckpointError>) -> CheckpointError {
    match error {
        TransactionError::Abort(error) => error,
        TransactionError::Storage(error) => CheckpointError::Sled(error),
    }
}
