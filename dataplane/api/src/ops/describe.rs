//! Rendering of a [`TableDefinition`] as DynamoDB's `TableDescription`, and
//! the small helpers every control-plane operation shares: clocks and
//! timestamps, ARNs, table-name resolution and the not-found errors.
//!
//! Pure: callers pass the definition, the statistics and the status; nothing
//! here touches the store.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use partita_model::schema::{IndexState, IndexStatus};
use partita_model::{BillingMode, IndexDefinition, KeySchema, Projection, TableDefinition};
use serde_json::{json, Map as JsonMap, Value};

use crate::error::{ApiError, ErrorKind};
use crate::request::{check_name, Request, Violations};
use crate::Api;

/// The lifecycle states a description can show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TableStatus {
    Creating,
    Updating,
    Deleting,
    Active,
}

impl TableStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TableStatus::Creating => "CREATING",
            TableStatus::Updating => "UPDATING",
            TableStatus::Deleting => "DELETING",
            TableStatus::Active => "ACTIVE",
        }
    }
}

/// Where the ARNs of a description point: region and account.
#[derive(Clone, Debug)]
pub(crate) struct ArnContext {
    pub region: String,
    pub account_id: String,
}

impl ArnContext {
    pub(crate) fn of(api: &Api) -> ArnContext {
        ArnContext {
            region: api.config.region.clone(),
            account_id: api.config.account_id.clone(),
        }
    }

    pub(crate) fn table_arn(&self, table: &str) -> String {
        format!(
            "arn:aws:dynamodb:{}:{}:table/{}",
            self.region, self.account_id, table
        )
    }
}

/// Returns the current time in milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Renders milliseconds since the epoch as DynamoDB's timestamp: epoch
/// seconds as a JSON number with a fraction.
pub(crate) fn epoch_seconds(ms: u64) -> Value {
    Value::from(ms as f64 / 1000.0)
}

/// Converts days since 1970-01-01 into a (year, month, day) civil date.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Renders milliseconds since the epoch as an ISO-8601 UTC timestamp with
/// milliseconds and no zone suffix (`2026-11-22T04:30:00.123`), the shape of
/// a stream label.
pub(crate) fn iso_timestamp(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let millis = ms % 1000;
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Returns a fresh random UUID (version 4 layout) for a table id.
pub(crate) fn new_table_id() -> String {
    let mut words = [0u64; 2];
    for (i, word) in words.iter_mut().enumerate() {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(now_ms());
        h.write_usize(i);
        *word = h.finish();
    }
    let [hi, lo] = words;
    table_id_of(hi, lo)
}

/// Returns the table id (UUID, version 4 layout) made of 128 bits.
pub fn table_id_of(hi: u64, lo: u64) -> String {
    let hi = (hi & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
    let lo = (lo & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

/// The ResourceNotFoundException DynamoDB returns when a control-plane
/// operation names a missing table.
pub(crate) fn table_not_found(name: &str) -> ApiError {
    ApiError::new(
        ErrorKind::ResourceNotFound,
        format!("Requested resource not found: Table: {name} not found"),
    )
}

/// Maps a storage error of a control-plane operation on `name`, turning
/// TableNotFound into DynamoDB's control-plane message.
pub(crate) fn storage_error(name: &str, err: partita_storage::StorageError) -> ApiError {
    match err {
        partita_storage::StorageError::TableNotFound(_) => table_not_found(name),
        other => other.into(),
    }
}

/// Reads and validates the `TableName` member of a control-plane request.
/// A table ARN of this endpoint's region and account is accepted and
/// resolved to the table's name.
pub(crate) fn table_name_member(api: &Api, req: &Request) -> Result<String, ApiError> {
    let Some(name) = req.str("TableName")? else {
        return Err(ApiError::validation(
            "The parameter 'TableName' is required but was not present in the request",
        ));
    };
    if let Some(resolved) = name
        .strip_prefix(&api.table_arn(""))
        .filter(|n| !n.is_empty() && !n.contains('/'))
    {
        return Ok(resolved.to_string());
    }
    let mut v = Violations::new();
    check_name(&mut v, Some(name), "tableName", 3, 255);
    v.into_result()?;
    Ok(name.to_string())
}

/// Renders a key schema as a list of KeySchemaElements.
pub(crate) fn key_schema_json(schema: &KeySchema) -> Value {
    let mut out = vec![json!({"AttributeName": schema.hash.name, "KeyType": "HASH"})];
    if let Some(range) = &schema.range {
        out.push(json!({"AttributeName": range.name, "KeyType": "RANGE"}));
    }
    Value::Array(out)
}

/// Renders an index projection.
pub(crate) fn projection_json(projection: &Projection) -> Value {
    match projection {
        Projection::All => json!({"ProjectionType": "ALL"}),
        Projection::KeysOnly => json!({"ProjectionType": "KEYS_ONLY"}),
        Projection::Include(attrs) => {
            json!({"ProjectionType": "INCLUDE", "NonKeyAttributes": attrs})
        }
    }
}

/// Renders provisioned throughput; on-demand tables and indexes show 0/0.
fn throughput_json(read: i64, write: i64) -> Value {
    json!({
        "NumberOfDecreasesToday": 0,
        "ReadCapacityUnits": read,
        "WriteCapacityUnits": write,
    })
}

/// The statistics shown in a description: item count and size in bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TableStats {
    pub items: u64,
    pub bytes: u64,
    /// Per secondary index: its statistics and state.
    pub indexes: Vec<IndexStats>,
}

/// The statistics and state of one secondary index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IndexStats {
    pub name: String,
    pub items: u64,
    pub bytes: u64,
    pub state: IndexState,
}

/// Returns the ARN of the table's latest stream, if it ever had one.
pub(crate) fn latest_stream_arn(arns: &ArnContext, def: &TableDefinition) -> Option<String> {
    def.stream_label
        .as_ref()
        .map(|label| format!("{}/stream/{label}", arns.table_arn(&def.name)))
}

fn index_json(
    arns: &ArnContext,
    table: &TableDefinition,
    index: &IndexDefinition,
    global: bool,
    status: TableStatus,
    stats: &TableStats,
) -> Value {
    let own = stats.indexes.iter().find(|i| i.name == index.name);
    let mut out = JsonMap::new();
    out.insert("IndexName".into(), Value::from(index.name.clone()));
    out.insert("KeySchema".into(), key_schema_json(&index.key_schema));
    out.insert("Projection".into(), projection_json(&index.projection));
    if global {
        let index_status = match (status, own.map(|i| i.state.status)) {
            (TableStatus::Creating, _) => "CREATING",
            (TableStatus::Deleting, _) => "DELETING",
            (_, Some(IndexStatus::Creating)) => "CREATING",
            (_, Some(IndexStatus::Deleting)) => "DELETING",
            _ => "ACTIVE",
        };
        out.insert("IndexStatus".into(), Value::from(index_status));
        if own.map(|i| i.state.backfilling).unwrap_or(false) {
            out.insert("Backfilling".into(), Value::Bool(true));
        }
        let (read, write) = match (table.billing_mode, index.throughput) {
            (BillingMode::Provisioned, Some(t)) => (t.read_capacity_units, t.write_capacity_units),
            _ => (0, 0),
        };
        out.insert("ProvisionedThroughput".into(), throughput_json(read, write));
    }
    out.insert(
        "IndexSizeBytes".into(),
        Value::from(own.map(|i| i.bytes).unwrap_or(0)),
    );
    out.insert(
        "ItemCount".into(),
        Value::from(own.map(|i| i.items).unwrap_or(0)),
    );
    out.insert(
        "IndexArn".into(),
        Value::from(format!(
            "{}/index/{}",
            arns.table_arn(&table.name),
            index.name
        )),
    );
    Value::Object(out)
}

/// Renders the TableDescription of `def` with the given status and
/// statistics.
pub(crate) fn table_description(
    arns: &ArnContext,
    def: &TableDefinition,
    status: TableStatus,
    stats: TableStats,
) -> Value {
    let mut out = JsonMap::new();
    let attrs: Vec<Value> = def
        .attribute_definitions
        .iter()
        .map(|a| json!({"AttributeName": a.name, "AttributeType": a.scalar_type.as_str()}))
        .collect();
    out.insert("AttributeDefinitions".into(), Value::Array(attrs));
    out.insert("TableName".into(), Value::from(def.name.clone()));
    out.insert("KeySchema".into(), key_schema_json(&def.key_schema));
    out.insert("TableStatus".into(), Value::from(status.as_str()));
    out.insert("CreationDateTime".into(), epoch_seconds(def.created_at_ms));
    let (read, write) = match (def.billing_mode, def.throughput) {
        (BillingMode::Provisioned, Some(t)) => (t.read_capacity_units, t.write_capacity_units),
        _ => (0, 0),
    };
    out.insert("ProvisionedThroughput".into(), throughput_json(read, write));
    out.insert("TableSizeBytes".into(), Value::from(stats.bytes));
    out.insert("ItemCount".into(), Value::from(stats.items));
    out.insert("TableArn".into(), Value::from(arns.table_arn(&def.name)));
    out.insert("TableId".into(), Value::from(def.table_id.clone()));
    let mut billing = JsonMap::new();
    billing.insert("BillingMode".into(), Value::from(def.billing_mode.as_str()));
    if let (BillingMode::PayPerRequest, Some(since)) =
        (def.billing_mode, def.pay_per_request_since_ms)
    {
        billing.insert(
            "LastUpdateToPayPerRequestDateTime".into(),
            epoch_seconds(since),
        );
    }
    out.insert("BillingModeSummary".into(), Value::Object(billing));
    if let Some(od) = crate::capacity::render_on_demand(def) {
        out.insert("OnDemandThroughput".into(), od);
    }
    if !def.local_indexes.is_empty() {
        let lsis = def
            .local_indexes
            .iter()
            .map(|i| index_json(arns, def, i, false, status, &stats))
            .collect();
        out.insert("LocalSecondaryIndexes".into(), Value::Array(lsis));
    }
    if !def.global_indexes.is_empty() {
        let gsis = def
            .global_indexes
            .iter()
            .map(|i| index_json(arns, def, i, true, status, &stats))
            .collect();
        out.insert("GlobalSecondaryIndexes".into(), Value::Array(gsis));
    }
    if let Some(stream) = def.stream.as_ref().filter(|s| s.enabled) {
        let mut spec = JsonMap::new();
        spec.insert("StreamEnabled".into(), Value::Bool(true));
        if let Some(view) = &stream.view_type {
            spec.insert("StreamViewType".into(), Value::from(view.clone()));
        }
        out.insert("StreamSpecification".into(), Value::Object(spec));
    }
    if let (Some(label), Some(arn)) = (&def.stream_label, latest_stream_arn(arns, def)) {
        out.insert("LatestStreamLabel".into(), Value::from(label.clone()));
        out.insert("LatestStreamArn".into(), Value::from(arn));
    }
    if let Some(class) = &def.table_class {
        out.insert("TableClassSummary".into(), json!({"TableClass": class}));
    }
    out.insert(
        "DeletionProtectionEnabled".into(),
        Value::Bool(def.deletion_protection),
    );
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use partita_model::{
        AttributeDefinition, KeyAttribute, ProvisionedThroughput, ScalarType, StreamSpecification,
    };

    fn arns() -> ArnContext {
        ArnContext {
            region: "us-west-2".into(),
            account_id: "123456789012".into(),
        }
    }

    fn key(name: &str, t: ScalarType) -> KeyAttribute {
        KeyAttribute {
            name: name.into(),
            scalar_type: t,
        }
    }

    fn definition() -> TableDefinition {
        TableDefinition {
            revision: 0,
            name: "Orders".into(),
            table_id: "id-1".into(),
            key_schema: KeySchema {
                hash: key("pk", ScalarType::S),
                range: Some(key("sk", ScalarType::N)),
            },
            attribute_definitions: vec![
                AttributeDefinition {
                    name: "pk".into(),
                    scalar_type: ScalarType::S,
                },
                AttributeDefinition {
                    name: "sk".into(),
                    scalar_type: ScalarType::N,
                },
                AttributeDefinition {
                    name: "g".into(),
                    scalar_type: ScalarType::S,
                },
            ],
            billing_mode: BillingMode::Provisioned,
            throughput: Some(ProvisionedThroughput {
                read_capacity_units: 5,
                write_capacity_units: 7,
            }),
            created_at_ms: 1_700_000_000_123,
            pay_per_request_since_ms: None,
            stream: None,
            stream_label: None,
            ttl: None,
            tags: vec![],
            table_class: None,
            deletion_protection: false,
            local_indexes: vec![IndexDefinition {
                name: "lsi".into(),
                key_schema: KeySchema {
                    hash: key("pk", ScalarType::S),
                    range: Some(key("g", ScalarType::S)),
                },
                projection: Projection::KeysOnly,
                throughput: None,
            }],
            global_indexes: vec![IndexDefinition {
                name: "gsi".into(),
                key_schema: KeySchema {
                    hash: key("g", ScalarType::S),
                    range: None,
                },
                projection: Projection::Include(vec!["a".into(), "b".into()]),
                throughput: Some(ProvisionedThroughput {
                    read_capacity_units: 1,
                    write_capacity_units: 2,
                }),
            }],
            partitions: 1,
            on_demand: None,
        }
    }

    #[test]
    fn provisioned_table_renders_every_field() {
        let d = table_description(
            &arns(),
            &definition(),
            TableStatus::Active,
            TableStats {
                items: 3,
                bytes: 99,
                indexes: vec![],
            },
        );
        let arn = "arn:aws:dynamodb:us-west-2:123456789012:table/Orders";
        assert_eq!(d["TableName"], "Orders");
        assert_eq!(d["TableStatus"], "ACTIVE");
        assert_eq!(d["TableArn"], arn);
        assert_eq!(d["TableId"], "id-1");
        assert_eq!(d["ItemCount"], 3);
        assert_eq!(d["TableSizeBytes"], 99);
        assert_eq!(d["CreationDateTime"].as_f64(), Some(1_700_000_000.123));
        assert_eq!(
            d["KeySchema"],
            json!([{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
        );
        assert_eq!(
            d["AttributeDefinitions"][1],
            json!({"AttributeName": "sk", "AttributeType": "N"})
        );
        assert_eq!(
            d["ProvisionedThroughput"],
            json!({"NumberOfDecreasesToday": 0, "ReadCapacityUnits": 5, "WriteCapacityUnits": 7})
        );
        assert_eq!(
            d["BillingModeSummary"],
            json!({"BillingMode": "PROVISIONED"})
        );
        assert_eq!(d["DeletionProtectionEnabled"], false);
        assert!(d.get("StreamSpecification").is_none());
        assert!(d.get("LatestStreamArn").is_none());
        assert!(d.get("TableClassSummary").is_none());
        let lsi = &d["LocalSecondaryIndexes"][0];
        assert_eq!(lsi["IndexName"], "lsi");
        assert_eq!(lsi["Projection"], json!({"ProjectionType": "KEYS_ONLY"}));
        assert_eq!(lsi["IndexArn"], format!("{arn}/index/lsi"));
        assert!(lsi.get("IndexStatus").is_none());
        let gsi = &d["GlobalSecondaryIndexes"][0];
        assert_eq!(gsi["IndexStatus"], "ACTIVE");
        assert_eq!(
            gsi["Projection"],
            json!({"ProjectionType": "INCLUDE", "NonKeyAttributes": ["a", "b"]})
        );
        assert_eq!(gsi["ProvisionedThroughput"]["ReadCapacityUnits"], 1);
        assert_eq!(gsi["ProvisionedThroughput"]["WriteCapacityUnits"], 2);
        assert_eq!(
            gsi["KeySchema"],
            json!([{"AttributeName": "g", "KeyType": "HASH"}])
        );
    }

    #[test]
    fn on_demand_table_with_stream_renders_zero_throughput_and_stream() {
        let mut def = definition();
        def.billing_mode = BillingMode::PayPerRequest;
        def.throughput = None;
        def.pay_per_request_since_ms = Some(2_000);
        def.stream = Some(StreamSpecification {
            enabled: true,
            view_type: Some("NEW_IMAGE".into()),
        });
        def.stream_label = Some("2026-11-22T04:30:00.123".into());
        def.table_class = Some("STANDARD_INFREQUENT_ACCESS".into());
        def.deletion_protection = true;
        let d = table_description(&arns(), &def, TableStatus::Deleting, TableStats::default());
        assert_eq!(d["TableStatus"], "DELETING");
        assert_eq!(d["ProvisionedThroughput"]["ReadCapacityUnits"], 0);
        assert_eq!(d["ProvisionedThroughput"]["WriteCapacityUnits"], 0);
        assert_eq!(d["BillingModeSummary"]["BillingMode"], "PAY_PER_REQUEST");
        assert_eq!(
            d["BillingModeSummary"]["LastUpdateToPayPerRequestDateTime"].as_f64(),
            Some(2.0)
        );
        assert_eq!(
            d["StreamSpecification"],
            json!({"StreamEnabled": true, "StreamViewType": "NEW_IMAGE"})
        );
        assert_eq!(d["LatestStreamLabel"], "2026-11-22T04:30:00.123");
        assert_eq!(
            d["LatestStreamArn"],
            "arn:aws:dynamodb:us-west-2:123456789012:table/Orders/stream/2026-11-22T04:30:00.123"
        );
        assert_eq!(
            d["TableClassSummary"]["TableClass"],
            "STANDARD_INFREQUENT_ACCESS"
        );
        assert_eq!(d["DeletionProtectionEnabled"], true);
        assert_eq!(d["GlobalSecondaryIndexes"][0]["IndexStatus"], "DELETING");
        assert_eq!(
            d["GlobalSecondaryIndexes"][0]["ProvisionedThroughput"]["ReadCapacityUnits"],
            0
        );
    }

    #[test]
    fn disabled_stream_keeps_its_label_but_not_its_specification() {
        let mut def = definition();
        def.stream = Some(StreamSpecification {
            enabled: false,
            view_type: Some("KEYS_ONLY".into()),
        });
        def.stream_label = Some("2026-01-01T00:00:00.000".into());
        let d = table_description(&arns(), &def, TableStatus::Active, TableStats::default());
        assert!(d.get("StreamSpecification").is_none());
        assert_eq!(d["LatestStreamLabel"], "2026-01-01T00:00:00.000");
    }

    #[test]
    fn timestamps_render_in_utc() {
        assert_eq!(iso_timestamp(0), "1970-01-01T00:00:00.000");
        assert_eq!(iso_timestamp(951_782_400_000), "2000-02-29T00:00:00.000");
        assert_eq!(iso_timestamp(1_795_321_800_123), "2026-11-22T04:30:00.123");
        assert_eq!(iso_timestamp(1_704_067_199_999), "2023-12-31T23:59:59.999");
        assert_eq!(epoch_seconds(1_500), json!(1.5));
    }

    #[test]
    fn table_ids_look_like_uuids_and_differ() {
        let a = new_table_id();
        let b = new_table_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert_eq!(a.matches('-').count(), 4);
    }
}
