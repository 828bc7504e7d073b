//! The seam between the DynamoDB API and where the data lives.
//!
//! The operations under `ops/` speak to a [`Backend`]: typed commands,
//! typed reads and typed errors (`partita-storage`'s), nothing JSON. Two
//! implementations exist:
//!
//! - the local [`Store`] (`partita serve`): every call goes straight to the
//!   engine, so `serve` pays one virtual call and, for writes, one boxed
//!   future per request — nothing else;
//! - the cluster router of `partita-cluster` (`partita gateway`): routes each
//!   call to the Raft group owning the key's hash range, fans out scans.
//!
//! The trait mirrors the `Store` methods one for one (same names, same
//! argument and result types) so call sites read `api.store.get(..)` in both
//! modes. Reads are synchronous like the `Store`'s; a remote backend runs
//! them on the caller's runtime thread with `tokio::task::block_in_place`
//! (documented there).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use partita_expr::SortKeyCondition;
use partita_model::schema::{IndexDefinition, IndexState};
use partita_model::{AttributeValue, Item, TableDefinition};
use partita_storage::{
    ChangePage, StorageError, Store, StreamInfo, TransactionFailure, Visit, WriteCommand,
    WriteOutcome,
};

/// A boxed, sendable future (what the async methods of [`Backend`] return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A table-definition change for [`Backend::update_table_dyn`].
pub type TableChange<'a> = &'a mut dyn FnMut(&mut TableDefinition) -> Result<(), StorageError>;

/// The outcome of [`Backend::transact_write_once`].
#[derive(Clone, Debug)]
pub enum OnceOutcome {
    /// The transaction ran and committed now: one outcome per action.
    Committed(Vec<WriteOutcome>),
    /// The same request already committed under the token; nothing was
    /// applied. (table, current item size) per action.
    Replayed(Vec<(String, u64)>),
    /// The token belongs to a different request.
    Mismatch,
}

/// Where the API's data operations go. See the module docs.
pub trait Backend: Send + Sync {
    fn create_table(&self, def: TableDefinition) -> Result<(), StorageError>;
    fn create_global_index(
        &self,
        table: &str,
        index: IndexDefinition,
    ) -> Result<TableDefinition, StorageError>;
    fn delete_global_index(
        &self,
        table: &str,
        index: &str,
    ) -> Result<TableDefinition, StorageError>;
    fn index_state(&self, table: &str, index: &str) -> Result<IndexState, StorageError>;
    fn index_stats(&self, table: &str, index: &str) -> Result<(u64, u64), StorageError>;
    fn wait_for_index_delivery(&self, table: &str, timeout: Duration)
        -> Result<bool, StorageError>;
    fn delete_table(&self, name: &str) -> Result<TableDefinition, StorageError>;
    fn table(&self, name: &str) -> Result<TableDefinition, StorageError>;
    fn list_tables(&self) -> Vec<String>;
    /// [`Store::update_table`] with a dynamic change (called once); use
    /// the generic `update_table` on `dyn Backend`.
    fn update_table_dyn(
        &self,
        name: &str,
        change: TableChange<'_>,
    ) -> Result<TableDefinition, StorageError>;
    fn table_stats(&self, name: &str) -> Result<(u64, u64), StorageError>;
    fn write<'a>(
        &'a self,
        table: &'a str,
        command: WriteCommand,
    ) -> BoxFuture<'a, Result<WriteOutcome, StorageError>>;
    fn write_many(
        &self,
        commands: Vec<(String, WriteCommand)>,
    ) -> BoxFuture<'_, Vec<Result<WriteOutcome, StorageError>>>;
    fn transact_write(
        &self,
        actions: Vec<(String, WriteCommand)>,
    ) -> BoxFuture<'_, Result<Vec<WriteOutcome>, TransactionFailure>>;
    /// A write transaction under a ClientRequestToken (`token`, with the
    /// `fingerprint` of its request). A backend that keeps token records
    /// itself (the cluster router: they are replicated with the data)
    /// applies it at most once per token; the default ignores the token,
    /// which the API's in-process cache handles (one process is the whole
    /// server).
    fn transact_write_once(
        &self,
        actions: Vec<(String, WriteCommand)>,
        token: String,
        fingerprint: u64,
    ) -> BoxFuture<'_, Result<OnceOutcome, TransactionFailure>> {
        let _ = (token, fingerprint);
        Box::pin(async move {
            self.transact_write(actions)
                .await
                .map(OnceOutcome::Committed)
        })
    }
    fn transact_get(&self, gets: &[(String, Item)]) -> Result<Vec<Option<Item>>, StorageError>;
    /// Reads one item. `consistent`-ness is the backend's to honour through
    /// [`Backend::get_with`]; this is a strongly consistent read.
    fn get(&self, table: &str, key: &Item) -> Result<Option<Item>, StorageError> {
        self.get_with(table, key, true)
    }
    /// Reads one item; with `consistent` false a replicated backend may
    /// answer from any replica (possibly stale).
    fn get_with(
        &self,
        table: &str,
        key: &Item,
        consistent: bool,
    ) -> Result<Option<Item>, StorageError>;
    #[allow(clippy::too_many_arguments)]
    fn query(
        &self,
        table: &str,
        hash_value: &AttributeValue,
        sort: Option<&SortKeyCondition>,
        forward: bool,
        exclusive_start: Option<&Item>,
        visit: &mut dyn FnMut(Item) -> Visit,
    ) -> Result<(), StorageError>;
    fn scan(
        &self,
        table: &str,
        segment: u32,
        total_segments: u32,
        exclusive_start: Option<&Item>,
        visit: &mut dyn FnMut(Item) -> Visit,
    ) -> Result<(), StorageError>;
    #[allow(clippy::too_many_arguments)]
    fn query_index(
        &self,
        table: &str,
        index: &str,
        hash_value: &AttributeValue,
        sort: Option<&SortKeyCondition>,
        forward: bool,
        exclusive_start: Option<&Item>,
        visit: &mut dyn FnMut(Item) -> Visit,
    ) -> Result<(), StorageError>;
    fn scan_index(
        &self,
        table: &str,
        index: &str,
        segment: u32,
        total_segments: u32,
        exclusive_start: Option<&Item>,
        visit: &mut dyn FnMut(Item) -> Visit,
    ) -> Result<(), StorageError>;
    /// The table's incarnation id and its streams (see
    /// [`Store::streams`]). Backends without a change log refuse.
    fn streams(&self, table: &str) -> Result<(String, Vec<StreamInfo>), StorageError> {
        let _ = table;
        Err(no_change_log())
    }
    /// A page of one partition's change log (see [`Store::read_changes`]).
    fn read_changes(
        &self,
        table: &str,
        partition: u32,
        from: u64,
        until: Option<u64>,
        limit: usize,
    ) -> Result<ChangePage, StorageError> {
        let _ = (table, partition, from, until, limit);
        Err(no_change_log())
    }
    /// A durable 32-byte secret (see [`Store::secret`]).
    fn secret(&self, name: &str) -> Result<[u8; 32], StorageError> {
        let _ = name;
        Err(no_change_log())
    }
}

fn no_change_log() -> StorageError {
    StorageError::Engine {
        operation: "streams",
        message: "this backend does not serve DynamoDB Streams".into(),
    }
}

impl dyn Backend {
    /// Changes a table's definition (see [`Store::update_table`]). A
    /// cluster backend may run `change` more than once: again on a newer
    /// definition when another gateway changed the table meanwhile.
    pub fn update_table<F>(
        &self,
        name: &str,
        mut change: F,
    ) -> Result<TableDefinition, StorageError>
    where
        F: FnMut(&mut TableDefinition) -> Result<(), StorageError>,
    {
        self.update_table_dyn(name, &mut change)
    }
}

impl Backend for Store {
    fn streams(&self, table: &str) -> Result<(String, Vec<StreamInfo>), StorageError> {
        Store::streams(self, table)
    }
    fn read_changes(
        &self,
        table: &str,
        partition: u32,
        from: u64,
        until: Option<u64>,
        limit: usize,
    ) -> Result<ChangePage, StorageError> {
        Store::read_changes(self, table, partition, from, until, limit)
    }
    fn secret(&self, name: &str) -> Result<[u8; 32], StorageError> {
        Store::secret(self, name)
    }
    fn create_table(&self, def: TableDefinition) -> Result<(), StorageError> {
        Store::create_table(self, def)
    }
    fn create_global_index(
        &self,
        table: &str,
        index: IndexDefinition,
    ) -> Result<TableDefinition, StorageError> {
        Store::create_global_index(self, table, index)
    }
    fn delete_global_index(
        &self,
        table: &str,
        index: &str,
    ) -> Result<TableDefinition, StorageError> {
        Store::delete_global_index(self, table, index)
    }
    fn index_state(&self, table: &str, index: &str) -> Result<IndexState, StorageError> {
        Store::index_state(self, table, index)
    }
    fn index_stats(&self, table: &str, index: &str) -> Result<(u64, u64), StorageError> {
        Store::index_stats(self, table, index)
    }
    fn wait_for_index_delivery(
        &self,
        table: &str,
        timeout: Duration,
    ) -> Result<bool, StorageError> {
        Store::wait_for_index_delivery(self, table, timeout)
    }
    fn delete_table(&self, name: &str) -> Result<TableDefinition, StorageError> {
        Store::delete_table(self, name)
    }
    fn table(&self, name: &str) -> Result<TableDefinition, StorageError> {
        Store::table(self, name)
    }
    fn list_tables(&self) -> Vec<String> {
        Store::list_tables(self)
    }
    fn update_table_dyn(
        &self,
        name: &str,
        change: TableChange<'_>,
    ) -> Result<TableDefinition, StorageError> {
        Store::update_table(self, name, change)
    }
    fn table_stats(&self, name: &str) -> Result<(u64, u64), StorageError> {
        Store::table_stats(self, name)
    }
    fn write<'a>(
        &'a self,
        table: &'a str,
        command: WriteCommand,
    ) -> BoxFuture<'a, Result<WriteOutcome, StorageError>> {
        Box::pin(Store::write(self, table, command))
    }
    fn write_many(
        &self,
        commands: Vec<(String, WriteCommand)>,
    ) -> BoxFuture<'_, Vec<Result<WriteOutcome, StorageError>>> {
        Box::pin(Store::write_many(self, commands))
    }
    fn transact_write(
        &self,
        actions: Vec<(String, WriteCommand)>,
    ) -> BoxFuture<'_, Result<Vec<WriteOutcome>, TransactionFailure>> {
        Box::pin(Store::transact_write(self, actions))
    }
    fn transact_get(&self, gets: &[(String, Item)]) -> Result<Vec<Option<Item>>, StorageError> {
        Store::transact_get(self, gets)
    }
    fn get_with(
        &self,
        table: &str,
        key: &Item,
        _consistent: bool,
    ) -> Result<Option<Item>, StorageError> {
        Store::get(self, table, key)
    }
    fn query(
        &self,
        table: &str,
        hash_value: &AttributeValue,
        sort: Option<&SortKeyCondition>,
        forward: bool,
        exclusive_start: Option<&Item>,
        visit: &mut dyn FnMut(Item) -> Visit,
    ) -> Result<(), StorageError> {
        Store::query(
            self,
            table,
            hash_value,
            sort,
            forward,
            exclusive_start,
            visit,
        )
    }
    fn scan(
        &self,
        table: &str,
        segment: u32,
        total_segments: u32,
        exclusive_start: Option<&Item>,
        visit: &mut dyn FnMut(Item) -> Visit,
    ) -> Result<(), StorageError> {
        Store::scan(self, table, segment, total_segments, exclusive_start, visit)
    }
    fn query_index(
        &self,
        table: &str,
        index: &str,
        hash_value: &AttributeValue,
        sort: Option<&SortKeyCondition>,
        forward: bool,
        exclusive_start: Option<&Item>,
        visit: &mut dyn FnMut(Item) -> Visit,
    ) -> Result<(), StorageError> {
        Store::query_index(
            self,
            table,
            index,
            hash_value,
            sort,
            forward,
            exclusive_start,
            visit,
        )
    }
    fn scan_index(
        &self,
        table: &str,
        index: &str,
        segment: u32,
        total_segments: u32,
        exclusive_start: Option<&Item>,
        visit: &mut dyn FnMut(Item) -> Visit,
    ) -> Result<(), StorageError> {
        Store::scan_index(
            self,
            table,
            index,
            segment,
            total_segments,
            exclusive_start,
            visit,
        )
    }
}
