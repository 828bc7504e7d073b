//! Transactions across Raft groups: the replicated records of the
//! two-phase commit the gateway coordinates (see [`crate::router`] for the
//! coordinator's steps and the recovery it drives).
//!
//! Records, all items of hidden tables of the replica's store (so they are
//! written in the same atomic batch as the applied log id, survive restarts
//! and travel with snapshots):
//!
//! - a **lock** per item a prepared transaction will write or check, in
//!   [`LOCKS_TABLE`], keyed by [`lock_key`] (the item's table and encoded
//!   primary key) and holding the transaction's [`TxRef`]: its id, its
//!   coordinator group and participants, and when it was prepared;
//! - a **prepare record** per prepared transaction, in [`TX_TABLE`] under
//!   `p/<txid>`: the participant's actions and the keys of their locks;
//! - a **decision record** per decided transaction, in [`TX_TABLE`] under
//!   `d/<txid>`, in the coordinator group only. The first decision recorded
//!   is final.
//!
//! While an item is locked, every other write to it (a plain write, a
//! single-group transaction, another prepare) is refused with
//! `TransactionConflict`; nothing else changes it, so the prepared actions,
//! evaluated at prepare against the committed state, apply at commit
//! exactly as evaluated. Reads see the committed state and the lock in one
//! snapshot (the gateway reads the lock entry with the item).
//!
//! Decision records are kept (they are small); collecting them is not done.

use std::collections::HashMap;

use partita_model::{AttributeValue, Item, TableDefinition};
use partita_storage::keys::encode_key;
use partita_storage::{StorageError, Store, Visit, WriteCommand};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::state_machine::meta_table_definition;
use crate::types::{Decision, TxRef};

/// Hidden table of the lock entries.
pub const LOCKS_TABLE: &str = "__partita_tx_locks";
/// Hidden table of prepare and decision records.
pub const TX_TABLE: &str = "__partita_tx";
/// Version byte of every record's value.
const RECORD_VERSION: u8 = 1;

/// A participant's prepared share of a transaction.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Prepared {
    pub actions: Vec<(String, WriteCommand)>,
    /// The lock keys of the actions' items.
    pub locks: Vec<String>,
}

fn table_definition(name: &str, id: &str) -> TableDefinition {
    let mut def = meta_table_definition();
    def.name = name.into();
    def.table_id = id.into();
    def
}

fn record_key(k: &str) -> Item {
    Item::from([("k".to_string(), AttributeValue::S(k.into()))])
}

fn prepared_key(txid: &str) -> String {
    format!("p/{txid}")
}

fn decision_key(txid: &str) -> String {
    format!("d/{txid}")
}

fn encoding_error(e: impl ToString) -> StorageError {
    StorageError::Engine {
        operation: "transaction record",
        message: e.to_string(),
    }
}

fn encode<T: Serialize>(k: &str, value: &T) -> Result<Item, StorageError> {
    let mut bytes = vec![RECORD_VERSION];
    bytes.extend(bincode::serialize(value).map_err(encoding_error)?);
    let mut item = record_key(k);
    item.insert("v".into(), AttributeValue::B(bytes));
    Ok(item)
}

/// Largest piece of a prepare record per item: a transaction's actions
/// (up to 4 MB) exceed the 400 KB item limit of the hidden table.
const RECORD_PIECE: usize = 300_000;

/// The key of piece `i` of the record under `k`.
fn piece_key(k: &str, i: usize) -> String {
    if i == 0 {
        k.to_string()
    } else {
        format!("{k}/{i}")
    }
}

/// Encodes `value` as the record under `k` in pieces: the first item holds
/// the number of pieces (`n`), every item a run of the encoded bytes.
fn encode_pieces<T: Serialize>(k: &str, value: &T) -> Result<Vec<Item>, StorageError> {
    let mut bytes = vec![RECORD_VERSION];
    bytes.extend(bincode::serialize(value).map_err(encoding_error)?);
    let pieces: Vec<&[u8]> = bytes.chunks(RECORD_PIECE).collect();
    let count = pieces.len();
    Ok(pieces
        .into_iter()
        .enumerate()
        .map(|(i, piece)| {
            let mut item = record_key(&piece_key(k, i));
            item.insert("v".into(), AttributeValue::B(piece.to_vec()));
            if i == 0 {
                item.insert("n".into(), AttributeValue::S(count.to_string()));
            }
            item
        })
        .collect())
}

/// Reads the record under `k` written by [`encode_pieces`].
fn read_pieces<T: DeserializeOwned>(
    store: &Store,
    table: &str,
    k: &str,
) -> Result<Option<T>, StorageError> {
    let Some(first) = store.get(table, &record_key(k))? else {
        return Ok(None);
    };
    let count = match first.get("n") {
        Some(AttributeValue::S(n)) => n.parse::<usize>().unwrap_or(1),
        _ => 1,
    };
    let mut bytes = match first.get("v") {
        Some(AttributeValue::B(b)) => b.clone(),
        _ => return Ok(None),
    };
    for i in 1..count {
        match store
            .get(table, &record_key(&piece_key(k, i)))?
            .and_then(|item| item.get("v").cloned())
        {
            Some(AttributeValue::B(b)) => bytes.extend_from_slice(&b),
            _ => return Ok(None),
        }
    }
    Ok(match bytes.split_first() {
        Some((&RECORD_VERSION, body)) => bincode::deserialize(body).ok(),
        _ => None,
    })
}

/// Decodes the value of a record item; `None` for a malformed one.
fn decode<T: DeserializeOwned>(item: &Item) -> Option<T> {
    let Some(AttributeValue::B(bytes)) = item.get("v") else {
        return None;
    };
    match bytes.split_first() {
        Some((&RECORD_VERSION, body)) => bincode::deserialize(body).ok(),
        _ => None,
    }
}

/// Decodes a lock entry read from [`LOCKS_TABLE`].
pub fn decode_lock(item: &Item) -> Option<TxRef> {
    decode(item)
}

/// Returns the lock key of the item at `key` of table `def`: the table name
/// and the hex of its encoded primary key.
pub fn lock_key(def: &TableDefinition, key: &Item) -> Result<String, StorageError> {
    let encoded = encode_key(&def.key_schema, key)?;
    let mut out = String::with_capacity(def.name.len() + 1 + 2 * encoded.bytes.len());
    out.push_str(&def.name);
    out.push('/');
    for b in encoded.bytes {
        out.push_str(&format!("{b:02x}"));
    }
    Ok(out)
}

/// The key item of lock `lock` in [`LOCKS_TABLE`].
pub fn lock_item_key(lock: &str) -> Item {
    record_key(lock)
}

/// Returns the key of the item a write command addresses.
pub fn key_of(command: &WriteCommand) -> &Item {
    match command {
        WriteCommand::Put { item, .. } => item,
        WriteCommand::Delete { key, .. }
        | WriteCommand::Update { key, .. }
        | WriteCommand::ConditionCheck { key, .. } => key,
    }
}

/// Returns `command` without its condition, `None` for a ConditionCheck
/// (what a commit applies: the locks kept the conditions true).
fn unconditional(command: &WriteCommand) -> Option<WriteCommand> {
    match command {
        WriteCommand::Put { item, .. } => Some(WriteCommand::Put {
            item: item.clone(),
            condition: None,
        }),
        WriteCommand::Delete { key, .. } => Some(WriteCommand::Delete {
            key: key.clone(),
            condition: None,
        }),
        WriteCommand::Update { key, update, .. } => Some(WriteCommand::Update {
            key: key.clone(),
            update: update.clone(),
            condition: None,
        }),
        WriteCommand::ConditionCheck { .. } => None,
    }
}

fn put(table: &str, item: Item) -> (String, WriteCommand) {
    (
        table.to_string(),
        WriteCommand::Put {
            item,
            condition: None,
        },
    )
}

fn delete(table: &str, k: &str) -> (String, WriteCommand) {
    (
        table.to_string(),
        WriteCommand::Delete {
            key: record_key(k),
            condition: None,
        },
    )
}

/// The transaction records of one replica's state machine: the tables and
/// an in-memory index of the locks (lock key → txid), rebuilt from the
/// table at start and after a snapshot install.
#[derive(Default)]
pub struct TxRecords {
    locks: HashMap<String, String>,
}

impl TxRecords {
    /// Creates the tables when missing and indexes the locks.
    pub fn load(store: &Store) -> Result<TxRecords, StorageError> {
        let tables = store.list_tables();
        if !tables.iter().any(|t| t == LOCKS_TABLE) {
            store.create_table(table_definition(LOCKS_TABLE, "partita-raft-tx-locks"))?;
        }
        if !tables.iter().any(|t| t == TX_TABLE) {
            store.create_table(table_definition(TX_TABLE, "partita-raft-tx"))?;
        }
        let mut locks = HashMap::new();
        store.scan(LOCKS_TABLE, 0, 1, None, &mut |item| {
            if let (Some(AttributeValue::S(k)), Some(tx)) = (item.get("k"), decode_lock(&item)) {
                locks.insert(k.clone(), tx.txid);
            }
            Visit::Continue
        })?;
        Ok(TxRecords { locks })
    }

    /// Number of locked items.
    pub fn locked(&self) -> usize {
        self.locks.len()
    }

    /// Returns whether `command` on `table` addresses a locked item.
    pub fn is_locked(&self, store: &Store, table: &str, command: &WriteCommand) -> bool {
        self.holder(store, table, command)
            .is_some_and(|(_, holder)| holder.is_some())
    }

    /// Returns the lock key of `command`'s item and the transaction
    /// holding it, if any (`None` for the key when the table or key is
    /// invalid: the write itself then fails on its own).
    fn holder(
        &self,
        store: &Store,
        table: &str,
        command: &WriteCommand,
    ) -> Option<(String, Option<&String>)> {
        let def = store.table(table).ok()?;
        let k = lock_key(&def, key_of(command)).ok()?;
        let holder = self.locks.get(&k);
        Some((k, holder))
    }

    /// For a prepare of `actions` by `txid`: per action whether its item is
    /// locked by another transaction, and the lock keys to take.
    pub fn check(
        &self,
        store: &Store,
        txid: &str,
        actions: &[(String, WriteCommand)],
    ) -> (Vec<bool>, Vec<String>) {
        let mut conflicts = Vec::with_capacity(actions.len());
        let mut keys = Vec::with_capacity(actions.len());
        for (table, command) in actions {
            match self.holder(store, table, command) {
                Some((k, holder)) => {
                    conflicts.push(holder.is_some_and(|h| h != txid));
                    keys.push(k);
                }
                None => conflicts.push(false),
            }
        }
        (conflicts, keys)
    }

    /// The records a prepare writes (in the batch that evaluates the
    /// actions): the locks and the prepare record.
    pub fn prepare_writes(
        &self,
        tx: &TxRef,
        actions: &[(String, WriteCommand)],
        locks: &[String],
    ) -> Result<Vec<(String, WriteCommand)>, StorageError> {
        let mut writes = Vec::with_capacity(locks.len() + 1);
        for k in locks {
            writes.push(put(LOCKS_TABLE, encode(k, tx)?));
        }
        let prepared = Prepared {
            actions: actions.to_vec(),
            locks: locks.to_vec(),
        };
        for piece in encode_pieces(&prepared_key(&tx.txid), &prepared)? {
            writes.push(put(TX_TABLE, piece));
        }
        Ok(writes)
    }

    /// Records in the index the locks of a prepare that committed.
    pub fn prepared(&mut self, txid: &str, locks: &[String]) {
        for k in locks {
            self.locks.insert(k.clone(), txid.to_string());
        }
    }

    /// Returns the prepared share of `txid` on this replica, if any.
    pub fn prepared_record(
        &self,
        store: &Store,
        txid: &str,
    ) -> Result<Option<Prepared>, StorageError> {
        read_pieces(store, TX_TABLE, &prepared_key(txid))
    }

    /// The writes that finish a prepared share: the actions (when
    /// committing, unconditional) and the deletes of its records.
    pub fn finish_writes(
        &self,
        txid: &str,
        prepared: &Prepared,
        commit: bool,
    ) -> Vec<(String, WriteCommand)> {
        let mut writes: Vec<(String, WriteCommand)> = Vec::new();
        if commit {
            writes.extend(
                prepared
                    .actions
                    .iter()
                    .filter_map(|(t, c)| unconditional(c).map(|c| (t.clone(), c))),
            );
        }
        writes.extend(prepared.locks.iter().map(|k| delete(LOCKS_TABLE, k)));
        // As many pieces as the record was written in (same encoding).
        let pieces = encode_pieces(&prepared_key(txid), prepared).map_or(1, |p| p.len());
        for i in 0..pieces {
            writes.push(delete(TX_TABLE, &piece_key(&prepared_key(txid), i)));
        }
        writes
    }

    /// Drops from the index the locks of a share that was finished.
    pub fn finished(&mut self, prepared: &Prepared) {
        for k in &prepared.locks {
            self.locks.remove(k);
        }
    }

    /// Returns the recorded decision of `txid`, if any.
    pub fn decision(&self, store: &Store, txid: &str) -> Result<Option<Decision>, StorageError> {
        Ok(store
            .get(TX_TABLE, &record_key(&decision_key(txid)))?
            .and_then(|item| decode(&item)))
    }

    /// The write recording `decision` for `txid`.
    pub fn decision_write(
        &self,
        txid: &str,
        decision: &Decision,
    ) -> Result<(String, WriteCommand), StorageError> {
        Ok(put(TX_TABLE, encode(&decision_key(txid), decision)?))
    }
}

/// Returns whether a table name is one of the hidden tables of cluster
/// replicas (never listed to clients).
/// Returns a transaction holding an item of `table` in this store, if
/// any (the lock table holds one entry per item locked by a prepared
/// transaction: a handful, read whole).
pub fn table_lock(store: &Store, table: &str) -> Result<Option<TxRef>, StorageError> {
    let prefix = format!("{table}/");
    let mut found = None;
    let scanned = store.scan(LOCKS_TABLE, 0, 1, None, &mut |item| {
        if let Some(AttributeValue::S(k)) = item.get("k") {
            if k.starts_with(&prefix) {
                found = decode_lock(&item);
                if found.is_some() {
                    return Visit::Stop;
                }
            }
        }
        Visit::Continue
    });
    match scanned {
        Ok(()) => Ok(found),
        // A store of a version without transaction records holds no locks.
        Err(StorageError::TableNotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn is_hidden(table: &str) -> bool {
    table == LOCKS_TABLE
        || table == TX_TABLE
        || table == crate::state_machine::META_TABLE
        || table == crate::tokens::TOKENS_TABLE
}

#[cfg(test)]
mod tests {
    use super::*;
    use partita_storage::StoreOptions;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_larger_than_an_item_are_written_in_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        TxRecords::load(&store).unwrap();
        // Over two pieces: a transaction's actions may reach 4 MB.
        let value: Vec<u8> = (0..2 * RECORD_PIECE + 10).map(|i| i as u8).collect();
        let pieces = encode_pieces("p/t1", &value).unwrap();
        assert_eq!(pieces.len(), 3);
        let writes = pieces.into_iter().map(|item| put(TX_TABLE, item)).collect();
        for result in store.write_many(writes).await {
            result.unwrap();
        }
        let back: Option<Vec<u8>> = read_pieces(&store, TX_TABLE, "p/t1").unwrap();
        assert_eq!(back, Some(value));
        assert_eq!(
            read_pieces::<Vec<u8>>(&store, TX_TABLE, "p/none").unwrap(),
            None
        );
    }
}
