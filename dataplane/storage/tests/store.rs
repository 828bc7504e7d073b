//! Behaviour of the Store's public contract: catalog, writes, reads.

mod common;

use common::*;
use partita_expr::{
    CompareOp, Condition, Operand, Path, PathElement, SetValue, SortKeyCondition, UpdateExpression,
};
use partita_model::ScalarType;
use partita_storage::{StorageError, Store, StoreOptions, Visit, WriteCommand};

fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, StoreOptions::default()).unwrap()
}

fn put(item: partita_model::Item) -> WriteCommand {
    WriteCommand::Put {
        item,
        condition: None,
    }
}

fn path(name: &str) -> Path {
    Path(vec![PathElement::Attribute(name.into())])
}

#[test]
fn catalog_survives_reopen_and_lists_in_order() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store.create_table(table_def("b", None, 1)).unwrap();
        store
            .create_table(table_def("a", Some(ScalarType::N), 3))
            .unwrap();
        assert!(matches!(
            store.create_table(table_def("a", None, 1)),
            Err(StorageError::TableExists(_))
        ));
        store
            .update_table("a", |d| {
                d.tags.push(("k".into(), "v".into()));
                Ok(())
            })
            .unwrap();
        assert!(matches!(
            store.update_table("a", |d| {
                d.partitions = 7;
                Ok(())
            }),
            Err(StorageError::InvalidTableDefinition(_))
        ));
        store.close().unwrap();
    }
    let store = open(dir.path());
    assert_eq!(store.list_tables(), vec!["a".to_string(), "b".to_string()]);
    let a = store.table("a").unwrap();
    assert_eq!(a.tags, vec![("k".to_string(), "v".to_string())]);
    assert_eq!(a.partitions, 3);
    assert!(matches!(
        store.table("zz"),
        Err(StorageError::TableNotFound(_))
    ));
}

#[tokio::test]
async fn deleted_table_data_never_reappears() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut def = table_def("t", None, 2);
    store.create_table(def.clone()).unwrap();
    store
        .write("t", put(item(&[("pk", s("x"))])))
        .await
        .unwrap();
    assert_eq!(store.table_stats("t").unwrap().0, 1);
    let last = store.delete_table("t").unwrap();
    assert_eq!(last.name, "t");
    assert!(matches!(
        store.delete_table("t"),
        Err(StorageError::TableNotFound(_))
    ));
    assert!(matches!(
        store.write("t", put(item(&[("pk", s("x"))]))).await,
        Err(StorageError::TableNotFound(_))
    ));
    def.table_id.push_str("-2");
    store.create_table(def).unwrap();
    assert_eq!(store.get("t", &item(&[("pk", s("x"))])).unwrap(), None);
    assert_eq!(store.table_stats("t").unwrap(), (0, 0));
    drop(store);
    let store = open(dir.path());
    assert_eq!(scan_all(&store, "t", 0, 1), vec![]);
}

#[tokio::test]
async fn put_get_delete_and_stats() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .create_table(table_def("t", Some(ScalarType::S), 1))
        .unwrap();
    let it = item(&[("pk", s("a")), ("sk", s("1")), ("v", n("12.5"))]);
    let out = store.write("t", put(it.clone())).await.unwrap();
    assert_eq!(out.old, None);
    assert_eq!(out.new.as_ref(), Some(&it));
    let key = item(&[("pk", s("a")), ("sk", s("1"))]);
    assert_eq!(store.get("t", &key).unwrap(), Some(it.clone()));
    let size = partita_model::value::item_size(&it) as u64;
    assert_eq!(store.table_stats("t").unwrap(), (1, size));
    let out = store
        .write(
            "t",
            WriteCommand::Delete {
                key: key.clone(),
                condition: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(out.old, Some(it));
    assert_eq!(out.new, None);
    assert_eq!(store.get("t", &key).unwrap(), None);
    assert_eq!(store.table_stats("t").unwrap(), (0, 0));
    // Keys that do not fit the schema are typed errors.
    assert!(matches!(
        store.get("t", &item(&[("pk", s("a"))])),
        Err(StorageError::InvalidKey(_))
    ));
    assert!(matches!(
        store
            .write("t", put(item(&[("pk", n("1")), ("sk", s("1"))])))
            .await,
        Err(StorageError::InvalidKey(_))
    ));
}

#[tokio::test]
async fn query_orders_numbers_numerically_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .create_table(table_def("t", Some(ScalarType::N), 4))
        .unwrap();
    let sorts = ["-10", "-1.5", "0", "0.001", "2", "10", "100", "1e20"];
    for (i, sk) in sorts.iter().rev().enumerate() {
        store
            .write(
                "t",
                put(item(&[
                    ("pk", s("h")),
                    ("sk", n(sk)),
                    ("i", n(&i.to_string())),
                ])),
            )
            .await
            .unwrap();
        store
            .write("t", put(item(&[("pk", s("other")), ("sk", n(sk))])))
            .await
            .unwrap();
    }
    let got: Vec<_> = query_all(&store, "t", &s("h"), None, true)
        .into_iter()
        .map(|i| i["sk"].clone())
        .collect();
    assert_eq!(got, sorts.iter().map(|x| n(x)).collect::<Vec<_>>());
    let back: Vec<_> = query_all(&store, "t", &s("h"), None, false)
        .into_iter()
        .map(|i| i["sk"].clone())
        .collect();
    assert_eq!(back, sorts.iter().rev().map(|x| n(x)).collect::<Vec<_>>());
    let between = SortKeyCondition::Between(n("-1.5"), n("2"));
    assert_eq!(
        query_all(&store, "t", &s("h"), Some(&between), true).len(),
        4
    );
    let gt = SortKeyCondition::Gt(n("10"));
    assert_eq!(query_all(&store, "t", &s("h"), Some(&gt), true).len(), 2);
    // Paging: stop after 3, resume after the last key.
    let mut pages = Vec::new();
    let mut start: Option<partita_model::Item> = None;
    loop {
        let mut page = Vec::new();
        store
            .query("t", &s("h"), None, false, start.as_ref(), &mut |i| {
                page.push(i);
                if page.len() == 3 {
                    Visit::Stop
                } else {
                    Visit::Continue
                }
            })
            .unwrap();
        if page.is_empty() {
            break;
        }
        start = page
            .last()
            .map(|i| item(&[("pk", i["pk"].clone()), ("sk", i["sk"].clone())]));
        pages.extend(page);
    }
    assert_eq!(pages, query_all(&store, "t", &s("h"), None, false));
    assert!(matches!(
        store.query(
            "t",
            &s("h"),
            Some(&SortKeyCondition::BeginsWith(n("1"))),
            true,
            None,
            &mut |_| Visit::Continue
        ),
        Err(StorageError::InvalidKey(_))
    ));
}

#[tokio::test]
async fn scan_segments_partition_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.create_table(table_def("t", None, 3)).unwrap();
    let commands = (0..200)
        .map(|i| ("t".to_string(), put(item(&[("pk", s(&format!("k{i}")))]))))
        .collect();
    for r in store.write_many(commands).await {
        r.unwrap();
    }
    let all = scan_all(&store, "t", 0, 1);
    assert_eq!(all.len(), 200);
    let hashes: Vec<u64> = all
        .iter()
        .map(|i| partita_storage::keys::partition_hash(&i["pk"]).unwrap())
        .collect();
    assert!(
        hashes.windows(2).all(|w| w[0] <= w[1]),
        "scan order is hash order"
    );
    for total in [2, 5, 7] {
        let mut union = Vec::new();
        for seg in 0..total {
            union.extend(scan_all(&store, "t", seg, total));
        }
        assert_eq!(union, all);
    }
    assert!(matches!(
        store.scan("t", 3, 3, None, &mut |_| Visit::Continue),
        Err(StorageError::InvalidSegment { .. })
    ));
    assert_eq!(store.table_stats("t").unwrap().0, 200);
}

#[tokio::test]
async fn write_many_sees_earlier_commands_of_the_same_group() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.create_table(table_def("t", None, 1)).unwrap();
    let key = item(&[("pk", s("a"))]);
    let not_exists = Condition::AttributeNotExists(path("pk"));
    let results = store
        .write_many(vec![
            (
                "t".into(),
                WriteCommand::Put {
                    item: item(&[("pk", s("a")), ("v", n("1"))]),
                    condition: Some(not_exists.clone()),
                },
            ),
            (
                "t".into(),
                WriteCommand::Put {
                    item: item(&[("pk", s("a")), ("v", n("2"))]),
                    condition: Some(not_exists),
                },
            ),
            (
                "nope".into(),
                WriteCommand::Delete {
                    key: key.clone(),
                    condition: None,
                },
            ),
            (
                "t".into(),
                WriteCommand::Update {
                    key: key.clone(),
                    update: UpdateExpression {
                        set: vec![(
                            path("v"),
                            SetValue::Plus(
                                Box::new(SetValue::Operand(Operand::Path(path("v")))),
                                Box::new(SetValue::Operand(Operand::Value(n("10")))),
                            ),
                        )],
                        ..Default::default()
                    },
                    condition: Some(Condition::Compare(
                        Operand::Path(path("v")),
                        CompareOp::Eq,
                        Operand::Value(n("1")),
                    )),
                },
            ),
        ])
        .await;
    assert!(results[0].is_ok());
    match &results[1] {
        Err(StorageError::ConditionalCheckFailed { old }) => {
            assert_eq!(
                old.as_deref(),
                Some(&item(&[("pk", s("a")), ("v", n("1"))]))
            )
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(results[2], Err(StorageError::TableNotFound(_))));
    let updated = results[3].as_ref().unwrap();
    assert_eq!(updated.new.as_ref().unwrap()["v"], n("11"));
    assert_eq!(store.get("t", &key).unwrap().unwrap()["v"], n("11"));
}

#[tokio::test]
async fn update_errors_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.create_table(table_def("t", None, 1)).unwrap();
    let key = item(&[("pk", s("a"))]);
    store
        .write("t", put(item(&[("pk", s("a")), ("v", s("text"))])))
        .await
        .unwrap();
    // v + 1 on a string is an evaluation error.
    let update = UpdateExpression {
        set: vec![(
            path("v"),
            SetValue::Plus(
                Box::new(SetValue::Operand(Operand::Path(path("v")))),
                Box::new(SetValue::Operand(Operand::Value(n("1")))),
            ),
        )],
        ..Default::default()
    };
    let r = store
        .write(
            "t",
            WriteCommand::Update {
                key: key.clone(),
                update,
                condition: None,
            },
        )
        .await;
    assert!(matches!(r, Err(StorageError::Eval(_))), "{r:?}");
    assert_eq!(store.get("t", &key).unwrap().unwrap()["v"], s("text"));
    // An update that would exceed 400 KB is refused.
    let big = UpdateExpression {
        set: vec![(
            path("big"),
            SetValue::Operand(Operand::Value(s(&"x".repeat(400 * 1024)))),
        )],
        ..Default::default()
    };
    let r = store
        .write(
            "t",
            WriteCommand::Update {
                key: key.clone(),
                update: big,
                condition: None,
            },
        )
        .await;
    assert!(matches!(r, Err(StorageError::ItemTooLarge)), "{r:?}");
    assert!(!store.get("t", &key).unwrap().unwrap().contains_key("big"));
}

#[test]
fn store_and_write_futures_can_cross_threads() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    send_sync(&store);
    send(store.write("t", put(item(&[("pk", s("a"))]))));
    send(store.write_many(vec![]));
}

#[tokio::test]
async fn write_many_of_nothing_answers_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert!(store.write_many(vec![]).await.is_empty());
    store.flush().unwrap();
}
