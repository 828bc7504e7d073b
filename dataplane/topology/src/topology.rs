//! The topology file: which replicas serve which hash range of which table.
//!
//! JSON, camelCase, one object:
//!
//! ```json
//! {
//!   "formatVersion": 1,
//!   "tables": [{
//!     "tableName": "Orders",
//!     "epoch": 1,
//!     "partitionKey": "pk",
//!     "createTable": { "TableName": "Orders", "KeySchema": [...], ... },
//!     "partitions": [{
//!       "id": 0,
//!       "hashRange": {"start": "0x0000000000000000", "end": "0xffffffffffffffff"},
//!       "replicas": [{"zone": "zone-a", "address": "orders-zone-a-0.orders-zone-a.default.svc:7000"}]
//!     }]
//!   }]
//! }
//! ```
//!
//! Invariants checked by [`TopologyFile::parse`] and [`TopologyFile::validate`]:
//! table names are unique; in each table, partition ids are `0..P` in order and
//! their hash ranges cover `0..=u64::MAX` exactly once, in order; every
//! partition has at least one replica and replica addresses are `host:port`.
//! The epoch of a table only grows: a node that receives a request for a range
//! it no longer owns answers with a typed "newer epoch" error and gateways
//! reload the file.

use serde::{Deserialize, Serialize};

use crate::partitions::HashRange;

/// The newest format version this crate writes; readers accept `1..=FORMAT_VERSION`.
pub const FORMAT_VERSION: u32 = 1;

/// Table name of the entry that holds the partition map of tables created
/// at run time through a gateway (`CreateTable`), e.g. by `partita
/// dev-cluster`: every such table is spread over this entry's partitions
/// and replicas, and its `createTable` is ignored. Nodes of this entry run
/// with `--table '*'`.
pub const DYNAMIC_TABLES: &str = "*";

/// Conventional file name of the topology inside its ConfigMap and mount.
pub const FILE_NAME: &str = "topology.json";

/// A table's partition-map version. Grows by one on every change of the map
/// (a split, a replica move).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Epoch(pub u64);

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopologyFile {
    pub format_version: u32,
    pub tables: Vec<TableTopology>,
}

/// One table's partition map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TableTopology {
    /// The DynamoDB table name clients use.
    pub table_name: String,
    pub epoch: Epoch,
    /// Name of the partition key attribute (what gateways hash to route).
    pub partition_key: String,
    /// The table's definition as a DynamoDB `CreateTable` request body
    /// (PascalCase JSON, as on the wire), so nodes create the table with the
    /// same validation as `partita serve`.
    pub create_table: serde_json::Value,
    /// When the table was created (ms since the epoch): its
    /// CreationDateTime, and the time of its stream if `createTable` enables
    /// one. Every node creates the table with it, so every replica holds
    /// the same definition; absent, the epoch (0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at_ms: Option<u64>,
    /// The table's time to live: UpdateTimeToLive's settings, which
    /// CreateTable does not take. Nodes create the table with it; absent,
    /// time to live is disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_live: Option<TimeToLive>,
    pub partitions: Vec<PartitionTopology>,
}

/// A table's time-to-live settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimeToLive {
    /// The attribute holding each item's expiry (seconds since the epoch).
    pub attribute_name: String,
    pub enabled: bool,
}

/// One partition: its hash range and its replicas (one Raft group).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartitionTopology {
    pub id: u32,
    pub hash_range: HashRange,
    pub replicas: Vec<ReplicaAddress>,
}

/// Where one replica of a partition listens for internal RPC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaAddress {
    /// The zone (failure domain) the replica runs in.
    pub zone: String,
    /// `host:port` of the replica's internal RPC listener.
    pub address: String,
    /// The Raft member id of the replica (absent: its position in the
    /// partition's list, the id founding members get). A replica that
    /// replaced another (a membership change) has its own id here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<u64>,
}

impl PartitionTopology {
    /// The member id of the replica at `position` (see
    /// [`ReplicaAddress::member_id`]).
    pub fn member_id(&self, position: usize) -> u64 {
        self.replicas
            .get(position)
            .and_then(|r| r.member_id)
            .unwrap_or(position as u64)
    }

    /// The replicas' member ids and addresses.
    pub fn members(&self) -> impl Iterator<Item = (u64, &ReplicaAddress)> {
        self.replicas
            .iter()
            .enumerate()
            .map(|(i, r)| (r.member_id.unwrap_or(i as u64), r))
    }
}

/// Why a topology file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TopologyError {
    #[error("topology file is not valid JSON for this format: {0}")]
    Syntax(String),
    #[error(
        "topology formatVersion {found} is not supported (this build reads 1..={FORMAT_VERSION})"
    )]
    UnsupportedVersion { found: u32 },
    #[error("table {table:?} appears more than once")]
    DuplicateTable { table: String },
    #[error("table {table:?} has no partitions")]
    NoPartitions { table: String },
    #[error(
        "table {table:?}: partition at position {position} has id {id}; ids must be 0..P in order"
    )]
    PartitionId {
        table: String,
        position: usize,
        id: u32,
    },
    #[error("table {table:?}: hash ranges do not cover 0x0..=0xffffffffffffffff exactly once (at partition {id})")]
    HashCoverage { table: String, id: u32 },
    #[error("table {table:?}: partition {id} has no replicas")]
    NoReplicas { table: String, id: u32 },
    #[error("table {table:?}: partition {id}: replica address {address:?} is not host:port")]
    Address {
        table: String,
        id: u32,
        address: String,
    },
    #[error("table name must not be empty")]
    EmptyTableName,
    #[error("table {table:?}: partition {id}: member id {member} appears more than once")]
    DuplicateMember { table: String, id: u32, member: u64 },
}

impl TopologyFile {
    /// A file at the current format version.
    pub fn new(tables: Vec<TableTopology>) -> Self {
        TopologyFile {
            format_version: FORMAT_VERSION,
            tables,
        }
    }

    /// Parses and validates a topology file.
    pub fn parse(bytes: &[u8]) -> Result<Self, TopologyError> {
        let file: TopologyFile =
            serde_json::from_slice(bytes).map_err(|e| TopologyError::Syntax(e.to_string()))?;
        file.validate()?;
        Ok(file)
    }

    /// Renders the file as pretty JSON with a trailing newline (stable output:
    /// the same topology always renders to the same bytes).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Checks the invariants listed in the module docs.
    pub fn validate(&self) -> Result<(), TopologyError> {
        if self.format_version == 0 || self.format_version > FORMAT_VERSION {
            return Err(TopologyError::UnsupportedVersion {
                found: self.format_version,
            });
        }
        let mut seen = std::collections::BTreeSet::new();
        for table in &self.tables {
            if !seen.insert(table.table_name.as_str()) {
                return Err(TopologyError::DuplicateTable {
                    table: table.table_name.clone(),
                });
            }
            table.validate()?;
        }
        Ok(())
    }

    /// Returns the table named `name`.
    pub fn table(&self, name: &str) -> Option<&TableTopology> {
        self.tables.iter().find(|t| t.table_name == name)
    }
}

impl TableTopology {
    /// Checks this table's invariants (see the module docs).
    pub fn validate(&self) -> Result<(), TopologyError> {
        let table = || self.table_name.clone();
        if self.table_name.is_empty() {
            return Err(TopologyError::EmptyTableName);
        }
        if self.partitions.is_empty() {
            return Err(TopologyError::NoPartitions { table: table() });
        }
        let mut next_start: Option<u64> = Some(0);
        for (position, p) in self.partitions.iter().enumerate() {
            if p.id as usize != position {
                return Err(TopologyError::PartitionId {
                    table: table(),
                    position,
                    id: p.id,
                });
            }
            if next_start != Some(p.hash_range.start) || p.hash_range.start > p.hash_range.end {
                return Err(TopologyError::HashCoverage {
                    table: table(),
                    id: p.id,
                });
            }
            next_start = p.hash_range.end.checked_add(1);
            if p.replicas.is_empty() {
                return Err(TopologyError::NoReplicas {
                    table: table(),
                    id: p.id,
                });
            }
            let mut members = std::collections::BTreeSet::new();
            for (member, _) in p.members() {
                if !members.insert(member) {
                    return Err(TopologyError::DuplicateMember {
                        table: table(),
                        id: p.id,
                        member,
                    });
                }
            }
            for r in &p.replicas {
                if !is_host_port(&r.address) {
                    return Err(TopologyError::Address {
                        table: table(),
                        id: p.id,
                        address: r.address.clone(),
                    });
                }
            }
        }
        if next_start.is_some() {
            let id = self.partitions.len() as u32 - 1;
            return Err(TopologyError::HashCoverage { table: table(), id });
        }
        Ok(())
    }

    /// Returns the partition owning `hash`.
    pub fn partition_for_hash(&self, hash: u64) -> Option<&PartitionTopology> {
        let i = self.partitions.partition_point(|p| p.hash_range.end < hash);
        self.partitions
            .get(i)
            .filter(|p| p.hash_range.contains(hash))
    }
}

fn is_host_port(address: &str) -> bool {
    match address.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partitions::split_hash_space;

    fn table(name: &str, partitions: u32) -> TableTopology {
        TableTopology {
            table_name: name.into(),
            epoch: Epoch(1),
            partition_key: "pk".into(),
            create_table: serde_json::json!({"TableName": name}),
            created_at_ms: None,
            time_to_live: None,
            partitions: split_hash_space(partitions)
                .into_iter()
                .enumerate()
                .map(|(i, hash_range)| PartitionTopology {
                    id: i as u32,
                    hash_range,
                    replicas: vec![ReplicaAddress {
                        zone: "a".into(),
                        address: format!("t-a-{i}.t-a.default.svc:7000"),
                        member_id: None,
                    }],
                })
                .collect(),
        }
    }

    #[test]
    fn round_trips_and_validates() {
        let file = TopologyFile::new(vec![table("Orders", 3), table("Accounts", 1)]);
        let json = file.to_json();
        assert!(json.contains("\"formatVersion\": 1"));
        assert!(json.contains("\"hashRange\""));
        assert_eq!(TopologyFile::parse(json.as_bytes()), Ok(file));
    }

    #[test]
    fn refuses_gaps_overlaps_and_bad_ids() {
        let mut t = table("Orders", 2);
        t.partitions[1].hash_range.start += 1;
        assert!(matches!(
            t.validate(),
            Err(TopologyError::HashCoverage { id: 1, .. })
        ));

        let mut t = table("Orders", 2);
        t.partitions[1].hash_range.end -= 1;
        assert!(matches!(
            t.validate(),
            Err(TopologyError::HashCoverage { id: 1, .. })
        ));

        let mut t = table("Orders", 2);
        t.partitions[1].id = 5;
        assert!(matches!(
            t.validate(),
            Err(TopologyError::PartitionId {
                position: 1,
                id: 5,
                ..
            })
        ));

        let mut t = table("Orders", 1);
        t.partitions[0].replicas[0].address = "nohost".into();
        assert!(matches!(t.validate(), Err(TopologyError::Address { .. })));

        let mut t = table("Orders", 1);
        t.partitions[0].replicas.clear();
        assert!(matches!(
            t.validate(),
            Err(TopologyError::NoReplicas { .. })
        ));

        let file = TopologyFile::new(vec![table("Orders", 1), table("Orders", 1)]);
        assert!(matches!(
            file.validate(),
            Err(TopologyError::DuplicateTable { .. })
        ));
    }

    #[test]
    fn refuses_future_versions_and_unknown_fields() {
        let mut file = TopologyFile::new(vec![table("Orders", 1)]);
        file.format_version = 2;
        assert_eq!(
            TopologyFile::parse(file.to_json().as_bytes()),
            Err(TopologyError::UnsupportedVersion { found: 2 })
        );
        assert!(matches!(
            TopologyFile::parse(br#"{"formatVersion":1,"tables":[],"extra":1}"#),
            Err(TopologyError::Syntax(_))
        ));
    }

    #[test]
    fn member_ids_default_to_positions_and_are_unique() {
        let mut t = table("Orders", 1);
        let second = ReplicaAddress {
            zone: "b".into(),
            address: "t-b-0.t-b.default.svc:7000".into(),
            member_id: Some(1 << 63),
        };
        t.partitions[0].replicas.push(second);
        let ids: Vec<u64> = t.partitions[0].members().map(|(id, _)| id).collect();
        assert_eq!(ids, vec![0, 1 << 63]);
        assert_eq!(t.partitions[0].member_id(1), 1 << 63);
        assert!(t.validate().is_ok());
        // A listed id equal to another replica's position is a duplicate.
        t.partitions[0].replicas[1].member_id = Some(0);
        assert!(matches!(
            t.validate(),
            Err(TopologyError::DuplicateMember { member: 0, .. })
        ));
        // Files without member ids read as before and write no field.
        t.partitions[0].replicas[1].member_id = None;
        assert!(!TopologyFile::new(vec![t]).to_json().contains("memberId"));
    }

    #[test]
    fn routes_hashes_to_their_partition() {
        let t = table("Orders", 4);
        assert_eq!(t.partition_for_hash(0).map(|p| p.id), Some(0));
        assert_eq!(t.partition_for_hash(u64::MAX).map(|p| p.id), Some(3));
        assert_eq!(
            t.partition_for_hash(0x8000_0000_0000_0000).map(|p| p.id),
            Some(2)
        );
        assert_eq!(
            t.partition_for_hash(0x7fff_ffff_ffff_ffff).map(|p| p.id),
            Some(1)
        );
    }
}
