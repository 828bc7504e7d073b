//! The catalog: durable table definitions, partition space names and the
//! persisted per-partition statistics.
//!
//! On-disk records (each value starts with a format version byte):
//! - space `catalog`, key = table name (UTF-8), value =
//!   `0x02 ++ serde_json(CatalogRecord)` (the definition plus the ids, partition
//!   counts and states of the global indexes). Version `0x01`, the bare
//!   `serde_json(TableDefinition)`, is still read.
//! - space `meta`, key = `b"s" ++ space name`,
//!   value = `0x01 ++ item count (u64 BE) ++ item bytes (u64 BE)`; written in
//!   the same batch as the item (or index entry) changes it counts.
//! - spaces named from the table id, never from names, so a re-created table
//!   or index never sees old data:
//!   - `t.<table_id>.<p>`: the items of table partition `p`;
//!   - `l.<table_id>.<p>.<i>`: entries of local index `i` (definition order)
//!     for partition `p`;
//!   - `c.<table_id>.<p>`: item collection sizes of partition `p` (tables with
//!     local indexes), key = the partition key prefix,
//!     value = `0x01 ++ size (u64 BE)`;
//!   - `o.<table_id>.<p>`: the global index outbox of partition `p`
//!     (see `outbox`);
//!   - `g.<table_id>.<id>.<q>`: entries of partition `q` of the global index
//!     with id `id` (ids are never reused within a table);
//!   - `s.<table_id>.<p>.<first>`: a segment of the change log of partition
//!     `p`, holding the records numbered from `first` (see `stream`); `meta`
//!     keeps the log's next number under `b"q" ++ "s.<table_id>.<p>"`.
//! - The catalog record's `streams` lists the table's streams and their
//!   shards (added without a version bump: older records read as none).

use partita_model::schema::{IndexState, IndexStatus};
use partita_model::{ProvisionedThroughput, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::engine::MAX_SPACE_NAME;
use crate::StorageError;

/// Name of the space holding table definitions.
pub const CATALOG_SPACE: &str = "catalog";
/// Name of the space holding partition statistics.
pub const META_SPACE: &str = "meta";

const CATALOG_FORMAT_V1: u8 = 1;
const CATALOG_FORMAT_V2: u8 = 2;
const STATS_FORMAT_V1: u8 = 1;
const COLLECTION_FORMAT_V1: u8 = 1;
const PARTITION_SPACE_PREFIX: &str = "t.";
const DATA_SPACE_PREFIXES: [&str; 7] = ["t.", "l.", "c.", "o.", "g.", "s.", "v."];

/// The storage's record of one global index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalIndexRecord {
    pub name: String,
    /// Unique within the table, never reused: names the index's spaces.
    pub id: u64,
    pub partitions: u32,
    pub state: IndexState,
}

/// A table's catalog record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogRecord {
    pub definition: TableDefinition,
    /// One per entry of `definition.global_indexes` (matched by name), plus
    /// indexes being deleted.
    #[serde(default)]
    pub global_indexes: Vec<GlobalIndexRecord>,
    /// The id the next global index gets.
    #[serde(default)]
    pub next_index_id: u64,
    /// The table's streams (enabled, and closed within the retention).
    #[serde(default)]
    pub streams: Vec<crate::stream::StreamState>,
    /// Set while the table is replicated to other regions (global tables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<crate::replica::ReplicationState>,
}

/// Returns the partition count of a global index: like a table's, one per
/// 3000 RCU or 1000 WCU, at least one; one when on demand.
pub fn index_partitions(throughput: Option<&ProvisionedThroughput>) -> u32 {
    let Some(t) = throughput else {
        return 1;
    };
    let reads = (t.read_capacity_units.max(0) as u64).div_ceil(3000);
    let writes = (t.write_capacity_units.max(0) as u64).div_ceil(1000);
    u32::try_from(reads.max(writes).max(1)).unwrap_or(u32::MAX)
}

impl CatalogRecord {
    /// The record of a new table: its global indexes are active (there is
    /// nothing to backfill) with ids 0, 1, ...
    pub fn new(definition: TableDefinition) -> CatalogRecord {
        let global_indexes: Vec<GlobalIndexRecord> = definition
            .global_indexes
            .iter()
            .zip(0u64..)
            .map(|(def, id)| GlobalIndexRecord {
                name: def.name.clone(),
                id,
                partitions: index_partitions(def.throughput.as_ref()),
                state: IndexState {
                    status: IndexStatus::Active,
                    backfilling: false,
                },
            })
            .collect();
        let next_index_id = global_indexes.len() as u64;
        CatalogRecord {
            definition,
            global_indexes,
            next_index_id,
            streams: Vec::new(),
            replication: None,
        }
    }
}

fn corrupt(what: &'static str, detail: impl ToString) -> StorageError {
    StorageError::Corrupt {
        what,
        detail: detail.to_string(),
    }
}

/// Encodes a catalog record.
pub fn encode_record(record: &CatalogRecord) -> Result<Vec<u8>, StorageError> {
    let mut out = vec![CATALOG_FORMAT_V2];
    serde_json::to_writer(&mut out, record).map_err(|e| corrupt("table definition", e))?;
    Ok(out)
}

/// Decodes a catalog record of any version. A version 1 record predates
/// index maintenance: its global indexes come back as creating, so they are
/// backfilled.
pub fn decode_record(bytes: &[u8]) -> Result<CatalogRecord, StorageError> {
    match bytes.split_first() {
        Some((&CATALOG_FORMAT_V1, json)) => {
            let def: TableDefinition =
                serde_json::from_slice(json).map_err(|e| corrupt("table definition", e))?;
            let mut record = CatalogRecord::new(def);
            for index in &mut record.global_indexes {
                index.state = IndexState {
                    status: IndexStatus::Creating,
                    backfilling: true,
                };
            }
            Ok(record)
        }
        Some((&CATALOG_FORMAT_V2, json)) => {
            serde_json::from_slice(json).map_err(|e| corrupt("table definition", e))
        }
        Some((v, _)) => Err(corrupt(
            "table definition",
            format!("unknown format version {v}"),
        )),
        None => Err(corrupt("table definition", "empty record")),
    }
}

/// Returns the name of the space of partition `index` of table `table_id`.
pub fn partition_space_name(table_id: &str, index: u32) -> Result<String, StorageError> {
    let name = format!("{PARTITION_SPACE_PREFIX}{table_id}.{index}");
    if table_id.is_empty() || name.len() > MAX_SPACE_NAME {
        return Err(StorageError::InvalidTableDefinition(format!(
            "table id must be 1 to {} bytes",
            MAX_SPACE_NAME - 16
        )));
    }
    Ok(name)
}

fn checked_space_name(name: String) -> Result<String, StorageError> {
    if name.len() > MAX_SPACE_NAME {
        return Err(StorageError::InvalidTableDefinition(format!(
            "table id too long for the space name {name}"
        )));
    }
    Ok(name)
}

/// Returns the name of the space of local index `index` in partition `partition`.
pub fn local_space_name(
    table_id: &str,
    partition: u32,
    index: usize,
) -> Result<String, StorageError> {
    checked_space_name(format!("l.{table_id}.{partition}.{index}"))
}

/// Returns the name of the item collection space of partition `partition`.
pub fn collection_space_name(table_id: &str, partition: u32) -> Result<String, StorageError> {
    checked_space_name(format!("c.{table_id}.{partition}"))
}

/// Returns the name of the outbox space of partition `partition`.
/// Returns the name of the change log of partition `partition` (its
/// segments are named `<log>.<first>`).
pub fn stream_log_name(table_id: &str, partition: u32) -> Result<String, StorageError> {
    // Leave room for the segment suffix.
    let name = format!("s.{table_id}.{partition}");
    checked_space_name(format!("{name}.{}", u64::MAX))?;
    Ok(name)
}

pub fn outbox_space_name(table_id: &str, partition: u32) -> Result<String, StorageError> {
    checked_space_name(format!("o.{table_id}.{partition}"))
}

/// Returns the name of the space of partition `partition` of global index `id`.
pub fn global_space_name(table_id: &str, id: u64, partition: u32) -> Result<String, StorageError> {
    checked_space_name(format!("g.{table_id}.{id}.{partition}"))
}

/// Returns true when `name` is a space of table or index data (of any table).
pub fn is_data_space(name: &str) -> bool {
    DATA_SPACE_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Encodes an item collection size record.
pub fn encode_collection_size(size: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    out.push(COLLECTION_FORMAT_V1);
    out.extend_from_slice(&size.to_be_bytes());
    out
}

/// Decodes an item collection size record.
pub fn decode_collection_size(bytes: &[u8]) -> Result<u64, StorageError> {
    match bytes.split_first() {
        Some((&COLLECTION_FORMAT_V1, rest)) => {
            let raw: [u8; 8] = rest
                .try_into()
                .map_err(|_| corrupt("item collection size", format!("{} bytes", bytes.len())))?;
            Ok(u64::from_be_bytes(raw))
        }
        _ => Err(corrupt("item collection size", "unknown format")),
    }
}

/// Returns the `meta` key of a partition's statistics record.
pub fn stats_key(space_name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + space_name.len());
    key.push(b's');
    key.extend_from_slice(space_name.as_bytes());
    key
}

/// Returns the partition space name of a statistics key.
pub fn space_of_stats_key(key: &[u8]) -> Option<&str> {
    match key.split_first() {
        Some((b's', rest)) => std::str::from_utf8(rest).ok(),
        _ => None,
    }
}

/// Item count and total item bytes of one partition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartitionStats {
    pub items: u64,
    pub bytes: u64,
}

/// Encodes a statistics record.
pub fn encode_stats(stats: PartitionStats) -> Vec<u8> {
    let mut out = Vec::with_capacity(17);
    out.push(STATS_FORMAT_V1);
    out.extend_from_slice(&stats.items.to_be_bytes());
    out.extend_from_slice(&stats.bytes.to_be_bytes());
    out
}

/// Decodes a statistics record.
pub fn decode_stats(bytes: &[u8]) -> Result<PartitionStats, StorageError> {
    let bad = || {
        corrupt(
            "partition statistics",
            format!("{} byte record", bytes.len()),
        )
    };
    match bytes.split_first() {
        Some((&STATS_FORMAT_V1, rest)) if rest.len() == 16 => {
            let items = rest
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(bad)?;
            let total = rest
                .get(8..)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(bad)?;
            Ok(PartitionStats {
                items: u64::from_be_bytes(items),
                bytes: u64::from_be_bytes(total),
            })
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use partita_model::{BillingMode, KeyAttribute, KeySchema, ScalarType};

    pub(crate) fn definition(name: &str) -> TableDefinition {
        TableDefinition {
            revision: 0,
            name: name.into(),
            table_id: format!("{name}-id"),
            key_schema: KeySchema {
                hash: KeyAttribute {
                    name: "pk".into(),
                    scalar_type: ScalarType::S,
                },
                range: None,
            },
            attribute_definitions: vec![],
            billing_mode: BillingMode::PayPerRequest,
            throughput: None,
            created_at_ms: 1,
            pay_per_request_since_ms: None,
            stream: None,
            stream_label: None,
            ttl: None,
            tags: vec![("k".into(), "v".into())],
            table_class: None,
            deletion_protection: false,
            local_indexes: vec![],
            global_indexes: vec![],
            partitions: 1,
            on_demand: None,
        }
    }

    #[test]
    fn definitions_round_trip_with_version_byte() {
        let def = definition("t");
        let record = CatalogRecord::new(def.clone());
        let bytes = encode_record(&record).unwrap();
        assert_eq!(bytes[0], CATALOG_FORMAT_V2);
        assert_eq!(decode_record(&bytes).unwrap(), record);
        // Version 1: the bare definition.
        let mut v1 = vec![CATALOG_FORMAT_V1];
        serde_json::to_writer(&mut v1, &def).unwrap();
        assert_eq!(decode_record(&v1).unwrap().definition, def);
        assert!(matches!(
            decode_record(&[7, b'{']),
            Err(StorageError::Corrupt { .. })
        ));
        assert!(matches!(
            decode_record(&[1, b'{']),
            Err(StorageError::Corrupt { .. })
        ));
        assert!(decode_record(&[]).is_err());
    }

    #[test]
    fn stats_round_trip() {
        let s = PartitionStats {
            items: 3,
            bytes: 1 << 40,
        };
        assert_eq!(decode_stats(&encode_stats(s)).unwrap(), s);
        assert!(decode_stats(&[1, 2]).is_err());
        let key = stats_key("t.x.0");
        assert_eq!(space_of_stats_key(&key), Some("t.x.0"));
    }

    #[test]
    fn partition_space_names() {
        assert_eq!(partition_space_name("abc", 2).unwrap(), "t.abc.2");
        assert_eq!(local_space_name("abc", 2, 1).unwrap(), "l.abc.2.1");
        assert_eq!(global_space_name("abc", 7, 0).unwrap(), "g.abc.7.0");
        assert_eq!(outbox_space_name("abc", 3).unwrap(), "o.abc.3");
        assert_eq!(collection_space_name("abc", 3).unwrap(), "c.abc.3");
        for name in ["t.abc.2", "l.a.1.0", "g.a.1.0", "o.a.0", "c.a.0"] {
            assert!(is_data_space(name), "{name}");
        }
        assert!(!is_data_space(CATALOG_SPACE));
        assert!(!is_data_space(META_SPACE));
        assert!(global_space_name(&"x".repeat(250), 0, 0).is_err());
        assert_eq!(
            decode_collection_size(&encode_collection_size(42)).unwrap(),
            42
        );
        assert!(decode_collection_size(&[1, 2]).is_err());
        assert!(partition_space_name("", 0).is_err());
        assert!(partition_space_name(&"x".repeat(300), 0).is_err());
    }
}
