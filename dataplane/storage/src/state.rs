//! The store's live state: open tables with their partition spaces and
//! statistics, recovery at open, and catalog changes (create, delete, update
//! table).
//!
//! Catalog changes hold the commit lock, the same lock the group-commit
//! writer holds while it applies and commits a group, so a table is never
//! created, changed or dropped in the middle of a write group.
//!
//! Catalog changes that drop spaces (deleting a table or a global index)
//! also hold the delivery lock, so the outbox delivery task never writes to
//! a space being dropped. Lock order: commit lock, then delivery lock, then
//! the tables map.
//!
//! Crash safety of catalog changes:
//! - create (a table or a global index): the spaces are created first, then
//!   one durable batch writes the catalog record and zeroed statistics. A
//!   crash in between leaves unreferenced spaces, which the next open drops.
//! - delete (a table or a global index): one durable batch rewrites or
//!   removes the catalog record and removes the statistics, then the spaces
//!   are dropped whole. A crash in between leaves unreferenced spaces, which
//!   the next open drops. Outbox entries still naming a deleted global index
//!   are skipped by delivery.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use partita_model::schema::{IndexDefinition, IndexState, IndexStatus};
use partita_model::TableDefinition;

use crate::apply::IndexSet;
use crate::catalog::{self, CatalogRecord, GlobalIndexRecord, PartitionStats};
use crate::codec::decode_item;
use crate::engine::{Batch, Engine, Space};
use crate::index_keys::IndexKind;
use crate::keys;
use crate::outbox::Delivery;
use crate::stream::{self, ChangeLog, Segment, StreamState, StreamViewType};
use crate::{StorageError, StoreOptions};

/// Most local indexes a table may have.
pub const MAX_LOCAL_INDEXES: usize = 5;
/// Most global indexes a table may have.
pub const MAX_GLOBAL_INDEXES: usize = 20;

/// One hash-range partition of a table or of an index: its engine space and
/// statistics (items or index entries).
pub(crate) struct Partition {
    /// Unique within this process; keys the writer's overlay.
    pub uid: u64,
    pub space: Space,
    pub space_name: String,
    /// Count and bytes as of the last committed batch. Changed only by the
    /// writer (tables, local indexes) or the delivery task (global indexes).
    pub stats: Mutex<PartitionStats>,
}

/// The global index outbox of one table partition.
pub(crate) struct Outbox {
    /// Unique within this process.
    pub uid: u64,
    /// Index of the table partition.
    pub partition: usize,
    pub space: Space,
    /// The sequence number of the next entry (as of the last committed
    /// group). Changed only by the writer.
    pub next_seq: AtomicU64,
    /// Every entry below this sequence number is delivered. Changed only by
    /// the delivery task.
    pub delivered: AtomicU64,
}

impl Outbox {
    /// Returns how many entries await delivery.
    pub fn pending(&self) -> u64 {
        self.next_seq
            .load(Ordering::Acquire)
            .saturating_sub(self.delivered.load(Ordering::Acquire))
    }
}

/// A maintained (creating or active) global index.
pub(crate) struct GlobalIndex {
    pub id: u64,
    pub def: IndexDefinition,
    pub state: IndexState,
    pub partitions: Vec<Arc<Partition>>,
}

/// Returns which of `partitions` owns `hash`.
pub(crate) fn partition_for(
    partitions: &[Arc<Partition>],
    hash: u64,
) -> Result<&Arc<Partition>, StorageError> {
    let count = u32::try_from(partitions.len()).unwrap_or(u32::MAX);
    partitions
        .get(keys::range_index(hash, count) as usize)
        .ok_or_else(|| StorageError::Corrupt {
            what: "partitions",
            detail: "no partition".into(),
        })
}

/// Returns each of `partitions` with its hash range [start, end).
pub(crate) fn ranges_of(
    partitions: &[Arc<Partition>],
) -> impl Iterator<Item = (&Arc<Partition>, u128, u128)> {
    let count = u32::try_from(partitions.len()).unwrap_or(u32::MAX);
    partitions.iter().enumerate().map(move |(i, p)| {
        let i = i as u32;
        (
            p,
            keys::range_start(i, count),
            keys::range_start(i + 1, count),
        )
    })
}

/// A readable secondary index of a table.
pub(crate) struct IndexRef<'a> {
    pub kind: IndexKind,
    pub def: &'a IndexDefinition,
    pub partitions: &'a [Arc<Partition>],
}

/// An open table: its definition, partitions and index spaces.
#[derive(Clone)]
pub(crate) struct TableState {
    pub def: TableDefinition,
    pub partitions: Vec<Arc<Partition>>,
    /// Per local index (definition order), one partition per table partition.
    pub locals: Vec<Vec<Arc<Partition>>>,
    /// Item collection sizes per table partition (tables with local indexes).
    pub collections: Vec<Space>,
    /// The global index outbox of each table partition.
    pub outboxes: Vec<Arc<Outbox>>,
    /// The maintained global indexes.
    pub globals: Vec<Arc<GlobalIndex>>,
    /// The id the next global index gets.
    pub next_index_id: u64,
    /// The change log of each table partition.
    pub logs: Vec<Arc<ChangeLog>>,
    /// The table's streams and shards.
    pub streams: Vec<StreamState>,
    /// Set while the table is replicated (see `replica`).
    pub replication: Option<Arc<Replicated>>,
}

/// The replication state of a replicated table and its version space.
pub(crate) struct Replicated {
    pub state: crate::replica::ReplicationState,
    pub versions: Space,
}

impl TableState {
    /// Returns the partition owning `hash`.
    pub fn partition_of(&self, hash: u64) -> Result<&Arc<Partition>, StorageError> {
        partition_for(&self.partitions, hash)
    }

    /// Returns the index of the partition owning `hash`.
    pub fn partition_index(&self, hash: u64) -> usize {
        let count = u32::try_from(self.partitions.len()).unwrap_or(u32::MAX);
        keys::range_index(hash, count) as usize
    }

    /// Returns the indexes a write maintains.
    pub fn index_set(&self) -> IndexSet<'_> {
        IndexSet {
            table: &self.def.key_schema,
            local: self.def.local_indexes.iter().collect(),
            global: self.globals.iter().map(|g| (g.id, &g.def)).collect(),
        }
    }

    /// Returns the secondary index named `name`.
    pub fn index(&self, name: &str) -> Result<IndexRef<'_>, StorageError> {
        if let Some(i) = self.def.local_indexes.iter().position(|d| d.name == name) {
            if let (Some(def), Some(partitions)) =
                (self.def.local_indexes.get(i), self.locals.get(i))
            {
                return Ok(IndexRef {
                    kind: IndexKind::Local,
                    def,
                    partitions,
                });
            }
        }
        self.globals
            .iter()
            .find(|g| g.def.name == name)
            .map(|g| IndexRef {
                kind: IndexKind::Global,
                def: &g.def,
                partitions: &g.partitions,
            })
            .ok_or_else(|| StorageError::IndexNotFound(name.into()))
    }

    /// Returns the catalog record of this state.
    pub fn record(&self) -> CatalogRecord {
        CatalogRecord {
            definition: self.def.clone(),
            global_indexes: self
                .globals
                .iter()
                .map(|g| GlobalIndexRecord {
                    name: g.def.name.clone(),
                    id: g.id,
                    partitions: u32::try_from(g.partitions.len()).unwrap_or(u32::MAX),
                    state: g.state,
                })
                .collect(),
            next_index_id: self.next_index_id,
            streams: self.streams.clone(),
            replication: self.replication.as_ref().map(|r| r.state.clone()),
        }
    }

    /// Returns the view type of the enabled stream, if any: what the
    /// writer records.
    pub fn stream_view(&self) -> Option<StreamViewType> {
        self.streams
            .iter()
            .find(|s| s.closed_ms.is_none())
            .map(|s| s.view_type)
    }

    /// Returns the stats-carrying partitions: table, local and global index.
    fn counted_partitions(&self) -> impl Iterator<Item = &Arc<Partition>> {
        self.partitions
            .iter()
            .chain(self.locals.iter().flatten())
            .chain(self.globals.iter().flat_map(|g| g.partitions.iter()))
    }

    /// Returns every space of the table.
    fn spaces(&self) -> Vec<Space> {
        self.counted_partitions()
            .map(|p| p.space.clone())
            .chain(self.collections.iter().cloned())
            .chain(self.outboxes.iter().map(|o| o.space.clone()))
            .chain(self.replication.iter().map(|r| r.versions.clone()))
            .chain(self.logs.iter().flat_map(|l| {
                l.segments
                    .lock()
                    .values()
                    .map(|s| s.space.clone())
                    .collect::<Vec<_>>()
            }))
            .collect()
    }
}

/// Everything the store's handles, its writer, its delivery task and its
/// backfills share.
pub(crate) struct Shared {
    pub engine: Engine,
    pub catalog: Space,
    pub meta: Space,
    pub tables: RwLock<BTreeMap<String, Arc<TableState>>>,
    /// Serializes write groups with catalog changes.
    pub commit_lock: Mutex<()>,
    /// Serializes outbox delivery with the dropping of spaces.
    pub delivery_lock: Mutex<()>,
    /// Wakes the delivery task.
    pub delivery: Delivery,
    /// Whether commits fsync.
    pub sync: bool,
    /// Largest item collection (bytes) a write may produce.
    pub collection_limit: u64,
    /// Set when the store shuts down: background work stops.
    pub stopping: AtomicBool,
    /// Backfill threads, joined at shutdown.
    pub backfills: Mutex<Vec<std::thread::JoinHandle<()>>>,
    pub counters: crate::commit::WriterCounters,
    /// How long change-log records are kept.
    pub stream_retention: std::time::Duration,
    /// How long a shard stays open before it rolls.
    pub shard_roll: std::time::Duration,
    /// How often the TTL sweeper looks for expired items.
    pub ttl_sweep_interval: std::time::Duration,
    /// Woken after every commit that appended change-log records.
    pub changes: Arc<tokio::sync::Notify>,
    /// Added to the clock of local writes' versions (µs; tests only).
    pub clock_offset_us: std::sync::atomic::AtomicI64,
    /// The clock of change-log records, stream and shard times and
    /// trimming, in ms since the epoch; 0 follows the wall clock. A
    /// replicated store sets it to the time carried by the command it
    /// applies, so every replica writes the same records (see
    /// [`crate::Store::set_clock`]).
    pub clock_ms: AtomicU64,
    next_uid: AtomicU64,
}

/// Spaces created for a table or an index, and their zeroed statistics.
struct NewSpaces<'a> {
    shared: &'a Shared,
    batch: Batch,
}

impl NewSpaces<'_> {
    /// Creates a counted partition space with zeroed statistics.
    fn partition(&mut self, name: String) -> Result<Arc<Partition>, StorageError> {
        let space = self.shared.engine.space(&name)?;
        self.batch.put(
            &self.shared.meta,
            &catalog::stats_key(&name),
            catalog::encode_stats(PartitionStats::default()),
        );
        Ok(self
            .shared
            .partition(space, name, PartitionStats::default()))
    }
}

impl Shared {
    /// Opens the engine in `dir`, loads the catalog and statistics, and drops
    /// the leftovers of interrupted table and index creations and deletions.
    pub fn open(dir: &Path, options: &StoreOptions) -> Result<Shared, StorageError> {
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
            delivery_lock: Mutex::new(()),
            delivery: Delivery::default(),
            sync: options.sync,
            collection_limit: options.item_collection_limit,
            stopping: AtomicBool::new(false),
            backfills: Mutex::new(Vec::new()),
            counters: Default::default(),
            stream_retention: options.stream_retention,
            shard_roll: options.shard_roll_interval,
            ttl_sweep_interval: options.ttl_sweep_interval,
            changes: Arc::new(tokio::sync::Notify::new()),
            clock_offset_us: std::sync::atomic::AtomicI64::new(0),
            clock_ms: AtomicU64::new(0),
            next_uid: AtomicU64::new(1),
        };
        shared.recover()?;
        Ok(shared)
    }

    /// Returns the store's clock (ms since the epoch): the one set with
    /// [`crate::Store::set_clock`], else the wall clock.
    pub fn now_ms(&self) -> u64 {
        match self.clock_ms.load(Ordering::Acquire) {
            0 => stream::now_ms(),
            set => set,
        }
    }

    fn recover(&self) -> Result<(), StorageError> {
        let view = self.engine.read_view();
        let mut records = Vec::new();
        for entry in view.range(&self.catalog, Bound::Unbounded, Bound::Unbounded, false) {
            let (_, value) = entry?;
            records.push(catalog::decode_record(&value)?);
        }
        let mut stored_stats = BTreeMap::new();
        let mut stored_next = BTreeMap::new();
        for entry in view.range(&self.meta, Bound::Unbounded, Bound::Unbounded, false) {
            let (key, value) = entry?;
            if let Some(log) = key.strip_prefix(b"q") {
                stored_next.insert(
                    String::from_utf8_lossy(log).into_owned(),
                    (key.to_vec(), stream::decode_next_seq(&value)?),
                );
                continue;
            }
            if let Some(space) = catalog::space_of_stats_key(&key) {
                stored_stats.insert(
                    space.to_owned(),
                    (key.to_vec(), catalog::decode_stats(&value)?),
                );
            }
        }
        let mut tables = BTreeMap::new();
        let mut live = HashSet::new();
        let mut live_logs = HashSet::new();
        let space_names = self.engine.space_names();
        let open_counted =
            |name: String, live: &mut HashSet<String>| -> Result<Arc<Partition>, StorageError> {
                let space = self.engine.space(&name)?;
                let stats = match stored_stats.get(&name) {
                    Some((_, stats)) => *stats,
                    None => self.count_space(&space)?,
                };
                live.insert(name.clone());
                Ok(self.partition(space, name, stats))
            };
        let mut rewrite = Vec::new();
        for mut record in records {
            // Indexes whose deletion a crash interrupted: finish it.
            let deleting: Vec<String> = record
                .global_indexes
                .iter()
                .filter(|g| g.state.status == IndexStatus::Deleting)
                .map(|g| g.name.clone())
                .collect();
            if !deleting.is_empty() {
                record
                    .global_indexes
                    .retain(|g| g.state.status != IndexStatus::Deleting);
                record
                    .definition
                    .global_indexes
                    .retain(|d| !deleting.contains(&d.name));
                rewrite.push(record.clone());
            }
            let def = &record.definition;
            let count = def.partitions.max(1);
            let mut partitions = Vec::new();
            let mut collections = Vec::new();
            let mut outboxes = Vec::new();
            let mut logs = Vec::new();
            let mut locals = vec![Vec::new(); def.local_indexes.len()];
            for p in 0..count {
                partitions.push(open_counted(
                    catalog::partition_space_name(&def.table_id, p)?,
                    &mut live,
                )?);
                for (i, local) in locals.iter_mut().enumerate() {
                    local.push(open_counted(
                        catalog::local_space_name(&def.table_id, p, i)?,
                        &mut live,
                    )?);
                }
                if !def.local_indexes.is_empty() {
                    let name = catalog::collection_space_name(&def.table_id, p)?;
                    collections.push(self.engine.space(&name)?);
                    live.insert(name);
                }
                let name = catalog::outbox_space_name(&def.table_id, p)?;
                outboxes.push(self.open_outbox(&name, p as usize)?);
                live.insert(name);
                let name = catalog::stream_log_name(&def.table_id, p)?;
                let next = stored_next.get(&name).map_or(0, |(_, n)| *n);
                let log = self.open_log(&view, &space_names, name.clone(), next)?;
                for segment in log.segments.lock().values() {
                    live.insert(segment.name.clone());
                }
                logs.push(log);
                live_logs.insert(name);
            }
            let mut globals = Vec::new();
            for g in &record.global_indexes {
                let Some(index_def) = def.global_indexes.iter().find(|d| d.name == g.name) else {
                    continue;
                };
                let mut gp = Vec::new();
                for q in 0..g.partitions.max(1) {
                    gp.push(open_counted(
                        catalog::global_space_name(&def.table_id, g.id, q)?,
                        &mut live,
                    )?);
                }
                globals.push(Arc::new(GlobalIndex {
                    id: g.id,
                    def: index_def.clone(),
                    state: g.state,
                    partitions: gp,
                }));
            }
            let replication = match &record.replication {
                Some(state) => {
                    let name = crate::replica::versions_space_name(&def.table_id)?;
                    let versions = self.engine.space(&name)?;
                    live.insert(name);
                    Some(Arc::new(Replicated {
                        state: state.clone(),
                        versions,
                    }))
                }
                None => None,
            };
            let state = TableState {
                def: def.clone(),
                partitions,
                locals,
                collections,
                outboxes,
                globals,
                next_index_id: record.next_index_id,
                logs,
                streams: record.streams.clone(),
                replication,
            };
            tables.insert(def.name.clone(), Arc::new(state));
        }
        // Leftovers of interrupted creations and deletions.
        let mut cleanup = self.engine.batch();
        for (space, (key, _)) in &stored_stats {
            if !live.contains(space) {
                cleanup.delete(&self.meta, key);
            }
        }
        for (log, (key, _)) in &stored_next {
            if !live_logs.contains(log) {
                cleanup.delete(&self.meta, key);
            }
        }
        for record in &rewrite {
            cleanup.put(
                &self.catalog,
                record.definition.name.as_bytes(),
                catalog::encode_record(record)?,
            );
        }
        if !cleanup.is_empty() {
            self.engine.commit(cleanup, self.sync)?;
        }
        for name in space_names {
            if catalog::is_data_space(&name) && !live.contains(&name) {
                tracing::info!(space = %name, "dropping the space of a deleted table or index");
                let space = self.engine.space(&name)?;
                self.engine.drop_space(space)?;
            }
        }
        *self.tables.write() = tables;
        Ok(())
    }

    /// Opens an outbox space and finds its first and next sequence numbers.
    fn open_outbox(&self, name: &str, partition: usize) -> Result<Arc<Outbox>, StorageError> {
        let space = self.engine.space(name)?;
        let view = self.engine.read_view();
        let seq_of = |entry: Option<Result<crate::engine::Entry, StorageError>>| {
            entry
                .map(|e| e.and_then(|(k, _)| crate::outbox::decode_seq(&k)))
                .transpose()
        };
        let first = seq_of(
            view.range(&space, Bound::Unbounded, Bound::Unbounded, false)
                .next(),
        )?;
        let last = seq_of(
            view.range(&space, Bound::Unbounded, Bound::Unbounded, true)
                .next(),
        )?;
        let next = last.map_or(0, |l| l + 1);
        Ok(Arc::new(Outbox {
            uid: self.next_uid.fetch_add(1, Ordering::Relaxed),
            partition,
            space,
            next_seq: AtomicU64::new(next),
            delivered: AtomicU64::new(first.unwrap_or(next)),
        }))
    }

    /// Opens the change log `name`: its segments
    /// (empty ones, left by a crash before their first batch committed, are
    /// dropped) and its next sequence number (`stored`, or one past the
    /// last record if higher).
    fn open_log(
        &self,
        view: &crate::engine::ReadView,
        space_names: &[String],
        name: String,
        stored: u64,
    ) -> Result<Arc<ChangeLog>, StorageError> {
        let mut segments = BTreeMap::new();
        let mut next = stored;
        for space_name in space_names {
            let Some(first) = stream::segment_first(&name, space_name) else {
                continue;
            };
            let space = self.engine.space(space_name)?;
            match stream::segment_bounds(view, &space)? {
                Some((first_record, last_record)) => {
                    next = next.max(last_record.seq + 1);
                    segments.insert(
                        first,
                        Segment {
                            space,
                            name: space_name.clone(),
                            first_ms: first_record.created_ms,
                            last_ms: last_record.created_ms,
                        },
                    );
                }
                None => self.engine.drop_space(space)?,
            }
        }
        Ok(self.new_log(name, next, segments))
    }

    pub(crate) fn new_log(
        &self,
        name: String,
        next: u64,
        segments: BTreeMap<u64, Segment>,
    ) -> Arc<ChangeLog> {
        Arc::new(ChangeLog {
            uid: self.next_uid.fetch_add(1, Ordering::Relaxed),
            name,
            next_seq: AtomicU64::new(next),
            segments: Mutex::new(segments),
        })
    }

    /// Counts the items of a space (statistics missing from `meta`).
    fn count_space(&self, space: &Space) -> Result<PartitionStats, StorageError> {
        let mut stats = PartitionStats::default();
        let view = self.engine.read_view();
        for entry in view.range(space, Bound::Unbounded, Bound::Unbounded, false) {
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

    /// Creates the spaces of global index `record` of `table_id`.
    fn create_global_spaces(
        &self,
        spaces: &mut NewSpaces<'_>,
        table_id: &str,
        record: &GlobalIndexRecord,
    ) -> Result<Vec<Arc<Partition>>, StorageError> {
        (0..record.partitions.max(1))
            .map(|q| spaces.partition(catalog::global_space_name(table_id, record.id, q)?))
            .collect()
    }

    pub fn create_table(&self, mut def: TableDefinition) -> Result<(), StorageError> {
        def.partitions = def.partitions.max(1);
        if def.name.is_empty() {
            return Err(StorageError::InvalidTableDefinition(
                "empty table name".into(),
            ));
        }
        validate_indexes(&def)?;
        let record = CatalogRecord::new(def);
        let def = &record.definition;
        let tid = &def.table_id;
        // Validate every space name before creating any space.
        for p in 0..def.partitions {
            catalog::partition_space_name(tid, p)?;
            catalog::collection_space_name(tid, p)?;
            catalog::outbox_space_name(tid, p)?;
            catalog::stream_log_name(tid, p)?;
            for i in 0..def.local_indexes.len() {
                catalog::local_space_name(tid, p, i)?;
            }
        }
        for g in &record.global_indexes {
            catalog::global_space_name(tid, g.id, g.partitions)?;
        }
        let _commit = self.commit_lock.lock();
        {
            let tables = self.tables.read();
            if tables.contains_key(&def.name) {
                return Err(StorageError::TableExists(def.name.clone()));
            }
            if tables.values().any(|t| t.def.table_id == *tid) {
                return Err(StorageError::InvalidTableDefinition(format!(
                    "table id {tid} is in use"
                )));
            }
        }
        let mut spaces = NewSpaces {
            shared: self,
            batch: self.engine.batch(),
        };
        let mut partitions = Vec::new();
        let mut locals = vec![Vec::new(); def.local_indexes.len()];
        let mut collections = Vec::new();
        let mut outboxes = Vec::new();
        let mut logs = Vec::new();
        for p in 0..def.partitions {
            partitions.push(spaces.partition(catalog::partition_space_name(tid, p)?)?);
            for (i, local) in locals.iter_mut().enumerate() {
                local.push(spaces.partition(catalog::local_space_name(tid, p, i)?)?);
            }
            if !def.local_indexes.is_empty() {
                collections.push(
                    self.engine
                        .space(&catalog::collection_space_name(tid, p)?)?,
                );
            }
            outboxes.push(self.open_outbox(&catalog::outbox_space_name(tid, p)?, p as usize)?);
            logs.push(self.new_log(catalog::stream_log_name(tid, p)?, 0, BTreeMap::new()));
        }
        let no_stream = TableDefinition {
            stream: None,
            ..def.clone()
        };
        let streams = stream::transition(Vec::new(), &no_stream, def, &logs, self.now_ms());
        let mut globals = Vec::new();
        for (g, index_def) in record.global_indexes.iter().zip(&def.global_indexes) {
            globals.push(Arc::new(GlobalIndex {
                id: g.id,
                def: index_def.clone(),
                state: g.state,
                partitions: self.create_global_spaces(&mut spaces, tid, g)?,
            }));
        }
        let mut batch = spaces.batch;
        let mut stored = record.clone();
        stored.streams = streams.clone();
        batch.put(
            &self.catalog,
            def.name.as_bytes(),
            catalog::encode_record(&stored)?,
        );
        self.engine.commit(batch, self.sync)?;
        let state = TableState {
            def: record.definition.clone(),
            partitions,
            locals,
            collections,
            outboxes,
            globals,
            next_index_id: record.next_index_id,
            logs,
            streams,
            replication: None,
        };
        self.tables
            .write()
            .insert(state.def.name.clone(), Arc::new(state));
        Ok(())
    }

    /// Drops spaces whole; a failure is logged (the next open drops them,
    /// as nothing references them any more).
    pub(crate) fn drop_spaces(&self, spaces: Vec<Space>) {
        for space in spaces {
            if let Err(e) = self.engine.drop_space(space) {
                tracing::warn!(error = %e, "dropping a space failed");
            }
        }
    }

    pub fn delete_table(&self, name: &str) -> Result<TableDefinition, StorageError> {
        let _commit = self.commit_lock.lock();
        let _delivery = self.delivery_lock.lock();
        let table = self.table(name)?;
        let mut batch = self.engine.batch();
        batch.delete(&self.catalog, name.as_bytes());
        for p in table.counted_partitions() {
            batch.delete(&self.meta, &catalog::stats_key(&p.space_name));
        }
        for log in &table.logs {
            batch.delete(&self.meta, &stream::next_seq_key(&log.name));
        }
        self.engine.commit(batch, self.sync)?;
        self.tables.write().remove(name);
        self.drop_spaces(table.spaces());
        Ok(table.def.clone())
    }

    /// Writes `state`'s catalog record durably and installs it.
    pub(crate) fn install(
        &self,
        state: TableState,
        mut batch: Batch,
    ) -> Result<TableDefinition, StorageError> {
        batch.put(
            &self.catalog,
            state.def.name.as_bytes(),
            catalog::encode_record(&state.record())?,
        );
        self.engine.commit(batch, self.sync)?;
        let def = state.def.clone();
        self.tables
            .write()
            .insert(def.name.clone(), Arc::new(state));
        Ok(def)
    }

    pub fn update_table<F>(&self, name: &str, change: F) -> Result<TableDefinition, StorageError>
    where
        F: FnOnce(&mut TableDefinition) -> Result<(), StorageError>,
    {
        let _commit = self.commit_lock.lock();
        let table = self.table(name)?;
        let mut def = table.def.clone();
        change(&mut def)?;
        let same_shape = |a: &[IndexDefinition], b: &[IndexDefinition]| {
            a.len() == b.len()
                && a.iter().zip(b).all(|(a, b)| {
                    a.name == b.name && a.key_schema == b.key_schema && a.projection == b.projection
                })
        };
        let immutable = [
            ("name", def.name != table.def.name),
            ("table_id", def.table_id != table.def.table_id),
            ("key_schema", def.key_schema != table.def.key_schema),
            (
                "partitions",
                def.partitions.max(1) as usize != table.partitions.len(),
            ),
            (
                "local_indexes",
                def.local_indexes != table.def.local_indexes,
            ),
            (
                "global_indexes (use create_global_index and delete_global_index)",
                !same_shape(&def.global_indexes, &table.def.global_indexes),
            ),
        ];
        if let Some((field, _)) = immutable.iter().find(|(_, changed)| *changed) {
            return Err(StorageError::InvalidTableDefinition(format!(
                "update_table cannot change {field}"
            )));
        }
        let globals = table
            .globals
            .iter()
            .map(|g| {
                let index_def = def
                    .global_indexes
                    .iter()
                    .find(|d| d.name == g.def.name)
                    .cloned()
                    .unwrap_or_else(|| g.def.clone());
                Arc::new(GlobalIndex {
                    id: g.id,
                    def: index_def,
                    state: g.state,
                    partitions: g.partitions.clone(),
                })
            })
            .collect();
        let streams = stream::transition(
            table.streams.clone(),
            &table.def,
            &def,
            &table.logs,
            self.now_ms(),
        );
        let state = TableState {
            def,
            globals,
            streams,
            ..(*table).clone()
        };
        self.install(state, self.engine.batch())
    }

    /// Adds global index `index` to `table`, creating and empty, and returns
    /// the new definition and the index id. New writes maintain it from the
    /// next write group on; the caller starts its backfill.
    pub fn create_global_index(
        &self,
        name: &str,
        index: IndexDefinition,
    ) -> Result<(TableDefinition, u64), StorageError> {
        let _commit = self.commit_lock.lock();
        let table = self.table(name)?;
        let mut def = table.def.clone();
        def.global_indexes.push(index.clone());
        validate_indexes(&def)?;
        let record = GlobalIndexRecord {
            name: index.name.clone(),
            id: table.next_index_id,
            partitions: catalog::index_partitions(index.throughput.as_ref()),
            state: IndexState {
                status: IndexStatus::Creating,
                backfilling: true,
            },
        };
        catalog::global_space_name(&def.table_id, record.id, record.partitions)?;
        let mut spaces = NewSpaces {
            shared: self,
            batch: self.engine.batch(),
        };
        let partitions = self.create_global_spaces(&mut spaces, &def.table_id, &record)?;
        let mut globals = table.globals.clone();
        globals.push(Arc::new(GlobalIndex {
            id: record.id,
            def: index,
            state: record.state,
            partitions,
        }));
        let state = TableState {
            def,
            globals,
            next_index_id: record.id + 1,
            ..(*table).clone()
        };
        let def = self.install(state, spaces.batch)?;
        Ok((def, record.id))
    }

    /// Marks global index `id` of table incarnation `table_id` active once
    /// its backfill is complete. Returns false when the index is gone.
    pub fn finish_backfill(
        &self,
        name: &str,
        table_id: &str,
        id: u64,
    ) -> Result<bool, StorageError> {
        let _commit = self.commit_lock.lock();
        let Ok(table) = self.table(name) else {
            return Ok(false);
        };
        if table.def.table_id != table_id || !table.globals.iter().any(|g| g.id == id) {
            return Ok(false);
        }
        let globals = table
            .globals
            .iter()
            .map(|g| {
                if g.id != id {
                    return g.clone();
                }
                Arc::new(GlobalIndex {
                    id: g.id,
                    def: g.def.clone(),
                    state: IndexState {
                        status: IndexStatus::Active,
                        backfilling: false,
                    },
                    partitions: g.partitions.clone(),
                })
            })
            .collect();
        let state = TableState {
            globals,
            ..(*table).clone()
        };
        self.install(state, self.engine.batch())?;
        Ok(true)
    }

    /// Removes global index `index` of `table`: it stops being maintained at
    /// once (pending outbox entries for it are skipped), its spaces are
    /// dropped whole, and it leaves the definition.
    pub fn delete_global_index(
        &self,
        name: &str,
        index: &str,
    ) -> Result<TableDefinition, StorageError> {
        let _commit = self.commit_lock.lock();
        let _delivery = self.delivery_lock.lock();
        let table = self.table(name)?;
        let Some(gone) = table.globals.iter().find(|g| g.def.name == index).cloned() else {
            return Err(StorageError::IndexNotFound(index.into()));
        };
        let mut def = table.def.clone();
        def.global_indexes.retain(|d| d.name != index);
        let state = TableState {
            def,
            globals: table
                .globals
                .iter()
                .filter(|g| g.id != gone.id)
                .cloned()
                .collect(),
            ..(*table).clone()
        };
        let mut batch = self.engine.batch();
        for p in &gone.partitions {
            batch.delete(&self.meta, &catalog::stats_key(&p.space_name));
        }
        let def = self.install(state, batch)?;
        self.drop_spaces(gone.partitions.iter().map(|p| p.space.clone()).collect());
        Ok(def)
    }

    /// Returns the 32-byte secret `name` from `meta` (key `b"k" ++ name`,
    /// value `0x01 ++ 32 bytes`), creating it at random and storing it
    /// durably on first use.
    pub fn secret(&self, name: &str) -> Result<[u8; 32], StorageError> {
        self.secret_or(name, None)
    }

    /// [`Shared::secret`], storing `candidate` (when given) instead of a
    /// random value on first use.
    pub fn secret_or(
        &self,
        name: &str,
        candidate: Option<[u8; 32]>,
    ) -> Result<[u8; 32], StorageError> {
        let mut key = SECRET_PREFIX.to_vec();
        key.extend_from_slice(name.as_bytes());
        let _commit = self.commit_lock.lock();
        if let Some(value) = self.engine.read_view().get(&self.meta, &key)? {
            return decode_secret(&value);
        }
        let secret = candidate.unwrap_or_else(random_secret);
        let mut value = vec![1u8];
        value.extend_from_slice(&secret);
        let mut batch = self.engine.batch();
        batch.put(&self.meta, &key, value);
        self.engine.commit(batch, true)?;
        Ok(secret)
    }

    /// Returns every stored secret by name.
    pub fn secrets(&self) -> Result<Vec<(String, [u8; 32])>, StorageError> {
        let view = self.engine.read_view();
        let mut out = Vec::new();
        let mut upper = SECRET_PREFIX.to_vec();
        upper.push(0xff);
        for entry in view.range(
            &self.meta,
            Bound::Included(SECRET_PREFIX.to_vec()),
            Bound::Excluded(upper),
            false,
        ) {
            let (key, value) = entry?;
            let Some(name) = key.strip_prefix(SECRET_PREFIX) else {
                continue;
            };
            out.push((
                String::from_utf8_lossy(name).into_owned(),
                decode_secret(&value)?,
            ));
        }
        Ok(out)
    }

    pub fn table_stats(&self, name: &str) -> Result<(u64, u64), StorageError> {
        let table = self.table(name)?;
        Ok(sum_stats(&table.partitions))
    }

    pub fn index_stats(&self, name: &str, index: &str) -> Result<(u64, u64), StorageError> {
        let table = self.table(name)?;
        let index = table.index(index)?;
        Ok(sum_stats(index.partitions))
    }

    pub fn index_state(&self, name: &str, index: &str) -> Result<IndexState, StorageError> {
        let table = self.table(name)?;
        if table.def.local_indexes.iter().any(|d| d.name == index) {
            return Ok(IndexState {
                status: IndexStatus::Active,
                backfilling: false,
            });
        }
        table
            .globals
            .iter()
            .find(|g| g.def.name == index)
            .map(|g| g.state)
            .ok_or_else(|| StorageError::IndexNotFound(index.into()))
    }

    pub fn gsi_pending(&self, name: &str) -> Result<u64, StorageError> {
        let table = self.table(name)?;
        Ok(table.outboxes.iter().map(|o| o.pending()).sum())
    }
}

fn sum_stats(partitions: &[Arc<Partition>]) -> (u64, u64) {
    partitions.iter().fold((0, 0), |(items, bytes), p| {
        let s = *p.stats.lock();
        (items + s.items, bytes + s.bytes)
    })
}

/// Checks what the storage relies on: unique index names, at most 5 local
/// and 20 global indexes, and local indexes that share the table's
/// partition key on a table with a sort key.
fn validate_indexes(def: &TableDefinition) -> Result<(), StorageError> {
    let invalid = |m: String| Err(StorageError::InvalidTableDefinition(m));
    let mut names = HashSet::new();
    for index in def.local_indexes.iter().chain(&def.global_indexes) {
        if !names.insert(index.name.as_str()) {
            return invalid(format!("duplicate index name {}", index.name));
        }
    }
    if def.local_indexes.len() > MAX_LOCAL_INDEXES {
        return invalid("more than 5 local indexes".into());
    }
    if def.global_indexes.len() > MAX_GLOBAL_INDEXES {
        return invalid("more than 20 global indexes".into());
    }
    for index in &def.local_indexes {
        if index.key_schema.hash != def.key_schema.hash
            || index.key_schema.range.is_none()
            || def.key_schema.range.is_none()
        {
            return invalid(format!(
                "local index {} must share the table's partition key and have a sort key",
                index.name
            ));
        }
    }
    Ok(())
}

/// Prefix of the secrets' keys in `meta`.
const SECRET_PREFIX: &[u8] = b"k";

fn decode_secret(value: &[u8]) -> Result<[u8; 32], StorageError> {
    match value {
        [1, rest @ ..] => rest.try_into().map_err(|_| StorageError::Corrupt {
            what: "secret",
            detail: format!("{} bytes", rest.len()),
        }),
        _ => Err(StorageError::Corrupt {
            what: "secret",
            detail: "unknown format version".into(),
        }),
    }
}

/// Returns 32 random bytes (std's hasher keys come from the OS).
pub fn random_secret() -> [u8; 32] {
    use std::hash::{BuildHasher, Hasher};
    let mut secret = [0u8; 32];
    for (i, chunk) in secret.chunks_mut(8).enumerate() {
        // std's RandomState is seeded from the OS's randomness.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        h.write_u64(stream::now_ms());
        h.write_u32(std::process::id());
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    secret
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_drops_spaces_and_statistics_no_table_references() {
        let dir = tempfile::tempdir().unwrap();
        {
            let shared = Shared::open(dir.path(), &StoreOptions::default()).unwrap();
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
        let shared = Shared::open(dir.path(), &StoreOptions::default()).unwrap();
        assert!(!shared.engine.space_names().iter().any(|n| n == "t.gone.0"));
        let view = shared.engine.read_view();
        assert!(view
            .get(&shared.meta, &catalog::stats_key("t.gone.0"))
            .unwrap()
            .is_none());
    }
}
