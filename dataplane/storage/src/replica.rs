//! Global tables on the storage side: item versions, tombstones,
//! last-writer-wins applies of changes from other regions, the replica set
//! of a table and the replicators' durable cursors.
//!
//! # Versions
//!
//! Every item of a *replicated* table (one with a [`ReplicationState`])
//! carries a [`Version`]: the origin write's timestamp in µs and the origin
//! region. Versions order by (timestamp, region). A local write gets
//! `ts = max(now_µs, current version's ts + 1)`, so a local write always
//! wins over what it saw; a replicated change ([`ReplicatedChange`]) is
//! applied only if its version is greater than the local one, tombstones
//! included. Items written before the table became replicated have no
//! version record and count as [`Version::zero`].
//!
//! Versions live in a side space of the table, `v.<table_id>`, keyed by the
//! item's engine key (which starts with the key hash, so it is unique
//! across partitions), written in the same engine batch as the item by the
//! group-commit writer. The item codec is unchanged, so existing data reads
//! as before and tables that are not replicated pay nothing. Record format
//! (version 1):
//!
//! ```text
//! 0x01 varint(ts µs) flags varint(written ms) bytes(region)
//! flags := bit 0: tombstone (the item is deleted)
//! ```
//!
//! # Tombstones
//!
//! A delete in a replicated table leaves its version as a tombstone, so an
//! older write arriving later from another region loses against it. The
//! housekeeping thread purges tombstones older than the stream retention
//! ([`purge_tombstones`]): a change older than that cannot arrive any more
//! without a full copy, and a full copy never carries deleted items.
//!
//! # Replicated applies
//!
//! A replicated change is a `commit::Command::Replicate`: the writer
//! compares versions at apply time, then applies a plain Put or Delete
//! through the same path as a client write (local and global indexes, item
//! counts, the stream record — carrying the origin — and TTL bookkeeping),
//! with no condition. A superseded change writes nothing.
//!
//! # Cursors
//!
//! Per (table incarnation, peer region, partition) the number of the next
//! change-log record the peer has not acknowledged, kept in `meta` under
//! `r<table_id>/<region>/<partition>` (format byte 1, u64 BE).

use std::ops::Bound;
use std::sync::Arc;

use partita_model::Item;
use serde::{Deserialize, Serialize};

use crate::codec::{decode_item, push_bytes, push_varint, CodecError, Reader};
use crate::engine::ReadView;
use crate::state::{Replicated, Shared, TableState};
use crate::StorageError;

const VERSION_FORMAT_V1: u8 = 1;
const TOMBSTONE: u8 = 1;
const CURSOR_FORMAT_V1: u8 = 1;

/// The version of an item: origin write time and origin region. Ordered by
/// (time, region).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version {
    pub ts_us: u64,
    pub region: String,
}

impl Version {
    /// The version of an item without a version record.
    pub fn zero() -> Version {
        Version {
            ts_us: 0,
            region: String::new(),
        }
    }
}

/// The stored version of one key: of a live item, or a tombstone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionRecord {
    pub version: Version,
    pub deleted: bool,
    /// Local time the record was written (ms), for tombstone purging.
    pub written_ms: u64,
}

/// The lifecycle of one replica (DynamoDB's ReplicaStatus, the subset
/// Partita uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaStatus {
    Creating,
    Active,
    Deleting,
}

impl ReplicaStatus {
    /// Returns DynamoDB's name of this status.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaStatus::Creating => "CREATING",
            ReplicaStatus::Active => "ACTIVE",
            ReplicaStatus::Deleting => "DELETING",
        }
    }

    /// Parses DynamoDB's name of a status.
    pub fn parse(s: &str) -> Option<ReplicaStatus> {
        match s {
            "CREATING" => Some(ReplicaStatus::Creating),
            "ACTIVE" => Some(ReplicaStatus::Active),
            "DELETING" => Some(ReplicaStatus::Deleting),
            _ => None,
        }
    }
}

/// One other region holding a replica of the table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaInfo {
    pub region: String,
    pub status: ReplicaStatus,
    /// This region adds (creates, copies to) or deletes the replica: it
    /// drives the replica's CREATING and DELETING states.
    #[serde(default)]
    pub adding: bool,
}

/// What makes a table replicated: this region's name (stamped on local
/// writes) and the other replicas. Kept in the table's catalog record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationState {
    pub region: String,
    #[serde(default)]
    pub replicas: Vec<ReplicaInfo>,
    /// This region's replica is being filled by a full copy from the
    /// region that adds it (DescribeTable shows the table CREATING).
    #[serde(default)]
    pub creating: bool,
}

/// A change from another region: the item's keys, its new image (`None`
/// for a delete) and the origin version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplicatedChange {
    pub keys: Item,
    pub new: Option<Item>,
    pub version: Version,
}

/// What applying a replicated change did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaApply {
    /// The change was newer and is now the local state.
    Applied,
    /// The local version was newer or equal; nothing was written.
    Superseded,
}

/// A page of a full copy: live items with their versions, in engine key
/// order, and the engine key to continue after.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CopyPage {
    pub items: Vec<(Item, Version)>,
    pub next: Option<Vec<u8>>,
}

fn corrupt(detail: impl ToString) -> StorageError {
    StorageError::Corrupt {
        what: "item version",
        detail: detail.to_string(),
    }
}

/// Encodes a version record.
pub fn encode_version(record: &VersionRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + record.version.region.len());
    out.push(VERSION_FORMAT_V1);
    push_varint(&mut out, record.version.ts_us);
    out.push(if record.deleted { TOMBSTONE } else { 0 });
    push_varint(&mut out, record.written_ms);
    push_bytes(&mut out, record.version.region.as_bytes());
    out
}

/// Decodes a version record.
pub fn decode_version(bytes: &[u8]) -> Result<VersionRecord, StorageError> {
    let (&format, rest) = bytes.split_first().ok_or_else(|| corrupt("empty"))?;
    if format != VERSION_FORMAT_V1 {
        return Err(corrupt(format!("unknown format version {format}")));
    }
    let mut r = Reader { buf: rest };
    let read = |r: &mut Reader<'_>| -> Result<VersionRecord, CodecError> {
        let ts_us = r.varint()?;
        let flags = r.byte()?;
        let written_ms = r.varint()?;
        let region = String::from_utf8_lossy(r.bytes()?).into_owned();
        if !r.buf.is_empty() {
            return Err(CodecError::Trailing(r.buf.len()));
        }
        Ok(VersionRecord {
            version: Version { ts_us, region },
            deleted: flags & TOMBSTONE != 0,
            written_ms,
        })
    };
    read(&mut r).map_err(corrupt)
}

/// Returns the version a local write gets: after `now_us` and after the
/// current version, in `region`.
pub fn local_version(current: &Version, now_us: u64, region: &str) -> Version {
    Version {
        ts_us: now_us.max(current.ts_us.saturating_add(1)),
        region: region.to_owned(),
    }
}

/// Returns whether a replicated change with version `incoming` wins over
/// the local state `current` (a live item's version, a tombstone's, or
/// none).
pub fn wins(incoming: &Version, current: Option<&VersionRecord>) -> bool {
    match current {
        Some(record) => *incoming > record.version,
        // No record: the key was never written since the table became
        // replicated (or its tombstone was purged); a full copy's items
        // of version zero must land too.
        None => true,
    }
}

/// Returns the name of a table's version space.
pub(crate) fn versions_space_name(table_id: &str) -> Result<String, StorageError> {
    let name = format!("v.{table_id}");
    if name.len() > 200 {
        return Err(StorageError::InvalidTableDefinition(format!(
            "table id too long for the space name {name}"
        )));
    }
    Ok(name)
}

/// Returns the meta key of a replication cursor.
pub(crate) fn cursor_key(table_id: &str, region: &str, partition: u32) -> Vec<u8> {
    format!("r{table_id}/{region}/{partition}").into_bytes()
}

pub(crate) fn encode_cursor(seq: u64) -> Vec<u8> {
    let mut out = vec![CURSOR_FORMAT_V1];
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

pub(crate) fn decode_cursor(bytes: &[u8]) -> Result<u64, StorageError> {
    match bytes {
        [CURSOR_FORMAT_V1, rest @ ..] => rest
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| corrupt("cursor")),
        _ => Err(corrupt("cursor version")),
    }
}

/// Returns the wall-clock time in µs since the Unix epoch.
pub(crate) fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Reads a page of live items of table partition `partition` with their
/// versions, from one snapshot, after engine key `after`.
pub(crate) fn copy_page(
    shared: &Shared,
    table: &TableState,
    partition: usize,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<CopyPage, StorageError> {
    let part = table
        .partitions
        .get(partition)
        .ok_or_else(|| StorageError::InvalidSegment {
            segment: u32::try_from(partition).unwrap_or(u32::MAX),
            total_segments: u32::try_from(table.partitions.len()).unwrap_or(u32::MAX),
        })?;
    let view = shared.engine.read_view();
    let lower = match after {
        Some(k) => Bound::Excluded(k.to_vec()),
        None => Bound::Unbounded,
    };
    let mut page = CopyPage::default();
    for entry in view.range(&part.space, lower, Bound::Unbounded, false) {
        let (key, value) = entry?;
        let item = decode_item(&value).map_err(|e| StorageError::Corrupt {
            what: "item",
            detail: e.to_string(),
        })?;
        let version = version_in(&view, table, &key)?
            .map(|r| r.version)
            .unwrap_or_else(Version::zero);
        page.items.push((item, version));
        if page.items.len() >= limit {
            page.next = Some(key.to_vec());
            break;
        }
    }
    Ok(page)
}

/// Reads the version record of engine key `key` of `table` from `view`.
pub(crate) fn version_in(
    view: &ReadView,
    table: &TableState,
    key: &[u8],
) -> Result<Option<VersionRecord>, StorageError> {
    let Some(replicated) = &table.replication else {
        return Ok(None);
    };
    match view.get(&replicated.versions, key)? {
        Some(bytes) => Ok(Some(decode_version(&bytes)?)),
        None => Ok(None),
    }
}

/// Makes `table` replicated with `state` (creating its version space), or
/// not replicated any more (`None`: the version space is dropped). Returns
/// the table's definition.
pub(crate) fn set_replication(
    shared: &Shared,
    table: &str,
    state: Option<ReplicationState>,
) -> Result<partita_model::TableDefinition, StorageError> {
    let _commit = shared.commit_lock.lock();
    let current = shared.table(table)?;
    let (replication, dropped) = match (state, &current.replication) {
        (Some(state), Some(existing)) => (
            Some(Arc::new(Replicated {
                state,
                versions: existing.versions.clone(),
            })),
            None,
        ),
        (Some(state), None) => {
            let name = versions_space_name(&current.def.table_id)?;
            let versions = shared.engine.space(&name)?;
            (Some(Arc::new(Replicated { state, versions })), None)
        }
        (None, existing) => (None, existing.as_ref().map(|r| r.versions.clone())),
    };
    let next = TableState {
        replication,
        ..(*current).clone()
    };
    let def = shared.install(next, shared.engine.batch())?;
    if let Some(space) = dropped {
        shared.drop_spaces(vec![space]);
    }
    Ok(def)
}

/// Returns the replication cursor of (table, region, partition).
pub(crate) fn cursor(
    shared: &Shared,
    table: &TableState,
    region: &str,
    partition: u32,
) -> Result<Option<u64>, StorageError> {
    let view = shared.engine.read_view();
    match view.get(
        &shared.meta,
        &cursor_key(&table.def.table_id, region, partition),
    )? {
        Some(bytes) => Ok(Some(decode_cursor(&bytes)?)),
        None => Ok(None),
    }
}

/// Stores replication cursors of (table, region) durably; `None` removes
/// one.
pub(crate) fn set_cursors(
    shared: &Shared,
    table: &TableState,
    region: &str,
    cursors: &[(u32, Option<u64>)],
) -> Result<(), StorageError> {
    let mut batch = shared.engine.batch();
    for (partition, seq) in cursors {
        let key = cursor_key(&table.def.table_id, region, *partition);
        match seq {
            Some(seq) => batch.put(&shared.meta, &key, encode_cursor(*seq)),
            None => batch.delete(&shared.meta, &key),
        }
    }
    shared.engine.commit(batch, shared.sync)
}

/// Deletes the tombstones of every replicated table older than the stream
/// retention. Candidates are found without locks; each is deleted under
/// the commit lock only if it is still the same tombstone.
pub(crate) fn purge_tombstones(shared: &Shared) -> Result<usize, StorageError> {
    let cutoff = shared
        .now_ms()
        .saturating_sub(shared.stream_retention.as_millis() as u64);
    let tables: Vec<_> = shared.tables.read().values().cloned().collect();
    let mut purged = 0;
    for table in tables {
        let Some(replicated) = &table.replication else {
            continue;
        };
        let view = shared.engine.read_view();
        let mut candidates = Vec::new();
        for entry in view.range(
            &replicated.versions,
            Bound::Unbounded,
            Bound::Unbounded,
            false,
        ) {
            let (key, value) = entry?;
            let record = decode_version(&value)?;
            if record.deleted && record.written_ms < cutoff {
                candidates.push((key.to_vec(), value.to_vec()));
            }
            if candidates.len() >= 10_000 {
                break;
            }
        }
        if candidates.is_empty() {
            continue;
        }
        let _commit = shared.commit_lock.lock();
        let view = shared.engine.read_view();
        let mut batch = shared.engine.batch();
        for (key, value) in candidates {
            if view
                .get(&replicated.versions, &key)?
                .is_some_and(|now| now.as_ref() == value.as_slice())
            {
                batch.delete(&replicated.versions, &key);
                purged += 1;
            }
        }
        if !batch.is_empty() {
            shared.engine.commit(batch, shared.sync)?;
        }
    }
    Ok(purged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(ts_us: u64, region: &str) -> Version {
        Version {
            ts_us,
            region: region.into(),
        }
    }

    fn record(version: Version, deleted: bool) -> VersionRecord {
        VersionRecord {
            version,
            deleted,
            written_ms: 7,
        }
    }

    #[test]
    fn versions_order_by_time_then_region() {
        assert!(v(2, "a") > v(1, "z"));
        assert!(v(1, "eu-west-1") > v(1, "ap-south-1"));
        assert!(v(1, "a") > Version::zero());
        assert_eq!(v(1, "a"), v(1, "a"));
    }

    #[test]
    fn newer_changes_win_including_against_tombstones() {
        let live = record(v(10, "us-east-1"), false);
        let tomb = record(v(10, "us-east-1"), true);
        assert!(wins(&v(11, "eu-west-1"), Some(&live)));
        assert!(wins(&v(10, "us-west-2"), Some(&live)));
        assert!(
            !wins(&v(10, "us-east-1"), Some(&live)),
            "a duplicate is a no-op"
        );
        assert!(!wins(&v(9, "zz"), Some(&live)));
        // A tombstone beats older writes exactly like a live item.
        assert!(!wins(&v(9, "zz"), Some(&tomb)));
        assert!(wins(&v(11, "a"), Some(&tomb)));
        assert!(wins(&v(1, "a"), None));
        assert!(
            wins(&Version::zero(), None),
            "a copied pre-replication item"
        );
    }

    #[test]
    fn local_writes_win_over_what_they_saw() {
        let seen = v(5_000_000, "eu-west-1");
        // A clock behind the version it saw still produces a later version.
        assert_eq!(
            local_version(&seen, 10, "us-east-1"),
            v(5_000_001, "us-east-1")
        );
        assert_eq!(
            local_version(&seen, 6_000_000, "us-east-1"),
            v(6_000_000, "us-east-1")
        );
        assert!(local_version(&seen, 0, "a") > seen);
    }

    #[test]
    fn records_round_trip_with_version_byte() {
        for deleted in [false, true] {
            let r = record(v(1_700_000_000_123_456, "eu-west-1"), deleted);
            let bytes = encode_version(&r);
            assert_eq!(bytes[0], VERSION_FORMAT_V1);
            assert_eq!(decode_version(&bytes).unwrap(), r);
            assert!(decode_version(&bytes[..bytes.len() - 1]).is_err());
        }
        assert!(decode_version(&[2, 0]).is_err());
        assert_eq!(decode_cursor(&encode_cursor(42)).unwrap(), 42);
        assert!(decode_cursor(&[9]).is_err());
    }
}
