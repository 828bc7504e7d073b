//! Backfill: adding the items a table already holds to a new global index.
//!
//! `create_global_index` installs the index (status CREATING, backfilling)
//! under the commit lock, so every write group from then on records outbox
//! deltas for it. A backfill thread then walks each table partition in key
//! order and submits chunks of item KEYS to the writer as
//! [`Command::Backfill`]. The writer applies a chunk like any command: it
//! reads each item as it is at that point of the serialized order (group
//! overlay first, then the engine) and records, in the same partition's
//! outbox, a delta putting that item's entry (nothing when the item is gone,
//! sparse or has an invalid index key value).
//!
//! Why a backfilled entry never overwrites a newer one: every delta for an
//! item — from writes and from backfill — sits in ONE outbox (its table
//! partition's), in the writer's serialization order, and each delta
//! describes the item's state at its own position in that order (a write's
//! delta removes the entry of the item before the write and puts the entry
//! of the item after it; a backfill delta puts the entry of the item as it
//! is when the chunk applies). Delivery applies each outbox in order. So
//! after delivery of any prefix, the index holds, for every item that has a
//! delta in that prefix, exactly the entry of its state after its last
//! delta — a backfill delta that follows a write merely repeats that write's
//! result, and a write that follows the backfill supersedes it. Every item
//! present when the index was installed either is read by the backfill
//! (which starts after the install) or was written since (and so has a write
//! delta); so once backfill and delivery are through, every item is right.
//! Reading keys from a snapshot is safe for the same reason: only keys come
//! from it, never item values.
//!
//! When every chunk is applied, the thread waits until delivery has passed
//! the outbox entries recorded so far, then flips the index to ACTIVE. A
//! crash during backfill leaves the index CREATING; the next open restarts
//! its backfill from the beginning (re-putting an entry is harmless), and so
//! does the supervisor after a failure of the thread (`partita_supervise`).

use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use partita_supervise::{OnFailure, Task};

use crate::commit::{Command, WriterHandle};
use crate::state::Shared;
use crate::StorageError;

/// Most item keys in one backfill command.
const CHUNK_KEYS: usize = 256;
/// Most item bytes (as last read) behind one backfill command.
const CHUNK_BYTES: usize = 4 << 20;

/// What a backfill thread needs to know about its index.
pub(crate) struct Job {
    pub table: String,
    pub table_id: String,
    pub index_id: u64,
}

/// Starts the backfill thread of one index, supervised: a failure restarts
/// the backfill from the beginning after a backoff (re-putting an entry is
/// harmless).
pub(crate) fn spawn(shared: Arc<Shared>, writer: WriterHandle, job: Job) {
    let detail = format!("table {} index {}", job.table, job.index_id);
    let thread_shared = shared.clone();
    let spawned =
        partita_supervise::spawn_thread("gsi_backfill", detail, OnFailure::Restart, move |task| {
            run(&thread_shared, &writer, &job, task)
        });
    match spawned {
        Ok(handle) => {
            let mut backfills = shared.backfills.lock();
            backfills.retain(|h| !h.is_finished());
            backfills.push(handle);
        }
        Err(e) => tracing::error!(error = %e, "starting a backfill failed"),
    }
}

fn stopping(shared: &Shared) -> bool {
    shared.stopping.load(Ordering::Acquire)
}

fn run(shared: &Shared, writer: &WriterHandle, job: &Job, task: &Task) -> Result<(), String> {
    match backfill(shared, writer, job, task) {
        Ok(true) => {
            tracing::info!(table = %job.table, index_id = job.index_id, "global index backfilled");
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(e @ StorageError::Corrupt { .. }) => {
            task.fatal(&format_args!("backfilling a global index: {e}"))
        }
        Err(e) => Err(format!("backfilling a global index: {e}")),
    }
}

/// Returns Ok(false) when the index, the table or the store went away.
fn backfill(
    shared: &Shared,
    writer: &WriterHandle,
    job: &Job,
    task: &Task,
) -> Result<bool, StorageError> {
    let Some(table) = current_table(shared, job) else {
        return Ok(false);
    };
    for (p, partition) in table.partitions.iter().enumerate() {
        let mut after: Option<Vec<u8>> = None;
        loop {
            if stopping(shared) || current_table(shared, job).is_none() {
                return Ok(false);
            }
            let view = shared.engine.read_view();
            let lower = match after.take() {
                Some(k) => Bound::Excluded(k),
                None => Bound::Unbounded,
            };
            let mut keys = Vec::new();
            let mut bytes = 0;
            for entry in view.range(&partition.space, lower.clone(), Bound::Unbounded, false) {
                let (key, value) = entry?;
                bytes += value.len();
                keys.push(key.to_vec());
                if keys.len() >= CHUNK_KEYS || bytes >= CHUNK_BYTES {
                    break;
                }
            }
            let Some(last) = keys.last().cloned() else {
                break;
            };
            partita_supervise::failpoint("gsi_backfill");
            let command = Command::Backfill {
                table_id: job.table_id.clone(),
                index_id: job.index_id,
                partition: p,
                keys,
            };
            let answer = writer
                .submit_blocking(vec![(job.table.clone(), command)])
                .pop();
            match answer {
                Some(Ok(_)) => {
                    task.progressed();
                    after = Some(last);
                }
                Some(Err(StorageError::TableNotFound(_) | StorageError::IndexNotFound(_))) => {
                    return Ok(false)
                }
                Some(Err(e)) => {
                    if stopping(shared) {
                        return Ok(false);
                    }
                    crate::report_failure(task, format_args!("a backfill chunk failed"), &e);
                    std::thread::sleep(Duration::from_millis(100));
                    after = match lower {
                        Bound::Excluded(k) => Some(k),
                        _ => None,
                    };
                }
                None => return Ok(false),
            }
        }
    }
    // Wait until delivery has passed every outbox entry recorded so far.
    let targets: Vec<(Arc<crate::state::Outbox>, u64)> = table
        .outboxes
        .iter()
        .map(|o| (o.clone(), o.next_seq.load(Ordering::Acquire)))
        .collect();
    for (outbox, target) in targets {
        while outbox.delivered.load(Ordering::Acquire) < target {
            if stopping(shared) || current_table(shared, job).is_none() {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    shared.finish_backfill(&job.table, &job.table_id, job.index_id)
}

/// Returns the table while it still has the index being backfilled.
fn current_table(shared: &Shared, job: &Job) -> Option<Arc<crate::state::TableState>> {
    let table = shared.table(&job.table).ok()?;
    (table.def.table_id == job.table_id && table.globals.iter().any(|g| g.id == job.index_id))
        .then_some(table)
}
