//! The storage engine seam: every fjall call of Partita lives in this module.
//!
//! The rest of the crate sees a small interface — named spaces (fjall
//! keyspaces) holding ordered byte keys, atomic multi-space batches committed
//! with or without fsync, and consistent read views — so another ordered
//! key-value engine (RocksDB column families, say) could replace fjall by
//! rewriting this file alone.
//!
//! Invariants kept here:
//! - A batch is atomic: after a crash either all of its entries are present or
//!   none (fjall's journal checksums each batch and drops a torn tail).
//! - A durable commit writes and fsyncs the journal *before* the entries
//!   become visible to readers, so no reader ever observes a write that a
//!   crash could still take back.
//! - A read view sees whole batches only (it reads at a published sequence
//!   number).

use std::ops::Bound;
use std::path::Path;

use crate::StorageError;

/// An engine value: immutable, cheaply clonable bytes.
pub(crate) type Bytes = fjall::Slice;

/// A key-value pair read from a space.
pub(crate) type Entry = (Bytes, Bytes);

/// Longest space name the engine accepts.
pub(crate) const MAX_SPACE_NAME: usize = 255;

/// Longest key the engine stores (fjall panics past it, on writes and on
/// read bounds alike). Keys are built within it (see [`crate::keys`]); this
/// module still refuses or clamps longer ones instead of panicking.
pub(crate) const MAX_KEY_LEN: usize = u16::MAX as usize;

/// Returns a read bound that selects the same stored keys as `bound` and is
/// at most [`MAX_KEY_LEN`] long. For a key `k` longer than the limit and its
/// prefix `p` of that length, a stored key `x` (never longer than `p`) is
/// above `k` exactly when it is above `p`, and below `k` exactly when it is
/// at most `p`.
fn clamp_bound(bound: Bound<Vec<u8>>, lower: bool) -> Bound<Vec<u8>> {
    match bound {
        Bound::Included(mut k) | Bound::Excluded(mut k) if k.len() > MAX_KEY_LEN => {
            k.truncate(MAX_KEY_LEN);
            if lower {
                Bound::Excluded(k)
            } else {
                Bound::Included(k)
            }
        }
        other => other,
    }
}

fn engine_error(operation: &'static str, err: fjall::Error) -> StorageError {
    StorageError::Engine {
        operation,
        message: err.to_string(),
    }
}

/// An open engine instance rooted in one directory.
#[derive(Clone)]
pub(crate) struct Engine {
    db: fjall::Database,
}

/// A named, ordered key space (one fjall keyspace).
#[derive(Clone)]
pub(crate) struct Space {
    keyspace: fjall::Keyspace,
}

/// An atomic group of puts and deletes over any spaces of one engine.
///
/// The operations are buffered here and handed to the engine at commit, so a
/// batch can be built without the engine and appended to another one (a
/// transaction is staged in a batch of its own and joins its write group's
/// batch only when every action succeeded; see `transact`).
#[derive(Default)]
pub(crate) struct Batch {
    ops: Vec<(fjall::Keyspace, Vec<u8>, Option<Vec<u8>>)>,
}

/// A consistent point-in-time view for reads.
#[derive(Clone)]
pub(crate) struct ReadView {
    snapshot: fjall::Snapshot,
}

/// What the engine reports about itself (for metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Bytes on disk (segments and journals).
    pub disk_bytes: u64,
    /// Bytes of the write-ahead journals.
    pub journal_bytes: u64,
    /// Journals not yet flushed away.
    pub journal_count: u64,
    /// Bytes in memtables not yet flushed.
    pub write_buffer_bytes: u64,
    /// Memtable flushes queued: writes stall when these pile up.
    pub outstanding_flushes: u64,
    /// Compactions running now.
    pub active_compactions: u64,
    /// Compactions completed since the engine opened.
    pub compactions_completed: u64,
    /// Time spent compacting since the engine opened, in microseconds.
    pub compaction_micros: u64,
}

impl Engine {
    /// Returns the engine's statistics; figures the engine cannot report
    /// right now are 0.
    pub(crate) fn stats(&self) -> EngineStats {
        EngineStats {
            disk_bytes: self.db.disk_space().unwrap_or(0),
            journal_bytes: self.db.journal_disk_space().unwrap_or(0),
            journal_count: self.db.journal_count() as u64,
            write_buffer_bytes: self.db.write_buffer_size(),
            outstanding_flushes: self.db.outstanding_flushes() as u64,
            active_compactions: self.db.active_compactions() as u64,
            compactions_completed: self.db.compactions_completed() as u64,
            compaction_micros: u64::try_from(self.db.time_compacting().as_micros())
                .unwrap_or(u64::MAX),
        }
    }

    /// Opens (creating when absent) the engine in `dir`.
    pub(crate) fn open(dir: &Path) -> Result<Engine, StorageError> {
        let db = fjall::Database::builder(dir)
            // Durability is decided per batch by the caller (group commit).
            .manual_journal_persist(true)
            .open()
            .map_err(|e| engine_error("open", e))?;
        Ok(Engine { db })
    }

    /// Returns the space named `name`, creating it when absent.
    pub(crate) fn space(&self, name: &str) -> Result<Space, StorageError> {
        if name.is_empty() || name.len() > MAX_SPACE_NAME {
            return Err(StorageError::Engine {
                operation: "open space",
                message: format!("invalid space name length {}", name.len()),
            });
        }
        let keyspace = self
            .db
            .keyspace(name, fjall::KeyspaceCreateOptions::default)
            .map_err(|e| engine_error("open space", e))?;
        Ok(Space { keyspace })
    }

    /// Returns the names of every existing space.
    pub(crate) fn space_names(&self) -> Vec<String> {
        self.db
            .list_keyspace_names()
            .iter()
            .map(|n| n.to_string())
            .collect()
    }

    /// Drops a space and all its data. Cheap: whole files are removed, no
    /// per-key tombstones are written.
    pub(crate) fn drop_space(&self, space: Space) -> Result<(), StorageError> {
        self.db
            .delete_keyspace(space.keyspace)
            .map_err(|e| engine_error("drop space", e))
    }

    /// Starts an empty batch.
    pub(crate) fn batch(&self) -> Batch {
        Batch::default()
    }

    /// Commits `batch` atomically. With `durable`, returns only after the
    /// batch is fsynced; otherwise after it reached the OS (survives a process
    /// kill, not a power loss).
    pub(crate) fn commit(&self, batch: Batch, durable: bool) -> Result<(), StorageError> {
        let mode = if durable {
            fjall::PersistMode::SyncAll
        } else {
            fjall::PersistMode::Buffer
        };
        // Every entry of a batch gets the same sequence number, so two
        // entries for one key would be ambiguous: keep the last one only.
        // A keyspace handle hashes and compares by its identity, which its
        // interior mutability never changes.
        if let Some((_, key, _)) = batch.ops.iter().find(|(_, k, _)| k.len() > MAX_KEY_LEN) {
            return Err(StorageError::Engine {
                operation: "commit",
                message: format!("a key of {} bytes is over the engine's limit", key.len()),
            });
        }
        #[allow(clippy::mutable_key_type)]
        let mut seen = std::collections::HashSet::with_capacity(batch.ops.len());
        let mut inner = self.db.batch();
        for (keyspace, key, value) in batch.ops.into_iter().rev() {
            if !seen.insert((keyspace.clone(), key.clone())) {
                continue;
            }
            match value {
                Some(value) => inner.insert(&keyspace, key, value),
                None => inner.remove(&keyspace, key),
            }
        }
        inner
            .durability(Some(mode))
            .commit()
            .map_err(|e| engine_error("commit", e))
    }

    /// Fsyncs everything committed so far.
    pub(crate) fn persist(&self) -> Result<(), StorageError> {
        self.db
            .persist(fjall::PersistMode::SyncAll)
            .map_err(|e| engine_error("persist", e))
    }

    /// Opens a consistent read view at the latest committed batch.
    pub(crate) fn read_view(&self) -> ReadView {
        ReadView {
            snapshot: self.db.snapshot(),
        }
    }
}

impl Batch {
    pub(crate) fn put(&mut self, space: &Space, key: &[u8], value: Vec<u8>) {
        self.ops
            .push((space.keyspace.clone(), key.to_vec(), Some(value)));
    }

    pub(crate) fn delete(&mut self, space: &Space, key: &[u8]) {
        self.ops.push((space.keyspace.clone(), key.to_vec(), None));
    }

    /// Appends the operations of `other` after this batch's own (a later
    /// operation on the same key wins, as within one batch).
    pub(crate) fn append(&mut self, other: Batch) {
        self.ops.extend(other.ops);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

impl ReadView {
    /// Reads one key.
    pub(crate) fn get(&self, space: &Space, key: &[u8]) -> Result<Option<Bytes>, StorageError> {
        use fjall::Readable;
        if key.len() > MAX_KEY_LEN {
            return Ok(None);
        }
        self.snapshot
            .get(&space.keyspace, key)
            .map_err(|e| engine_error("read", e))
    }

    /// Iterates the keys within the bounds, in ascending key order or, when
    /// `reverse`, descending. Callers must pass non-empty bounds.
    pub(crate) fn range(
        &self,
        space: &Space,
        lower: Bound<Vec<u8>>,
        upper: Bound<Vec<u8>>,
        reverse: bool,
    ) -> Box<dyn Iterator<Item = Result<Entry, StorageError>>> {
        use fjall::Readable;
        let bounds = (clamp_bound(lower, true), clamp_bound(upper, false));
        let iter = self.snapshot.range::<Vec<u8>, _>(&space.keyspace, bounds);
        let map = |guard: fjall::Guard| guard.into_inner().map_err(|e| engine_error("scan", e));
        if reverse {
            Box::new(iter.rev().map(map))
        } else {
            Box::new(iter.map(map))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_is_visible_after_commit_and_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let engine = Engine::open(dir.path()).unwrap();
            let a = engine.space("a").unwrap();
            let b = engine.space("b").unwrap();
            let mut batch = engine.batch();
            batch.put(&a, b"k1", b"v1".to_vec());
            batch.put(&b, b"k2", b"v2".to_vec());
            assert!(engine.read_view().get(&a, b"k1").unwrap().is_none());
            engine.commit(batch, true).unwrap();
            let view = engine.read_view();
            assert_eq!(&*view.get(&a, b"k1").unwrap().unwrap(), b"v1");
            assert_eq!(&*view.get(&b, b"k2").unwrap().unwrap(), b"v2");
        }
        let engine = Engine::open(dir.path()).unwrap();
        let mut names = engine.space_names();
        names.sort();
        assert_eq!(names, vec!["a".to_string(), "b".to_string()]);
        let a = engine.space("a").unwrap();
        assert_eq!(&*engine.read_view().get(&a, b"k1").unwrap().unwrap(), b"v1");
    }

    #[test]
    fn appended_batches_commit_together_and_the_last_write_of_a_key_wins() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let s = engine.space("s").unwrap();
        let mut first = engine.batch();
        first.put(&s, b"k", b"v1".to_vec());
        first.put(&s, b"gone", b"x".to_vec());
        let mut second = Batch::default();
        second.put(&s, b"k", b"v2".to_vec());
        second.delete(&s, b"gone");
        first.append(second);
        engine.commit(first, false).unwrap();
        let view = engine.read_view();
        assert_eq!(&*view.get(&s, b"k").unwrap().unwrap(), b"v2");
        assert!(view.get(&s, b"gone").unwrap().is_none());
    }

    #[test]
    fn range_respects_bounds_and_direction() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let s = engine.space("s").unwrap();
        let mut batch = engine.batch();
        for k in [b"a", b"b", b"c", b"d"] {
            batch.put(&s, k, k.to_vec());
        }
        engine.commit(batch, false).unwrap();
        let view = engine.read_view();
        let keys = |rev| -> Vec<Vec<u8>> {
            view.range(
                &s,
                Bound::Excluded(b"a".to_vec()),
                Bound::Included(b"c".to_vec()),
                rev,
            )
            .map(|r| r.unwrap().0.to_vec())
            .collect()
        };
        assert_eq!(keys(false), vec![b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(keys(true), vec![b"c".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn keys_over_the_limit_are_refused_or_clamped_never_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let s = engine.space("s").unwrap();
        let longest = vec![b'm'; MAX_KEY_LEN];
        let mut below = longest.clone();
        *below.last_mut().unwrap() = b'l';
        let mut batch = engine.batch();
        for k in [&b"a"[..], &below, &longest, b"n"] {
            batch.put(&s, k, b"v".to_vec());
        }
        engine.commit(batch, false).unwrap();
        let mut too_long = longest.clone();
        too_long.push(b'x');
        let mut batch = engine.batch();
        batch.put(&s, &too_long, b"v".to_vec());
        assert!(matches!(
            engine.commit(batch, false),
            Err(StorageError::Engine {
                operation: "commit",
                ..
            })
        ));
        let view = engine.read_view();
        assert!(view.get(&s, &too_long).unwrap().is_none());
        let count = |lower: Bound<Vec<u8>>, upper: Bound<Vec<u8>>| {
            view.range(&s, lower, upper, false)
                .map(|r| r.unwrap().0.len())
                .collect::<Vec<_>>()
        };
        // `too_long` sorts just above `longest`: bounds on it select what
        // the unclamped bound would.
        assert_eq!(
            count(Bound::Included(too_long.clone()), Bound::Unbounded),
            vec![1]
        );
        assert_eq!(
            count(Bound::Excluded(too_long.clone()), Bound::Unbounded),
            vec![1]
        );
        assert_eq!(
            count(Bound::Unbounded, Bound::Excluded(too_long.clone())),
            vec![1, MAX_KEY_LEN, MAX_KEY_LEN]
        );
        assert_eq!(
            count(Bound::Unbounded, Bound::Included(too_long)),
            vec![1, MAX_KEY_LEN, MAX_KEY_LEN]
        );
    }

    #[test]
    fn dropped_space_is_gone_and_recreated_empty() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let s = engine.space("s").unwrap();
        let mut batch = engine.batch();
        batch.put(&s, b"k", b"v".to_vec());
        engine.commit(batch, true).unwrap();
        engine.drop_space(s).unwrap();
        assert!(engine.space_names().is_empty());
        let s = engine.space("s").unwrap();
        assert!(engine.read_view().get(&s, b"k").unwrap().is_none());
    }
}
