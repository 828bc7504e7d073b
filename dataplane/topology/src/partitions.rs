//! Partition arithmetic shared by the operator and the data plane.
//!
//! A table's partitions own contiguous, disjoint ranges of the 64-bit hash of
//! the partition key; together they cover `0..=u64::MAX` exactly once. Ranges
//! are inclusive at both ends so the full space is representable.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Read capacity units one partition serves (DESIGN.md §6).
pub const RCU_PER_PARTITION: u64 = 3000;
/// Write capacity units one partition serves (DESIGN.md §6).
pub const WCU_PER_PARTITION: u64 = 1000;
/// The most partitions the operator creates for one table up front.
pub const MAX_INITIAL_PARTITIONS: u32 = 256;

/// Returns the number of partitions a new table starts with:
/// `max(1, ceil(RCU / 3000), ceil(WCU / 1000))` (DESIGN.md §3), capped at
/// [`MAX_INITIAL_PARTITIONS`].
pub fn initial_partition_count(read_capacity_units: u64, write_capacity_units: u64) -> u32 {
    let by_reads = read_capacity_units.div_ceil(RCU_PER_PARTITION);
    let by_writes = write_capacity_units.div_ceil(WCU_PER_PARTITION);
    let wanted = by_reads.max(by_writes).max(1);
    u32::try_from(wanted)
        .unwrap_or(MAX_INITIAL_PARTITIONS)
        .min(MAX_INITIAL_PARTITIONS)
}

/// An inclusive range of partition-key hashes, `start..=end`.
///
/// Serialized as an object of two 16-digit lowercase hex strings
/// (`{"start":"0x0000000000000000","end":"0x7fffffffffffffff"}`) so that
/// consumers whose JSON numbers are doubles (and Kubernetes' int64) read them
/// exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HashRange {
    #[serde(serialize_with = "ser_hex", deserialize_with = "de_hex")]
    pub start: u64,
    #[serde(serialize_with = "ser_hex", deserialize_with = "de_hex")]
    pub end: u64,
}

impl HashRange {
    /// The whole hash space.
    pub const FULL: HashRange = HashRange {
        start: 0,
        end: u64::MAX,
    };

    /// Returns whether `hash` falls in this range.
    pub fn contains(&self, hash: u64) -> bool {
        self.start <= hash && hash <= self.end
    }
}

/// Formats a hash as `0x` and 16 lowercase hex digits.
pub fn format_hash(hash: u64) -> String {
    format!("0x{hash:016x}")
}

/// Parses `0x` followed by 1 to 16 hex digits.
pub fn parse_hash(s: &str) -> Option<u64> {
    let digits = s.strip_prefix("0x")?;
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

fn ser_hex<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_hash(*v))
}

fn de_hex<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let s = String::deserialize(d)?;
    parse_hash(&s).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "invalid hash {s:?}: expected 0x and up to 16 hex digits"
        ))
    })
}

/// Splits the hash space into `count` contiguous ranges of (nearly) equal
/// size, in order; the first `2^64 mod count` ranges are one hash larger.
/// A `count` of 0 is treated as 1.
pub fn split_hash_space(count: u32) -> Vec<HashRange> {
    let n = u128::from(count.max(1));
    let total: u128 = 1u128 << 64;
    let base = total / n;
    let extra = total % n;
    let mut ranges = Vec::with_capacity(n as usize);
    let mut start: u128 = 0;
    for i in 0..n {
        let len = base + u128::from(i < extra);
        let end = start + len - 1;
        // start and end are < 2^64 by construction.
        ranges.push(HashRange {
            start: start as u64,
            end: end as u64,
        });
        start = end + 1;
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formula_matches_design() {
        assert_eq!(initial_partition_count(0, 0), 1);
        assert_eq!(initial_partition_count(3000, 1000), 1);
        assert_eq!(initial_partition_count(3001, 0), 2);
        assert_eq!(initial_partition_count(0, 1001), 2);
        assert_eq!(initial_partition_count(9000, 2500), 3);
        assert_eq!(initial_partition_count(u64::MAX, 0), MAX_INITIAL_PARTITIONS);
    }

    #[test]
    fn hash_range_serializes_as_hex() {
        let r = HashRange {
            start: 0,
            end: 0x7fff_ffff_ffff_ffff,
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"start":"0x0000000000000000","end":"0x7fffffffffffffff"}"#
        );
        assert_eq!(serde_json::from_str::<HashRange>(&json).unwrap(), r);
        assert!(serde_json::from_str::<HashRange>(r#"{"start":"12","end":"0x1"}"#).is_err());
        assert!(serde_json::from_str::<HashRange>(r#"{"start":"0x","end":"0x1"}"#).is_err());
    }

    #[test]
    fn two_partitions_split_at_the_midpoint() {
        assert_eq!(
            split_hash_space(2),
            vec![
                HashRange {
                    start: 0,
                    end: 0x7fff_ffff_ffff_ffff
                },
                HashRange {
                    start: 0x8000_0000_0000_0000,
                    end: u64::MAX
                },
            ]
        );
        assert_eq!(split_hash_space(1), vec![HashRange::FULL]);
        assert_eq!(split_hash_space(0), vec![HashRange::FULL]);
    }

    proptest! {
        #[test]
        fn split_covers_the_space_exactly_once(count in 1u32..2000) {
            let ranges = split_hash_space(count);
            prop_assert_eq!(ranges.len(), count as usize);
            prop_assert_eq!(ranges[0].start, 0);
            prop_assert_eq!(ranges[ranges.len() - 1].end, u64::MAX);
            for pair in ranges.windows(2) {
                prop_assert!(pair[0].start <= pair[0].end);
                prop_assert_eq!(pair[0].end.wrapping_add(1), pair[1].start);
            }
            let sizes: Vec<u128> = ranges.iter().map(|r| u128::from(r.end - r.start) + 1).collect();
            let min = sizes.iter().min().copied().unwrap_or(0);
            let max = sizes.iter().max().copied().unwrap_or(0);
            prop_assert!(max - min <= 1);
        }
    }
}
