//! The store's live state: open tables with their partition spaces and
//! statistics, recovery at open, and catalog changes (create, delete, update
//! table).
//!
//! Catalog changes hold the commit lock, the same lock the group-commit
//! writer holds while it applies and commits a group, so a table is never
//! created, changed or dropped in the middle of a write group.
//!
//! Crash safety of catalog changes:
//! - create: the partition spaces are created first, then one durable batch
//!   writes the catalog record and zeroed statistics. A crash in between
//!   leaves unreferenced spaces, which the next open drops.
//! - delete: one durable batch removes the catalog record and statistics,
//!   then the spaces are dropped. A crash in between leaves unreferenced
//!   spaces, which the next open drops.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use partita_model::TableDefinition;

use crate::catalog::{self, PartitionStats};
use crate::codec::decode_item;
use crate::engine::{Engine, Space};
use crate::keys;
use crate::StorageError;

/// One hash-range partition of a table: its engine space and statistics.
pub(crate) struct Partition {
    /// Unique within this process; keys the writer's overlay.
    pub uid: u64,
    pub space: Space,
    pub space_name: String,
    /// Count and bytes as of the last committed group. Changed only by the
    /// writer, under the commit lock.
    pub stats: Mutex<PartitionStats>,
}

/// An open table: its definition and partitions.
pub(crate) struct TableState {
    pub def: TableDefinition,
    pub partitions: Vec<Arc<Partition>>,
}

impl TableState {
    /// Returns the partition owning `hash`.
    pub fn partition_of(&self, hash: u64) -> Result<&Arc<Partition>, StorageError> {
        let count = u32::try_from(self.partitions.len()).unwrap_or(u32::MAX);
        self.partitions
            .get(keys::range_index(hash, count) as usize)
            .ok_or_else(|| StorageError::Corrupt {
                what: "table partitions",
                detail: "no partition".into(),
            })
    }

    /// Returns partition `index` with its hash range [start, end).
    pub fn partition_ranges(&self) -> impl Iterator<Item = (&Arc<Partition>, u128, u128)> {
        let count = u32::try_from(self.partitions.len()).unwrap_or(u32::MAX);
        self.partitions.iter().enumerate().map(move |(i, p)| {
            let i = i as u32;
            (
                p,
                keys::range_start(i, count),
                keys::range_start(i + 1, count),
            )
        })
    }
}

/// Everything the store's handles and its writer thread share.
pub(crate) struct Shared {
    pub engine: Engine,
    pub catalog: Space,
    pub meta: Space,
    pub tables: RwLock<BTreeMap<String, Arc<TableState>>>,
    /// Serializes write groups with catalog changes.
    pub commit_lock: Mutex<()>,
    /// Whether commits fsync.
    pub sync: bool,
    pub counters: crate::commit::WriterCounters,
    next_uid: AtomicU64,
}

impl Shared {
    /// Opens the engine in `dir`, loads the catalog and statistics, and drops
    /// the leftovers of interrupted table creations and deletions.
    pub fn open(dir: &Path, sync: bool) -> Result<Shared, StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::Engine {
            operation: "create data directory",
            message: e.to_string(),
        })?;
        let engine = Engine::open(dir)?;
        let catalog = engine.space(catalog::CATALOG_SPACE)?;
        let meta = engine.space(catalog::META_SPACE)?;
        let shared = Shared {
            engine,
            catalog,
            meta,
            tables: RwLock::new(BTreeMap::new()),
            commit_lock: Mutex::new(()),
            sync,
            counters: Default::default(),
            next_uid: AtomicU64::new(1),
        };
        shared.recover()?;
        Ok(shared)
    }

    fn recover(&self) -> Result<(), StorageError> {
        let view = self.engine.read_view();
        let mut defs = Vec::new();
        for entry in view.range(
            &self.catalog,
            std::ops::Bound::Unbounded,
            std::ops::Bound::Unbounded,
            false,
        ) {
            let (_, value) = entry?;
            defs.push(catalog::decode_definition(&value)?);
        }
        let mut stored_stats = BTreeMap::new();
        for entry in view.range(
            &self.meta,
            std::ops::Bound::Unbounded,
            std::ops::Bound::Unbounded,
            false,
        ) {
            let (key, value) = entry?;
            if let Some(space) = catalog::space_of_stats_key(&key) {
                stored_stats.insert(
                    space.to_owned(),
                    (key.to_vec(), catalog::decode_stats(&value)?),
                );
            }
        }
        let mut tables = BTreeMap::new();
        let mut live = HashSet::new();
        for def in defs {
            let mut partitions = Vec::new();
            for i in 0..def.partitions.max(1) {
                let name = catalog::partition_space_name(&def.table_id, i)?;
                let space = self.engine.space(&name)?;
                let stats = match stored_stats.get(&name) {
                    Some((_, stats)) => *stats,
                    None => self.count_space(&space)?,
                };
                live.insert(name.clone());
                partitions.push(self.partition(space, name, stats));
            }
            tables.insert(def.name.clone(), Arc::new(TableState { def, partitions }));
        }
        // Leftovers of interrupted creations and deletions.
        let mut cleanup = self.engine.batch();
        for (space, (key, _)) in &stored_stats {
            if !live.contains(space) {
                cleanup.delete(&self.meta, key);
            }
        }
        if !cleanup.is_empty() {
            self.engine.commit(cleanup, self.sync)?;
        }
        for name in self.engine.space_names() {
            if catalog::is_partition_space(&name) && !live.contains(&name) {
                tracing::info!(space = %name, "dropping the space of a deleted table");
                let space = self.engine.space(&name)?;
                self.engine.drop_space(space)?;
            }
        }
        *self.tables.write() = tables;
        Ok(())
    }

    /// Counts the items of a space (statistics missing from `meta`).
    fn count_space(&self, space: &Space) -> Result<PartitionStats, StorageError> {
        let mut stats = PartitionStats::default();
        let view = self.engine.read_view();
        for entry in view.range(
            space,
            std::ops::Bound::Unbounded,
            std::ops::Bound::Unbounded,
            false,
        ) {
            let (_, value) = entry?;
            let item = decode_item(&value).map_err(|e| StorageError::Corrupt {
                what: "item",
                detail: e.to_string(),
            })?;
            stats.items += 1;
            stats.bytes += partita_model::value::item_size(&item) as u64;
        }
        Ok(stats)
    }

    fn partition(&self, space: Space, space_name: String, stats: PartitionStats) -> Arc<Partition> {
        Arc::new(Partition {
            uid: self.next_uid.fetch_add(1, Ordering::Relaxed),
            space,
            space_name,
            stats: Mutex::new(stats),
        })
    }

    /// Returns an open table.
    pub fn table(&self, name: &str) -> Result<Arc<TableState>, StorageError> {
        self.tables
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| StorageError::TableNotFound(name.into()))
    }

    pub fn create_table(&self, mut def: TableDefinition) -> Result<(), StorageError> {
        def.partitions = def.partitions.max(1);
        if def.name.is_empty() {
            return Err(StorageError::InvalidTableDefinition(
                "empty table name".into(),
            ));
        }
        let names = (0..def.partitions)
            .map(|i| catalog::partition_space_name(&def.table_id, i))
            .collect::<Result<Vec<_>, _>>()?;
        let _commit = self.commit_lock.lock();
        {
            let tables = self.tables.read();
            if tables.contains_key(&def.name) {
                return Err(StorageError::TableExists(def.name));
            }
            if tables.values().any(|t| t.def.table_id == def.table_id) {
                return Err(StorageError::InvalidTableDefinition(format!(
                    "table id {} is in use",
                    def.table_id
                )));
            }
        }
        let mut batch = self.engine.batch();
        let mut partitions = Vec::new();
        for name in names {
            let space = self.engine.space(&name)?;
            batch.put(
                &self.meta,
                &catalog::stats_key(&name),
                catalog::encode_stats(PartitionStats::default()),
            );
            partitions.push(self.partition(space, name, PartitionStats::default()));
        }
        batch.put(
            &self.catalog,
            def.name.as_bytes(),
            catalog::encode_definition(&def)?,
        );
        self.engine.commit(batch, self.sync)?;
        self.tables
            .write()
            .insert(def.name.clone(), Arc::new(TableState { def, partitions }));
        Ok(())
    }

    pub fn delete_table(&self, name: &str) -> Result<TableDefinition, StorageError> {
        let _commit = self.commit_lock.lock();
        let table = self.table(name)?;
        let mut batch = self.engine.batch();
        batch.delete(&self.catalog, name.as_bytes());
        for p in &table.partitions {
            batch.delete(&self.meta, &catalog::stats_key(&p.space_name));
        }
        self.engine.commit(batch, self.sync)?;
        self.tables.write().remove(name);
        for p in &table.partitions {
            if let Err(e) = self.engine.drop_space(p.space.clone()) {
                // The next open drops it: the catalog no longer references it.
                tracing::warn!(space = %p.space_name, error = %e, "dropping a table space failed");
            }
        }
        Ok(table.def.clone())
    }

    pub fn update_table<F>(&self, name: &str, change: F) -> Result<TableDefinition, StorageError>
    where
        F: FnOnce(&mut TableDefinition) -> Result<(), StorageError>,
    {
        let _commit = self.commit_lock.lock();
        let table = self.table(name)?;
        let mut def = table.def.clone();
        change(&mut def)?;
        let immutable = [
            ("name", def.name != table.def.name),
            ("table_id", def.table_id != table.def.table_id),
            ("key_schema", def.key_schema != table.def.key_schema),
            (
                "partitions",
                def.partitions.max(1) as usize != table.partitions.len(),
            ),
        ];
        if let Some((field, _)) = immutable.iter().find(|(_, changed)| *changed) {
            return Err(StorageError::InvalidTableDefinition(format!(
                "update_table cannot change {field}"
            )));
        }
        let mut batch = self.engine.batch();
        batch.put(
            &self.catalog,
            name.as_bytes(),
            catalog::encode_definition(&def)?,
        );
        self.engine.commit(batch, self.sync)?;
        let state = TableState {
            def: def.clone(),
            partitions: table.partitions.clone(),
        };
        self.tables.write().insert(name.to_owned(), Arc::new(state));
        Ok(def)
    }

    pub fn table_stats(&self, name: &str) -> Result<(u64, u64), StorageError> {
        let table = self.table(name)?;
        Ok(table.partitions.iter().fold((0, 0), |(items, bytes), p| {
            let s = *p.stats.lock();
            (items + s.items, bytes + s.bytes)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_drops_spaces_and_statistics_no_table_references() {
        let dir = tempfile::tempdir().unwrap();
        {
            let shared = Shared::open(dir.path(), true).unwrap();
            // What a crash between creating the spaces and committing the
            // catalog record of a table leaves behind.
            let orphan = shared.engine.space("t.gone.0").unwrap();
            let mut batch = shared.engine.batch();
            batch.put(&orphan, b"k", b"v".to_vec());
            batch.put(
                &shared.meta,
                &catalog::stats_key("t.gone.0"),
                catalog::encode_stats(PartitionStats { items: 1, bytes: 1 }),
            );
            shared.engine.commit(batch, true).unwrap();
        }
        let shared = Shared::open(dir.path(), true).unwrap();
        assert!(!shared.engine.space_names().iter().any(|n| n == "t.gone.0"));
        let view = shared.engine.read_view();
        assert!(view
            .get(&shared.meta, &catalog::stats_key("t.gone.0"))
            .unwrap()
            .is_none());
    }
}
