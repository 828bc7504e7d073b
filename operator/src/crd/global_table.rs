//! The `GlobalTable` resource: a local Table replicated to tables of the same
//! name in other regions (each region a cluster with its own gateway).
//! Validation only for now; replication wiring is a later issue.

// `printcolumn(...)` repeats `type_ = ...` per column; that is the derive's syntax.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired replication of one local table.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "partita.dev",
    version = "v1alpha1",
    kind = "GlobalTable",
    namespaced,
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
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
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
    /// CREATING, ACTIVE or an error state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_table_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
