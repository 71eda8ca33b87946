//! Row storage in sled, shared by both emulators.
//!
//! One tree, `data`, holds every table; a write touches rows, indexes and
//! the change log of one or more tables in a single sled transaction, so a
//! `$batch` change set commits or rolls back as a whole.
//!
//! Key layout, version 1 (the `meta` tree records `layout = 1`):
//! - `r\0<table>\0<pk>` → [`StoredRow`] as JSON
//! - `i\0<table>\0<key name>\0<values>` → `<pk>` (alternate key index)
//! - `c\0<table>\0<version, u64 big-endian>` → [`ChangeEntry`] as JSON: one
//!   entry per live row (its latest version) and one per deleted row (a
//!   tombstone), so a delta read is a range scan from a version on
//! - `t\0<table>\0<pk>` → tombstone version, to drop it if the row comes back
//! - `m\0version` → the last version given out (global, like a rowversion)
//! - `m\0purged\0<table>` → versions at or below it are no longer tracked
//! - `s\0<subscription id>` → a data event subscription as JSON
//! - `q\0<subscription id>\0<sequence, u64 big-endian>` → an event waiting
//!   for delivery, removed once its endpoint answered 2xx
//! - `w\0<table>\0<pk>` → how many writes (creates, updates, deletes) the
//!   row has received, u64 big-endian, counted in the write's transaction
//!   and kept after a delete ([`Store::writes`]): what a test counts to
//!   show a row written once, which a row count cannot (an upsert by key
//!   never makes a second row). Added to layout 1 without a new version:
//!   a store made before it counts the writes from then on.
//!
//! Invariants: versions only grow; a row's `version` is the key of its
//! change entry; the store is flushed on shutdown.
//!
//! Writes that may run at once commit one at a time
//! ([`Store::transact_serial`]): every write takes the next version from
//! one counter, so concurrent sled transactions would all conflict on it
//! and be run again, over and over for large `$batch`es. Committing in
//! turn, as a database's row version sequence does, is what lets several
//! batches in flight be served at the rate of one. A write that must be
//! agreed to before it commits ([`Store::transact_checked`]) holds that
//! turn from its dry run to its commit, so what was agreed to is what
//! commits; reads take no turn and go on meanwhile.

use std::future::Future;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sled::transaction::{ConflictableTransactionError, TransactionError};

mod tx;

pub use tx::{IndexEntries, Tx};

const LAYOUT: &[u8] = b"1";

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed.
    #[error("storage failed")]
    Sled(#[from] sled::Error),
    /// The data directory holds another layout.
    #[error("data directory uses storage layout {found}, this build reads layout 1")]
    Layout {
        /// The layout found.
        found: String,
    },
    /// A temporary data directory could not be made.
    #[error("could not create a temporary data directory")]
    TempDir(#[source] std::io::Error),
    /// A stored value is not valid JSON.
    #[error("stored value under {key} is corrupt")]
    Corrupt {
        /// The sled key.
        key: String,
    },
}

/// A semantic failure of a write, turned into the caller's error type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteConflict {
    /// Another row already has these alternate key values.
    DuplicateKey {
        /// The key name.
        key: String,
    },
}

/// A row as stored: its version and its fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredRow {
    /// Version of the last write.
    pub version: u64,
    /// The row's fields, system fields included.
    pub row: Map<String, Value>,
}

/// How many writes one row received ([`Store::writes`]), with the row as
/// it is now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowWrites {
    /// The row's primary key as the store encodes it.
    pub id: String,
    /// Committed writes of the row: creates, updates and deletes.
    pub writes: u64,
    /// The row's fields now; `None` once it is deleted.
    pub row: Option<Map<String, Value>>,
}

/// A stored row read by [`Store::scan`], parsed only when asked.
#[derive(Debug)]
pub struct RawRow {
    /// The row's encoded primary key.
    pub pk: String,
    key: sled::IVec,
    value: sled::IVec,
}

impl RawRow {
    /// The row.
    pub fn parse(&self) -> Result<StoredRow, StoreError> {
        parse(&self.key, &self.value)
    }
}

/// One entry of a table's change log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChangeEntry {
    /// Encoded primary key.
    pub pk: String,
    /// True for a tombstone.
    pub deleted: bool,
    /// For tombstones: the key fields of the deleted row.
    #[serde(default)]
    pub key: Map<String, Value>,
    /// When the change was committed (RFC 3339, milliseconds).
    #[serde(default)]
    pub at: Option<String>,
}

fn now() -> Option<String> {
    Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// The sled database of one emulator.
#[derive(Debug)]
pub struct Store {
    db: sled::Db,
    data: sled::Tree,
    /// Held by a write transaction while it runs.
    writer: tokio::sync::Mutex<()>,
    _temp: Option<tempfile::TempDir>,
}

fn row_key(table: &str, pk: &str) -> Vec<u8> {
    format!("r\0{table}\0{pk}").into_bytes()
}

fn row_prefix(table: &str) -> Vec<u8> {
    format!("r\0{table}\0").into_bytes()
}

fn index_key(table: &str, key: &str, values: &str) -> Vec<u8> {
    format!("i\0{table}\0{key}\0{values}").into_bytes()
}

fn change_prefix(table: &str) -> Vec<u8> {
    format!("c\0{table}\0").into_bytes()
}

fn change_key(table: &str, version: u64) -> Vec<u8> {
    let mut k = change_prefix(table);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

fn tomb_key(table: &str, pk: &str) -> Vec<u8> {
    format!("t\0{table}\0{pk}").into_bytes()
}

fn writes_prefix(table: &str) -> Vec<u8> {
    format!("w\0{table}\0").into_bytes()
}

fn writes_key(table: &str, pk: &str) -> Vec<u8> {
    format!("w\0{table}\0{pk}").into_bytes()
}

fn purged_key(table: &str) -> Vec<u8> {
    format!("m\0purged\0{table}").into_bytes()
}

const VERSION_KEY: &[u8] = b"m\0version";

fn decode_u64(bytes: &[u8]) -> u64 {
    bytes.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

/// Encodes key values (strings folded to lower case: keys compare without
/// case on both services) into one index or primary key string.
pub fn encode_key(values: &[&Value]) -> String {
    values
        .iter()
        .map(|v| match v {
            Value::String(s) => Value::String(s.to_lowercase()).to_string(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\u{1f}")
}

impl Store {
    /// Opens (or creates) the store in `dir`, or in a temporary directory
    /// removed on drop when `dir` is `None`.
    pub fn open(dir: Option<&Path>) -> Result<Self, StoreError> {
        let (path, temp) = match dir {
            Some(d) => (d.to_path_buf(), None),
            None => {
                let t = tempfile::tempdir().map_err(StoreError::TempDir)?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        // A store just dropped in this process may be locked a moment
        // longer (its flusher thread ending).
        let db = dualwrite::checkpoint::open_sled(&path)?;
        let meta = db.open_tree("meta")?;
        match meta.get("layout")? {
            None => {
                meta.insert("layout", LAYOUT)?;
            }
            Some(found) if found.as_ref() == LAYOUT => {}
            Some(found) => {
                return Err(StoreError::Layout {
                    found: String::from_utf8_lossy(&found).into_owned(),
                });
            }
        }
        let data = db.open_tree("data")?;
        Ok(Self {
            db,
            data,
            writer: tokio::sync::Mutex::new(()),
            _temp: temp,
        })
    }

    /// Stores a data event subscription.
    pub fn put_subscription(&self, id: &str, subscription: &Value) -> Result<(), StoreError> {
        self.data.insert(format!("s\0{id}"), json(subscription))?;
        Ok(())
    }

    /// Every stored subscription: (id, JSON).
    pub fn subscriptions(&self) -> Result<Vec<(String, Value)>, StoreError> {
        let mut out = Vec::new();
        for item in self.data.scan_prefix(b"s\0") {
            let (k, v) = item?;
            out.push((
                String::from_utf8_lossy(&k[2..]).into_owned(),
                parse(&k, &v)?,
            ));
        }
        Ok(out)
    }

    /// Removes a subscription and its pending events.
    pub fn remove_subscription(&self, id: &str) -> Result<(), StoreError> {
        self.data.remove(format!("s\0{id}"))?;
        for item in self.data.scan_prefix(format!("q\0{id}\0")) {
            let (k, _) = item?;
            self.data.remove(k)?;
        }
        Ok(())
    }

    /// Appends an event to a subscription's delivery queue.
    pub fn enqueue(&self, id: &str, event: &Value) -> Result<(), StoreError> {
        let mut key = format!("q\0{id}\0").into_bytes();
        key.extend_from_slice(&self.db.generate_id()?.to_be_bytes());
        self.data.insert(key, json(event))?;
        Ok(())
    }

    /// The oldest queued event of a subscription: (queue key, event).
    pub fn first_queued(&self, id: &str) -> Result<Option<(Vec<u8>, Value)>, StoreError> {
        match self.data.scan_prefix(format!("q\0{id}\0")).next() {
            None => Ok(None),
            Some(item) => {
                let (k, v) = item?;
                Ok(Some((k.to_vec(), parse(&k, &v)?)))
            }
        }
    }

    /// How many events wait in the delivery queues of all subscriptions.
    pub fn queued_events(&self) -> usize {
        self.data
            .scan_prefix("q\0")
            .filter(|item| item.is_ok())
            .count()
    }

    /// Removes a delivered event.
    pub fn dequeue(&self, key: &[u8]) -> Result<(), StoreError> {
        self.data.remove(key)?;
        Ok(())
    }

    /// Flushes everything to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// Runs `f` as one atomic transaction after the write transactions
    /// before it (see the module doc). Cancelled while it waits, it runs
    /// nothing.
    pub async fn transact_serial<T, E>(
        &self,
        f: impl Fn(&Tx<'_>) -> Result<T, ConflictableTransactionError<E>>,
    ) -> Result<T, TxFailure<E>> {
        let _turn = self.writer.lock().await;
        self.transact(f)
    }

    /// As [`Store::transact_serial`], with a `check` between a dry run and
    /// the commit: under the writer lock, `f` runs once and is rolled back,
    /// `check` is given what it returned (the write's outcome as it will
    /// be), and only if `check` agrees does `f` run again and commit, the
    /// lock held throughout so nothing else is written in between (reads
    /// go on: they take no lock). A failed dry run is the write's failure,
    /// and `check` is not called. What synchronous webhook steps need: they
    /// run inside the write's transaction, so their refusal rolls it back
    /// (<https://learn.microsoft.com/power-apps/developer/data-platform/use-webhooks>).
    pub async fn transact_checked<T, E, F, C, Fut>(&self, f: F, check: C) -> Result<T, TxFailure<E>>
    where
        F: Fn(&Tx<'_>) -> Result<T, ConflictableTransactionError<E>>,
        C: FnOnce(T) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        let _turn = self.writer.lock().await;
        check(self.dry_run(&f)?).await.map_err(TxFailure::Abort)?;
        self.transact(f)
    }

    /// Runs `f` in a transaction and rolls it back: what it returned, or
    /// why it failed.
    fn dry_run<T, E>(
        &self,
        f: impl Fn(&Tx<'_>) -> Result<T, ConflictableTransactionError<E>>,
    ) -> Result<T, TxFailure<E>> {
        /// Why the dry run's transaction aborts: always, with its outcome.
        enum Rollback<T, E> {
            Done(T),
            Failed(E),
        }
        let ran = self
            .data
            .transaction::<_, std::convert::Infallible, _>(|tree| {
                Err(match f(&Tx { tree }) {
                    Ok(done) => ConflictableTransactionError::Abort(Rollback::Done(done)),
                    Err(ConflictableTransactionError::Abort(e)) => {
                        ConflictableTransactionError::Abort(Rollback::Failed(e))
                    }
                    Err(ConflictableTransactionError::Conflict) => {
                        ConflictableTransactionError::Conflict
                    }
                    Err(ConflictableTransactionError::Storage(e)) => {
                        ConflictableTransactionError::Storage(e)
                    }
                })
            });
        match ran {
            Ok(never) => match never {},
            Err(TransactionError::Abort(Rollback::Done(done))) => Ok(done),
            Err(TransactionError::Abort(Rollback::Failed(e))) => Err(TxFailure::Abort(e)),
            Err(TransactionError::Storage(e)) => Err(TxFailure::Store(StoreError::Sled(e))),
        }
    }

    /// Runs `f` while holding the writer lock, so no write transaction
    /// runs meanwhile: for a write that reads rows (a scan, which a
    /// transaction cannot do) before it writes them.
    pub async fn serial<T>(&self, f: impl FnOnce() -> T) -> T {
        let _turn = self.writer.lock().await;
        f()
    }

    /// Runs `f` as one atomic transaction (sled may run it more than once);
    /// for a write that runs alone (seeding before the server serves).
    pub fn transact<T, E>(
        &self,
        f: impl Fn(&Tx<'_>) -> Result<T, ConflictableTransactionError<E>>,
    ) -> Result<T, TxFailure<E>> {
        self.data
            .transaction(|tree| f(&Tx { tree }))
            .map_err(|e| match e {
                TransactionError::Abort(e) => TxFailure::Abort(e),
                TransactionError::Storage(e) => TxFailure::Store(StoreError::Sled(e)),
            })
    }

    /// A row by primary key.
    pub fn get(&self, table: &str, pk: &str) -> Result<Option<StoredRow>, StoreError> {
        let key = row_key(table, pk);
        self.data.get(&key)?.map(|v| parse(&key, &v)).transpose()
    }

    /// The primary key under an alternate key.
    pub fn pk_by_key(
        &self,
        table: &str,
        key: &str,
        values: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .data
            .get(index_key(table, key, values))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Every row of a table, in primary key order.
    pub fn rows(&self, table: &str) -> Result<Vec<StoredRow>, StoreError> {
        self.data
            .scan_prefix(row_prefix(table))
            .map(|item| {
                let (k, v) = item?;
                parse(&k, &v)
            })
            .collect()
    }

    /// The rows of a table in primary key order, read one at a time: those
    /// whose encoded key starts with `pk_prefix`, after primary key `after`.
    /// A page needs only the rows up to its end, not the table.
    pub fn scan<'a>(
        &'a self,
        table: &str,
        after: Option<&str>,
        pk_prefix: &str,
    ) -> impl Iterator<Item = Result<RawRow, StoreError>> + 'a {
        let table_prefix = row_prefix(table);
        let mut prefix = table_prefix.clone();
        prefix.extend_from_slice(pk_prefix.as_bytes());
        let start = match after {
            Some(pk) => {
                let mut k = row_key(table, pk);
                k.push(0);
                k.max(prefix.clone())
            }
            None => prefix.clone(),
        };
        let skip = table_prefix.len();
        self.data
            .range(start..)
            .take_while(move |item| item.as_ref().map_or(true, |(k, _)| k.starts_with(&prefix)))
            .map(move |item| {
                let (key, value) = item?;
                let pk = String::from_utf8_lossy(&key[skip..]).into_owned();
                Ok(RawRow { pk, key, value })
            })
    }

    /// Up to `limit` rows of a table after primary key `after`, in key order.
    pub fn rows_after(
        &self,
        table: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, StoredRow)>, StoreError> {
        let prefix = row_prefix(table);
        let start = match after {
            Some(pk) => {
                let mut k = row_key(table, pk);
                k.push(0);
                k
            }
            None => prefix.clone(),
        };
        let mut out = Vec::new();
        for item in self.data.range(start..) {
            let (k, v) = item?;
            if !k.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            let pk = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            out.push((pk, parse(&k, &v)?));
        }
        Ok(out)
    }

    /// Change log entries of a table with a version above `after`, oldest first.
    pub fn changes_after(
        &self,
        table: &str,
        after: u64,
    ) -> Result<Vec<(u64, ChangeEntry)>, StoreError> {
        let start = change_key(table, after.saturating_add(1));
        let prefix = change_prefix(table);
        let mut out = Vec::new();
        for item in self.data.range(start..) {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            let version = decode_u64(&k[prefix.len()..]);
            out.push((version, parse(&k, &v)?));
        }
        Ok(out)
    }

    /// How many committed writes each row of `table` has received (its
    /// creates, updates and deletes), by primary key, in key order; a row
    /// never written is not listed.
    pub fn writes(&self, table: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let prefix = writes_prefix(table);
        self.data
            .scan_prefix(&prefix)
            .map(|item| {
                let (k, v) = item?;
                let pk = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                Ok((pk, decode_u64(&v)))
            })
            .collect()
    }

    /// [`Store::writes`] with each row as it is now.
    pub fn row_writes(&self, table: &str) -> Result<Vec<RowWrites>, StoreError> {
        self.writes(table)?
            .into_iter()
            .map(|(id, writes)| {
                let row = self.get(table, &id)?.map(|stored| stored.row);
                Ok(RowWrites { id, writes, row })
            })
            .collect()
    }

    /// The last version given out.
    pub fn current_version(&self) -> Result<u64, StoreError> {
        Ok(self.data.get(VERSION_KEY)?.map_or(0, |v| decode_u64(&v)))
    }

    /// Versions at or below this one are no longer tracked for `table`.
    pub fn purged_version(&self, table: &str) -> Result<u64, StoreError> {
        Ok(self
            .data
            .get(purged_key(table))?
            .map_or(0, |v| decode_u64(&v)))
    }

    /// Forgets the tombstones of `table` and expires every change token
    /// issued so far (what the service does after its retention period).
    pub fn purge_changes(&self, table: &str) -> Result<(), StoreError> {
        let current = self.current_version()?;
        for (version, entry) in self.changes_after(table, 0)? {
            if entry.deleted {
                self.data.remove(change_key(table, version))?;
                self.data.remove(tomb_key(table, &entry.pk))?;
            }
        }
        self.data
            .insert(purged_key(table), &current.to_be_bytes())?;
        Ok(())
    }
}

/// Why a transaction did not commit.
#[derive(Debug)]
pub enum TxFailure<E> {
    /// The closure aborted with its error.
    Abort(E),
    /// Storage failed.
    Store(StoreError),
}

fn parse<T: serde::de::DeserializeOwned>(key: &[u8], value: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(value).map_err(|_| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).replace('\0', "/"),
    })
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising a map of JSON values cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}
