//! Group commit: one writer thread applies every write, and concurrent
//! writes share one durable engine batch (one fsync).
//!
//! Callers queue requests (one or more commands each) and await a oneshot
//! answer. The writer takes the first waiting request, drains whatever else
//! is queued (up to [`MAX_GROUP_COMMANDS`]), and, holding the commit lock:
//!
//! 1. applies the commands in queue order with [`plan_write`], reading the
//!    current item (and item collection size) from an overlay of this
//!    group's pending writes first and from the engine second — so a later
//!    command sees an earlier one of the same group;
//! 2. adds each change — the item, its local index entries, its item
//!    collection size, its global index deltas as an outbox entry — and the
//!    new statistics of every touched partition to ONE engine batch;
//! 3. commits that batch (fsynced when the store syncs), and only then
//! 4. answers every waiter.
//!
//! 5. wakes the outbox delivery task for the outboxes it wrote.
//!
//! While one group is being fsynced, the next one queues up, so throughput
//! grows with concurrency instead of being bounded by fsync latency. A failed
//! commit answers every command of the group with the engine error and no
//! command of it is acknowledged.
//!
//! Besides client writes, the writer applies backfill commands
//! ([`Command::Backfill`], see `backfill`): they are serialized with the
//! writes like any command, which is what keeps a backfilled entry from
//! overwriting a newer one. It also applies TTL expiries
//! ([`Command::Expire`], see `ttl`): a delete conditioned, at apply time, on
//! the item still being expired.
//!
//! While a table's stream is enabled, step 2 also appends each change's
//! record to the change log of the item's partition (see `stream`): the
//! record, a new log segment when the current one is due to roll, and the
//! log's next sequence number in `meta` all join the same batch. The group
//! is stamped with one time, handed to the pure record builder: the
//! store's clock when one is set (`Store::set_clock`: a Raft replica's
//! command time, the same on every replica), else the wall clock. Item
//! versions of replicated tables take that clock too.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use partita_model::Item;
use tokio::sync::oneshot;

use partita_supervise::OnFailure;

use crate::apply::{
    plan_backfill, plan_write, stats_delta, Collection, Effect, GlobalDelta, IndexKeyRule,
};
use crate::catalog::{self, PartitionStats};
use crate::codec::{decode_item, encode_item};
use crate::engine::{Batch, Engine, ReadView, Space};
use crate::keys;
use crate::outbox;
use crate::replica::{self, ReplicatedChange, Version, VersionRecord};
use crate::state::{Outbox, Partition, Shared, TableState};
use crate::stream::{self, ChangeLog, ChangeRecord, Segment};
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

/// A command of the writer: a client write, or the backfill of existing
/// items into a new global index.
// Commands are moved into the queue once; boxing writes would cost an
// allocation per write for no gain.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Command {
    Write(WriteCommand),
    /// Adds the items with these engine keys (of table partition
    /// `partition`), as they are when the command applies, to global index
    /// `index_id` of table incarnation `table_id`, through the outbox.
    Backfill {
        table_id: String,
        index_id: u64,
        partition: usize,
        keys: Vec<Vec<u8>>,
    },
    /// Deletes the item at `key` of table incarnation `table_id` if it is
    /// still expired: its number attribute `attribute` (the table's TTL
    /// attribute) is at most `now_secs` and at least five years before it.
    /// The stream record names the TTL service.
    Expire {
        table_id: String,
        key: Item,
        attribute: String,
        now_secs: i64,
    },
    /// Applies a change from another region of table incarnation
    /// `table_id` if its version wins (see `replica`); a superseded change
    /// answers `ConditionalCheckFailed` and writes nothing.
    Replicate {
        table_id: String,
        change: ReplicatedChange,
    },
}

struct Request {
    commands: Vec<(String, Command)>,
    reply: oneshot::Sender<Answers>,
    /// A transaction: all commands apply or none (see `transact`).
    atomic: bool,
    /// In a transaction, how many leading commands are only evaluated
    /// (a two-phase commit's prepare, see `transact`): their answers are
    /// returned, their writes dropped.
    checked: usize,
}

/// The handle of the writer thread.
pub(crate) struct Writer {
    queue: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

/// A clonable submitter for background threads (backfills). Holders must
/// be gone before [`Writer::stop`] returns, so they stop on `Shared::stopping`.
#[derive(Clone)]
pub(crate) struct WriterHandle {
    queue: mpsc::Sender<Request>,
}

impl WriterHandle {
    /// Queues commands and blocks until they are applied and durable.
    pub fn submit_blocking(&self, commands: Vec<(String, Command)>) -> Answers {
        let count = commands.len();
        let all_failed = || (0..count).map(|_| Err(stopped())).collect();
        let (reply, answer) = oneshot::channel();
        if self
            .queue
            .send(Request {
                commands,
                reply,
                atomic: false,
                checked: 0,
            })
            .is_err()
        {
            return all_failed();
        }
        answer.blocking_recv().unwrap_or_else(|_| all_failed())
    }
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
        // A group that panics is answered with errors inside `run`; a panic
        // anywhere else would leave every queued and later write waiting
        // forever, so it ends the process (see partita_supervise).
        let thread = partita_supervise::spawn_thread("writer", "", OnFailure::Exit, move |_| {
            run(&shared, &requests);
            Ok(())
        })
        .map_err(|e| StorageError::Engine {
            operation: "start writer",
            message: e.to_string(),
        })?;
        Ok(Writer {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Returns a submitter for background threads, unless stopped.
    pub fn handle(&self) -> Option<WriterHandle> {
        self.queue.as_ref().map(|queue| WriterHandle {
            queue: queue.clone(),
        })
    }

    /// Queues commands and waits until they are applied and durable.
    pub async fn submit(&self, commands: Vec<(String, WriteCommand)>) -> Answers {
        self.enqueue(as_writes(commands), false, 0).await
    }

    /// Queues a transaction and waits until it is applied and durable, or
    /// refused as a whole (see `transact`).
    pub async fn submit_transaction(&self, commands: Vec<(String, WriteCommand)>) -> Answers {
        self.enqueue(as_writes(commands), true, 0).await
    }

    /// Queues a prepare: evaluates the first `checked` commands as one
    /// transaction without writing them and, when all succeed, applies the
    /// others atomically (see `transact::apply_prepare`).
    pub async fn submit_prepare(
        &self,
        commands: Vec<(String, WriteCommand)>,
        checked: usize,
    ) -> Answers {
        self.enqueue(as_writes(commands), true, checked).await
    }

    /// Queues writer commands (e.g. replicated changes) and waits until
    /// they are applied and durable.
    pub async fn submit_commands(&self, commands: Vec<(String, Command)>) -> Answers {
        self.enqueue(commands, false, 0).await
    }

    async fn enqueue(
        &self,
        commands: Vec<(String, Command)>,
        atomic: bool,
        checked: usize,
    ) -> Answers {
        let count = commands.len();
        let all_failed = || (0..count).map(|_| Err(stopped())).collect();
        let (reply, answer) = oneshot::channel();
        let Some(queue) = &self.queue else {
            return all_failed();
        };
        if queue
            .send(Request {
                commands,
                reply,
                atomic,
                checked,
            })
            .is_err()
        {
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

/// Returns how long a change-log segment takes new records: a 24th of the
/// retention (an hour for DynamoDB's 24), at least 100 ms, so records are
/// trimmed at most that much after they expire.
pub(crate) fn segment_roll(retention: Duration) -> Duration {
    (retention / 24).max(Duration::from_millis(100))
}

/// Longest the writer waits for stragglers before applying a group.
const MAX_LINGER: Duration = Duration::from_micros(100);

/// Client writes as writer commands.
fn as_writes(commands: Vec<(String, WriteCommand)>) -> Vec<(String, Command)> {
    commands
        .into_iter()
        .map(|(table, command)| (table, Command::Write(command)))
        .collect()
}

fn run(shared: &Shared, requests: &mpsc::Receiver<Request>) {
    let mut last_group = 0;
    while let Ok(first) = requests.recv() {
        let mut count = first.commands.len();
        let mut group = vec![first];
        // Drain what is queued. When fewer requests than in the last group
        // arrived, linger briefly: the writers just answered are usually about
        // to submit again, and waiting a few microseconds for them merges two
        // half-size groups (two fsyncs) into one. The wait blocks rather than
        // spins: the threads that are about to submit share the machine's
        // cores with this one.
        let linger_until = Instant::now() + MAX_LINGER;
        while count < MAX_GROUP_COMMANDS {
            let next = match requests.try_recv() {
                Ok(next) => next,
                Err(mpsc::TryRecvError::Empty) if group.len() < last_group => {
                    let left = linger_until.saturating_duration_since(Instant::now());
                    match requests.recv_timeout(left) {
                        Ok(next) => next,
                        Err(_) => break,
                    }
                }
                Err(_) => break,
            };
            count += next.commands.len();
            group.push(next);
        }
        last_group = group.len();
        partita_supervise::failpoint("writer");
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

/// The pending state of one group: engine batch, overlays, statistics
/// deltas, outbox sequence numbers. Transactions stage their writes in a
/// [`GroupState::fork`], so a new field must be carried by `fork` and
/// `absorb` too.
pub(crate) struct GroupState<'a> {
    view: ReadView,
    batch: Batch,
    overlay: HashMap<(u64, Vec<u8>), Option<Item>>,
    /// (table partition uid, partition key prefix) → item collection size.
    collections: HashMap<(u64, Vec<u8>), u64>,
    deltas: HashMap<u64, (Arc<Partition>, i64, i64)>,
    /// outbox uid → (outbox, next sequence number).
    outboxes: HashMap<u64, (Arc<Outbox>, u64)>,
    /// Outboxes to deliver after the commit.
    delivery: Vec<(String, String, usize)>,
    /// change log uid → its pending appends.
    logs: HashMap<u64, PendingLog>,
    /// (table partition uid, engine key) → pending version record of a
    /// replicated table's item.
    versions: HashMap<(u64, Vec<u8>), VersionRecord>,
    /// Added to the clock of local versions (tests only).
    clock_offset_us: i64,
    collection_limit: u64,
    tables: &'a std::collections::BTreeMap<String, Arc<TableState>>,
    engine: &'a Engine,
    /// The group's time (ms since the epoch) and the segment roll interval.
    now_ms: u64,
    /// Whether `now_ms` is a set clock (`Store::set_clock`) rather than
    /// the wall clock's.
    clock_fixed: bool,
    roll_ms: u64,
}

/// The appends of one group to one change log.
#[derive(Clone)]
struct PendingLog {
    log: Arc<ChangeLog>,
    next: u64,
    /// The segment appends go to: (first number, space, first record time).
    current: Option<(u64, Space, u64)>,
    /// A segment this group started: (first number, segment).
    started: Option<(u64, Segment)>,
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
        collections: HashMap::new(),
        deltas: HashMap::new(),
        outboxes: HashMap::new(),
        delivery: Vec::new(),
        logs: HashMap::new(),
        versions: HashMap::new(),
        clock_offset_us: shared.clock_offset_us.load(Ordering::Relaxed),
        collection_limit: shared.collection_limit,
        tables: &tables,
        engine: &shared.engine,
        now_ms: shared.now_ms(),
        clock_fixed: shared.clock_ms.load(Ordering::Acquire) != 0,
        roll_ms: segment_roll(shared.stream_retention).as_millis() as u64,
    };
    let mut answers: Vec<Answers> = group
        .iter()
        .map(|r| {
            if r.atomic && r.checked > 0 {
                return crate::transact::apply_prepare(&mut state, &r.commands, r.checked);
            }
            if r.atomic {
                return crate::transact::apply_atomic(&mut state, &r.commands);
            }
            r.commands
                .iter()
                .map(|(table, cmd)| match cmd {
                    Command::Write(cmd) => state.apply_one(table, cmd),
                    Command::Backfill {
                        table_id,
                        index_id,
                        partition,
                        keys,
                    } => state
                        .backfill(table, table_id, *index_id, *partition, keys)
                        .map(|()| WriteOutcome::default()),
                    Command::Expire {
                        table_id,
                        key,
                        attribute,
                        now_secs,
                    } => state.expire(table, table_id, key, attribute, *now_secs),
                    Command::Replicate { table_id, change } => {
                        state.replicate(table, table_id, change)
                    }
                })
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
    for pending in state.logs.values() {
        state.batch.put(
            &shared.meta,
            &stream::next_seq_key(&pending.log.name),
            stream::encode_next_seq(pending.next),
        );
    }
    let now_ms = state.now_ms;
    match shared.engine.commit(state.batch, shared.sync) {
        Ok(()) => {
            shared.counters.commits.fetch_add(1, Ordering::Relaxed);
            for (partition, stats) in new_stats {
                *partition.stats.lock() = stats;
            }
            for (outbox, next) in state.outboxes.values() {
                outbox.next_seq.store(*next, Ordering::Release);
            }
            let appended = !state.logs.is_empty();
            for pending in state.logs.into_values() {
                let mut segments = pending.log.segments.lock();
                if let Some((first, segment)) = pending.started {
                    segments.insert(first, segment);
                }
                if let Some(newest) = segments.values_mut().next_back() {
                    newest.last_ms = now_ms;
                }
                drop(segments);
                pending.log.next_seq.store(pending.next, Ordering::Release);
            }
            shared.delivery.notify(state.delivery);
            if appended {
                shared.changes.notify_waiters();
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

impl<'a> GroupState<'a> {
    /// Returns a copy of this pending state with an empty batch: a
    /// transaction is prepared on it and either absorbed or dropped.
    pub(crate) fn fork(&self) -> GroupState<'a> {
        GroupState {
            view: self.view.clone(),
            batch: Batch::default(),
            overlay: self.overlay.clone(),
            collections: self.collections.clone(),
            deltas: self.deltas.clone(),
            outboxes: self.outboxes.clone(),
            delivery: self.delivery.clone(),
            logs: self.logs.clone(),
            versions: self.versions.clone(),
            clock_offset_us: self.clock_offset_us,
            collection_limit: self.collection_limit,
            tables: self.tables,
            engine: self.engine,
            now_ms: self.now_ms,
            clock_fixed: self.clock_fixed,
            roll_ms: self.roll_ms,
        }
    }

    /// Takes over the state of a fork made by [`GroupState::fork`] and
    /// appends its batch to this group's.
    pub(crate) fn absorb(&mut self, fork: GroupState<'a>) {
        let GroupState {
            view: _,
            batch,
            overlay,
            collections,
            deltas,
            outboxes,
            delivery,
            logs,
            versions,
            clock_offset_us: _,
            collection_limit: _,
            tables: _,
            engine: _,
            now_ms: _,
            clock_fixed: _,
            roll_ms: _,
        } = fork;
        self.batch.append(batch);
        self.overlay = overlay;
        self.collections = collections;
        self.deltas = deltas;
        self.outboxes = outboxes;
        self.delivery = delivery;
        self.logs = logs;
        self.versions = versions;
    }

    /// Returns the current item at `key` of `partition`.
    fn current(&self, partition: &Partition, key: &[u8]) -> Result<Option<Item>, StorageError> {
        if let Some(pending) = self.overlay.get(&(partition.uid, key.to_vec())) {
            return Ok(pending.clone());
        }
        match self.view.get(&partition.space, key)? {
            Some(bytes) => Ok(Some(decode_item(&bytes).map_err(|e| {
                StorageError::Corrupt {
                    what: "item",
                    detail: e.to_string(),
                }
            })?)),
            None => Ok(None),
        }
    }

    fn count(&mut self, partition: &Arc<Partition>, items: i64, bytes: i64) {
        let entry = self
            .deltas
            .entry(partition.uid)
            .or_insert_with(|| (partition.clone(), 0, 0));
        entry.1 += items;
        entry.2 += bytes;
    }

    /// Records global index deltas as the next entry of an outbox.
    fn record_outbox(&mut self, table: &TableState, index: usize, deltas: &[GlobalDelta]) {
        let Some(outbox) = table.outboxes.get(index) else {
            return;
        };
        let (_, next) = self
            .outboxes
            .entry(outbox.uid)
            .or_insert_with(|| (outbox.clone(), outbox.next_seq.load(Ordering::Acquire)));
        self.batch.put(
            &outbox.space,
            &outbox::seq_key(*next),
            outbox::encode_record(deltas),
        );
        *next += 1;
        self.delivery
            .push((table.def.name.clone(), table.def.table_id.clone(), index));
    }

    /// Appends a change record to the log of table partition `index`,
    /// starting a new segment when the current one is due to roll.
    fn append_change(
        &mut self,
        table: &TableState,
        index: usize,
        mut record: ChangeRecord,
    ) -> Result<(), StorageError> {
        let Some(log) = table.logs.get(index) else {
            return Ok(());
        };
        let pending = match self.logs.entry(log.uid) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(PendingLog {
                log: log.clone(),
                next: log.next_seq.load(Ordering::Acquire),
                current: log.current().map(|(first, s)| (first, s.space, s.first_ms)),
                started: None,
            }),
        };
        let due = match &pending.current {
            None => true,
            Some((_, _, first_ms)) => self.now_ms.saturating_sub(*first_ms) >= self.roll_ms,
        };
        if due {
            let first = pending.next;
            let name = log.segment_name(first);
            let space = self.engine.space(&name)?;
            pending.current = Some((first, space.clone(), self.now_ms));
            pending.started = Some((
                first,
                Segment {
                    space,
                    name,
                    first_ms: self.now_ms,
                    last_ms: self.now_ms,
                },
            ));
        }
        let Some((_, space, _)) = &pending.current else {
            return Ok(());
        };
        record.seq = pending.next;
        self.batch.put(
            space,
            &stream::seq_key(record.seq),
            stream::encode_record(&record),
        );
        pending.next += 1;
        Ok(())
    }

    /// Applies a TTL expiry: a delete of the item if it is still expired
    /// (conditions at apply time), recorded as the TTL service's.
    fn expire(
        &mut self,
        table_name: &str,
        table_id: &str,
        key: &Item,
        attribute: &str,
        now_secs: i64,
    ) -> Result<WriteOutcome, StorageError> {
        let current_ttl = match self.tables.get(table_name) {
            Some(t) if t.def.table_id == table_id => t.def.ttl.clone(),
            _ => return Err(StorageError::TableNotFound(table_name.into())),
        };
        if !current_ttl.is_some_and(|t| t.enabled && t.attribute_name == attribute) {
            // TTL was disabled or moved to another attribute meanwhile.
            return Err(StorageError::ConditionalCheckFailed { old: None });
        }
        let command = WriteCommand::Delete {
            key: key.clone(),
            condition: Some(crate::ttl::still_expired(attribute, now_secs)),
        };
        self.apply_as(table_name, &command, true, None)
    }

    pub(crate) fn apply_one(
        &mut self,
        table_name: &str,
        command: &WriteCommand,
    ) -> Result<WriteOutcome, StorageError> {
        self.apply_as(table_name, command, false, None)
    }

    /// Returns the version record of `key` of `partition` in a replicated
    /// table: this group's pending one first, the engine's second.
    fn current_version(
        &self,
        versions: &Space,
        partition: &Partition,
        key: &[u8],
    ) -> Result<Option<VersionRecord>, StorageError> {
        if let Some(pending) = self.versions.get(&(partition.uid, key.to_vec())) {
            return Ok(Some(pending.clone()));
        }
        match self.view.get(versions, key)? {
            Some(bytes) => Ok(Some(replica::decode_version(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Applies a change from another region if its version wins over the
    /// local one (a tombstone's included): a plain Put or Delete without
    /// condition, through the same path as a client write, stamped with the
    /// origin version. A losing change answers `ConditionalCheckFailed`.
    fn replicate(
        &mut self,
        table_name: &str,
        table_id: &str,
        change: &ReplicatedChange,
    ) -> Result<WriteOutcome, StorageError> {
        let table = match self.tables.get(table_name) {
            Some(t) if t.def.table_id == table_id => t,
            _ => return Err(StorageError::TableNotFound(table_name.into())),
        };
        let Some(replicated) = &table.replication else {
            return Err(StorageError::TableNotFound(table_name.into()));
        };
        let key = keys::encode_key(&table.def.key_schema, &change.keys)?;
        let partition = table.partition_of(key.hash)?;
        let current = self.current_version(&replicated.versions, partition, &key.bytes)?;
        if !replica::wins(&change.version, current.as_ref()) {
            return Err(StorageError::ConditionalCheckFailed { old: None });
        }
        let command = match &change.new {
            Some(item) => WriteCommand::Put {
                item: item.clone(),
                condition: None,
            },
            None => WriteCommand::Delete {
                key: change.keys.clone(),
                condition: None,
            },
        };
        self.apply_as(table_name, &command, false, Some(&change.version))
    }

    /// Applies one command; `by_ttl` marks the TTL sweeper's deletes,
    /// `origin` the version of a change from another region (local writes
    /// of a replicated table get a new version).
    fn apply_as(
        &mut self,
        table_name: &str,
        command: &WriteCommand,
        by_ttl: bool,
        origin: Option<&Version>,
    ) -> Result<WriteOutcome, StorageError> {
        let table = self
            .tables
            .get(table_name)
            .ok_or_else(|| StorageError::TableNotFound(table_name.into()))?;
        let schema = &table.def.key_schema;
        let key_item = match command {
            WriteCommand::Put { item, .. } => item,
            WriteCommand::Delete { key, .. }
            | WriteCommand::Update { key, .. }
            | WriteCommand::ConditionCheck { key, .. } => key,
        };
        let key = keys::encode_key(schema, key_item)?;
        let index = table.partition_index(key.hash);
        let partition = table.partition_of(key.hash)?;
        let current = self.current(partition, &key.bytes)?;
        // Tables with local indexes track the size of each item collection.
        let collection_slot = match table.collections.get(index) {
            Some(space) => {
                let pk = key_item.get(&schema.hash.name).ok_or_else(|| {
                    StorageError::InvalidKey("the key lacks the partition key".into())
                })?;
                let (prefix, _) = keys::partition_prefix(schema, pk)?;
                let slot = (partition.uid, prefix);
                let size = match self.collections.get(&slot) {
                    Some(size) => *size,
                    None => match self.view.get(space, &slot.1)? {
                        Some(bytes) => catalog::decode_collection_size(&bytes)?,
                        None => 0,
                    },
                };
                Some((space.clone(), slot, size))
            }
            None => None,
        };
        let collection = collection_slot.as_ref().map(|(_, _, size)| Collection {
            size: *size,
            limit: self.collection_limit,
        });
        let rule = match origin {
            Some(_) => IndexKeyRule::LeaveOut,
            None => IndexKeyRule::Refuse,
        };
        let plan = plan_write(
            &table.index_set(),
            current.as_ref(),
            command,
            collection,
            rule,
        )?;
        let outcome = plan.outcome;
        // Replicated tables: the version of the change, written with it. A
        // local write that changes nothing keeps the item's version (its
        // peers hold the same one); a replicated change always records its
        // version, a tombstone included.
        let version = match &table.replication {
            Some(replicated) if origin.is_some() || outcome.old != outcome.new => {
                let version = match origin {
                    Some(v) => v.clone(),
                    None => {
                        let seen = self
                            .current_version(&replicated.versions, partition, &key.bytes)?
                            .map_or_else(Version::zero, |r| r.version);
                        // A replicated store (cluster mode) takes the time
                        // its command carries, as every replica must.
                        let now = if self.clock_fixed {
                            self.now_ms.saturating_mul(1000)
                        } else {
                            replica::now_us()
                        };
                        let now = now.saturating_add_signed(self.clock_offset_us);
                        replica::local_version(&seen, now, &replicated.state.region)
                    }
                };
                let record = VersionRecord {
                    version: version.clone(),
                    deleted: outcome.new.is_none(),
                    written_ms: self.now_ms,
                };
                self.batch.put(
                    &replicated.versions,
                    &key.bytes,
                    replica::encode_version(&record),
                );
                self.versions
                    .insert((partition.uid, key.bytes.clone()), record);
                Some(version)
            }
            _ => None,
        };
        match Effect::of(&outcome) {
            Effect::None => return Ok(outcome),
            Effect::Put => {
                if let Some(new) = &outcome.new {
                    self.batch
                        .put(&partition.space, &key.bytes, encode_item(new));
                }
            }
            Effect::Delete => self.batch.delete(&partition.space, &key.bytes),
        }
        let (items, bytes) = stats_delta(&outcome);
        self.count(partition, items, bytes);
        for change in &plan.local {
            let Some(local) = table.locals.get(change.index).and_then(|l| l.get(index)) else {
                continue;
            };
            if let Some(old) = &change.delete {
                self.batch.delete(&local.space, old);
            }
            if let Some(entry) = &change.put {
                self.batch
                    .put(&local.space, &entry.key.bytes, encode_item(&entry.item));
            }
            self.count(local, change.items, change.bytes);
        }
        if let (Some((space, slot, old)), Some(new)) =
            (collection_slot, outcome.item_collection_size)
        {
            if new != old {
                if new == 0 {
                    self.batch.delete(&space, &slot.1);
                } else {
                    self.batch
                        .put(&space, &slot.1, catalog::encode_collection_size(new));
                }
                self.collections.insert(slot, new);
            }
        }
        if !plan.global.is_empty() {
            self.record_outbox(table, index, &plan.global);
        }
        if let Some(view) = table.stream_view() {
            let keys = schema
                .extract_key(key_item)
                .ok_or_else(|| StorageError::InvalidKey("the key lacks a key attribute".into()))?;
            if let Some(mut record) = stream::build_record(
                keys,
                outcome.old.as_ref(),
                outcome.new.as_ref(),
                view,
                self.now_ms,
                by_ttl,
            ) {
                record.origin = version;
                self.append_change(table, index, record)?;
            }
        }
        self.overlay
            .insert((partition.uid, key.bytes), outcome.new.clone());
        Ok(outcome)
    }

    /// Applies a backfill command: one outbox entry per item that belongs in
    /// the index, computed from the item as it is now.
    fn backfill(
        &mut self,
        table_name: &str,
        table_id: &str,
        index_id: u64,
        partition_index: usize,
        keys: &[Vec<u8>],
    ) -> Result<(), StorageError> {
        let table = match self.tables.get(table_name) {
            Some(t) if t.def.table_id == table_id => t.clone(),
            _ => return Err(StorageError::TableNotFound(table_name.into())),
        };
        let Some(index) = table.globals.iter().find(|g| g.id == index_id) else {
            return Err(StorageError::IndexNotFound(format!("#{index_id}")));
        };
        let partition =
            table
                .partitions
                .get(partition_index)
                .ok_or_else(|| StorageError::InvalidSegment {
                    segment: u32::try_from(partition_index).unwrap_or(u32::MAX),
                    total_segments: u32::try_from(table.partitions.len()).unwrap_or(u32::MAX),
                })?;
        for key in keys {
            let current = self.current(partition, key)?;
            if let Some(delta) = plan_backfill(
                &table.def.key_schema,
                index.id,
                &index.def,
                current.as_ref(),
            ) {
                self.record_outbox(&table, partition_index, &[delta]);
            }
        }
        Ok(())
    }
}
