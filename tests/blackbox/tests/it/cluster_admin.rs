//! The admin endpoints of cluster mode: `partita dev-cluster` gives the
//! gateway and every node its own admin port (listed in
//! `processes.json`); each serves `/healthz`, `/readyz` and `/metrics`,
//! parsed with the same strict exposition parser as the standalone metrics
//! tests. Invariant checked: the series report the cluster's real state —
//! request counts move on the gateway, exactly one node calls itself
//! leader, applied and committed indexes advance with writes on every
//! replica, the leader reports the replication lag of both followers,
//! snapshots are counted, and a killed leader is replaced in a higher term.
//!
//! Starts its own dev-cluster (skipped against an external endpoint).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use partita_blackbox_tests::*;

use crate::capacity_limits::{http_get, parse_exposition, Scrape};

/// A dev-cluster of our own, killed (with its children) when dropped.
struct DevCluster {
    child: Child,
    _dir: tempfile::TempDir,
    processes: Vec<serde_json::Value>,
    port: u16,
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl DevCluster {
    fn start(extra: &[&str]) -> DevCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_loopback_port();
        let log = std::fs::File::create(dir.path().join("dev-cluster.log")).expect("log file");
        let child = Command::new(partita_binary())
            .args(["dev-cluster", "--partitions", "1", "--replicas", "3"])
            .args(["--port", &port.to_string()])
            .arg("--data-dir")
            .arg(dir.path())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn dev-cluster");
        let processes = wait_for_processes(&dir.path().join("processes.json"));
        DevCluster {
            child,
            _dir: dir,
            processes,
            port,
        }
    }

    fn admin_ports(&self, role: &str) -> Vec<u16> {
        self.processes
            .iter()
            .filter(|p| p["role"] == role)
            .map(|p| p["adminPort"].as_u64().expect("adminPort") as u16)
            .collect()
    }

    fn pid_of_admin_port(&self, port: u16) -> i32 {
        self.processes
            .iter()
            .find(|p| p["adminPort"].as_u64() == Some(u64::from(port)))
            .and_then(|p| p["pid"].as_i64())
            .expect("pid") as i32
    }
}

fn wait_for_processes(path: &Path) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(bytes) = std::fs::read(path) {
            if let Ok(v) = serde_json::from_slice::<Vec<serde_json::Value>>(&bytes) {
                return v;
            }
        }
        assert!(Instant::now() < deadline, "no {}", path.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The status code of `GET path` on the admin port (None: no answer).
fn status_of(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    text.split(' ').nth(1)?.parse().ok()
}

fn wait_status(port: u16, path: &str, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while status_of(port, path) != Some(want) {
        assert!(
            Instant::now() < deadline,
            "GET {path} on admin port {port} never answered {want}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn scrape(port: u16) -> Scrape {
    let text = http_get(port, "/metrics");
    parse_exposition(&text).unwrap_or_else(|e| panic!("bad exposition on {port}: {e}\n{text}"))
}

fn value(s: &Scrape, name: &str) -> f64 {
    s.sum(name, &[])
}

/// The admin port of the node that reports itself leader (waits for one).
fn leader_port(nodes: &[u16]) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let leaders: Vec<u16> = nodes
            .iter()
            .copied()
            .filter(|p| status_of(*p, "/healthz") == Some(200))
            .filter(|p| value(&scrape(*p), "partita_raft_is_leader") == 1.0)
            .collect();
        if leaders.len() == 1 {
            return leaders[0];
        }
        assert!(
            leaders.len() <= 1,
            "two nodes report leadership at once: {leaders:?}"
        );
        assert!(Instant::now() < deadline, "no node reports leadership");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn node_and_gateway_admin_endpoints_report_raft_and_requests() {
    if skip_without_own_server("node_and_gateway_admin_endpoints_report_raft_and_requests") {
        return;
    }
    let cluster = DevCluster::start(&["--snapshot-logs", "20"]);
    let gateway = cluster.admin_ports("gateway");
    let nodes = cluster.admin_ports("node");
    assert_eq!(gateway.len(), 1);
    assert_eq!(nodes.len(), 3);
    let mut all: Vec<u16> = nodes.clone();
    all.push(gateway[0]);
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 4, "every process has its own admin port");

    for port in nodes.iter().chain(&gateway) {
        wait_status(*port, "/healthz", 200);
        wait_status(*port, "/readyz", 200);
    }
    assert_eq!(status_of(gateway[0], "/nope"), Some(404));

    let leader = leader_port(&nodes);
    let before: Vec<Scrape> = nodes.iter().map(|p| scrape(*p)).collect();
    let term = value(&before[0], "partita_raft_term");
    assert!(term >= 1.0, "term {term}");
    for s in &before {
        assert_eq!(value(s, "partita_raft_term"), term, "one term for all");
        assert_eq!(value(s, "partita_raft_has_leader"), 1.0);
        // The storage engine series of serve are there too.
        assert!(s.names().contains("partita_storage_engine"));
        assert!(s.names().contains("partita_writer_commits_total"));
        assert!(s.names().contains("partita_raft_snapshots_total"));
        assert_eq!(s.sum("partita_raft_members", &[("role", "voter")]), 3.0);
        assert_eq!(s.sum("partita_raft_members", &[("role", "learner")]), 0.0);
        assert_eq!(value(s, "partita_raft_membership_joint"), 0.0);
        for label in ["table", "partition"] {
            let has = s.sum(
                "partita_raft_term",
                &[(label, if label == "table" { "*" } else { "0" })],
            );
            assert_eq!(has, term, "constant label {label}");
        }
    }

    let client = client_for(&format!("http://127.0.0.1:{}", cluster.port));
    let table = create_hash_table(&client, "admin").await;
    for i in 0..40 {
        client
            .put_item()
            .table_name(&table)
            .item("pk", s(&format!("k{i}")))
            .send()
            .await
            .expect("put");
    }

    // Gateway: request series moved, by operation and table.
    let g = scrape(gateway[0]);
    let puts = g.sum(
        "partita_requests_total",
        &[
            ("operation", "PutItem"),
            ("table", &table),
            ("outcome", "success"),
        ],
    );
    assert_eq!(puts, 40.0, "gateway counted the puts");
    assert!(g.names().contains("partita_request_duration_seconds"));

    // Nodes: every replica applied the writes; the leader saw them commit.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let after: Vec<Scrape> = nodes.iter().map(|p| scrape(*p)).collect();
        let caught_up = after.iter().zip(&before).all(|(a, b)| {
            value(a, "partita_raft_last_applied_index")
                >= value(b, "partita_raft_last_applied_index") + 40.0
        });
        if caught_up {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replicas did not apply 40 writes"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let l = scrape(leader);
    let committed = value(&l, "partita_raft_committed_index");
    let last_log = value(&l, "partita_raft_last_log_index");
    assert!(
        committed >= 40.0 && committed <= last_log,
        "{committed} {last_log}"
    );
    assert!(value(&l, "partita_raft_millis_since_quorum_ack") >= 0.0);
    let lags: Vec<f64> = http_get(leader, "/metrics")
        .lines()
        .filter(|line| line.starts_with("partita_raft_replication_lag_entries{"))
        .map(|line| line.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(lags.len(), 2, "one lag series per follower: {lags:?}");
    assert!(
        lags.iter().all(|l| (0.0..=last_log).contains(l)),
        "{lags:?}"
    );
    // 40+ entries with --snapshot-logs 20: every replica built a snapshot.
    let deadline = Instant::now() + Duration::from_secs(20);
    while nodes
        .iter()
        .any(|p| scrape(*p).sum("partita_raft_snapshots_total", &[("kind", "built")]) < 1.0)
    {
        assert!(Instant::now() < deadline, "no snapshot counted");
        std::thread::sleep(Duration::from_millis(200));
    }
    for p in nodes.iter().filter(|p| **p != leader) {
        let f = scrape(*p);
        assert_eq!(value(&f, "partita_raft_is_leader"), 0.0);
        assert_eq!(value(&f, "partita_raft_millis_since_quorum_ack"), -1.0);
        assert!(!http_get(*p, "/metrics").contains("partita_raft_replication_lag_entries{"));
    }

    // Kill the leader: another node takes over in a higher term.
    let pid = cluster.pid_of_admin_port(leader);
    // SAFETY: kill(2) on a pid of our own dev-cluster's child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    let rest: Vec<u16> = nodes.iter().copied().filter(|p| *p != leader).collect();
    let new_leader = leader_port(&rest);
    let n = scrape(new_leader);
    assert!(value(&n, "partita_raft_term") > term, "new term");
    assert_eq!(status_of(new_leader, "/readyz"), Some(200));
}
