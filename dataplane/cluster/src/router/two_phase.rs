//! The gateway as coordinator of transactions across Raft groups, and the
//! reads and recovery around their locks (the replicated records are in
//! [`crate::txn`]).
//!
//! # Commit
//!
//! 1. With a ClientRequestToken, the token record is read in the
//!    *coordinator group* (the group of the first action): a live record
//!    answers the replay or the mismatch at once.
//! 2. `TxPrepare` to every participant group, in order; each answers the
//!    outcomes of its actions or one reason per action (a failed condition,
//!    a `TransactionConflict` for an item another transaction holds).
//! 3. `TxDecide` to the coordinator group: commit when every participant
//!    prepared, else abort. The first decision recorded wins, and the
//!    answer is the recorded one; with a token, a commit records it.
//! 4. `TxCommit` or `TxAbort` to every participant (idempotent). A failure
//!    here is logged and left to recovery: the decision is already durable.
//!
//! # Reads
//!
//! GetItem and TransactGetItems read each item together with its lock entry
//! (one snapshot of the group). A locked item makes the read wait and read
//! again; a TransactGetItems over several groups reads everything twice and
//! accepts only two identical, lock-free rounds (a transaction that
//! committed between two groups' reads changes the second round). Two
//! rounds equal by value after a transaction changed items and another
//! changed them back (ABA on every item read) would go unnoticed.
//! A Query or Scan page comes with a transaction holding an item of its
//! table in that group, if any (the node looks before reading the page);
//! the router then waits for (or recovers) it and reads the page again, so
//! a page never shows a transaction applied in another group and not yet
//! in this one. A transaction that prepares after the node looked is not
//! waited for (read committed, like DynamoDB's Query and Scan). Eventually consistent GetItems served by followers
//! (`follower_reads`) do not look at locks.
//!
//! # Recovery
//!
//! A lock older than [`RECOVER_AFTER_MS`] (by the clock of the gateway that
//! prepared it) makes whoever meets it — a read waiting on it, a write or a
//! prepare refused by it — propose an abort to the coordinator group, then
//! push the recorded decision (abort, or the commit the coordinator
//! reached before dying) to every participant. A slow coordinator that
//! proposes commit afterwards reads the abort back and rolls back.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use partita_api::backend::OnceOutcome;
use partita_model::value::item_size;
use partita_model::{Item, TableDefinition};
use partita_storage::{StorageError, TransactionFailure, WriteCommand, WriteOutcome};
use partita_topology::TableTopology;

use super::{unavailable, Router};
use crate::rpc::{Request, Response};
use crate::tokens::{lookup_record, record_key, Lookup, TOKENS_TABLE};
use crate::txn::{decode_lock, key_of, lock_item_key, lock_key, LOCKS_TABLE};
use crate::types::{
    Command, Decide, Decision, GroupRef, Prepare, Reply, TokenClaim, TokenConflict, TxRef,
};

/// Age of a lock after which whoever meets it drives its recovery.
pub const RECOVER_AFTER_MS: u64 = 2_000;
/// How long a TransactGetItems across groups keeps retrying past locks
/// and changing rounds before it is cancelled with TransactionConflict
/// (a client retries; waiting longer starves readers under contention).
const READ_WAIT: Duration = Duration::from_secs(1);
/// Pause before reading a locked item again.
const LOCK_POLL: Duration = Duration::from_millis(10);
/// Test hook: a gateway started with this variable set to `after-prepare`
/// or `after-decide` exits at that point of its next cross-group
/// transaction (the cluster tests' coordinator crash).
const EXIT_HOOK: &str = "PARTITA_TEST_2PC_EXIT";

/// One group's share of a transaction.
pub(super) struct Share {
    pub group: GroupRef,
    pub topology: TableTopology,
    /// Positions of the share's actions in the transaction.
    pub positions: Vec<usize>,
    pub actions: Vec<(String, WriteCommand)>,
}

/// An item as read with its lock entry.
type Locked = (Option<Item>, Option<TxRef>);

use crate::wall_ms as now_ms;

/// Returns a new transaction id: the clock and 64 random bits.
fn new_txid() -> String {
    let random = RandomState::new().build_hasher().finish();
    format!("{:x}-{random:016x}", now_ms())
}

fn exit_hook(point: &str) {
    if std::env::var(EXIT_HOOK).is_ok_and(|v| v == point) {
        tracing::warn!(point, "exiting on the two-phase commit test hook");
        std::process::exit(3);
    }
}

/// A failure of every action with `e` (the first gets `e` itself).
fn fail_all(count: usize, e: StorageError) -> TransactionFailure {
    let message = e.to_string();
    let mut first = Some(e);
    TransactionFailure {
        reasons: (0..count)
            .map(|_| Some(first.take().unwrap_or_else(|| unavailable(message.clone()))))
            .collect(),
    }
}

impl Router {
    /// Returns the definition of `table` (cached, else read from
    /// partition 0 without blocking).
    async fn definition(&self, table: &str) -> Result<TableDefinition, StorageError> {
        if let Some(def) = self.defs.get(table) {
            return Ok(def);
        }
        let topo = self.table_topology(table)?;
        let (def, _, _) = self.describe(&topo, 0, table).await?;
        self.defs.insert(table, def.clone());
        Ok(def)
    }

    /// Sends a replicated command to a group's leader.
    async fn send(&self, group: &GroupRef, command: Command) -> Result<Reply, StorageError> {
        let topo = self.table_topology(&group.table)?;
        self.write_group(&topo, group.partition, command).await
    }

    /// Proposes a decision to the coordinator group; returns the recorded one.
    async fn decide(
        &self,
        tx: &TxRef,
        commit: bool,
        claim: Option<TokenClaim>,
    ) -> Result<Decision, StorageError> {
        let command = Command::TxDecide(Decide {
            txid: tx.txid.clone(),
            commit,
            participants: tx.participants.clone(),
            claim,
            now_ms: now_ms(),
        });
        match self.send(&tx.coordinator, command).await? {
            Reply::Decided(decision) => Ok(decision),
            _ => Err(unavailable("malformed decision reply".into())),
        }
    }

    /// Pushes a decision to every participant; returns the first failure
    /// (the others are still tried).
    async fn finish(
        &self,
        txid: &str,
        commit: bool,
        participants: &[GroupRef],
    ) -> Result<(), StorageError> {
        let mut first = None;
        for group in participants {
            let command = if commit {
                Command::TxCommit(txid.to_string())
            } else {
                Command::TxAbort(txid.to_string())
            };
            let result = match self.send(group, command).await {
                Ok(Reply::Transact(Ok(_))) => Ok(()),
                Ok(_) => Err(unavailable(format!(
                    "participant {} of {} did not finish transaction {txid}",
                    group.partition, group.table
                ))),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                tracing::warn!(txid, commit, error = %e, "transaction not finished on a participant");
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Splits `actions` by Raft group, in order of first appearance.
    pub(super) fn shares(
        &self,
        actions: Vec<(String, WriteCommand)>,
    ) -> Result<Vec<Share>, StorageError> {
        let mut shares: Vec<(String, Share)> = Vec::new();
        for (i, (table, command)) in actions.into_iter().enumerate() {
            let topo = self.table_topology(&table)?;
            let p = self.partition_of_key(&topo, key_of(&command))?;
            let group = self.group_of(&table);
            match shares
                .iter_mut()
                .find(|(g, s)| *g == group && s.group.partition == p)
            {
                Some((_, share)) => {
                    share.positions.push(i);
                    share.actions.push((table, command));
                }
                None => shares.push((
                    group,
                    Share {
                        group: GroupRef {
                            table: table.clone(),
                            partition: p,
                        },
                        topology: topo,
                        positions: vec![i],
                        actions: vec![(table, command)],
                    },
                )),
            }
        }
        Ok(shares.into_iter().map(|(_, s)| s).collect())
    }

    /// Runs a transaction over several groups (see the module docs).
    pub(super) async fn transact_across(
        &self,
        shares: Vec<Share>,
        count: usize,
        claim: Option<TokenClaim>,
    ) -> Result<OnceOutcome, TransactionFailure> {
        let participants: Vec<GroupRef> = shares.iter().map(|s| s.group.clone()).collect();
        let tx = TxRef {
            txid: new_txid(),
            coordinator: participants[0].clone(),
            participants,
            prepared_ms: now_ms(),
        };
        if let Some(claim) = &claim {
            let coordinator = &shares[0];
            let gets = vec![(TOKENS_TABLE.to_string(), record_key(&claim.token))];
            let read = self
                .read_group(&coordinator.topology, coordinator.group.partition, gets)
                .await
                .map_err(|e| fail_all(count, e))?;
            match lookup_record(read.first().and_then(Option::as_ref), claim) {
                Lookup::Unused => {}
                Lookup::Same => return Ok(OnceOutcome::Replayed(self.sizes(&shares).await)),
                Lookup::Other => return Ok(OnceOutcome::Mismatch),
            }
        }
        let mut outcomes: Vec<WriteOutcome> = vec![WriteOutcome::default(); count];
        let mut reasons: Vec<Option<StorageError>> = (0..count).map(|_| None).collect();
        let mut cancelled = false;
        let mut failed = None;
        for share in &shares {
            let prepare = Command::TxPrepare(Prepare {
                tx: tx.clone(),
                actions: share.actions.clone(),
            });
            match self
                .write_group(&share.topology, share.group.partition, prepare)
                .await
            {
                Ok(Reply::Transact(Ok(done))) if done.len() == share.positions.len() => {
                    for (pos, outcome) in share.positions.iter().zip(done) {
                        outcomes[*pos] = outcome;
                    }
                }
                // The other groups are still asked: the cancellation lists
                // every action's reason, as DynamoDB's does (what they
                // lock is released by the abort below).
                Ok(Reply::Transact(Err(why))) => {
                    for (pos, reason) in share.positions.iter().zip(why) {
                        reasons[*pos] = reason.map(StorageError::from);
                    }
                    cancelled = true;
                }
                Ok(_) => {
                    failed = Some(unavailable("malformed prepare reply".into()));
                    break;
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        exit_hook("after-prepare");
        if cancelled || failed.is_some() {
            // Record the abort first: a prepare whose answer was lost is
            // then rolled back by recovery if not by `finish`.
            match self.decide(&tx, false, None).await {
                Ok(decision) => {
                    let _ = self
                        .finish(&tx.txid, decision.commit, &tx.participants)
                        .await;
                }
                Err(e) => tracing::warn!(txid = %tx.txid, error = %e, "abort not recorded"),
            }
            if let Some(e) = failed {
                return Err(fail_all(count, e));
            }
            self.recover_conflicts(&shares, &reasons).await;
            return Err(TransactionFailure { reasons });
        }
        let decision = self
            .decide(&tx, true, claim)
            .await
            .map_err(|e| fail_all(count, e))?;
        exit_hook("after-decide");
        let _ = self
            .finish(&tx.txid, decision.commit, &tx.participants)
            .await;
        if decision.commit {
            return Ok(OnceOutcome::Committed(outcomes));
        }
        match decision.token {
            Some(TokenConflict::Same) => Ok(OnceOutcome::Replayed(self.sizes(&shares).await)),
            Some(TokenConflict::Other) => Ok(OnceOutcome::Mismatch),
            // Recovery aborted the transaction before this coordinator
            // decided: it lost to a conflicting reader or writer.
            None => Err(TransactionFailure {
                reasons: (0..count)
                    .map(|_| Some(StorageError::TransactionConflict))
                    .collect(),
            }),
        }
    }

    /// (table, current item size) of every action, for a replay's capacity.
    async fn sizes(&self, shares: &[Share]) -> Vec<(String, u64)> {
        let count = shares.iter().map(|s| s.positions.len()).sum();
        let mut sizes = vec![(String::new(), 0); count];
        for share in shares {
            let gets: Vec<(String, Item)> = share
                .actions
                .iter()
                .map(|(t, c)| (t.clone(), key_of(c).clone()))
                .collect();
            let items = self
                .read_group(&share.topology, share.group.partition, gets)
                .await
                .unwrap_or_default();
            for (i, (pos, (table, _))) in share.positions.iter().zip(&share.actions).enumerate() {
                let size = items
                    .get(i)
                    .and_then(Option::as_ref)
                    .map_or(0, |item| item_size(item) as u64);
                sizes[*pos] = (table.clone(), size);
            }
        }
        sizes
    }

    /// After a prepare refused by locks: recovers the stale ones among
    /// them, so the client's retry can succeed.
    async fn recover_conflicts(&self, shares: &[Share], reasons: &[Option<StorageError>]) {
        for share in shares {
            for (pos, (table, command)) in share.positions.iter().zip(&share.actions) {
                if matches!(reasons[*pos], Some(StorageError::TransactionConflict)) {
                    let _ = self
                        .recover_stale(
                            &share.topology,
                            share.group.partition,
                            table,
                            key_of(command),
                        )
                        .await;
                }
            }
        }
    }

    /// Reads `gets` (all in one group) with a linearizable TransactGet.
    async fn read_group(
        &self,
        topo: &TableTopology,
        partition: u32,
        gets: Vec<(String, Item)>,
    ) -> Result<Vec<Option<Item>>, StorageError> {
        self.call(
            topo,
            partition,
            true,
            true,
            |t| Request::TransactGet {
                target: t,
                gets: gets.clone(),
            },
            |r| match r {
                Response::Items(r) => Some(r),
                _ => None,
            },
        )
        .await
    }

    /// Reads items of one group with their lock entries, in one snapshot.
    async fn read_locked(
        &self,
        topo: &TableTopology,
        partition: u32,
        gets: &[(String, Item)],
    ) -> Result<Vec<Locked>, StorageError> {
        let mut all = gets.to_vec();
        for (table, key) in gets {
            let def = self.definition(table).await?;
            all.push((
                LOCKS_TABLE.to_string(),
                lock_item_key(&lock_key(&def, key)?),
            ));
        }
        let mut items = match self.read_group(topo, partition, all).await {
            Ok(items) => items,
            // A node of a version without transaction records (during a
            // rolling upgrade): it holds no locks either.
            Err(StorageError::TableNotFound(t)) if t == LOCKS_TABLE => {
                let items = self.read_group(topo, partition, gets.to_vec()).await?;
                return Ok(items.into_iter().map(|item| (item, None)).collect());
            }
            Err(e) => return Err(e),
        };
        if items.len() != 2 * gets.len() {
            return Err(unavailable("malformed read reply".into()));
        }
        let locks = items.split_off(gets.len());
        Ok(items
            .into_iter()
            .zip(locks)
            .map(|(item, lock)| (item, lock.as_ref().and_then(decode_lock)))
            .collect())
    }

    /// Deals with a lock a read met: waits a little while it is young,
    /// drives its recovery once it is old.
    pub(super) async fn meet_lock(&self, tx: &TxRef) -> Result<(), StorageError> {
        if now_ms().saturating_sub(tx.prepared_ms) < RECOVER_AFTER_MS {
            tokio::time::sleep(LOCK_POLL).await;
            return Ok(());
        }
        self.recover(tx).await
    }

    /// Finishes a transaction whose coordinator seems gone: proposes an
    /// abort and pushes the recorded decision to every participant.
    async fn recover(&self, tx: &TxRef) -> Result<(), StorageError> {
        let decision = self.decide(tx, false, None).await?;
        tracing::info!(txid = %tx.txid, commit = decision.commit, "recovering a transaction");
        let mut participants = decision.participants;
        for group in &tx.participants {
            if !participants.contains(group) {
                participants.push(group.clone());
            }
        }
        self.finish(&tx.txid, decision.commit, &participants).await
    }

    /// Recovers the transaction holding `key`'s item when its lock is old.
    async fn recover_stale(
        &self,
        topo: &TableTopology,
        partition: u32,
        table: &str,
        key: &Item,
    ) -> Result<bool, StorageError> {
        let read = self
            .read_locked(topo, partition, &[(table.to_string(), key.clone())])
            .await?;
        match read.into_iter().next() {
            Some((_, Some(tx))) if now_ms().saturating_sub(tx.prepared_ms) >= RECOVER_AFTER_MS => {
                self.recover(&tx).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// After plain writes refused by locks: recovers the stale ones and
    /// writes those commands again (once).
    pub(super) async fn retry_conflicts(
        &self,
        commands: &[(String, WriteCommand)],
        results: &mut [Result<WriteOutcome, StorageError>],
    ) {
        let mut again = Vec::new();
        for (i, (table, command)) in commands.iter().enumerate() {
            if !matches!(results[i], Err(StorageError::TransactionConflict)) {
                continue;
            }
            let Ok(topo) = self.table_topology(table) else {
                continue;
            };
            let Ok(p) = self.partition_of_key(&topo, key_of(command)) else {
                continue;
            };
            if let Ok(true) = self.recover_stale(&topo, p, table, key_of(command)).await {
                again.push(i);
            }
        }
        if again.is_empty() {
            return;
        }
        let retried = self
            .write_many_async(again.iter().map(|i| commands[*i].clone()).collect())
            .await;
        for (i, result) in again.into_iter().zip(retried) {
            results[i] = result;
        }
    }

    /// Reads one item, waiting for (or recovering) a transaction holding it.
    pub(super) async fn get_resolved(
        &self,
        topo: &TableTopology,
        partition: u32,
        table: &str,
        key: &Item,
    ) -> Result<Option<Item>, StorageError> {
        let deadline = tokio::time::Instant::now() + self.options.deadline;
        let gets = [(table.to_string(), key.clone())];
        loop {
            let mut read = self.read_locked(topo, partition, &gets).await?;
            match read.pop() {
                Some((item, None)) => return Ok(item),
                Some((_, Some(tx))) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(StorageError::TransactionConflict);
                    }
                    self.meet_lock(&tx).await?;
                }
                None => return Err(unavailable("malformed read reply".into())),
            }
        }
    }

    /// Reads several items as of one point in the serial order of
    /// transactions (see the module docs).
    pub(super) async fn transact_get_resolved(
        &self,
        gets: &[(String, Item)],
        groups: &[((String, u32), Vec<usize>)],
    ) -> Result<Vec<Option<Item>>, StorageError> {
        let deadline = tokio::time::Instant::now() + READ_WAIT.min(self.options.deadline);
        let mut previous: Option<Vec<Option<Item>>> = None;
        loop {
            let mut round: Vec<Option<Item>> = vec![None; gets.len()];
            let mut lock = None;
            for (_, positions) in groups {
                let table = &gets[positions[0]].0;
                let topo = self.table_topology(table)?;
                let p = self.partition_of_key(&topo, &gets[positions[0]].1)?;
                let batch: Vec<(String, Item)> =
                    positions.iter().map(|i| gets[*i].clone()).collect();
                for (pos, (item, held)) in positions
                    .iter()
                    .zip(self.read_locked(&topo, p, &batch).await?)
                {
                    round[*pos] = item;
                    if lock.is_none() {
                        lock = held;
                    }
                }
            }
            match lock {
                Some(tx) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(StorageError::TransactionConflict);
                    }
                    self.meet_lock(&tx).await?;
                    previous = None;
                }
                None if groups.len() <= 1 => return Ok(round),
                None => {
                    if previous.as_ref() == Some(&round) {
                        return Ok(round);
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(StorageError::TransactionConflict);
                    }
                    previous = Some(round);
                }
            }
        }
    }
}
