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
    ChangePage, CopyPage, ReplicaApply, ReplicatedChange, ReplicationState, StorageError, Store,
};

use crate::backend::{BoxFuture, TableChange};

/// The storage operations of replication (the `Store` methods of the same
/// names; see there).
pub trait ReplicaStore: Send + Sync {
    fn table(&self, table: &str) -> Result<TableDefinition, StorageError>;
    fn list_tables(&self) -> Vec<String>;
    fn create_table(&self, def: TableDefinition) -> Result<(), StorageError>;
    /// Creates a table that is replicated with `state` from its first
    /// write on.
    fn create_replicated_table(
        &self,
        def: TableDefinition,
        state: ReplicationState,
    ) -> Result<(), StorageError>;
    fn delete_table(&self, table: &str) -> Result<TableDefinition, StorageError>;
    /// `Store::update_table` with a dynamic change (called once); use the
    /// generic `update_table` on `dyn ReplicaStore`.
    fn update_table_dyn(
        &self,
        table: &str,
        change: TableChange<'_>,
    ) -> Result<TableDefinition, StorageError>;
    fn table_stats(&self, table: &str) -> Result<(u64, u64), StorageError>;
    fn partition_count(&self, table: &str) -> Result<u32, StorageError>;
    fn replication(&self, table: &str) -> Result<Option<ReplicationState>, StorageError>;
    fn set_replication(
        &self,
        table: &str,
        state: Option<ReplicationState>,
    ) -> Result<TableDefinition, StorageError>;
    fn read_changes(
        &self,
        table: &str,
        partition: u32,
        from: u64,
        until: Option<u64>,
        limit: usize,
    ) -> Result<ChangePage, StorageError>;
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

impl dyn ReplicaStore {
    /// Changes a table's definition (see `Store::update_table`).
    pub fn update_table<F>(&self, table: &str, change: F) -> Result<TableDefinition, StorageError>
    where
        F: FnOnce(&mut TableDefinition) -> Result<(), StorageError>,
    {
        let mut change = Some(change);
        self.update_table_dyn(table, &mut |def| match change.take() {
            Some(f) => f(def),
            None => Err(StorageError::InvalidTableDefinition(
                "table change applied twice".into(),
            )),
        })
    }
}

impl ReplicaStore for Store {
    fn table(&self, table: &str) -> Result<TableDefinition, StorageError> {
        Store::table(self, table)
    }
    fn list_tables(&self) -> Vec<String> {
        Store::list_tables(self)
    }
    fn create_table(&self, def: TableDefinition) -> Result<(), StorageError> {
        Store::create_table(self, def)
    }
    fn create_replicated_table(
        &self,
        def: TableDefinition,
        state: ReplicationState,
    ) -> Result<(), StorageError> {
        let name = def.name.clone();
        Store::create_table(self, def)?;
        Store::set_replication(self, &name, Some(state)).map(|_| ())
    }
    fn delete_table(&self, table: &str) -> Result<TableDefinition, StorageError> {
        Store::delete_table(self, table)
    }
    fn update_table_dyn(
        &self,
        table: &str,
        change: TableChange<'_>,
    ) -> Result<TableDefinition, StorageError> {
        Store::update_table(self, table, change)
    }
    fn table_stats(&self, table: &str) -> Result<(u64, u64), StorageError> {
        Store::table_stats(self, table)
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
