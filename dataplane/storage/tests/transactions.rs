//! Transactions of the store: all-or-nothing writes and snapshot reads.

mod common;

use std::sync::Arc;

use common::{item, n, s, table_def};
use partita_expr::{CompareOp, Condition, Operand, Path, PathElement, SetValue, UpdateExpression};
use partita_model::{AttributeValue, Item, Number};
use partita_storage::{StorageError, Store, StoreOptions, TransactionFailure, WriteCommand};

fn open(dir: &std::path::Path) -> Store {
    let store = Store::open(dir, StoreOptions::default()).expect("open");
    store
        .create_table(table_def("a", None, 4))
        .expect("create a");
    store
        .create_table(table_def("b", None, 1))
        .expect("create b");
    store
}

fn path(name: &str) -> Path {
    Path(vec![PathElement::Attribute(name.into())])
}

fn key(pk: &str) -> Item {
    item(&[("pk", s(pk))])
}

fn put(pk: &str, balance: i64) -> WriteCommand {
    WriteCommand::Put {
        item: item(&[("pk", s(pk)), ("balance", num(balance))]),
        condition: None,
    }
}

fn num(v: i64) -> AttributeValue {
    AttributeValue::N(Number::from_i64(v))
}

/// SET balance = balance + delta, requiring balance >= -delta when negative.
fn add(pk: &str, delta: i64) -> WriteCommand {
    let update = UpdateExpression {
        set: vec![(
            path("balance"),
            SetValue::Plus(
                Box::new(SetValue::Operand(Operand::Path(path("balance")))),
                Box::new(SetValue::Operand(Operand::Value(num(delta)))),
            ),
        )],
        ..Default::default()
    };
    let condition = (delta < 0).then(|| {
        Condition::Compare(
            Operand::Path(path("balance")),
            CompareOp::Ge,
            Operand::Value(num(-delta)),
        )
    });
    WriteCommand::Update {
        key: key(pk),
        update,
        condition,
    }
}

fn balance(store: &Store, table: &str, pk: &str) -> Option<AttributeValue> {
    store
        .get(table, &key(pk))
        .expect("get")
        .and_then(|i| i.get("balance").cloned())
}

fn reasons(failure: &TransactionFailure) -> Vec<&'static str> {
    failure
        .reasons
        .iter()
        .map(|r| match r {
            None => "none",
            Some(StorageError::ConditionalCheckFailed { .. }) => "ccf",
            Some(StorageError::InvalidKey(_)) => "key",
            Some(_) => "other",
        })
        .collect()
}

#[tokio::test]
async fn a_transaction_applies_every_action_across_tables() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.write("a", put("x", 10)).await.unwrap();
    let outcomes = store
        .transact_write(vec![
            ("a".into(), add("x", -4)),
            ("b".into(), put("y", 4)),
            (
                "a".into(),
                WriteCommand::ConditionCheck {
                    key: key("z"),
                    condition: Condition::AttributeNotExists(path("pk")),
                },
            ),
        ])
        .await
        .expect("committed");
    assert_eq!(outcomes.len(), 3);
    assert_eq!(outcomes[0].new.as_ref().unwrap()["balance"], n("6"));
    assert!(outcomes[1].old.is_none());
    assert!(outcomes[2].old.is_none() && outcomes[2].new.is_none());
    assert_eq!(balance(&store, "a", "x"), Some(n("6")));
    assert_eq!(balance(&store, "b", "y"), Some(n("4")));
    assert_eq!(
        store.get("a", &key("z")).unwrap(),
        None,
        "checks write nothing"
    );
    assert_eq!(store.table_stats("a").unwrap().0, 1);
    assert_eq!(store.table_stats("b").unwrap().0, 1);
}

#[tokio::test]
async fn a_failing_action_leaves_everything_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.write("a", put("x", 10)).await.unwrap();
    let stats_before = (
        store.table_stats("a").unwrap(),
        store.table_stats("b").unwrap(),
    );
    let failure = store
        .transact_write(vec![
            ("b".into(), put("new", 1)),
            ("a".into(), add("x", -11)),
            (
                "a".into(),
                WriteCommand::Delete {
                    key: key("gone"),
                    condition: None,
                },
            ),
        ])
        .await
        .expect_err("cancelled");
    assert_eq!(reasons(&failure), ["none", "ccf", "none"]);
    match &failure.reasons[1] {
        Some(StorageError::ConditionalCheckFailed { old }) => {
            assert_eq!(old.as_deref().unwrap()["balance"], n("10"))
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(store.get("b", &key("new")).unwrap(), None);
    assert_eq!(balance(&store, "a", "x"), Some(n("10")));
    let stats_after = (
        store.table_stats("a").unwrap(),
        store.table_stats("b").unwrap(),
    );
    assert_eq!(stats_before, stats_after);
}

#[tokio::test]
async fn a_failing_check_cancels_and_every_failure_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.write("a", put("x", 1)).await.unwrap();
    let failure = store
        .transact_write(vec![
            (
                "a".into(),
                WriteCommand::ConditionCheck {
                    key: key("x"),
                    condition: Condition::AttributeNotExists(path("pk")),
                },
            ),
            ("a".into(), put("y", 1)),
            ("a".into(), add("missing", -1)),
        ])
        .await
        .expect_err("cancelled");
    assert_eq!(reasons(&failure), ["ccf", "none", "ccf"]);
    assert_eq!(store.get("a", &key("y")).unwrap(), None);
}

#[tokio::test]
async fn an_item_may_be_addressed_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let failure = store
        .transact_write(vec![("a".into(), put("x", 1)), ("a".into(), add("x", 1))])
        .await
        .expect_err("refused");
    assert_eq!(reasons(&failure), ["none", "key"]);
    assert_eq!(store.get("a", &key("x")).unwrap(), None);
    // The same key in two tables is two items.
    store
        .transact_write(vec![("a".into(), put("x", 1)), ("b".into(), put("x", 2))])
        .await
        .expect("committed");
}

#[tokio::test]
async fn a_missing_table_fails_its_action_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let failure = store
        .transact_write(vec![
            ("a".into(), put("x", 1)),
            ("nope".into(), put("x", 1)),
        ])
        .await
        .expect_err("refused");
    assert!(matches!(
        failure.reasons[1],
        Some(StorageError::TableNotFound(_))
    ));
    assert!(failure.reasons[0].is_none());
    assert_eq!(store.get("a", &key("x")).unwrap(), None);
}

#[tokio::test]
async fn failed_transactions_do_not_disturb_their_write_group() {
    // Many concurrent writers share groups with failing transactions: every
    // plain write and every successful transaction lands, no failed one does.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    store.write("a", put("guard", 0)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let plain = store.write("a", put(&format!("plain-{i}"), i)).await;
            let fail = store
                .transact_write(vec![
                    ("b".into(), put(&format!("failed-{i}"), i)),
                    ("a".into(), add("guard", -1)),
                ])
                .await;
            let ok = store
                .transact_write(vec![
                    ("b".into(), put(&format!("ok-{i}"), i)),
                    ("a".into(), put(&format!("ok-{i}"), i)),
                ])
                .await;
            (plain.is_ok(), fail.is_err(), ok.is_ok())
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), (true, true, true));
    }
    for i in 0..64 {
        assert!(store
            .get("a", &key(&format!("plain-{i}")))
            .unwrap()
            .is_some());
        assert!(store
            .get("b", &key(&format!("failed-{i}")))
            .unwrap()
            .is_none());
        assert!(store.get("a", &key(&format!("ok-{i}"))).unwrap().is_some());
        assert!(store.get("b", &key(&format!("ok-{i}"))).unwrap().is_some());
    }
    assert_eq!(store.table_stats("a").unwrap().0, 1 + 64 + 64);
    assert_eq!(store.table_stats("b").unwrap().0, 64);
}

#[tokio::test]
async fn snapshot_reads_never_see_part_of_a_transfer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let accounts = ["p", "q", "r", "s"];
    for acct in accounts {
        store.write("a", put(acct, 100)).await.unwrap();
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let mut committed = 0;
            for i in 0..150usize {
                let from = accounts[(i + w) % 4];
                let to = accounts[(i + w + 1 + i % 3) % 4];
                let amount = 1 + (i % 7) as i64;
                let result = store
                    .transact_write(vec![
                        ("a".into(), add(from, -amount)),
                        ("a".into(), add(to, amount)),
                    ])
                    .await;
                committed += usize::from(result.is_ok());
            }
            committed
        }));
    }
    let reader = {
        let store = store.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let gets: Vec<(String, Item)> =
                accounts.iter().map(|a| ("a".to_string(), key(a))).collect();
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let items = store.transact_get(&gets).expect("read");
                let total: i64 = items
                    .iter()
                    .map(|i| match i.as_ref().and_then(|i| i.get("balance")) {
                        Some(AttributeValue::N(v)) => v.to_string().parse::<i64>().unwrap(),
                        other => panic!("unexpected {other:?}"),
                    })
                    .sum();
                assert_eq!(total, 400, "a read saw part of a transfer");
                reads += 1;
            }
            reads
        })
    };
    let mut committed = 0;
    for w in writers {
        committed += w.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    assert!(committed > 0);
}

#[tokio::test]
async fn transact_get_reports_missing_tables_and_bad_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert!(matches!(
        store.transact_get(&[("nope".into(), key("x"))]),
        Err(StorageError::TableNotFound(_))
    ));
    assert!(matches!(
        store.transact_get(&[("a".into(), item(&[("other", s("x"))]))]),
        Err(StorageError::InvalidKey(_))
    ));
    assert_eq!(
        store.transact_get(&[("a".into(), key("x"))]).unwrap(),
        vec![None]
    );
}

#[tokio::test]
async fn committed_transactions_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store
            .transact_write(vec![("a".into(), put("x", 1)), ("b".into(), put("y", 2))])
            .await
            .unwrap();
        store.close().unwrap();
    }
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(balance(&store, "a", "x"), Some(n("1")));
    assert_eq!(balance(&store, "b", "y"), Some(n("2")));
}
