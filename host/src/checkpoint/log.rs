//! The activity log as admins read it: one timeline for all maps (tree
//! `activity`, in the order lines were stored), indexed by map and by key
//! (trees `activity_by_map` and `activity_by_key`, kept up to date by
//! [`Checkpoints::index_activity`] before each query and by the pruner),
//! read by time (a line's number grows with its time, so the first line at
//! or after a time is found by bisection), and pruned by age and by size
//! ([`Checkpoints::prune_activity`]).
//!
//! Indexing after the fact keeps every writer of the log as it was: the
//! lines are stored in the transaction that decided them, and the indexes
//! follow.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::ops::{canon, join, parse};
use super::{Activity, CheckpointError, Checkpoints};

/// Which lines to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    /// Only this map's.
    pub map: Option<String>,
    /// Only this key's (with `map`, through the key index; without it,
    /// every map's lines of that key).
    pub key: Option<String>,
    /// Only errors (lines with an error class).
    pub errors: bool,
    /// Only errors of this class.
    pub class: Option<super::ErrorClass>,
    /// Only lines at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only lines after this one (`LogLine::seq`): what a follower read
    /// last.
    pub after: Option<u64>,
}

/// A line of the log with its place in it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// Its place in the timeline (growing with time).
    pub seq: u64,
    /// The line.
    pub line: Activity,
}

/// How much of the log to keep (`[engine.log]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Lines older than this go.
    pub max_age: Duration,
    /// The oldest lines go while the log holds more bytes than this.
    pub max_bytes: u64,
}

/// What a prune removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Lines removed for their age.
    pub by_age: usize,
    /// Lines removed for the log's size.
    pub by_size: usize,
}

const INDEXED: &str = "activity-indexed";

/// One indexer at a time (a query and the pruner may both catch the
/// indexes up): the byte count must count each line once.
static INDEXING: std::sync::Mutex<()> = std::sync::Mutex::new(());
const BYTES: &str = "activity-bytes";

fn number(bytes: &[u8]) -> u64 {
    bytes.try_into().map(u64::from_be_bytes).unwrap_or_default()
}

fn at(line: &Activity) -> Option<DateTime<Utc>> {
    line.at
        .as_deref()
        .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
        .map(|at| at.with_timezone(&Utc))
}

impl Checkpoints {
    fn log_trees(&self) -> Result<(sled::Tree, sled::Tree, sled::Tree), CheckpointError> {
        Ok((
            self.db.open_tree("activity_by_map")?,
            self.db.open_tree("activity_by_key")?,
            self.db.open_tree("meta")?,
        ))
    }

    /// Indexes the lines stored since the last call, and counts their
    /// bytes. Returns how many it indexed.
    pub fn index_activity(&self) -> Result<usize, CheckpointError> {
        let _one = INDEXING.lock().unwrap_or_else(|e| e.into_inner());
        let (by_map, by_key, meta) = self.log_trees()?;
        // The number of the first line not indexed yet.
        let from = meta.get(INDEXED)?.map_or(0, |v| number(&v));
        let mut next = from;
        let mut bytes = meta.get(BYTES)?.map_or(0, |v| number(&v));
        let mut count = 0;
        for entry in self.activity.range(from.to_be_bytes()..) {
            let (seq, value) = entry?;
            let line: Activity = parse(&seq, &value)?;
            by_map.insert(join(&[line.map.as_bytes(), &seq]), &[])?;
            by_key.insert(join(&[line.map.as_bytes(), &canon(&line.key), &seq]), &[])?;
            bytes += value.len() as u64;
            next = number(&seq).saturating_add(1);
            count += 1;
        }
        if count > 0 {
            meta.insert(INDEXED, &next.to_be_bytes())?;
            meta.insert(BYTES, &bytes.to_be_bytes())?;
        }
        Ok(count)
    }

    /// The lines `filter` names, oldest first, at most `limit` of them
    /// (the newest `limit` when `newest`).
    pub fn log(
        &self,
        filter: &LogFilter,
        limit: usize,
        newest: bool,
    ) -> Result<Vec<LogLine>, CheckpointError> {
        self.index_activity()?;
        let start = self
            .first_at_or_after(filter.since)?
            .max(filter.after.map_or(0, |after| after.saturating_add(1)));
        let seqs: Box<dyn Iterator<Item = Result<u64, CheckpointError>>> =
            match (&filter.map, &filter.key) {
                (Some(map), Some(key)) => {
                    let (_, by_key, _) = self.log_trees()?;
                    let prefix = join(&[map.as_bytes(), &canon(key), &[]]);
                    Box::new(seqs_under(by_key, prefix, start))
                }
                (Some(map), None) => {
                    let (by_map, _, _) = self.log_trees()?;
                    let prefix = join(&[map.as_bytes(), &[]]);
                    Box::new(seqs_under(by_map, prefix, start))
                }
                (None, _) => Box::new(
                    self.activity
                        .range(start.to_be_bytes()..)
                        .keys()
                        .map(|key| Ok(number(&key?))),
                ),
            };
        let mut lines = Vec::new();
        for seq in seqs {
            let seq = seq?;
            if seq < start {
                continue;
            }
            let Some(value) = self.activity.get(seq.to_be_bytes())? else {
                continue;
            };
            let line: Activity = parse(&seq.to_be_bytes(), &value)?;
            if filter.errors && line.class.is_none() {
                continue;
            }
            if filter.class.is_some() && line.class != filter.class {
                continue;
            }
            if let Some(key) = &filter.key
                && !line.key.eq_ignore_ascii_case(key)
            {
                continue;
            }
            lines.push(LogLine { seq, line });
            if !newest && lines.len() >= limit {
                break;
            }
        }
        if newest && lines.len() > limit {
            lines.drain(..lines.len() - limit);
        }
        Ok(lines)
    }

    /// The number of the first line at or after `since` (0: from the
    /// first), by bisection over the timeline.
    fn first_at_or_after(&self, since: Option<DateTime<Utc>>) -> Result<u64, CheckpointError> {
        let Some(since) = since else {
            return Ok(0);
        };
        let first = match self.activity.first()? {
            Some((key, _)) => number(&key),
            None => return Ok(0),
        };
        let last = match self.activity.last()? {
            Some((key, _)) => number(&key),
            None => return Ok(0),
        };
        let (mut low, mut high) = (first, last.saturating_add(1));
        while low < high {
            let middle = low + (high - low) / 2;
            match self.activity.range(middle.to_be_bytes()..).next() {
                Some(entry) => {
                    let (key, value) = entry?;
                    let line: Activity = parse(&key, &value)?;
                    if at(&line).is_some_and(|at| at < since) {
                        low = number(&key).saturating_add(1);
                    } else {
                        high = middle;
                    }
                }
                None => high = middle,
            }
        }
        Ok(low)
    }

    /// Removes the lines older than `retention.max_age`, then the oldest
    /// while the log holds more than `retention.max_bytes`, with their
    /// index entries. Flushed.
    pub fn prune_activity(&self, retention: Retention) -> Result<Pruned, CheckpointError> {
        self.index_activity()?;
        let _one = INDEXING.lock().unwrap_or_else(|e| e.into_inner());
        let (by_map, by_key, meta) = self.log_trees()?;
        let cutoff = Utc::now()
            - chrono::Duration::from_std(retention.max_age).unwrap_or(chrono::Duration::MAX);
        let mut bytes = meta.get(BYTES)?.map_or(0, |v| number(&v));
        let indexed = meta.get(INDEXED)?.map_or(0, |v| number(&v));
        let mut pruned = Pruned::default();
        for entry in self.activity.iter() {
            let (seq, value) = entry?;
            if number(&seq) >= indexed {
                break;
            }
            let line: Activity = parse(&seq, &value)?;
            let old = at(&line).is_some_and(|at| at < cutoff);
            let large = bytes > retention.max_bytes;
            if !old && !large {
                break;
            }
            self.activity.remove(&seq)?;
            by_map.remove(join(&[line.map.as_bytes(), &seq]))?;
            by_key.remove(join(&[line.map.as_bytes(), &canon(&line.key), &seq]))?;
            bytes = bytes.saturating_sub(value.len() as u64);
            match old {
                true => pruned.by_age += 1,
                false => pruned.by_size += 1,
            }
        }
        meta.insert(BYTES, &bytes.to_be_bytes())?;
        self.db.flush()?;
        Ok(pruned)
    }

    /// The bytes the log holds (as its lines were indexed).
    pub fn activity_bytes(&self) -> Result<u64, CheckpointError> {
        self.index_activity()?;
        let (_, _, meta) = self.log_trees()?;
        Ok(meta.get(BYTES)?.map_or(0, |v| number(&v)))
    }
}

/// The line numbers from `start` on that an index holds under `prefix`
/// (the last 8 bytes of each of its keys).
fn seqs_under(
    index: sled::Tree,
    prefix: Vec<u8>,
    start: u64,
) -> impl Iterator<Item = Result<u64, CheckpointError>> {
    let mut from = prefix.clone();
    from.extend_from_slice(&start.to_be_bytes());
    index
        .range(from..)
        .keys()
        .take_while(move |key| key.as_ref().map_or(true, |key| key.starts_with(&prefix)))
        .map(|key| {
            let key = key?;
            Ok(number(&key[key.len().saturating_sub(8)..]))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{Action, Direction, ErrorClass, Finish, Step};

    fn line(map: &str, key: &str, what: Action) -> Activity {
        Activity::new(
            map,
            Direction::LeftToRight,
            key,
            what,
            format!("{what} {key}"),
        )
        .step(Step::Write)
    }

    fn store_lines(store: &Checkpoints, lines: &[Activity]) {
        store
            .finish(
                "any",
                Direction::LeftToRight,
                &Finish {
                    activity: lines,
                    ..Finish::default()
                },
            )
            .expect("stored");
    }

    #[test]
    fn lines_are_found_by_map_key_class_and_time_and_followed() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = Checkpoints::open(dir.path()).expect("store");
        let mut old = line("customers", "C-1", Action::Written);
        old.at = Some("2020-01-01T00:00:00.000Z".into());
        store_lines(&store, &[old]);
        store_lines(
            &store,
            &[
                line("customers", "C-1", Action::Written),
                line("customers", "C-10", Action::Written),
                line("vendors", "C-1", Action::Written),
                line("customers", "c-1", Action::Parked).class(ErrorClass::Application),
            ],
        );
        let all = |filter: LogFilter| -> Vec<String> {
            store
                .log(&filter, 100, false)
                .expect("read")
                .into_iter()
                .map(|l| format!("{} {} {}", l.line.map, l.line.key, l.line.what))
                .collect()
        };
        assert_eq!(all(LogFilter::default()).len(), 5);
        assert_eq!(
            all(LogFilter {
                map: Some("customers".into()),
                key: Some("C-1".into()),
                ..LogFilter::default()
            }),
            [
                "customers C-1 written",
                "customers C-1 written",
                "customers c-1 parked"
            ],
            "keys compare without case; C-10 is another key"
        );
        assert_eq!(
            all(LogFilter {
                errors: true,
                ..LogFilter::default()
            }),
            ["customers c-1 parked"]
        );
        let since = DateTime::parse_from_rfc3339("2021-01-01T00:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(
            all(LogFilter {
                map: Some("customers".into()),
                since: Some(since),
                ..LogFilter::default()
            })
            .len(),
            3
        );
        // A follower reads what came after the last line it saw.
        let seen = store.log(&LogFilter::default(), 100, false).expect("read");
        let last = seen.last().expect("lines").seq;
        store_lines(&store, &[line("customers", "C-2", Action::Deleted)]);
        let after = all(LogFilter {
            after: Some(last),
            ..LogFilter::default()
        });
        assert_eq!(after, ["customers C-2 deleted"]);
        // The newest two.
        let newest = store.log(&LogFilter::default(), 2, true).expect("read");
        assert_eq!(newest.len(), 2);
        assert_eq!(newest[1].line.key, "C-2");
    }

    #[test]
    fn retention_prunes_by_age_then_by_size() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = Checkpoints::open(dir.path()).expect("store");
        let mut old = line("customers", "OLD", Action::Written);
        old.at = Some("2020-01-01T00:00:00.000Z".into());
        store_lines(&store, &[old]);
        let fresh: Vec<Activity> = (0..50)
            .map(|n| line("customers", &format!("C-{n}"), Action::Written))
            .collect();
        store_lines(&store, &fresh);
        let day = Duration::from_secs(24 * 60 * 60);
        let pruned = store
            .prune_activity(Retention {
                max_age: day,
                max_bytes: u64::MAX,
            })
            .expect("pruned");
        assert_eq!(
            pruned,
            Pruned {
                by_age: 1,
                by_size: 0
            }
        );
        let bytes = store.activity_bytes().expect("bytes");
        let pruned = store
            .prune_activity(Retention {
                max_age: day,
                max_bytes: bytes / 2,
            })
            .expect("pruned");
        assert!(pruned.by_size >= 24 && pruned.by_size <= 26, "{pruned:?}");
        assert!(store.activity_bytes().expect("bytes") <= bytes / 2);
        let left = store.log(&LogFilter::default(), 100, false).expect("read");
        assert_eq!(
            left.last().expect("lines").line.key,
            "C-49",
            "the newest stay"
        );
        // The index lost the pruned lines too.
        let by_key = store
            .log(
                &LogFilter {
                    map: Some("customers".into()),
                    key: Some("C-0".into()),
                    ..LogFilter::default()
                },
                100,
                false,
            )
            .expect("read");
        assert!(by_key.is_empty(), "{by_key:?}");
    }
}
