//! Global tables through the gateway: the router as replication's
//! [`ReplicaStore`].
//!
//! A table's replication state is set in every partition's group (each
//! then records item versions with its writes); it is read from
//! partition 0's. Partition `p`'s change log, full-copy pages and
//! replication cursors live in group `p` (its store's partition 0).
//! Changes from another region are applied, last writer wins, through the
//! log of the group owning each change's key, so every replica of that
//! group decides alike. Nothing wakes a replicator when a group commits:
//! the change notifier is woken on a short timer instead, and cursors this
//! gateway wrote are remembered rather than read back every step.

use std::sync::Arc;
use std::time::Duration;

use partita_api::backend::{Backend, BoxFuture};
use partita_api::replication::ReplicaStore;
use partita_model::TableDefinition;
use partita_storage::{CopyPage, ReplicaApply, ReplicatedChange, ReplicationState, StorageError};

use super::{unavailable, Router};
use crate::rpc::{Request, Response};
use crate::types::{Command, Reply};

/// How often replicators are woken to look for new changes.
const CHANGE_POLL: Duration = Duration::from_millis(20);

impl Router {
    async fn set_replication_async(
        &self,
        table: &str,
        state: Option<ReplicationState>,
    ) -> Result<TableDefinition, StorageError> {
        let topo = self.table_topology(table)?;
        self.defs.remove(table);
        let result = self
            .replicate_ddl(&topo, Command::SetReplication(table.to_string(), state))
            .await;
        self.defs.remove(table);
        result
    }

    async fn set_cursors_async(
        &self,
        table: &str,
        region: &str,
        cursors: &[(u32, Option<u64>)],
    ) -> Result<(), StorageError> {
        let topo = self.table_topology(table)?;
        // Cursors belong to the table incarnation (a table created again
        // under the same name starts over).
        let id = Backend::table(self, table)?.table_id;
        for (partition, cursor) in cursors {
            let command =
                Command::SetCursors(table.to_string(), region.to_string(), vec![(0, *cursor)]);
            match self.write_group(&topo, *partition, command).await? {
                Reply::Done(Ok(())) => {
                    self.cursors
                        .lock()
                        .insert((id.clone(), region.to_string(), *partition), *cursor);
                }
                Reply::Done(Err(e)) => return Err(e.into()),
                _ => return Err(unavailable("malformed cursor reply".into())),
            }
        }
        Ok(())
    }

    async fn apply_replicated_async(
        &self,
        table: &str,
        changes: Vec<ReplicatedChange>,
    ) -> Result<Vec<ReplicaApply>, StorageError> {
        let topo = self.table_topology(table)?;
        let count = changes.len();
        // partition → (positions, changes), in order of first use.
        let mut groups: Vec<(u32, Vec<usize>, Vec<ReplicatedChange>)> = Vec::new();
        for (i, change) in changes.into_iter().enumerate() {
            let p = self.partition_of_key(&topo, &change.keys)?;
            match groups.iter_mut().find(|g| g.0 == p) {
                Some(g) => {
                    g.1.push(i);
                    g.2.push(change);
                }
                None => groups.push((p, vec![i], vec![change])),
            }
        }
        let mut out = vec![ReplicaApply::Superseded; count];
        for (partition, positions, changes) in groups {
            let command = Command::ApplyReplicated(table.to_string(), changes);
            match self.write_group(&topo, partition, command).await? {
                Reply::Replicated(Ok(applied)) if applied.len() == positions.len() => {
                    for (pos, a) in positions.into_iter().zip(applied) {
                        out[pos] = a;
                    }
                }
                Reply::Replicated(Err(e)) => return Err(e.into()),
                _ => return Err(unavailable("malformed replication reply".into())),
            }
        }
        Ok(out)
    }
}

impl ReplicaStore for Router {
    fn create_replicated_table(
        &self,
        def: TableDefinition,
        state: ReplicationState,
    ) -> Result<(), StorageError> {
        // One command per group: no write reaches a group's table before
        // the group makes it replicated.
        let name = def.name.clone();
        let topo = self.dynamic_topology(&name)?;
        self.defs.remove(&name);
        self.block(self.replicate_ddl(&topo, Command::CreateReplicated(Box::new(def), state)))??;
        Ok(())
    }
    fn partition_count(&self, table: &str) -> Result<u32, StorageError> {
        Ok(self.table_topology(table)?.partitions.len() as u32)
    }
    fn replication(&self, table: &str) -> Result<Option<ReplicationState>, StorageError> {
        let topo = self.table_topology(table)?;
        self.block(self.call(
            &topo,
            0,
            true,
            true,
            |t| Request::Replication {
                target: t,
                table: table.to_string(),
            },
            |r| match r {
                Response::Replication(r) => Some(r),
                _ => None,
            },
        ))?
    }
    fn set_replication(
        &self,
        table: &str,
        state: Option<ReplicationState>,
    ) -> Result<TableDefinition, StorageError> {
        self.block(self.set_replication_async(table, state))?
    }
    fn copy_page(
        &self,
        table: &str,
        partition: u32,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<CopyPage, StorageError> {
        let topo = self.table_topology(table)?;
        let after = after.map(<[u8]>::to_vec);
        self.block(self.call(
            &topo,
            partition,
            true,
            true,
            |t| Request::CopyPage {
                target: t,
                table: table.to_string(),
                after: after.clone(),
                limit: u32::try_from(limit).unwrap_or(u32::MAX),
            },
            |r| match r {
                Response::CopyPage(r) => Some(r),
                _ => None,
            },
        ))?
    }
    fn replication_cursor(
        &self,
        table: &str,
        region: &str,
        partition: u32,
    ) -> Result<Option<u64>, StorageError> {
        // The replicator reads its cursor every step: what this gateway
        // wrote last is kept (another gateway moving it meanwhile only
        // makes this one ship some changes again, which the peer drops).
        let id = Backend::table(self, table)?.table_id;
        if let Some(cursor) = self
            .cursors
            .lock()
            .get(&(id, region.to_string(), partition))
        {
            return Ok(*cursor);
        }
        let topo = self.table_topology(table)?;
        self.block(self.call(
            &topo,
            partition,
            true,
            true,
            |t| Request::Cursor {
                target: t,
                table: table.to_string(),
                region: region.to_string(),
            },
            |r| match r {
                Response::Cursor(r) => Some(r),
                _ => None,
            },
        ))?
    }
    fn set_replication_cursors(
        &self,
        table: &str,
        region: &str,
        cursors: &[(u32, Option<u64>)],
    ) -> Result<(), StorageError> {
        self.block(self.set_cursors_async(table, region, cursors))?
    }
    fn apply_replicated<'a>(
        &'a self,
        table: &'a str,
        changes: Vec<ReplicatedChange>,
    ) -> BoxFuture<'a, Result<Vec<ReplicaApply>, StorageError>> {
        Box::pin(self.apply_replicated_async(table, changes))
    }
    fn change_notifier(&self) -> Arc<tokio::sync::Notify> {
        self.change_poll
            .get_or_init(|| {
                let notify = Arc::new(tokio::sync::Notify::new());
                let weak = Arc::downgrade(&notify);
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(CHANGE_POLL).await;
                        match weak.upgrade() {
                            Some(n) => n.notify_waiters(),
                            None => return,
                        }
                    }
                });
                notify
            })
            .clone()
    }
}
