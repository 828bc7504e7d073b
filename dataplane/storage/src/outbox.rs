//! The global index outbox and its delivery task (DESIGN.md §5).
//!
//! A write to a table with global indexes does not touch the index spaces.
//! Its batch records the index deltas (remove the old entry's key, put the
//! new entry) as ONE outbox entry in the outbox space of the item's table
//! partition, keyed by a per-partition sequence number. The delivery task
//! then applies outbox entries in sequence order to the global index spaces
//! and removes them, in one non-durable batch per round (entries, index
//! statistics and outbox removals together):
//!
//! - Order: every delta of one item comes from its table partition's outbox,
//!   and one item's deltas touch only entry keys that end with that item's
//!   primary key, so delivering each outbox in order gives every index entry
//!   the state of the latest delivered write of its item.
//! - Idempotence: a put or delete sets an entry to a state; replaying an
//!   already applied entry (after a crash lost the delivery batch, whose
//!   outbox removals went with it) changes nothing. Statistics deltas are
//!   computed against the entry's current state, so replays don't skew them.
//! - Durability: delivery batches are not fsynced; a crash that loses one
//!   loses its outbox removals too, and the entries are delivered again.
//! - Deleted indexes: deltas naming an index id the table no longer
//!   maintains are dropped. Ids are never reused within a table.
//!
//! Record format (version 1), value of outbox key `seq (u64 BE)`:
//!
//! ```text
//! 0x01 varint(count) delta*
//! delta := varint(index id) flags [bytes(delete key)] [bytes(put key) varint(size) bytes(item)]
//! flags := bit 0: a delete key follows; bit 1: a put follows
//! item  := the projected item in the item codec (its own version byte)
//! ```
//!
//! The writer wakes the task after every commit that recorded entries; it
//! sleeps otherwise (no polling).

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use partita_supervise::{OnFailure, Task};

use crate::apply::GlobalDelta;
use crate::catalog::{self, PartitionStats};
use crate::codec::{decode_item, encode_item, push_bytes, push_varint, CodecError, Reader};
use crate::keys::{self, hash_of_key};
use crate::state::{partition_for, Partition, Shared, TableState};
use crate::StorageError;

const OUTBOX_FORMAT_V1: u8 = 1;
const HAS_DELETE: u8 = 1;
const HAS_PUT: u8 = 2;

/// Most outbox entries one delivery round applies.
const MAX_ROUND_ENTRIES: usize = 512;
/// Most record bytes one delivery round applies.
const MAX_ROUND_BYTES: usize = 8 << 20;

fn corrupt(detail: impl ToString) -> StorageError {
    StorageError::Corrupt {
        what: "outbox",
        detail: detail.to_string(),
    }
}

/// Returns the engine key of outbox entry `seq`.
pub(crate) fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// Decodes an outbox key.
pub(crate) fn decode_seq(key: &[u8]) -> Result<u64, StorageError> {
    let raw: [u8; 8] = key
        .try_into()
        .map_err(|_| corrupt(format!("{} byte key", key.len())))?;
    Ok(u64::from_be_bytes(raw))
}

/// Encodes the deltas of one write as an outbox record.
pub(crate) fn encode_record(deltas: &[GlobalDelta]) -> Vec<u8> {
    let mut out = vec![OUTBOX_FORMAT_V1];
    push_varint(&mut out, deltas.len() as u64);
    for delta in deltas {
        push_varint(&mut out, delta.index_id);
        let flags = if delta.delete.is_some() {
            HAS_DELETE
        } else {
            0
        } | if delta.put.is_some() { HAS_PUT } else { 0 };
        out.push(flags);
        if let Some(key) = &delta.delete {
            push_bytes(&mut out, key);
        }
        if let Some(entry) = &delta.put {
            push_bytes(&mut out, &entry.key.bytes);
            push_varint(&mut out, entry.size());
            push_bytes(&mut out, &encode_item(&entry.item));
        }
    }
    out
}

/// One delta as stored: the entry value stays encoded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct StoredDelta {
    pub index_id: u64,
    pub delete: Option<Vec<u8>>,
    /// (entry key, projected item size, encoded projected item)
    pub put: Option<(Vec<u8>, u64, Vec<u8>)>,
}

/// Decodes an outbox record.
pub(crate) fn decode_record(bytes: &[u8]) -> Result<Vec<StoredDelta>, StorageError> {
    let (&version, rest) = bytes.split_first().ok_or_else(|| corrupt("empty record"))?;
    if version != OUTBOX_FORMAT_V1 {
        return Err(corrupt(format!("unknown format version {version}")));
    }
    let mut r = Reader { buf: rest };
    let read = |r: &mut Reader<'_>| -> Result<Vec<StoredDelta>, CodecError> {
        let count = r.varint()?;
        let mut deltas = Vec::new();
        for _ in 0..count {
            let index_id = r.varint()?;
            let flags = r.byte()?;
            let delete = if flags & HAS_DELETE != 0 {
                Some(r.bytes()?.to_vec())
            } else {
                None
            };
            let put = if flags & HAS_PUT != 0 {
                let key = r.bytes()?.to_vec();
                let size = r.varint()?;
                Some((key, size, r.bytes()?.to_vec()))
            } else {
                None
            };
            deltas.push(StoredDelta {
                index_id,
                delete,
                put,
            });
        }
        if !r.buf.is_empty() {
            return Err(CodecError::Trailing(r.buf.len()));
        }
        Ok(deltas)
    };
    read(&mut r).map_err(corrupt)
}

/// An outbox to deliver: table name, table id, partition index.
type Target = (String, String, usize);

#[derive(Default)]
struct Queue {
    dirty: BTreeSet<Target>,
    stop: bool,
}

/// The delivery task's wake-up queue.
#[derive(Default)]
pub(crate) struct Delivery {
    queue: Mutex<Queue>,
    wake: Condvar,
}

impl Delivery {
    /// Marks outboxes as holding entries and wakes the task.
    pub fn notify(&self, targets: impl IntoIterator<Item = Target>) {
        let mut queue = self.queue.lock();
        let before = queue.dirty.len();
        queue.dirty.extend(targets);
        if queue.dirty.len() != before {
            self.wake.notify_one();
        }
    }

    /// Asks the task to stop.
    pub fn stop(&self) {
        self.queue.lock().stop = true;
        self.wake.notify_one();
    }

    /// Waits for work; `None` when stopping.
    fn next(&self) -> Option<BTreeSet<Target>> {
        let mut queue = self.queue.lock();
        loop {
            if queue.stop {
                return None;
            }
            if !queue.dirty.is_empty() {
                return Some(std::mem::take(&mut queue.dirty));
            }
            self.wake.wait(&mut queue);
        }
    }
}

/// Marks every outbox of every table that holds entries (at open).
pub(crate) fn notify_all(shared: &Shared) {
    let tables = shared.tables.read();
    let targets: Vec<Target> = tables
        .values()
        .flat_map(|t| {
            t.outboxes
                .iter()
                .filter(|o| o.pending() > 0)
                .map(|o| (t.def.name.clone(), t.def.table_id.clone(), o.partition))
        })
        .collect();
    drop(tables);
    shared.delivery.notify(targets);
}

/// Starts the delivery task, supervised: a panic restarts it (delivery is
/// idempotent and its state is on disk).
pub(crate) fn start(shared: Arc<Shared>) -> Result<std::thread::JoinHandle<()>, StorageError> {
    let mut first = true;
    partita_supervise::spawn_thread("gsi_delivery", "", OnFailure::Restart, move |task| {
        // A failed run lost the outboxes it had taken from the queue.
        if !std::mem::take(&mut first) {
            notify_all(&shared);
        }
        run(&shared, task);
        Ok(())
    })
    .map_err(|e| StorageError::Engine {
        operation: "start index delivery",
        message: e.to_string(),
    })
}

fn run(shared: &Shared, task: &Task) {
    while let Some(targets) = shared.delivery.next() {
        let mut again = Vec::new();
        for target in targets {
            match deliver_round(shared, &target) {
                Ok(more) => {
                    task.progressed();
                    if more {
                        again.push(target);
                    }
                }
                Err(e) => {
                    crate::report_failure(
                        task,
                        format_args!(
                            "delivering global index updates of table {} partition {}",
                            target.0, target.2
                        ),
                        &e,
                    );
                    std::thread::sleep(Duration::from_millis(50));
                    again.push(target);
                }
            }
        }
        shared.delivery.notify(again);
    }
}

/// The pending state of one delivery round.
struct Round {
    /// (partition uid, entry key) → entry size, when present.
    overlay: HashMap<(u64, Vec<u8>), Option<u64>>,
    stats: HashMap<u64, (Arc<Partition>, i64, i64)>,
}

impl Round {
    fn current_size(
        &mut self,
        view: &crate::engine::ReadView,
        partition: &Partition,
        key: &[u8],
    ) -> Result<Option<u64>, StorageError> {
        if let Some(size) = self.overlay.get(&(partition.uid, key.to_vec())) {
            return Ok(*size);
        }
        match view.get(&partition.space, key)? {
            Some(bytes) => {
                let item = decode_item(&bytes).map_err(|e| StorageError::Corrupt {
                    what: "index entry",
                    detail: e.to_string(),
                })?;
                Ok(Some(partita_model::value::item_size(&item) as u64))
            }
            None => Ok(None),
        }
    }

    fn count(&mut self, partition: &Arc<Partition>, items: i64, bytes: i64) {
        let entry = self
            .stats
            .entry(partition.uid)
            .or_insert_with(|| (partition.clone(), 0, 0));
        entry.1 += items;
        entry.2 += bytes;
    }
}

fn entry_partition<'a>(
    partitions: &'a [Arc<Partition>],
    key: &[u8],
) -> Result<&'a Arc<Partition>, StorageError> {
    let hash = hash_of_key(key).ok_or_else(|| corrupt("short index entry key"))?;
    partition_for(partitions, hash)
}

/// Applies the next outbox entries of one table partition. Returns true when
/// more remain.
fn deliver_round(shared: &Shared, target: &Target) -> Result<bool, StorageError> {
    partita_supervise::failpoint("gsi_delivery");
    let _delivery = shared.delivery_lock.lock();
    let table: Arc<TableState> = match shared.tables.read().get(&target.0) {
        Some(t) if t.def.table_id == target.1 => t.clone(),
        _ => return Ok(false),
    };
    let Some(outbox) = table.outboxes.get(target.2) else {
        return Ok(false);
    };
    let view = shared.engine.read_view();
    let start = outbox.delivered.load(Ordering::Acquire);
    let mut batch = shared.engine.batch();
    let mut round = Round {
        overlay: HashMap::new(),
        stats: HashMap::new(),
    };
    let (mut last, mut entries, mut bytes) = (None, 0usize, 0usize);
    for entry in view.range(
        &outbox.space,
        Bound::Included(seq_key(start).to_vec()),
        Bound::Unbounded,
        false,
    ) {
        let (key, value) = entry?;
        let seq = decode_seq(&key)?;
        for delta in decode_record(&value)? {
            let Some(index) = table.globals.iter().find(|g| g.id == delta.index_id) else {
                continue;
            };
            // Entries written before index keys were size-checked may hold
            // keys the engine cannot store: such an item was never indexed.
            let delete = delta.delete.filter(|k| keys::storable(k).is_ok());
            let put = delta.put.filter(|(k, _, _)| {
                let ok = keys::storable(k).is_ok();
                if !ok {
                    tracing::warn!(table = %target.0, index_id = delta.index_id,
                        "an outbox entry's index key is too long to store; the item stays out of the index");
                }
                ok
            });
            if let Some(old) = &delete {
                let partition = entry_partition(&index.partitions, old)?;
                if let Some(size) = round.current_size(&view, partition, old)? {
                    batch.delete(&partition.space, old);
                    round.count(partition, -1, -(size as i64));
                    round.overlay.insert((partition.uid, old.clone()), None);
                }
            }
            if let Some((new, size, item)) = put {
                let partition = entry_partition(&index.partitions, &new)?;
                let old = round.current_size(&view, partition, &new)?;
                round.count(
                    partition,
                    i64::from(old.is_none()),
                    size as i64 - old.map_or(0, |s| s as i64),
                );
                batch.put(&partition.space, &new, item);
                round.overlay.insert((partition.uid, new), Some(size));
            }
        }
        batch.delete(&outbox.space, &key);
        last = Some(seq);
        entries += 1;
        bytes += value.len();
        if entries >= MAX_ROUND_ENTRIES || bytes >= MAX_ROUND_BYTES {
            break;
        }
    }
    let Some(last) = last else {
        return Ok(false);
    };
    let mut new_stats = Vec::with_capacity(round.stats.len());
    for (partition, items, bytes) in round.stats.values() {
        let old = *partition.stats.lock();
        let stats = PartitionStats {
            items: old.items.saturating_add_signed(*items),
            bytes: old.bytes.saturating_add_signed(*bytes),
        };
        batch.put(
            &shared.meta,
            &catalog::stats_key(&partition.space_name),
            catalog::encode_stats(stats),
        );
        new_stats.push((partition.clone(), stats));
    }
    // Not fsynced: a lost round loses its outbox removals too (see above).
    shared.engine.commit(batch, false)?;
    for (partition, stats) in new_stats {
        *partition.stats.lock() = stats;
    }
    outbox.delivered.store(last + 1, Ordering::Release);
    Ok(outbox.next_seq.load(Ordering::Acquire) > last + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::IndexEntry;
    use crate::index_keys::IndexKey;
    use partita_model::{AttributeValue, Item};

    #[test]
    fn records_round_trip_and_garbage_is_an_error() {
        let mut item = Item::new();
        item.insert("a".into(), AttributeValue::S("x".into()));
        let deltas = vec![
            GlobalDelta {
                index_id: 3,
                delete: Some(vec![1, 2]),
                put: Some(IndexEntry {
                    key: IndexKey {
                        bytes: vec![9; 9],
                        hash: 0,
                    },
                    item: item.clone(),
                }),
            },
            GlobalDelta {
                index_id: 300,
                delete: Some(vec![]),
                put: None,
            },
        ];
        let bytes = encode_record(&deltas);
        let decoded = decode_record(&bytes).unwrap();
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[0].index_id, 3);
        assert_eq!(decoded[0].delete, Some(vec![1, 2]));
        let (key, size, value) = decoded[0].put.clone().unwrap();
        assert_eq!((key, size), (vec![9; 9], 2));
        assert_eq!(decode_item(&value).unwrap(), item);
        assert_eq!(
            decoded[1],
            StoredDelta {
                index_id: 300,
                delete: Some(vec![]),
                put: None
            }
        );
        for cut in 0..bytes.len() {
            assert!(decode_record(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode_record(&[2, 0]).is_err());
        assert_eq!(decode_seq(&seq_key(77)).unwrap(), 77);
        assert!(decode_seq(&[1]).is_err());
    }
}
