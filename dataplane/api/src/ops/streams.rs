//! The DynamoDB Streams API (`DynamoDBStreams_20120810.*`), served on the
//! DynamoDB endpoint: ListStreams, DescribeStream, GetShardIterator and
//! GetRecords over the storage's change logs.
//!
//! - A stream is named by its ARN, the table ARN plus `/stream/<label>`;
//!   its shards are the storage's (one per table partition, plus children
//!   when a shard rolls). Sequence numbers are the log positions, rendered
//!   as 21-digit decimal strings (the SDKs' minimum length).
//! - Shard iterators are opaque: `base64url(payload).base64url(mac)`, where
//!   the payload names the table incarnation, stream, shard, position and
//!   creation time, and the mac is an HMAC-SHA256 (truncated to 16 bytes)
//!   under a key kept in the store, so iterators survive restarts but
//!   cannot be forged or altered. They expire after 15 minutes
//!   (ExpiredIteratorException); one positioned below the shard's trim
//!   horizon reads TrimmedDataAccessException.
//! - Records are shaped as the SDKs parse them (`eventID`, `eventName`,
//!   `eventVersion` 1.1, `eventSource` aws:dynamodb, `awsRegion`, and
//!   `dynamodb` with epoch-seconds `ApproximateCreationDateTime`); deletes
//!   made by the TTL sweeper carry `userIdentity` {Type: Service,
//!   PrincipalId: dynamodb.amazonaws.com}.

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use partita_model::TableDefinition;
use partita_storage::{ChangeRecord, ShardInfo, StreamInfo};
use serde_json::{json, Map as JsonMap, Value};
use sha2::{Digest, Sha256};

use super::describe::{key_schema_json, now_ms};
use super::table_spec::{check_enum, check_length};
use crate::codec::item_to_json;
use crate::error::{ApiError, ErrorKind};
use crate::request::{quoted, Request, Violations};
use crate::Api;

/// How long a shard iterator stays valid: 15 minutes, like DynamoDB's.
pub const ITERATOR_LIFETIME_MS: u64 = 15 * 60 * 1000;
/// Name of the store secret that signs iterators.
const ITERATOR_SECRET: &str = "stream-iterators";
const ITERATOR_VERSION: &str = "1";
const ITERATOR_TYPES: [&str; 4] = [
    "TRIM_HORIZON",
    "LATEST",
    "AT_SEQUENCE_NUMBER",
    "AFTER_SEQUENCE_NUMBER",
];

/// Runs the Streams operation named `op`.
pub async fn dispatch(api: &Api, op: &str, req: Request) -> Result<Value, ApiError> {
    match op {
        "ListStreams" => list_streams(api, &req),
        "DescribeStream" => describe_stream(api, &req),
        "GetShardIterator" => get_shard_iterator(api, &req),
        "GetRecords" => get_records(api, &req),
        _ => Err(ApiError::new(
            ErrorKind::UnknownOperation,
            format!("The operation {op} is not supported by this server"),
        )),
    }
}

/// Returns the ARN of stream `label` of `table`.
pub fn stream_arn(api: &Api, table: &str, label: &str) -> String {
    format!("{}/stream/{label}", api.table_arn(table))
}

/// Splits a stream ARN of this endpoint into (table, label).
fn parse_stream_arn<'a>(api: &Api, arn: &'a str) -> Option<(&'a str, &'a str)> {
    let prefix = api.table_arn("");
    let (table, label) = arn.strip_prefix(&prefix)?.split_once("/stream/")?;
    (!table.is_empty() && !label.is_empty()).then_some((table, label))
}

/// Renders a sequence number.
pub fn format_seq(seq: u64) -> String {
    format!("{seq:021}")
}

fn parse_seq(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.trim_start_matches('0').parse().ok().or_else(|| {
        // All zeros.
        s.bytes().all(|b| b == b'0').then_some(0)
    })
}

fn stream_not_found(arn: &str) -> ApiError {
    ApiError::new(
        ErrorKind::ResourceNotFound,
        format!("Requested resource not found: Stream: {arn} not found"),
    )
}

fn shard_not_found(shard: &str, arn: &str) -> ApiError {
    ApiError::new(
        ErrorKind::ResourceNotFound,
        format!("Requested resource not found: Shard: {shard} in Stream: {arn} not found"),
    )
}

fn trimmed() -> ApiError {
    ApiError::new(
        ErrorKind::TrimmedDataAccess,
        "The operation attempted to read past the oldest stream record in a shard.",
    )
}

/// A located stream: the table's definition, its incarnation id and the
/// stream as the storage describes it.
struct Located {
    def: TableDefinition,
    table_id: String,
    stream: StreamInfo,
}

fn locate(api: &Api, arn: &str) -> Result<Located, ApiError> {
    let (table, label) = parse_stream_arn(api, arn).ok_or_else(|| stream_not_found(arn))?;
    let def = api.store.table(table).map_err(|_| stream_not_found(arn))?;
    let (table_id, streams) = api
        .store
        .streams(table)
        .map_err(|_| stream_not_found(arn))?;
    let stream = streams
        .into_iter()
        .find(|s| s.label == label)
        .ok_or_else(|| stream_not_found(arn))?;
    Ok(Located {
        def,
        table_id,
        stream,
    })
}

fn limit_member(
    v: &mut Violations,
    req: &Request,
    path: &str,
    max: i64,
) -> Result<Option<usize>, ApiError> {
    let Some(limit) = req.i64("Limit")? else {
        return Ok(None);
    };
    if limit < 1 {
        v.push(
            &limit.to_string(),
            path,
            "Member must have value greater than or equal to 1",
        );
    }
    if limit > max {
        v.push(
            &limit.to_string(),
            path,
            &format!("Member must have value less than or equal to {max}"),
        );
    }
    Ok(Some(limit.clamp(1, max) as usize))
}

fn stream_arn_member<'a>(v: &mut Violations, req: &'a Request) -> Result<&'a str, ApiError> {
    let arn = req.str("StreamArn")?;
    match arn {
        None => v.push_null("streamArn"),
        Some(a) => check_length(v, a, "streamArn", 37, 1024),
    }
    Ok(arn.unwrap_or_default())
}

fn list_streams(api: &Api, req: &Request) -> Result<Value, ApiError> {
    let mut v = Violations::new();
    let limit = limit_member(&mut v, req, "limit", 100)?.unwrap_or(100);
    let table = req.str("TableName")?;
    if let Some(t) = table {
        check_length(&mut v, t, "tableName", 3, 255);
    }
    let start = req.str("ExclusiveStartStreamArn")?;
    if let Some(s) = start {
        check_length(&mut v, s, "exclusiveStartStreamArn", 37, 1024);
    }
    v.into_result()?;
    let tables = match table {
        Some(t) => vec![t.to_string()],
        None => api.store.list_tables(),
    };
    let mut all: Vec<(String, String, String)> = Vec::new();
    for name in tables {
        let Ok((_, streams)) = api.store.streams(&name) else {
            continue;
        };
        for s in streams {
            all.push((stream_arn(api, &name, &s.label), name.clone(), s.label));
        }
    }
    all.sort();
    let from = match start {
        Some(s) => all.partition_point(|(arn, _, _)| arn.as_str() <= s),
        None => 0,
    };
    let rest = all.get(from..).unwrap_or_default();
    let page = rest.get(..limit.min(rest.len())).unwrap_or_default();
    let mut out = JsonMap::new();
    out.insert(
        "Streams".into(),
        Value::Array(
            page.iter()
                .map(|(arn, table, label)| {
                    json!({"StreamArn": arn, "TableName": table, "StreamLabel": label})
                })
                .collect(),
        ),
    );
    if rest.len() > page.len() {
        if let Some((arn, _, _)) = page.last() {
            out.insert("LastEvaluatedStreamArn".into(), json!(arn));
        }
    }
    Ok(Value::Object(out))
}

fn shard_json(shard: &ShardInfo) -> Value {
    let mut range = JsonMap::new();
    range.insert(
        "StartingSequenceNumber".into(),
        json!(format_seq(shard.start_seq)),
    );
    if shard.closed {
        // A shard that closed empty shows a one-number range at its start.
        let end = shard.end_seq.unwrap_or(shard.start_seq);
        range.insert("EndingSequenceNumber".into(), json!(format_seq(end)));
    }
    let mut out = JsonMap::new();
    out.insert("ShardId".into(), json!(shard.id));
    out.insert("SequenceNumberRange".into(), Value::Object(range));
    if let Some(parent) = &shard.parent {
        out.insert("ParentShardId".into(), json!(parent));
    }
    Value::Object(out)
}

fn describe_stream(api: &Api, req: &Request) -> Result<Value, ApiError> {
    let mut v = Violations::new();
    let arn = stream_arn_member(&mut v, req)?;
    let limit = limit_member(&mut v, req, "limit", 100)?.unwrap_or(100);
    let start = req.str("ExclusiveStartShardId")?;
    if let Some(s) = start {
        check_length(&mut v, s, "exclusiveStartShardId", 28, 65);
    }
    v.into_result()?;
    let located = locate(api, arn)?;
    let stream = &located.stream;
    let shards = &stream.shards;
    let from = match start {
        Some(id) => shards
            .iter()
            .position(|s| s.id == id)
            .map_or(shards.len(), |i| i + 1),
        None => 0,
    };
    let rest = shards.get(from..).unwrap_or_default();
    let page = rest.get(..limit.min(rest.len())).unwrap_or_default();
    let mut out = JsonMap::new();
    out.insert("StreamArn".into(), json!(arn));
    out.insert("StreamLabel".into(), json!(stream.label));
    out.insert(
        "StreamStatus".into(),
        json!(if stream.enabled {
            "ENABLED"
        } else {
            "DISABLED"
        }),
    );
    out.insert("StreamViewType".into(), json!(stream.view_type.as_str()));
    out.insert(
        "CreationRequestDateTime".into(),
        json!(stream.created_ms as f64 / 1000.0),
    );
    out.insert("TableName".into(), json!(located.def.name));
    out.insert("KeySchema".into(), key_schema_json(&located.def.key_schema));
    out.insert(
        "Shards".into(),
        Value::Array(page.iter().map(shard_json).collect()),
    );
    if rest.len() > page.len() {
        if let Some(last) = page.last() {
            out.insert("LastEvaluatedShardId".into(), json!(last.id));
        }
    }
    Ok(json!({ "StreamDescription": out }))
}

/// What a shard iterator encodes.
#[derive(Clone, Debug, PartialEq, Eq)]
struct IteratorState {
    created_ms: u64,
    table_id: String,
    partition: u32,
    position: u64,
    label: String,
    shard_id: String,
    table: String,
}

type HmacSha256 = Hmac<Sha256>;

fn iterator_key(api: &Api) -> Result<[u8; 32], ApiError> {
    api.store.secret(ITERATOR_SECRET).map_err(|e| {
        tracing::error!(error = %e, "reading the stream iterator key failed");
        ApiError::internal()
    })
}

fn mac_of(key: &[u8; 32], payload: &[u8]) -> Result<Vec<u8>, ApiError> {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).map_err(|_| ApiError::internal())?;
    mac.update(payload);
    Ok(mac.finalize().into_bytes()[..16].to_vec())
}

fn encode_iterator(key: &[u8; 32], state: &IteratorState) -> Result<String, ApiError> {
    // Table names, labels and shard ids never contain '|'.
    let payload = format!(
        "{ITERATOR_VERSION}|{}|{}|{}|{}|{}|{}|{}",
        state.created_ms,
        state.table_id,
        state.partition,
        state.position,
        state.label,
        state.shard_id,
        state.table
    );
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mac = mac_of(key, payload.as_bytes())?;
    Ok(format!("{}.{}", b64.encode(payload), b64.encode(mac)))
}

fn decode_iterator(key: &[u8; 32], token: &str) -> Option<IteratorState> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (payload, mac) = token.split_once('.')?;
    let payload = b64.decode(payload).ok()?;
    let mac = b64.decode(mac).ok()?;
    let mut check = <HmacSha256 as KeyInit>::new_from_slice(key).ok()?;
    check.update(&payload);
    check.verify_truncated_left(&mac).ok()?;
    let payload = String::from_utf8(payload).ok()?;
    let mut parts = payload.split('|');
    if parts.next()? != ITERATOR_VERSION {
        return None;
    }
    let state = IteratorState {
        created_ms: parts.next()?.parse().ok()?,
        table_id: parts.next()?.to_string(),
        partition: parts.next()?.parse().ok()?,
        position: parts.next()?.parse().ok()?,
        label: parts.next()?.to_string(),
        shard_id: parts.next()?.to_string(),
        table: parts.next()?.to_string(),
    };
    parts.next().is_none().then_some(state)
}

/// Returns the ARN of the stream a shard iterator reads, from its payload
/// alone (not verified: for authorization, which runs before the call
/// verifies the iterator).
pub(crate) fn iterator_stream_arn(api: &Api, token: &str) -> Option<String> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (payload, _) = token.split_once('.')?;
    let payload = String::from_utf8(b64.decode(payload).ok()?).ok()?;
    let parts: Vec<&str> = payload.split('|').collect();
    match parts.as_slice() {
        [ITERATOR_VERSION, _, _, _, _, label, _, table] => Some(stream_arn(api, table, label)),
        _ => None,
    }
}

fn get_shard_iterator(api: &Api, req: &Request) -> Result<Value, ApiError> {
    let mut v = Violations::new();
    let arn = stream_arn_member(&mut v, req)?;
    let shard_id = req.str("ShardId")?;
    match shard_id {
        None => v.push_null("shardId"),
        Some(s) => check_length(&mut v, s, "shardId", 28, 65),
    }
    let kind = req.str("ShardIteratorType")?;
    if kind.is_none() {
        v.push_null("shardIteratorType");
    }
    check_enum(&mut v, kind, "shardIteratorType", &ITERATOR_TYPES);
    let seq = req.str("SequenceNumber")?;
    if let Some(s) = seq {
        check_length(&mut v, s, "sequenceNumber", 21, 40);
    }
    v.into_result()?;
    let (shard_id, kind) = (shard_id.unwrap_or_default(), kind.unwrap_or_default());
    let located = locate(api, arn)?;
    let shard = located
        .stream
        .shards
        .iter()
        .find(|s| s.id == shard_id)
        .ok_or_else(|| shard_not_found(shard_id, arn))?;
    let page = api
        .store
        .read_changes(&located.def.name, shard.partition, u64::MAX, None, 0)
        .map_err(|e| {
            tracing::error!(error = %e, "reading a change log failed");
            ApiError::internal()
        })?;
    // One past the shard's last record: where LATEST starts.
    let shard_next = match (shard.closed, shard.end_seq) {
        (false, _) => page.next_seq.max(shard.start_seq),
        (true, Some(end)) => end + 1,
        (true, None) => shard.start_seq,
    };
    let at = |s: Option<&str>| -> Result<u64, ApiError> {
        let Some(s) = s else {
            return Err(ApiError::validation(format!(
                "Must provide a SequenceNumber for iterator type {kind}"
            )));
        };
        parse_seq(s).ok_or_else(|| {
            ApiError::validation(format!(
                "Invalid SequenceNumber {} for shard {shard_id}",
                quoted(s)
            ))
        })
    };
    let position = match kind {
        "TRIM_HORIZON" => shard.start_seq.max(page.horizon),
        "LATEST" => shard_next,
        "AT_SEQUENCE_NUMBER" => at(seq)?,
        _ => at(seq)?.saturating_add(1),
    };
    if matches!(kind, "AT_SEQUENCE_NUMBER" | "AFTER_SEQUENCE_NUMBER") {
        let given = at(seq)?;
        if given < page.horizon {
            return Err(trimmed());
        }
        let beyond_closed = shard.closed && given >= shard_next;
        if given < shard.start_seq || beyond_closed {
            return Err(ApiError::validation(format!(
                "Invalid SequenceNumber {} for shard {shard_id}",
                format_seq(given)
            )));
        }
    }
    let key = iterator_key(api)?;
    let iterator = encode_iterator(
        &key,
        &IteratorState {
            created_ms: now_ms(),
            table_id: located.table_id,
            partition: shard.partition,
            position,
            label: located.stream.label.clone(),
            shard_id: shard.id.clone(),
            table: located.def.name.clone(),
        },
    )?;
    Ok(json!({ "ShardIterator": iterator }))
}

/// Returns DynamoDB's 32-hex-digit eventID of a record: stable for the
/// same record of the same table incarnation.
fn event_id(table_id: &str, partition: u32, seq: u64) -> String {
    let mut h = Sha256::new();
    h.update(table_id.as_bytes());
    h.update(partition.to_be_bytes());
    h.update(seq.to_be_bytes());
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn record_json(
    api: &Api,
    table_id: &str,
    partition: u32,
    view: &str,
    record: &ChangeRecord,
) -> Value {
    let mut dynamodb = JsonMap::new();
    dynamodb.insert(
        "ApproximateCreationDateTime".into(),
        json!(record.created_ms / 1000),
    );
    dynamodb.insert("Keys".into(), item_to_json(&record.keys));
    if let Some(new) = &record.new {
        dynamodb.insert("NewImage".into(), item_to_json(new));
    }
    if let Some(old) = &record.old {
        dynamodb.insert("OldImage".into(), item_to_json(old));
    }
    dynamodb.insert("SequenceNumber".into(), json!(format_seq(record.seq)));
    dynamodb.insert("SizeBytes".into(), json!(record.size_bytes));
    dynamodb.insert("StreamViewType".into(), json!(view));
    let mut out = JsonMap::new();
    out.insert(
        "eventID".into(),
        json!(event_id(table_id, partition, record.seq)),
    );
    out.insert("eventName".into(), json!(record.event.as_str()));
    out.insert("eventVersion".into(), json!("1.1"));
    out.insert("eventSource".into(), json!("aws:dynamodb"));
    out.insert("awsRegion".into(), json!(api.config.region));
    out.insert("dynamodb".into(), Value::Object(dynamodb));
    if record.by_ttl {
        out.insert(
            "userIdentity".into(),
            // The Streams API's Identity shape (Lambda events spell the
            // members in lower camel case; the API does not).
            json!({"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"}),
        );
    }
    Value::Object(out)
}

fn get_records(api: &Api, req: &Request) -> Result<Value, ApiError> {
    let mut v = Violations::new();
    let token = req.str("ShardIterator")?;
    match token {
        None => v.push_null("shardIterator"),
        Some(t) => check_length(&mut v, t, "shardIterator", 1, 2048),
    }
    let limit = limit_member(&mut v, req, "limit", 1000)?.unwrap_or(1000);
    v.into_result()?;
    let key = iterator_key(api)?;
    let state = decode_iterator(&key, token.unwrap_or_default())
        .ok_or_else(|| ApiError::validation("Invalid ShardIterator"))?;
    let now = now_ms();
    if now.saturating_sub(state.created_ms) > ITERATOR_LIFETIME_MS {
        return Err(ApiError::new(
            ErrorKind::ExpiredIterator,
            format!(
                "Iterator expired. The iterator was created at time {} while right now it is {} which is further in the future than the tolerated delay of {ITERATOR_LIFETIME_MS} milliseconds.",
                super::describe::iso_timestamp(state.created_ms),
                super::describe::iso_timestamp(now)
            ),
        ));
    }
    let arn = stream_arn(api, &state.table, &state.label);
    let located = locate(api, &arn)?;
    if located.table_id != state.table_id {
        return Err(stream_not_found(&arn));
    }
    let Some(shard) = located
        .stream
        .shards
        .iter()
        .find(|s| s.id == state.shard_id)
    else {
        // Forgotten: every record of the shard is past the retention.
        return Err(trimmed());
    };
    let until = match (shard.closed, shard.end_seq) {
        (false, _) => None,
        (true, end) => Some(end),
    };
    let exhausted = |position: u64| match until {
        Some(Some(end)) => position > end,
        Some(None) => true,
        None => false,
    };
    let mut records = Vec::new();
    let mut next = state.position;
    if !exhausted(state.position) {
        let page = api
            .store
            .read_changes(
                &state.table,
                state.partition,
                state.position,
                until.flatten(),
                limit,
            )
            .map_err(|e| {
                tracing::error!(error = %e, "reading a change log failed");
                ApiError::internal()
            })?;
        if state.position < page.horizon {
            return Err(trimmed());
        }
        if let Some(last) = page.records.last() {
            next = last.seq + 1;
        }
        let last_age = page
            .records
            .last()
            .map(|r| Duration::from_millis(now.saturating_sub(r.created_ms)))
            .unwrap_or_default();
        api.metrics.observe_stream_read(
            &state.table,
            state.partition,
            page.records.len(),
            last_age,
        );
        let view = located.stream.view_type.as_str();
        records = page
            .records
            .iter()
            .map(|r| record_json(api, &state.table_id, state.partition, view, r))
            .collect();
    }
    let mut out = JsonMap::new();
    out.insert("Records".into(), Value::Array(records));
    if !exhausted(next) {
        let iterator = encode_iterator(
            &key,
            &IteratorState {
                created_ms: now,
                position: next,
                ..state
            },
        )?;
        out.insert("NextShardIterator".into(), json!(iterator));
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> IteratorState {
        IteratorState {
            created_ms: 1_700_000_000_000,
            table_id: "0f1e2d3c-aaaa-bbbb-cccc-000000000000".into(),
            partition: 3,
            position: 42,
            label: "2026-01-01T00:00:00.000".into(),
            shard_id: "shardId-00000001700000000000-0a1b2c3d".into(),
            table: "Orders.v2_x-y".into(),
        }
    }

    #[test]
    fn iterators_round_trip_and_reject_tampering() {
        let key = [7u8; 32];
        let token = encode_iterator(&key, &state()).unwrap();
        assert_eq!(decode_iterator(&key, &token), Some(state()));
        assert_eq!(decode_iterator(&[8u8; 32], &token), None);
        let (payload, mac) = token.split_once('.').unwrap();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let forged = String::from_utf8(b64.decode(payload).unwrap())
            .unwrap()
            .replace("|42|", "|0|");
        let forged = format!("{}.{mac}", b64.encode(forged));
        assert_eq!(decode_iterator(&key, &forged), None);
        for garbage in ["", ".", "abc", "a.b.c", "!!.??"] {
            assert_eq!(decode_iterator(&key, garbage), None);
        }
    }

    #[test]
    fn sequence_numbers_have_21_digits_and_parse_back() {
        assert_eq!(format_seq(0), "000000000000000000000");
        assert_eq!(format_seq(u64::MAX).len(), 21);
        for n in [0, 1, 42, u64::MAX] {
            assert_eq!(parse_seq(&format_seq(n)), Some(n));
        }
        assert_eq!(parse_seq("12a"), None);
        assert_eq!(parse_seq(""), None);
        assert_eq!(parse_seq("99999999999999999999999"), None);
    }

    #[test]
    fn event_ids_are_stable_and_distinct() {
        let a = event_id("t", 0, 1);
        assert_eq!(a.len(), 32);
        assert_eq!(a, event_id("t", 0, 1));
        assert_ne!(a, event_id("t", 1, 1));
        assert_ne!(a, event_id("t", 0, 2));
    }
}
