//! The partition state machine under Raft: committed [`Command`]s applied to
//! the replica's `Store` with the same code as `partita serve`.
//!
//! Exactly-once apply: the applied log id and membership live in an item of
//! a hidden table ([`META_TABLE`]) of the same store, written in the SAME
//! group commit (`write_many`: one atomic engine batch) as the entries'
//! writes. A crash therefore never leaves writes applied without their log
//! id or the reverse, and replay after a restart starts right after the
//! last applied entry. A transaction carries the meta write as an extra
//! action: when the transaction fails nothing is written, the meta record
//! included, and replaying it fails again identically (same state).
//!
//! Transactions with a ClientRequestToken write their token record in the
//! same batch (see [`crate::tokens`]); the records are a hidden table of
//! the store, so snapshots carry them.
//!
//! Durability: the Raft log is the durable record (fsynced before an
//! entry counts as flushed), so the replica's store may run without
//! per-commit fsync (`partita node` opens it so): a crash can lose the last
//! applied batches together with their applied log id (same atomic batch)
//! and they are re-applied from the log at restart. The store is fsynced
//! before a snapshot is taken, so openraft never purges an entry whose
//! effect is not durable in the store.
//!
//! Snapshots are logical: every table definition and every item (scanned on the state
//! machine task, so no apply runs concurrently and the items match the
//! applied log id exactly), each table's change logs and streams, the
//! store's secrets and the clock, bincode-encoded with a version byte,
//! plus the applied log id and membership in openraft's snapshot meta.
//!
//! Determinism: a command's clock ([`Command::Timed`]) becomes the store's
//! clock before it applies, so change-log records, stream and shard times
//! and trimming are the same on every replica; the store runs no
//! background work of its own (`StoreOptions::replicated`): the leader
//! proposes change-log maintenance and TTL expiry (`replica`). The last
//! snapshot is kept in a file so it survives restarts. Installing one
//! drops the tables (whole keyspaces) and rewrites them.
//!
//! Known limits: snapshots are built and held in memory (fine for test-size
//! partitions, not for 10 GB ones — streaming export/import is the next
//! step); a crash in the middle of a snapshot install leaves a half-written
//! table (the install should be staged under a new table id and flipped).

// openraft's trait methods return its (large) `StorageError`; the helpers
// here return the same type so errors pass through unchanged.
#![allow(clippy::result_large_err)]

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder, StorageError,
};
use partita_model::schema::{
    AttributeDefinition, BillingMode, KeyAttribute, KeySchema, ScalarType,
};
use partita_model::{AttributeValue, Item, TableDefinition};
use partita_storage::{ChangeLogExport, Store, Visit, WriteCommand};
use serde::{Deserialize, Serialize};

use crate::tokens::{current_sizes, Lookup, TokenRecords};
use crate::txn::TxRecords;
use crate::types::{
    Command, Decide, Decision, Entry, LogId, OnceReply, Prepare, Reply, StoredMembership,
    TokenClaim, TokenConflict, TypeConfig, WireError,
};

/// Hidden table of each replica's store holding the applied state.
pub const META_TABLE: &str = "__partita_raft";
const META_KEY: &str = "applied";
/// Version byte of snapshot data: 2 is [`SnapshotData`]; 1 (tables and
/// items only) is still installed.
const SNAPSHOT_VERSION: u8 = 2;
const SNAPSHOT_VERSION_1: u8 = 1;
/// Items written per group when installing a snapshot.
const INSTALL_CHUNK: usize = 512;

fn sm_err(verb: ErrorVerb, e: impl ToString) -> StorageError<u64> {
    StorageError::from_io_error(
        ErrorSubject::StateMachine,
        verb,
        std::io::Error::other(e.to_string()),
    )
}

/// Returns the definition of the hidden applied-state table.
/// `newer` as a group takes it from the table's first partition: its
/// global indexes stay the group's own (an index is created or removed on
/// each group by its own command, with its backfill), with the settings
/// (throughput) `newer` gives the indexes both have.
fn newer_definition(current: &TableDefinition, mut newer: TableDefinition) -> TableDefinition {
    let indexes = current
        .global_indexes
        .iter()
        .map(|own| {
            newer
                .global_indexes
                .iter()
                .find(|i| i.name == own.name)
                .cloned()
                .unwrap_or_else(|| own.clone())
        })
        .collect();
    newer.global_indexes = indexes;
    newer
}

pub fn meta_table_definition() -> TableDefinition {
    let key = KeyAttribute {
        name: "k".into(),
        scalar_type: ScalarType::S,
    };
    TableDefinition {
        revision: 0,
        name: META_TABLE.into(),
        table_id: "partita-raft-meta".into(),
        key_schema: KeySchema {
            hash: key,
            range: None,
        },
        attribute_definitions: vec![AttributeDefinition {
            name: "k".into(),
            scalar_type: ScalarType::S,
        }],
        billing_mode: BillingMode::PayPerRequest,
        throughput: None,
        created_at_ms: 0,
        pay_per_request_since_ms: None,
        stream: None,
        stream_label: None,
        ttl: None,
        tags: Vec::new(),
        table_class: None,
        deletion_protection: false,
        local_indexes: Vec::new(),
        global_indexes: Vec::new(),
        partitions: 1,
        on_demand: None,
    }
}

#[derive(Serialize, Deserialize)]
struct Applied {
    last: Option<LogId>,
    membership: StoredMembership,
}

fn meta_key() -> Item {
    Item::from([("k".to_string(), AttributeValue::S(META_KEY.into()))])
}

fn meta_put(applied: &Applied) -> Result<(String, WriteCommand), StorageError<u64>> {
    let bytes = bincode::serialize(applied).map_err(|e| sm_err(ErrorVerb::Write, e))?;
    let mut item = meta_key();
    item.insert("v".into(), AttributeValue::B(bytes));
    Ok((
        META_TABLE.to_string(),
        WriteCommand::Put {
            item,
            condition: None,
        },
    ))
}

/// Snapshots built and installed by a state machine since it started
/// (for metrics).
#[derive(Debug, Default)]
pub struct SnapshotCounters {
    pub built: AtomicU64,
    pub installed: AtomicU64,
}

/// The state machine of one replica.
pub struct StateMachine {
    store: Arc<Store>,
    applied: Applied,
    snapshot_file: PathBuf,
    current: Option<(SnapshotMeta<u64, openraft::BasicNode>, Vec<u8>)>,
    counters: Arc<SnapshotCounters>,
    tokens: TokenRecords,
    txs: TxRecords,
    /// The clock of the last timed command applied (ms; 0 before any):
    /// the store's clock while applying (see [`Command::Timed`]).
    clock_ms: u64,
}

/// What a snapshot holds (after its version byte).
#[derive(Serialize, Deserialize)]
struct SnapshotData {
    tables: Vec<TableSnapshot>,
    /// The store's secrets (the stream iterator key among them).
    secrets: Vec<(String, [u8; 32])>,
    clock_ms: u64,
}

/// One table of a snapshot.
#[derive(Serialize, Deserialize)]
struct TableSnapshot {
    def: TableDefinition,
    items: Vec<Item>,
    /// Its change logs and streams (`None` in version 1 snapshots: the
    /// table then starts a new stream of its own).
    changes: Option<ChangeLogExport>,
}

impl SnapshotData {
    fn from_v1(tables: Vec<(TableDefinition, Vec<Item>)>) -> SnapshotData {
        SnapshotData {
            tables: tables
                .into_iter()
                .map(|(def, items)| TableSnapshot {
                    def,
                    items,
                    changes: None,
                })
                .collect(),
            secrets: Vec::new(),
            clock_ms: 0,
        }
    }
}

/// Write groups of consecutive entries, applied in one group commit.
#[derive(Default)]
struct PendingWrites {
    group: Vec<(String, WriteCommand)>,
    /// (entry position, number of its commands in `group`).
    owners: Vec<(usize, usize)>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta<u64, openraft::BasicNode>,
    data: Vec<u8>,
}

impl StateMachine {
    /// Opens the state machine of `table` on `store` (which must hold the
    /// table and [`META_TABLE`]), reading the applied state and the last
    /// snapshot (kept in `snapshot_file`).
    pub fn open(
        store: Arc<Store>,
        snapshot_file: PathBuf,
    ) -> Result<StateMachine, StorageError<u64>> {
        let applied = match store
            .get(META_TABLE, &meta_key())
            .map_err(|e| sm_err(ErrorVerb::Read, e))?
        {
            Some(item) => match item.get("v") {
                Some(AttributeValue::B(bytes)) => {
                    bincode::deserialize(bytes).map_err(|e| sm_err(ErrorVerb::Read, e))?
                }
                _ => {
                    return Err(sm_err(
                        ErrorVerb::Read,
                        "applied-state record without value",
                    ))
                }
            },
            None => Applied {
                last: None,
                membership: StoredMembership::default(),
            },
        };
        let current = match std::fs::read(&snapshot_file) {
            Ok(bytes) => {
                let file: SnapshotFile =
                    bincode::deserialize(&bytes).map_err(|e| sm_err(ErrorVerb::Read, e))?;
                Some((file.meta, file.data))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(sm_err(ErrorVerb::Read, e)),
        };
        let tokens = TokenRecords::load(&store).map_err(|e| sm_err(ErrorVerb::Read, e))?;
        let txs = TxRecords::load(&store).map_err(|e| sm_err(ErrorVerb::Read, e))?;
        Ok(StateMachine {
            store,
            applied,
            snapshot_file,
            current,
            counters: Arc::default(),
            tokens,
            txs,
            clock_ms: 0,
        })
    }

    /// Returns the snapshot counters of this state machine.
    pub fn counters(&self) -> Arc<SnapshotCounters> {
        self.counters.clone()
    }

    /// Returns the index of the last applied entry.
    pub fn last_applied(&self) -> Option<u64> {
        self.applied.last.map(|l| l.index)
    }

    async fn flush_writes(
        &self,
        group: &mut Vec<(String, WriteCommand)>,
        owners: &mut Vec<(usize, usize)>,
        replies: &mut [Reply],
    ) -> Result<(), StorageError<u64>> {
        if owners.is_empty() && group.is_empty() {
            return Ok(());
        }
        group.push(meta_put(&self.applied)?);
        let mut results = self.store.write_many(std::mem::take(group)).await;
        let meta = results.pop();
        match meta {
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(sm_err(ErrorVerb::Write, e)),
            None => return Err(sm_err(ErrorVerb::Write, "no answer for the applied state")),
        }
        let mut results = results.into_iter();
        for (entry, count) in owners.drain(..) {
            let outcomes: Vec<_> = results
                .by_ref()
                .take(count)
                .map(|r| r.map_err(WireError::from))
                .collect();
            if let Some(slot) = replies.get_mut(entry) {
                *slot = Reply::Write(outcomes);
            }
        }
        Ok(())
    }

    fn export(&self) -> Result<Vec<u8>, StorageError<u64>> {
        let read = |e| sm_err(ErrorVerb::Read, e);
        let mut tables = Vec::new();
        for name in self.store.list_tables() {
            if name == META_TABLE {
                continue;
            }
            let def = self.store.table(&name).map_err(read)?;
            let mut items = Vec::new();
            self.store
                .scan(&name, 0, 1, None, &mut |item| {
                    items.push(item);
                    Visit::Continue
                })
                .map_err(read)?;
            let changes = self.store.export_change_log(&name).map_err(read)?;
            tables.push(TableSnapshot {
                def,
                items,
                changes: Some(changes),
            });
        }
        let data = SnapshotData {
            tables,
            secrets: self.store.secrets().map_err(read)?,
            clock_ms: self.clock_ms,
        };
        let mut bytes = vec![SNAPSHOT_VERSION];
        bytes.extend(bincode::serialize(&data).map_err(|e| sm_err(ErrorVerb::Read, e))?);
        Ok(bytes)
    }

    /// Creates `table` from a snapshot: its definition, its items, then
    /// its change log and streams as the leader had them (the items are
    /// written with the stream off, so they append no records of their own).
    async fn install_table(&self, table: TableSnapshot) -> Result<(), StorageError<u64>> {
        let write = |e| sm_err(ErrorVerb::Write, e);
        let name = table.def.name.clone();
        let streamless = TableDefinition {
            stream: None,
            stream_label: None,
            ..table.def.clone()
        };
        let def = table.def;
        self.store.create_table(streamless).map_err(write)?;
        for chunk in table.items.chunks(INSTALL_CHUNK) {
            let commands = chunk
                .iter()
                .map(|item| {
                    (
                        name.clone(),
                        WriteCommand::Put {
                            item: item.clone(),
                            condition: None,
                        },
                    )
                })
                .collect();
            for result in self.store.write_many(commands).await {
                result.map_err(write)?;
            }
        }
        self.store
            .update_table(&name, move |current| {
                *current = def;
                Ok(())
            })
            .map_err(write)?;
        match table.changes {
            Some(changes) => self.store.import_change_log(&name, changes).map_err(write),
            None => Ok(()),
        }
    }

    /// Applies the writes gathered in `pending` (if any) with the applied
    /// state of entry `previous`: the one before the entry being applied.
    async fn flush_before(
        &mut self,
        previous: Option<LogId>,
        pending: &mut PendingWrites,
        replies: &mut [Reply],
    ) -> Result<(), StorageError<u64>> {
        if pending.owners.is_empty() {
            return Ok(());
        }
        let this = self.applied.last;
        self.applied.last = previous;
        let flushed = self
            .flush_writes(&mut pending.group, &mut pending.owners, replies)
            .await;
        self.applied.last = this;
        flushed
    }

    /// Applies a command that is not a plain write group, on its own.
    async fn apply_alone(&mut self, command: Command) -> Result<Reply, StorageError<u64>> {
        Ok(match command {
            // Items locked by a prepared transaction refuse other writes.
            Command::Transact(actions) => Reply::Transact(match self.lock_conflicts(&actions) {
                Some(conflicts) => Err(conflicts),
                None => self.transact(actions, Vec::new()).await?,
            }),
            Command::TransactOnce(actions, claim) => {
                Reply::Once(match self.lock_conflicts(&actions) {
                    Some(conflicts) => OnceReply::Ran(Err(conflicts)),
                    None => self.transact_once(actions, claim).await?,
                })
            }
            Command::TxPrepare(prepare) => self.tx_prepare(prepare).await?,
            Command::TxDecide(decide) => self.tx_decide(decide).await?,
            Command::TxCommit(txid) => self.tx_finish(&txid, true).await?,
            Command::TxAbort(txid) => self.tx_finish(&txid, false).await?,
            Command::MaintainStreams => {
                self.store
                    .maintain_streams()
                    .map_err(|e| sm_err(ErrorVerb::Write, e))?;
                self.store
                    .purge_tombstones()
                    .map_err(|e| sm_err(ErrorVerb::Write, e))?;
                Reply::Empty
            }
            Command::SetReplication(table, state) => Reply::Table(
                self.store
                    .set_replication(&table, state)
                    .map(Box::new)
                    .map_err(WireError::from),
            ),
            Command::SetCursors(table, region, cursors) => Reply::Done(
                self.store
                    .set_replication_cursors(&table, &region, &cursors)
                    .map_err(WireError::from),
            ),
            Command::CreateReplicated(def, state) => {
                let name = def.name.clone();
                let id = def.table_id.clone();
                // Replayed after a crash that kept the table but maybe not
                // its state: the same incarnation is made replicated again.
                let created = match self.store.create_table(*def) {
                    Err(partita_storage::StorageError::TableExists(_))
                        if self.store.table(&name).is_ok_and(|d| d.table_id == id) =>
                    {
                        Ok(())
                    }
                    other => other,
                }
                .and_then(|()| self.store.set_replication(&name, Some(state)));
                Reply::Table(created.map(Box::new).map_err(WireError::from))
            }
            Command::ApplyReplicated(table, changes) => Reply::Replicated(
                self.store
                    .apply_replicated(&table, changes)
                    .await
                    .map_err(WireError::from),
            ),
            Command::Expire(expiries) => {
                if self.clock_ms == 0 {
                    // Only the leader proposes expiries, always timed.
                    return Ok(Reply::Expired(Vec::new()));
                }
                let count = expiries.len();
                let now_secs = (self.clock_ms / 1000) as i64;
                let mut results = self
                    .store
                    .expire(expiries, now_secs, vec![meta_put(&self.applied)?])
                    .await;
                if let Some(Err(e)) = results.pop() {
                    return Err(sm_err(ErrorVerb::Write, e));
                }
                results.truncate(count);
                Reply::Expired(
                    results
                        .iter()
                        .map(|r| r.as_ref().is_ok_and(|o| o.old.is_some()))
                        .collect(),
                )
            }
            Command::Secret(name, candidate) => Reply::Secret(
                self.store
                    .secret_or(&name, candidate)
                    .map_err(WireError::from),
            ),
            ddl => self.apply_ddl(ddl),
        })
    }

    /// Applies a table definition command; replaying one after a crash
    /// is harmless (create/delete fail the same way, update is idempotent).
    fn apply_ddl(&self, command: Command) -> Reply {
        let result = match command {
            Command::CreateTable(def) => {
                let stored = def.clone();
                self.store.create_table(def).map(|()| stored)
            }
            Command::DeleteTable(name) => self.store.delete_table(&name),
            Command::UpdateTable(def) => {
                let name = def.name.clone();
                self.store.update_table(&name, move |current| {
                    *current = def;
                    Ok(())
                })
            }
            Command::Revised(expected, inner) => return self.apply_revised(expected, *inner),
            Command::UpdateTableIfNewer(def) => {
                let name = def.name.clone();
                self.store.update_table(&name, move |current| {
                    if current.table_id == def.table_id && def.revision > current.revision {
                        *current = newer_definition(current, def);
                    }
                    Ok(())
                })
            }
            Command::CreateGlobalIndex(table, index) => {
                self.store.create_global_index(&table, index)
            }
            Command::DeleteGlobalIndex(table, index) => {
                self.store.delete_global_index(&table, &index)
            }
            _ => {
                return Reply::Table(Err(WireError::InvalidTableDefinition(
                    "not a table command".into(),
                )))
            }
        };
        Reply::Table(result.map(Box::new).map_err(WireError::from))
    }

    /// [`Command::Revised`]: raises the table's revision from `expected`
    /// first (a replay after a crash between the two steps then refuses
    /// rather than applying twice), then applies `inner`.
    fn apply_revised(&self, expected: u64, inner: Command) -> Reply {
        let name = match &inner {
            Command::UpdateTable(def) => def.name.clone(),
            Command::CreateGlobalIndex(table, _) | Command::DeleteGlobalIndex(table, _) => {
                table.clone()
            }
            _ => {
                return Reply::Table(Err(WireError::InvalidTableDefinition(
                    "not a definition change".into(),
                )))
            }
        };
        let raised = self.store.update_table(&name, |current| {
            if current.revision != expected {
                return Err(partita_storage::StorageError::TransactionConflict);
            }
            current.revision = expected + 1;
            Ok(())
        });
        if let Err(e) = raised {
            return Reply::Table(Err(WireError::from(e)));
        }
        match inner {
            Command::UpdateTable(mut def) => {
                def.revision = expected + 1;
                self.apply_ddl(Command::UpdateTable(def))
            }
            index => self.apply_ddl(index),
        }
    }

    /// Applies an all-or-nothing transaction with `extra` writes (token
    /// records) and the applied state in the same batch. The result holds
    /// the actions' outcomes, or one reason per action.
    async fn transact(
        &self,
        mut actions: Vec<(String, WriteCommand)>,
        extra: Vec<(String, WriteCommand)>,
    ) -> Result<TransactResult, StorageError<u64>> {
        let count = actions.len();
        actions.extend(extra);
        actions.push(meta_put(&self.applied)?);
        Ok(match self.store.transact_write(actions).await {
            Ok(mut outcomes) => {
                outcomes.truncate(count);
                Ok(outcomes)
            }
            Err(failure) => {
                let mut reasons: Vec<Option<WireError>> = failure
                    .reasons
                    .iter()
                    .map(|r| r.as_ref().map(WireError::from))
                    .collect();
                reasons.truncate(count);
                Err(reasons)
            }
        })
    }

    /// Applies a transaction under a ClientRequestToken (see [`crate::tokens`]).
    async fn transact_once(
        &mut self,
        actions: Vec<(String, WriteCommand)>,
        claim: TokenClaim,
    ) -> Result<OnceReply, StorageError<u64>> {
        let lookup = self
            .tokens
            .lookup(&self.store, &claim)
            .map_err(|e| sm_err(ErrorVerb::Read, e))?;
        match lookup {
            Lookup::Same => return Ok(OnceReply::Replayed(current_sizes(&self.store, &actions))),
            Lookup::Other => return Ok(OnceReply::Mismatch),
            Lookup::Unused => {}
        }
        let extra = self
            .tokens
            .writes(&claim)
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        let result = self.transact(actions, extra).await?;
        if result.is_ok() {
            self.tokens.committed(&claim);
        }
        Ok(OnceReply::Ran(result))
    }

    /// One reason per action when some action's item is locked by a
    /// prepared cross-group transaction (see [`crate::txn`]): a
    /// `TransactionConflict` for those, `None` for the others.
    fn lock_conflicts(&self, actions: &[(String, WriteCommand)]) -> Option<Vec<Option<WireError>>> {
        if self.txs.locked() == 0 {
            return None;
        }
        let reasons: Vec<Option<WireError>> = actions
            .iter()
            .map(|(table, command)| {
                self.txs
                    .is_locked(&self.store, table, command)
                    .then_some(WireError::TransactionConflict)
            })
            .collect();
        reasons.iter().any(Option::is_some).then_some(reasons)
    }

    /// Prepares a participant's share of a cross-group transaction: locked
    /// items are conflicts; otherwise the actions are evaluated against the
    /// committed state and, when all would succeed, the locks and the
    /// prepare record are written with the applied state (see
    /// [`crate::txn`]). A prepare sent again answers as the first did, with
    /// empty outcomes.
    async fn tx_prepare(&mut self, prepare: Prepare) -> Result<Reply, StorageError<u64>> {
        let Prepare { tx, actions } = prepare;
        let count = actions.len();
        let again = self
            .txs
            .prepared_record(&self.store, &tx.txid)
            .map_err(|e| sm_err(ErrorVerb::Read, e))?;
        if again.is_some() {
            return Ok(Reply::Transact(Ok(vec![Default::default(); count])));
        }
        let (conflicts, locks) = self.txs.check(&self.store, &tx.txid, &actions);
        if conflicts.iter().any(|c| *c) {
            return Ok(Reply::Transact(Err(conflicts
                .into_iter()
                .map(|c| c.then_some(WireError::TransactionConflict))
                .collect())));
        }
        let mut records = self
            .txs
            .prepare_writes(&tx, &actions, &locks)
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        records.push(meta_put(&self.applied)?);
        Ok(Reply::Transact(
            match self.store.prepare_write(actions, records).await {
                Ok(outcomes) => {
                    self.txs.prepared(&tx.txid, &locks);
                    Ok(outcomes)
                }
                Err(failure) => Err(failure
                    .reasons
                    .iter()
                    .map(|r| r.as_ref().map(WireError::from))
                    .collect()),
            },
        ))
    }

    /// Records the decision of a cross-group transaction unless one is
    /// recorded already; answers the recorded one. A commit under a token
    /// already used becomes an abort saying so; otherwise a commit writes
    /// the token record in the same batch (see [`crate::tokens`]).
    async fn tx_decide(&mut self, decide: Decide) -> Result<Reply, StorageError<u64>> {
        let recorded = self
            .txs
            .decision(&self.store, &decide.txid)
            .map_err(|e| sm_err(ErrorVerb::Read, e))?;
        if let Some(decision) = recorded {
            return Ok(Reply::Decided(decision));
        }
        let mut decision = Decision {
            commit: decide.commit,
            participants: decide.participants,
            token: None,
        };
        let mut writes = Vec::new();
        let mut claimed = None;
        if let (true, Some(claim)) = (decide.commit, decide.claim) {
            let lookup = self
                .tokens
                .lookup(&self.store, &claim)
                .map_err(|e| sm_err(ErrorVerb::Read, e))?;
            match lookup {
                Lookup::Same | Lookup::Other => {
                    decision.commit = false;
                    decision.token = Some(if lookup == Lookup::Same {
                        TokenConflict::Same
                    } else {
                        TokenConflict::Other
                    });
                }
                Lookup::Unused => {
                    writes = self
                        .tokens
                        .writes(&claim)
                        .map_err(|e| sm_err(ErrorVerb::Write, e))?;
                    claimed = Some(claim);
                }
            }
        }
        writes.push(
            self.txs
                .decision_write(&decide.txid, &decision)
                .map_err(|e| sm_err(ErrorVerb::Write, e))?,
        );
        writes.push(meta_put(&self.applied)?);
        if let Err(failure) = self.store.transact_write(writes).await {
            let reason = failure.reasons.into_iter().flatten().next();
            return Err(sm_err(
                ErrorVerb::Write,
                format!("transaction decision not recorded: {reason:?}"),
            ));
        }
        if let Some(claim) = claimed {
            self.tokens.committed(&claim);
        }
        Ok(Reply::Decided(decision))
    }

    /// Commits (applies the prepared actions) or aborts a participant's
    /// share and releases its locks; an unknown transaction is a no-op.
    async fn tx_finish(&mut self, txid: &str, commit: bool) -> Result<Reply, StorageError<u64>> {
        let prepared = self
            .txs
            .prepared_record(&self.store, txid)
            .map_err(|e| sm_err(ErrorVerb::Read, e))?;
        let Some(prepared) = prepared else {
            return Ok(Reply::Transact(Ok(Vec::new())));
        };
        let mut writes = self.txs.finish_writes(txid, &prepared, commit);
        writes.push(meta_put(&self.applied)?);
        match self.store.transact_write(writes).await {
            Ok(_) => {
                self.txs.finished(&prepared);
                Ok(Reply::Transact(Ok(Vec::new())))
            }
            Err(failure) => {
                // The prepared actions were evaluated on this same state:
                // this is an engine failure. The locks stay.
                tracing::error!(txid, commit, "prepared transaction not finished");
                Ok(Reply::Transact(Err(failure
                    .reasons
                    .iter()
                    .map(|r| r.as_ref().map(WireError::from))
                    .collect())))
            }
        }
    }

    fn save_snapshot_file(&self) -> Result<(), StorageError<u64>> {
        let Some((meta, data)) = &self.current else {
            return Ok(());
        };
        let bytes = bincode::serialize(&SnapshotFile {
            meta: meta.clone(),
            data: data.clone(),
        })
        .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        let tmp = self.snapshot_file.with_extension("tmp");
        {
            use std::io::Write;
            let mut file = std::fs::File::create(&tmp).map_err(|e| sm_err(ErrorVerb::Write, e))?;
            file.write_all(&bytes)
                .and_then(|()| file.sync_all())
                .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        }
        std::fs::rename(&tmp, &self.snapshot_file).map_err(|e| sm_err(ErrorVerb::Write, e))
    }
}

/// The outcomes of a transaction, or one reason per action.
type TransactResult = Result<Vec<partita_storage::WriteOutcome>, Vec<Option<WireError>>>;

/// A snapshot's meta and data.
type Built = (SnapshotMeta<u64, openraft::BasicNode>, Vec<u8>);

pub struct SnapshotBuilder {
    built: Result<Built, StorageError<u64>>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let (meta, data) = self.built.clone()?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership), StorageError<u64>> {
        Ok((self.applied.last, self.applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Reply>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        partita_supervise::failpoint("raft_apply");
        let entries: Vec<Entry> = entries.into_iter().collect();
        let mut replies = vec![Reply::Empty; entries.len()];
        let mut pending = PendingWrites::default();
        // Write entries with refused commands: their conflicts, merged into
        // the replies once written.
        let mut refused: Vec<(usize, Vec<Option<WireError>>)> = Vec::new();
        for (i, entry) in entries.into_iter().enumerate() {
            let previous = self.applied.last;
            self.applied.last = Some(entry.log_id);
            let command = match entry.payload {
                EntryPayload::Blank => continue,
                EntryPayload::Membership(m) => {
                    self.applied.membership = StoredMembership::new(Some(entry.log_id), m);
                    continue;
                }
                EntryPayload::Normal(command) => command,
            };
            let mut command = command;
            while let Command::Timed(now_ms, inner) = command {
                if now_ms != self.clock_ms {
                    // Writes gathered so far apply at their own clock.
                    self.flush_before(previous, &mut pending, &mut replies)
                        .await?;
                    self.clock_ms = now_ms;
                    self.store.set_clock(now_ms);
                }
                command = *inner;
            }
            match command {
                Command::Write(commands) => match self.lock_conflicts(&commands) {
                    None => {
                        pending.owners.push((i, commands.len()));
                        pending.group.extend(commands);
                    }
                    Some(conflicts) => {
                        // Locked items are refused, the others written.
                        let free: Vec<_> = commands
                            .into_iter()
                            .zip(&conflicts)
                            .filter(|(_, c)| c.is_none())
                            .map(|(command, _)| command)
                            .collect();
                        pending.owners.push((i, free.len()));
                        pending.group.extend(free);
                        refused.push((i, conflicts));
                    }
                },
                other => {
                    // Earlier writes first, with the applied state as of
                    // the entry before this one.
                    self.flush_before(previous, &mut pending, &mut replies)
                        .await?;
                    replies[i] = self.apply_alone(other).await?;
                }
            }
        }
        // Blank and membership entries only: still record them.
        if pending.owners.is_empty() {
            let results = self.store.write_many(vec![meta_put(&self.applied)?]).await;
            if let Some(Err(e)) = results.into_iter().next() {
                return Err(sm_err(ErrorVerb::Write, e));
            }
        } else {
            self.flush_writes(&mut pending.group, &mut pending.owners, &mut replies)
                .await?;
        }
        for (i, conflicts) in refused {
            let written = match std::mem::take(&mut replies[i]) {
                Reply::Write(outcomes) => outcomes,
                _ => Vec::new(),
            };
            let mut written = written.into_iter();
            let merged = conflicts
                .into_iter()
                .map(|c| match c {
                    Some(e) => Err(e),
                    None => written.next().unwrap_or(Err(WireError::Engine {
                        operation: "apply".into(),
                        message: "no answer for a write".into(),
                    })),
                })
                .collect();
            replies[i] = Reply::Write(merged);
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // The store may run without per-commit fsync (see the module docs):
        // make everything applied so far durable before openraft purges the
        // log entries this snapshot covers.
        let built = self
            .store
            .flush()
            .map_err(|e| sm_err(ErrorVerb::Write, e))
            .and_then(|()| self.export())
            .map(|data| {
                let last = self.applied.last;
                let meta = SnapshotMeta {
                    last_log_id: last,
                    last_membership: self.applied.membership.clone(),
                    snapshot_id: format!(
                        "{}-{}",
                        last.map(|l| l.leader_id.term).unwrap_or(0),
                        last.map(|l| l.index).unwrap_or(0)
                    ),
                };
                (meta, data)
            });
        if let Ok((meta, data)) = &built {
            self.counters.built.fetch_add(1, Ordering::Relaxed);
            self.current = Some((meta.clone(), data.clone()));
            if let Err(e) = self.save_snapshot_file() {
                tracing::warn!(error = %e, "snapshot not saved to disk");
            }
        }
        SnapshotBuilder { built }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let data = snapshot.into_inner();
        let snapshot: SnapshotData = match data.split_first() {
            Some((&SNAPSHOT_VERSION, body)) => {
                bincode::deserialize(body).map_err(|e| sm_err(ErrorVerb::Read, e))?
            }
            Some((&SNAPSHOT_VERSION_1, body)) => {
                let tables: Vec<(TableDefinition, Vec<Item>)> =
                    bincode::deserialize(body).map_err(|e| sm_err(ErrorVerb::Read, e))?;
                SnapshotData::from_v1(tables)
            }
            _ => return Err(sm_err(ErrorVerb::Read, "unknown snapshot format")),
        };
        for name in self.store.list_tables() {
            if name != META_TABLE {
                self.store
                    .delete_table(&name)
                    .map_err(|e| sm_err(ErrorVerb::Write, e))?;
            }
        }
        let count: usize = snapshot.tables.iter().map(|t| t.items.len()).sum();
        for table in snapshot.tables {
            self.install_table(table).await?;
        }
        for (name, secret) in snapshot.secrets {
            self.store
                .secret_or(&name, secret)
                .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        }
        self.clock_ms = snapshot.clock_ms;
        self.store.set_clock(snapshot.clock_ms);
        self.applied = Applied {
            last: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        let results = self.store.write_many(vec![meta_put(&self.applied)?]).await;
        for result in results {
            result.map_err(|e| sm_err(ErrorVerb::Write, e))?;
        }
        // Snapshots of nodes from before token records have no such table.
        self.tokens = TokenRecords::load(&self.store).map_err(|e| sm_err(ErrorVerb::Write, e))?;
        self.txs = TxRecords::load(&self.store).map_err(|e| sm_err(ErrorVerb::Write, e))?;
        self.store
            .flush()
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        self.current = Some((meta.clone(), data));
        self.save_snapshot_file()?;
        self.counters.installed.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            items = count,
            last_log = ?meta.last_log_id,
            "snapshot installed"
        );
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        Ok(self.current.as_ref().map(|(meta, data)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(data.clone())),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::TOKENS_TABLE;
    use openraft::{CommittedLeaderId, EntryPayload};
    use partita_storage::StoreOptions;

    fn store(dir: &std::path::Path, with_table: bool) -> Arc<Store> {
        let store = Store::open(dir, StoreOptions::default()).unwrap();
        store.create_table(meta_table_definition()).unwrap();
        if with_table {
            let mut def = meta_table_definition();
            def.name = "T".into();
            def.table_id = "t".into();
            store.create_table(def).unwrap();
        }
        Arc::new(store)
    }

    /// A state machine on a new store in `dir`, rebuilt from a snapshot
    /// of `sm`.
    async fn rebuilt_from_snapshot(
        sm: &mut StateMachine,
        dir: &std::path::Path,
    ) -> (Arc<Store>, StateMachine) {
        let snapshot = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        let target = store(dir, false);
        let mut rebuilt = StateMachine::open(target.clone(), dir.join("snap")).unwrap();
        rebuilt
            .install_snapshot(&snapshot.meta, snapshot.snapshot)
            .await
            .unwrap();
        (target, rebuilt)
    }

    fn once(index: u64, token: &str, fingerprint: u64) -> Entry {
        let item = Item::from([
            ("k".to_string(), AttributeValue::S("a".into())),
            ("n".to_string(), AttributeValue::S("x".repeat(100))),
        ]);
        let claim = TokenClaim {
            token: token.into(),
            fingerprint,
            now_ms: 1_000,
        };
        Entry {
            log_id: openraft::LogId::new(CommittedLeaderId::new(1, 0), index),
            payload: EntryPayload::Normal(Command::TransactOnce(
                vec![(
                    "T".into(),
                    WriteCommand::Put {
                        item,
                        condition: None,
                    },
                )],
                claim,
            )),
        }
    }

    /// Invariant: a token record travels with a snapshot, so a replica
    /// rebuilt from one answers a retry as a replay.
    #[tokio::test]
    async fn token_records_survive_snapshot_install() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let mut sm = StateMachine::open(store(a.path(), true), a.path().join("snap")).unwrap();
        let replies = sm.apply(vec![once(1, "tok", 7)]).await.unwrap();
        assert!(matches!(replies[0], Reply::Once(OnceReply::Ran(Ok(_)))));
        let replies = sm.apply(vec![once(2, "tok", 7)]).await.unwrap();
        assert!(matches!(&replies[0], Reply::Once(OnceReply::Replayed(s)) if s[0].1 > 100));

        let (target, mut rebuilt) = rebuilt_from_snapshot(&mut sm, b.path()).await;
        assert!(target.list_tables().iter().any(|t| t == TOKENS_TABLE));
        assert_eq!(rebuilt.tokens.len(), 1);
        let replies = rebuilt
            .apply(vec![once(3, "tok", 7), once(4, "tok", 8)])
            .await
            .unwrap();
        assert!(matches!(replies[0], Reply::Once(OnceReply::Replayed(_))));
        assert!(matches!(replies[1], Reply::Once(OnceReply::Mismatch)));
        assert_eq!(rebuilt.last_applied(), Some(4));
    }

    fn entry(index: u64, command: Command) -> Entry {
        Entry {
            log_id: openraft::LogId::new(CommittedLeaderId::new(1, 0), index),
            payload: EntryPayload::Normal(command),
        }
    }

    fn item(k: &str, n: &str) -> Item {
        Item::from([
            ("k".to_string(), AttributeValue::S(k.into())),
            ("n".to_string(), AttributeValue::S(n.into())),
        ])
    }

    fn put(k: &str, n: &str) -> (String, WriteCommand) {
        (
            "T".into(),
            WriteCommand::Put {
                item: item(k, n),
                condition: None,
            },
        )
    }

    fn group(partition: u32) -> crate::types::GroupRef {
        crate::types::GroupRef {
            table: "T".into(),
            partition,
        }
    }

    fn prepare(txid: &str, actions: Vec<(String, WriteCommand)>) -> Command {
        Command::TxPrepare(crate::types::Prepare {
            tx: crate::types::TxRef {
                txid: txid.into(),
                coordinator: group(0),
                participants: vec![group(0), group(1)],
                prepared_ms: 1_000,
            },
            actions,
        })
    }

    fn decide(txid: &str, commit: bool) -> Command {
        Command::TxDecide(crate::types::Decide {
            txid: txid.into(),
            commit,
            participants: vec![group(0), group(1)],
            claim: None,
            now_ms: 1_000,
        })
    }

    fn value(store: &Store, k: &str) -> Option<String> {
        let key = Item::from([("k".to_string(), AttributeValue::S(k.into()))]);
        match store.get("T", &key).unwrap()?.get("n") {
            Some(AttributeValue::S(n)) => Some(n.clone()),
            _ => None,
        }
    }

    fn conflict(reply: &Reply) -> bool {
        match reply {
            Reply::Write(results) => results
                .iter()
                .any(|r| matches!(r, Err(WireError::TransactionConflict))),
            Reply::Transact(Err(reasons)) => reasons
                .iter()
                .any(|r| matches!(r, Some(WireError::TransactionConflict))),
            _ => false,
        }
    }

    /// Invariant: a prepare writes no item but locks its items, against
    /// plain writes, single-group transactions and other prepares, also
    /// after a restart; other items stay writable.
    #[tokio::test]
    async fn prepare_locks_items_against_every_other_write() {
        let dir = tempfile::tempdir().unwrap();
        let st = store(dir.path(), true);
        let mut sm = StateMachine::open(st.clone(), dir.path().join("snap")).unwrap();
        let replies = sm
            .apply(vec![
                entry(1, prepare("tx1", vec![put("a", "1"), put("b", "1")])),
                entry(2, Command::Write(vec![put("a", "x"), put("c", "x")])),
            ])
            .await
            .unwrap();
        assert!(matches!(&replies[0], Reply::Transact(Ok(o)) if o.len() == 2));
        match &replies[1] {
            Reply::Write(r) => {
                assert!(matches!(r[0], Err(WireError::TransactionConflict)));
                assert!(r[1].is_ok());
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(value(&st, "a"), None);
        assert_eq!(value(&st, "c").as_deref(), Some("x"));
        drop(sm);
        // Reopened (a restart): the locks are read back from the store.
        let mut sm = StateMachine::open(st.clone(), dir.path().join("snap")).unwrap();
        let replies = sm
            .apply(vec![
                entry(3, Command::Transact(vec![put("b", "y"), put("d", "y")])),
                entry(4, prepare("tx2", vec![put("d", "2"), put("a", "2")])),
                entry(
                    5,
                    Command::TransactOnce(
                        vec![put("b", "z")],
                        TokenClaim {
                            token: "t".into(),
                            fingerprint: 1,
                            now_ms: 1,
                        },
                    ),
                ),
            ])
            .await
            .unwrap();
        assert!(conflict(&replies[0]));
        assert!(conflict(&replies[1]));
        assert!(matches!(
            &replies[2],
            Reply::Once(OnceReply::Ran(Err(r))) if matches!(r[0], Some(WireError::TransactionConflict))
        ));
        assert_eq!(value(&st, "b"), None);
        assert_eq!(value(&st, "d"), None);
        assert_eq!(sm.last_applied(), Some(5));
    }

    /// Invariant: commit applies the prepared writes once and releases the
    /// locks; commit and abort of a finished or unknown transaction are
    /// no-ops; abort writes nothing.
    #[tokio::test]
    async fn commit_and_abort_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let st = store(dir.path(), true);
        let mut sm = StateMachine::open(st.clone(), dir.path().join("snap")).unwrap();
        let replies = sm
            .apply(vec![
                entry(1, prepare("tx1", vec![put("a", "1")])),
                entry(2, Command::TxCommit("tx1".into())),
                entry(3, Command::Write(vec![put("a", "after")])),
                entry(4, Command::TxCommit("tx1".into())),
                entry(5, Command::TxAbort("tx1".into())),
                entry(6, prepare("tx2", vec![put("b", "2")])),
                entry(7, Command::TxAbort("tx2".into())),
                entry(8, Command::TxAbort("tx2".into())),
                entry(9, Command::TxCommit("tx2".into())),
                entry(10, Command::TxCommit("unknown".into())),
            ])
            .await
            .unwrap();
        assert!(replies
            .iter()
            .all(|r| matches!(r, Reply::Transact(Ok(_)) | Reply::Write(_))));
        assert!(!conflict(&replies[2]));
        assert_eq!(value(&st, "a").as_deref(), Some("after"));
        assert_eq!(value(&st, "b"), None);
        assert_eq!(sm.txs.locked(), 0);
    }

    /// Invariant: a prepare whose condition fails takes no lock and keeps
    /// no record; its reasons name the failed action.
    #[tokio::test]
    async fn failed_prepare_locks_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let st = store(dir.path(), true);
        let mut sm = StateMachine::open(st.clone(), dir.path().join("snap")).unwrap();
        let missing = WriteCommand::ConditionCheck {
            key: Item::from([("k".to_string(), AttributeValue::S("nope".into()))]),
            condition: partita_expr::Condition::AttributeExists(partita_expr::Path(vec![
                partita_expr::PathElement::Attribute("k".into()),
            ])),
        };
        let replies = sm
            .apply(vec![
                entry(
                    1,
                    prepare("tx1", vec![put("a", "1"), ("T".into(), missing)]),
                ),
                entry(2, Command::Write(vec![put("a", "free")])),
                entry(3, Command::TxCommit("tx1".into())),
            ])
            .await
            .unwrap();
        assert!(matches!(
            &replies[0],
            Reply::Transact(Err(r)) if r[0].is_none() && matches!(r[1], Some(WireError::ConditionalCheckFailed { .. }))
        ));
        assert!(!conflict(&replies[1]));
        assert_eq!(value(&st, "a").as_deref(), Some("free"));
        assert_eq!(sm.txs.locked(), 0);
    }

    /// Invariant: the first decision recorded for a transaction is final.
    #[tokio::test]
    async fn first_decision_wins() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = StateMachine::open(store(dir.path(), true), dir.path().join("snap")).unwrap();
        let replies = sm
            .apply(vec![
                entry(1, decide("tx1", false)),
                entry(2, decide("tx1", true)),
                entry(3, decide("tx2", true)),
                entry(4, decide("tx2", false)),
            ])
            .await
            .unwrap();
        let commits: Vec<bool> = replies
            .iter()
            .map(|r| match r {
                Reply::Decided(d) => d.commit,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(commits, vec![false, false, true, true]);
    }

    /// Invariant: locks, prepare and decision records travel with a
    /// snapshot: the rebuilt replica refuses writes to locked items, knows
    /// the decision, and commits the prepared writes.
    #[tokio::test]
    async fn transaction_records_survive_snapshot_install() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let mut sm = StateMachine::open(store(a.path(), true), a.path().join("snap")).unwrap();
        sm.apply(vec![
            entry(1, prepare("tx1", vec![put("a", "1")])),
            entry(2, decide("tx1", true)),
        ])
        .await
        .unwrap();
        let (target, mut rebuilt) = rebuilt_from_snapshot(&mut sm, b.path()).await;
        let replies = rebuilt
            .apply(vec![
                entry(3, Command::Write(vec![put("a", "x")])),
                entry(4, decide("tx1", false)),
                entry(5, Command::TxCommit("tx1".into())),
            ])
            .await
            .unwrap();
        assert!(conflict(&replies[0]));
        assert!(matches!(&replies[1], Reply::Decided(d) if d.commit));
        assert_eq!(value(&target, "a").as_deref(), Some("1"));
        assert_eq!(rebuilt.txs.locked(), 0);
    }
}
