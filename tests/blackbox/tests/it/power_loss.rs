//! Power loss: every acknowledged write survives losing everything that was
//! written but not synced.
//!
//! The server's data directory lives on a [`lazyfs`] mount, which keeps
//! file contents in memory until they are synced. The test writes through
//! the API, kills the server (and, in cluster mode, every node) with
//! SIGKILL, drops what was not synced, as a power loss would, and starts
//! the server again on what is left. SIGKILL alone keeps the page cache and
//! would pass with syncing turned off; this test does not.
//!
//! Needs root and `/dev/fuse` (CI has both); elsewhere it says why it
//! skips.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use partita_blackbox_tests::lazyfs::LazyFs;
use partita_blackbox_tests::*;

/// Why this machine cannot mount a FUSE file system, if it cannot.
fn cannot_mount() -> Option<String> {
    if !std::path::Path::new("/dev/fuse").exists() {
        return Some("no /dev/fuse".into());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("mounting needs root".into());
    }
    None
}

/// The process ids the server's log names (dev-cluster lists its nodes;
/// `partita serve` lists none).
fn logged_pids(log: &str) -> Vec<u32> {
    log.lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["pid"].as_u64())
        .map(|pid| pid as u32)
        .collect()
}

/// Waits until none of `pids` runs any more (a power loss stops every
/// process at once; none may write after the crash).
fn wait_gone(pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for pid in pids {
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            // A zombie has no files open any more.
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            if status.contains("State:\tZ") {
                break;
            }
            assert!(Instant::now() < deadline, "process {pid} did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[tokio::test]
async fn acknowledged_writes_survive_a_power_loss() {
    if skip_without_own_server("acknowledged_writes_survive_a_power_loss") {
        return;
    }
    if let Some(why) = cannot_mount() {
        eprintln!("skipping acknowledged_writes_survive_a_power_loss: {why}");
        return;
    }
    let backing = tempfile::tempdir().expect("backing dir");
    let mountpoint = tempfile::tempdir().expect("mount point");
    let mounted = LazyFs::mount(backing.path(), mountpoint.path()).expect("mount lazyfs");
    let mut server = Server::start_in(mounted.path(), &[], &[]);
    let client = client_for(&server.endpoint());
    let table = create_hash_table(&client, "power").await;

    // Concurrent writers; only what was acknowledged is recorded.
    let acknowledged: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..8 {
        let (client, table, acknowledged) = (client.clone(), table.clone(), acknowledged.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..25 {
                let (key, value) = (format!("k{w}-{i}"), format!("v{w}-{i}"));
                let put = client
                    .put_item()
                    .table_name(&table)
                    .item("pk", s(&key))
                    .item("v", s(&value))
                    .send()
                    .await;
                if put.is_ok() {
                    acknowledged.lock().unwrap().insert(key, value);
                }
            }
            // Overwrites of earlier items, acknowledged too.
            for i in 0..5 {
                let (key, value) = (format!("k{w}-{i}"), format!("updated{w}-{i}"));
                let update = client
                    .update_item()
                    .table_name(&table)
                    .key("pk", s(&key))
                    .update_expression("SET v = :v")
                    .expression_attribute_values(":v", s(&value))
                    .send()
                    .await;
                if update.is_ok() {
                    acknowledged.lock().unwrap().insert(key, value);
                }
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert_eq!(acknowledged.len(), 200, "every write was acknowledged");

    // Power loss: every process stops, then what was not synced is gone.
    let pids = logged_pids(&server.log_text());
    server.kill9();
    wait_gone(&pids);
    let dropped = mounted.crash();
    eprintln!("the crash dropped {dropped} unsynced bytes");
    server.restart();
    let client = client_for(&server.endpoint());
    wait_active(&client, &table).await;
    let mut lost = Vec::new();
    for (key, value) in &acknowledged {
        let got = client
            .get_item()
            .table_name(&table)
            .key("pk", s(key))
            .consistent_read(true)
            .send()
            .await
            .expect("get after the crash");
        let stored = got
            .item()
            .and_then(|i| i.get("v"))
            .and_then(|v| v.as_s().ok());
        if stored != Some(value) {
            lost.push(format!("{key}: acknowledged {value}, found {stored:?}"));
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost at the power loss: {:?}",
        lost.len(),
        acknowledged.len(),
        &lost[..lost.len().min(10)]
    );
    // The server goes on taking writes.
    client
        .put_item()
        .table_name(&table)
        .item("pk", s("after"))
        .send()
        .await
        .expect("a write after the restart");
    drop(server);
    drop(mounted);
}
