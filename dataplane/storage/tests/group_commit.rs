//! Group commit: concurrent durable writers share fsyncs. Prints the durable
//! put rate of 16 concurrent tasks (no timing is asserted), and checks that
//! every acknowledged put is readable and counted.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use partita_storage::{Store, StoreOptions, WriteCommand};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_durable_puts_share_fsyncs() {
    let seconds: f64 = std::env::var("PARTITA_GROUP_COMMIT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        Store::open(
            dir.path(),
            StoreOptions {
                sync: true,
                ..Default::default()
            },
        )
        .unwrap(),
    );
    store.create_table(table_def("t", None, 1)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..16 {
        let (store, stop) = (store.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let it = item(&[
                    ("pk", s(&format!("{t}-{acked}"))),
                    ("payload", s(&"p".repeat(100))),
                ]);
                store
                    .write(
                        "t",
                        WriteCommand::Put {
                            item: it,
                            condition: None,
                        },
                    )
                    .await
                    .unwrap();
                acked += 1;
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    let mut per_task = Vec::new();
    for task in tasks {
        let n = task.await.unwrap();
        per_task.push(n);
        total += n;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stats = store.writer_stats();
    println!(
        "group commit: {total} durable puts in {elapsed:.2}s = {:.0} puts/s; {} commits, {:.1} puts per fsync",
        total as f64 / elapsed,
        stats.commits,
        stats.commands as f64 / stats.commits.max(1) as f64
    );
    assert_eq!(stats.commands, total);
    assert_eq!(store.table_stats("t").unwrap().0, total);
    for (t, n) in per_task.iter().enumerate() {
        for i in [0, n / 2, n - 1] {
            assert!(store
                .get("t", &item(&[("pk", s(&format!("{t}-{i}")))]))
                .unwrap()
                .is_some());
        }
    }
}
