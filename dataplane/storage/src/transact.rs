//! Transactions: all-or-nothing writes of several items (across partitions
//! and tables), and reads of several items from one snapshot.
//!
//! # Prepare, then commit
//!
//! A write transaction is applied in two steps, both inside the writer
//! thread and inside one write group:
//!
//! 1. **Prepare.** Every action is applied, in order, by the same code as an
//!    ordinary write (`GroupState::apply_one`: the partition state machine's
//!    conditions, local index entries, item collection sizes, statistics and
//!    the global index outbox), but into a *fork* of the group's pending
//!    state: a copy of its overlays and counters with an empty engine batch of
//!    its own. The result is one verdict per action and, when all succeeded,
//!    the transaction's complete write set (the fork's batch). Nothing of the
//!    group has been touched.
//! 2. **Commit.** When every action succeeded, the fork is absorbed: its batch
//!    is appended to the group's batch and its overlays become the group's.
//!    The group's single engine batch then commits the transaction together
//!    with the concurrent writes of the group (one fsync). When any action
//!    failed, the fork is dropped (abort) and nothing of the transaction
//!    exists anywhere.
//!
//! # Why no reader sees part of a transaction, and why no conflict arises
//!
//! One writer thread applies every write in order, and a transaction is
//! prepared and committed without any other command in between. Its writes
//! join the group's batch, which the engine commits atomically (after a crash
//! all of it or none of it is there) and publishes at one sequence number,
//! while every read (Get, Query, Scan, [`Store::transact_get`]) reads one
//! snapshot taken at a batch boundary. So transactions are serializable in
//! writer order, and in standalone mode there is nothing for a
//! TransactionConflict to report: a conflicting write simply applies before
//! or after the transaction, never during it.
//!
//! # Reuse by the cluster's two-phase commit (DESIGN.md §5)
//!
//! A transaction over several Raft groups (`partita_cluster::txn`) runs the
//! prepare step alone on each participant for its share of the actions
//! ([`Store::prepare_write`]): the actions are applied to a fork that is
//! dropped — their answers are the verdicts sent to the coordinator — and,
//! when all succeed, the participant's own records (item locks, the prepare
//! record with the actions, the applied log id) are committed in their
//! place, atomically. Commit applies the kept actions again, without their
//! conditions; abort drops them. Because the state machine is deterministic
//! and the locked items cannot change between prepare and commit, commit
//! writes exactly what the prepare evaluated. A transaction within one
//! group is one command, as here.

use std::collections::HashSet;

use partita_model::Item;

use crate::codec::decode_item;
use crate::commit::{Answers, Command, GroupState};
use crate::{keys, StorageError, Store, WriteCommand, WriteOutcome};

/// Why a write transaction was not applied: one entry per action, in order,
/// `None` for actions that would have succeeded. Nothing was written.
#[derive(Debug, thiserror::Error)]
#[error("transaction cancelled")]
pub struct TransactionFailure {
    pub reasons: Vec<Option<StorageError>>,
}

impl TransactionFailure {
    /// Returns a failure of every action with `error` (e.g. the writer stopped).
    fn all(count: usize, error: impl Fn() -> StorageError) -> TransactionFailure {
        TransactionFailure {
            reasons: (0..count).map(|_| Some(error())).collect(),
        }
    }
}

/// Applies `commands` in order to `trial` and returns their answers.
fn apply_all(trial: &mut GroupState<'_>, commands: &[(String, Command)]) -> Answers {
    commands
        .iter()
        .map(|(table, command)| match command {
            Command::Write(command) => trial.apply_one(table, command),
            Command::Backfill { .. } | Command::Expire { .. } | Command::Replicate { .. } => {
                Err(StorageError::Engine {
                    operation: "transaction",
                    message: "only client writes can be part of a transaction".into(),
                })
            }
        })
        .collect()
}

/// Prepares a transaction on a fork of the group's state and, when every
/// action succeeds, commits it into the group (see the module docs).
pub(crate) fn apply_atomic(state: &mut GroupState<'_>, commands: &[(String, Command)]) -> Answers {
    let mut trial = state.fork();
    let answers = apply_all(&mut trial, commands);
    if answers.iter().all(Result::is_ok) {
        state.absorb(trial);
    }
    answers
}

/// The prepare step alone, for a two-phase commit's participant: the first
/// `checked` commands are applied to a fork that is then dropped (their
/// answers are the verdicts); when all succeed, the remaining commands (the
/// participant's own records) are applied atomically. The answers of the
/// remaining commands follow; when a checked command failed they all fail
/// with `Unsupported("not applied")` and nothing is written.
pub(crate) fn apply_prepare(
    state: &mut GroupState<'_>,
    commands: &[(String, Command)],
    checked: usize,
) -> Answers {
    let (evaluated, records) = commands.split_at(checked.min(commands.len()));
    let mut trial = state.fork();
    let mut answers = apply_all(&mut trial, evaluated);
    drop(trial);
    if !answers.iter().all(Result::is_ok) {
        answers.extend(
            records
                .iter()
                .map(|_| Err(StorageError::Unsupported("not applied".into()))),
        );
        return answers;
    }
    answers.extend(apply_atomic(state, records));
    answers
}

fn key_of(command: &WriteCommand) -> &Item {
    match command {
        WriteCommand::Put { item, .. } => item,
        WriteCommand::Delete { key, .. }
        | WriteCommand::Update { key, .. }
        | WriteCommand::ConditionCheck { key, .. } => key,
    }
}

impl Store {
    /// Applies `actions` atomically and durably: either every action
    /// applies (conditions evaluated against the state before the
    /// transaction) and the outcomes are returned in order, or none does and
    /// the failure carries one reason per action. The actions must address
    /// distinct items; a repeated item fails with `InvalidKey`. No reader
    /// ever sees part of a transaction.
    pub async fn transact_write(
        &self,
        actions: Vec<(String, WriteCommand)>,
    ) -> Result<Vec<WriteOutcome>, TransactionFailure> {
        let count = actions.len();
        if count == 0 {
            return Ok(Vec::new());
        }
        if let Some(reasons) = self.duplicate_reasons(&actions) {
            return Err(TransactionFailure { reasons });
        }
        let answers = self.writer.submit_transaction(actions).await;
        if answers.len() != count {
            return Err(TransactionFailure::all(count, || StorageError::Engine {
                operation: "transaction",
                message: "the writer answered the wrong number of actions".into(),
            }));
        }
        if answers.iter().all(Result::is_ok) {
            return Ok(answers.into_iter().flatten().collect());
        }
        Err(TransactionFailure {
            reasons: answers.into_iter().map(Result::err).collect(),
        })
    }

    /// Evaluates `actions` as one transaction against the current state
    /// WITHOUT writing them (a two-phase commit's prepare) and, when every
    /// action would succeed, applies `records` atomically in their place.
    /// Returns the actions' would-be outcomes, or one reason per action.
    /// Like [`Store::transact_write`], the actions must address distinct
    /// items. A failure of `records` fails every action with its error.
    pub async fn prepare_write(
        &self,
        actions: Vec<(String, WriteCommand)>,
        records: Vec<(String, WriteCommand)>,
    ) -> Result<Vec<WriteOutcome>, TransactionFailure> {
        let count = actions.len();
        if let Some(reasons) = self.duplicate_reasons(&actions) {
            return Err(TransactionFailure { reasons });
        }
        let mut commands = actions;
        let total = count + records.len();
        commands.extend(records);
        let mut answers = self.writer.submit_prepare(commands, count).await;
        if answers.len() != total {
            return Err(TransactionFailure::all(count, || StorageError::Engine {
                operation: "prepare",
                message: "the writer answered the wrong number of actions".into(),
            }));
        }
        let records = answers.split_off(count);
        if !answers.iter().all(Result::is_ok) {
            return Err(TransactionFailure {
                reasons: answers.into_iter().map(Result::err).collect(),
            });
        }
        if let Some(Err(e)) = records.into_iter().find(Result::is_err) {
            let message = e.to_string();
            return Err(TransactionFailure::all(count, || StorageError::Engine {
                operation: "prepare",
                message: message.clone(),
            }));
        }
        Ok(answers.into_iter().flatten().collect())
    }

    /// Returns one reason per action when some action addresses an item an
    /// earlier one already did.
    fn duplicate_reasons(
        &self,
        actions: &[(String, WriteCommand)],
    ) -> Option<Vec<Option<StorageError>>> {
        let mut seen = HashSet::with_capacity(actions.len());
        let mut duplicates = vec![false; actions.len()];
        for (i, (table, command)) in actions.iter().enumerate() {
            let Ok(state) = self.shared.table(table) else {
                continue;
            };
            if let Ok(key) = keys::encode_key(&state.def.key_schema, key_of(command)) {
                duplicates[i] = !seen.insert((table.clone(), key.bytes));
            }
        }
        duplicates.iter().any(|d| *d).then(|| {
            duplicates
                .into_iter()
                .map(|d| {
                    d.then(|| {
                        StorageError::InvalidKey(
                            "a transaction may address an item only once".into(),
                        )
                    })
                })
                .collect()
        })
    }

    /// Reads several items by their full primary keys from ONE snapshot:
    /// the result reflects every transaction entirely or not at all.
    pub fn transact_get(&self, gets: &[(String, Item)]) -> Result<Vec<Option<Item>>, StorageError> {
        let tables = gets
            .iter()
            .map(|(table, _)| self.shared.table(table))
            .collect::<Result<Vec<_>, _>>()?;
        let view = self.shared.engine.read_view();
        let mut items = Vec::with_capacity(gets.len());
        for ((_, key), table) in gets.iter().zip(&tables) {
            let key = keys::encode_key(&table.def.key_schema, key)?;
            let partition = table.partition_of(key.hash)?;
            let item = match view.get(&partition.space, &key.bytes)? {
                Some(bytes) => Some(decode_item(&bytes).map_err(|e| StorageError::Corrupt {
                    what: "item",
                    detail: e.to_string(),
                })?),
                None => None,
            };
            items.push(item);
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use partita_model::AttributeValue;

    use super::*;
    use crate::StoreOptions;

    fn table(name: &str) -> partita_model::TableDefinition {
        use partita_model::schema::ScalarType;
        use partita_model::schema::{AttributeDefinition, BillingMode, KeyAttribute, KeySchema};
        partita_model::TableDefinition {
            revision: 0,
            name: name.into(),
            table_id: format!("{name}-id"),
            key_schema: KeySchema {
                hash: KeyAttribute {
                    name: "k".into(),
                    scalar_type: ScalarType::S,
                },
                range: None,
            },
            attribute_definitions: vec![AttributeDefinition {
                name: "k".into(),
                scalar_type: ScalarType::S,
            }],
            billing_mode: BillingMode::PayPerRequest,
            throughput: None,
            created_at_ms: 1,
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

    fn put(k: &str, condition: Option<partita_expr::Condition>) -> (String, WriteCommand) {
        let item = Item::from([("k".to_string(), AttributeValue::S(k.into()))]);
        ("T".into(), WriteCommand::Put { item, condition })
    }

    /// Invariant: a prepare evaluates its actions without writing them and
    /// writes its records only when every action would succeed.
    #[tokio::test]
    async fn prepare_writes_records_in_place_of_the_actions() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        store.create_table(table("T")).unwrap();
        store.create_table(table("R")).unwrap();
        let record = |k: &str| {
            let item = Item::from([("k".to_string(), AttributeValue::S(k.into()))]);
            (
                "R".to_string(),
                WriteCommand::Put {
                    item,
                    condition: None,
                },
            )
        };
        let key = |k: &str| Item::from([("k".to_string(), AttributeValue::S(k.into()))]);
        let outcomes = store
            .prepare_write(vec![put("a", None), put("b", None)], vec![record("r1")])
            .await
            .unwrap();
        assert_eq!(outcomes.len(), 2);
        assert!(outcomes[0].new.is_some());
        assert!(store.get("T", &key("a")).unwrap().is_none());
        assert!(store.get("R", &key("r1")).unwrap().is_some());
        let exists = partita_expr::Condition::AttributeExists(partita_expr::Path(vec![
            partita_expr::PathElement::Attribute("k".into()),
        ]));
        let failure = store
            .prepare_write(
                vec![put("a", None), put("c", Some(exists))],
                vec![record("r2")],
            )
            .await
            .unwrap_err();
        assert!(failure.reasons[0].is_none());
        assert!(matches!(
            failure.reasons[1],
            Some(StorageError::ConditionalCheckFailed { .. })
        ));
        assert!(store.get("R", &key("r2")).unwrap().is_none());
    }
}
