//! The Raft type configuration and the replicated commands.
//!
//! A partition's Raft log carries [`Command`]s: the same typed
//! `WriteCommand`s `partita serve` applies, grouped as one BatchWriteItem-like
//! write group or one single-partition transaction. Their outcomes
//! ([`Reply`]) travel back with storage errors in a serializable mirror,
//! [`WireError`], converted back into `StorageError` at the gateway so the
//! API maps them onto the wire exactly as in standalone mode.

use std::io::Cursor;

use partita_model::schema::IndexDefinition;
use partita_model::schema::ScalarType;
use partita_model::{Item, TableDefinition};
use partita_storage::{
    Expiry, ReplicaApply, ReplicatedChange, ReplicationState, StorageError, WriteCommand,
    WriteOutcome,
};
use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// Raft types of one partition's group.
    pub TypeConfig:
        D = Command,
        R = Reply,
        NodeId = u64,
        Node = openraft::BasicNode,
);

/// A running Raft group member.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log id.
pub type LogId = openraft::LogId<u64>;
/// Membership as stored with the applied state.
pub type StoredMembership = openraft::StoredMembership<u64, openraft::BasicNode>;

/// One replicated command of a partition's state machine.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Command {
    /// Independent writes applied in order in one group commit, each
    /// succeeding or failing on its own (PutItem, BatchWriteItem, ...).
    Write(Vec<(String, WriteCommand)>),
    /// All-or-nothing writes (a single-partition TransactWriteItems).
    Transact(Vec<(String, WriteCommand)>),
    /// Creates a table (dynamic tables): the definition is built once by
    /// the gateway, so every replica stores the same id and timestamps.
    CreateTable(TableDefinition),
    DeleteTable(String),
    /// Replaces a table's definition (TTL, tags, throughput, ...).
    UpdateTable(TableDefinition),
    /// The table's first partition: applies the command (a definition
    /// change) only while the table's definition revision is the given
    /// one, and raises the revision by one; otherwise answers
    /// `TransactionConflict` (another gateway changed the table
    /// meanwhile: read it again).
    Revised(u64, Box<Command>),
    /// The other partitions: takes the definition (the first partition's,
    /// after a change it accepted) unless the stored one is as new or
    /// newer; the global indexes stay the group's own (their creation and
    /// removal come as index commands), only their settings follow.
    UpdateTableIfNewer(TableDefinition),
    /// Adds a global index; each replica backfills it from its own items.
    CreateGlobalIndex(String, IndexDefinition),
    DeleteGlobalIndex(String, String),
    /// A single-partition transaction under a ClientRequestToken: applied
    /// at most once per token within the token lifetime (see
    /// `state_machine`'s token records).
    TransactOnce(Vec<(String, WriteCommand)>, TokenClaim),
    /// `Command` applied with the store's clock at the given time (ms
    /// since the epoch, the proposer's clock): change-log records, stream
    /// and shard times and trimming then read the same clock on every
    /// replica, so all replicas keep the same change log. Gateways send
    /// every data and table command so.
    Timed(u64, Box<Command>),
    /// Trims the change logs, rolls shards and forgets expired streams by
    /// the entry's clock (proposed, `Timed`, by the group's leader).
    MaintainStreams,
    /// Deletes the items that are still expired at the entry's clock (the
    /// leader found them; each is checked again when applied).
    Expire(Vec<Expiry>),
    /// The secret `name` of the group's store: the first proposed value
    /// is kept, later proposals read it ([`Reply::Secret`]).
    Secret(String, [u8; 32]),
    /// Makes a table replicated to other regions with this state (or not
    /// replicated); every partition's group gets it.
    SetReplication(String, Option<ReplicationState>),
    /// Stores replication cursors of (table, peer region) of this group's
    /// partition (the store's partition 0).
    SetCursors(String, String, Vec<(u32, Option<u64>)>),
    /// Applies changes from another region, last writer wins.
    ApplyReplicated(String, Vec<ReplicatedChange>),
    /// Creates a table that is replicated to other regions from its first
    /// write on (a global table's new replica).
    CreateReplicated(Box<TableDefinition>, ReplicationState),
    /// Two-phase commit, participant: evaluates this group's share of a
    /// transaction against committed state and, when every action would
    /// succeed, locks its items and keeps the actions (see [`crate::txn`]).
    TxPrepare(Prepare),
    /// Two-phase commit, coordinator group: records the decision of a
    /// transaction; the first decision recorded wins.
    TxDecide(Decide),
    /// Two-phase commit, participant: applies the prepared actions and
    /// releases their locks (no-op for an unknown transaction).
    TxCommit(String),
    /// Two-phase commit, participant: drops the prepared actions and
    /// releases their locks (no-op for an unknown transaction).
    TxAbort(String),
}

/// A Raft group, named by a table it holds and a partition index.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupRef {
    pub table: String,
    pub partition: u32,
}

/// Who to ask about a transaction holding a lock: also the content of a
/// lock record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TxRef {
    pub txid: String,
    /// The group holding the decision record.
    pub coordinator: GroupRef,
    /// Every group with a share of the transaction's actions.
    pub participants: Vec<GroupRef>,
    /// The coordinating gateway's clock at prepare (ms since the epoch).
    pub prepared_ms: u64,
}

/// A participant's share of a transaction.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Prepare {
    pub tx: TxRef,
    pub actions: Vec<(String, WriteCommand)>,
}

/// A decision proposed to the coordinator group.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Decide {
    pub txid: String,
    pub commit: bool,
    pub participants: Vec<GroupRef>,
    /// The ClientRequestToken: recorded with a commit decision (see
    /// [`crate::tokens`]).
    pub claim: Option<TokenClaim>,
    /// The proposer's clock (ms since the epoch).
    pub now_ms: u64,
}

/// The recorded decision of a transaction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub commit: bool,
    pub participants: Vec<GroupRef>,
    /// When a commit was proposed under a token another request (or this
    /// same one, earlier) already committed under: the decision is an
    /// abort and this says why.
    pub token: Option<TokenConflict>,
}

/// Why a commit under a ClientRequestToken was turned into an abort.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum TokenConflict {
    /// The same request committed under the token already.
    Same,
    /// A different request committed under the token.
    Other,
}

/// The ClientRequestToken of a transaction, as replicated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenClaim {
    pub token: String,
    /// Fingerprint of the request the token came with (the API's).
    pub fingerprint: u64,
    /// The gateway's clock when it submitted the command (ms since the
    /// epoch): every replica judges the record's expiry by this same value.
    pub now_ms: u64,
}

/// The outcome of a [`Command::TransactOnce`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum OnceReply {
    /// The token was unused (or expired): the transaction ran; on commit
    /// the token record was written in the same batch.
    Ran(Result<Vec<WriteOutcome>, Vec<Option<WireError>>>),
    /// The same request already committed under this token: nothing was
    /// applied; (table, current item size) per action, for the read
    /// capacity a replay reports.
    Replayed(Vec<(String, u64)>),
    /// The token belongs to a different request.
    Mismatch,
}

/// The outcome of one applied log entry.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub enum Reply {
    /// A blank or membership entry.
    #[default]
    Empty,
    Write(Vec<Result<WriteOutcome, WireError>>),
    /// `Err` holds one reason per action (`None` for actions that did not fail).
    Transact(Result<Vec<WriteOutcome>, Vec<Option<WireError>>>),
    /// The table's definition after a DDL command (before it, for a delete).
    Table(Result<Box<TableDefinition>, WireError>),
    Once(OnceReply),
    /// Outcomes of a [`Command::Expire`] (`true` for the items deleted).
    Expired(Vec<bool>),
    Secret(Result<[u8; 32], WireError>),
    Done(Result<(), WireError>),
    Replicated(Result<Vec<ReplicaApply>, WireError>),
    /// The decision recorded for a [`Command::TxDecide`] (perhaps an
    /// earlier, different one).
    Decided(Decision),
}

/// A `StorageError` that can cross the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WireError {
    TableNotFound(String),
    TableExists(String),
    ConditionalCheckFailed {
        old: Option<Item>,
    },
    Eval(String),
    ItemTooLarge,
    Engine {
        operation: String,
        message: String,
    },
    InvalidKey(String),
    InvalidTableDefinition(String),
    InvalidSegment {
        segment: u32,
        total_segments: u32,
    },
    Corrupt {
        what: String,
        detail: String,
    },
    IndexNotFound(String),
    IndexKeyInvalid {
        index: String,
        attribute: String,
        expected: Option<ScalarType>,
        actual: String,
    },
    ItemCollectionSizeLimitExceeded,
    Unsupported(String),
    TransactionConflict,
    IndexKeyTooLarge {
        index: String,
        attribute: String,
        size: u64,
        max: u64,
    },
}

/// Type names an `IndexKeyInvalid` may report, as `&'static str`.
const TYPE_NAMES: [&str; 10] = ["S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"];

impl From<&StorageError> for WireError {
    fn from(e: &StorageError) -> WireError {
        match e {
            StorageError::TableNotFound(t) => WireError::TableNotFound(t.clone()),
            StorageError::TableExists(t) => WireError::TableExists(t.clone()),
            StorageError::ConditionalCheckFailed { old } => WireError::ConditionalCheckFailed {
                old: old.as_deref().cloned(),
            },
            StorageError::Eval(e) => WireError::Eval(e.message.clone()),
            StorageError::ItemTooLarge => WireError::ItemTooLarge,
            StorageError::Engine { operation, message } => WireError::Engine {
                operation: (*operation).to_string(),
                message: message.clone(),
            },
            StorageError::InvalidKey(m) => WireError::InvalidKey(m.clone()),
            StorageError::InvalidTableDefinition(m) => WireError::InvalidTableDefinition(m.clone()),
            StorageError::InvalidSegment {
                segment,
                total_segments,
            } => WireError::InvalidSegment {
                segment: *segment,
                total_segments: *total_segments,
            },
            StorageError::Corrupt { what, detail } => WireError::Corrupt {
                what: (*what).to_string(),
                detail: detail.clone(),
            },
            StorageError::IndexNotFound(i) => WireError::IndexNotFound(i.clone()),
            StorageError::IndexKeyInvalid {
                index,
                attribute,
                expected,
                actual,
            } => WireError::IndexKeyInvalid {
                index: index.clone(),
                attribute: attribute.clone(),
                expected: *expected,
                actual: (*actual).to_string(),
            },
            StorageError::ItemCollectionSizeLimitExceeded => {
                WireError::ItemCollectionSizeLimitExceeded
            }
            StorageError::IndexKeyTooLarge {
                index,
                attribute,
                size,
                max,
            } => WireError::IndexKeyTooLarge {
                index: index.clone(),
                attribute: attribute.clone(),
                size: *size as u64,
                max: *max as u64,
            },
            StorageError::Unsupported(m) => WireError::Unsupported(m.clone()),
            StorageError::TransactionConflict => WireError::TransactionConflict,
        }
    }
}

impl From<StorageError> for WireError {
    fn from(e: StorageError) -> WireError {
        WireError::from(&e)
    }
}

impl From<WireError> for StorageError {
    fn from(e: WireError) -> StorageError {
        match e {
            WireError::TableNotFound(t) => StorageError::TableNotFound(t),
            WireError::TableExists(t) => StorageError::TableExists(t),
            WireError::ConditionalCheckFailed { old } => StorageError::ConditionalCheckFailed {
                old: old.map(Box::new),
            },
            WireError::Eval(m) => StorageError::Eval(partita_expr::EvalError::new(m)),
            WireError::ItemTooLarge => StorageError::ItemTooLarge,
            WireError::Engine { operation, message } => StorageError::Engine {
                operation: "replica",
                message: format!("{operation}: {message}"),
            },
            WireError::InvalidKey(m) => StorageError::InvalidKey(m),
            WireError::InvalidTableDefinition(m) => StorageError::InvalidTableDefinition(m),
            WireError::InvalidSegment {
                segment,
                total_segments,
            } => StorageError::InvalidSegment {
                segment,
                total_segments,
            },
            WireError::Corrupt { what, detail } => StorageError::Corrupt {
                what: "replica record",
                detail: format!("{what}: {detail}"),
            },
            WireError::IndexNotFound(i) => StorageError::IndexNotFound(i),
            WireError::IndexKeyInvalid {
                index,
                attribute,
                expected,
                actual,
            } => StorageError::IndexKeyInvalid {
                index,
                attribute,
                expected,
                actual: TYPE_NAMES
                    .iter()
                    .find(|n| **n == actual)
                    .copied()
                    .unwrap_or("S"),
            },
            WireError::ItemCollectionSizeLimitExceeded => {
                StorageError::ItemCollectionSizeLimitExceeded
            }
            WireError::IndexKeyTooLarge {
                index,
                attribute,
                size,
                max,
            } => StorageError::IndexKeyTooLarge {
                index,
                attribute,
                size: usize::try_from(size).unwrap_or(usize::MAX),
                max: usize::try_from(max).unwrap_or(usize::MAX),
            },
            WireError::Unsupported(m) => StorageError::Unsupported(m),
            WireError::TransactionConflict => StorageError::TransactionConflict,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_round_trip_through_the_wire() {
        let errors = vec![
            StorageError::TableNotFound("t".into()),
            StorageError::ConditionalCheckFailed {
                old: Some(Box::new(Item::new())),
            },
            StorageError::IndexKeyInvalid {
                index: "i".into(),
                attribute: "a".into(),
                expected: Some(ScalarType::N),
                actual: "BOOL",
            },
            StorageError::IndexKeyTooLarge {
                index: "i".into(),
                attribute: "a".into(),
                size: 2049,
                max: 2048,
            },
            StorageError::ItemCollectionSizeLimitExceeded,
            StorageError::TransactionConflict,
        ];
        for e in errors {
            let wire = WireError::from(&e);
            let bytes = bincode::serialize(&wire).unwrap();
            let back: WireError = bincode::deserialize(&bytes).unwrap();
            assert_eq!(back, wire);
            assert_eq!(StorageError::from(back).to_string(), e.to_string());
        }
    }
}
