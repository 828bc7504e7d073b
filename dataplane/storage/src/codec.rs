//! The versioned binary encoding of items (the engine value of every item).
//!
//! Format version 1:
//!
//! ```text
//! item   := 0x01 varint(count) (varint(len) name-bytes value)*
//! value  := tag payload
//!   S  0x01 bytes      N  0x02 bytes (canonical decimal string)
//!   B  0x03 bytes      BOOL 0x04 (false) / 0x05 (true)    NULL 0x06
//!   M  0x07 varint(count) (bytes value)*      L 0x08 varint(count) value*
//!   SS 0x09 varint(count) bytes*   NS 0x0A varint(count) bytes*
//!   BS 0x0B varint(count) bytes*
//! bytes  := varint(len) raw-bytes
//! varint := unsigned LEB128
//! ```
//!
//! Decoding never panics: a truncated, oversized or otherwise malformed
//! record is a [`CodecError`], and nesting is bounded so corrupt input cannot
//! exhaust the stack.

use partita_model::{AttributeValue, Item, Map, Number};

/// The current item format version (first byte of every record).
pub const ITEM_FORMAT_V1: u8 = 1;

/// Deeper than any valid item (DynamoDB allows 32 levels).
const MAX_DECODE_DEPTH: usize = 64;

const TAG_S: u8 = 0x01;
const TAG_N: u8 = 0x02;
const TAG_B: u8 = 0x03;
const TAG_FALSE: u8 = 0x04;
const TAG_TRUE: u8 = 0x05;
const TAG_NULL: u8 = 0x06;
const TAG_M: u8 = 0x07;
const TAG_L: u8 = 0x08;
const TAG_SS: u8 = 0x09;
const TAG_NS: u8 = 0x0A;
const TAG_BS: u8 = 0x0B;

/// Why a stored record could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("unknown item format version {0}")]
    UnknownVersion(u8),
    #[error("record truncated")]
    Truncated,
    #[error("unknown value tag {0:#x}")]
    UnknownTag(u8),
    #[error("string is not UTF-8")]
    NotUtf8,
    #[error("invalid stored number {0:?}")]
    BadNumber(String),
    #[error("nesting too deep")]
    TooDeep,
    #[error("{0} trailing bytes")]
    Trailing(usize),
}

/// Encodes an item in the current format.
pub fn encode_item(item: &Item) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + partita_model::value::item_size(item));
    out.push(ITEM_FORMAT_V1);
    push_varint(&mut out, item.len() as u64);
    for (name, value) in item {
        push_bytes(&mut out, name.as_bytes());
        push_value(&mut out, value);
    }
    out
}

/// Decodes a record written by [`encode_item`] (any supported version).
pub fn decode_item(bytes: &[u8]) -> Result<Item, CodecError> {
    let (&version, rest) = bytes.split_first().ok_or(CodecError::Truncated)?;
    if version != ITEM_FORMAT_V1 {
        return Err(CodecError::UnknownVersion(version));
    }
    let mut reader = Reader { buf: rest };
    let map = reader.map(0)?;
    if !reader.buf.is_empty() {
        return Err(CodecError::Trailing(reader.buf.len()));
    }
    Ok(map)
}

pub(crate) fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    push_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn push_number(out: &mut Vec<u8>, n: &Number) {
    push_bytes(out, n.to_string().as_bytes());
}

fn push_value(out: &mut Vec<u8>, value: &AttributeValue) {
    match value {
        AttributeValue::S(s) => {
            out.push(TAG_S);
            push_bytes(out, s.as_bytes());
        }
        AttributeValue::N(n) => {
            out.push(TAG_N);
            push_number(out, n);
        }
        AttributeValue::B(b) => {
            out.push(TAG_B);
            push_bytes(out, b);
        }
        AttributeValue::Bool(b) => out.push(if *b { TAG_TRUE } else { TAG_FALSE }),
        AttributeValue::Null => out.push(TAG_NULL),
        AttributeValue::M(m) => {
            out.push(TAG_M);
            push_varint(out, m.len() as u64);
            for (k, v) in m {
                push_bytes(out, k.as_bytes());
                push_value(out, v);
            }
        }
        AttributeValue::L(l) => {
            out.push(TAG_L);
            push_varint(out, l.len() as u64);
            for v in l {
                push_value(out, v);
            }
        }
        AttributeValue::Ss(ss) => {
            out.push(TAG_SS);
            push_varint(out, ss.len() as u64);
            for s in ss {
                push_bytes(out, s.as_bytes());
            }
        }
        AttributeValue::Ns(ns) => {
            out.push(TAG_NS);
            push_varint(out, ns.len() as u64);
            for n in ns {
                push_number(out, n);
            }
        }
        AttributeValue::Bs(bs) => {
            out.push(TAG_BS);
            push_varint(out, bs.len() as u64);
            for b in bs {
                push_bytes(out, b);
            }
        }
    }
}

pub(crate) struct Reader<'a> {
    pub(crate) buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn byte(&mut self) -> Result<u8, CodecError> {
        let (&b, rest) = self.buf.split_first().ok_or(CodecError::Truncated)?;
        self.buf = rest;
        Ok(b)
    }

    pub(crate) fn varint(&mut self) -> Result<u64, CodecError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(CodecError::Truncated)
    }

    /// Reads a count of elements that each take at least one byte, so a
    /// corrupt count cannot make us reserve huge amounts of memory.
    fn count(&mut self) -> Result<usize, CodecError> {
        let n = self.varint()?;
        match usize::try_from(n) {
            Ok(n) if n <= self.buf.len() => Ok(n),
            _ => Err(CodecError::Truncated),
        }
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let n = self.count()?;
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn string(&mut self) -> Result<String, CodecError> {
        std::str::from_utf8(self.bytes()?)
            .map(str::to_owned)
            .map_err(|_| CodecError::NotUtf8)
    }

    fn number(&mut self) -> Result<Number, CodecError> {
        let raw = self.bytes()?;
        let s = std::str::from_utf8(raw).map_err(|_| CodecError::NotUtf8)?;
        Number::parse(s).map_err(|_| CodecError::BadNumber(s.to_owned()))
    }

    fn map(&mut self, depth: usize) -> Result<Map, CodecError> {
        let n = self.count()?;
        let mut map = Map::new();
        for _ in 0..n {
            let name = self.string()?;
            let value = self.value(depth)?;
            map.insert(name, value);
        }
        Ok(map)
    }

    fn value(&mut self, depth: usize) -> Result<AttributeValue, CodecError> {
        if depth > MAX_DECODE_DEPTH {
            return Err(CodecError::TooDeep);
        }
        let tag = self.byte()?;
        Ok(match tag {
            TAG_S => AttributeValue::S(self.string()?),
            TAG_N => AttributeValue::N(self.number()?),
            TAG_B => AttributeValue::B(self.bytes()?.to_vec()),
            TAG_FALSE => AttributeValue::Bool(false),
            TAG_TRUE => AttributeValue::Bool(true),
            TAG_NULL => AttributeValue::Null,
            TAG_M => AttributeValue::M(self.map(depth + 1)?),
            TAG_L => {
                let n = self.count()?;
                let mut list = Vec::with_capacity(n);
                for _ in 0..n {
                    list.push(self.value(depth + 1)?);
                }
                AttributeValue::L(list)
            }
            TAG_SS => {
                let n = self.count()?;
                let mut set = Vec::with_capacity(n);
                for _ in 0..n {
                    set.push(self.string()?);
                }
                AttributeValue::Ss(set)
            }
            TAG_NS => {
                let n = self.count()?;
                let mut set = Vec::with_capacity(n);
                for _ in 0..n {
                    set.push(self.number()?);
                }
                AttributeValue::Ns(set)
            }
            TAG_BS => {
                let n = self.count()?;
                let mut set = Vec::with_capacity(n);
                for _ in 0..n {
                    set.push(self.bytes()?.to_vec());
                }
                AttributeValue::Bs(set)
            }
            other => return Err(CodecError::UnknownTag(other)),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn number() -> impl Strategy<Value = Number> {
        (any::<i64>(), -30i32..30)
            .prop_map(|(m, e)| Number::parse(&format!("{m}E{e}")).expect("valid number"))
    }

    /// Any attribute value, nested up to a few levels.
    pub(crate) fn value() -> impl Strategy<Value = AttributeValue> {
        let leaf = prop_oneof![
            ".{0,8}".prop_map(AttributeValue::S),
            number().prop_map(AttributeValue::N),
            prop::collection::vec(any::<u8>(), 0..8).prop_map(AttributeValue::B),
            any::<bool>().prop_map(AttributeValue::Bool),
            Just(AttributeValue::Null),
            prop::collection::vec(".{0,4}", 1..4).prop_map(AttributeValue::Ss),
            prop::collection::vec(number(), 1..4).prop_map(AttributeValue::Ns),
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..4), 1..4)
                .prop_map(AttributeValue::Bs),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(AttributeValue::L),
                prop::collection::btree_map("[a-z]{0,4}", inner, 0..4).prop_map(AttributeValue::M),
            ]
        })
    }

    pub(crate) fn item() -> impl Strategy<Value = Item> {
        prop::collection::btree_map("[a-zA-Z0-9_]{1,6}", value(), 0..6)
    }

    proptest! {
        #[test]
        fn items_round_trip(item in item()) {
            let bytes = encode_item(&item);
            prop_assert_eq!(bytes[0], ITEM_FORMAT_V1);
            prop_assert_eq!(decode_item(&bytes).unwrap(), item);
        }

        /// Truncated or altered records decode to an error or some item, never a panic.
        #[test]
        fn corrupt_records_never_panic(item in item(), cut in any::<prop::sample::Index>(), flip in any::<u8>()) {
            let mut bytes = encode_item(&item);
            let at = cut.index(bytes.len());
            prop_assert!(decode_item(&bytes[..at]).is_err());
            bytes[at] ^= flip;
            let _ = decode_item(&bytes);
        }
    }

    #[test]
    fn unknown_versions_and_garbage_are_errors() {
        assert_eq!(decode_item(&[]), Err(CodecError::Truncated));
        assert_eq!(decode_item(&[9, 0]), Err(CodecError::UnknownVersion(9)));
        assert_eq!(decode_item(&[1, 0, 0]), Err(CodecError::Trailing(1)));
        assert_eq!(
            decode_item(&[1, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
            Err(CodecError::Truncated)
        );
        // A deeply nested list cannot blow the stack.
        let mut deep = vec![1, 1, 1, b'a'];
        deep.extend(std::iter::repeat_n([TAG_L, 1], 100_000).flatten());
        assert_eq!(decode_item(&deep), Err(CodecError::TooDeep));
    }
}
