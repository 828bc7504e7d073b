//! Cluster mode: one Raft group per partition (openraft 0.9), the internal
//! RPC, a node's replica runtime and the gateway's router (DESIGN.md §5).
//!
//! Owns: the replicated command format ([`types`]), the Raft log and
//! applied state on the storage engine ([`log_store`], [`state_machine`]:
//! the same `Store` apply code as `partita serve`), the wire protocol
//! between gateways and nodes and between Raft peers ([`rpc`]), the replica
//! runtime ([`replica`]) and the routing `Backend` of `partita gateway`
//! ([`router`]).
//!
//! Must not know: DynamoDB JSON or `__type` names (the API crate maps the
//! storage errors the router returns), Kubernetes.
//!
//! Invariants: a write is acknowledged only after its log entry is durable
//! on a quorum and applied on the leader; a transaction with a
//! ClientRequestToken applies at most once per token for 10 minutes, across
//! leader changes and gateway restarts ([`tokens`]); a transaction across
//! groups is all-or-nothing and GetItem/TransactGetItems never see part of
//! it ([`txn`]); `consistent` reads go through the
//! leader's read index; every frame and every persisted record carries a
//! version.
//!
//! Tables: those of the topology file, and — under the dynamic-tables
//! entry (`partita_topology::topology::DYNAMIC_TABLES`) — tables created at
//! run time through the gateway, whose DDL is a replicated command of every
//! partition group.
//!
//! Transport security: mutual TLS on the internal RPC with the
//! `--rpc-tls-*` flags ([`tls`]); plaintext without them.
//!
//! Transactions across Raft groups run by two-phase commit: the gateway
//! coordinates ([`router`]), the replicated locks and records are in
//! [`txn`]; a write meeting a lock is refused with `TransactionConflict`.
//!
//! Not done yet (see [`not_done`]): what is left of cross-group
//! transactions (timestamp ordering, lock-aware Query and Scan) and
//! streams in cluster mode; membership changes (a
//! replica on an empty disk of a group that exists comes back as a blank
//! new member and waits to be added: [`identity`],
//! `docs/membership.md`); partition splits
//! (re-routing a key to a new partition); streaming snapshots (they are
//! built in memory) and a crash-safe snapshot install.
//!
//! Observability: `partita node` serves the API's series for its store
//! plus the Raft series of [`metrics`] on `--admin-port`; `partita
//! gateway` serves the request series.

pub mod identity;
pub mod log_store;
pub mod membership;
#[doc = include_str!("../docs/not_done.md")]
pub mod not_done {}
pub mod metrics;
pub mod replica;
pub mod router;
pub mod rpc;
pub mod state_machine;
pub mod tls;
pub mod tokens;
pub mod txn;
pub mod types;

pub use replica::{Replica, ReplicaOptions};
pub use router::{Router, RouterOptions};

/// Returns the wall clock in ms since the Unix epoch (what replicated
/// commands carry as their time).
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Errors of starting cluster components.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Storage(#[from] partita_storage::StorageError),
}
