//! Attribute values and items.

use std::collections::BTreeMap;

use crate::number::Number;

/// A map of attribute name to value: an item, or the value of an `M` attribute.
pub type Map = BTreeMap<String, AttributeValue>;

/// An item: the top-level attributes of one DynamoDB item.
pub type Item = Map;

/// One DynamoDB attribute value, of any of the ten types.
///
/// Sets keep their elements in the order they were first written; set
/// semantics (no duplicates, not empty) are enforced where values enter the
/// system, by the API layer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AttributeValue {
    S(String),
    N(Number),
    B(Vec<u8>),
    Bool(bool),
    Null,
    M(Map),
    L(Vec<AttributeValue>),
    Ss(Vec<String>),
    Ns(Vec<Number>),
    Bs(Vec<Vec<u8>>),
}

impl AttributeValue {
    /// Returns the DynamoDB type descriptor ("S", "N", "SS", ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            AttributeValue::S(_) => "S",
            AttributeValue::N(_) => "N",
            AttributeValue::B(_) => "B",
            AttributeValue::Bool(_) => "BOOL",
            AttributeValue::Null => "NULL",
            AttributeValue::M(_) => "M",
            AttributeValue::L(_) => "L",
            AttributeValue::Ss(_) => "SS",
            AttributeValue::Ns(_) => "NS",
            AttributeValue::Bs(_) => "BS",
        }
    }

    /// Returns the size of this value as DynamoDB counts it for item size and
    /// capacity units (names of nested map entries included).
    pub fn size(&self) -> usize {
        match self {
            AttributeValue::S(s) => s.len(),
            AttributeValue::N(n) => n.size(),
            AttributeValue::B(b) => b.len(),
            AttributeValue::Bool(_) | AttributeValue::Null => 1,
            AttributeValue::M(m) => {
                3 + m.iter().map(|(k, v)| k.len() + v.size() + 1).sum::<usize>()
            }
            AttributeValue::L(l) => 3 + l.iter().map(|v| v.size() + 1).sum::<usize>(),
            AttributeValue::Ss(ss) => ss.iter().map(String::len).sum(),
            AttributeValue::Ns(ns) => ns.iter().map(Number::size).sum(),
            AttributeValue::Bs(bs) => bs.iter().map(Vec::len).sum(),
        }
    }

    /// Returns the nesting depth of this value: 0 for scalars and sets, 1 + the
    /// deepest child for lists and maps.
    pub fn depth(&self) -> usize {
        match self {
            AttributeValue::M(m) => 1 + m.values().map(AttributeValue::depth).max().unwrap_or(0),
            AttributeValue::L(l) => 1 + l.iter().map(AttributeValue::depth).max().unwrap_or(0),
            _ => 0,
        }
    }
}

/// Returns the size of an item as DynamoDB counts it: the sum of each
/// attribute's name length and value size.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + v.size()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> AttributeValue {
        AttributeValue::N(Number::parse(s).expect("valid number"))
    }

    #[test]
    fn sizes_follow_dynamodb_rules() {
        assert_eq!(AttributeValue::S("héllo".into()).size(), 6);
        assert_eq!(AttributeValue::Bool(true).size(), 1);
        assert_eq!(AttributeValue::Null.size(), 1);
        assert_eq!(AttributeValue::M(Map::new()).size(), 3);
        assert_eq!(AttributeValue::L(vec![]).size(), 3);
        let l = AttributeValue::L(vec![AttributeValue::S("ab".into()), AttributeValue::Null]);
        assert_eq!(l.size(), 3 + (2 + 1) + (1 + 1));
        let mut m = Map::new();
        m.insert("key".into(), AttributeValue::S("v".into()));
        assert_eq!(AttributeValue::M(m).size(), 3 + 3 + 1 + 1);
        let mut item = Item::new();
        item.insert("pk".into(), AttributeValue::S("abc".into()));
        assert_eq!(item_size(&item), 5);
        assert!(n("12345").size() >= 3);
    }

    #[test]
    fn depth_counts_documents_only() {
        assert_eq!(AttributeValue::S("x".into()).depth(), 0);
        let nested = AttributeValue::L(vec![AttributeValue::M(Map::new())]);
        assert_eq!(nested.depth(), 2);
    }
}
