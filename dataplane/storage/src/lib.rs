//! Partita's storage layer.
//!
//! Owns: the on-disk layout on the fjall engine (catalog of table definitions,
//! one keyspace per table partition and per index partition), the
//! order-preserving key encoding, the versioned item codec, the partition
//! state machine that applies typed write commands (conditions evaluated at
//! apply time), group commit (concurrent writes share one durable, fsynced
//! engine batch, and a write is acknowledged only once durable), and
//! secondary indexes: local indexes maintained in the write's own batch,
//! global indexes maintained through a per-partition outbox and a delivery
//! task (eventually consistent), backfill of new global indexes, item
//! collection sizes, the change log behind DynamoDB Streams (records in the
//! write's batch, streams and shards, retention trimming) and the TTL
//! sweeper.
//!
//! Must not know: JSON, HTTP or DynamoDB error `__type` names. Errors are typed
//! ([`StorageError`]); the API layer maps them onto the wire.
//!
//! Map of the crate:
//! - [`keys`]: key encoding (hash ++ escaped partition key ++ sort key) and the
//!   hash ranges of partitions and scan segments.
//! - [`codec`]: the versioned binary item format.
//! - [`apply`]: the partition state machine (pure: command + current item →
//!   outcome, index changes and item collection size).
//! - [`index`], [`index_keys`]: index rules (projection, sparseness, key type
//!   checks) and index entry key encoding.
//! - `commit`: the group-commit writer thread.
//! - `outbox`: the global index outbox and its delivery task; `backfill`:
//!   adding existing items to a new global index (and why it cannot
//!   overwrite newer entries).
//! - `state`: open tables, recovery at open, catalog changes; `catalog`: the
//!   on-disk catalog and statistics records.
//! - [`stream`]: the change log (one per table partition), streams and
//!   shards, trimming; `ttl`: the sweeper deleting expired items;
//!   `housekeeping`: the thread running both periodically.
//! - `engine`: the only module that calls fjall.
//! - [`raft_log`]: a replica's durable Raft log and hard state (cluster mode).
//! - [`replica`]: global tables — item versions and tombstones,
//!   last-writer-wins applies of other regions' changes, replica sets and
//!   replication cursors.
//!
//! Streams API: [`Store::streams`], [`Store::read_changes`],
//! [`StoreOptions::stream_retention`], [`StoreOptions::shard_roll_interval`];
//! TTL: [`StoreOptions::ttl_sweep_interval`], [`Store::sweep_expired`].
//!
//! Index API: [`Store::query_index`], [`Store::scan_index`],
//! [`Store::create_global_index`], [`Store::delete_global_index`],
//! [`Store::index_state`], [`Store::index_stats`], [`Store::gsi_pending`],
//! [`Store::wait_for_index_delivery`], [`WriteOutcome::item_collection_size`],
//! [`StoreOptions::item_collection_limit`] and the errors `IndexNotFound`,
//! `IndexKeyInvalid`, `IndexKeyTooLarge` and `ItemCollectionSizeLimitExceeded`.
//!
//! Beyond the original contract: [`Store::write_many`] (one group commit for
//! several independent commands, e.g. BatchWriteItem), [`Store::flush`],
//! [`Store::close`], [`Store::writer_stats`], the public [`keys`] (partition
//! hash and hash ranges, for routing) and [`apply`] (the state machine) modules,
//! and the error variants `InvalidKey`, `InvalidTableDefinition`,
//! `InvalidSegment` and `Corrupt`.
//!
//! Invariants: every on-disk record starts with a format version byte; a
//! write is acknowledged only after its batch is durable; each write group is
//! one atomic engine batch (items and their statistics together), so a crash
//! never leaves half a group; readers see whole batches only.

pub mod apply;
mod backfill;
mod catalog;
pub mod codec;
mod commit;
mod engine;
mod housekeeping;
pub mod index;
pub mod index_keys;
pub mod keys;
mod outbox;
pub mod raft_log;
mod read;
pub mod replica;
mod state;
pub mod stream;
mod transact;
pub mod ttl;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use partita_expr::{Condition, SortKeyCondition, UpdateExpression};
use partita_model::schema::{IndexDefinition, IndexState};
use partita_model::{AttributeValue, Item, ScalarType, TableDefinition};

pub use commit::{WriterStats, MAX_GROUP_COMMANDS};
pub use engine::EngineStats;
pub use replica::{
    CopyPage, ReplicaApply, ReplicaInfo, ReplicaStatus, ReplicatedChange, ReplicationState,
    Version, VersionRecord,
};
pub use state::{random_secret, MAX_GLOBAL_INDEXES, MAX_LOCAL_INDEXES};
pub use stream::{
    ChangeEvent, ChangeLogExport, ChangePage, ChangeRecord, ShardInfo, StreamInfo, StreamViewType,
    DEFAULT_SHARD_ROLL, DEFAULT_STREAM_RETENTION,
};
pub use transact::TransactionFailure;
pub use ttl::{Expiry, SweepStats};

/// How often the TTL sweeper runs by default.
pub const DEFAULT_TTL_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// DynamoDB's item collection size limit: 10 GB.
pub const ITEM_COLLECTION_LIMIT: u64 = 10 * 1024 * 1024 * 1024;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("table not found: {0}")]
    TableNotFound(String),
    #[error("table already exists: {0}")]
    TableExists(String),
    /// The write's condition evaluated to false; carries the item as it was.
    #[error("conditional check failed")]
    ConditionalCheckFailed { old: Option<Box<Item>> },
    /// Evaluating an expression against the stored item failed.
    #[error(transparent)]
    Eval(#[from] partita_expr::EvalError),
    /// The item an update produced exceeds the 400 KB limit.
    #[error("item too large after update")]
    ItemTooLarge,
    #[error("storage engine failure during {operation}: {message}")]
    Engine {
        operation: &'static str,
        message: String,
    },
    /// A key (of an item, a command, a start key or a key condition) does not
    /// match the table's key schema, or an update changed a key attribute.
    /// The API layer validates requests first; this is the storage's own guard.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// A table definition the storage cannot accept (e.g. a change of an
    /// immutable field in `update_table`).
    #[error("invalid table definition: {0}")]
    InvalidTableDefinition(String),
    /// A scan segment outside `0..total_segments`, or zero segments.
    #[error("invalid scan segment {segment} of {total_segments}")]
    InvalidSegment { segment: u32, total_segments: u32 },
    /// A stored record could not be decoded.
    #[error("corrupt {what} record: {detail}")]
    Corrupt { what: &'static str, detail: String },
    /// The table has no (readable) secondary index of this name.
    #[error("index not found: {0}")]
    IndexNotFound(String),
    /// A Put or Update produced an item whose index key attribute
    /// `attribute` of index `index` is invalid: of type `actual` where the
    /// index declares `expected` (`Some`), or an empty S or B value
    /// (`expected: None`). Nothing was written.
    #[error("invalid value for key {attribute} of index {index}")]
    IndexKeyInvalid {
        index: String,
        attribute: String,
        expected: Option<ScalarType>,
        actual: &'static str,
    },
    /// A Put or Update produced an item whose index key attribute
    /// `attribute` of index `index` is `size` bytes, over the `max` DynamoDB
    /// allows for an index partition key (2,048) or sort key (1,024).
    /// Nothing was written.
    #[error("index key {attribute} of index {index} is {size} bytes, over {max}")]
    IndexKeyTooLarge {
        index: String,
        attribute: String,
        size: usize,
        max: usize,
    },
    /// The write would grow its item collection (the items of one partition
    /// key and their local index entries) past the limit. Nothing was written.
    #[error("item collection size limit exceeded")]
    ItemCollectionSizeLimitExceeded,
    /// A request this deployment cannot run (e.g. a transaction across
    /// partitions in cluster mode). Nothing was written; the message says
    /// what and is shown to the caller.
    #[error("{0}")]
    Unsupported(String),
    /// The item is held by a transaction in progress (cluster mode's
    /// two-phase commit); nothing was written. A retry later may succeed.
    #[error("transaction conflict: the item is held by a transaction in progress")]
    TransactionConflict,
}

/// Reports an error of a background task to its supervisor: corruption
/// ends the process (going on could spread it), anything else is counted
/// and the task retries.
pub(crate) fn report_failure(
    task: &partita_supervise::Task,
    what: std::fmt::Arguments<'_>,
    e: &StorageError,
) {
    if matches!(e, StorageError::Corrupt { .. }) {
        task.fatal(&format_args!("{what}: {e}"));
    }
    task.failed(&format_args!("{what}: {e}"));
}

/// One typed mutation of one item: the commands of the partition state machine.
/// Serializable: in cluster mode commands travel in a partition's Raft log.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum WriteCommand {
    Put {
        item: Item,
        condition: Option<Condition>,
    },
    Delete {
        key: Item,
        condition: Option<Condition>,
    },
    Update {
        key: Item,
        update: UpdateExpression,
        condition: Option<Condition>,
    },
    /// Evaluates `condition` against the item at `key` and writes nothing
    /// (a transaction's ConditionCheck). Its outcome is empty.
    ConditionCheck { key: Item, condition: Condition },
}

/// The result of an applied write: the item before and after.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct WriteOutcome {
    pub old: Option<Item>,
    pub new: Option<Item>,
    /// For tables with local indexes: the size in bytes of the written
    /// item's collection after the write (its items plus their local index
    /// entries, each entry counted with [`index::INDEX_ENTRY_OVERHEAD`]).
    pub item_collection_size: Option<u64>,
}

/// What a visitor tells a Query or Scan to do next.
pub enum Visit {
    Continue,
    Stop,
}

/// Options of [`Store::open`].
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// When false, writes are not fsynced (tests and benchmarks of CPU cost only).
    pub sync: bool,
    /// Largest item collection, in bytes, a write may produce
    /// ([`ITEM_COLLECTION_LIMIT`] by default; tests set it small).
    pub item_collection_limit: u64,
    /// How long change-log records are kept (24 hours by default; tests
    /// set seconds). Records are trimmed at most a 24th of it later.
    pub stream_retention: Duration,
    /// How long a stream shard stays open before it rolls over to a child.
    pub shard_roll_interval: Duration,
    /// How often the TTL sweeper deletes expired items; `Duration::MAX`
    /// disables it (replicas of a replicated partition must not sweep on
    /// their own).
    pub ttl_sweep_interval: Duration,
    /// Set by the replicas of a Raft group (cluster mode): no background
    /// work changes state outside the replicated log. The housekeeping
    /// thread does not run (no TTL sweeps, change-log trimming, shard
    /// rolls or tombstone purges); the state machine applies them as
    /// commands instead ([`Store::maintain_streams`], [`Store::expire`])
    /// with the clock the command carries ([`Store::set_clock`]).
    pub replicated: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            sync: true,
            item_collection_limit: ITEM_COLLECTION_LIMIT,
            stream_retention: DEFAULT_STREAM_RETENTION,
            shard_roll_interval: DEFAULT_SHARD_ROLL,
            ttl_sweep_interval: DEFAULT_TTL_SWEEP_INTERVAL,
            replicated: false,
        }
    }
}

/// The durable store: a catalog of tables and their items.
pub struct Store {
    shared: Arc<state::Shared>,
    writer: commit::Writer,
    delivery: Option<JoinHandle<()>>,
    housekeeping: Option<JoinHandle<()>>,
}

impl Store {
    /// Opens (creating if needed) the store in `dir`, and resumes the
    /// delivery of pending global index updates and interrupted backfills.
    pub fn open(dir: &Path, options: StoreOptions) -> Result<Store, StorageError> {
        let shared = Arc::new(state::Shared::open(dir, &options)?);
        let writer = commit::Writer::start(shared.clone())?;
        let delivery = outbox::start(shared.clone())?;
        let housekeeping = match writer.handle() {
            Some(handle) if !options.replicated => {
                Some(housekeeping::start(shared.clone(), handle)?)
            }
            _ => None,
        };
        let store = Store {
            shared,
            writer,
            delivery: Some(delivery),
            housekeeping,
        };
        outbox::notify_all(&store.shared);
        let creating: Vec<backfill::Job> = store
            .shared
            .tables
            .read()
            .values()
            .flat_map(|t| {
                t.globals
                    .iter()
                    .filter(|g| g.state.backfilling)
                    .map(|g| backfill::Job {
                        table: t.def.name.clone(),
                        table_id: t.def.table_id.clone(),
                        index_id: g.id,
                    })
            })
            .collect();
        for job in creating {
            store.start_backfill(job);
        }
        Ok(store)
    }

    fn start_backfill(&self, job: backfill::Job) {
        if let Some(handle) = self.writer.handle() {
            backfill::spawn(self.shared.clone(), handle, job);
        }
    }

    /// Creates a table; fails with `TableExists` when the name is taken.
    /// A `partitions` of 0 is stored as 1. Its local and global indexes are
    /// created empty and ACTIVE; a global index gets
    /// max(1, ceil(RCU/3000), ceil(WCU/1000)) partitions of its own (1 on
    /// demand). Fails with `InvalidTableDefinition` for duplicate index
    /// names, more than 5 local or 20 global indexes, or a local index that
    /// does not share the table's partition key.
    pub fn create_table(&self, def: TableDefinition) -> Result<(), StorageError> {
        self.shared.create_table(def)
    }

    /// Adds a global index to a table and returns the new definition. The
    /// index is CREATING and backfilling at once: writes from now on maintain
    /// it, and a background task adds the existing items, then flips it to
    /// ACTIVE ([`Store::index_state`]). Fails with `InvalidTableDefinition`
    /// for a name in use or a 21st global index.
    pub fn create_global_index(
        &self,
        table: &str,
        index: IndexDefinition,
    ) -> Result<TableDefinition, StorageError> {
        let (def, index_id) = self.shared.create_global_index(table, index)?;
        self.start_backfill(backfill::Job {
            table: def.name.clone(),
            table_id: def.table_id.clone(),
            index_id,
        });
        Ok(def)
    }

    /// Removes a global index: it stops being maintained and readable at
    /// once, its data is dropped (whole keyspaces) and it leaves the
    /// definition, which is returned. `IndexNotFound` when there is none.
    pub fn delete_global_index(
        &self,
        table: &str,
        index: &str,
    ) -> Result<TableDefinition, StorageError> {
        self.shared.delete_global_index(table, index)
    }

    /// Returns the status of a secondary index (local indexes are always
    /// ACTIVE).
    pub fn index_state(&self, table: &str, index: &str) -> Result<IndexState, StorageError> {
        self.shared.index_state(table, index)
    }

    /// Returns (entry count, total bytes of projected items) of a secondary
    /// index. For a global index this counts delivered entries.
    pub fn index_stats(&self, table: &str, index: &str) -> Result<(u64, u64), StorageError> {
        self.shared.index_stats(table, index)
    }

    /// Returns how many outbox entries (writes) of a table still await
    /// delivery to its global indexes; 0 means the global indexes reflect
    /// every acknowledged write.
    pub fn gsi_pending(&self, table: &str) -> Result<u64, StorageError> {
        self.shared.gsi_pending(table)
    }

    /// Waits until every global index update of `table` acknowledged so far
    /// is delivered; returns false on timeout.
    pub fn wait_for_index_delivery(
        &self,
        table: &str,
        timeout: Duration,
    ) -> Result<bool, StorageError> {
        let deadline = Instant::now() + timeout;
        let targets: Vec<_> = self
            .shared
            .table(table)?
            .outboxes
            .iter()
            .map(|o| (o.clone(), o.next_seq.load(Ordering::Acquire)))
            .collect();
        for (outbox, target) in targets {
            while outbox.delivered.load(Ordering::Acquire) < target {
                if Instant::now() >= deadline {
                    return Ok(false);
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        Ok(true)
    }

    /// Deletes a table and all its data, index data included; returns its
    /// last definition.
    pub fn delete_table(&self, name: &str) -> Result<TableDefinition, StorageError> {
        self.shared.delete_table(name)
    }

    /// Returns a table's definition.
    pub fn table(&self, name: &str) -> Result<TableDefinition, StorageError> {
        Ok(self.shared.table(name)?.def.clone())
    }

    /// Returns every table name in ascending order.
    pub fn list_tables(&self) -> Vec<String> {
        self.shared.tables.read().keys().cloned().collect()
    }

    /// Changes a table's definition atomically and durably. The name, table
    /// id, key schema and partition count cannot change
    /// (`InvalidTableDefinition`).
    pub fn update_table<F>(&self, name: &str, change: F) -> Result<TableDefinition, StorageError>
    where
        F: FnOnce(&mut TableDefinition) -> Result<(), StorageError>,
    {
        self.shared.update_table(name, change)
    }

    /// Returns (item count, total item bytes) of a table, as of the last
    /// committed write. Bytes are DynamoDB item sizes.
    pub fn table_stats(&self, name: &str) -> Result<(u64, u64), StorageError> {
        self.shared.table_stats(name)
    }

    /// Applies one write durably (group-committed with concurrent writes).
    pub async fn write(
        &self,
        table: &str,
        command: WriteCommand,
    ) -> Result<WriteOutcome, StorageError> {
        let mut answers = self.writer.submit(vec![(table.to_owned(), command)]).await;
        answers.pop().unwrap_or_else(|| {
            Err(StorageError::Engine {
                operation: "write",
                message: "no answer from the writer".into(),
            })
        })
    }

    /// Applies several independent writes (e.g. a BatchWriteItem) in one
    /// group commit, in order, and returns one result per command. Each
    /// command succeeds or fails on its own (a later command sees the effect
    /// of an earlier one); all successful ones are durable when this returns.
    pub async fn write_many(
        &self,
        commands: Vec<(String, WriteCommand)>,
    ) -> Vec<Result<WriteOutcome, StorageError>> {
        self.writer.submit(commands).await
    }

    /// Reads one item by its full primary key.
    pub fn get(&self, table: &str, key: &Item) -> Result<Option<Item>, StorageError> {
        read::get(&self.shared, table, key)
    }

    /// Visits the items of one partition key in sort-key order (reverse when
    /// `forward` is false), starting after `exclusive_start` (a full primary key)
    /// when given, restricted by `sort`.
    pub fn query(
        &self,
        table: &str,
        hash_value: &AttributeValue,
        sort: Option<&SortKeyCondition>,
        forward: bool,
        exclusive_start: Option<&Item>,
        visit: &mut dyn FnMut(Item) -> Visit,
    ) -> Result<(), StorageError> {
        read::query(
            &self.shared,
            table,
            hash_value,
            sort,
            forward,
            exclusive_start,
            visit,
        )
    }

    /// Visits the items of scan segment `segment` of `total_segments` in scan
    /// order, starting after `exclusive_start` when given. The segments of one
    /// `total_segments` partition the table exactly.
    pub fn scan(
        &self,
        table: &str,
        segment: u32,
        total_segments: u32,
        exclusive_start: Option<&Item>,
        visit: &mut dyn FnMut(Item) -> Visit,
    ) -> Result<(), StorageError> {
        read::scan(
            &self.shared,
            table,
            segment,
            total_segments,
            exclusive_start,
            visit,
        )
    }

    /// Visits the projected items of one index partition key value in index
    /// sort key order (reverse when `forward` is false), restricted by
    /// `sort` (a condition on the index sort key), starting after
    /// `exclusive_start`: the LastEvaluatedKey of an index page, holding the
    /// table's and the index's key attributes. `IndexNotFound` for an
    /// unknown index. Global indexes are eventually consistent.
    #[allow(clippy::too_many_arguments)]
    pub fn query_index(
        &self,
        table: &str,
        index: &str,
        hash_value: &AttributeValue,
        sort: Option<&SortKeyCondition>,
        forward: bool,
        exclusive_start: Option<&Item>,
        visit: &mut dyn FnMut(Item) -> Visit,
    ) -> Result<(), StorageError> {
        read::query_index(
            &self.shared,
            table,
            index,
            hash_value,
            sort,
            forward,
            exclusive_start,
            visit,
        )
    }

    /// Visits the projected items of scan segment `segment` of
    /// `total_segments` of an index, in index key order (hash order of the
    /// index partition key), starting after `exclusive_start` (see
    /// [`Store::query_index`]). The segments of one `total_segments`
    /// partition the index exactly.
    pub fn scan_index(
        &self,
        table: &str,
        index: &str,
        segment: u32,
        total_segments: u32,
        exclusive_start: Option<&Item>,
        visit: &mut dyn FnMut(Item) -> Visit,
    ) -> Result<(), StorageError> {
        read::scan_index(
            &self.shared,
            table,
            index,
            segment,
            total_segments,
            exclusive_start,
            visit,
        )
    }

    /// Returns the streams of a table: the enabled one and those disabled
    /// within the retention, oldest first, with their untrimmed shards.
    pub fn streams(&self, table: &str) -> Result<(String, Vec<StreamInfo>), StorageError> {
        let table = self.shared.table(table)?;
        Ok((
            table.def.table_id.clone(),
            stream::describe(&table.def.table_id, &table.streams, &table.logs),
        ))
    }

    /// Reads up to `limit` (at most [`stream::MAX_READ_RECORDS`]) change
    /// records of table partition `partition`, numbered from `from` up to
    /// `until` (inclusive, `None` for no bound), from one snapshot. The page
    /// also tells the trim horizon and the next number.
    pub fn read_changes(
        &self,
        table: &str,
        partition: u32,
        from: u64,
        until: Option<u64>,
        limit: usize,
    ) -> Result<ChangePage, StorageError> {
        let state = self.shared.table(table)?;
        let log =
            state
                .logs
                .get(partition as usize)
                .ok_or_else(|| StorageError::InvalidSegment {
                    segment: partition,
                    total_segments: state.logs.len() as u32,
                })?;
        // Read the bounds first: records committed meanwhile are beyond them.
        let next_seq = log.next_seq.load(Ordering::Acquire);
        let view = self.shared.engine.read_view();
        let horizon = log.horizon();
        let until = Some(until.map_or(next_seq.saturating_sub(1), |u| {
            u.min(next_seq.saturating_sub(1))
        }));
        let records = if next_seq == 0 || from >= next_seq {
            Vec::new()
        } else {
            stream::read_records(
                &view,
                log,
                from.max(horizon),
                until,
                limit.min(stream::MAX_READ_RECORDS),
            )?
        };
        Ok(ChangePage {
            records,
            horizon,
            next_seq,
        })
    }

    /// Returns the replication state of a table (`None`: not replicated).
    pub fn replication(&self, table: &str) -> Result<Option<ReplicationState>, StorageError> {
        Ok(self
            .shared
            .table(table)?
            .replication
            .as_ref()
            .map(|r| r.state.clone()))
    }

    /// Makes a table replicated with `state`, or not replicated (`None`).
    /// From then on every write of the table records an item version.
    pub fn set_replication(
        &self,
        table: &str,
        state: Option<ReplicationState>,
    ) -> Result<TableDefinition, StorageError> {
        replica::set_replication(&self.shared, table, state)
    }

    /// Applies changes from another region, last writer wins: each is
    /// applied if its version is greater than the local item's (or
    /// tombstone's) and superseded otherwise. One group commit.
    pub async fn apply_replicated(
        &self,
        table: &str,
        changes: Vec<ReplicatedChange>,
    ) -> Result<Vec<ReplicaApply>, StorageError> {
        let table_id = self.shared.table(table)?.def.table_id.clone();
        let commands = changes
            .into_iter()
            .map(|change| {
                (
                    table.to_owned(),
                    commit::Command::Replicate {
                        table_id: table_id.clone(),
                        change,
                    },
                )
            })
            .collect();
        self.writer
            .submit_commands(commands)
            .await
            .into_iter()
            .map(|answer| match answer {
                Ok(_) => Ok(ReplicaApply::Applied),
                Err(StorageError::ConditionalCheckFailed { .. }) => Ok(ReplicaApply::Superseded),
                Err(e) => Err(e),
            })
            .collect()
    }

    /// Returns the version record of the item at `key` of a replicated
    /// table (`None` when there is none).
    pub fn item_version(
        &self,
        table: &str,
        key: &Item,
    ) -> Result<Option<VersionRecord>, StorageError> {
        let state = self.shared.table(table)?;
        let key = keys::encode_key(&state.def.key_schema, key)?;
        replica::version_in(&self.shared.engine.read_view(), &state, &key.bytes)
    }

    /// Reads a page of a full copy of table partition `partition`: live
    /// items with their versions, from one snapshot, after engine key
    /// `after`.
    pub fn copy_page(
        &self,
        table: &str,
        partition: u32,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<CopyPage, StorageError> {
        let state = self.shared.table(table)?;
        replica::copy_page(&self.shared, &state, partition as usize, after, limit)
    }

    /// Returns the number of partitions (change logs) of a table.
    pub fn partition_count(&self, table: &str) -> Result<u32, StorageError> {
        Ok(u32::try_from(self.shared.table(table)?.partitions.len()).unwrap_or(u32::MAX))
    }

    /// Returns the replication cursor of (table, peer region, partition):
    /// the first change-log number the peer has not acknowledged.
    pub fn replication_cursor(
        &self,
        table: &str,
        region: &str,
        partition: u32,
    ) -> Result<Option<u64>, StorageError> {
        let state = self.shared.table(table)?;
        replica::cursor(&self.shared, &state, region, partition)
    }

    /// Stores replication cursors of (table, peer region) durably, one per
    /// partition; `None` removes a cursor.
    pub fn set_replication_cursors(
        &self,
        table: &str,
        region: &str,
        cursors: &[(u32, Option<u64>)],
    ) -> Result<(), StorageError> {
        let state = self.shared.table(table)?;
        replica::set_cursors(&self.shared, &state, region, cursors)
    }

    /// Returns the notifier woken (`notify_waiters`) after every commit
    /// that appended change-log records: change-log tailers wait on it
    /// instead of polling.
    pub fn change_notifier(&self) -> Arc<tokio::sync::Notify> {
        self.shared.changes.clone()
    }

    /// Shifts the clock of local writes' versions by `offset_us` (tests of
    /// last-writer-wins with skewed regions).
    pub fn set_clock_offset_us(&self, offset_us: i64) {
        self.shared
            .clock_offset_us
            .store(offset_us, Ordering::Relaxed);
    }

    /// Purges replication tombstones older than the stream retention now
    /// (the housekeeping thread does so periodically); returns how many.
    pub fn purge_tombstones(&self) -> Result<usize, StorageError> {
        replica::purge_tombstones(&self.shared)
    }

    /// Returns the 32-byte secret named `name`: random, created on first
    /// use and kept in the store, so it survives restarts (e.g. the key
    /// that signs stream iterators).
    pub fn secret(&self, name: &str) -> Result<[u8; 32], StorageError> {
        self.shared.secret(name)
    }

    /// Runs one TTL sweep now (the housekeeping thread runs them every
    /// [`StoreOptions::ttl_sweep_interval`]) with the clock at `now_secs`.
    /// Blocks on the writer: call it from a plain thread (or
    /// `spawn_blocking`), not from async code.
    pub fn sweep_expired(&self, now_secs: i64) -> Result<SweepStats, StorageError> {
        match self.writer.handle() {
            Some(handle) => ttl::sweep(&self.shared, &handle, now_secs),
            None => Ok(SweepStats::default()),
        }
    }

    /// Trims the change logs and rolls shards now (the housekeeping thread
    /// does so periodically), by the store's clock.
    pub fn maintain_streams(&self) -> Result<(), StorageError> {
        stream::maintain(&self.shared)
    }

    /// Sets the clock of what the store records with a time — change-log
    /// records, stream and shard creation and closing, trimming — to
    /// `now_ms` (ms since the epoch); 0 returns to the wall clock. A
    /// replica of a Raft group sets it to the time the command it applies
    /// carries before applying it, so every replica writes the same
    /// records, shards and trim horizons.
    pub fn set_clock(&self, now_ms: u64) {
        self.shared.clock_ms.store(now_ms, Ordering::Release);
    }

    /// Returns up to `limit` items expired at `now_secs` (see [`ttl`]),
    /// read from one snapshot per table: what a replica's leader proposes
    /// to delete through the log ([`Store::expire`]).
    pub fn expired(&self, now_secs: i64, limit: usize) -> Result<Vec<Expiry>, StorageError> {
        ttl::expired(&self.shared, now_secs, limit)
    }

    /// Deletes the items of `expiries` that are still expired at
    /// `now_secs` (the condition is evaluated again at apply time, and the
    /// stream records name the TTL service), then applies `writes`, all in
    /// one group commit. Returns the outcomes of the expiries (`old` is set
    /// for the items deleted) and then those of `writes`.
    pub async fn expire(
        &self,
        expiries: Vec<Expiry>,
        now_secs: i64,
        writes: Vec<(String, WriteCommand)>,
    ) -> Vec<Result<WriteOutcome, StorageError>> {
        let commands = expiries
            .into_iter()
            .map(|e| {
                (
                    e.table,
                    commit::Command::Expire {
                        table_id: e.table_id,
                        key: e.key,
                        attribute: e.attribute,
                        now_secs,
                    },
                )
            })
            .chain(
                writes
                    .into_iter()
                    .map(|(t, w)| (t, commit::Command::Write(w))),
            )
            .collect();
        self.writer.submit_commands(commands).await
    }

    /// Returns a copy of a table's change logs and streams, to carry them
    /// in a replica's snapshot ([`Store::import_change_log`]).
    pub fn export_change_log(&self, table: &str) -> Result<ChangeLogExport, StorageError> {
        stream::export(&self.shared, table)
    }

    /// Replaces a table's change logs and streams with `export` (taken
    /// from a table of the same shape by [`Store::export_change_log`]):
    /// the same records under the same numbers, the same segments, shards
    /// and stream labels.
    pub fn import_change_log(
        &self,
        table: &str,
        export: ChangeLogExport,
    ) -> Result<(), StorageError> {
        stream::import(&self.shared, table, export)
    }

    /// Returns the 32-byte secret named `name`, storing `candidate` as it
    /// when there is none yet: the first stored value wins. Replicas apply
    /// the same command, so they keep the same secret.
    pub fn secret_or(&self, name: &str, candidate: [u8; 32]) -> Result<[u8; 32], StorageError> {
        self.shared.secret_or(name, Some(candidate))
    }

    /// Returns every stored secret by name (for a replica's snapshot).
    pub fn secrets(&self) -> Result<Vec<(String, [u8; 32])>, StorageError> {
        self.shared.secrets()
    }

    /// Returns the storage engine's statistics (disk, flushes, compactions).
    pub fn engine_stats(&self) -> EngineStats {
        self.shared.engine.stats()
    }

    /// Returns the group-commit writer's counters.
    pub fn writer_stats(&self) -> WriterStats {
        self.shared.counters.snapshot()
    }

    /// Fsyncs everything written so far (a no-op for durability when the
    /// store syncs every commit; useful with `sync: false`).
    pub fn flush(&self) -> Result<(), StorageError> {
        self.shared.engine.persist()
    }

    /// Shuts down gracefully: stops backfills (an interrupted backfill
    /// resumes at the next open), finishes the queued writes, stops the
    /// writer and the index delivery task (pending deliveries resume at the
    /// next open) and fsyncs. Dropping the store does the same, minus
    /// reporting errors.
    pub fn close(mut self) -> Result<(), StorageError> {
        self.shutdown();
        self.shared.engine.persist()
    }

    fn shutdown(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        let backfills = std::mem::take(&mut *self.shared.backfills.lock());
        for handle in backfills {
            if handle.join().is_err() {
                tracing::error!("a backfill thread panicked");
            }
        }
        if let Some(handle) = self.housekeeping.take() {
            if handle.join().is_err() {
                tracing::error!("the housekeeping thread panicked");
            }
        }
        self.writer.stop();
        self.shared.delivery.stop();
        if let Some(handle) = self.delivery.take() {
            if handle.join().is_err() {
                tracing::error!("the index delivery thread panicked");
            }
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.shutdown();
    }
}
