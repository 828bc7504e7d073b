//! Global tables in the storage: item versions, last-writer-wins applies,
//! tombstones and their purge, stream records with an origin, cursors.

mod common;

use std::time::Duration;

use common::{item, n, s, table_def};
use partita_model::schema::StreamSpecification;
use partita_model::{Item, TableDefinition};
use partita_storage::{
    ReplicaApply, ReplicatedChange, ReplicationState, Store, StoreOptions, Version, WriteCommand,
};

fn replicated_table(name: &str) -> TableDefinition {
    let mut def = table_def(name, None, 2);
    def.stream = Some(StreamSpecification {
        enabled: true,
        view_type: Some("NEW_AND_OLD_IMAGES".into()),
    });
    def.stream_label = Some("2026-01-01T00:00:00.000".into());
    def
}

fn open(dir: &std::path::Path, retention: Duration) -> Store {
    let options = StoreOptions {
        stream_retention: retention,
        ..StoreOptions::default()
    };
    Store::open(dir, options).unwrap()
}

fn setup(store: &Store, name: &str) {
    store.create_table(replicated_table(name)).unwrap();
    store
        .set_replication(
            name,
            Some(ReplicationState {
                region: "us-east-1".into(),
                replicas: vec![],
                creating: false,
            }),
        )
        .unwrap();
}

fn key(pk: &str) -> Item {
    item(&[("pk", s(pk))])
}

fn v(ts_us: u64, region: &str) -> Version {
    Version {
        ts_us,
        region: region.into(),
    }
}

fn change(pk: &str, value: Option<&str>, version: Version) -> ReplicatedChange {
    ReplicatedChange {
        keys: key(pk),
        new: value.map(|x| item(&[("pk", s(pk)), ("v", n(x))])),
        version,
    }
}

fn value(store: &Store, pk: &str) -> Option<Item> {
    store.get("T", &key(pk)).unwrap()
}

#[tokio::test]
async fn local_writes_get_versions_after_what_they_saw() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Duration::from_secs(3600));
    setup(&store, "T");
    // A replicated change far in the future, then a local write: the local
    // write still wins (it saw the change).
    let future = v(u64::MAX / 2, "eu-west-1");
    let applied = store
        .apply_replicated("T", vec![change("a", Some("1"), future.clone())])
        .await
        .unwrap();
    assert_eq!(applied, vec![ReplicaApply::Applied]);
    store
        .write(
            "T",
            WriteCommand::Put {
                item: item(&[("pk", s("a")), ("v", n("2"))]),
                condition: None,
            },
        )
        .await
        .unwrap();
    let local = store.item_version("T", &key("a")).unwrap().unwrap();
    assert_eq!(local.version, v(future.ts_us + 1, "us-east-1"));
    assert!(!local.deleted);
    // The older future write arriving again is a no-op.
    let again = store
        .apply_replicated("T", vec![change("a", Some("1"), future)])
        .await
        .unwrap();
    assert_eq!(again, vec![ReplicaApply::Superseded]);
    assert_eq!(
        value(&store, "a"),
        Some(item(&[("pk", s("a")), ("v", n("2"))]))
    );
}

#[tokio::test]
async fn last_writer_wins_and_tombstones_beat_older_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Duration::from_secs(3600));
    setup(&store, "T");
    let outcome = store
        .apply_replicated(
            "T",
            vec![
                change("k", Some("10"), v(100, "eu-west-1")),
                // Older: superseded, even within the same group.
                change("k", Some("5"), v(50, "ap-south-1")),
                // Same time, greater region: wins.
                change("k", Some("11"), v(100, "us-west-2")),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        outcome,
        vec![
            ReplicaApply::Applied,
            ReplicaApply::Superseded,
            ReplicaApply::Applied
        ]
    );
    assert_eq!(
        value(&store, "k"),
        Some(item(&[("pk", s("k")), ("v", n("11"))]))
    );
    // A delete at 200 leaves a tombstone; a write at 150 arriving later loses.
    let outcome = store
        .apply_replicated(
            "T",
            vec![
                change("k", None, v(200, "eu-west-1")),
                change("k", Some("7"), v(150, "ap-south-1")),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        outcome,
        vec![ReplicaApply::Applied, ReplicaApply::Superseded]
    );
    assert_eq!(value(&store, "k"), None);
    let tomb = store.item_version("T", &key("k")).unwrap().unwrap();
    assert!(tomb.deleted);
    assert_eq!(tomb.version, v(200, "eu-west-1"));
    // A delete of an absent item also leaves a tombstone.
    store
        .apply_replicated("T", vec![change("never", None, v(300, "eu-west-1"))])
        .await
        .unwrap();
    let outcome = store
        .apply_replicated("T", vec![change("never", Some("1"), v(299, "eu-west-1"))])
        .await
        .unwrap();
    assert_eq!(outcome, vec![ReplicaApply::Superseded]);
    assert_eq!(store.table_stats("T").unwrap().0, 0);
    // A later write revives the key.
    store
        .apply_replicated("T", vec![change("k", Some("8"), v(201, "ap-south-1"))])
        .await
        .unwrap();
    assert_eq!(
        value(&store, "k"),
        Some(item(&[("pk", s("k")), ("v", n("8"))]))
    );
    assert_eq!(store.table_stats("T").unwrap().0, 1);
}

#[tokio::test]
async fn stream_records_carry_the_origin_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path(), Duration::from_secs(3600));
        setup(&store, "T");
        store
            .apply_replicated("T", vec![change("r", Some("1"), v(42, "eu-west-1"))])
            .await
            .unwrap();
        store
            .write(
                "T",
                WriteCommand::Delete {
                    key: key("r"),
                    condition: None,
                },
            )
            .await
            .unwrap();
        store
            .set_replication_cursors("T", "eu-west-1", &[(0, Some(7))])
            .unwrap();
        store.close().unwrap();
    }
    let store = open(dir.path(), Duration::from_secs(3600));
    assert!(store.replication("T").unwrap().is_some());
    let mut origins = Vec::new();
    for p in 0..2 {
        for r in store.read_changes("T", p, 0, None, 100).unwrap().records {
            origins.push((r.event.as_str(), r.origin.unwrap()));
        }
    }
    assert_eq!(origins.len(), 2);
    assert_eq!(origins[0], ("INSERT", v(42, "eu-west-1")));
    assert_eq!(origins[1].0, "REMOVE");
    assert_eq!(origins[1].1.region, "us-east-1");
    assert!(origins[1].1.ts_us > 42);
    let tomb = store.item_version("T", &key("r")).unwrap().unwrap();
    assert!(tomb.deleted);
    assert_eq!(
        store.replication_cursor("T", "eu-west-1", 0).unwrap(),
        Some(7)
    );
    assert_eq!(store.replication_cursor("T", "eu-west-1", 1).unwrap(), None);
}

#[tokio::test]
async fn tombstones_are_purged_after_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Duration::from_millis(300));
    setup(&store, "T");
    store
        .apply_replicated(
            "T",
            vec![
                change("gone", None, v(10, "eu-west-1")),
                change("live", Some("1"), v(10, "eu-west-1")),
            ],
        )
        .await
        .unwrap();
    assert!(store.item_version("T", &key("gone")).unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(700)).await;
    store.purge_tombstones().unwrap();
    assert!(store.item_version("T", &key("gone")).unwrap().is_none());
    // Live items keep their versions.
    assert_eq!(
        store
            .item_version("T", &key("live"))
            .unwrap()
            .unwrap()
            .version,
        v(10, "eu-west-1")
    );
}

#[tokio::test]
async fn full_copy_pages_carry_versions() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Duration::from_secs(3600));
    setup(&store, "T");
    let changes = (0..25)
        .map(|i| change(&format!("k{i}"), Some("1"), v(1000 + i, "eu-west-1")))
        .collect();
    store.apply_replicated("T", changes).await.unwrap();
    let mut seen = 0;
    for p in 0..store.partition_count("T").unwrap() {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = store.copy_page("T", p, after.as_deref(), 4).unwrap();
            for (item, version) in &page.items {
                assert_eq!(version.region, "eu-west-1");
                assert!(item.contains_key("pk"));
                seen += 1;
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    assert_eq!(seen, 25);
}
