//! The write transaction of the store ([`Tx`]): reads and writes of rows,
//! their alternate key indexes, change log entries, tombstones and write
//! counts, all in one sled transaction (the key layout is in the parent
//! module's doc).

use serde_json::{Map, Value};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::{
    ChangeEntry, StoredRow, VERSION_KEY, WriteConflict, change_key, decode_u64, index_key, json,
    now, row_key, tomb_key, writes_key,
};

/// Index entries a row has: (key name, encoded values), skipping keys with a
/// null part.
pub type IndexEntries = Vec<(String, String)>;

/// A write transaction over the store.
pub struct Tx<'a> {
    pub(super) tree: &'a TransactionalTree,
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tx")
    }
}

type TxResult<T, E> = Result<T, ConflictableTransactionError<E>>;

fn corrupt<E>(key: &[u8]) -> ConflictableTransactionError<E> {
    ConflictableTransactionError::Storage(sled::Error::Unsupported(format!(
        "stored value under {} is corrupt",
        String::from_utf8_lossy(key).replace('\0', "/")
    )))
}

impl Tx<'_> {
    /// A row by primary key.
    pub fn get<E>(&self, table: &str, pk: &str) -> TxResult<Option<StoredRow>, E> {
        let key = row_key(table, pk);
        match self.tree.get(&key)? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|_| corrupt(&key)),
        }
    }

    /// The primary key under an alternate key.
    pub fn pk_by_key<E>(
        &self,
        table: &str,
        key: &str,
        values: &str,
    ) -> TxResult<Option<String>, E> {
        Ok(self
            .tree
            .get(index_key(table, key, values))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    fn next_version<E>(&self) -> TxResult<u64, E> {
        let next = self.tree.get(VERSION_KEY)?.map_or(0, |v| decode_u64(&v)) + 1;
        self.tree.insert(VERSION_KEY, &next.to_be_bytes())?;
        Ok(next)
    }

    /// Counts one more write of row `pk` (see [`Store::writes`]); rolled
    /// back with the transaction if it does not commit.
    fn count_write<E>(&self, table: &str, pk: &str) -> TxResult<(), E> {
        let key = writes_key(table, pk);
        let count = self
            .tree
            .get(&key)?
            .map_or(0, |v| decode_u64(&v))
            .saturating_add(1);
        self.tree.insert(key, &count.to_be_bytes())?;
        Ok(())
    }

    /// Writes a row (insert or replace), moving its index entries and its
    /// change log entry; returns the new version. `set_version` is called
    /// with the version so system fields can carry it.
    pub fn put<E: From<WriteConflict>>(
        &self,
        table: &str,
        pk: &str,
        previous: Option<(&StoredRow, &IndexEntries)>,
        mut row: Map<String, Value>,
        indexes: &IndexEntries,
        set_version: impl Fn(&mut Map<String, Value>, u64),
    ) -> TxResult<StoredRow, E> {
        let version = self.next_version()?;
        if let Some((old, old_indexes)) = previous {
            self.tree.remove(change_key(table, old.version))?;
            for (key, values) in old_indexes {
                self.tree.remove(index_key(table, key, values))?;
            }
        }
        for (key, values) in indexes {
            let ik = index_key(table, key, values);
            if let Some(owner) = self.tree.get(&ik)?
                && owner.as_ref() != pk.as_bytes()
            {
                return Err(ConflictableTransactionError::Abort(E::from(
                    WriteConflict::DuplicateKey { key: key.clone() },
                )));
            }
            self.tree.insert(ik, pk.as_bytes())?;
        }
        if let Some(tomb) = self.tree.remove(tomb_key(table, pk))? {
            self.tree.remove(change_key(table, decode_u64(&tomb)))?;
        }
        self.count_write(table, pk)?;
        set_version(&mut row, version);
        let stored = StoredRow { version, row };
        let entry = ChangeEntry {
            pk: pk.to_string(),
            deleted: false,
            key: Map::new(),
            at: now(),
        };
        self.tree.insert(change_key(table, version), json(&entry))?;
        self.tree.insert(row_key(table, pk), json(&stored))?;
        Ok(stored)
    }

    /// Deletes a row, leaving a tombstone carrying `key`; returns its version.
    pub fn delete<E>(
        &self,
        table: &str,
        pk: &str,
        old: &StoredRow,
        old_indexes: &IndexEntries,
        key: Map<String, Value>,
    ) -> TxResult<u64, E> {
        let version = self.next_version()?;
        self.tree.remove(row_key(table, pk))?;
        self.tree.remove(change_key(table, old.version))?;
        for (name, values) in old_indexes {
            self.tree.remove(index_key(table, name, values))?;
        }
        let entry = ChangeEntry {
            pk: pk.to_string(),
            deleted: true,
            key,
            at: now(),
        };
        self.tree.insert(change_key(table, version), json(&entry))?;
        self.tree
            .insert(tomb_key(table, pk), &version.to_be_bytes())?;
        self.count_write(table, pk)?;
        Ok(version)
    }
}
