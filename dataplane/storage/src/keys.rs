//! Order-preserving encoding of primary keys, and the hash ranges of
//! partitions and scan segments.
//!
//! Layout of an item's engine key (format version 1, fixed by the on-disk
//! format; a change needs a new keyspace format version):
//!
//! ```text
//! hash64(partition key) as 8 big-endian bytes
//! ++ escaped(partition key bytes)      self-delimiting, see below
//! ++ sort key bytes                    raw; absent for hash-only tables
//! ```
//!
//! - The hash is xxh3-64 over a type tag (`S`, `N` or `B`) followed by the
//!   value's bytes (UTF-8 for S, the bytes for B, [`Number::to_ordered_bytes`]
//!   for N, so equal numbers written differently hash alike). It decides both
//!   the partition that owns a key and the scan order.
//! - The partition key bytes are escaped (`0x00` becomes `0x00 0xFF`) and
//!   terminated by `0x00 0x01`. Inside an escaped value `0x00` is always
//!   followed by `0xFF`, so the terminator cannot occur there: the encoding is
//!   prefix-free (self-delimiting) and preserves bytewise order (the
//!   terminator sorts below any continuation). Two partition keys that share a
//!   hash therefore never interleave, whatever sort key bytes follow: every
//!   key of one partition key value shares the prefix `hash ++ escaped(pk)`
//!   and no other key value starts with it. (A single `0x00` terminator would
//!   not do: `[]` would encode as a prefix of `[0]`.)
//! - The sort key follows unescaped: S and B sort by unsigned bytes (DynamoDB's
//!   order), N by [`Number::to_ordered_bytes`], whose bytewise order is
//!   numeric order.
//!
//! So: Scan order = key order = hash order; a Query reads the contiguous run
//! of one partition key in sort-key order.
//!
//! [`Number::to_ordered_bytes`]: partita_model::Number::to_ordered_bytes

use std::borrow::Cow;
use std::ops::Bound;

use partita_expr::SortKeyCondition;
use partita_model::limits::{MAX_HASH_KEY_SIZE, MAX_RANGE_KEY_SIZE};
use partita_model::{AttributeValue, Item, KeySchema, ScalarType};

use crate::StorageError;

/// Length of the hash prefix of every key.
pub const HASH_LEN: usize = 8;

/// The scalar bytes of a key value and its hash type tag.
pub(crate) fn scalar_bytes(
    expected: ScalarType,
    value: &AttributeValue,
) -> Result<(u8, Cow<'_, [u8]>), StorageError> {
    match (expected, value) {
        (ScalarType::S, AttributeValue::S(s)) => Ok((b'S', Cow::Borrowed(s.as_bytes()))),
        (ScalarType::B, AttributeValue::B(b)) => Ok((b'B', Cow::Borrowed(b.as_slice()))),
        (ScalarType::N, AttributeValue::N(n)) => Ok((b'N', Cow::Owned(n.to_ordered_bytes()))),
        _ => Err(StorageError::InvalidKey(format!(
            "key value of type {} where the key schema says {}",
            value.type_name(),
            expected.as_str()
        ))),
    }
}

pub(crate) fn hash_tagged(tag: u8, bytes: &[u8]) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3Default::new();
    hasher.update(&[tag]);
    hasher.update(bytes);
    hasher.digest()
}

/// Returns the 64-bit hash of a partition key value (type tag + bytes): the
/// value that routes a key to its partition. Fails for non-key types.
pub fn partition_hash(value: &AttributeValue) -> Result<u64, StorageError> {
    let expected = match value {
        AttributeValue::S(_) => ScalarType::S,
        AttributeValue::N(_) => ScalarType::N,
        AttributeValue::B(_) => ScalarType::B,
        other => {
            return Err(StorageError::InvalidKey(format!(
                "a key value cannot be of type {}",
                other.type_name()
            )))
        }
    };
    let (tag, bytes) = scalar_bytes(expected, value)?;
    Ok(hash_tagged(tag, &bytes))
}

/// Appends `bytes` escaped and terminated (prefix-free, order-preserving).
pub(crate) fn push_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0x00, 0x01]);
}

/// Returns the key prefix shared by every item of one partition key value,
/// and the value's hash.
pub fn partition_prefix(
    schema: &KeySchema,
    hash_value: &AttributeValue,
) -> Result<(Vec<u8>, u64), StorageError> {
    let (tag, bytes) = scalar_bytes(schema.hash.scalar_type, hash_value)?;
    let hash = hash_tagged(tag, &bytes);
    let mut out = Vec::with_capacity(HASH_LEN + bytes.len() + 4 + 16);
    out.extend_from_slice(&hash.to_be_bytes());
    push_escaped(&mut out, &bytes);
    Ok((out, hash))
}

/// Returns the bytes a sort key value contributes to a key.
fn sort_bytes(schema: &KeySchema, value: &AttributeValue) -> Result<Vec<u8>, StorageError> {
    let Some(range) = &schema.range else {
        return Err(StorageError::InvalidKey("the table has no sort key".into()));
    };
    Ok(scalar_bytes(range.scalar_type, value)?.1.into_owned())
}

/// An encoded primary key and the hash of its partition key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedKey {
    pub bytes: Vec<u8>,
    pub hash: u64,
}

/// Checks that a key value is within DynamoDB's size limit for its place.
pub(crate) fn check_key_size(
    name: &str,
    value: &AttributeValue,
    max: usize,
) -> Result<(), StorageError> {
    if value.size() > max {
        return Err(StorageError::InvalidKey(format!(
            "the key attribute {name} is {} bytes, over the limit of {max}",
            value.size()
        )));
    }
    Ok(())
}

/// Returns `key` when the engine can store it. Keys built from values within
/// DynamoDB's key size limits are far shorter; this is the last guard.
pub(crate) fn storable<K: AsRef<[u8]>>(key: K) -> Result<K, StorageError> {
    let len = key.as_ref().len();
    if len > crate::engine::MAX_KEY_LEN {
        return Err(StorageError::InvalidKey(format!(
            "an encoded key of {len} bytes is over the storage engine's limit"
        )));
    }
    Ok(key)
}

/// Encodes the primary key of `item` (which may hold other attributes too).
/// Key values over DynamoDB's size limits (2,048 bytes for the partition
/// key, 1,024 for the sort key) are refused.
pub fn encode_key(schema: &KeySchema, item: &Item) -> Result<EncodedKey, StorageError> {
    let hash_value = item.get(&schema.hash.name).ok_or_else(|| {
        StorageError::InvalidKey(format!("missing the key attribute {}", schema.hash.name))
    })?;
    check_key_size(&schema.hash.name, hash_value, MAX_HASH_KEY_SIZE)?;
    let (mut bytes, hash) = partition_prefix(schema, hash_value)?;
    if let Some(range) = &schema.range {
        let sort_value = item.get(&range.name).ok_or_else(|| {
            StorageError::InvalidKey(format!("missing the key attribute {}", range.name))
        })?;
        check_key_size(&range.name, sort_value, MAX_RANGE_KEY_SIZE)?;
        bytes.extend_from_slice(&scalar_bytes(range.scalar_type, sort_value)?.1);
    }
    Ok(EncodedKey {
        bytes: storable(bytes)?,
        hash,
    })
}

/// Returns the hash carried by an encoded key.
pub fn hash_of_key(key: &[u8]) -> Option<u64> {
    let head: [u8; HASH_LEN] = key.get(..HASH_LEN)?.try_into().ok()?;
    Some(u64::from_be_bytes(head))
}

/// Returns the smallest byte string greater than every string starting with
/// `prefix`, or `None` when there is none (all bytes 0xFF).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last < 0xFF {
            out.push(last + 1);
            return Some(out);
        }
    }
    None
}

/// Returns the first hash of range `index` of `count` equal ranges of the
/// 64-bit hash space: ceil(index * 2^64 / count). `index == count` gives 2^64.
pub fn range_start(index: u32, count: u32) -> u128 {
    let count = u128::from(count.max(1));
    (u128::from(index) << 64).div_ceil(count)
}

/// Returns which of `count` equal hash ranges holds `hash`:
/// floor(hash * count / 2^64), consistent with [`range_start`].
pub fn range_index(hash: u64, count: u32) -> u32 {
    let count = u128::from(count.max(1));
    // hash * count < 2^96, so the shifted value is < 2^32.
    ((u128::from(hash) * count) >> 64) as u32
}

/// A key range: lower and upper bounds over encoded keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange {
    pub lower: Bound<Vec<u8>>,
    pub upper: Bound<Vec<u8>>,
}

impl KeyRange {
    /// Returns the key range of hashes [start, end) (end may be 2^64).
    pub fn of_hashes(start: u128, end: u128) -> KeyRange {
        let bound = |h: u128| -> Bound<Vec<u8>> {
            match u64::try_from(h) {
                Ok(h) => Bound::Included(h.to_be_bytes().to_vec()),
                Err(_) => Bound::Unbounded,
            }
        };
        let upper = match bound(end) {
            Bound::Included(b) => Bound::Excluded(b),
            other => other,
        };
        let lower = if start == 0 {
            Bound::Unbounded
        } else {
            bound(start)
        };
        KeyRange { lower, upper }
    }

    /// Raises the lower bound to `bound` when that is tighter.
    pub fn tighten_lower(&mut self, bound: Bound<Vec<u8>>) {
        let replace = match (&self.lower, &bound) {
            (_, Bound::Unbounded) => false,
            (Bound::Unbounded, _) => true,
            (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b)) => b > a,
            (Bound::Included(a), Bound::Excluded(b)) => b >= a,
            (Bound::Excluded(a), Bound::Excluded(b)) => b > a,
        };
        if replace {
            self.lower = bound;
        }
    }

    /// Lowers the upper bound to `bound` when that is tighter.
    pub fn tighten_upper(&mut self, bound: Bound<Vec<u8>>) {
        let replace = match (&self.upper, &bound) {
            (_, Bound::Unbounded) => false,
            (Bound::Unbounded, _) => true,
            (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b)) => b < a,
            (Bound::Included(a), Bound::Excluded(b)) => b <= a,
            (Bound::Excluded(a), Bound::Excluded(b)) => b < a,
        };
        if replace {
            self.upper = bound;
        }
    }

    /// Returns true when no key can lie within the range.
    pub fn is_empty(&self) -> bool {
        match (&self.lower, &self.upper) {
            (Bound::Included(a), Bound::Included(b)) => a > b,
            (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
            | (Bound::Excluded(a), Bound::Included(b)) => a >= b,
            _ => false,
        }
    }

    /// Returns true when `key` lies within the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        let above = match &self.lower {
            Bound::Unbounded => true,
            Bound::Included(a) => key >= a.as_slice(),
            Bound::Excluded(a) => key > a.as_slice(),
        };
        let below = match &self.upper {
            Bound::Unbounded => true,
            Bound::Included(b) => key <= b.as_slice(),
            Bound::Excluded(b) => key < b.as_slice(),
        };
        above && below
    }
}

/// Returns the key range of a Query: one partition key value, restricted by
/// the sort key condition.
pub fn query_range(
    schema: &KeySchema,
    hash_value: &AttributeValue,
    sort: Option<&SortKeyCondition>,
) -> Result<(KeyRange, u64), StorageError> {
    let (prefix, hash) = partition_prefix(schema, hash_value)?;
    let with = |value: &AttributeValue| -> Result<Vec<u8>, StorageError> {
        let mut key = prefix.clone();
        key.extend_from_slice(&sort_bytes(schema, value)?);
        Ok(key)
    };
    let upper = match prefix_successor(&prefix) {
        Some(s) => Bound::Excluded(s),
        None => Bound::Unbounded,
    };
    let mut range = KeyRange {
        lower: Bound::Included(prefix.clone()),
        upper,
    };
    match sort {
        None => {}
        Some(SortKeyCondition::Eq(v)) => {
            let k = with(v)?;
            range.tighten_lower(Bound::Included(k.clone()));
            range.tighten_upper(Bound::Included(k));
        }
        Some(SortKeyCondition::Lt(v)) => range.tighten_upper(Bound::Excluded(with(v)?)),
        Some(SortKeyCondition::Le(v)) => range.tighten_upper(Bound::Included(with(v)?)),
        Some(SortKeyCondition::Gt(v)) => range.tighten_lower(Bound::Excluded(with(v)?)),
        Some(SortKeyCondition::Ge(v)) => range.tighten_lower(Bound::Included(with(v)?)),
        Some(SortKeyCondition::Between(a, b)) => {
            range.tighten_lower(Bound::Included(with(a)?));
            range.tighten_upper(Bound::Included(with(b)?));
        }
        Some(SortKeyCondition::BeginsWith(v)) => {
            if matches!(v, AttributeValue::N(_)) {
                return Err(StorageError::InvalidKey(
                    "begins_with does not apply to a number sort key".into(),
                ));
            }
            let k = with(v)?;
            if let Some(s) = prefix_successor(&k) {
                range.tighten_upper(Bound::Excluded(s));
            }
            range.tighten_lower(Bound::Included(k));
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

    fn schema(hash: ScalarType, range: Option<ScalarType>) -> KeySchema {
        KeySchema {
            hash: KeyAttribute {
                name: "pk".into(),
                scalar_type: hash,
            },
            range: range.map(|t| KeyAttribute {
                name: "sk".into(),
                scalar_type: t,
            }),
        }
    }

    fn key_item(pk: AttributeValue, sk: Option<AttributeValue>) -> Item {
        let mut item = Item::new();
        item.insert("pk".into(), pk);
        if let Some(sk) = sk {
            item.insert("sk".into(), sk);
        }
        item
    }

    /// DynamoDB's order of two sort key values of the same type.
    fn dynamo_cmp(a: &AttributeValue, b: &AttributeValue) -> Ordering {
        match (a, b) {
            (AttributeValue::S(a), AttributeValue::S(b)) => a.as_bytes().cmp(b.as_bytes()),
            (AttributeValue::B(a), AttributeValue::B(b)) => a.cmp(b),
            (AttributeValue::N(a), AttributeValue::N(b)) => a.cmp(b),
            _ => unreachable!("same types only"),
        }
    }

    fn number() -> impl Strategy<Value = AttributeValue> {
        (any::<i64>(), -20i32..20).prop_map(|(m, e)| {
            AttributeValue::N(Number::parse(&format!("{m}E{e}")).expect("valid number"))
        })
    }

    fn scalar(t: ScalarType) -> BoxedStrategy<AttributeValue> {
        match t {
            ScalarType::S => prop_oneof![".{0,6}", "[a\\x00b]{0,5}"]
                .prop_map(AttributeValue::S)
                .boxed(),
            ScalarType::B => {
                prop::collection::vec(prop_oneof![Just(0u8), Just(255u8), any::<u8>()], 0..6)
                    .prop_map(AttributeValue::B)
                    .boxed()
            }
            ScalarType::N => number().boxed(),
        }
    }

    fn scalar_type() -> impl Strategy<Value = ScalarType> {
        prop_oneof![
            Just(ScalarType::S),
            Just(ScalarType::N),
            Just(ScalarType::B)
        ]
    }

    proptest! {
        /// Within one partition key, encoded key order is DynamoDB's sort key order.
        #[test]
        fn sort_key_order_is_dynamodb_order(
            (t, a, b, pk) in scalar_type().prop_flat_map(|t| (Just(t), scalar(t), scalar(t), scalar(ScalarType::S)))
        ) {
            let s = schema(ScalarType::S, Some(t));
            let ka = encode_key(&s, &key_item(pk.clone(), Some(a.clone()))).unwrap();
            let kb = encode_key(&s, &key_item(pk, Some(b.clone()))).unwrap();
            prop_assert_eq!(ka.bytes.cmp(&kb.bytes), dynamo_cmp(&a, &b));
        }

        /// Distinct partition keys never interleave, even when their hashes are
        /// equal: the escaped partition key is self-delimiting.
        #[test]
        fn partition_keys_never_interleave(
            (t, p1, p2) in scalar_type().prop_flat_map(|t| (Just(t), scalar(t), scalar(t))),
            s1 in prop::collection::vec(any::<u8>(), 0..5),
            s2 in prop::collection::vec(any::<u8>(), 0..5),
            s3 in prop::collection::vec(any::<u8>(), 0..5),
        ) {
            prop_assume!(dynamo_cmp(&p1, &p2) != Ordering::Equal);
            let s = schema(t, Some(ScalarType::B));
            // Force a hash collision by comparing the keys without their hash.
            let enc = |p: &AttributeValue, sk: &[u8]| {
                encode_key(&s, &key_item(p.clone(), Some(AttributeValue::B(sk.to_vec())))).unwrap().bytes[HASH_LEN..].to_vec()
            };
            let a1 = enc(&p1, &s1);
            let a2 = enc(&p1, &s2);
            let b = enc(&p2, &s3);
            // b is on the same side of both keys of p1.
            prop_assert_eq!(b.cmp(&a1), b.cmp(&a2));
            let (prefix, _) = partition_prefix(&s, &p1).unwrap();
            prop_assert!(!b.starts_with(&prefix[HASH_LEN..]));
        }

        /// Scan order is hash order, and the hash picks the partition.
        #[test]
        fn key_order_follows_hash(
            a in scalar(ScalarType::S), b in scalar(ScalarType::S)
        ) {
            let s = schema(ScalarType::S, None);
            let ka = encode_key(&s, &key_item(a.clone(), None)).unwrap();
            let kb = encode_key(&s, &key_item(b.clone(), None)).unwrap();
            prop_assert_eq!(hash_of_key(&ka.bytes), Some(ka.hash));
            prop_assert_eq!(ka.hash, partition_hash(&a).unwrap());
            if ka.hash != kb.hash {
                prop_assert_eq!(ka.bytes.cmp(&kb.bytes), ka.hash.cmp(&kb.hash));
            }
        }

        /// Segment ranges partition the hash space exactly.
        #[test]
        fn ranges_partition_the_hash_space(hash in any::<u64>(), count in 1u32..5000) {
            let i = range_index(hash, count);
            prop_assert!(i < count);
            prop_assert!(range_start(i, count) <= u128::from(hash));
            prop_assert!(u128::from(hash) < range_start(i + 1, count));
            let r = KeyRange::of_hashes(range_start(i, count), range_start(i + 1, count));
            prop_assert!(r.contains(&hash.to_be_bytes()));
            let mut longer = hash.to_be_bytes().to_vec();
            longer.extend_from_slice(&[0xFF, 0xFF]);
            prop_assert!(r.contains(&longer));
        }

        /// A query range holds exactly the keys whose sort key satisfies the condition.
        #[test]
        fn query_range_matches_condition(
            (t, pk, v, w, probe, op) in scalar_type().prop_flat_map(|t| (Just(t), scalar(ScalarType::S), scalar(t), scalar(t), scalar(t), 0u8..7))
        ) {
            let s = schema(ScalarType::S, Some(t));
            let cond = match op {
                0 => SortKeyCondition::Eq(v.clone()),
                1 => SortKeyCondition::Lt(v.clone()),
                2 => SortKeyCondition::Le(v.clone()),
                3 => SortKeyCondition::Gt(v.clone()),
                4 => SortKeyCondition::Ge(v.clone()),
                5 => SortKeyCondition::Between(v.clone(), w.clone()),
                _ => SortKeyCondition::BeginsWith(v.clone()),
            };
            let result = query_range(&s, &pk, Some(&cond));
            if op == 6 && t == ScalarType::N {
                prop_assert!(result.is_err());
                return Ok(());
            }
            let (range, _) = result.unwrap();
            let key = encode_key(&s, &key_item(pk.clone(), Some(probe.clone()))).unwrap();
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
            // Keys of another partition key are never in the range.
            let other = encode_key(&s, &key_item(AttributeValue::S("\u{7f}other".into()), Some(probe))).unwrap();
            if pk != AttributeValue::S("\u{7f}other".into()) {
                prop_assert!(!range.contains(&other.bytes));
            }
        }
    }

    #[test]
    fn equal_numbers_encode_alike() {
        let s = schema(ScalarType::N, Some(ScalarType::N));
        let n = |x: &str| AttributeValue::N(Number::parse(x).unwrap());
        let a = encode_key(&s, &key_item(n("1.50"), Some(n("100")))).unwrap();
        let b = encode_key(&s, &key_item(n("15E-1"), Some(n("1e2")))).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn wrong_or_missing_key_types_are_typed_errors() {
        let s = schema(ScalarType::S, Some(ScalarType::N));
        let bad = key_item(
            AttributeValue::B(vec![1]),
            Some(AttributeValue::S("x".into())),
        );
        assert!(matches!(
            encode_key(&s, &bad),
            Err(StorageError::InvalidKey(_))
        ));
        let missing = key_item(AttributeValue::S("a".into()), None);
        assert!(matches!(
            encode_key(&s, &missing),
            Err(StorageError::InvalidKey(_))
        ));
        assert!(partition_hash(&AttributeValue::Null).is_err());
    }

    #[test]
    fn key_values_over_dynamodb_limits_are_refused() {
        let s = schema(ScalarType::S, Some(ScalarType::B));
        let key = |pk: usize, sk: usize| {
            key_item(
                AttributeValue::S("\u{0}".repeat(pk)),
                Some(AttributeValue::B(vec![0; sk])),
            )
        };
        assert!(encode_key(&s, &key(2048, 1024)).is_ok());
        for (pk, sk) in [(2049, 1), (1, 1025), (65536, 1)] {
            assert!(
                matches!(
                    encode_key(&s, &key(pk, sk)),
                    Err(StorageError::InvalidKey(_))
                ),
                "{pk} {sk}"
            );
        }
        assert!(storable(vec![0; crate::engine::MAX_KEY_LEN]).is_ok());
        assert!(storable(vec![0; crate::engine::MAX_KEY_LEN + 1]).is_err());
    }

    #[test]
    fn escaping_is_self_delimiting() {
        let mut a = Vec::new();
        push_escaped(&mut a, b"a\x00b");
        assert_eq!(a, b"a\x00\xFFb\x00\x01");
        let mut empty = Vec::new();
        push_escaped(&mut empty, b"");
        let mut zero = Vec::new();
        push_escaped(&mut zero, b"\x00");
        assert!(!zero.starts_with(&empty));
        assert!(empty < zero);
        assert_eq!(prefix_successor(b"a\xFF\xFF"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b"\xFF"), None);
    }

    #[test]
    fn range_bounds_at_the_ends() {
        assert_eq!(range_start(0, 4), 0);
        assert_eq!(range_start(4, 4), 1u128 << 64);
        assert_eq!(range_index(u64::MAX, 3), 2);
        assert_eq!(range_index(0, 3), 0);
        let all = KeyRange::of_hashes(0, 1u128 << 64);
        assert_eq!(
            all,
            KeyRange {
                lower: Bound::Unbounded,
                upper: Bound::Unbounded
            }
        );
    }
}
