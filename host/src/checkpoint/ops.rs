//! [`Checkpoints`]: the operations of the checkpoint protocol over sled.

use super::{Activity, Change, CheckpointError, Direction, LAYOUT, Parked, QueuedChange};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use std::collections::HashSet;
use std::path::Path;

/// The checkpoint store of one host.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    db: sled::Db,
    queue: sled::Tree,
    dedupe: sled::Tree,
    cursor: sled::Tree,
    parked: sled::Tree,
    echo: sled::Tree,
    activity: sled::Tree,
}

type TxResult<T> = Result<T, ConflictableTransactionError<CheckpointError>>;

impl Checkpoints {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Checkpoints, CheckpointError> {
        let db = sled::open(dir)?;
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
        Ok(Checkpoints {
            queue: db.open_tree("queue")?,
            dedupe: db.open_tree("dedupe")?,
            cursor: db.open_tree("cursor")?,
            parked: db.open_tree("parked")?,
            echo: db.open_tree("echo")?,
            activity: db.open_tree("activity")?,
            db,
        })
    }

    /// Step 2: queues `changes` and stores `cursor`, atomically, then
    /// flushes. A change already queued (same key and source version) is not
    /// queued again. Returns how many were new.
    pub fn capture(
        &self,
        map: &str,
        direction: Direction,
        changes: &[Change],
        cursor: &str,
    ) -> Result<usize, CheckpointError> {
        let flow = flow(map, direction);
        let encoded = changes
            .iter()
            .map(|change| Ok((change, json(change)?)))
            .collect::<Result<Vec<_>, CheckpointError>>()?;
        let added = (&self.queue, &self.dedupe, &self.cursor)
            .transaction(|(queue, dedupe, cursors)| -> TxResult<usize> {
                let mut added = 0;
                for (change, _) in &encoded {
                    let mark = join(&[&flow, change.key.as_bytes(), change.version.as_bytes()]);
                    if dedupe.get(&mark)?.is_some() {
                        continue;
                    }
                    let seq = queue.generate_id()?;
                    let entry = QueuedChange {
                        seq,
                        change: (*change).clone(),
                    };
                    let value = json(&entry).map_err(ConflictableTransactionError::Abort)?;
                    queue.insert(join(&[&flow, &seq.to_be_bytes()]), value)?;
                    dedupe.insert(mark, &seq.to_be_bytes())?;
                    added += 1;
                }
                cursors.insert(flow.as_slice(), cursor.as_bytes())?;
                Ok(added)
            })
            .map_err(unwrap_tx)?;
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
        let flow = flow(map, direction);
        let mut seen = HashSet::new();
        let mut batch = Vec::new();
        for entry in self.queue.scan_prefix(prefix(&flow)) {
            if batch.len() >= max {
                break;
            }
            let (key, value) = entry?;
            let queued: QueuedChange = parse(&key, &value)?;
            let first_of_key = seen.insert(queued.change.key.clone());
            if !first_of_key || self.is_parked(&flow, &queued.change.key)? {
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
        let flow = flow(map, direction);
        let lines = activity.iter().map(json).collect::<Result<Vec<_>, _>>()?;
        (
            &self.queue,
            &self.dedupe,
            &self.echo,
            &self.activity,
            &self.parked,
        )
            .transaction(|(queue, dedupe, echo, log, parked)| -> TxResult<()> {
                for queued in done {
                    queue.remove(join(&[&flow, &queued.seq.to_be_bytes()]))?;
                    let change = &queued.change;
                    parked.remove(join(&[&flow, change.key.as_bytes()]))?;
                    dedupe.remove(join(&[
                        &flow,
                        change.key.as_bytes(),
                        change.version.as_bytes(),
                    ]))?;
                }
                for (side, key, fingerprint) in echoes {
                    echo.insert(
                        join(&[map.as_bytes(), side.as_bytes(), key.as_bytes()]),
                        &fingerprint[..],
                    )?;
                }
                for line in &lines {
                    log.insert(&log.generate_id()?.to_be_bytes()[..], line.as_slice())?;
                }
                Ok(())
            })
            .map_err(unwrap_tx)?;
        self.db.flush()?;
        Ok(())
    }

    /// Whether a change reported by `side` for `key` hashing to
    /// `fingerprint` is the echo of the host's own last write there.
    pub fn is_echo(
        &self,
        map: &str,
        side: &str,
        key: &str,
        fingerprint: &[u8; 32],
    ) -> Result<bool, CheckpointError> {
        Ok(self
            .echo
            .get(join(&[map.as_bytes(), side.as_bytes(), key.as_bytes()]))?
            .is_some_and(|stored| &*stored == fingerprint))
    }

    /// Parks the key of `failed`: its later changes wait behind it. Flushes.
    pub fn park(
        &self,
        map: &str,
        direction: Direction,
        failed: &QueuedChange,
        reason: &str,
    ) -> Result<(), CheckpointError> {
        let flow = flow(map, direction);
        let slot = join(&[&flow, failed.change.key.as_bytes()]);
        let attempts = match self.parked.get(&slot)? {
            Some(bytes) => parse::<Parked>(&slot, &bytes)?.attempts + 1,
            None => 1,
        };
        let parked = Parked {
            seq: failed.seq,
            reason: reason.to_owned(),
            attempts,
            resubmitted: false,
        };
        self.parked.insert(slot, json(&parked)?)?;
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
                parked.push((String::from_utf8_lossy(&key[start..]).into_owned(), entry));
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
        let slot = join(&[&flow(map, direction), key.as_bytes()]);
        let mut parked = self.still_parked(&slot, map, direction, key)?;
        parked.resubmitted = true;
        self.parked.insert(slot, json(&parked)?)?;
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
        let flow = flow(map, direction);
        let slot = join(&[&flow, key.as_bytes()]);
        let parked = self.still_parked(&slot, map, direction, key)?;
        let entry = join(&[&flow, &parked.seq.to_be_bytes()]);
        let queued = match self.queue.get(&entry)? {
            Some(bytes) => Some(parse::<QueuedChange>(&entry, &bytes)?),
            None => None,
        };
        let activity = Activity {
            map: map.to_owned(),
            direction,
            key: key.to_owned(),
            what: "discarded".into(),
            detail: parked.reason.clone(),
        };
        let line = json(&activity)?;
        (&self.queue, &self.dedupe, &self.parked, &self.activity)
            .transaction(|(queue, dedupe, parked_tree, log)| -> TxResult<()> {
                if let Some(queued) = &queued {
                    queue.remove(entry.as_slice())?;
                    let change = &queued.change;
                    dedupe.remove(join(&[
                        &flow,
                        change.key.as_bytes(),
                        change.version.as_bytes(),
                    ]))?;
                }
                parked_tree.remove(slot.as_slice())?;
                log.insert(&log.generate_id()?.to_be_bytes()[..], line.as_slice())?;
                Ok(())
            })
            .map_err(unwrap_tx)?;
        self.db.flush()?;
        Ok(())
    }

    /// How many changes wait in a map's direction.
    pub fn queued(&self, map: &str, direction: Direction) -> usize {
        self.queue
            .scan_prefix(prefix(&flow(map, direction)))
            .count()
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
    fn still_parked(
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

    fn is_parked(&self, flow: &[u8], key: &str) -> Result<bool, CheckpointError> {
        let slot = join(&[flow, key.as_bytes()]);
        match self.parked.get(&slot)? {
            Some(bytes) => Ok(!parse::<Parked>(&slot, &bytes)?.resubmitted),
            None => Ok(false),
        }
    }
}

fn flow(map: &str, direction: Direction) -> Vec<u8> {
    join(&[map.as_bytes(), direction.code().as_bytes()])
}

fn prefix(flow: &[u8]) -> Vec<u8> {
    let mut prefix = flow.to_vec();
    prefix.push(0);
    prefix
}

/// Parts joined by NUL bytes (no part of a key holds a NUL byte: map names,
/// keys and versions are text from configuration and OData).
fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut key = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            key.push(0);
        }
        key.extend_from_slice(part);
    }
    key
}

fn json(value: &impl Serialize) -> Result<Vec<u8>, CheckpointError> {
    serde_json::to_vec(value).map_err(|error| CheckpointError::Corrupt {
        key: "(new entry)".into(),
        detail: error.to_string(),
    })
}

fn parse<T: DeserializeOwned>(key: &[u8], value: &[u8]) -> Result<T, CheckpointError> {
    serde_json::from_slice(value).map_err(|error| CheckpointError::Corrupt {
        key: String::from_utf8_lossy(key).replace('\0', "/"),
        detail: error.to_string(),
    })
}

fn not_parked(map: &str, direction: Direction, key: &str) -> CheckpointError {
    CheckpointError::NotParked {
        map: map.to_owned(),
        direction,
        key: key.to_owned(),
    }
}

fn unwrap_tx(error: TransactionError<CheckpointError>) -> CheckpointError {
    match error {
        TransactionError::Abort(error) => error,
        TransactionError::Storage(error) => CheckpointError::Sled(error),
    }
}
