//! The replication file: this region's peer regions for global tables
//! (DESIGN.md §1, the global tables issue), and the status document a
//! data-plane process serves about its replicators.
//!
//! ```yaml
//! formatVersion: 1
//! peers:                      # regions this one sends changes to
//!   - region: eu-west-1
//!     endpoint: https://partita.eu-west-1.example.com
//!     accessKeyId: AKIAREPLEUW1000000001
//!     secretAccessKey: ...
//! inbound:                    # credentials peers sign their changes with
//!   - accessKeyId: AKIAREPLUSE1000000001
//!     secretAccessKey: ...
//! tables:                     # declared replica sets (optional)
//!   Orders: [eu-west-1]
//! ```
//!
//! `partita serve --replication FILE` and `partita gateway --replication FILE`
//! read it (YAML or JSON) and reload it on change. In Kubernetes the operator
//! renders it as JSON from `GlobalTable` resources and their credentials
//! Secrets into the Secret [`SECRET_NAME`], key [`FILE_NAME`], mounted into
//! the gateway.
//!
//! - `peers`: where a region's changes go. A replica region named in
//!   `UpdateTable ReplicaUpdates` or in `tables` must be listed here.
//! - `inbound`: the credentials whose SigV4 signatures the replication
//!   endpoint accepts. Replication calls signed by anything else are refused.
//! - `tables`: table name → the peer regions it must be replicated to. The
//!   data plane adds missing replicas itself (as `ReplicaUpdates` Create
//!   would); a region dropped from the list is left alone (removing a
//!   replica deletes data, so it is an explicit `ReplicaUpdates` Delete).
//!
//! The status document ([`ReplicationStatus`]) is served as JSON on the admin
//! port at [`STATUS_PATH`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of the file this crate writes; readers accept 1..=this.
pub const FORMAT_VERSION: u32 = 1;
/// Conventional file name inside the Secret and the mount.
pub const FILE_NAME: &str = "replication.json";
/// The Secret the operator renders for the gateway.
pub const SECRET_NAME: &str = "partita-gateway-replication";
/// Admin-port path of the replication status document.
pub const STATUS_PATH: &str = "/replication";

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicationFile {
    pub format_version: u32,
    #[serde(default)]
    pub peers: Vec<PeerRegion>,
    #[serde(default)]
    pub inbound: Vec<Credentials>,
    /// Table name → peer regions.
    #[serde(default)]
    pub tables: BTreeMap<String, Vec<String>>,
}

/// One peer region and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerRegion {
    pub region: String,
    /// The peer's DynamoDB endpoint (`http://` or `https://` URL).
    pub endpoint: String,
    /// What this region signs its replication calls to the peer with.
    #[serde(flatten)]
    pub credentials: Credentials,
}

/// An access key pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// Why a replication file is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReplicationFileError {
    #[error("replication file: formatVersion {0} is not supported (1..={FORMAT_VERSION})")]
    Version(u32),
    #[error("replication file: peer region {0:?} is listed twice")]
    DuplicatePeer(String),
    #[error("replication file: peer {region:?} has invalid {field}: {reason}")]
    InvalidPeer {
        region: String,
        field: &'static str,
        reason: &'static str,
    },
    #[error("replication file: table {table:?} names region {region:?}, which is not a peer")]
    UnknownRegion { table: String, region: String },
}

impl ReplicationFile {
    /// An empty file (no peers).
    pub fn new() -> ReplicationFile {
        ReplicationFile {
            format_version: FORMAT_VERSION,
            peers: Vec::new(),
            inbound: Vec::new(),
            tables: BTreeMap::new(),
        }
    }

    /// Checks what serde cannot: the version, distinct peer regions, peer
    /// fields, and that `tables` names only peers. `own_region` may not be a
    /// peer.
    pub fn validate(&self, own_region: Option<&str>) -> Result<(), ReplicationFileError> {
        if self.format_version == 0 || self.format_version > FORMAT_VERSION {
            return Err(ReplicationFileError::Version(self.format_version));
        }
        let mut seen = std::collections::BTreeSet::new();
        for peer in &self.peers {
            let invalid = |field, reason| ReplicationFileError::InvalidPeer {
                region: peer.region.clone(),
                field,
                reason,
            };
            if !is_region_name(&peer.region) {
                return Err(invalid("region", "use lowercase letters, digits and '-'"));
            }
            if Some(peer.region.as_str()) == own_region {
                return Err(invalid("region", "a region cannot be its own peer"));
            }
            if !(peer.endpoint.starts_with("http://") || peer.endpoint.starts_with("https://")) {
                return Err(invalid("endpoint", "must be an http:// or https:// URL"));
            }
            if peer.credentials.access_key_id.is_empty()
                || peer.credentials.secret_access_key.is_empty()
            {
                return Err(invalid(
                    "credentials",
                    "access key id and secret are required",
                ));
            }
            if !seen.insert(peer.region.as_str()) {
                return Err(ReplicationFileError::DuplicatePeer(peer.region.clone()));
            }
        }
        for (table, regions) in &self.tables {
            for region in regions {
                if !seen.contains(region.as_str()) {
                    return Err(ReplicationFileError::UnknownRegion {
                        table: table.clone(),
                        region: region.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The peer named `region`.
    pub fn peer(&self, region: &str) -> Option<&PeerRegion> {
        self.peers.iter().find(|p| p.region == region)
    }

    /// Renders pretty JSON with a trailing newline; peers and inbound
    /// credentials sorted, so equal inputs give equal bytes.
    pub fn to_json(&self) -> String {
        let mut sorted = self.clone();
        sorted.peers.sort_by(|a, b| a.region.cmp(&b.region));
        sorted
            .inbound
            .sort_by(|a, b| a.access_key_id.cmp(&b.access_key_id));
        sorted.inbound.dedup();
        for regions in sorted.tables.values_mut() {
            regions.sort();
            regions.dedup();
        }
        let mut s = serde_json::to_string_pretty(&sorted).unwrap_or_default();
        s.push('\n');
        s
    }
}

impl Default for ReplicationFile {
    fn default() -> Self {
        ReplicationFile::new()
    }
}

fn is_region_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// What `GET /replication` on the admin port returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationStatus {
    /// The serving process's own region.
    pub region: String,
    #[serde(default)]
    pub tables: Vec<TableReplication>,
}

/// The replicas of one local table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableReplication {
    pub table_name: String,
    #[serde(default)]
    pub replicas: Vec<ReplicaState>,
}

/// One peer replica of a table, as this region's replicator sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaState {
    pub region_name: String,
    /// DynamoDB's ReplicaStatus: CREATING, ACTIVE, DELETING, ...
    pub replica_status: String,
    /// Whether the last call to the peer succeeded.
    pub reachable: bool,
    /// Age in seconds of the oldest change not yet applied by the peer (0
    /// when none is pending).
    pub lag_seconds: f64,
    /// Changes not yet applied by the peer.
    pub pending_changes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(region: &str) -> PeerRegion {
        PeerRegion {
            region: region.into(),
            endpoint: format!("http://{region}.example:8000"),
            credentials: Credentials {
                access_key_id: "AKIA0000000000000001".into(),
                secret_access_key: "secret".into(),
            },
        }
    }

    #[test]
    fn matches_the_documented_shape() {
        let mut file = ReplicationFile::new();
        file.peers.push(peer("eu-west-1"));
        file.tables
            .insert("Orders".into(), vec!["eu-west-1".into()]);
        let v: serde_json::Value = serde_json::from_str(&file.to_json()).unwrap();
        assert_eq!(v["formatVersion"], 1);
        assert_eq!(v["peers"][0]["region"], "eu-west-1");
        assert_eq!(v["peers"][0]["accessKeyId"], "AKIA0000000000000001");
        assert_eq!(v["peers"][0]["secretAccessKey"], "secret");
        assert_eq!(v["tables"]["Orders"][0], "eu-west-1");
        let back: ReplicationFile = serde_json::from_value(v).unwrap();
        assert_eq!(back, file);
        assert_eq!(back.validate(Some("us-east-1")), Ok(()));
    }

    #[test]
    fn rejects_bad_files() {
        let mut file = ReplicationFile::new();
        file.peers.push(peer("eu-west-1"));
        file.peers.push(peer("eu-west-1"));
        assert_eq!(
            file.validate(None),
            Err(ReplicationFileError::DuplicatePeer("eu-west-1".into()))
        );
        file.peers.pop();
        assert!(matches!(
            file.validate(Some("eu-west-1")),
            Err(ReplicationFileError::InvalidPeer {
                field: "region",
                ..
            })
        ));
        file.tables.insert("T".into(), vec!["ap-south-1".into()]);
        assert_eq!(
            file.validate(None),
            Err(ReplicationFileError::UnknownRegion {
                table: "T".into(),
                region: "ap-south-1".into()
            })
        );
        file.tables.clear();
        file.peers[0].endpoint = "ftp://x".into();
        assert!(matches!(
            file.validate(None),
            Err(ReplicationFileError::InvalidPeer {
                field: "endpoint",
                ..
            })
        ));
        file.format_version = 2;
        assert_eq!(file.validate(None), Err(ReplicationFileError::Version(2)));
    }
}
