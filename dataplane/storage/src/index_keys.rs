//! Order-preserving encoding of secondary index entry keys.
//!
//! Layout of an index entry's engine key (format version 1):
//!
//! ```text
//! hash64(index partition key)     8 big-endian bytes, as for items
//! ++ escaped(index partition key)
//! ++ escaped(index sort key)      only when the index has a sort key
//! ++ escaped(base partition key)  global indexes only (a local index shares it)
//! ++ base sort key bytes          raw; absent for hash-only tables
//! ```
//!
//! "escaped" is the self-delimiting, order-preserving escaping of
//! [`crate::keys`] (`0x00` → `0x00 0xFF`, terminated by `0x00 0x01`). Every
//! component but the last is escaped, so a shorter value never interleaves
//! with a longer one that it prefixes: entries sort by index partition key
//! (hash order first), then index sort key in DynamoDB's order, then base
//! key, and two base items always give distinct entry keys.
//!
//! A Query on an index therefore reads one contiguous run of keys: those
//! starting with `hash ++ escaped(index pk)`, narrowed by the sort condition
//! on the escaped sort key component ([`index_query_range`]).

use std::ops::Bound;

use partita_expr::SortKeyCondition;
use partita_model::{AttributeValue, Item, KeySchema, ScalarType};

use crate::keys::{hash_tagged, prefix_successor, push_escaped, scalar_bytes, storable, KeyRange};
use crate::StorageError;

/// Whether an index shares the table's partition key (local) or not (global).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexKind {
    Local,
    Global,
}

/// An encoded index entry key and the hash of its index partition key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexKey {
    pub bytes: Vec<u8>,
    pub hash: u64,
}

fn push_scalar_escaped(
    out: &mut Vec<u8>,
    expected: ScalarType,
    value: &AttributeValue,
) -> Result<(), StorageError> {
    let (_, bytes) = scalar_bytes(expected, value)?;
    push_escaped(out, &bytes);
    Ok(())
}

/// Returns the prefix shared by every entry of one index partition key value
/// (`hash ++ escaped(value)`), and the value's hash.
pub fn index_prefix(
    index: &KeySchema,
    hash_value: &AttributeValue,
) -> Result<(Vec<u8>, u64), StorageError> {
    let (tag, bytes) = scalar_bytes(index.hash.scalar_type, hash_value)?;
    let hash = hash_tagged(tag, &bytes);
    let mut out = Vec::with_capacity(8 + bytes.len() + 4 + 32);
    out.extend_from_slice(&hash.to_be_bytes());
    push_escaped(&mut out, &bytes);
    Ok((out, hash))
}

fn attribute<'a>(item: &'a Item, name: &str) -> Result<&'a AttributeValue, StorageError> {
    item.get(name)
        .ok_or_else(|| StorageError::InvalidKey(format!("missing the key attribute {name}")))
}

/// Encodes the index entry key of `item`, which must hold the table's key
/// attributes and the index's key attributes (of the right types).
pub fn encode_index_key(
    table: &KeySchema,
    index: &KeySchema,
    kind: IndexKind,
    item: &Item,
) -> Result<IndexKey, StorageError> {
    let (mut bytes, hash) = index_prefix(index, attribute(item, &index.hash.name)?)?;
    if let Some(range) = &index.range {
        push_scalar_escaped(&mut bytes, range.scalar_type, attribute(item, &range.name)?)?;
    }
    if kind == IndexKind::Global {
        push_scalar_escaped(
            &mut bytes,
            table.hash.scalar_type,
            attribute(item, &table.hash.name)?,
        )?;
    }
    if let Some(range) = &table.range {
        let (_, sort) = scalar_bytes(range.scalar_type, attribute(item, &range.name)?)?;
        bytes.extend_from_slice(&sort);
    }
    Ok(IndexKey {
        bytes: storable(bytes)?,
        hash,
    })
}

/// Returns the key range of a Query on an index: one index partition key
/// value, restricted by a condition on the index sort key.
pub fn index_query_range(
    index: &KeySchema,
    hash_value: &AttributeValue,
    sort: Option<&SortKeyCondition>,
) -> Result<(KeyRange, u64), StorageError> {
    let (prefix, hash) = index_prefix(index, hash_value)?;
    let upper = match prefix_successor(&prefix) {
        Some(s) => Bound::Excluded(s),
        None => Bound::Unbounded,
    };
    let mut range = KeyRange {
        lower: Bound::Included(prefix.clone()),
        upper,
    };
    let Some(sort) = sort else {
        return Ok((range, hash));
    };
    let Some(sort_attr) = &index.range else {
        return Err(StorageError::InvalidKey("the index has no sort key".into()));
    };
    let t = sort_attr.scalar_type;
    // Every key whose sort key equals `v` starts with `with(v)`.
    let with = |v: &AttributeValue| -> Result<Vec<u8>, StorageError> {
        let mut key = prefix.clone();
        push_scalar_escaped(&mut key, t, v)?;
        Ok(key)
    };
    // The first key above every key whose sort key equals `v`.
    let after = |v: &AttributeValue| -> Result<Bound<Vec<u8>>, StorageError> {
        Ok(match prefix_successor(&with(v)?) {
            Some(s) => Bound::Excluded(s),
            None => Bound::Unbounded,
        })
    };
    let lower_after = |v: &AttributeValue| -> Result<Bound<Vec<u8>>, StorageError> {
        Ok(match after(v)? {
            Bound::Excluded(s) => Bound::Included(s),
            other => other,
        })
    };
    match sort {
        SortKeyCondition::Eq(v) => {
            range.tighten_lower(Bound::Included(with(v)?));
            range.tighten_upper(after(v)?);
        }
        SortKeyCondition::Lt(v) => range.tighten_upper(Bound::Excluded(with(v)?)),
        SortKeyCondition::Le(v) => range.tighten_upper(after(v)?),
        SortKeyCondition::Gt(v) => range.tighten_lower(lower_after(v)?),
        SortKeyCondition::Ge(v) => range.tighten_lower(Bound::Included(with(v)?)),
        SortKeyCondition::Between(a, b) => {
            range.tighten_lower(Bound::Included(with(a)?));
            range.tighten_upper(after(b)?);
        }
        SortKeyCondition::BeginsWith(v) => {
            if matches!(v, AttributeValue::N(_)) {
                return Err(StorageError::InvalidKey(
                    "begins_with does not apply to a number sort key".into(),
                ));
            }
            // The escaped value without its terminator prefixes exactly the
            // escaped sort keys that start with the value.
            let (_, bytes) = scalar_bytes(t, v)?;
            let mut key = prefix.clone();
            push_escaped(&mut key, &bytes);
            key.truncate(key.len() - 2);
            if let Some(s) = prefix_successor(&key) {
                range.tighten_upper(Bound::Excluded(s));
            }
            range.tighten_lower(Bound::Included(key));
        }
    }
    Ok((range, hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use partita_model::{KeyAttribute, Number};
    use proptest::prelude::*;
    use std::cmp::Ordering;

    fn attr(name: &str, t: ScalarType) -> KeyAttribute {
        KeyAttribute {
            name: name.into(),
            scalar_type: t,
        }
    }

    fn table() -> KeySchema {
        KeySchema {
            hash: attr("pk", ScalarType::S),
            range: Some(attr("sk", ScalarType::B)),
        }
    }

    fn index(t: ScalarType) -> KeySchema {
        KeySchema {
            hash: attr("ipk", ScalarType::S),
            range: Some(attr("isk", t)),
        }
    }

    fn dynamo_cmp(a: &AttributeValue, b: &AttributeValue) -> Ordering {
        match (a, b) {
            (AttributeValue::S(a), AttributeValue::S(b)) => a.as_bytes().cmp(b.as_bytes()),
            (AttributeValue::B(a), AttributeValue::B(b)) => a.cmp(b),
            (AttributeValue::N(a), AttributeValue::N(b)) => a.cmp(b),
            _ => unreachable!("same types only"),
        }
    }

    fn scalar(t: ScalarType) -> BoxedStrategy<AttributeValue> {
        match t {
            ScalarType::S => "[a\\x00b]{0,4}".prop_map(AttributeValue::S).boxed(),
            ScalarType::B => {
                prop::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(255u8)], 0..4)
                    .prop_map(AttributeValue::B)
                    .boxed()
            }
            ScalarType::N => (-50i64..50, -3i32..3)
                .prop_map(|(m, e)| AttributeValue::N(Number::parse(&format!("{m}E{e}")).unwrap()))
                .boxed(),
        }
    }

    fn scalar_type() -> impl Strategy<Value = ScalarType> {
        prop_oneof![
            Just(ScalarType::S),
            Just(ScalarType::N),
            Just(ScalarType::B)
        ]
    }

    fn entry(ipk: &str, isk: &AttributeValue, pk: &str, sk: &[u8]) -> Item {
        let mut item = Item::new();
        item.insert("ipk".into(), AttributeValue::S(ipk.into()));
        item.insert("isk".into(), isk.clone());
        item.insert("pk".into(), AttributeValue::S(pk.into()));
        item.insert("sk".into(), AttributeValue::B(sk.to_vec()));
        item
    }

    proptest! {
        /// Entries of one index partition key sort by index sort key first,
        /// whatever base keys follow; equal index sort keys sort by base key.
        #[test]
        fn entry_order_is_index_sort_key_order(
            (t, a, b) in scalar_type().prop_flat_map(|t| (Just(t), scalar(t), scalar(t))),
            pa in "[a\\x00]{0,3}", pb in "[a\\x00]{0,3}",
            sa in prop::collection::vec(any::<u8>(), 0..3),
            sb in prop::collection::vec(any::<u8>(), 0..3),
            global in any::<bool>(),
        ) {
            let kind = if global { IndexKind::Global } else { IndexKind::Local };
            let ka = encode_index_key(&table(), &index(t), kind, &entry("x", &a, &pa, &sa)).unwrap();
            let kb = encode_index_key(&table(), &index(t), kind, &entry("x", &b, &pb, &sb)).unwrap();
            match dynamo_cmp(&a, &b) {
                Ordering::Equal => {
                    if ka.bytes == kb.bytes {
                        prop_assert!(sa == sb && (!global || pa == pb));
                    }
                }
                o => prop_assert_eq!(ka.bytes.cmp(&kb.bytes), o),
            }
        }

        /// An index query range holds exactly the entries whose index sort key
        /// satisfies the condition.
        #[test]
        fn index_query_range_matches_condition(
            (t, v, w, probe, op) in scalar_type().prop_flat_map(|t| (Just(t), scalar(t), scalar(t), scalar(t), 0u8..7)),
            pk in "[a\\x00]{0,3}",
            sk in prop::collection::vec(any::<u8>(), 0..3),
        ) {
            let cond = match op {
                0 => SortKeyCondition::Eq(v.clone()),
                1 => SortKeyCondition::Lt(v.clone()),
                2 => SortKeyCondition::Le(v.clone()),
                3 => SortKeyCondition::Gt(v.clone()),
                4 => SortKeyCondition::Ge(v.clone()),
                5 => SortKeyCondition::Between(v.clone(), w.clone()),
                _ => SortKeyCondition::BeginsWith(v.clone()),
            };
            let result = index_query_range(&index(t), &AttributeValue::S("x".into()), Some(&cond));
            if op == 6 && t == ScalarType::N {
                prop_assert!(result.is_err());
                return Ok(());
            }
            let (range, _) = result.unwrap();
            let key = encode_index_key(&table(), &index(t), IndexKind::Global, &entry("x", &probe, &pk, &sk)).unwrap();
            let c = dynamo_cmp(&probe, &v);
            let expected = match op {
                0 => c == Ordering::Equal,
                1 => c == Ordering::Less,
                2 => c != Ordering::Greater,
                3 => c == Ordering::Greater,
                4 => c != Ordering::Less,
                5 => c != Ordering::Less && dynamo_cmp(&probe, &w) != Ordering::Greater,
                _ => match (&probe, &v) {
                    (AttributeValue::S(p), AttributeValue::S(v)) => p.as_bytes().starts_with(v.as_bytes()),
                    (AttributeValue::B(p), AttributeValue::B(v)) => p.starts_with(v),
                    _ => unreachable!(),
                },
            };
            prop_assert_eq!(range.contains(&key.bytes), expected);
            let other = encode_index_key(&table(), &index(t), IndexKind::Global, &entry("x\u{0}", &probe, &pk, &sk)).unwrap();
            prop_assert!(!range.contains(&other.bytes));
        }
    }

    #[test]
    fn missing_index_attributes_are_errors() {
        let mut item = entry("x", &AttributeValue::B(vec![]), "p", b"s");
        item.remove("isk");
        assert!(
            encode_index_key(&table(), &index(ScalarType::B), IndexKind::Local, &item).is_err()
        );
        assert!(index_query_range(
            &KeySchema {
                hash: attr("ipk", ScalarType::S),
                range: None
            },
            &AttributeValue::S("x".into()),
            Some(&SortKeyCondition::Eq(AttributeValue::S("a".into())))
        )
        .is_err());
    }
}
