//! Group commit: one writer thread applies every write, and concurrent
//! writes share one durable engine batch (one fsync).
//!
//! Callers queue requests (one or more commands each) and await a oneshot
//! answer. The writer takes the first waiting request, drains whatever else
//! is queued (up to [`MAX_GROUP_COMMANDS`]), and, holding the commit lock:
//!
//! 1. applies the commands in queue order with [`apply_command`], reading the
//!    current item from an overlay of this group's pending writes first and
//!    from the engine second — so a later command sees an earlier one of the
//!    same group;
//! 2. adds each change, and the new statistics of every touched partition, to
//!    ONE engine batch;
//! 3. commits that batch (fsynced when the store syncs), and only then
//! 4. answers every waiter.
//!
//! While one group is being fsynced, the next one queues up, so throughput
//! grows with concurrency instead of being bounded by fsync latency. A failed
//! commit answers every command of the group with the engine error and no
//! command of it is acknowledged.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use partita_model::Item;
use tokio::sync::oneshot;

use crate::apply::{apply_command, stats_delta, Effect};
use crate::catalog::{self, PartitionStats};
use crate::codec::{decode_item, encode_item};
use crate::engine::{Batch, ReadView};
use crate::keys;
use crate::state::{Partition, Shared, TableState};
use crate::{StorageError, WriteCommand, WriteOutcome};

/// Most commands applied in one group (one engine batch).
pub const MAX_GROUP_COMMANDS: usize = 2048;

/// Counters of the writer, for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Groups applied (each at most one engine commit).
    pub groups: u64,
    /// Commands applied, successfully or not.
    pub commands: u64,
    /// Engine batches committed (fsynced when the store syncs).
    pub commits: u64,
}

#[derive(Default)]
pub(crate) struct WriterCounters {
    groups: AtomicU64,
    commands: AtomicU64,
    commits: AtomicU64,
}

impl WriterCounters {
    pub fn snapshot(&self) -> WriterStats {
        WriterStats {
            groups: self.groups.load(Ordering::Relaxed),
            commands: self.commands.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
        }
    }
}

/// The answers to one request, one per command, in order.
pub(crate) type Answers = Vec<Result<WriteOutcome, StorageError>>;

struct Request {
    commands: Vec<(String, WriteCommand)>,
    reply: oneshot::Sender<Answers>,
}

/// The handle of the writer thread.
pub(crate) struct Writer {
    queue: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

fn stopped() -> StorageError {
    StorageError::Engine {
        operation: "write",
        message: "the store's writer has stopped".into(),
    }
}

impl Writer {
    /// Starts the writer thread.
    pub fn start(shared: Arc<Shared>) -> Result<Writer, StorageError> {
        let (queue, requests) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("partita-writer".into())
            .spawn(move || run(&shared, &requests))
            .map_err(|e| StorageError::Engine {
                operation: "start writer",
                message: e.to_string(),
            })?;
        Ok(Writer {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Queues commands and waits until they are applied and durable.
    pub async fn submit(&self, commands: Vec<(String, WriteCommand)>) -> Answers {
        let count = commands.len();
        let all_failed = || (0..count).map(|_| Err(stopped())).collect();
        let (reply, answer) = oneshot::channel();
        let Some(queue) = &self.queue else {
            return all_failed();
        };
        if queue.send(Request { commands, reply }).is_err() {
            return all_failed();
        }
        answer.await.unwrap_or_else(|_| all_failed())
    }

    /// Stops accepting writes, lets the writer finish what is queued, and
    /// waits for it.
    pub fn stop(&mut self) {
        self.queue = None;
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the writer thread panicked");
            }
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Longest the writer waits for stragglers before applying a group.
const MAX_LINGER: Duration = Duration::from_micros(100);

fn run(shared: &Shared, requests: &mpsc::Receiver<Request>) {
    let mut last_group = 0;
    while let Ok(first) = requests.recv() {
        let mut count = first.commands.len();
        let mut group = vec![first];
        // Drain what is queued. When fewer requests than in the last group
        // arrived, linger briefly: the writers just answered are usually about
        // to submit again, and waiting a few microseconds for them merges two
        // half-size groups (two fsyncs) into one.
        let linger_until = Instant::now() + MAX_LINGER;
        while count < MAX_GROUP_COMMANDS {
            match requests.try_recv() {
                Ok(next) => {
                    count += next.commands.len();
                    group.push(next);
                }
                Err(mpsc::TryRecvError::Empty)
                    if group.len() < last_group && Instant::now() < linger_until =>
                {
                    std::thread::yield_now();
                }
                Err(_) => break,
            }
        }
        last_group = group.len();
        let answers = std::panic::catch_unwind(AssertUnwindSafe(|| apply_group(shared, &group)))
            .unwrap_or_else(|_| {
                tracing::error!(
                    commands = count,
                    "applying a write group panicked; nothing was written"
                );
                group
                    .iter()
                    .map(|r| {
                        (0..r.commands.len())
                            .map(|_| {
                                Err(StorageError::Engine {
                                    operation: "apply",
                                    message: "internal error while applying the write".into(),
                                })
                            })
                            .collect()
                    })
                    .collect()
            });
        for (request, answer) in group.into_iter().zip(answers) {
            // The caller may have gone away; the write stands regardless.
            let _ = request.reply.send(answer);
        }
    }
}

/// The pending state of one group: engine batch, overlay, statistics deltas.
struct GroupState<'a> {
    view: ReadView,
    batch: Batch,
    overlay: HashMap<(u64, Vec<u8>), Option<Item>>,
    deltas: HashMap<u64, (Arc<Partition>, i64, i64)>,
    tables: &'a std::collections::BTreeMap<String, Arc<TableState>>,
}

fn apply_group(shared: &Shared, group: &[Request]) -> Vec<Answers> {
    let _commit = shared.commit_lock.lock();
    shared.counters.groups.fetch_add(1, Ordering::Relaxed);
    let commands: usize = group.iter().map(|r| r.commands.len()).sum();
    shared
        .counters
        .commands
        .fetch_add(commands as u64, Ordering::Relaxed);
    let tables = shared.tables.read();
    let mut state = GroupState {
        view: shared.engine.read_view(),
        batch: shared.engine.batch(),
        overlay: HashMap::new(),
        deltas: HashMap::new(),
        tables: &tables,
    };
    let mut answers: Vec<Answers> = group
        .iter()
        .map(|r| {
            r.commands
                .iter()
                .map(|(table, cmd)| state.apply_one(table, cmd))
                .collect()
        })
        .collect();
    if state.batch.is_empty() {
        return answers;
    }
    let mut new_stats = Vec::with_capacity(state.deltas.len());
    for (partition, items, bytes) in state.deltas.values() {
        let old = *partition.stats.lock();
        let stats = PartitionStats {
            items: old.items.saturating_add_signed(*items),
            bytes: old.bytes.saturating_add_signed(*bytes),
        };
        state.batch.put(
            &shared.meta,
            &catalog::stats_key(&partition.space_name),
            catalog::encode_stats(stats),
        );
        new_stats.push((partition.clone(), stats));
    }
    match shared.engine.commit(state.batch, shared.sync) {
        Ok(()) => {
            shared.counters.commits.fetch_add(1, Ordering::Relaxed);
            for (partition, stats) in new_stats {
                *partition.stats.lock() = stats;
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "committing a write group failed");
            let message = e.to_string();
            for answer in answers.iter_mut().flatten() {
                *answer = Err(StorageError::Engine {
                    operation: "commit",
                    message: message.clone(),
                });
            }
        }
    }
    answers
}

impl GroupState<'_> {
    fn apply_one(
        &mut self,
        table: &str,
        command: &WriteCommand,
    ) -> Result<WriteOutcome, StorageError> {
        let table = self
            .tables
            .get(table)
            .ok_or_else(|| StorageError::TableNotFound(table.into()))?;
        let schema = &table.def.key_schema;
        let key_item = match command {
            WriteCommand::Put { item, .. } => item,
            WriteCommand::Delete { key, .. } | WriteCommand::Update { key, .. } => key,
        };
        let key = keys::encode_key(schema, key_item)?;
        let partition = table.partition_of(key.hash)?;
        let slot = (partition.uid, key.bytes);
        let current = match self.overlay.get(&slot) {
            Some(pending) => pending.clone(),
            None => match self.view.get(&partition.space, &slot.1)? {
                Some(bytes) => Some(decode_item(&bytes).map_err(|e| StorageError::Corrupt {
                    what: "item",
                    detail: e.to_string(),
                })?),
                None => None,
            },
        };
        let outcome = apply_command(schema, current.as_ref(), command)?;
        match Effect::of(&outcome) {
            Effect::None => return Ok(outcome),
            Effect::Put => {
                if let Some(new) = &outcome.new {
                    self.batch.put(&partition.space, &slot.1, encode_item(new));
                }
            }
            Effect::Delete => self.batch.delete(&partition.space, &slot.1),
        }
        let (items, bytes) = stats_delta(&outcome);
        let entry = self
            .deltas
            .entry(partition.uid)
            .or_insert_with(|| (partition.clone(), 0, 0));
        entry.1 += items;
        entry.2 += bytes;
        self.overlay.insert(slot, outcome.new.clone());
        Ok(outcome)
    }
}
