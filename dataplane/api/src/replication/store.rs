//! What replication needs of where the data lives.
//!
//! [`ReplicaStore`] is implemented by the local `Store` (`partita serve`)
//! and by the cluster router (`partita gateway`, in `partita-cluster`):
//! there, the table's replication state is replicated to every partition's
//! Raft group (so each writes item versions), a partition's change log,
//! full-copy pages and cursors live in that partition's group, and changes
//! from other regions are applied through the log of the group owning
//! their key.

use std::sync::Arc;

use partita_model::TableDefinition;
use partita_storage::{
    CopyPage, ReplicaApply, ReplicatedChange, ReplicationState, StorageError, Store,
};

use crate::backend::{Backend, BoxFuture};

/// The storage operations of replication beyond the API's [`Backend`]
/// (the `Store` methods of the same names; see there).
pub trait ReplicaStore: Backend {
    /// Creates a table that is replicated with `state` from its first
    /// write on.
    fn create_replicated_table(
        &self,
        def: TableDefinition,
        state: ReplicationState,
    ) -> Result<(), StorageError>;
    fn partition_count(&self, table: &str) -> Result<u32, StorageError>;
    fn replication(&self, table: &str) -> Result<Option<ReplicationState>, StorageError>;
    fn set_replication(
        &self,
        table: &str,
        state: Option<ReplicationState>,
    ) -> Result<TableDefinition, StorageError>;
    fn copy_page(
        &self,
        table: &str,
        partition: u32,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<CopyPage, StorageError>;
    fn replication_cursor(
        &self,
        table: &str,
        region: &str,
        partition: u32,
    ) -> Result<Option<u64>, StorageError>;
    fn set_replication_cursors(
        &self,
        table: &str,
        region: &str,
        cursors: &[(u32, Option<u64>)],
    ) -> Result<(), StorageError>;
    fn apply_replicated<'a>(
        &'a self,
        table: &'a str,
        changes: Vec<ReplicatedChange>,
    ) -> BoxFuture<'a, Result<Vec<ReplicaApply>, StorageError>>;
    /// Woken after commits that appended change-log records (a backend
    /// that cannot tell wakes it periodically).
    fn change_notifier(&self) -> Arc<tokio::sync::Notify>;
}

impl ReplicaStore for Store {
    fn create_replicated_table(
        &self,
        def: TableDefinition,
        state: ReplicationState,
    ) -> Result<(), StorageError> {
        let name = def.name.clone();
        Store::create_table(self, def)?;
        Store::set_replication(self, &name, Some(state)).map(|_| ())
    }
    fn partition_count(&self, table: &str) -> Result<u32, StorageError> {
        Store::partition_count(self, table)
    }
    fn replication(&self, table: &str) -> Result<Option<ReplicationState>, StorageError> {
        Store::replication(self, table)
    }
    fn set_replication(
        &self,
        table: &str,
        state: Option<ReplicationState>,
    ) -> Result<TableDefinition, StorageError> {
        Store::set_replication(self, table, state)
    }
    fn copy_page(
        &self,
        table: &str,
        partition: u32,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<CopyPage, StorageError> {
        Store::copy_page(self, table, partition, after, limit)
    }
    fn replication_cursor(
        &self,
        table: &str,
        region: &str,
        partition: u32,
    ) -> Result<Option<u64>, StorageError> {
        Store::replication_cursor(self, table, region, partition)
    }
    fn set_replication_cursors(
        &self,
        table: &str,
        region: &str,
        cursors: &[(u32, Option<u64>)],
    ) -> Result<(), StorageError> {
        Store::set_replication_cursors(self, table, region, cursors)
    }
    fn apply_replicated<'a>(
        &'a self,
        table: &'a str,
        changes: Vec<ReplicatedChange>,
    ) -> BoxFuture<'a, Result<Vec<ReplicaApply>, StorageError>> {
        Box::pin(Store::apply_replicated(self, table, changes))
    }
    fn change_notifier(&self) -> Arc<tokio::sync::Notify> {
        Store::change_notifier(self)
    }
}
