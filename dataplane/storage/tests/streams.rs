//! The change log behind DynamoDB Streams and the TTL sweeper, through the
//! Store's public contract.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use partita_expr::{Condition, Operand, Path, PathElement, SetValue, UpdateExpression};
use partita_model::{Item, StreamSpecification, TableDefinition, TimeToLive};
use partita_storage::{
    ChangeEvent, ChangeRecord, StorageError, Store, StoreOptions, StreamViewType, WriteCommand,
};

fn path(name: &str) -> Path {
    Path(vec![PathElement::Attribute(name.into())])
}

fn put(item: Item) -> WriteCommand {
    WriteCommand::Put {
        item,
        condition: None,
    }
}

fn set(pk: &str, attr: &str, value: partita_model::AttributeValue) -> WriteCommand {
    WriteCommand::Update {
        key: item(&[("pk", s(pk))]),
        update: UpdateExpression {
            set: vec![(path(attr), SetValue::Operand(Operand::Value(value)))],
            ..Default::default()
        },
        condition: None,
    }
}

fn delete(pk: &str) -> WriteCommand {
    WriteCommand::Delete {
        key: item(&[("pk", s(pk))]),
        condition: None,
    }
}

fn with_stream(name: &str, view: &str, partitions: u32) -> TableDefinition {
    let mut def = table_def(name, None, partitions);
    def.stream = Some(StreamSpecification {
        enabled: true,
        view_type: Some(view.into()),
    });
    def.stream_label = Some("2026-01-01T00:00:00.000".into());
    def
}

fn open_with(dir: &std::path::Path, options: StoreOptions) -> Store {
    Store::open(dir, options).unwrap()
}

fn open(dir: &std::path::Path) -> Store {
    open_with(dir, StoreOptions::default())
}

/// Every record of every partition of `table`, in log order per partition.
fn all_records(store: &Store, table: &str) -> Vec<ChangeRecord> {
    let partitions = store.table(table).unwrap().partitions;
    let mut out = Vec::new();
    for p in 0..partitions {
        let mut from = 0;
        loop {
            let page = store.read_changes(table, p, from, None, 7).unwrap();
            let Some(last) = page.records.last() else {
                break;
            };
            from = last.seq + 1;
            out.extend(page.records);
        }
    }
    out
}

#[tokio::test]
async fn records_follow_the_view_type_and_skip_unchanged_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for view in ["KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES"] {
        let name = format!("t_{view}");
        store.create_table(with_stream(&name, view, 1)).unwrap();
        let a1 = item(&[("pk", s("a")), ("v", n("1"))]);
        let a2 = item(&[("pk", s("a")), ("v", n("2"))]);
        store.write(&name, put(a1.clone())).await.unwrap();
        // A Put of the identical item and a Delete of an absent one change
        // nothing: no record.
        store.write(&name, put(a1.clone())).await.unwrap();
        store.write(&name, delete("absent")).await.unwrap();
        store.write(&name, set("a", "v", n("2"))).await.unwrap();
        store.write(&name, set("a", "v", n("2"))).await.unwrap();
        store.write(&name, delete("a")).await.unwrap();
        let records = all_records(&store, &name);
        let events: Vec<_> = records.iter().map(|r| r.event).collect();
        assert_eq!(
            events,
            [
                ChangeEvent::Insert,
                ChangeEvent::Modify,
                ChangeEvent::Remove
            ],
            "{view}"
        );
        assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [0, 1, 2]);
        let key = item(&[("pk", s("a"))]);
        assert!(records.iter().all(|r| r.keys == key && !r.by_ttl));
        let view = StreamViewType::parse(view).unwrap();
        let keeps_old = matches!(
            view,
            StreamViewType::OldImage | StreamViewType::NewAndOldImages
        );
        let keeps_new = matches!(
            view,
            StreamViewType::NewImage | StreamViewType::NewAndOldImages
        );
        let images: Vec<_> = records
            .iter()
            .map(|r| (r.old.clone(), r.new.clone()))
            .collect();
        let expect = |o: Option<&Item>, n: Option<&Item>| {
            (
                o.filter(|_| keeps_old).cloned(),
                n.filter(|_| keeps_new).cloned(),
            )
        };
        assert_eq!(
            images,
            [
                expect(None, Some(&a1)),
                expect(Some(&a1), Some(&a2)),
                expect(Some(&a2), None)
            ],
            "{view:?}"
        );
    }
}

#[tokio::test]
async fn no_records_without_an_enabled_stream() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.create_table(table_def("plain", None, 2)).unwrap();
    store
        .write("plain", put(item(&[("pk", s("a"))])))
        .await
        .unwrap();
    assert!(all_records(&store, "plain").is_empty());
    let (_, streams) = store.streams("plain").unwrap();
    assert!(streams.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_of_one_key_are_in_write_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    store
        .create_table(with_stream("c", "NEW_IMAGE", 4))
        .unwrap();
    // Concurrent increments of one counter: the log holds them in the order
    // they applied, so the counter values are 1, 2, 3, ...
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                let update = UpdateExpression {
                    add: vec![(path("n"), n("1"))],
                    ..Default::default()
                };
                store
                    .write(
                        "c",
                        WriteCommand::Update {
                            key: item(&[("pk", s("k"))]),
                            update,
                            condition: None,
                        },
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let records = all_records(&store, "c");
    assert_eq!(records.len(), 200);
    for (i, r) in records.iter().enumerate() {
        let value = r.new.as_ref().unwrap().get("n").unwrap();
        assert_eq!(value, &n(&(i + 1).to_string()));
    }
    assert!(records.windows(2).all(|w| w[0].seq < w[1].seq));
}

#[tokio::test]
async fn transactions_record_every_item_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .create_table(with_stream("tx", "NEW_AND_OLD_IMAGES", 1))
        .unwrap();
    store
        .transact_write(vec![
            ("tx".into(), put(item(&[("pk", s("a"))]))),
            ("tx".into(), put(item(&[("pk", s("b"))]))),
        ])
        .await
        .unwrap();
    let failed = store
        .transact_write(vec![
            ("tx".into(), put(item(&[("pk", s("c"))]))),
            (
                "tx".into(),
                WriteCommand::Delete {
                    key: item(&[("pk", s("zz"))]),
                    condition: Some(Condition::AttributeExists(path("pk"))),
                },
            ),
        ])
        .await;
    assert!(failed.is_err());
    let keys: Vec<_> = all_records(&store, "tx")
        .into_iter()
        .map(|r| r.keys)
        .collect();
    assert_eq!(keys, [item(&[("pk", s("a"))]), item(&[("pk", s("b"))])]);
}

#[tokio::test]
async fn disabling_closes_the_stream_and_enabling_starts_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store
            .create_table(with_stream("s", "KEYS_ONLY", 2))
            .unwrap();
        for k in ["a", "b", "c"] {
            store.write("s", put(item(&[("pk", s(k))]))).await.unwrap();
        }
        store
            .update_table("s", |def| {
                def.stream = Some(StreamSpecification {
                    enabled: false,
                    view_type: None,
                });
                Ok(())
            })
            .unwrap();
        // Written while disabled: in no stream.
        store
            .write("s", put(item(&[("pk", s("d"))])))
            .await
            .unwrap();
        store
            .update_table("s", |def| {
                def.stream = Some(StreamSpecification {
                    enabled: true,
                    view_type: Some("NEW_IMAGE".into()),
                });
                def.stream_label = Some("2026-01-02T00:00:00.000".into());
                Ok(())
            })
            .unwrap();
        store
            .write("s", put(item(&[("pk", s("e"))])))
            .await
            .unwrap();
    }
    let store = open(dir.path());
    let (_, streams) = store.streams("s").unwrap();
    assert_eq!(streams.len(), 2);
    let (old, new) = (&streams[0], &streams[1]);
    assert!(!old.enabled && new.enabled);
    assert_eq!(new.view_type, StreamViewType::NewImage);
    assert_eq!(old.shards.len(), 2);
    assert!(old.shards.iter().all(|s| s.closed));
    assert!(new.shards.iter().all(|s| !s.closed && s.end_seq.is_none()));
    assert_ne!(old.shards[0].id, new.shards[0].id);
    let read = |shard: &partita_storage::ShardInfo| -> Vec<String> {
        let until = if shard.closed {
            match shard.end_seq {
                Some(end) => Some(end),
                None => return Vec::new(),
            }
        } else {
            None
        };
        store
            .read_changes("s", shard.partition, shard.start_seq, until, 100)
            .unwrap()
            .records
            .iter()
            .map(|r| match r.keys.get("pk") {
                Some(partita_model::AttributeValue::S(k)) => k.clone(),
                _ => String::new(),
            })
            .collect()
    };
    let mut in_old: Vec<String> = old.shards.iter().flat_map(read).collect();
    in_old.sort();
    assert_eq!(in_old, ["a", "b", "c"]);
    let in_new: Vec<String> = new.shards.iter().flat_map(read).collect();
    assert_eq!(in_new, ["e"]);
}

#[tokio::test]
async fn retention_trims_whole_segments_and_numbers_continue() {
    let dir = tempfile::tempdir().unwrap();
    let options = || StoreOptions {
        stream_retention: Duration::from_millis(600),
        ..Default::default()
    };
    let last_seq;
    {
        let store = open_with(dir.path(), options());
        store
            .create_table(with_stream("r", "NEW_IMAGE", 1))
            .unwrap();
        for i in 0..5 {
            store
                .write("r", put(item(&[("pk", s(&format!("k{i}")))])))
                .await
                .unwrap();
        }
        assert_eq!(
            store
                .read_changes("r", 0, 0, None, 100)
                .unwrap()
                .records
                .len(),
            5
        );
        // Past the retention (plus a segment roll), the housekeeping thread
        // has dropped the segments.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        store.maintain_streams().unwrap();
        let page = store.read_changes("r", 0, 0, None, 100).unwrap();
        assert!(page.records.is_empty());
        assert_eq!(page.horizon, 5);
        assert_eq!(page.next_seq, 5);
        store
            .write("r", put(item(&[("pk", s("new"))])))
            .await
            .unwrap();
        let page = store.read_changes("r", 0, 0, None, 100).unwrap();
        assert_eq!(page.records.len(), 1);
        last_seq = page.records[0].seq;
        assert_eq!(last_seq, 5);
    }
    // Numbers never repeat, even after every record was trimmed and the
    // store reopened.
    let store = open_with(dir.path(), options());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    store.maintain_streams().unwrap();
    let page = store.read_changes("r", 0, 0, None, 100).unwrap();
    assert!(page.records.is_empty());
    assert_eq!(page.next_seq, last_seq + 1);
    store
        .write("r", put(item(&[("pk", s("newer"))])))
        .await
        .unwrap();
    let page = store.read_changes("r", 0, 0, None, 100).unwrap();
    assert_eq!(page.records[0].seq, last_seq + 1);
}

#[test]
fn shards_roll_into_children() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(
        dir.path(),
        StoreOptions {
            shard_roll_interval: Duration::from_millis(100),
            ..Default::default()
        },
    );
    store
        .create_table(with_stream("roll", "KEYS_ONLY", 1))
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    store.maintain_streams().unwrap();
    let (_, streams) = store.streams("roll").unwrap();
    let shards = &streams[0].shards;
    assert!(shards.len() >= 2, "{shards:?}");
    let open: Vec<_> = shards.iter().filter(|s| !s.closed).collect();
    assert_eq!(open.len(), 1);
    assert!(open[0].parent.is_some());
    assert!(shards
        .iter()
        .any(|s| Some(&s.id) == open[0].parent.as_ref()));
}

fn ttl_table(name: &str) -> TableDefinition {
    let mut def = with_stream(name, "NEW_AND_OLD_IMAGES", 2);
    def.ttl = Some(TimeToLive {
        enabled: true,
        attribute_name: "exp".into(),
    });
    def
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_sweep_deletes_expired_items_with_service_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    store.create_table(ttl_table("ttl")).unwrap();
    let now = 1_900_000_000i64;
    let rows = [
        ("past", Some(n(&(now - 10).to_string()))),
        ("now", Some(n(&now.to_string()))),
        ("future", Some(n(&(now + 10).to_string()))),
        ("ancient", Some(n(&(now - 6 * 365 * 86400).to_string()))),
        ("string", Some(s(&(now - 10).to_string()))),
        ("missing", None),
    ];
    for (pk, exp) in &rows {
        let mut it = item(&[("pk", s(pk))]);
        if let Some(exp) = exp {
            it.insert("exp".into(), exp.clone());
        }
        store.write("ttl", put(it)).await.unwrap();
    }
    let sweeper = store.clone();
    let stats = tokio::task::spawn_blocking(move || sweeper.sweep_expired(now))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stats.candidates, stats.deleted), (2, 2));
    for (pk, _) in &rows {
        let present = store.get("ttl", &item(&[("pk", s(pk))])).unwrap().is_some();
        assert_eq!(present, !["past", "now"].contains(pk), "{pk}");
    }
    let removes: Vec<_> = all_records(&store, "ttl")
        .into_iter()
        .filter(|r| r.event == ChangeEvent::Remove)
        .collect();
    assert_eq!(removes.len(), 2);
    assert!(removes.iter().all(|r| r.by_ttl && r.old.is_some()));
    // A client's own delete is not the service's.
    store.write("ttl", delete("future")).await.unwrap();
    let last = all_records(&store, "ttl")
        .into_iter()
        .find(|r| r.keys == item(&[("pk", s("future"))]) && r.event == ChangeEvent::Remove)
        .unwrap();
    assert!(!last.by_ttl);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ttl_never_deletes_an_item_updated_to_a_later_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    store.create_table(ttl_table("race")).unwrap();
    let now = 1_900_000_000i64;
    const ITEMS: usize = 600;
    for i in 0..ITEMS {
        store
            .write(
                "race",
                put(item(&[
                    ("pk", s(&format!("k{i:04}"))),
                    ("exp", n(&(now - 1).to_string())),
                ])),
            )
            .await
            .unwrap();
    }
    // Sweeps run while every item is moved to a later expiry, each move
    // conditioned on the item still existing.
    let sweeper = store.clone();
    let sweeps = tokio::task::spawn_blocking(move || {
        let mut deleted = 0;
        for _ in 0..5 {
            deleted += sweeper.sweep_expired(now).unwrap().deleted;
        }
        deleted
    });
    let mut extended = Vec::new();
    for i in (0..ITEMS).rev() {
        let pk = format!("k{i:04}");
        let result = store
            .write(
                "race",
                WriteCommand::Update {
                    key: item(&[("pk", s(&pk))]),
                    update: UpdateExpression {
                        set: vec![(
                            path("exp"),
                            SetValue::Operand(Operand::Value(n(&(now + 3600).to_string()))),
                        )],
                        ..Default::default()
                    },
                    condition: Some(Condition::AttributeExists(path("pk"))),
                },
            )
            .await;
        match result {
            Ok(_) => extended.push(pk),
            Err(StorageError::ConditionalCheckFailed { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let deleted = sweeps.await.unwrap();
    assert_eq!(deleted as usize + extended.len(), ITEMS);
    for pk in &extended {
        assert!(
            store
                .get("race", &item(&[("pk", s(pk))]))
                .unwrap()
                .is_some(),
            "{pk} was extended and then deleted"
        );
    }
    let removed: Vec<_> = all_records(&store, "race")
        .into_iter()
        .filter(|r| r.event == ChangeEvent::Remove)
        .collect();
    assert_eq!(removed.len(), deleted as usize);
    assert!(removed.iter().all(|r| r.by_ttl));
}

/// Opens a store the way a replica of a Raft group does.
fn open_replicated(dir: &std::path::Path) -> Store {
    open_with(
        dir,
        StoreOptions {
            replicated: true,
            ..StoreOptions::default()
        },
    )
}

/// Applies the same commands, each at its own clock, to `store`.
async fn apply_timed(store: &Store, table: &str, clocked: &[(u64, WriteCommand)]) {
    for (now_ms, command) in clocked {
        store.set_clock(*now_ms);
        store.write(table, command.clone()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_with_the_same_clock_write_the_same_records_and_shards() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (open_replicated(a_dir.path()), open_replicated(b_dir.path()));
    let def = with_stream("t", "NEW_AND_OLD_IMAGES", 1);
    let clocked = [
        (
            1_800_000_000_000,
            put(item(&[("pk", s("x")), ("v", n("1"))])),
        ),
        (1_800_000_000_500, set("x", "v", n("2"))),
        (1_800_000_001_000, delete("x")),
    ];
    for store in [&a, &b] {
        store.set_clock(1_799_999_999_000);
        store.create_table(def.clone()).unwrap();
    }
    apply_timed(&a, "t", &clocked).await;
    // The other replica applies later by the wall clock: same records.
    tokio::time::sleep(Duration::from_millis(30)).await;
    apply_timed(&b, "t", &clocked).await;
    let records = all_records(&a, "t");
    assert_eq!(records.len(), 3);
    assert_eq!(
        records.iter().map(|r| r.created_ms).collect::<Vec<_>>(),
        [1_800_000_000_000, 1_800_000_000_500, 1_800_000_001_000]
    );
    assert_eq!(records, all_records(&b, "t"));
    assert_eq!(a.streams("t").unwrap(), b.streams("t").unwrap());
    let (_, streams) = a.streams("t").unwrap();
    assert_eq!(streams[0].created_ms, 1_799_999_999_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicated_store_expires_only_through_expire() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_replicated(dir.path());
    let mut def = ttl_table("ttl");
    def.stream = Some(StreamSpecification {
        enabled: true,
        view_type: Some("KEYS_ONLY".into()),
    });
    def.stream_label = Some("2026-01-01T00:00:00.000".into());
    store.create_table(def).unwrap();
    let now = 1_900_000_000i64;
    for (pk, exp) in [("old", now - 5), ("new", now + 5)] {
        let it = item(&[("pk", s(pk)), ("exp", n(&exp.to_string()))]);
        store.write("ttl", put(it)).await.unwrap();
    }
    let expired = store.expired(now, 10).unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].key, item(&[("pk", s("old"))]));
    assert!(store.expired(now, 0).unwrap().is_empty());
    // Updated to a later expiry after it was found: the delete re-checks.
    let mut racing = expired.clone();
    racing.push(partita_storage::Expiry {
        key: item(&[("pk", s("new"))]),
        ..expired[0].clone()
    });
    store.set_clock(now as u64 * 1000);
    let outcomes = store
        .expire(
            racing,
            now,
            vec![("ttl".into(), put(item(&[("pk", s("marker"))])))],
        )
        .await;
    assert_eq!(outcomes.len(), 3);
    assert!(outcomes[0].as_ref().unwrap().old.is_some());
    assert!(matches!(
        outcomes[1],
        Err(StorageError::ConditionalCheckFailed { .. })
    ));
    assert!(outcomes[2].is_ok());
    let removes: Vec<_> = all_records(&store, "ttl")
        .into_iter()
        .filter(|r| r.event == ChangeEvent::Remove)
        .collect();
    assert_eq!(removes.len(), 1);
    assert!(removes[0].by_ttl);
    assert_eq!(removes[0].created_ms, now as u64 * 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_change_log_imports_with_the_same_numbers_and_shards() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = open_with(
        a_dir.path(),
        StoreOptions {
            // Segments roll every 50 ms: the export has several.
            stream_retention: Duration::from_millis(1200),
            replicated: true,
            ..StoreOptions::default()
        },
    );
    let def = with_stream("t", "NEW_IMAGE", 2);
    a.create_table(def.clone()).unwrap();
    for i in 0..40 {
        a.write("t", put(item(&[("pk", s(&format!("k{i}")))])))
            .await
            .unwrap();
        if i % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
    }
    let export = a.export_change_log("t").unwrap();
    assert!(export.logs.iter().map(|l| l.segments.len()).sum::<usize>() >= 4);
    let b = open_replicated(b_dir.path());
    b.create_table(def.clone()).unwrap();
    b.import_change_log("t", export.clone()).unwrap();
    assert_eq!(all_records(&a, "t"), all_records(&b, "t"));
    assert_eq!(a.streams("t").unwrap(), b.streams("t").unwrap());
    // Importing over records is refused; the next write continues the numbers.
    assert!(b.import_change_log("t", export).is_err());
    b.write("t", put(item(&[("pk", s("k0")), ("v", n("1"))])))
        .await
        .unwrap();
    let next = |store: &Store, p| {
        store
            .read_changes("t", p, u64::MAX, None, 0)
            .unwrap()
            .next_seq
    };
    let grown: Vec<u64> = (0..2).map(|p| next(&b, p) - next(&a, p)).collect();
    assert_eq!(grown.iter().sum::<u64>(), 1, "{grown:?}");
    assert_eq!(all_records(&b, "t").len(), 41);
    drop(b);
    // Reopened, the imported log is still there.
    let b = open_replicated(b_dir.path());
    assert_eq!(all_records(&b, "t").len(), 41);
}
