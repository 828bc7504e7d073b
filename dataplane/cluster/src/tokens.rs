//! Replicated ClientRequestToken records of write transactions.
//!
//! In cluster mode the gateway's in-process token cache is not enough: a
//! transaction whose call timed out, or whose leader died before
//! answering, may still commit, and the SDK's retry can reach another
//! gateway, or the same one after a restart. So the record is part of the
//! partition's state machine: a [`Command::TransactOnce`] carries the token,
//! the request's fingerprint and the submitting gateway's clock, and its
//! apply
//!
//! - finds a live record of the same fingerprint: applies nothing, answers
//!   `Replayed` (with the current size of each action's item, for the read
//!   capacity a replay reports);
//! - finds a live record of another fingerprint: applies nothing, answers
//!   `Mismatch` (IdempotentParameterMismatchException);
//! - otherwise runs the transaction with the record's Put in the SAME
//!   atomic batch (with the applied log id), so a crash never keeps one
//!   without the other. A cancelled transaction records nothing (a retry
//!   runs again, as in DynamoDB).
//!
//! A record lives [`TOKEN_LIFETIME_MS`] (DynamoDB: 10 minutes), judged by
//! the `now_ms` of the command being applied — a value in the log, so every
//! replica decides the same. Records are items of the hidden table
//! [`TOKENS_TABLE`] of the replica's store: snapshots carry them like any
//! table. Expired records are deleted by later committing token
//! transactions, at most [`GC_PER_APPLY`] each, found through an in-memory
//! index rebuilt from the table at start and after a snapshot install.
//!
//! Scope: the record lives in the Raft group that applied the transaction
//! — for a transaction across groups, the coordinator group (the group of
//! its first action), written with the commit decision (`Command::TxDecide`,
//! see [`crate::txn`]); a different request reusing a token on another
//! group is not detected there (the gateway's own cache still catches it
//! on the same gateway).
//!
//! [`Command::TransactOnce`]: crate::types::Command::TransactOnce

use std::collections::BTreeSet;

use partita_model::value::item_size;
use partita_model::{AttributeValue, Item, TableDefinition};
use partita_storage::{StorageError, Store, Visit, WriteCommand};
use serde::{Deserialize, Serialize};

use crate::state_machine::meta_table_definition;
use crate::types::TokenClaim;

/// Hidden table of each replica's store holding the token records.
pub const TOKENS_TABLE: &str = "__partita_tokens";
/// How long a committed transaction's token is remembered.
pub const TOKEN_LIFETIME_MS: u64 = 600_000;
/// Most expired records deleted by one applied transaction.
pub const GC_PER_APPLY: usize = 16;
/// Version byte of a record's value.
const RECORD_VERSION: u8 = 1;

/// Returns the definition of the hidden token-record table.
pub fn tokens_table_definition() -> TableDefinition {
    let mut def = meta_table_definition();
    def.name = TOKENS_TABLE.into();
    def.table_id = "partita-raft-tokens".into();
    def
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Record {
    fingerprint: u64,
    at_ms: u64,
}

fn key(token: &str) -> Item {
    Item::from([("k".to_string(), AttributeValue::S(token.into()))])
}

fn decode(item: &Item) -> Option<(String, Record)> {
    let Some(AttributeValue::S(token)) = item.get("k") else {
        return None;
    };
    let Some(AttributeValue::B(bytes)) = item.get("v") else {
        return None;
    };
    match bytes.split_first() {
        Some((&RECORD_VERSION, body)) => {
            bincode::deserialize(body).ok().map(|r| (token.clone(), r))
        }
        _ => None,
    }
}

/// What a token's record says about a claim.
#[derive(Debug, PartialEq)]
pub enum Lookup {
    /// No live record: run the transaction.
    Unused,
    /// The same request committed under the token.
    Same,
    /// A different request committed under the token.
    Other,
}

/// Returns what the record item of a token (read from [`TOKENS_TABLE`],
/// `None` when absent) says about `claim`.
pub fn lookup_record(item: Option<&Item>, claim: &TokenClaim) -> Lookup {
    let Some((_, record)) = item.and_then(decode) else {
        return Lookup::Unused;
    };
    if claim.now_ms >= record.at_ms.saturating_add(TOKEN_LIFETIME_MS) {
        return Lookup::Unused;
    }
    if record.fingerprint == claim.fingerprint {
        Lookup::Same
    } else {
        Lookup::Other
    }
}

/// Returns the key item of `token`'s record in [`TOKENS_TABLE`].
pub fn record_key(token: &str) -> Item {
    key(token)
}

/// The token records of one replica's state machine.
#[derive(Default)]
pub struct TokenRecords {
    /// (recorded at, token) of every record in the table.
    by_time: BTreeSet<(u64, String)>,
}

impl TokenRecords {
    /// Creates the table when missing and indexes its records.
    pub fn load(store: &Store) -> Result<TokenRecords, StorageError> {
        if !store.list_tables().iter().any(|t| t == TOKENS_TABLE) {
            store.create_table(tokens_table_definition())?;
        }
        let mut by_time = BTreeSet::new();
        store.scan(TOKENS_TABLE, 0, 1, None, &mut |item| {
            if let Some((token, record)) = decode(&item) {
                by_time.insert((record.at_ms, token));
            }
            Visit::Continue
        })?;
        Ok(TokenRecords { by_time })
    }

    /// Looks `claim` up in `store`.
    pub fn lookup(&self, store: &Store, claim: &TokenClaim) -> Result<Lookup, StorageError> {
        let item = store.get(TOKENS_TABLE, &key(&claim.token))?;
        Ok(lookup_record(item.as_ref(), claim))
    }

    /// The writes that go in the batch of a transaction run under `claim`:
    /// its record, and deletes of records expired by `claim.now_ms`.
    pub fn writes(&self, claim: &TokenClaim) -> Result<Vec<(String, WriteCommand)>, StorageError> {
        let value = bincode::serialize(&Record {
            fingerprint: claim.fingerprint,
            at_ms: claim.now_ms,
        })
        .map_err(|e| StorageError::Engine {
            operation: "token record",
            message: e.to_string(),
        })?;
        let mut bytes = vec![RECORD_VERSION];
        bytes.extend(value);
        let mut item = key(&claim.token);
        item.insert("v".into(), AttributeValue::B(bytes));
        let mut writes = vec![(
            TOKENS_TABLE.to_string(),
            WriteCommand::Put {
                item,
                condition: None,
            },
        )];
        writes.extend(self.expired(claim).into_iter().map(|(_, token)| {
            (
                TOKENS_TABLE.to_string(),
                WriteCommand::Delete {
                    key: key(&token),
                    condition: None,
                },
            )
        }));
        Ok(writes)
    }

    fn expired(&self, claim: &TokenClaim) -> Vec<(u64, String)> {
        self.by_time
            .iter()
            .take_while(|(at, _)| claim.now_ms >= at.saturating_add(TOKEN_LIFETIME_MS))
            .filter(|(_, token)| *token != claim.token)
            .take(GC_PER_APPLY)
            .cloned()
            .collect()
    }

    /// Updates the index after the batch of [`TokenRecords::writes`]
    /// committed.
    pub fn committed(&mut self, claim: &TokenClaim) {
        for expired in self.expired(claim) {
            self.by_time.remove(&expired);
        }
        self.by_time.retain(|(_, token)| *token != claim.token);
        self.by_time.insert((claim.now_ms, claim.token.clone()));
    }

    /// Number of records indexed.
    pub fn len(&self) -> usize {
        self.by_time.len()
    }

    /// True when no record is indexed.
    pub fn is_empty(&self) -> bool {
        self.by_time.is_empty()
    }
}

/// (table, size of the item now) of each action, for a replay's capacity.
pub fn current_sizes(store: &Store, actions: &[(String, WriteCommand)]) -> Vec<(String, u64)> {
    actions
        .iter()
        .map(|(table, command)| {
            let key = match command {
                WriteCommand::Put { item, .. } => item,
                WriteCommand::Delete { key, .. }
                | WriteCommand::Update { key, .. }
                | WriteCommand::ConditionCheck { key, .. } => key,
            };
            let size = store
                .get(table, key)
                .ok()
                .flatten()
                .map(|item| item_size(&item) as u64)
                .unwrap_or(0);
            (table.clone(), size)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use partita_storage::StoreOptions;

    fn claim(token: &str, fingerprint: u64, now_ms: u64) -> TokenClaim {
        TokenClaim {
            token: token.into(),
            fingerprint,
            now_ms,
        }
    }

    async fn commit(store: &Store, records: &mut TokenRecords, c: &TokenClaim) {
        let writes = records.writes(c).unwrap();
        store.transact_write(writes).await.unwrap();
        records.committed(c);
    }

    #[tokio::test]
    async fn records_replay_mismatch_expire_and_are_collected() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let mut records = TokenRecords::load(&store).unwrap();
        assert_eq!(
            records.lookup(&store, &claim("a", 1, 1000)).unwrap(),
            Lookup::Unused
        );
        commit(&store, &mut records, &claim("a", 1, 1000)).await;
        assert_eq!(
            records.lookup(&store, &claim("a", 1, 2000)).unwrap(),
            Lookup::Same
        );
        assert_eq!(
            records.lookup(&store, &claim("a", 2, 2000)).unwrap(),
            Lookup::Other
        );
        // Just before and at the lifetime's end.
        let end = 1000 + TOKEN_LIFETIME_MS;
        assert_eq!(
            records.lookup(&store, &claim("a", 2, end - 1)).unwrap(),
            Lookup::Other
        );
        assert_eq!(
            records.lookup(&store, &claim("a", 2, end)).unwrap(),
            Lookup::Unused
        );
        // A later transaction deletes the expired record in its batch.
        commit(&store, &mut records, &claim("b", 5, end)).await;
        assert_eq!(records.len(), 1);
        assert!(store.get(TOKENS_TABLE, &key("a")).unwrap().is_none());
        // The index is rebuilt from the table.
        let reloaded = TokenRecords::load(&store).unwrap();
        assert_eq!(reloaded.by_time, records.by_time);
    }
}
