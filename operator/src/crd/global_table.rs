//! The `GlobalTable` resource: a local Table replicated to tables of the same
//! name in other regions (each region a cluster with its own gateway).
//!
//! The operator renders every GlobalTable of the cluster into the gateway's
//! replication file (`partita_topology::replication`); see
//! [`crate::global`] for how, and for what the status fields mean.
//!
//! Credentials, both directions:
//! - outbound: `replicas[].credentialsSecretRef` — the key pair this region
//!   signs its replication calls to that peer with (the peer must accept it);
//! - inbound: `inboundCredentialsSecretRef` — the key pair peers sign their
//!   replication calls into this region with. Every GlobalTable's inbound
//!   Secret goes into the file's `inbound` list (a region accepts the union).
//!   Without any, this region refuses every replication call, so changes
//!   flow out of it but not in.

// `printcolumn(...)` repeats `type_ = ...` per column; that is the derive's syntax.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired replication of one local table.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "partita.dev",
    version = "v1alpha1",
    kind = "GlobalTable",
    namespaced,
    derive = "Default",
    status = "GlobalTableStatus",
    shortname = "pgt",
    category = "partita",
    doc = "Replicates a local Partita Table to peer regions, last writer wins.",
    printcolumn(name = "Table", type_ = "string", json_path = ".spec.tableRef.name"),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.globalTableStatus"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.replicas.all(r, self.replicas.exists_one(s, s.regionName == r.regionName))").message("replicas must name distinct regions"))]
pub struct GlobalTableSpec {
    /// The local Table resource (same namespace) to replicate. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("tableRef is immutable"))]
    pub table_ref: LocalObjectRef,
    /// The peer regions.
    #[schemars(length(min = 1, max = 10))]
    pub replicas: Vec<RegionReplica>,
    /// Secret (same namespace) with keys accessKeyId and secretAccessKey
    /// that peer regions sign their replication calls into this region
    /// with. Optional: without it this GlobalTable adds no inbound
    /// credentials (another GlobalTable's may still admit the peers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound_credentials_secret_ref: Option<LocalObjectRef>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
pub struct LocalObjectRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// One peer region.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegionReplica {
    /// Region name, e.g. eu-west-1.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-z0-9-]+$"))]
    pub region_name: String,
    /// The peer gateway's DynamoDB endpoint (http:// or https:// URL).
    #[schemars(length(min = 8, max = 2048), regex(pattern = r"^https?://"))]
    pub endpoint: String,
    /// Secret (same namespace) with keys accessKeyId and secretAccessKey
    /// used to write to the peer.
    pub credentials_secret_ref: LocalObjectRef,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GlobalTableStatus {
    /// CREATING, ACTIVE, UPDATING, or INACCESSIBLE (a Table or Secret it
    /// needs is missing) / INVALID (its regions conflict with another
    /// GlobalTable's, or name this region): then it is not replicated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_table_status: Option<String>,
    /// The DynamoDB name of the replicated table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Each peer region as this region's replicator reports it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<ReplicaStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// One peer region's state, from the gateway's `GET /replication`. Fields
/// the gateway did not report are absent (never guessed).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    pub region_name: String,
    /// DynamoDB's ReplicaStatus (CREATING, ACTIVE, ...) as reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_status: Option<String>,
    /// Whether the replicator's last call to the peer succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reachable: Option<bool>,
    /// Age in seconds of the oldest change the peer has not applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<f64>,
    /// Changes the peer has not applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_changes: Option<i64>,
    /// The replicator's last error, or why nothing is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
