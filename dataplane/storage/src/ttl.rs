//! Time to live: the sweeper that deletes expired items.
//!
//! An item is expired when the table's TTL attribute holds a Number (epoch
//! seconds) that is at most now and — as in DynamoDB — not more than five
//! years in the past. Items whose attribute is missing or of another type
//! never expire. Expired items stay readable until the sweeper deletes them
//! (reads do not filter them, like DynamoDB's).
//!
//! Each sweep reads every partition of every table with TTL enabled from a
//! snapshot and submits the expired keys to the writer as
//! [`Command::Expire`]: a delete whose condition ([`still_expired`]) is
//! evaluated again at apply time, in write order. An item updated to a later
//! expiry (or whose TTL attribute was removed) after the snapshot therefore
//! fails the condition and stays. The delete's stream record carries the TTL
//! service's identity.
//!
//! Cost: a sweep reads the TTL tables whole. That is fine for the
//! standalone server's sizes; an expiry index kept in the write batch would
//! let a sweep read only what expired.

use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use partita_expr::{CompareOp, Condition, Operand, Path, PathElement};
use partita_model::{AttributeValue, Number};

use crate::codec::decode_item;
use crate::commit::{Command, WriterHandle};
use crate::state::Shared;
use crate::StorageError;

/// Five years, in seconds: older expiry times are left alone, as in DynamoDB.
pub const MAX_EXPIRED_AGE_SECS: i64 = 5 * 365 * 24 * 3600;

/// Keys submitted to the writer per command group.
const SWEEP_CHUNK: usize = 256;

/// Returns the condition under which the TTL sweeper deletes an item:
/// `attribute` is a Number within [now - 5 years, now].
pub fn still_expired(attribute: &str, now_secs: i64) -> Condition {
    let path = || Operand::Path(Path(vec![PathElement::Attribute(attribute.to_string())]));
    let number = |v: i64| Operand::Value(AttributeValue::N(Number::from_i64(v)));
    Condition::And(
        Box::new(Condition::Compare(path(), CompareOp::Le, number(now_secs))),
        Box::new(Condition::Compare(
            path(),
            CompareOp::Ge,
            number(now_secs.saturating_sub(MAX_EXPIRED_AGE_SECS)),
        )),
    )
}

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepStats {
    /// Items found expired in the snapshot.
    pub candidates: u64,
    /// Items deleted.
    pub deleted: u64,
}

/// An item found expired: what [`crate::Store::expire`] deletes if it is
/// still expired when the delete applies.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Expiry {
    pub table: String,
    /// The table incarnation the item was read from.
    pub table_id: String,
    pub key: partita_model::Item,
    /// The table's TTL attribute when the item was read.
    pub attribute: String,
}

/// Visits the items expired at `now_secs` of every table with TTL enabled
/// (one snapshot per table) until `visit` returns false or the store stops.
fn for_each_expired(
    shared: &Shared,
    now_secs: i64,
    visit: &mut dyn FnMut(Expiry) -> bool,
) -> Result<(), StorageError> {
    let tables: Vec<_> = shared.tables.read().values().cloned().collect();
    for table in tables {
        let Some(ttl) = table.def.ttl.as_ref().filter(|t| t.enabled) else {
            continue;
        };
        let condition = still_expired(&ttl.attribute_name, now_secs);
        let view = shared.engine.read_view();
        for partition in &table.partitions {
            for entry in view.range(&partition.space, Bound::Unbounded, Bound::Unbounded, false) {
                if shared.stopping.load(Ordering::Acquire) {
                    return Ok(());
                }
                let (_, value) = entry?;
                let item = decode_item(&value).map_err(|e| StorageError::Corrupt {
                    what: "item",
                    detail: e.to_string(),
                })?;
                if !condition.evaluate(Some(&item)).unwrap_or(false) {
                    continue;
                }
                let Some(key) = table.def.key_schema.extract_key(&item) else {
                    continue;
                };
                let more = visit(Expiry {
                    table: table.def.name.clone(),
                    table_id: table.def.table_id.clone(),
                    key,
                    attribute: ttl.attribute_name.clone(),
                });
                if !more {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// Returns up to `limit` items expired at `now_secs`.
pub(crate) fn expired(
    shared: &Shared,
    now_secs: i64,
    limit: usize,
) -> Result<Vec<Expiry>, StorageError> {
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    for_each_expired(shared, now_secs, &mut |e| {
        out.push(e);
        out.len() < limit
    })?;
    Ok(out)
}

/// Runs one sweep over every table with TTL enabled at `now_secs`.
pub(crate) fn sweep(
    shared: &Arc<Shared>,
    writer: &WriterHandle,
    now_secs: i64,
) -> Result<SweepStats, StorageError> {
    let mut stats = SweepStats::default();
    let mut chunk = Vec::new();
    let flush = |chunk: &mut Vec<(String, Command)>, stats: &mut SweepStats| {
        if chunk.is_empty() {
            return;
        }
        let answers = writer.submit_blocking(std::mem::take(chunk));
        stats.deleted += answers
            .iter()
            .filter(|a| a.as_ref().is_ok_and(|o| o.old.is_some()))
            .count() as u64;
    };
    for_each_expired(shared, now_secs, &mut |e| {
        stats.candidates += 1;
        chunk.push((
            e.table,
            Command::Expire {
                table_id: e.table_id,
                key: e.key,
                attribute: e.attribute,
                now_secs,
            },
        ));
        if chunk.len() >= SWEEP_CHUNK {
            flush(&mut chunk, &mut stats);
        }
        true
    })?;
    flush(&mut chunk, &mut stats);
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use partita_model::Item;

    fn item(ttl: AttributeValue) -> Item {
        let mut i = Item::new();
        i.insert("pk".into(), AttributeValue::S("a".into()));
        i.insert("exp".into(), ttl);
        i
    }

    fn n(v: &str) -> AttributeValue {
        AttributeValue::N(Number::parse(v).unwrap())
    }

    #[test]
    fn only_numbers_in_the_window_are_expired() {
        let now = 1_800_000_000;
        let c = still_expired("exp", now);
        let expired = |v| c.evaluate(Some(&item(v))).unwrap();
        assert!(expired(n("1800000000")));
        assert!(expired(n("1799999999.5")));
        assert!(!expired(n("1800000001")));
        assert!(!expired(n(&(now - MAX_EXPIRED_AGE_SECS - 1).to_string())));
        assert!(!expired(AttributeValue::S("1".into())));
        assert!(!c.evaluate(Some(&Item::new())).unwrap());
    }
}
