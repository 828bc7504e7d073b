//! The contract between the Partita operator and the data plane.
//!
//! This crate owns the formats both sides must agree on and nothing else:
//!
//! - [`topology`]: the partition map file (DESIGN.md §5) — tables, their
//!   partitions, each partition's hash range and replica addresses, and a
//!   per-table epoch. The operator renders it into ConfigMaps; `partita node`
//!   and `partita gateway` read it; `partita dev-cluster` writes one for local
//!   multi-process clusters.
//! - [`auth`]: the gateway's credentials-and-policies file (the same model as
//!   `partita serve --auth FILE`), which the operator renders from
//!   `AccessPolicy` resources and labelled Secrets.
//! - [`replication`]: the replication file (peer regions of global tables,
//!   their endpoints and credentials) and the replication status document.
//! - [`flags`]: the command-line flags of `partita node` and `partita gateway`
//!   that the operator puts into pod specs, and the well-known ports and paths.
//! - [`partitions`]: the initial partition count formula (DESIGN.md §3) and the
//!   even split of the 64-bit hash space.
//!
//! It must not know Kubernetes, the storage engine or the wire protocol. It is
//! pure: serde types, validation and arithmetic, no I/O beyond parsing bytes the
//! caller read. Every file carries a `formatVersion`; readers accept every
//! version up to [`topology::FORMAT_VERSION`] / [`auth::FORMAT_VERSION`].

pub mod auth;
pub mod flags;
pub mod partitions;
pub mod replication;
pub mod topology;

pub use partitions::{initial_partition_count, split_hash_space, HashRange};
pub use topology::{
    Epoch, PartitionTopology, ReplicaAddress, TableTopology, TimeToLive, TopologyFile,
};
