//! Secondary index rules, pure: which items an index holds (sparse
//! indexes), what an entry holds (projection), and which index key values a
//! write may carry (type checks).
//!
//! An index entry exists for an item exactly when the item holds the index's
//! partition key attribute and, when the index has a sort key, its sort key
//! attribute. Its value is the projected item:
//! - KEYS_ONLY: the table's key attributes and the index's key attributes;
//! - INCLUDE: those plus the listed attributes the item holds;
//! - ALL: the whole item.

use partita_model::limits::{MAX_HASH_KEY_SIZE, MAX_RANGE_KEY_SIZE};
use partita_model::schema::IndexDefinition;
use partita_model::value::item_size;
use partita_model::{AttributeValue, Item, KeySchema, Projection};

use crate::index_keys::{encode_index_key, IndexKey, IndexKind};
use crate::StorageError;

/// What an index entry adds to its item collection beyond the projected
/// item's own size (DynamoDB counts a per-entry overhead of 100 bytes).
pub const INDEX_ENTRY_OVERHEAD: u64 = 100;

/// One index entry: its key and the projected item.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexEntry {
    pub key: IndexKey,
    pub item: Item,
}

impl IndexEntry {
    /// Returns the DynamoDB size of the projected item.
    pub fn size(&self) -> u64 {
        item_size(&self.item) as u64
    }
}

/// Returns the projection of `item` for `index` of a table keyed by `table`.
pub fn project(table: &KeySchema, index: &IndexDefinition, item: &Item) -> Item {
    let keep = |name: &str| -> bool {
        table.is_key_attribute(name)
            || index.key_schema.is_key_attribute(name)
            || match &index.projection {
                Projection::All => true,
                Projection::KeysOnly => false,
                Projection::Include(names) => names.iter().any(|n| n == name),
            }
    };
    if matches!(index.projection, Projection::All) {
        return item.clone();
    }
    item.iter()
        .filter(|(name, _)| keep(name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// Checks the index key attributes `item` holds: each must be of the type
/// the index declares, for S and B not empty, and within DynamoDB's key
/// size limits (2,048 bytes for the index partition key, 1,024 for its sort
/// key). Absent attributes are fine (the item is simply not indexed).
pub fn check_index_keys(index: &IndexDefinition, item: &Item) -> Result<(), StorageError> {
    for attr in index.key_schema.attributes() {
        let Some(value) = item.get(&attr.name) else {
            continue;
        };
        if !attr.scalar_type.matches(value) {
            return Err(StorageError::IndexKeyInvalid {
                index: index.name.clone(),
                attribute: attr.name.clone(),
                expected: Some(attr.scalar_type),
                actual: value.type_name(),
            });
        }
        let empty = match value {
            AttributeValue::S(s) => s.is_empty(),
            AttributeValue::B(b) => b.is_empty(),
            _ => false,
        };
        if empty {
            return Err(StorageError::IndexKeyInvalid {
                index: index.name.clone(),
                attribute: attr.name.clone(),
                expected: None,
                actual: value.type_name(),
            });
        }
    }
    check_index_key_sizes(index, item)
}

/// Checks the sizes of the index key attributes `item` holds: at most 2,048
/// bytes for the index partition key and 1,024 for its sort key, as
/// DynamoDB counts them (`IndexKeyTooLarge`).
pub fn check_index_key_sizes(index: &IndexDefinition, item: &Item) -> Result<(), StorageError> {
    for (position, attr) in index.key_schema.attributes().enumerate() {
        let Some(value) = item.get(&attr.name) else {
            continue;
        };
        let max = if position == 0 {
            MAX_HASH_KEY_SIZE
        } else {
            MAX_RANGE_KEY_SIZE
        };
        if value.size() > max {
            return Err(StorageError::IndexKeyTooLarge {
                index: index.name.clone(),
                attribute: attr.name.clone(),
                size: value.size(),
                max,
            });
        }
    }
    Ok(())
}

/// Returns true when `item` holds every key attribute of `index`.
pub fn is_indexed(index: &IndexDefinition, item: &Item) -> bool {
    index
        .key_schema
        .attributes()
        .all(|attr| item.contains_key(&attr.name))
}

/// Returns the entry of `item` in `index`, or `None` when the item lacks an
/// index key attribute (sparse index).
pub fn index_entry(
    table: &KeySchema,
    index: &IndexDefinition,
    kind: IndexKind,
    item: &Item,
) -> Result<Option<IndexEntry>, StorageError> {
    if !is_indexed(index, item) {
        return Ok(None);
    }
    let key = encode_index_key(table, &index.key_schema, kind, item)?;
    Ok(Some(IndexEntry {
        key,
        item: project(table, index, item),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use partita_model::{KeyAttribute, ScalarType};

    fn attr(name: &str, t: ScalarType) -> KeyAttribute {
        KeyAttribute {
            name: name.into(),
            scalar_type: t,
        }
    }

    fn table() -> KeySchema {
        KeySchema {
            hash: attr("pk", ScalarType::S),
            range: Some(attr("sk", ScalarType::S)),
        }
    }

    fn index(projection: Projection) -> IndexDefinition {
        IndexDefinition {
            name: "gsi".into(),
            key_schema: KeySchema {
                hash: attr("g", ScalarType::S),
                range: Some(attr("h", ScalarType::N)),
            },
            projection,
            throughput: None,
        }
    }

    fn item(attrs: &[(&str, AttributeValue)]) -> Item {
        attrs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    fn n(v: i64) -> AttributeValue {
        AttributeValue::N(partita_model::Number::from_i64(v))
    }

    #[test]
    fn projections_keep_the_right_attributes() {
        let it = item(&[
            ("pk", s("p")),
            ("sk", s("s")),
            ("g", s("x")),
            ("h", n(1)),
            ("a", s("a")),
            ("b", s("b")),
        ]);
        let keys = project(&table(), &index(Projection::KeysOnly), &it);
        assert_eq!(
            keys.keys().cloned().collect::<Vec<_>>(),
            vec!["g", "h", "pk", "sk"]
        );
        let inc = project(&table(), &index(Projection::Include(vec!["b".into()])), &it);
        assert_eq!(
            inc.keys().cloned().collect::<Vec<_>>(),
            vec!["b", "g", "h", "pk", "sk"]
        );
        assert_eq!(project(&table(), &index(Projection::All), &it), it);
    }

    #[test]
    fn sparse_items_have_no_entry() {
        let def = index(Projection::KeysOnly);
        let no_range = item(&[("pk", s("p")), ("sk", s("s")), ("g", s("x"))]);
        assert!(index_entry(&table(), &def, IndexKind::Global, &no_range)
            .unwrap()
            .is_none());
        let full = item(&[("pk", s("p")), ("sk", s("s")), ("g", s("x")), ("h", n(2))]);
        let entry = index_entry(&table(), &def, IndexKind::Global, &full)
            .unwrap()
            .unwrap();
        assert_eq!(entry.item, full);
    }

    #[test]
    fn wrong_types_and_empty_values_are_rejected() {
        let def = index(Projection::KeysOnly);
        let wrong = item(&[("pk", s("p")), ("h", s("1"))]);
        match check_index_keys(&def, &wrong) {
            Err(StorageError::IndexKeyInvalid {
                index,
                attribute,
                expected,
                actual,
            }) => {
                assert_eq!((index.as_str(), attribute.as_str()), ("gsi", "h"));
                assert_eq!((expected, actual), (Some(ScalarType::N), "S"));
            }
            other => panic!("unexpected {other:?}"),
        }
        let empty = item(&[("g", s(""))]);
        assert!(matches!(
            check_index_keys(&def, &empty),
            Err(StorageError::IndexKeyInvalid {
                expected: None,
                actual: "S",
                ..
            })
        ));
        assert!(check_index_keys(&def, &item(&[("g", s("x"))])).is_ok());
    }

    #[test]
    fn index_key_sizes_are_limited_like_dynamodb() {
        let def = IndexDefinition {
            key_schema: KeySchema {
                hash: attr("g", ScalarType::S),
                range: Some(attr("h", ScalarType::S)),
            },
            ..index(Projection::KeysOnly)
        };
        let at = |g: usize, h: usize| item(&[("g", s(&"é".repeat(g))), ("h", s(&"z".repeat(h)))]);
        assert!(check_index_keys(&def, &at(1024, 1024)).is_ok());
        match check_index_keys(&def, &at(1025, 1)) {
            Err(StorageError::IndexKeyTooLarge {
                index,
                attribute,
                size,
                max,
            }) => assert_eq!(
                (index.as_str(), attribute.as_str(), size, max),
                ("gsi", "g", 2050, 2048)
            ),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            check_index_keys(&def, &at(1, 1025)),
            Err(StorageError::IndexKeyTooLarge {
                size: 1025,
                max: 1024,
                ..
            })
        ));
        // An oversized item is simply not indexed when it was stored anyway.
        let table = table();
        let mut big = at(1, 70_000);
        big.insert("pk".into(), s("p"));
        big.insert("sk".into(), s("s"));
        assert!(index_entry(&table, &def, IndexKind::Global, &big).is_err());
    }
}
