//! Key schemas, attribute definitions and the throughput settings of a table.

use serde::{Deserialize, Serialize};

use crate::value::{AttributeValue, Item};

/// The scalar types a key attribute may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ScalarType {
    S,
    N,
    B,
}

impl ScalarType {
    /// Returns the DynamoDB type descriptor ("S", "N" or "B").
    pub fn as_str(self) -> &'static str {
        match self {
            ScalarType::S => "S",
            ScalarType::N => "N",
            ScalarType::B => "B",
        }
    }

    /// Parses a type descriptor; `None` for anything but "S", "N" or "B".
    pub fn parse(s: &str) -> Option<ScalarType> {
        match s {
            "S" => Some(ScalarType::S),
            "N" => Some(ScalarType::N),
            "B" => Some(ScalarType::B),
            _ => None,
        }
    }

    /// Returns true when `value` is of this scalar type.
    pub fn matches(self, value: &AttributeValue) -> bool {
        matches!(
            (self, value),
            (ScalarType::S, AttributeValue::S(_))
                | (ScalarType::N, AttributeValue::N(_))
                | (ScalarType::B, AttributeValue::B(_))
        )
    }
}

/// One attribute definition of a table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeDefinition {
    pub name: String,
    pub scalar_type: ScalarType,
}

/// A key attribute: its name and scalar type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAttribute {
    pub name: String,
    pub scalar_type: ScalarType,
}

/// The primary key schema of a table or index: a partition (HASH) key and an
/// optional sort (RANGE) key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySchema {
    pub hash: KeyAttribute,
    pub range: Option<KeyAttribute>,
}

impl KeySchema {
    /// Returns the key attributes in schema order (hash first).
    pub fn attributes(&self) -> impl Iterator<Item = &KeyAttribute> {
        std::iter::once(&self.hash).chain(self.range.as_ref())
    }

    /// Returns true when `name` is one of the key attributes.
    pub fn is_key_attribute(&self, name: &str) -> bool {
        self.attributes().any(|k| k.name == name)
    }

    /// Returns the key attributes of `item` as their own item, or `None` when
    /// the item lacks one of them.
    pub fn extract_key(&self, item: &Item) -> Option<Item> {
        let mut key = Item::new();
        for attr in self.attributes() {
            key.insert(attr.name.clone(), item.get(&attr.name)?.clone());
        }
        Some(key)
    }
}

/// How a table is billed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BillingMode {
    Provisioned,
    PayPerRequest,
}

impl BillingMode {
    /// Returns the DynamoDB name of this billing mode.
    pub fn as_str(self) -> &'static str {
        match self {
            BillingMode::Provisioned => "PROVISIONED",
            BillingMode::PayPerRequest => "PAY_PER_REQUEST",
        }
    }
}

/// Provisioned read and write capacity units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionedThroughput {
    pub read_capacity_units: i64,
    pub write_capacity_units: i64,
}

/// Which attributes an index projects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Projection {
    KeysOnly,
    Include(Vec<String>),
    All,
}

/// A secondary index definition (global or local).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDefinition {
    pub name: String,
    pub key_schema: KeySchema,
    pub projection: Projection,
    /// Provisioned throughput of a GSI; `None` for LSIs and on-demand tables.
    pub throughput: Option<ProvisionedThroughput>,
}

/// Stream settings of a table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamSpecification {
    pub enabled: bool,
    /// KEYS_ONLY, NEW_IMAGE, OLD_IMAGE or NEW_AND_OLD_IMAGES.
    pub view_type: Option<String>,
}

/// Time-to-live settings of a table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeToLive {
    pub enabled: bool,
    pub attribute_name: String,
}

/// Everything that defines a table: what CreateTable gave and later
/// UpdateTable/Tag/TTL calls changed. The storage layer persists it in its
/// catalog; the API layer renders it as a TableDescription.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDefinition {
    pub name: String,
    /// Unique id of this incarnation of the table (a re-created table gets a new one).
    pub table_id: String,
    pub key_schema: KeySchema,
    pub attribute_definitions: Vec<AttributeDefinition>,
    pub billing_mode: BillingMode,
    pub throughput: Option<ProvisionedThroughput>,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// When billing mode last changed to PAY_PER_REQUEST (ms since epoch).
    pub pay_per_request_since_ms: Option<u64>,
    pub stream: Option<StreamSpecification>,
    /// Label of the current stream (ISO-8601 timestamp) when streams were enabled.
    pub stream_label: Option<String>,
    pub ttl: Option<TimeToLive>,
    pub tags: Vec<(String, String)>,
    /// STANDARD or STANDARD_INFREQUENT_ACCESS.
    pub table_class: Option<String>,
    pub deletion_protection: bool,
    pub local_indexes: Vec<IndexDefinition>,
    pub global_indexes: Vec<IndexDefinition>,
    /// Number of partitions the table's hash space is split into.
    pub partitions: u32,
    /// Maximum request units of an on-demand table (OnDemandThroughput);
    /// `None` when no maximum was ever set.
    #[serde(default)]
    pub on_demand: Option<OnDemandThroughput>,
    /// Revision of the definition in cluster mode: each change the table's
    /// first partition accepts raises it by one (compare and set), and the
    /// other partitions take a definition only when it is newer. 0 in
    /// `serve`.
    #[serde(default)]
    pub revision: u64,
}

/// The optional maximum throughput of an on-demand table: request units per
/// second; `None` (or -1 on the wire) means no maximum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnDemandThroughput {
    pub max_read_request_units: Option<i64>,
    pub max_write_request_units: Option<i64>,
}

/// The lifecycle state of a secondary index (DynamoDB's IndexStatus).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IndexStatus {
    /// Being added: new writes maintain it while existing items are backfilled.
    Creating,
    /// Complete and maintained.
    Active,
    /// Being removed: no longer maintained or readable.
    Deleting,
}

impl IndexStatus {
    /// Returns the DynamoDB name of this status ("CREATING", "ACTIVE", "DELETING").
    pub fn as_str(self) -> &'static str {
        match self {
            IndexStatus::Creating => "CREATING",
            IndexStatus::Active => "ACTIVE",
            IndexStatus::Deleting => "DELETING",
        }
    }
}

/// The live state of a secondary index, as DescribeTable reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexState {
    pub status: IndexStatus,
    /// True while existing items are being added to a new global index.
    #[serde(default)]
    pub backfilling: bool,
}
