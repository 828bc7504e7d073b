//! Property: random items with index key values of every type and size
//! around the limits, sent through every write path (Put, Update, a write
//! group of several commands, a transaction, a change from another region),
//! are either applied with exactly the index entries their values allow or
//! refused with a validation error — never an engine error, never a stalled
//! index. After every case a sentinel write to another table's global index
//! must be delivered, and every index of the table must equal what a model
//! of the stored items says.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use partita_expr::{Operand, Path, PathElement, SetValue, UpdateExpression};
use partita_model::limits::{MAX_HASH_KEY_SIZE, MAX_ITEM_SIZE, MAX_RANGE_KEY_SIZE};
use partita_model::schema::StreamSpecification;
use partita_model::value::item_size;
use partita_model::{AttributeValue, Item, Projection, ScalarType};
use partita_storage::{
    ReplicatedChange, ReplicationState, StorageError, Store, StoreOptions, Version, WriteCommand,
};
use proptest::prelude::*;

const TABLE: &str = "T";
const OTHER: &str = "Other";

/// The indexes of table T: (name, [(attribute, type)]), partition key first.
const INDEXES: [(&str, &[(&str, ScalarType)]); 3] = [
    ("by_gs", &[("g", ScalarType::S), ("s", ScalarType::B)]),
    ("by_h", &[("h", ScalarType::N)]),
    ("by_l", &[("pk", ScalarType::S), ("l", ScalarType::N)]),
];

fn open_store(dir: &std::path::Path) -> Store {
    let store = Store::open(dir, StoreOptions::default()).unwrap();
    let mut def = table_def(TABLE, Some(ScalarType::B), 2);
    def.global_indexes = vec![
        index_def(
            "by_gs",
            ("g", ScalarType::S),
            Some(("s", ScalarType::B)),
            Projection::KeysOnly,
            None,
        ),
        index_def("by_h", ("h", ScalarType::N), None, Projection::All, None),
    ];
    def.local_indexes = vec![index_def(
        "by_l",
        ("pk", ScalarType::S),
        Some(("l", ScalarType::N)),
        Projection::KeysOnly,
        None,
    )];
    def.stream = Some(StreamSpecification {
        enabled: true,
        view_type: Some("NEW_AND_OLD_IMAGES".into()),
    });
    def.stream_label = Some("2026-01-01T00:00:00.000".into());
    store.create_table(def).unwrap();
    store
        .set_replication(
            TABLE,
            Some(ReplicationState {
                region: "us-east-1".into(),
                replicas: vec![],
                creating: false,
            }),
        )
        .unwrap();
    let mut other = table_def(OTHER, None, 1);
    other.global_indexes = vec![index_def(
        "by_g",
        ("g", ScalarType::S),
        None,
        Projection::KeysOnly,
        None,
    )];
    store.create_table(other).unwrap();
    store
}

/// Lengths around every limit that matters: empty, small, the index sort
/// and partition key limits, and past the engine's own key limit.
fn length() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        1usize..8,
        Just(MAX_RANGE_KEY_SIZE),
        Just(MAX_RANGE_KEY_SIZE + 1),
        Just(MAX_HASH_KEY_SIZE),
        Just(MAX_HASH_KEY_SIZE + 1),
        Just(65_536usize),
        Just(70_000usize),
    ]
}

/// A value of any type; strings and binaries of every interesting length
/// (strings of two-byte characters too, whose size is twice their length).
fn value() -> impl Strategy<Value = AttributeValue> {
    prop_oneof![
        (length(), any::<bool>()).prop_map(|(len, wide)| {
            AttributeValue::S(if wide {
                "é".repeat(len / 2)
            } else {
                "v".repeat(len)
            })
        }),
        length().prop_map(|len| AttributeValue::B(vec![0u8; len])),
        (-1000i64..1000).prop_map(|v| n(&v.to_string())),
        any::<bool>().prop_map(AttributeValue::Bool),
        Just(AttributeValue::Ss(vec!["a".into()])),
    ]
}

/// The non-key attributes a case may set (index keys of T's indexes, and
/// an ordinary attribute).
fn attributes() -> impl Strategy<Value = BTreeMap<String, AttributeValue>> {
    prop::collection::btree_map(
        prop_oneof![Just("g"), Just("s"), Just("h"), Just("l"), Just("x")].prop_map(String::from),
        value(),
        0..5,
    )
}

/// A table key: mostly valid, sometimes over a size limit.
fn table_key() -> impl Strategy<Value = (String, Vec<u8>)> {
    (
        prop_oneof![
            4 => (0u8..6).prop_map(|i| format!("p{i}")),
            1 => Just("k".repeat(MAX_HASH_KEY_SIZE + 1)),
        ],
        prop_oneof![
            4 => (1u8..4).prop_map(|i| vec![i]),
            1 => Just(vec![9u8; MAX_RANGE_KEY_SIZE + 1]),
        ],
    )
}

#[derive(Clone, Copy, Debug)]
enum WritePath {
    Put,
    Update,
    Group,
    Transaction,
    Replicated,
}

fn path() -> impl Strategy<Value = WritePath> {
    prop_oneof![
        Just(WritePath::Put),
        Just(WritePath::Update),
        Just(WritePath::Group),
        Just(WritePath::Transaction),
        Just(WritePath::Replicated),
    ]
}

fn key_item(pk: &str, sk: &[u8]) -> Item {
    item(&[("pk", s(pk)), ("sk", AttributeValue::B(sk.to_vec()))])
}

fn key_valid(pk: &str, sk: &[u8]) -> bool {
    pk.len() <= MAX_HASH_KEY_SIZE && sk.len() <= MAX_RANGE_KEY_SIZE
}

/// Whether `value` may stand at `position` of an index key declared `t`:
/// the declared type, not empty, within the size limit of its place.
fn value_allowed(position: usize, t: ScalarType, value: &AttributeValue) -> bool {
    let max = if position == 0 {
        MAX_HASH_KEY_SIZE
    } else {
        MAX_RANGE_KEY_SIZE
    };
    let nonempty = match value {
        AttributeValue::S(x) => t == ScalarType::S && !x.is_empty(),
        AttributeValue::B(x) => t == ScalarType::B && !x.is_empty(),
        AttributeValue::N(_) => t == ScalarType::N,
        _ => false,
    };
    nonempty && value.size() <= max
}

/// Whether `item` has an entry in the index keyed by `attrs`: every key
/// attribute present and allowed.
fn entry_allowed(attrs: &[(&str, ScalarType)], item: &Item) -> bool {
    attrs.iter().enumerate().all(|(position, (name, t))| {
        item.get(*name)
            .is_some_and(|v| value_allowed(position, *t, v))
    })
}

/// Whether a client's write producing `item` must be accepted: within the
/// item size limit, and every index key value present allowed (an absent
/// one leaves the item out of that index).
fn client_write_allowed(item: &Item) -> bool {
    item_size(item) <= MAX_ITEM_SIZE
        && INDEXES.iter().all(|(_, attrs)| {
            attrs.iter().enumerate().all(|(position, (name, t))| {
                item.get(*name)
                    .is_none_or(|v| value_allowed(position, *t, v))
            })
        })
}

/// A validation refusal (ValidationException on the wire).
fn is_validation(e: &StorageError) -> bool {
    matches!(
        e,
        StorageError::IndexKeyInvalid { .. }
            | StorageError::IndexKeyTooLarge { .. }
            | StorageError::InvalidKey(_)
            | StorageError::ItemTooLarge
    )
}

fn set_all(attrs: &BTreeMap<String, AttributeValue>) -> UpdateExpression {
    UpdateExpression {
        set: attrs
            .iter()
            .map(|(name, v)| {
                (
                    Path(vec![PathElement::Attribute(name.clone())]),
                    SetValue::Operand(Operand::Value(v.clone())),
                )
            })
            .collect(),
        ..Default::default()
    }
}

/// The (pk, sk) of every entry of `index` in the store.
fn entries(store: &Store, index: &str) -> BTreeSet<(String, Vec<u8>)> {
    index_scan_all(store, TABLE, index, 2)
        .iter()
        .map(|i| match (&i["pk"], &i["sk"]) {
            (AttributeValue::S(pk), AttributeValue::B(sk)) => (pk.clone(), sk.clone()),
            other => panic!("entry keys {other:?}"),
        })
        .collect()
}

struct World {
    runtime: tokio::runtime::Runtime,
    store: Store,
    model: BTreeMap<(String, Vec<u8>), Item>,
    sentinels: u64,
    version: u64,
    _dir: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        World {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            store: open_store(dir.path()),
            model: BTreeMap::new(),
            sentinels: 0,
            version: 1,
            _dir: dir,
        }
    }

    /// Runs one case; returns a description of what went wrong.
    fn case(
        &mut self,
        path: WritePath,
        (pk, sk): (String, Vec<u8>),
        attrs: BTreeMap<String, AttributeValue>,
    ) -> Result<(), String> {
        let key = key_item(&pk, &sk);
        let slot = (pk.clone(), sk.clone());
        let mut new = match path {
            WritePath::Update => self
                .model
                .get(&slot)
                .cloned()
                .unwrap_or_else(|| key.clone()),
            _ => key.clone(),
        };
        new.extend(attrs.clone());
        let allowed = key_valid(&pk, &sk)
            && match path {
                // Another region's change is applied whatever its index
                // values; they only keep it out of the index.
                WritePath::Replicated => item_size(&new) <= MAX_ITEM_SIZE,
                _ => client_write_allowed(&new),
            };
        let put = WriteCommand::Put {
            item: new.clone(),
            condition: None,
        };
        let companion_key = key_item("companion", &[self.sentinels as u8]);
        let companion = WriteCommand::Put {
            item: companion_key.clone(),
            condition: None,
        };
        let store = &self.store;
        let result: Result<(), StorageError> = self.runtime.block_on(async {
            match path {
                WritePath::Put => store.write(TABLE, put).await.map(drop),
                WritePath::Update => store
                    .write(
                        TABLE,
                        WriteCommand::Update {
                            key: key.clone(),
                            update: set_all(&attrs),
                            condition: None,
                        },
                    )
                    .await
                    .map(drop),
                WritePath::Group => {
                    let mut answers = store
                        .write_many(vec![
                            (TABLE.to_string(), companion),
                            (TABLE.to_string(), put),
                        ])
                        .await;
                    let mine = answers.pop().expect("two answers");
                    answers
                        .pop()
                        .expect("two answers")
                        .expect("the companion applies");
                    mine.map(drop)
                }
                WritePath::Transaction => store
                    .transact_write(vec![
                        (TABLE.to_string(), companion),
                        (TABLE.to_string(), put),
                    ])
                    .await
                    .map(drop)
                    .map_err(|failure| {
                        failure
                            .reasons
                            .into_iter()
                            .flatten()
                            .next()
                            .unwrap_or(StorageError::Unsupported("no reason".into()))
                    }),
                WritePath::Replicated => {
                    self.version += 1;
                    store
                        .apply_replicated(
                            TABLE,
                            vec![ReplicatedChange {
                                keys: key.clone(),
                                new: Some(new.clone()),
                                version: Version {
                                    ts_us: u64::MAX / 2 + self.version,
                                    region: "eu-west-1".into(),
                                },
                            }],
                        )
                        .await
                        .map(drop)
                }
            }
        });
        match (&result, allowed) {
            (Ok(()), true) => {
                self.model.insert(slot, new);
            }
            (Err(e), false) if is_validation(e) => {}
            _ => return Err(format!("{path:?}: allowed {allowed}, got {result:?}")),
        }
        // The companion of a write group applies on its own; that of a
        // transaction with the case's write only.
        let companion_applied = match path {
            WritePath::Group => true,
            WritePath::Transaction => result.is_ok(),
            _ => false,
        };
        if companion_applied {
            let slot = ("companion".to_string(), vec![self.sentinels as u8]);
            self.model.insert(slot, companion_key);
        }
        self.check()
    }

    /// A sentinel write reaches its global index; the table and every
    /// index of it match the model.
    fn check(&mut self) -> Result<(), String> {
        self.sentinels += 1;
        let tag = format!("sentinel-{}", self.sentinels);
        let store = &self.store;
        self.runtime
            .block_on(store.write(
                OTHER,
                WriteCommand::Put {
                    item: item(&[("pk", s(&tag)), ("g", s(&tag))]),
                    condition: None,
                },
            ))
            .map_err(|e| format!("sentinel write: {e}"))?;
        for table in [OTHER, TABLE] {
            if !store
                .wait_for_index_delivery(table, Duration::from_secs(30))
                .unwrap()
            {
                return Err(format!("index delivery of {table} stalled"));
            }
        }
        if index_query_all(store, OTHER, "by_g", &s(&tag), None, true).len() != 1 {
            return Err(format!("{tag} is not in Other.by_g"));
        }
        for (index, attrs) in INDEXES {
            let expected: BTreeSet<(String, Vec<u8>)> = self
                .model
                .iter()
                .filter(|(_, item)| entry_allowed(attrs, item))
                .map(|(slot, _)| slot.clone())
                .collect();
            let got = entries(store, index);
            if got != expected {
                return Err(format!(
                    "{index}: {} entries, the model says {}",
                    got.len(),
                    expected.len()
                ));
            }
        }
        let stored = scan_all(store, TABLE, 0, 1).len();
        if stored != self.model.len() {
            return Err(format!(
                "{stored} items, the model says {}",
                self.model.len()
            ));
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Every case is a sequence of writes on one store, so later writes
    /// meet items that earlier ones left (or left out of an index).
    #[test]
    fn every_write_is_applied_with_its_entries_or_refused(
        cases in prop::collection::vec((path(), table_key(), attributes()), 1..12)
    ) {
        let mut world = World::new();
        for (path, key, attrs) in cases {
            if let Err(e) = world.case(path, key, attrs) {
                prop_assert!(false, "{}", e);
            }
        }
    }
}
