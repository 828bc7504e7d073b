//! The `Table` resource: one DynamoDB table, its placement and its status.
//!
//! CEL rules (checked by the API server, and client-side in tests with kube's
//! `cel` feature): keySchema, tableName and localSecondaryIndexes are
//! immutable; billing mode and throughput agree; at most 5 LSIs and 20 GSIs;
//! attributeDefinitions cover every key attribute of the table and its indexes.

// `printcolumn(...)` repeats `type_ = ...` per column; that is the derive's syntax.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most local secondary indexes per table (DynamoDB's limit).
pub const MAX_LSIS: usize = 5;
/// Most global secondary indexes per table (DynamoDB's default quota).
pub const MAX_GSIS: usize = 20;
/// Most provisioned RCU or WCU per table (DynamoDB's default per-table quota).
pub const MAX_CAPACITY_UNITS: i64 = 40_000;

/// Desired state of a Partita table.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "partita.dev",
    version = "v1alpha1",
    kind = "Table",
    namespaced,
    derive = "Default",
    status = "TableStatus",
    shortname = "ptbl",
    category = "partita",
    doc = "A DynamoDB table served by Partita: replicated, zone-spread data pods behind the gateway.",
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.tableStatus",
        description = "DynamoDB table status"
    ),
    printcolumn(
        name = "Partitions",
        type_ = "integer",
        json_path = ".status.partitionCount",
        description = "Number of partitions"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.ready",
        description = "Ready replicas / desired replicas"
    ),
    printcolumn(
        name = "RCU",
        type_ = "integer",
        json_path = ".spec.provisionedThroughput.readCapacityUnits",
        description = "Provisioned read capacity units"
    ),
    printcolumn(
        name = "WCU",
        type_ = "integer",
        json_path = ".spec.provisionedThroughput.writeCapacityUnits",
        description = "Provisioned write capacity units"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.keySchema.all(k, self.attributeDefinitions.exists(a, a.attributeName == k.attributeName))").message("attributeDefinitions must define every keySchema attribute"),
    validation = Rule::new("!has(self.globalSecondaryIndexes) || self.globalSecondaryIndexes.all(i, i.keySchema.all(k, self.attributeDefinitions.exists(a, a.attributeName == k.attributeName)))").message("attributeDefinitions must define every globalSecondaryIndexes key attribute"),
    validation = Rule::new("!has(self.localSecondaryIndexes) || self.localSecondaryIndexes.all(i, i.keySchema.all(k, self.attributeDefinitions.exists(a, a.attributeName == k.attributeName)))").message("attributeDefinitions must define every localSecondaryIndexes key attribute"),
    validation = Rule::new("(has(self.billingMode) && self.billingMode == 'PAY_PER_REQUEST') ? !has(self.provisionedThroughput) : has(self.provisionedThroughput)").message("provisionedThroughput is required with billingMode PROVISIONED (the default) and not allowed with PAY_PER_REQUEST"),
    validation = Rule::new("!has(self.onDemandThroughput) || (has(self.billingMode) && self.billingMode == 'PAY_PER_REQUEST')").message("onDemandThroughput is only allowed with billingMode PAY_PER_REQUEST"),
    validation = Rule::new("!has(self.localSecondaryIndexes) || size(self.localSecondaryIndexes) <= 5").message("a table has at most 5 localSecondaryIndexes"),
    validation = Rule::new("!has(self.globalSecondaryIndexes) || size(self.globalSecondaryIndexes) <= 20").message("a table has at most 20 globalSecondaryIndexes"),
    validation = Rule::new("has(self.localSecondaryIndexes) == has(oldSelf.localSecondaryIndexes)").message("localSecondaryIndexes are immutable"),
    validation = Rule::new("has(self.tableName) == has(oldSelf.tableName)").message("tableName is immutable"),
)]
pub struct TableSpec {
    /// DynamoDB table name; defaults to metadata.name. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 255), regex(pattern = r"^[a-zA-Z0-9_.-]+$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("tableName is immutable"))]
    pub table_name: Option<String>,

    /// Attributes used in the key schema of the table and its indexes.
    #[schemars(length(min = 1, max = 64))]
    pub attribute_definitions: Vec<AttributeDefinition>,

    /// Partition key (HASH) and optional sort key (RANGE). Immutable.
    #[schemars(length(min = 1, max = 2))]
    #[x_kube(
        validation = Rule::new("self == oldSelf").message("keySchema is immutable"),
        validation = Rule::new("self[0].keyType == 'HASH' && (size(self) == 1 || self[1].keyType == 'RANGE')").message("keySchema must be a HASH key optionally followed by a RANGE key")
    )]
    pub key_schema: Vec<KeySchemaElement>,

    /// PROVISIONED (the default) or PAY_PER_REQUEST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_mode: Option<BillingMode>,

    /// Required with PROVISIONED; sizes the table's partitions at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned_throughput: Option<ProvisionedThroughput>,

    /// Optional maximum request units with PAY_PER_REQUEST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_demand_throughput: Option<OnDemandThroughput>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 20))]
    pub global_secondary_indexes: Option<Vec<GlobalSecondaryIndex>>,

    /// Immutable after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 5))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("localSecondaryIndexes are immutable"))]
    pub local_secondary_indexes: Option<Vec<LocalSecondaryIndex>>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_specification: Option<StreamSpecification>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_live: Option<TimeToLive>,

    /// While true, deleting the Table resource is refused (the finalizer keeps it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_protection_enabled: Option<bool>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_class: Option<TableClass>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 50))]
    pub tags: Option<Vec<Tag>>,

    /// Accepted for ACK compatibility; Partita encrypts at the volume level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sse_specification: Option<SseSpecification>,

    /// Accepted for ACK compatibility; not implemented yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuous_backups: Option<ContinuousBackups>,

    /// Accepted for ACK compatibility (ENABLE or DISABLE); not implemented yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contributor_insights: Option<String>,

    /// Where and how the data pods run (Partita).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,

    /// Throughput autoscaling policy (Partita); recorded, applied once splits exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,

    /// Operational switches (Partita).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_operation: Option<ClusterOperation>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttributeDefinition {
    #[schemars(length(min = 1, max = 255))]
    pub attribute_name: String,
    pub attribute_type: ScalarAttributeType,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ScalarAttributeType {
    S,
    N,
    B,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeySchemaElement {
    #[schemars(length(min = 1, max = 255))]
    pub attribute_name: String,
    pub key_type: KeyType,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KeyType {
    Hash,
    Range,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BillingMode {
    Provisioned,
    PayPerRequest,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProvisionedThroughput {
    #[schemars(range(min = 1, max = 40000))]
    pub read_capacity_units: i64,
    #[schemars(range(min = 1, max = 40000))]
    pub write_capacity_units: i64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OnDemandThroughput {
    /// -1 or absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub max_read_request_units: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub max_write_request_units: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Projection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projection_type: Option<ProjectionType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100))]
    pub non_key_attributes: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProjectionType {
    All,
    KeysOnly,
    Include,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GlobalSecondaryIndex {
    #[schemars(length(min = 3, max = 255), regex(pattern = r"^[a-zA-Z0-9_.-]+$"))]
    pub index_name: String,
    #[schemars(length(min = 1, max = 2))]
    pub key_schema: Vec<KeySchemaElement>,
    pub projection: Projection,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned_throughput: Option<ProvisionedThroughput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_demand_throughput: Option<OnDemandThroughput>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalSecondaryIndex {
    #[schemars(length(min = 3, max = 255), regex(pattern = r"^[a-zA-Z0-9_.-]+$"))]
    pub index_name: String,
    #[schemars(length(min = 1, max = 2))]
    pub key_schema: Vec<KeySchemaElement>,
    pub projection: Projection,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamSpecification {
    pub stream_enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_view_type: Option<StreamViewType>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamViewType {
    NewImage,
    OldImage,
    NewAndOldImages,
    KeysOnly,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimeToLive {
    #[schemars(length(min = 1, max = 255))]
    pub attribute_name: String,
    pub enabled: bool,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TableClass {
    Standard,
    StandardInfrequentAccess,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct Tag {
    #[schemars(length(min = 1, max = 128))]
    pub key: String,
    #[schemars(length(max = 256))]
    pub value: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SseSpecification {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(
        default,
        rename = "kmsMasterKeyID",
        skip_serializing_if = "Option::is_none"
    )]
    pub kms_master_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sse_type: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContinuousBackups {
    pub point_in_time_recovery_enabled: bool,
}

/// Where the table's data pods run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.zones) || size(self.zones) == 0 || !has(self.replicasPerPartition) || size(self.zones) <= self.replicasPerPartition").message("placement.zones must list at most one zone per replica (replicasPerPartition); replicas are spread evenly over the zones"))]
pub struct Placement {
    /// The zones the replicas of each partition run in (values of the node
    /// label `topology.kubernetes.io/zone`), one replica per zone; with an
    /// explicit `replicasPerPartition` above their number, the replicas are
    /// spread as evenly as possible over them (never two replicas of a
    /// partition on one node). Empty: the operator's default zones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 5))]
    #[x_kube(validation = Rule::new("self.all(z, self.exists_one(y, y == z))").message("placement.zones must be distinct"))]
    pub zones: Option<Vec<String>>,
    /// Replicas (Raft voters) per partition: 1, 3 or 5; default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 5))]
    #[x_kube(validation = Rule::new("self % 2 == 1").message("replicasPerPartition must be odd (1, 3 or 5)"))]
    pub replicas_per_partition: Option<i32>,
    /// Resources of each data pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
}

/// The data pods' volumes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Volume size per replica; default 10Gi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// What happens to the volumes when the Table is deleted: Retain (default) or Delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_retention_policy: Option<VolumeRetentionPolicy>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum VolumeRetentionPolicy {
    #[default]
    Retain,
    Delete,
}

/// Throughput autoscaling (recorded now; acted on once partition splits exist).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.minPartitions) || !has(self.maxPartitions) || self.minPartitions <= self.maxPartitions").message("autoscaling.minPartitions must not exceed maxPartitions"))]
pub struct Autoscaling {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 256))]
    pub min_partitions: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 256))]
    pub max_partitions: Option<i32>,
    /// Target consumed/provisioned capacity, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 20, max = 90))]
    pub target_utilization_percent: Option<i32>,
}

/// Operational switches.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterOperation {
    /// The operator leaves the table's objects alone while true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciliation_paused: Option<bool>,
    /// Scales the data pods to zero, keeping their volumes (no data moves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<bool>,
}

/// Observed state of a Partita table.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableStatus {
    /// CREATING, UPDATING, ACTIVE, DELETING, or STOPPED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_status: Option<String>,
    /// The spec generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Available, Progressing and Degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The DynamoDB table name served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_count: Option<i32>,
    /// Partitions the current throughput needs (differs from partitionCount
    /// until partition splits carry it out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_partition_count: Option<i32>,
    /// Ready data pods / desired data pods, e.g. "9/9".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<PartitionStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_size_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_stream_arn: Option<String>,
    /// The gateway URL applications use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Topology epoch rendered into the topology ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<i64>,
}

/// One partition's hash range and replica readiness.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartitionStatus {
    pub id: i32,
    /// First hash of the range, 0x-prefixed hex.
    pub hash_range_start: String,
    /// Last hash of the range (inclusive), 0x-prefixed hex.
    pub hash_range_end: String,
    pub replicas: i32,
    pub ready_replicas: i32,
}

impl Table {
    /// The DynamoDB table name: spec.tableName, or metadata.name.
    pub fn dynamodb_name(&self) -> String {
        self.spec
            .table_name
            .clone()
            .or_else(|| self.metadata.name.clone())
            .unwrap_or_default()
    }
}
