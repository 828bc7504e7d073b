//! The JSON of the internal replication calls (`X-Amz-Target`
//! `PartitaReplication_20261122.<Op>`, body `application/x-amz-json-1.0`).
//! Items are DynamoDB JSON; versions are `{"Timestamp": µs, "Region": r}`.
//! Unknown fields are ignored, so a newer region can add optional ones.

use partita_model::{Item, TableDefinition};
use partita_storage::{ReplicaInfo, ReplicaStatus, ReplicatedChange, Version};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::codec::{item_from_json, item_to_json};
use crate::error::ApiError;

/// `ApplyChanges`: changes that originated in `SourceRegion`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ApplyChanges {
    pub table_name: String,
    pub source_region: String,
    pub changes: Vec<WireChange>,
    /// Set on the pages of a full copy: the receiver remembers their keys
    /// until `FinishCopy` of the same session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_session: Option<u64>,
}

/// `FinishCopy`: the full copy `CopySession`, started at `StartedAt` (µs,
/// the source's clock), is complete. The receiver deletes the items that
/// originated in `SourceRegion` before that time and were not in the copy:
/// the source deleted them while the receiver could not hear of it (its
/// delete records and tombstones were past the retention).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FinishCopy {
    pub table_name: String,
    pub source_region: String,
    pub copy_session: u64,
    pub started_at: u64,
}

/// Returns a stable fingerprint of an item's keys (copy sessions).
pub fn key_fingerprint(keys: &Item) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    item_to_json(keys).to_string().hash(&mut h);
    h.finish()
}

/// One change: keys, new image (absent for a delete), origin version.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WireChange {
    pub keys: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_image: Option<Value>,
    pub version: WireVersion,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WireVersion {
    pub timestamp: u64,
    pub region: String,
}

/// The answer to `ApplyChanges`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Applied {
    pub applied: u64,
    pub superseded: u64,
}

/// One member of a replica set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WireReplica {
    pub region_name: String,
    pub replica_status: String,
}

/// `CreateReplica`: create (or adopt an empty) table `TableName` shaped
/// like `Definition` as a replica of the set `Replicas` (every member,
/// the caller and the callee included).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateReplica {
    pub table_name: String,
    pub source_region: String,
    pub definition: TableDefinition,
    pub replicas: Vec<WireReplica>,
}

/// `UpdateReplicaSet`: the full replica set as `SourceRegion` knows it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateReplicaSet {
    pub table_name: String,
    pub source_region: String,
    pub replicas: Vec<WireReplica>,
}

/// `UpdateSettings`: apply the same `Operation` (`UpdateTable` or
/// `UpdateTimeToLive`) with the same `Request` to the callee's replica, so
/// throughput, indexes, TTL and the like stay aligned across replicas.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateSettings {
    pub table_name: String,
    pub source_region: String,
    pub operation: String,
    pub request: Value,
}

/// `DeleteReplica`: delete the callee's replica of `TableName`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteReplica {
    pub table_name: String,
    pub source_region: String,
}

impl WireChange {
    /// Encodes a change.
    pub fn of(keys: &Item, new: Option<&Item>, version: &Version) -> WireChange {
        WireChange {
            keys: item_to_json(keys),
            new_image: new.map(item_to_json),
            version: WireVersion {
                timestamp: version.ts_us,
                region: version.region.clone(),
            },
        }
    }

    /// Decodes a change.
    pub fn decode(&self) -> Result<ReplicatedChange, ApiError> {
        Ok(ReplicatedChange {
            keys: item_from_json(&self.keys)?,
            new: self.new_image.as_ref().map(item_from_json).transpose()?,
            version: Version {
                ts_us: self.version.timestamp,
                region: self.version.region.clone(),
            },
        })
    }
}

/// Returns the wire form of a replica set plus `own` (ACTIVE).
pub fn members(own: &str, replicas: &[ReplicaInfo]) -> Vec<WireReplica> {
    let mut out = vec![WireReplica {
        region_name: own.to_string(),
        replica_status: ReplicaStatus::Active.as_str().to_string(),
    }];
    out.extend(replicas.iter().map(|r| WireReplica {
        region_name: r.region.clone(),
        replica_status: r.status.as_str().to_string(),
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use partita_model::AttributeValue;

    #[test]
    fn changes_round_trip() {
        let mut keys = Item::new();
        keys.insert("pk".into(), AttributeValue::S("a".into()));
        let mut new = keys.clone();
        new.insert("v".into(), AttributeValue::Bool(true));
        let version = Version {
            ts_us: 1_800_000_000_000_000,
            region: "eu-west-1".into(),
        };
        let wire = WireChange::of(&keys, Some(&new), &version);
        let text = serde_json::to_string(&wire).unwrap();
        assert!(text.contains("\"Timestamp\":1800000000000000"));
        let back: WireChange = serde_json::from_str(&text).unwrap();
        let change = back.decode().unwrap();
        assert_eq!(change.keys, keys);
        assert_eq!(change.new, Some(new));
        assert_eq!(change.version, version);
        let delete = WireChange::of(&keys, None, &version);
        assert!(!serde_json::to_string(&delete).unwrap().contains("NewImage"));
    }
}
