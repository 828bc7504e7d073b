//! Partita's storage layer.
//!
//! Owns: the on-disk layout on the fjall engine (catalog of table definitions,
//! one keyspace per table partition), the order-preserving key encoding, the
//! versioned item codec, the partition state machine that applies typed write
//! commands (conditions evaluated at apply time), and group commit: concurrent
//! writes share one durable (fsynced) engine batch, and a write is acknowledged
//! only once durable.
//!
//! Must not know: JSON, HTTP or DynamoDB error `__type` names. Errors are typed
//! ([`StorageError`]); the API layer maps them onto the wire.
//!
//! Map of the crate:
//! - [`keys`]: key encoding (hash ++ escaped partition key ++ sort key) and the
//!   hash ranges of partitions and scan segments.
//! - [`codec`]: the versioned binary item format.
//! - [`apply`]: the partition state machine (pure: command + current item →
//!   outcome).
//! - `commit`: the group-commit writer thread.
//! - `state`: open tables, recovery at open, catalog changes; `catalog`: the
//!   on-disk catalog and statistics records.
//! - `engine`: the only module that calls fjall.
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
mod catalog;
pub mod codec;
mod commit;
mod engine;
pub mod keys;
mod read;
mod state;

use std::path::Path;
use std::sync::Arc;

use partita_expr::{Condition, SortKeyCondition, UpdateExpression};
use partita_model::{AttributeValue, Item, TableDefinition};

pub use commit::{WriterStats, MAX_GROUP_COMMANDS};

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
}

/// One typed mutation of one item: the commands of the partition state machine.
#[derive(Clone, Debug)]
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
}

/// The result of an applied write: the item before and after.
#[derive(Clone, Debug, Default)]
pub struct WriteOutcome {
    pub old: Option<Item>,
    pub new: Option<Item>,
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
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { sync: true }
    }
}

/// The durable store: a catalog of tables and their items.
pub struct Store {
    shared: Arc<state::Shared>,
    writer: commit::Writer,
}

impl Store {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path, options: StoreOptions) -> Result<Store, StorageError> {
        let shared = Arc::new(state::Shared::open(dir, options.sync)?);
        let writer = commit::Writer::start(shared.clone())?;
        Ok(Store { shared, writer })
    }

    /// Creates a table; fails with `TableExists` when the name is taken.
    /// A `partitions` of 0 is stored as 1.
    pub fn create_table(&self, def: TableDefinition) -> Result<(), StorageError> {
        self.shared.create_table(def)
    }

    /// Deletes a table and all its data; returns its last definition.
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

    /// Returns the group-commit writer's counters.
    pub fn writer_stats(&self) -> WriterStats {
        self.shared.counters.snapshot()
    }

    /// Fsyncs everything written so far (a no-op for durability when the
    /// store syncs every commit; useful with `sync: false`).
    pub fn flush(&self) -> Result<(), StorageError> {
        self.shared.engine.persist()
    }

    /// Shuts down gracefully: finishes the queued writes, stops the writer and
    /// fsyncs. Dropping the store does the same, minus reporting errors.
    pub fn close(mut self) -> Result<(), StorageError> {
        self.writer.stop();
        self.shared.engine.persist()
    }
}
