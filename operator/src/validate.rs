//! `validate`: a Table resource (plus what already exists for it) → a
//! [`ValidatedTable`], the model every builder reads. Pure.
//!
//! The API server enforces the CRD's CEL rules, but the operator re-checks
//! everything it relies on (a CRD may be stale or applied without its
//! schema), and adds the checks CEL cannot express: names that must fit
//! Kubernetes' length limits, zone names usable as object names, and
//! changes that would move data (partition count, zones) without a split.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use serde_json::{json, Map, Value};

use crate::config::OperatorConfig;
use crate::crd::table::{BillingMode, KeyType, Table, VolumeRetentionPolicy, MAX_GSIS, MAX_LSIS};

/// Longest Table resource name + zone suffix usable as a StatefulSet name
/// (63 minus the controller-revision-hash suffix Kubernetes appends).
pub const MAX_STATEFULSET_NAME: usize = 52;

/// What exists already for a table (read from its StatefulSets' annotations).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Existing {
    /// Partition count the data pods were created with.
    pub partitions: Option<u32>,
    /// Zones the data pods were created in, in order.
    pub zones: Option<Vec<String>>,
    /// Topology epoch currently rendered.
    pub epoch: Option<u64>,
}

/// One replica slot of every partition: a StatefulSet pinned to a zone.
/// A zone holds several slots when the Table asks for more replicas than
/// it lists zones (replicas spread as evenly as possible over the zones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// The node-label value, e.g. `us-east-1a`.
    pub name: String,
    /// The DNS-label form used in object names: the zone's, e.g.
    /// `us-east-1a`, and `us-east-1a-2`, `-3` for a zone's later slots.
    pub slug: String,
    /// The replica's key in the topology file and its node's `--zone`:
    /// the zone name, and `<zone>/2`, `/3` for a zone's later slots.
    pub replica: String,
}

/// A Table resource checked and completed with defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedTable {
    /// metadata.name of the Table resource (prefix of every object name).
    pub resource_name: String,
    pub namespace: String,
    pub generation: i64,
    /// The DynamoDB table name.
    pub table_name: String,
    pub partition_key: String,
    /// Partitions the data pods serve (fixed at creation until splits exist).
    pub partitions: u32,
    /// Partitions the current throughput needs.
    pub needed_partitions: u32,
    pub zones: Vec<Zone>,
    pub resources: Option<ResourceRequirements>,
    pub storage_size: String,
    pub storage_class: Option<String>,
    pub volume_retention: VolumeRetentionPolicy,
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
    pub stopped: bool,
    pub deletion_protection: bool,
    pub epoch: u64,
    /// The DynamoDB CreateTable request body for this table.
    pub create_table: Value,
    /// The resource's creation time (ms since the epoch): the table's
    /// CreationDateTime on every node.
    pub created_at_ms: Option<u64>,
    /// The table's time to live (applied by the nodes; not part of
    /// `create_table`).
    pub time_to_live: Option<partita_topology::TimeToLive>,
}

impl ValidatedTable {
    /// Replicas per partition (one per slot).
    pub fn replicas_per_partition(&self) -> u32 {
        self.zones.len() as u32
    }
}

/// Why a Table spec was refused. [`ValidateError::reason`] is the bounded
/// category used in Events, conditions and metrics.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValidateError {
    #[error("the Table has no metadata.name or metadata.namespace")]
    MissingMetadata,
    #[error("keySchema must be one HASH key optionally followed by one RANGE key")]
    KeySchema,
    #[error(
        "attribute {attribute:?} is used in a key schema but missing from attributeDefinitions"
    )]
    UndefinedAttribute { attribute: String },
    #[error("attributeDefinitions defines {attribute:?} more than once")]
    DuplicateAttribute { attribute: String },
    #[error("provisionedThroughput is required with billingMode PROVISIONED (the default)")]
    MissingThroughput,
    #[error("provisionedThroughput is not allowed with billingMode PAY_PER_REQUEST")]
    UnexpectedThroughput,
    #[error("provisioned capacity units must be between 1 and 40000")]
    ThroughputRange,
    #[error("a table has at most {MAX_LSIS} local and {MAX_GSIS} global secondary indexes")]
    TooManyIndexes,
    #[error("index {index:?}: {reason}")]
    Index { index: String, reason: &'static str },
    #[error("placement names {zones} zones for {replicas} replicas per partition; give at most one zone per replica (replicas are spread evenly over the zones)")]
    ZoneCount { zones: usize, replicas: usize },
    #[error("replicasPerPartition must be 1, 3 or 5, got {0}")]
    ReplicaCount(i32),
    #[error(
        "zone {zone:?} cannot be used in object names (lowercase letters, digits and '-' only)"
    )]
    ZoneName { zone: String },
    #[error("zone {zone:?} is listed twice")]
    DuplicateZone { zone: String },
    #[error("Table name {name:?} is too long: object names would exceed {MAX_STATEFULSET_NAME} characters")]
    NameTooLong { name: String },
    #[error("tableName {0:?} is not a valid DynamoDB table name (3-255 of a-z A-Z 0-9 _ . -)")]
    TableName(String),
    #[error("placement zones cannot change from {from:?} to {to:?}: moving replicas needs data movement, which is not implemented")]
    ZonesChanged { from: Vec<String>, to: Vec<String> },
}

impl ValidateError {
    /// Bounded category for Events, condition reasons and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ValidateError::MissingMetadata => "InvalidMetadata",
            ValidateError::KeySchema
            | ValidateError::UndefinedAttribute { .. }
            | ValidateError::DuplicateAttribute { .. } => "InvalidKeySchema",
            ValidateError::MissingThroughput
            | ValidateError::UnexpectedThroughput
            | ValidateError::ThroughputRange => "InvalidThroughput",
            ValidateError::TooManyIndexes | ValidateError::Index { .. } => "InvalidIndexes",
            ValidateError::ZoneCount { .. }
            | ValidateError::ReplicaCount(_)
            | ValidateError::ZoneName { .. }
            | ValidateError::DuplicateZone { .. } => "InvalidPlacement",
            ValidateError::NameTooLong { .. } | ValidateError::TableName(_) => "InvalidName",
            ValidateError::ZonesChanged { .. } => "UnsupportedChange",
        }
    }
}

/// Checks `table` and completes it with defaults from `config`; `existing`
/// pins what cannot change without moving data.
pub fn validate_table(
    table: &Table,
    existing: &Existing,
    config: &OperatorConfig,
) -> Result<ValidatedTable, ValidateError> {
    let spec = &table.spec;
    let (Some(resource_name), Some(namespace)) = (
        table.metadata.name.clone(),
        table.metadata.namespace.clone(),
    ) else {
        return Err(ValidateError::MissingMetadata);
    };
    let table_name = table.dynamodb_name();
    if !(3..=255).contains(&table_name.len())
        || !table_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(ValidateError::TableName(table_name));
    }

    // Keys and attribute definitions.
    let mut defined = std::collections::BTreeSet::new();
    for a in &spec.attribute_definitions {
        if !defined.insert(a.attribute_name.as_str()) {
            return Err(ValidateError::DuplicateAttribute {
                attribute: a.attribute_name.clone(),
            });
        }
    }
    let partition_key = check_key_schema(&spec.key_schema, &defined)?;
    let lsis = spec.local_secondary_indexes.as_deref().unwrap_or_default();
    let gsis = spec.global_secondary_indexes.as_deref().unwrap_or_default();
    if lsis.len() > MAX_LSIS || gsis.len() > MAX_GSIS {
        return Err(ValidateError::TooManyIndexes);
    }
    let mut index_names = std::collections::BTreeSet::new();
    for lsi in lsis {
        let index_key = check_key_schema(&lsi.key_schema, &defined)?;
        if index_key != partition_key || lsi.key_schema.len() != 2 {
            return Err(ValidateError::Index {
                index: lsi.index_name.clone(),
                reason: "a local secondary index has the table's partition key and a sort key",
            });
        }
        if !index_names.insert(lsi.index_name.as_str()) {
            return Err(ValidateError::Index {
                index: lsi.index_name.clone(),
                reason: "index names must be unique",
            });
        }
    }
    for gsi in gsis {
        check_key_schema(&gsi.key_schema, &defined)?;
        if !index_names.insert(gsi.index_name.as_str()) {
            return Err(ValidateError::Index {
                index: gsi.index_name.clone(),
                reason: "index names must be unique",
            });
        }
    }

    // Billing and throughput.
    let billing = spec.billing_mode.unwrap_or(BillingMode::Provisioned);
    let (rcu, wcu) = match (billing, &spec.provisioned_throughput) {
        (BillingMode::Provisioned, None) => return Err(ValidateError::MissingThroughput),
        (BillingMode::PayPerRequest, Some(_)) => return Err(ValidateError::UnexpectedThroughput),
        (BillingMode::Provisioned, Some(t)) => {
            let range = 1..=crate::crd::table::MAX_CAPACITY_UNITS;
            if !range.contains(&t.read_capacity_units) || !range.contains(&t.write_capacity_units) {
                return Err(ValidateError::ThroughputRange);
            }
            (t.read_capacity_units as u64, t.write_capacity_units as u64)
        }
        (BillingMode::PayPerRequest, None) => (0, 0),
    };
    let needed_partitions = partita_topology::initial_partition_count(rcu, wcu);
    let partitions = existing.partitions.unwrap_or(needed_partitions);

    // Placement.
    let placement = spec.placement.clone().unwrap_or_default();
    let replicas = placement.replicas_per_partition;
    if let Some(r) = replicas {
        if !matches!(r, 1 | 3 | 5) {
            return Err(ValidateError::ReplicaCount(r));
        }
    }
    let zone_names: Vec<String> = match placement.zones.filter(|z| !z.is_empty()) {
        Some(z) => z,
        None => {
            let wanted = replicas.unwrap_or(3) as usize;
            if config.default_zones.len() < wanted {
                return Err(ValidateError::ZoneCount {
                    zones: config.default_zones.len(),
                    replicas: wanted,
                });
            }
            config.default_zones[..wanted].to_vec()
        }
    };
    // More replicas than zones only where the Table asks for it (an
    // explicit replicasPerPartition above the zones it lists).
    let wanted = replicas.map(|r| r as usize).unwrap_or(zone_names.len());
    if zone_names.len() > wanted || !matches!(wanted, 1 | 3 | 5) {
        return Err(ValidateError::ZoneCount {
            zones: zone_names.len(),
            replicas: wanted,
        });
    }
    let mut slugs: Vec<String> = Vec::with_capacity(zone_names.len());
    for name in &zone_names {
        let slug = zone_slug(name).ok_or_else(|| ValidateError::ZoneName { zone: name.clone() })?;
        if slugs.contains(&slug) {
            return Err(ValidateError::DuplicateZone { zone: name.clone() });
        }
        slugs.push(slug);
    }
    let mut zones: Vec<Zone> = Vec::with_capacity(wanted);
    for i in 0..wanted {
        let (name, slug) = (&zone_names[i % zone_names.len()], &slugs[i % slugs.len()]);
        let nth = i / zone_names.len() + 1;
        let (slug, replica) = if nth == 1 {
            (slug.clone(), name.clone())
        } else {
            (format!("{slug}-{nth}"), format!("{name}/{nth}"))
        };
        if zones.iter().any(|z| z.slug == slug) {
            return Err(ValidateError::DuplicateZone { zone: name.clone() });
        }
        if resource_name.len() + 1 + slug.len() > MAX_STATEFULSET_NAME {
            return Err(ValidateError::NameTooLong {
                name: resource_name.clone(),
            });
        }
        zones.push(Zone {
            name: name.clone(),
            slug,
            replica,
        });
    }
    let zone_names: Vec<String> = zones.iter().map(|z| z.replica.clone()).collect();
    if let Some(before) = &existing.zones {
        let mut before_sorted = before.clone();
        before_sorted.sort();
        let mut now_sorted = zone_names.clone();
        now_sorted.sort();
        if before_sorted != now_sorted {
            return Err(ValidateError::ZonesChanged {
                from: before.clone(),
                to: zone_names,
            });
        }
    }
    let storage = placement.storage.unwrap_or_default();
    let ops = spec.cluster_operation.clone().unwrap_or_default();

    Ok(ValidatedTable {
        resource_name,
        namespace,
        generation: table.metadata.generation.unwrap_or(0),
        create_table: build_create_table(table, &table_name),
        created_at_ms: table
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(|t| u64::try_from(t.0.as_millisecond()).ok()),
        table_name,
        partition_key,
        partitions,
        needed_partitions,
        zones,
        resources: placement.resources,
        storage_size: storage
            .size
            .map(|q| q.0)
            .unwrap_or_else(|| config.default_storage_size.clone()),
        storage_class: storage.storage_class_name,
        volume_retention: storage.volume_retention_policy.unwrap_or_default(),
        node_selector: placement.node_selector.unwrap_or_default(),
        tolerations: placement.tolerations.unwrap_or_default(),
        stopped: ops.stopped.unwrap_or(false),
        deletion_protection: spec.deletion_protection_enabled.unwrap_or(false),
        time_to_live: spec
            .time_to_live
            .as_ref()
            .map(|t| partita_topology::TimeToLive {
                attribute_name: t.attribute_name.clone(),
                enabled: t.enabled,
            }),
        epoch: existing.epoch.unwrap_or(1),
    })
}

/// Checks one key schema; returns its partition key attribute.
fn check_key_schema(
    keys: &[crate::crd::table::KeySchemaElement],
    defined: &std::collections::BTreeSet<&str>,
) -> Result<String, ValidateError> {
    let shape_ok = match keys {
        [h] => h.key_type == KeyType::Hash,
        [h, r] => {
            h.key_type == KeyType::Hash
                && r.key_type == KeyType::Range
                && h.attribute_name != r.attribute_name
        }
        _ => false,
    };
    if !shape_ok {
        return Err(ValidateError::KeySchema);
    }
    for k in keys {
        if !defined.contains(k.attribute_name.as_str()) {
            return Err(ValidateError::UndefinedAttribute {
                attribute: k.attribute_name.clone(),
            });
        }
    }
    Ok(keys[0].attribute_name.clone())
}

/// Returns the DNS-label form of a zone name, or None if it has characters
/// that cannot appear in object names.
pub fn zone_slug(zone: &str) -> Option<String> {
    let slug = zone.to_ascii_lowercase();
    let ok = !slug.is_empty()
        && slug.len() <= 40
        && slug.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    ok.then_some(slug)
}

/// Renders the DynamoDB CreateTable request body (PascalCase JSON) from the
/// ACK-style spec: the same field names with a capital first letter.
fn build_create_table(table: &Table, table_name: &str) -> Value {
    let spec = serde_json::to_value(&table.spec).unwrap_or(Value::Null);
    let mut out = Map::new();
    out.insert("TableName".into(), json!(table_name));
    for key in [
        "attributeDefinitions",
        "keySchema",
        "billingMode",
        "provisionedThroughput",
        "onDemandThroughput",
        "globalSecondaryIndexes",
        "localSecondaryIndexes",
        "streamSpecification",
        "tableClass",
        "deletionProtectionEnabled",
        "tags",
    ] {
        if let Some(v) = spec.get(key) {
            out.insert(pascal(key), pascal_keys(v));
        }
    }
    Value::Object(out)
}

fn pascal(key: &str) -> String {
    let mut chars = key.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

fn pascal_keys(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (pascal(k), pascal_keys(v))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(pascal_keys).collect()),
        other => other.clone(),
    }
}
