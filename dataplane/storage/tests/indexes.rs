//! Secondary indexes through the Store's public contract: local indexes in
//! the write's batch, global indexes through the outbox, projections, sparse
//! indexes, key type checks, item collections, paging, backfill, deletion.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use partita_expr::{Operand, Path, PathElement, SetValue, SortKeyCondition, UpdateExpression};
use partita_model::schema::IndexStatus;
use partita_model::{
    AttributeValue, BillingMode, Item, Projection, ProvisionedThroughput, ScalarType,
};
use partita_storage::{StorageError, Store, StoreOptions, Visit, WriteCommand};

fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, StoreOptions::default()).unwrap()
}

fn put(item: Item) -> WriteCommand {
    WriteCommand::Put {
        item,
        condition: None,
    }
}

fn set(attr: &str, value: AttributeValue) -> UpdateExpression {
    UpdateExpression {
        set: vec![(
            Path(vec![PathElement::Attribute(attr.into())]),
            SetValue::Operand(Operand::Value(value)),
        )],
        ..Default::default()
    }
}

/// Table "t" (pk S, sk N) with LSI "by_l" (l N, KEYS_ONLY) and GSI "by_g"
/// (g S, h N, INCLUDE [x]).
fn indexed_table(name: &str, partitions: u32) -> partita_model::TableDefinition {
    let mut def = table_def(name, Some(ScalarType::N), partitions);
    def.local_indexes = vec![index_def(
        "by_l",
        ("pk", ScalarType::S),
        Some(("l", ScalarType::N)),
        Projection::KeysOnly,
        None,
    )];
    def.global_indexes = vec![index_def(
        "by_g",
        ("g", ScalarType::S),
        Some(("h", ScalarType::N)),
        Projection::Include(vec!["x".into()]),
        None,
    )];
    def
}

#[tokio::test]
async fn local_index_follows_writes_in_the_same_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.create_table(indexed_table("t", 2)).unwrap();
    for (sk, l) in [(1, Some("30")), (2, Some("10")), (3, None), (4, Some("20"))] {
        let mut it = item(&[("pk", s("a")), ("sk", n(&sk.to_string())), ("x", s("v"))]);
        if let Some(l) = l {
            it.insert("l".into(), n(l));
        }
        let out = store.write("t", put(it)).await.unwrap();
        assert!(out.item_collection_size.is_some());
    }
    let sks = |items: Vec<Item>| -> Vec<AttributeValue> {
        items.into_iter().map(|i| i["sk"].clone()).collect()
    };
    // Ordered by the index sort key; the item without `l` is not indexed.
    let got = index_query_all(&store, "t", "by_l", &s("a"), None, true);
    assert_eq!(sks(got.clone()), vec![n("2"), n("4"), n("1")]);
    // KEYS_ONLY: table keys and index keys only.
    assert_eq!(
        got[0],
        item(&[("pk", s("a")), ("sk", n("2")), ("l", n("10"))])
    );
    let got = index_query_all(
        &store,
        "t",
        "by_l",
        &s("a"),
        Some(&SortKeyCondition::Ge(n("20"))),
        false,
    );
    assert_eq!(sks(got), vec![n("1"), n("4")]);
    // Changing the index key moves the entry; removing the item removes it.
    store
        .write(
            "t",
            WriteCommand::Update {
                key: item(&[("pk", s("a")), ("sk", n("1"))]),
                update: set("l", n("5")),
                condition: None,
            },
        )
        .await
        .unwrap();
    store
        .write(
            "t",
            WriteCommand::Delete {
                key: item(&[("pk", s("a")), ("sk", n("4"))]),
                condition: None,
            },
        )
        .await
        .unwrap();
    let got = index_query_all(&store, "t", "by_l", &s("a"), None, true);
    assert_eq!(sks(got), vec![n("1"), n("2")]);
    assert_eq!(store.index_stats("t", "by_l").unwrap().0, 2);
    assert_eq!(index_scan_all(&store, "t", "by_l", 3).len(), 2);
    let state = store.index_state("t", "by_l").unwrap();
    assert_eq!(state.status, IndexStatus::Active);
    assert!(matches!(
        store.query_index("t", "nope", &s("a"), None, true, None, &mut |_| {
            Visit::Continue
        }),
        Err(StorageError::IndexNotFound(_))
    ));
    // Survives a reopen, statistics included.
    drop(store);
    let store = open(dir.path());
    assert_eq!(
        index_query_all(&store, "t", "by_l", &s("a"), None, true).len(),
        2
    );
    assert_eq!(store.index_stats("t", "by_l").unwrap().0, 2);
}

#[tokio::test]
async fn item_collection_sizes_are_reported_and_limited() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        StoreOptions {
            sync: false,
            item_collection_limit: 1000,
            ..Default::default()
        },
    )
    .unwrap();
    store.create_table(indexed_table("t", 1)).unwrap();
    let it = |sk: i64, pad: usize| {
        item(&[
            ("pk", s("a")),
            ("sk", n(&sk.to_string())),
            ("l", n("1")),
            ("pad", s(&"p".repeat(pad))),
        ])
    };
    let one = store.write("t", put(it(1, 100))).await.unwrap();
    let size = one.item_collection_size.unwrap();
    // The item plus its KEYS_ONLY entry and the entry overhead.
    let item_size = partita_model::value::item_size(&it(1, 100)) as u64;
    let entry_size =
        partita_model::value::item_size(&item(&[("pk", s("a")), ("sk", n("1")), ("l", n("1"))]))
            as u64;
    assert_eq!(size, item_size + entry_size + 100);
    // Another partition key has its own collection.
    let other = item(&[("pk", s("b")), ("sk", n("1"))]);
    let out = store.write("t", put(other)).await.unwrap();
    assert_eq!(
        out.item_collection_size,
        Some(partita_model::value::item_size(&item(&[("pk", s("b")), ("sk", n("1"))])) as u64)
    );
    // Growing past the limit is refused and writes nothing.
    assert!(matches!(
        store.write("t", put(it(2, 900))).await,
        Err(StorageError::ItemCollectionSizeLimitExceeded)
    ));
    assert_eq!(
        store
            .get("t", &item(&[("pk", s("a")), ("sk", n("2"))]))
            .unwrap(),
        None
    );
    assert_eq!(store.index_stats("t", "by_l").unwrap().0, 1);
    // Shrinking is always allowed; deleting everything empties it.
    let out = store
        .write(
            "t",
            WriteCommand::Delete {
                key: item(&[("pk", s("a")), ("sk", n("1"))]),
                condition: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(out.item_collection_size, Some(0));
    // Tables without local indexes report nothing.
    store.create_table(table_def("plain", None, 1)).unwrap();
    let out = store
        .write("plain", put(item(&[("pk", s("a"))])))
        .await
        .unwrap();
    assert_eq!(out.item_collection_size, None);
}

#[tokio::test]
async fn invalid_index_key_values_are_rejected_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.create_table(indexed_table("t", 1)).unwrap();
    let key = item(&[("pk", s("a")), ("sk", n("1"))]);
    let mut wrong = key.clone();
    wrong.insert("h".into(), s("not a number"));
    match store.write("t", put(wrong)).await {
        Err(StorageError::IndexKeyInvalid {
            index,
            attribute,
            expected,
            actual,
        }) => {
            assert_eq!((index.as_str(), attribute.as_str()), ("by_g", "h"));
            assert_eq!((expected, actual), (Some(ScalarType::N), "S"));
        }
        other => panic!("unexpected {other:?}"),
    }
    let mut wrong_lsi = key.clone();
    wrong_lsi.insert("l".into(), s("x"));
    assert!(matches!(
        store.write("t", put(wrong_lsi)).await,
        Err(StorageError::IndexKeyInvalid { ref index, .. }) if index == "by_l"
    ));
    // An update whose result holds an empty index key string.
    match store
        .write(
            "t",
            WriteCommand::Update {
                key: key.clone(),
                update: set("g", s("")),
                condition: None,
            },
        )
        .await
    {
        Err(StorageError::IndexKeyInvalid {
            index,
            attribute,
            expected: None,
            actual: "S",
        }) => assert_eq!((index.as_str(), attribute.as_str()), ("by_g", "g")),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(store.get("t", &key).unwrap(), None);
    assert_eq!(store.table_stats("t").unwrap(), (0, 0));
    assert_eq!(store.gsi_pending("t").unwrap(), 0);
}

#[tokio::test]
async fn global_index_is_delivered_projected_and_pageable() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut def = indexed_table("t", 2);
    // 3000 WCU: the index gets 3 partitions of its own.
    def.billing_mode = BillingMode::Provisioned;
    def.global_indexes[0].throughput = Some(ProvisionedThroughput {
        read_capacity_units: 1,
        write_capacity_units: 3000,
    });
    store.create_table(def).unwrap();
    for i in 0..40i64 {
        let mut it = item(&[
            ("pk", s(&format!("p{}", i % 7))),
            ("sk", n(&i.to_string())),
            ("x", s("kept")),
            ("y", s("dropped")),
        ]);
        if i % 5 != 0 {
            it.insert("g".into(), s(&format!("g{}", i % 3)));
            it.insert("h".into(), n(&(100 - i).to_string()));
        }
        store.write("t", put(it)).await.unwrap();
    }
    wait_delivered(&store, "t");
    let got = index_query_all(&store, "t", "by_g", &s("g1"), None, true);
    let expected: Vec<i64> = (0..40i64)
        .filter(|i| i % 5 != 0 && i % 3 == 1)
        .rev()
        .collect();
    let sks: Vec<AttributeValue> = got.iter().map(|i| i["sk"].clone()).collect();
    assert_eq!(
        sks,
        expected
            .iter()
            .map(|i| n(&i.to_string()))
            .collect::<Vec<_>>()
    );
    assert!(got.iter().all(|i| i.len() == 5 && i["x"] == s("kept")));
    assert_eq!(store.index_stats("t", "by_g").unwrap().0, 32);
    // Paging with the LastEvaluatedKey (table keys + index keys) in both
    // directions, for queries and scans.
    for forward in [true, false] {
        let mut all: Vec<Item> = Vec::new();
        loop {
            let start = all.last().cloned();
            let mut page = Vec::new();
            store
                .query_index(
                    "t",
                    "by_g",
                    &s("g1"),
                    Some(&SortKeyCondition::Between(n("0"), n("1000"))),
                    forward,
                    start.as_ref(),
                    &mut |i| {
                        page.push(i);
                        if page.len() == 3 {
                            Visit::Stop
                        } else {
                            Visit::Continue
                        }
                    },
                )
                .unwrap();
            let done = page.len() < 3;
            all.extend(page);
            if done {
                break;
            }
        }
        let mut want = got.clone();
        if !forward {
            want.reverse();
        }
        assert_eq!(all, want);
    }
    for total in [1, 2, 5] {
        let mut all = Vec::new();
        for segment in 0..total {
            let mut start: Option<Item> = None;
            loop {
                let mut page = Vec::new();
                store
                    .scan_index("t", "by_g", segment, total, start.as_ref(), &mut |i| {
                        page.push(i);
                        if page.len() == 4 {
                            Visit::Stop
                        } else {
                            Visit::Continue
                        }
                    })
                    .unwrap();
                let done = page.len() < 4;
                start = page.last().cloned();
                all.extend(page);
                if done {
                    break;
                }
            }
        }
        assert_eq!(all, index_scan_all(&store, "t", "by_g", 1), "total {total}");
        assert_eq!(all.len(), 32);
    }
    // Moving an item to another index key and out of the index.
    store
        .write(
            "t",
            WriteCommand::Update {
                key: item(&[("pk", s("p1")), ("sk", n("1"))]),
                update: set("g", s("g2")),
                condition: None,
            },
        )
        .await
        .unwrap();
    store
        .write(
            "t",
            WriteCommand::Update {
                key: item(&[("pk", s("p4")), ("sk", n("4"))]),
                update: UpdateExpression {
                    remove: vec![Path(vec![PathElement::Attribute("h".into())])],
                    ..Default::default()
                },
                condition: None,
            },
        )
        .await
        .unwrap();
    wait_delivered(&store, "t");
    let g1 = index_query_all(&store, "t", "by_g", &s("g1"), None, true);
    assert!(g1.iter().all(|i| i["sk"] != n("1") && i["sk"] != n("4")));
    assert_eq!(g1.len(), got.len() - 2);
    assert!(index_query_all(&store, "t", "by_g", &s("g2"), None, true)
        .iter()
        .any(|i| i["sk"] == n("1")));
    assert_eq!(store.index_stats("t", "by_g").unwrap().0, 31);
}

#[tokio::test]
async fn deleted_tables_and_indexes_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut def = indexed_table("t", 2);
    store.create_table(def.clone()).unwrap();
    let it = item(&[
        ("pk", s("a")),
        ("sk", n("1")),
        ("l", n("1")),
        ("g", s("g")),
        ("h", n("1")),
    ]);
    store.write("t", put(it.clone())).await.unwrap();
    wait_delivered(&store, "t");
    // Dropping the global index, then adding one of the same name: it starts
    // empty and is backfilled from the items.
    let after = store.delete_global_index("t", "by_g").unwrap();
    assert!(after.global_indexes.is_empty());
    assert!(matches!(
        store.index_stats("t", "by_g"),
        Err(StorageError::IndexNotFound(_))
    ));
    assert!(matches!(
        store.delete_global_index("t", "by_g"),
        Err(StorageError::IndexNotFound(_))
    ));
    let keys_only = index_def(
        "by_g",
        ("g", ScalarType::S),
        None,
        Projection::KeysOnly,
        None,
    );
    store.create_global_index("t", keys_only.clone()).unwrap();
    wait_active(&store, "t", "by_g");
    assert_eq!(
        index_query_all(&store, "t", "by_g", &s("g"), None, true),
        vec![item(&[("pk", s("a")), ("sk", n("1")), ("g", s("g"))])]
    );
    // Deleting the table drops all of it; a new incarnation sees nothing.
    store.delete_table("t").unwrap();
    def.table_id.push_str("-2");
    store.create_table(def).unwrap();
    assert!(index_query_all(&store, "t", "by_g", &s("g"), None, true).is_empty());
    assert!(index_query_all(&store, "t", "by_l", &s("a"), None, true).is_empty());
    assert_eq!(store.index_stats("t", "by_g").unwrap(), (0, 0));
    assert_eq!(store.index_stats("t", "by_l").unwrap(), (0, 0));
    drop(store);
    let store = open(dir.path());
    assert!(index_scan_all(&store, "t", "by_g", 1).is_empty());
    assert!(index_scan_all(&store, "t", "by_l", 1).is_empty());
}

fn wait_active(store: &Store, table: &str, index: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let state = store.index_state(table, index).unwrap();
        if state.status == IndexStatus::Active {
            assert!(!state.backfilling);
            return;
        }
        assert_eq!(state.status, IndexStatus::Creating);
        assert!(state.backfilling);
        assert!(Instant::now() < deadline, "backfill did not finish");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The index content the base items call for: projected entries ordered by
/// (g, base key).
fn expected_gsi(store: &Store, table: &str) -> Vec<Item> {
    let mut entries: BTreeMap<(String, String, i64), Item> = BTreeMap::new();
    for segment in 0..1 {
        for it in scan_all(store, table, segment, 1) {
            let Some(AttributeValue::S(g)) = it.get("g") else {
                continue;
            };
            let AttributeValue::S(pk) = &it["pk"] else {
                unreachable!()
            };
            let AttributeValue::N(sk) = &it["sk"] else {
                unreachable!()
            };
            let sk: i64 = sk.to_string().parse().unwrap();
            let projected = item(&[
                ("pk", it["pk"].clone()),
                ("sk", it["sk"].clone()),
                ("g", it["g"].clone()),
            ]);
            entries.insert((g.clone(), pk.clone(), sk), projected);
        }
    }
    entries.into_values().collect()
}

/// A global index added to a table that holds many items backfills them all
/// while concurrent writers keep changing the table; no write is lost and
/// no stale entry survives.
#[test]
fn backfill_with_concurrent_writes_loses_nothing() {
    let count: i64 = std::env::var("PARTITA_BACKFILL_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        Store::open(
            dir.path(),
            StoreOptions {
                sync: false,
                ..Default::default()
            },
        )
        .unwrap(),
    );
    store
        .create_table(table_def("t", Some(ScalarType::N), 3))
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let g_of = |i: i64| s(&format!("g{}", i % 50));
    runtime.block_on(async {
        for chunk in (0..count).collect::<Vec<_>>().chunks(1000) {
            let commands = chunk
                .iter()
                .map(|i| {
                    let mut it = item(&[
                        ("pk", s(&format!("p{}", i % 97))),
                        ("sk", n(&i.to_string())),
                    ]);
                    if i % 10 != 0 {
                        it.insert("g".into(), g_of(*i));
                    }
                    ("t".to_string(), put(it))
                })
                .collect();
            for r in store.write_many(commands).await {
                r.unwrap();
            }
        }
    });
    let started = Instant::now();
    store
        .create_global_index(
            "t",
            index_def(
                "by_g",
                ("g", ScalarType::S),
                None,
                Projection::KeysOnly,
                None,
            ),
        )
        .unwrap();
    // Concurrent writers: move items to other index keys, drop them from the
    // index, delete them, add new ones — while the backfill runs.
    let writers: Vec<_> = (0..4i64)
        .map(|w| {
            let store = store.clone();
            runtime.spawn(async move {
                let mut i = w;
                let mut rounds = 0;
                while store.index_state("t", "by_g").unwrap().backfilling || rounds < 50 {
                    let sk = (i * 7919) % count;
                    let key = item(&[
                        ("pk", s(&format!("p{}", sk % 97))),
                        ("sk", n(&sk.to_string())),
                    ]);
                    let command = match i % 4 {
                        0 => WriteCommand::Update {
                            key,
                            update: set("g", s(&format!("moved{w}"))),
                            condition: None,
                        },
                        1 => WriteCommand::Update {
                            key,
                            update: UpdateExpression {
                                remove: vec![Path(vec![PathElement::Attribute("g".into())])],
                                ..Default::default()
                            },
                            condition: None,
                        },
                        2 => WriteCommand::Delete {
                            key,
                            condition: None,
                        },
                        _ => put(item(&[
                            ("pk", s(&format!("new{w}"))),
                            ("sk", n(&i.to_string())),
                            ("g", s("fresh")),
                        ])),
                    };
                    store.write("t", command).await.unwrap();
                    i += 4;
                    rounds += 1;
                }
                rounds
            })
        })
        .collect();
    let rounds: i64 = runtime.block_on(async {
        let mut total = 0;
        for w in writers {
            total += w.await.unwrap();
        }
        total
    });
    wait_active(&store, "t", "by_g");
    wait_delivered(&store, "t");
    println!(
        "backfilled {count} items in {:?} with {rounds} concurrent writes",
        started.elapsed()
    );
    let expected = expected_gsi(&store, "t");
    let mut got = index_scan_all(&store, "t", "by_g", 1);
    let key = |i: &Item| -> (String, String, i64) {
        let (AttributeValue::S(g), AttributeValue::S(pk), AttributeValue::N(sk)) =
            (&i["g"], &i["pk"], &i["sk"])
        else {
            unreachable!()
        };
        (g.clone(), pk.clone(), sk.to_string().parse().unwrap())
    };
    got.sort_by_key(key);
    assert_eq!(got.len(), expected.len());
    assert_eq!(got, expected);
    assert_eq!(
        store.index_stats("t", "by_g").unwrap().0,
        expected.len() as u64
    );
    assert!(rounds >= 200);
}

#[tokio::test]
async fn creating_index_state_survives_reopen_and_backfill_resumes() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store
            .create_table(table_def("t", Some(ScalarType::N), 1))
            .unwrap();
        for i in 0..300 {
            store
                .write(
                    "t",
                    put(item(&[
                        ("pk", s("a")),
                        ("sk", n(&i.to_string())),
                        ("g", s("x")),
                    ])),
                )
                .await
                .unwrap();
        }
        store
            .create_global_index(
                "t",
                index_def("by_g", ("g", ScalarType::S), None, Projection::All, None),
            )
            .unwrap();
        // Closed at once: the backfill may or may not have finished.
    }
    let store = open(dir.path());
    wait_active(&store, "t", "by_g");
    wait_delivered(&store, "t");
    assert_eq!(
        index_query_all(&store, "t", "by_g", &s("x"), None, true).len(),
        300
    );
    assert!(matches!(
        store.create_global_index(
            "t",
            index_def("by_g", ("g", ScalarType::S), None, Projection::All, None),
        ),
        Err(StorageError::InvalidTableDefinition(_))
    ));
}
