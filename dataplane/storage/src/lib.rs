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
//! SKELETON: the storage helper owns this crate and replaces every `todo!()`.

use std::path::Path;

use partita_expr::{Condition, SortKeyCondition, UpdateExpression};
use partita_model::{AttributeValue, Item, TableDefinition};

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
    Engine { operation: &'static str, message: String },
}

/// One typed mutation of one item: the commands of the partition state machine.
#[derive(Clone, Debug)]
pub enum WriteCommand {
    Put { item: Item, condition: Option<Condition> },
    Delete { key: Item, condition: Option<Condition> },
    Update { key: Item, update: UpdateExpression, condition: Option<Condition> },
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
pub struct Store {}

impl Store {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(_dir: &Path, _options: StoreOptions) -> Result<Store, StorageError> {
        todo!()
    }

    /// Creates a table; fails with `TableExists` when the name is taken.
    pub fn create_table(&self, _def: TableDefinition) -> Result<(), StorageError> {
        todo!()
    }

    /// Deletes a table and all its data; returns its last definition.
    pub fn delete_table(&self, _name: &str) -> Result<TableDefinition, StorageError> {
        todo!()
    }

    /// Returns a table's definition.
    pub fn table(&self, _name: &str) -> Result<TableDefinition, StorageError> {
        todo!()
    }

    /// Returns every table name in ascending order.
    pub fn list_tables(&self) -> Vec<String> {
        todo!()
    }

    /// Changes a table's definition atomically and durably.
    pub fn update_table<F>(&self, _name: &str, _change: F) -> Result<TableDefinition, StorageError>
    where
        F: FnOnce(&mut TableDefinition) -> Result<(), StorageError>,
    {
        todo!()
    }

    /// Returns (item count, total item bytes) of a table.
    pub fn table_stats(&self, _name: &str) -> Result<(u64, u64), StorageError> {
        todo!()
    }

    /// Applies one write durably (group-committed with concurrent writes).
    pub async fn write(&self, _table: &str, _command: WriteCommand) -> Result<WriteOutcome, StorageError> {
        todo!()
    }

    /// Reads one item by its full primary key.
    pub fn get(&self, _table: &str, _key: &Item) -> Result<Option<Item>, StorageError> {
        todo!()
    }

    /// Visits the items of one partition key in sort-key order (reverse when
    /// `forward` is false), starting after `exclusive_start` (a full primary key)
    /// when given, restricted by `sort`.
    pub fn query(
        &self,
        _table: &str,
        _hash_value: &AttributeValue,
        _sort: Option<&SortKeyCondition>,
        _forward: bool,
        _exclusive_start: Option<&Item>,
        _visit: &mut dyn FnMut(Item) -> Visit,
    ) -> Result<(), StorageError> {
        todo!()
    }

    /// Visits the items of scan segment `segment` of `total_segments` in scan
    /// order, starting after `exclusive_start` when given. The segments of one
    /// `total_segments` partition the table exactly.
    pub fn scan(
        &self,
        _table: &str,
        _segment: u32,
        _total_segments: u32,
        _exclusive_start: Option<&Item>,
        _visit: &mut dyn FnMut(Item) -> Visit,
    ) -> Result<(), StorageError> {
        todo!()
    }
}
