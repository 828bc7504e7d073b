//! Global tables: `GlobalTable` resources → the gateway's replication file
//! (`partita_topology::replication`) and each GlobalTable's status.
//!
//! The same pipeline as the Table controller, for one merged file:
//! [`resolve`] (pure: every GlobalTable, the Tables and the credentials
//! Secrets it names → the [`ReplicationFile`](partita_topology::replication::ReplicationFile)
//! and one [`resolve::Outcome`] per GlobalTable) → build (the Secret
//! `partita-gateway-replication`, [`resolve::build_replication_secret`]) →
//! apply (server-side, by the controller in
//! [`crate::controller::global_table`]) → [`status`] (pure: outcome + the
//! gateway's `GET /replication` document, read through the
//! [`source::ReplicationStatusSource`] trait, → `GlobalTableStatus`).
//!
//! Decisions:
//! - One file for the whole cluster (the gateway serves every table): peers
//!   are the union of every GlobalTable's replica regions, `tables` maps each
//!   GlobalTable's DynamoDB table name to its regions.
//! - Inbound credentials (what peers sign with when they write here) come
//!   from the optional `spec.inboundCredentialsSecretRef`; the file's
//!   `inbound` list is the union over all GlobalTables. A field rather than a
//!   label on Secrets, so a missing or incomplete Secret is reported on the
//!   GlobalTable that needs it (SecretMissing) instead of silently admitting
//!   nobody.
//! - All or nothing per GlobalTable: one that names a missing Table or
//!   Secret, a Secret without both keys, this region itself, or a region
//!   another GlobalTable already names with a different endpoint or
//!   credentials (first by creation time wins), or a table another
//!   GlobalTable already replicates, contributes nothing to the file. It
//!   gets Degraded=True with the reason and a Warning Event. Dropping a
//!   table from `tables` never deletes remote data (the data plane leaves
//!   dropped replicas alone), so leaving a broken GlobalTable out is safe.
//! - Status is only what the gateway reports: when `GET /replication`
//!   cannot be read, Ready and Degraded are Unknown with reason
//!   StatusUnavailable and the per-region fields stay empty.

pub mod resolve;
pub mod source;
pub mod status;
