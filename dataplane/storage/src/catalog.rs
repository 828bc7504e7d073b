//! The catalog: durable table definitions, partition space names and the
//! persisted per-partition statistics.
//!
//! On-disk records (each value starts with a format version byte):
//! - space `catalog`, key = table name (UTF-8),
//!   value = `0x01 ++ serde_json(TableDefinition)`.
//! - space `meta`, key = `b"s" ++ partition space name`,
//!   value = `0x01 ++ item count (u64 BE) ++ item bytes (u64 BE)`; written in
//!   the same batch as the item changes it counts.
//! - one space per table partition, named `t.<table_id>.<partition index>`
//!   (the table id, not its name, so a re-created table never sees old data).

use partita_model::TableDefinition;

use crate::engine::MAX_SPACE_NAME;
use crate::StorageError;

/// Name of the space holding table definitions.
pub const CATALOG_SPACE: &str = "catalog";
/// Name of the space holding partition statistics.
pub const META_SPACE: &str = "meta";

const CATALOG_FORMAT_V1: u8 = 1;
const STATS_FORMAT_V1: u8 = 1;
const PARTITION_SPACE_PREFIX: &str = "t.";

fn corrupt(what: &'static str, detail: impl ToString) -> StorageError {
    StorageError::Corrupt {
        what,
        detail: detail.to_string(),
    }
}

/// Encodes a table definition as a catalog record.
pub fn encode_definition(def: &TableDefinition) -> Result<Vec<u8>, StorageError> {
    let mut out = vec![CATALOG_FORMAT_V1];
    serde_json::to_writer(&mut out, def).map_err(|e| corrupt("table definition", e))?;
    Ok(out)
}

/// Decodes a catalog record.
pub fn decode_definition(bytes: &[u8]) -> Result<TableDefinition, StorageError> {
    match bytes.split_first() {
        Some((&CATALOG_FORMAT_V1, json)) => {
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

/// Returns true when `name` is a partition space name (of any table).
pub fn is_partition_space(name: &str) -> bool {
    name.starts_with(PARTITION_SPACE_PREFIX)
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
        }
    }

    #[test]
    fn definitions_round_trip_with_version_byte() {
        let def = definition("t");
        let bytes = encode_definition(&def).unwrap();
        assert_eq!(bytes[0], CATALOG_FORMAT_V1);
        assert_eq!(decode_definition(&bytes).unwrap(), def);
        assert!(matches!(
            decode_definition(&[7, b'{']),
            Err(StorageError::Corrupt { .. })
        ));
        assert!(matches!(
            decode_definition(&[1, b'{']),
            Err(StorageError::Corrupt { .. })
        ));
        assert!(decode_definition(&[]).is_err());
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
        assert!(is_partition_space("t.abc.2"));
        assert!(!is_partition_space(CATALOG_SPACE));
        assert!(partition_space_name("", 0).is_err());
        assert!(partition_space_name(&"x".repeat(300), 0).is_err());
    }
}
