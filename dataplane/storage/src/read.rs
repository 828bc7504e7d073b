//! Reads: Get, Query and Scan on tables and on secondary indexes,
//! synchronous and straight from the engine, each over one consistent read
//! view per partition.

use std::ops::Bound;

use partita_expr::SortKeyCondition;
use partita_model::{AttributeValue, Item};

use crate::codec::decode_item;
use crate::engine::Space;
use crate::index_keys::{encode_index_key, index_query_range};
use crate::keys::{self, KeyRange};
use crate::state::{partition_for, ranges_of, Partition, Shared};
use crate::{StorageError, Visit};

fn decode(bytes: &[u8]) -> Result<Item, StorageError> {
    decode_item(bytes).map_err(|e| StorageError::Corrupt {
        what: "item",
        detail: e.to_string(),
    })
}

pub(crate) fn get(shared: &Shared, table: &str, key: &Item) -> Result<Option<Item>, StorageError> {
    let table = shared.table(table)?;
    let key = keys::encode_key(&table.def.key_schema, key)?;
    let partition = table.partition_of(key.hash)?;
    match shared
        .engine
        .read_view()
        .get(&partition.space, &key.bytes)?
    {
        Some(bytes) => decode(&bytes).map(Some),
        None => Ok(None),
    }
}

/// Visits the items of `range` in `space`; returns false when the visitor
/// stopped.
fn visit_range(
    shared: &Shared,
    space: &Space,
    range: &KeyRange,
    reverse: bool,
    visit: &mut dyn FnMut(Item) -> Visit,
) -> Result<bool, StorageError> {
    if range.is_empty() {
        return Ok(true);
    }
    let view = shared.engine.read_view();
    for entry in view.range(space, range.lower.clone(), range.upper.clone(), reverse) {
        let (_, value) = entry?;
        if let Visit::Stop = visit(decode(&value)?) {
            return Ok(false);
        }
    }
    Ok(true)
}

pub(crate) fn query(
    shared: &Shared,
    table: &str,
    hash_value: &AttributeValue,
    sort: Option<&SortKeyCondition>,
    forward: bool,
    exclusive_start: Option<&Item>,
    visit: &mut dyn FnMut(Item) -> Visit,
) -> Result<(), StorageError> {
    let table = shared.table(table)?;
    let schema = &table.def.key_schema;
    let (mut range, hash) = keys::query_range(schema, hash_value, sort)?;
    if let Some(start) = exclusive_start {
        let start = keys::encode_key(schema, start)?.bytes;
        if forward {
            range.tighten_lower(Bound::Excluded(start));
        } else {
            range.tighten_upper(Bound::Excluded(start));
        }
    }
    let partition = table.partition_of(hash)?;
    visit_range(shared, &partition.space, &range, !forward, visit)?;
    Ok(())
}

pub(crate) fn scan(
    shared: &Shared,
    table: &str,
    segment: u32,
    total_segments: u32,
    exclusive_start: Option<&Item>,
    visit: &mut dyn FnMut(Item) -> Visit,
) -> Result<(), StorageError> {
    if total_segments == 0 || segment >= total_segments {
        return Err(StorageError::InvalidSegment {
            segment,
            total_segments,
        });
    }
    let table = shared.table(table)?;
    let start = match exclusive_start {
        Some(key) => Some(keys::encode_key(&table.def.key_schema, key)?.bytes),
        None => None,
    };
    scan_partitions(
        shared,
        &table.partitions,
        segment,
        total_segments,
        start,
        visit,
    )
}

/// Visits scan segment `segment` of `total_segments` over hash-partitioned
/// spaces, after the encoded key `start` when given.
fn scan_partitions(
    shared: &Shared,
    partitions: &[std::sync::Arc<Partition>],
    segment: u32,
    total_segments: u32,
    start_key: Option<Vec<u8>>,
    visit: &mut dyn FnMut(Item) -> Visit,
) -> Result<(), StorageError> {
    let start = keys::range_start(segment, total_segments);
    let end = keys::range_start(segment + 1, total_segments);
    let mut range = KeyRange::of_hashes(start, end);
    if let Some(key) = start_key {
        range.tighten_lower(Bound::Excluded(key));
    }
    for (partition, p_start, p_end) in ranges_of(partitions) {
        if p_start < end
            && start < p_end
            && !visit_range(shared, &partition.space, &range, false, visit)?
        {
            break;
        }
    }
    Ok(())
}

/// Encodes the index entry key of an index page's LastEvaluatedKey.
fn index_start_key(
    table: &crate::state::TableState,
    index: &crate::state::IndexRef<'_>,
    start: &Item,
) -> Result<Vec<u8>, StorageError> {
    Ok(encode_index_key(
        &table.def.key_schema,
        &index.def.key_schema,
        index.kind,
        start,
    )?
    .bytes)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn query_index(
    shared: &Shared,
    table: &str,
    index: &str,
    hash_value: &AttributeValue,
    sort: Option<&SortKeyCondition>,
    forward: bool,
    exclusive_start: Option<&Item>,
    visit: &mut dyn FnMut(Item) -> Visit,
) -> Result<(), StorageError> {
    let table = shared.table(table)?;
    let index = table.index(index)?;
    let (mut range, hash) = index_query_range(&index.def.key_schema, hash_value, sort)?;
    if let Some(start) = exclusive_start {
        let start = index_start_key(&table, &index, start)?;
        if forward {
            range.tighten_lower(Bound::Excluded(start));
        } else {
            range.tighten_upper(Bound::Excluded(start));
        }
    }
    let partition = partition_for(index.partitions, hash)?;
    visit_range(shared, &partition.space, &range, !forward, visit)?;
    Ok(())
}

pub(crate) fn scan_index(
    shared: &Shared,
    table: &str,
    index: &str,
    segment: u32,
    total_segments: u32,
    exclusive_start: Option<&Item>,
    visit: &mut dyn FnMut(Item) -> Visit,
) -> Result<(), StorageError> {
    if total_segments == 0 || segment >= total_segments {
        return Err(StorageError::InvalidSegment {
            segment,
            total_segments,
        });
    }
    let table = shared.table(table)?;
    let index = table.index(index)?;
    let start = match exclusive_start {
        Some(start) => Some(index_start_key(&table, &index, start)?),
        None => None,
    };
    scan_partitions(
        shared,
        index.partitions,
        segment,
        total_segments,
        start,
        visit,
    )
}
