//! A durable, ordered log of opaque entries plus a few named metadata
//! records: the Raft log and hard state of one partition replica in cluster
//! mode (`partita-cluster` owns the Raft semantics; this module only stores
//! bytes).
//!
//! Layout: its own engine directory (separate from the replica's item
//! store, so log appends never queue behind item group commits), with two
//! spaces: `log` (key: the entry index as 8 big-endian bytes, so key order is
//! index order; value: a version byte then the caller's bytes) and `meta`
//! (key: a record name; value: a version byte then the caller's bytes).
//!
//! Invariants: an append is one atomic engine batch, fsynced when the log was
//! opened with `sync`; truncation and purge are atomic batches too. Purged
//! entries are always a prefix and truncated ones a suffix, so a read that
//! starts at the first live index never walks over deleted keys.

use std::ops::Bound;
use std::path::Path;

use crate::engine::{Engine, Space};
use crate::StorageError;

/// Format version byte of log entries and metadata records.
const VERSION: u8 = 1;

/// The Raft log of one replica (see the module docs).
pub struct RaftLog {
    engine: Engine,
    log: Space,
    meta: Space,
    sync: bool,
}

fn key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn decode_value(what: &'static str, bytes: &[u8]) -> Result<Vec<u8>, StorageError> {
    match bytes.split_first() {
        Some((&VERSION, rest)) => Ok(rest.to_vec()),
        Some((v, _)) => Err(StorageError::Corrupt {
            what,
            detail: format!("unknown format version {v}"),
        }),
        None => Err(StorageError::Corrupt {
            what,
            detail: "empty record".into(),
        }),
    }
}

fn decode_index(bytes: &[u8]) -> Result<u64, StorageError> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| StorageError::Corrupt {
        what: "raft log key",
        detail: format!("key of {} bytes", bytes.len()),
    })?;
    Ok(u64::from_be_bytes(array))
}

fn encode(bytes: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(bytes.len() + 1);
    v.push(VERSION);
    v.extend_from_slice(bytes);
    v
}

impl RaftLog {
    /// Opens (creating when absent) the log in `dir`. With `sync`, every
    /// change is fsynced before it returns.
    pub fn open(dir: &Path, sync: bool) -> Result<RaftLog, StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::Engine {
            operation: "create raft log dir",
            message: e.to_string(),
        })?;
        let engine = Engine::open(dir)?;
        let log = engine.space("log")?;
        let meta = engine.space("meta")?;
        Ok(RaftLog {
            engine,
            log,
            meta,
            sync,
        })
    }

    /// Appends (or overwrites) entries `(index, bytes)` in one atomic batch.
    pub fn append(&self, entries: &[(u64, Vec<u8>)]) -> Result<(), StorageError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut batch = self.engine.batch();
        for (index, bytes) in entries {
            batch.put(&self.log, &key(*index), encode(bytes));
        }
        self.engine.commit(batch, self.sync)
    }

    /// Returns the entries with `start <= index < end`, in index order.
    pub fn entries(&self, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        if start >= end {
            return Ok(Vec::new());
        }
        let view = self.engine.read_view();
        let mut out = Vec::new();
        for entry in view.range(
            &self.log,
            Bound::Included(key(start).to_vec()),
            Bound::Excluded(key(end).to_vec()),
            false,
        ) {
            let (k, v) = entry?;
            out.push((decode_index(&k)?, decode_value("raft log entry", &v)?));
        }
        Ok(out)
    }

    /// Returns the last entry, if any.
    pub fn last(&self) -> Result<Option<(u64, Vec<u8>)>, StorageError> {
        self.edge(true)
    }

    /// Returns the first entry, if any.
    pub fn first(&self) -> Result<Option<(u64, Vec<u8>)>, StorageError> {
        self.edge(false)
    }

    fn edge(&self, last: bool) -> Result<Option<(u64, Vec<u8>)>, StorageError> {
        let view = self.engine.read_view();
        let mut iter = view.range(&self.log, Bound::Unbounded, Bound::Unbounded, last);
        match iter.next() {
            Some(entry) => {
                let (k, v) = entry?;
                Ok(Some((
                    decode_index(&k)?,
                    decode_value("raft log entry", &v)?,
                )))
            }
            None => Ok(None),
        }
    }

    /// Deletes every entry with index `>= from` (a conflicting suffix).
    pub fn truncate_from(&self, from: u64) -> Result<(), StorageError> {
        let indexes = self.indexes(Bound::Included(key(from).to_vec()), Bound::Unbounded)?;
        self.delete(indexes)
    }

    /// Deletes every entry with index `<= through` (a compacted prefix).
    pub fn purge_through(&self, through: u64) -> Result<(), StorageError> {
        let indexes = self.indexes(Bound::Unbounded, Bound::Included(key(through).to_vec()))?;
        self.delete(indexes)
    }

    fn indexes(
        &self,
        lower: Bound<Vec<u8>>,
        upper: Bound<Vec<u8>>,
    ) -> Result<Vec<u64>, StorageError> {
        let view = self.engine.read_view();
        view.range(&self.log, lower, upper, false)
            .map(|e| e.and_then(|(k, _)| decode_index(&k)))
            .collect()
    }

    fn delete(&self, indexes: Vec<u64>) -> Result<(), StorageError> {
        if indexes.is_empty() {
            return Ok(());
        }
        let mut batch = self.engine.batch();
        for index in indexes {
            batch.delete(&self.log, &key(index));
        }
        self.engine.commit(batch, self.sync)
    }

    /// Stores the metadata record `name`.
    pub fn put_meta(&self, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        let mut batch = self.engine.batch();
        batch.put(&self.meta, name.as_bytes(), encode(bytes));
        self.engine.commit(batch, self.sync)
    }

    /// Returns the metadata record `name`.
    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let view = self.engine.read_view();
        match view.get(&self.meta, name.as_bytes())? {
            Some(v) => Ok(Some(decode_value("raft meta", &v)?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_reads_truncates_purges_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = RaftLog::open(dir.path(), true).unwrap();
            assert!(log.last().unwrap().is_none());
            let entries: Vec<(u64, Vec<u8>)> = (1..=10).map(|i| (i, vec![i as u8; 3])).collect();
            log.append(&entries).unwrap();
            assert_eq!(log.entries(3, 6).unwrap(), entries[2..5].to_vec());
            log.truncate_from(8).unwrap();
            assert_eq!(log.last().unwrap().map(|e| e.0), Some(7));
            log.purge_through(2).unwrap();
            assert_eq!(log.first().unwrap().map(|e| e.0), Some(3));
            log.put_meta("vote", b"v1").unwrap();
        }
        let log = RaftLog::open(dir.path(), true).unwrap();
        assert_eq!(log.first().unwrap().map(|e| e.0), Some(3));
        assert_eq!(log.last().unwrap(), Some((7, vec![7; 3])));
        assert_eq!(log.meta("vote").unwrap(), Some(b"v1".to_vec()));
        assert_eq!(log.meta("other").unwrap(), None);
        assert_eq!(log.entries(0, 100).unwrap().len(), 5);
    }
}
