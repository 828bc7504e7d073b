//! The change log behind DynamoDB Streams: one ordered log per table
//! partition, its streams and shards, retention trimming, and reads.
//!
//! # Records
//!
//! While a table's stream is enabled, every write that changes an item
//! appends one record to the log of the item's partition, in the same engine
//! batch as the item (`commit`), so a record exists exactly for every
//! committed change. A write that leaves the item as it was (a Put of an
//! identical item, a Delete of an absent one) appends nothing, as in
//! DynamoDB. The record holds what the stream's view type keeps (keys
//! always, old and new images as configured), the size DynamoDB reports
//! (`SizeBytes`), the time of the write group and whether the TTL sweeper
//! made the change (DynamoDB's `userIdentity` Service).
//!
//! # Sequence numbers and segments
//!
//! Each log numbers its records 0, 1, 2, ... (monotonic, never reused: the
//! next number is also kept in `meta` with every batch that appends). The
//! records live in *segments*, one engine space each, named
//! `s.<table_id>.<partition>.<first sequence number>`; the writer starts a
//! new segment when the current one is older than the roll interval (a
//! 24th of the retention). Trimming drops whole segments — never entry by
//! entry — once every record in them is older than the retention, so reads
//! never walk over deleted keys. The oldest remaining segment's first
//! number is the log's *trim horizon*: reading below it is reading trimmed
//! data.
//!
//! Record format (version 1), value of key `seq (u64 BE)`:
//!
//! ```text
//! 0x01 varint(created ms) event flags varint(size bytes) bytes(keys) [bytes(old)] [bytes(new)]
//! event := 1 INSERT | 2 MODIFY | 3 REMOVE
//! flags := bit 0: old image follows; bit 1: new image follows; bit 2: made by TTL
//! items := the item codec (its own version byte)
//! ```
//!
//! Version 2 (records of replicated tables, see `replica`) is version 1
//! followed by the origin of the change: `varint(origin ts µs)
//! bytes(origin region)`. Records without an origin are still written as
//! version 1; both are read.
//!
//! # Streams and shards
//!
//! A stream is a period during which the table's stream was enabled; its
//! records are, per partition, one range of that partition's log: a *shard*
//! `[start, end]`, open (no end) while the stream is enabled. Disabling the
//! stream closes its shards at the last number written; enabling it again
//! creates a new stream (new label) with new shards starting at the logs'
//! next numbers. An open shard older than the shard roll interval is closed
//! and followed by a child shard (`parent`), like DynamoDB's rolling shards.
//! Streams and shards live in the table's catalog record ([`StreamState`]);
//! closed streams are forgotten once past the retention.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use partita_model::value::item_size;
use partita_model::Item;
use serde::{Deserialize, Serialize};

use crate::codec::{decode_item, encode_item, push_bytes, push_varint, CodecError, Reader};
use crate::engine::{ReadView, Space};
use crate::StorageError;

/// DynamoDB Streams' retention: 24 hours.
pub const DEFAULT_STREAM_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// How long a shard stays open before it rolls over to a child shard.
pub const DEFAULT_SHARD_ROLL: Duration = Duration::from_secs(4 * 3600);
/// Most records one read returns.
pub const MAX_READ_RECORDS: usize = 1000;

const RECORD_FORMAT_V1: u8 = 1;
const RECORD_FORMAT_V2: u8 = 2;
const HAS_OLD: u8 = 1;
const HAS_NEW: u8 = 2;
const BY_TTL: u8 = 4;

/// What a change did to its item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeEvent {
    Insert,
    Modify,
    Remove,
}

impl ChangeEvent {
    /// Returns DynamoDB's eventName.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeEvent::Insert => "INSERT",
            ChangeEvent::Modify => "MODIFY",
            ChangeEvent::Remove => "REMOVE",
        }
    }
}

/// Which images a stream's records carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StreamViewType {
    KeysOnly,
    NewImage,
    OldImage,
    NewAndOldImages,
}

impl StreamViewType {
    /// Parses DynamoDB's name of a view type.
    pub fn parse(name: &str) -> Option<StreamViewType> {
        match name {
            "KEYS_ONLY" => Some(StreamViewType::KeysOnly),
            "NEW_IMAGE" => Some(StreamViewType::NewImage),
            "OLD_IMAGE" => Some(StreamViewType::OldImage),
            "NEW_AND_OLD_IMAGES" => Some(StreamViewType::NewAndOldImages),
            _ => None,
        }
    }

    /// Returns DynamoDB's name of this view type.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamViewType::KeysOnly => "KEYS_ONLY",
            StreamViewType::NewImage => "NEW_IMAGE",
            StreamViewType::OldImage => "OLD_IMAGE",
            StreamViewType::NewAndOldImages => "NEW_AND_OLD_IMAGES",
        }
    }

    fn keeps_old(self) -> bool {
        matches!(
            self,
            StreamViewType::OldImage | StreamViewType::NewAndOldImages
        )
    }

    fn keeps_new(self) -> bool {
        matches!(
            self,
            StreamViewType::NewImage | StreamViewType::NewAndOldImages
        )
    }
}

/// Returns the wall-clock time in ms since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One change-log record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangeRecord {
    /// Position in its partition's log.
    pub seq: u64,
    /// Time of the write, ms since the Unix epoch.
    pub created_ms: u64,
    pub event: ChangeEvent,
    /// The item's primary key attributes.
    pub keys: Item,
    pub old: Option<Item>,
    pub new: Option<Item>,
    /// DynamoDB's SizeBytes: the keys and the kept images.
    pub size_bytes: u64,
    /// Made by the TTL sweeper (userIdentity Service dynamodb.amazonaws.com).
    pub by_ttl: bool,
    /// The version of the change in a replicated table: origin write time
    /// and origin region (`None` in tables that are not replicated).
    pub origin: Option<crate::replica::Version>,
}

/// Builds the record of a change from the item before and after, keeping
/// the images `view` asks for. `None` when nothing changed (the item is as
/// it was), which DynamoDB does not record. Pure: the caller supplies the
/// time; the log assigns `seq`.
pub fn build_record(
    keys: Item,
    old: Option<&Item>,
    new: Option<&Item>,
    view: StreamViewType,
    created_ms: u64,
    by_ttl: bool,
) -> Option<ChangeRecord> {
    let event = match (old, new) {
        (None, None) => return None,
        (Some(o), Some(n)) if o == n => return None,
        (None, Some(_)) => ChangeEvent::Insert,
        (Some(_), Some(_)) => ChangeEvent::Modify,
        (Some(_), None) => ChangeEvent::Remove,
    };
    let old = old.filter(|_| view.keeps_old()).cloned();
    let new = new.filter(|_| view.keeps_new()).cloned();
    let size = |i: &Option<Item>| i.as_ref().map_or(0, |i| item_size(i) as u64);
    let size_bytes = item_size(&keys) as u64 + size(&old) + size(&new);
    Some(ChangeRecord {
        seq: 0,
        created_ms,
        event,
        keys,
        old,
        new,
        size_bytes,
        by_ttl,
        origin: None,
    })
}

fn corrupt(detail: impl ToString) -> StorageError {
    StorageError::Corrupt {
        what: "stream record",
        detail: detail.to_string(),
    }
}

/// Returns the engine key of record `seq`.
pub(crate) fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

fn decode_seq(key: &[u8]) -> Result<u64, StorageError> {
    let raw: [u8; 8] = key
        .try_into()
        .map_err(|_| corrupt(format!("{} byte key", key.len())))?;
    Ok(u64::from_be_bytes(raw))
}

/// Encodes a record (its `seq` is the key, not part of the value).
pub(crate) fn encode_record(record: &ChangeRecord) -> Vec<u8> {
    let format = if record.origin.is_some() {
        RECORD_FORMAT_V2
    } else {
        RECORD_FORMAT_V1
    };
    let mut out = vec![format];
    push_varint(&mut out, record.created_ms);
    out.push(match record.event {
        ChangeEvent::Insert => 1,
        ChangeEvent::Modify => 2,
        ChangeEvent::Remove => 3,
    });
    let flags = if record.old.is_some() { HAS_OLD } else { 0 }
        | if record.new.is_some() { HAS_NEW } else { 0 }
        | if record.by_ttl { BY_TTL } else { 0 };
    out.push(flags);
    push_varint(&mut out, record.size_bytes);
    push_bytes(&mut out, &encode_item(&record.keys));
    for item in [&record.old, &record.new].into_iter().flatten() {
        push_bytes(&mut out, &encode_item(item));
    }
    if let Some(origin) = &record.origin {
        push_varint(&mut out, origin.ts_us);
        push_bytes(&mut out, origin.region.as_bytes());
    }
    out
}

/// Decodes the record stored under `seq`.
pub(crate) fn decode_record(seq: u64, bytes: &[u8]) -> Result<ChangeRecord, StorageError> {
    let (&version, rest) = bytes.split_first().ok_or_else(|| corrupt("empty record"))?;
    if version != RECORD_FORMAT_V1 && version != RECORD_FORMAT_V2 {
        return Err(corrupt(format!("unknown format version {version}")));
    }
    let mut r = Reader { buf: rest };
    let read = |r: &mut Reader<'_>| -> Result<ChangeRecord, CodecError> {
        let created_ms = r.varint()?;
        let event = match r.byte()? {
            1 => ChangeEvent::Insert,
            2 => ChangeEvent::Modify,
            3 => ChangeEvent::Remove,
            other => return Err(CodecError::UnknownTag(other)),
        };
        let flags = r.byte()?;
        let size_bytes = r.varint()?;
        let keys = decode_item(r.bytes()?)?;
        let old = if flags & HAS_OLD != 0 {
            Some(decode_item(r.bytes()?)?)
        } else {
            None
        };
        let new = if flags & HAS_NEW != 0 {
            Some(decode_item(r.bytes()?)?)
        } else {
            None
        };
        let origin = if version == RECORD_FORMAT_V2 {
            let ts_us = r.varint()?;
            let region = String::from_utf8_lossy(r.bytes()?).into_owned();
            Some(crate::replica::Version { ts_us, region })
        } else {
            None
        };
        if !r.buf.is_empty() {
            return Err(CodecError::Trailing(r.buf.len()));
        }
        Ok(ChangeRecord {
            seq,
            created_ms,
            event,
            keys,
            old,
            new,
            size_bytes,
            by_ttl: flags & BY_TTL != 0,
            origin,
        })
    };
    read(&mut r).map_err(corrupt)
}

/// One segment of a log: an engine space holding a run of records.
#[derive(Clone)]
pub(crate) struct Segment {
    pub space: Space,
    pub name: String,
    /// Time of its first and of its last record (ms).
    pub first_ms: u64,
    pub last_ms: u64,
}

/// The change log of one table partition.
pub(crate) struct ChangeLog {
    /// Unique within this process; keys the writer's pending state.
    pub uid: u64,
    /// `s.<table_id>.<partition>`: the segment name prefix (plus a dot) and
    /// the name under which `meta` keeps the next sequence number.
    pub name: String,
    /// The number of the next record (as of the last committed group).
    /// Changed only by the writer.
    pub next_seq: AtomicU64,
    /// first sequence number → segment. Changed by the writer (new
    /// segments, after commit) and by trimming (under the commit lock).
    pub segments: Mutex<BTreeMap<u64, Segment>>,
}

impl ChangeLog {
    /// Returns the first sequence number still stored (the trim horizon).
    pub fn horizon(&self) -> u64 {
        self.segments
            .lock()
            .keys()
            .next()
            .copied()
            .unwrap_or_else(|| self.next_seq.load(Ordering::Acquire))
    }

    /// Returns the segment name for a segment starting at `first`.
    pub fn segment_name(&self, first: u64) -> String {
        format!("{}.{first}", self.name)
    }

    /// Returns (first number, segment) of every segment, oldest first.
    pub fn segment_list(&self) -> Vec<(u64, Segment)> {
        self.segments
            .lock()
            .iter()
            .map(|(k, s)| (*k, s.clone()))
            .collect()
    }

    /// Returns the current (newest) segment: its first number and state.
    pub fn current(&self) -> Option<(u64, Segment)> {
        self.segments
            .lock()
            .iter()
            .next_back()
            .map(|(k, s)| (*k, s.clone()))
    }
}

/// Returns the first sequence number encoded in a segment name of `log_name`.
pub(crate) fn segment_first(log_name: &str, space: &str) -> Option<u64> {
    space
        .strip_prefix(log_name)?
        .strip_prefix('.')?
        .parse()
        .ok()
}

/// Returns the meta key of a log's next sequence number.
pub(crate) fn next_seq_key(log_name: &str) -> Vec<u8> {
    let mut key = b"q".to_vec();
    key.extend_from_slice(log_name.as_bytes());
    key
}

/// Encodes a log's next sequence number for `meta`.
pub(crate) fn encode_next_seq(next: u64) -> Vec<u8> {
    let mut out = vec![RECORD_FORMAT_V1];
    out.extend_from_slice(&next.to_be_bytes());
    out
}

/// Decodes a log's next sequence number.
pub(crate) fn decode_next_seq(bytes: &[u8]) -> Result<u64, StorageError> {
    match bytes {
        [RECORD_FORMAT_V1, rest @ ..] => rest
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| corrupt("next sequence number")),
        _ => Err(corrupt("next sequence number version")),
    }
}

/// Returns (first record, last record) of a segment, `None` when empty.
pub(crate) fn segment_bounds(
    view: &ReadView,
    space: &Space,
) -> Result<Option<(ChangeRecord, ChangeRecord)>, StorageError> {
    let edge = |reverse| -> Result<Option<ChangeRecord>, StorageError> {
        match view
            .range(space, Bound::Unbounded, Bound::Unbounded, reverse)
            .next()
        {
            Some(entry) => {
                let (k, v) = entry?;
                Ok(Some(decode_record(decode_seq(&k)?, &v)?))
            }
            None => Ok(None),
        }
    };
    Ok(match (edge(false)?, edge(true)?) {
        (Some(first), Some(last)) => Some((first, last)),
        _ => None,
    })
}

/// Reads up to `limit` records of `log` with numbers in `from..=until`
/// (`until: None` reads to the end).
pub(crate) fn read_records(
    view: &ReadView,
    log: &ChangeLog,
    from: u64,
    until: Option<u64>,
    limit: usize,
) -> Result<Vec<ChangeRecord>, StorageError> {
    let segments = log.segment_list();
    let mut out = Vec::new();
    let upper = match until {
        Some(u) => Bound::Included(seq_key(u).to_vec()),
        None => Bound::Unbounded,
    };
    for (i, (_, segment)) in segments.iter().enumerate() {
        // Skip segments that end before `from`.
        if let Some((next_first, _)) = segments.get(i + 1) {
            if *next_first <= from {
                continue;
            }
        }
        if until.is_some_and(|u| segments[i].0 > u) {
            break;
        }
        for entry in view.range(
            &segment.space,
            Bound::Included(seq_key(from).to_vec()),
            upper.clone(),
            false,
        ) {
            if out.len() >= limit {
                return Ok(out);
            }
            let (k, v) = entry?;
            out.push(decode_record(decode_seq(&k)?, &v)?);
        }
    }
    Ok(out)
}

/// The stored state of one shard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardState {
    pub partition: u32,
    /// 0 for a stream's first shard of a partition, +1 per roll.
    pub generation: u32,
    pub start_seq: u64,
    /// Last number of a closed shard; below `start_seq` when it closed empty.
    pub end_seq: Option<u64>,
    pub created_ms: u64,
    pub closed_ms: Option<u64>,
}

/// The stored state of one stream of a table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamState {
    pub label: String,
    pub view_type: StreamViewType,
    pub created_ms: u64,
    /// When the stream was disabled; `None` while enabled.
    pub closed_ms: Option<u64>,
    pub shards: Vec<ShardState>,
}

/// Returns the shard id of `shard` of the stream labelled `label` of table
/// incarnation `table_id`: DynamoDB's shape, stable and unique.
pub fn shard_id(table_id: &str, label: &str, shard: &ShardState) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(table_id.as_bytes());
    h.update(label.as_bytes());
    h.update(&shard.partition.to_be_bytes());
    h.update(&shard.generation.to_be_bytes());
    format!("shardId-{:020}-{:08x}", shard.created_ms, h.digest() as u32)
}

/// A shard as readers see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    pub id: String,
    pub parent: Option<String>,
    pub partition: u32,
    /// First number the shard may hold that is not trimmed.
    pub start_seq: u64,
    pub closed: bool,
    /// Last number of a closed shard that holds records.
    pub end_seq: Option<u64>,
}

/// A stream as readers see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamInfo {
    pub label: String,
    pub view_type: StreamViewType,
    pub created_ms: u64,
    pub enabled: bool,
    /// Shards not yet entirely trimmed, parents before children.
    pub shards: Vec<ShardInfo>,
}

/// A page of one partition's change log.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ChangePage {
    pub records: Vec<ChangeRecord>,
    /// The first number still stored; a read from below it missed trimmed
    /// records.
    pub horizon: u64,
    /// The number the next record will get.
    pub next_seq: u64,
}

/// Returns the streams after a definition change: a stream that was
/// enabled and is not any more is closed at the logs' current numbers; a
/// stream enabled now (or re-enabled under a new label) starts at them.
pub(crate) fn transition(
    mut streams: Vec<StreamState>,
    old: &partita_model::TableDefinition,
    new: &partita_model::TableDefinition,
    logs: &[Arc<ChangeLog>],
    now_ms: u64,
) -> Vec<StreamState> {
    let enabled = |d: &partita_model::TableDefinition| {
        d.stream
            .as_ref()
            .filter(|s| s.enabled)
            .and_then(|s| s.view_type.as_deref())
            .and_then(StreamViewType::parse)
            .zip(d.stream_label.clone())
    };
    let (before, after) = (enabled(old), enabled(new));
    if before == after {
        return streams;
    }
    let next = |p: u32| {
        logs.get(p as usize)
            .map_or(0, |l| l.next_seq.load(Ordering::Acquire))
    };
    for stream in streams.iter_mut().filter(|s| s.closed_ms.is_none()) {
        stream.closed_ms = Some(now_ms);
        for shard in stream.shards.iter_mut().filter(|s| s.end_seq.is_none()) {
            close_shard(shard, next(shard.partition), now_ms);
        }
    }
    if let Some((view_type, label)) = after {
        streams.push(StreamState {
            label,
            view_type,
            created_ms: now_ms,
            closed_ms: None,
            shards: (0..logs.len() as u32)
                .map(|p| ShardState {
                    partition: p,
                    generation: 0,
                    start_seq: next(p),
                    end_seq: None,
                    created_ms: now_ms,
                    closed_ms: None,
                })
                .collect(),
        });
    }
    streams
}

fn close_shard(shard: &mut ShardState, next: u64, now_ms: u64) {
    // An empty shard ends just below its start (`wrapping`: a start of 0).
    shard.end_seq = Some(if next > shard.start_seq {
        next - 1
    } else {
        shard.start_seq.wrapping_sub(1)
    });
    shard.closed_ms = Some(now_ms);
}

impl ShardState {
    /// Returns true for a shard that closed without any record.
    pub fn closed_empty(&self) -> bool {
        self.end_seq
            .is_some_and(|end| end.wrapping_add(1) == self.start_seq)
    }
}

/// Rolls the open shards of `streams` that are older than `roll`: each is
/// closed and followed by a child. Returns whether anything changed.
pub(crate) fn roll_shards(
    streams: &mut [StreamState],
    logs: &[Arc<ChangeLog>],
    roll: Duration,
    now_ms: u64,
) -> bool {
    let mut changed = false;
    let roll_ms = roll.as_millis() as u64;
    for stream in streams.iter_mut().filter(|s| s.closed_ms.is_none()) {
        let mut children = Vec::new();
        for shard in stream.shards.iter_mut().filter(|s| s.end_seq.is_none()) {
            if now_ms.saturating_sub(shard.created_ms) < roll_ms {
                continue;
            }
            let next = logs
                .get(shard.partition as usize)
                .map_or(0, |l| l.next_seq.load(Ordering::Acquire));
            close_shard(shard, next, now_ms);
            children.push(ShardState {
                partition: shard.partition,
                generation: shard.generation + 1,
                start_seq: next,
                end_seq: None,
                created_ms: now_ms,
                closed_ms: None,
            });
        }
        changed |= !children.is_empty();
        stream.shards.extend(children);
    }
    changed
}

/// Forgets what the retention let go: closed streams closed longer than
/// `retention` ago, and closed shards whose records are all trimmed (or,
/// empty, closed longer than `retention` ago). Returns whether anything
/// changed.
pub(crate) fn forget_expired(
    streams: &mut Vec<StreamState>,
    logs: &[Arc<ChangeLog>],
    retention: Duration,
    now_ms: u64,
) -> bool {
    let cutoff = now_ms.saturating_sub(retention.as_millis() as u64);
    let before: (usize, usize) = (streams.len(), streams.iter().map(|s| s.shards.len()).sum());
    streams.retain(|s| s.closed_ms.is_none_or(|c| c > cutoff));
    for stream in streams.iter_mut() {
        stream
            .shards
            .retain(|shard| match (shard.end_seq, shard.closed_ms) {
                (Some(end), Some(closed)) => {
                    let horizon = logs
                        .get(shard.partition as usize)
                        .map_or(0, |l| l.horizon());
                    if shard.closed_empty() {
                        closed > cutoff
                    } else {
                        end >= horizon
                    }
                }
                _ => true,
            });
    }
    let after: (usize, usize) = (streams.len(), streams.iter().map(|s| s.shards.len()).sum());
    before != after
}

/// Returns the readers' view of a table's streams.
pub(crate) fn describe(
    table_id: &str,
    streams: &[StreamState],
    logs: &[Arc<ChangeLog>],
) -> Vec<StreamInfo> {
    streams
        .iter()
        .map(|s| StreamInfo {
            label: s.label.clone(),
            view_type: s.view_type,
            created_ms: s.created_ms,
            enabled: s.closed_ms.is_none(),
            shards: s
                .shards
                .iter()
                .map(|shard| {
                    let horizon = logs
                        .get(shard.partition as usize)
                        .map_or(0, |l| l.horizon());
                    let parent = shard.generation.checked_sub(1).and_then(|g| {
                        s.shards
                            .iter()
                            .find(|p| p.partition == shard.partition && p.generation == g)
                            .map(|p| shard_id(table_id, &s.label, p))
                    });
                    ShardInfo {
                        id: shard_id(table_id, &s.label, shard),
                        parent,
                        partition: shard.partition,
                        start_seq: shard.start_seq.max(horizon),
                        closed: shard.end_seq.is_some(),
                        end_seq: shard.end_seq.filter(|_| !shard.closed_empty()),
                    }
                })
                .collect(),
        })
        .collect()
}

/// Trims every change log (drops the segments whose records are all older
/// than the retention), rolls old shards and forgets expired streams and
/// shards. Holds the commit lock: no write group is in flight while a
/// segment is dropped or the streams change.
pub(crate) fn maintain(shared: &crate::state::Shared) -> Result<(), StorageError> {
    let _commit = shared.commit_lock.lock();
    let now = shared.now_ms();
    let cutoff = now.saturating_sub(shared.stream_retention.as_millis() as u64);
    let tables: Vec<_> = shared.tables.read().values().cloned().collect();
    for table in tables {
        let mut dropped = Vec::new();
        for log in &table.logs {
            let mut segments = log.segments.lock();
            let firsts: Vec<u64> = segments.keys().copied().collect();
            for (i, first) in firsts.iter().enumerate() {
                // Every record of a segment is older than the next
                // segment's first one; the newest segment, than its last.
                let newest_ms = match firsts.get(i + 1).and_then(|n| segments.get(n)) {
                    Some(next) => next.first_ms,
                    None => segments.get(first).map_or(u64::MAX, |s| s.last_ms),
                };
                if newest_ms > cutoff {
                    break;
                }
                if let Some(segment) = segments.remove(first) {
                    dropped.push(segment.space);
                }
            }
        }
        let mut streams = table.streams.clone();
        let mut changed = roll_shards(&mut streams, &table.logs, shared.shard_roll, now);
        changed |= forget_expired(&mut streams, &table.logs, shared.stream_retention, now);
        if changed {
            let state = crate::state::TableState {
                streams,
                ..(*table).clone()
            };
            shared.install(state, shared.engine.batch())?;
        }
        shared.drop_spaces(dropped);
    }
    Ok(())
}

/// A table's change logs and streams as carried in a replica's snapshot
/// (see [`crate::Store::export_change_log`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChangeLogExport {
    pub streams: Vec<StreamState>,
    /// One per table partition.
    pub logs: Vec<LogExport>,
}

/// One partition's change log: its next number and its segments.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LogExport {
    pub next_seq: u64,
    pub segments: Vec<SegmentExport>,
}

/// One segment: its first number and its records, encoded as stored.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SegmentExport {
    pub first: u64,
    pub records: Vec<(u64, Vec<u8>)>,
}

/// Copies a table's change logs and streams (under the commit lock: no
/// group appends meanwhile).
pub(crate) fn export(
    shared: &crate::state::Shared,
    table: &str,
) -> Result<ChangeLogExport, StorageError> {
    let _commit = shared.commit_lock.lock();
    let state = shared.table(table)?;
    let view = shared.engine.read_view();
    let mut logs = Vec::with_capacity(state.logs.len());
    for log in &state.logs {
        let segments = log.segment_list();
        let mut out = Vec::with_capacity(segments.len());
        for (first, segment) in segments {
            let mut records = Vec::new();
            for entry in view.range(&segment.space, Bound::Unbounded, Bound::Unbounded, false) {
                let (k, v) = entry?;
                records.push((decode_seq(&k)?, v.to_vec()));
            }
            out.push(SegmentExport { first, records });
        }
        logs.push(LogExport {
            next_seq: log.next_seq.load(Ordering::Acquire),
            segments: out,
        });
    }
    Ok(ChangeLogExport {
        streams: state.streams.clone(),
        logs,
    })
}

/// Replaces a table's change logs and streams with `export`. The table's
/// logs must hold no records yet (a table just created by a snapshot
/// install): segment spaces are named after the table incarnation, so an
/// import into a used log could meet its own names.
pub(crate) fn import(
    shared: &crate::state::Shared,
    table: &str,
    export: ChangeLogExport,
) -> Result<(), StorageError> {
    let _commit = shared.commit_lock.lock();
    let state = shared.table(table)?;
    if export.logs.len() != state.logs.len() {
        return Err(StorageError::InvalidTableDefinition(format!(
            "change log of {} partitions imported into a table of {}",
            export.logs.len(),
            state.logs.len()
        )));
    }
    if state.logs.iter().any(|l| !l.segments.lock().is_empty()) {
        return Err(StorageError::InvalidTableDefinition(format!(
            "change log of table {table} imported over existing records"
        )));
    }
    let mut batch = shared.engine.batch();
    let mut logs = Vec::with_capacity(state.logs.len());
    for (log, imported) in state.logs.iter().zip(export.logs) {
        let mut segments = BTreeMap::new();
        for segment in imported.segments {
            let (Some((_, first_record)), Some((_, last_record))) =
                (segment.records.first(), segment.records.last())
            else {
                continue;
            };
            let first_ms = decode_record(segment.first, first_record)?.created_ms;
            let last_ms = decode_record(segment.first, last_record)?.created_ms;
            let name = log.segment_name(segment.first);
            let space = shared.engine.space(&name)?;
            for (seq, value) in &segment.records {
                batch.put(&space, &seq_key(*seq), value.clone());
            }
            segments.insert(
                segment.first,
                Segment {
                    space,
                    name,
                    first_ms,
                    last_ms,
                },
            );
        }
        batch.put(
            &shared.meta,
            &next_seq_key(&log.name),
            encode_next_seq(imported.next_seq),
        );
        logs.push(shared.new_log(log.name.clone(), imported.next_seq, segments));
    }
    let new_state = crate::state::TableState {
        streams: export.streams,
        logs,
        ..(*state).clone()
    };
    shared.install(new_state, batch)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use partita_model::AttributeValue;

    fn item(pk: &str, v: i64) -> Item {
        let mut i = Item::new();
        i.insert("pk".into(), AttributeValue::S(pk.into()));
        i.insert(
            "v".into(),
            AttributeValue::N(partita_model::Number::from_i64(v)),
        );
        i
    }

    fn keys(pk: &str) -> Item {
        let mut i = Item::new();
        i.insert("pk".into(), AttributeValue::S(pk.into()));
        i
    }

    #[test]
    fn events_and_view_types() {
        let (a, b) = (item("a", 1), item("a", 2));
        let r = build_record(
            keys("a"),
            None,
            Some(&a),
            StreamViewType::NewAndOldImages,
            5,
            false,
        )
        .unwrap();
        assert_eq!(r.event, ChangeEvent::Insert);
        assert_eq!((r.old.as_ref(), r.new.as_ref()), (None, Some(&a)));
        let r = build_record(
            keys("a"),
            Some(&a),
            Some(&b),
            StreamViewType::OldImage,
            5,
            false,
        )
        .unwrap();
        assert_eq!(r.event, ChangeEvent::Modify);
        assert_eq!((r.old.as_ref(), r.new.as_ref()), (Some(&a), None));
        let r = build_record(keys("a"), Some(&a), None, StreamViewType::NewImage, 5, true).unwrap();
        assert_eq!(r.event, ChangeEvent::Remove);
        assert!(r.old.is_none() && r.new.is_none() && r.by_ttl);
        let r = build_record(
            keys("a"),
            Some(&a),
            Some(&b),
            StreamViewType::KeysOnly,
            5,
            false,
        )
        .unwrap();
        assert!(r.old.is_none() && r.new.is_none());
        assert_eq!(r.size_bytes, item_size(&keys("a")) as u64);
        let r = build_record(
            keys("a"),
            Some(&a),
            Some(&b),
            StreamViewType::NewAndOldImages,
            5,
            false,
        )
        .unwrap();
        assert_eq!(
            r.size_bytes,
            (item_size(&keys("a")) + item_size(&a) + item_size(&b)) as u64
        );
    }

    #[test]
    fn unchanged_items_make_no_record() {
        let a = item("a", 1);
        for view in [StreamViewType::KeysOnly, StreamViewType::NewAndOldImages] {
            assert!(build_record(keys("a"), Some(&a), Some(&a.clone()), view, 1, false).is_none());
            assert!(build_record(keys("a"), None, None, view, 1, false).is_none());
        }
    }

    #[test]
    fn records_round_trip_with_version_byte() {
        let (a, b) = (item("a", 1), item("a", 2));
        let mut r = build_record(
            keys("a"),
            Some(&a),
            Some(&b),
            StreamViewType::NewAndOldImages,
            1234,
            true,
        )
        .unwrap();
        r.seq = 42;
        let bytes = encode_record(&r);
        assert_eq!(bytes[0], RECORD_FORMAT_V1);
        assert_eq!(decode_record(42, &bytes).unwrap(), r);
        assert!(decode_record(42, &[9]).is_err());
        assert!(decode_record(42, &bytes[..bytes.len() - 1]).is_err());
        r.origin = Some(crate::replica::Version {
            ts_us: 1_700_000_000_000_001,
            region: "eu-west-1".into(),
        });
        let bytes = encode_record(&r);
        assert_eq!(bytes[0], RECORD_FORMAT_V2);
        assert_eq!(decode_record(42, &bytes).unwrap(), r);
        assert!(decode_record(42, &bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn segment_names_parse() {
        assert_eq!(segment_first("s.t1.0", "s.t1.0.17"), Some(17));
        assert_eq!(segment_first("s.t1.0", "s.t1.01.17"), None);
        assert_eq!(segment_first("s.t1.0", "s.t1.0"), None);
    }

    #[test]
    fn empty_closed_shard_ends_below_its_start() {
        let mut shard = ShardState {
            partition: 0,
            generation: 0,
            start_seq: 5,
            end_seq: None,
            created_ms: 0,
            closed_ms: None,
        };
        close_shard(&mut shard, 5, 1);
        assert_eq!(shard.end_seq, Some(4));
        shard.end_seq = None;
        close_shard(&mut shard, 9, 1);
        assert_eq!(shard.end_seq, Some(8));
        let mut first = ShardState {
            start_seq: 0,
            end_seq: None,
            ..shard
        };
        close_shard(&mut first, 0, 1);
        assert_eq!(first.end_seq, Some(u64::MAX));
        assert!(first.closed_empty());
        shard.end_seq = None;
        close_shard(&mut shard, 5, 1);
        assert!(shard.closed_empty());
    }
}
