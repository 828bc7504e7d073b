//! openraft's log storage on `partita_storage::raft_log::RaftLog`.
//!
//! Entries are bincode-encoded `Entry<TypeConfig>` values keyed by index;
//! the vote, the committed log id and the last purged log id are metadata
//! records. Appends are fsynced before openraft is told they are flushed,
//! which is what makes an acknowledged write durable on a quorum. Engine
//! calls that may fsync run on tokio's blocking pool.

// openraft's trait methods return its (large) `StorageError`; the helpers
// here return the same type so errors pass through unchanged.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader, StorageError, Vote};
use partita_storage::raft_log::RaftLog;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::types::{Entry, LogId, TypeConfig};

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const PURGED: &str = "purged";

fn io_err(subject: ErrorSubject<u64>, verb: ErrorVerb, e: impl ToString) -> StorageError<u64> {
    StorageError::from_io_error(subject, verb, std::io::Error::other(e.to_string()))
}

fn read_err(e: impl ToString) -> StorageError<u64> {
    io_err(ErrorSubject::Logs, ErrorVerb::Read, e)
}

fn write_err(e: impl ToString) -> StorageError<u64> {
    io_err(ErrorSubject::Logs, ErrorVerb::Write, e)
}

/// The Raft log of one replica. Cheap to clone (shares the log).
#[derive(Clone)]
pub struct LogStore {
    log: Arc<RaftLog>,
    /// The last committed index this store was told of, plus one (0: none);
    /// shared with the replica's metrics.
    committed: Arc<AtomicU64>,
}

impl LogStore {
    pub fn new(log: Arc<RaftLog>) -> LogStore {
        LogStore {
            log,
            committed: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Returns a handle on the last committed index saved (plus one; 0 when
    /// none), for metrics.
    pub fn committed_handle(&self) -> Arc<AtomicU64> {
        self.committed.clone()
    }

    fn meta<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StorageError<u64>> {
        match self.log.meta(name).map_err(read_err)? {
            Some(bytes) => bincode::deserialize(&bytes).map(Some).map_err(read_err),
            None => Ok(None),
        }
    }

    async fn put_meta<T: Serialize>(
        &self,
        name: &'static str,
        value: &T,
    ) -> Result<(), StorageError<u64>> {
        let bytes = bincode::serialize(value).map_err(write_err)?;
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || log.put_meta(name, &bytes))
            .await
            .map_err(write_err)?
            .map_err(write_err)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError<u64>> {
        let start = match range.start_bound() {
            Bound::Included(s) => *s,
            Bound::Excluded(s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(e) => e.saturating_add(1),
            Bound::Excluded(e) => *e,
            Bound::Unbounded => u64::MAX,
        };
        self.log
            .entries(start, end)
            .map_err(read_err)?
            .into_iter()
            .map(|(_, bytes)| bincode::deserialize::<Entry>(&bytes).map_err(read_err))
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let last_purged: Option<LogId> = self.meta::<Option<LogId>>(PURGED)?.flatten();
        let last = match self.log.last().map_err(read_err)? {
            Some((_, bytes)) => Some(
                bincode::deserialize::<Entry>(&bytes)
                    .map_err(read_err)?
                    .log_id,
            ),
            None => last_purged,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        self.put_meta(VOTE, vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        self.meta(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError<u64>> {
        self.put_meta(COMMITTED, &committed).await?;
        self.committed
            .store(committed.map_or(0, |l| l.index + 1), Ordering::Relaxed);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError<u64>> {
        let committed = self.meta::<Option<LogId>>(COMMITTED)?.flatten();
        self.committed
            .store(committed.map_or(0, |l| l.index + 1), Ordering::Relaxed);
        Ok(committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        for entry in entries {
            let bytes = bincode::serialize(&entry).map_err(write_err)?;
            encoded.push((entry.log_id.index, bytes));
        }
        let log = self.log.clone();
        let result = tokio::task::spawn_blocking(move || log.append(&encoded))
            .await
            .map_err(write_err)?
            .map_err(|e| std::io::Error::other(e.to_string()));
        let failed = result.as_ref().err().map(|e| e.to_string());
        callback.log_io_completed(result);
        match failed {
            Some(e) => Err(write_err(e)),
            None => Ok(()),
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError<u64>> {
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || log.truncate_from(log_id.index))
            .await
            .map_err(write_err)?
            .map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError<u64>> {
        self.put_meta(PURGED, &Some(log_id)).await?;
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || log.purge_through(log_id.index))
            .await
            .map_err(write_err)?
            .map_err(write_err)
    }
}
