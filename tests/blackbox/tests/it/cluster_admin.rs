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

    /// The last `lines` lines of the launcher's log (its processes' output
    /// included), for a failure message.
    fn log_tail(&self, lines: usize) -> String {
        let log =
            std::fs::read_to_string(self._dir.path().join("dev-cluster.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
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

impl DevCluster {
    /// Runs `partita dev-cluster --data-dir D replica --partition 0 ARGS`
    /// against this cluster and returns the membership it prints.
    fn replica(&self, args: &[&str]) -> serde_json::Value {
        let output = Command::new(partita_binary())
            .arg("dev-cluster")
            .arg("--data-dir")
            .arg(self._dir.path())
            .args(["replica", "--partition", "0"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run partita dev-cluster replica");
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("membership JSON")
    }
}

/// The member ids of a membership and whether each is a voter.
fn members_of(membership: &serde_json::Value) -> Vec<(u64, bool)> {
    membership["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| (m["id"].as_u64().expect("id"), m["voter"] == true))
        .collect()
}

/// True while process `pid` runs (a zombie waiting for its parent to reap
/// it has stopped).
fn running(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// `partita dev-cluster ... replica replace|add|remove` changes the members
/// of a running dev-cluster's partition: the launcher starts the new
/// replica, it catches up (from a snapshot: the log is compacted every 20
/// entries) and becomes a voter, a removed member's process stops by
/// itself, the topology file lists the current members, and every item
/// written before is still there through the gateway.
#[tokio::test(flavor = "multi_thread")]
async fn dev_cluster_replaces_adds_and_removes_replicas() {
    if skip_without_own_server("dev_cluster_replaces_adds_and_removes_replicas") {
        return;
    }
    let cluster = DevCluster::start(&["--snapshot-logs", "20"]);
    // The gateway starts once the nodes are ready; its /readyz answers once
    // its DynamoDB listener is bound.
    for port in cluster
        .admin_ports("node")
        .into_iter()
        .chain(cluster.admin_ports("gateway"))
    {
        wait_status(port, "/readyz", 200);
    }
    let client = client_for(&format!("http://127.0.0.1:{}", cluster.port));
    let table = create_hash_table(&client, "members").await;
    for i in 0..60 {
        client
            .put_item()
            .table_name(&table)
            .item("pk", s(&format!("k{i}")))
            .send()
            .await
            .expect("put");
    }
    let pid_of_zone = |zone: &str| {
        cluster
            .processes
            .iter()
            .find(|p| p["zone"] == zone)
            .and_then(|p| p["pid"].as_i64())
            .expect("pid")
    };

    // Replace zone-a's member 0 with a new replica in zone-d.
    let after = cluster.replica(&["replace", "--member", "0", "--zone", "zone-d"]);
    let members = members_of(&after);
    assert_eq!(members.len(), 3, "{after}");
    assert!(
        members.iter().all(|(id, voter)| *id != 0 && *voter),
        "{after}"
    );
    let new = members
        .iter()
        .find(|(id, _)| *id >= 1 << 63)
        .expect("a new member")
        .0;
    // Grow to four with zone-e, then remove member 1.
    let after = cluster.replica(&["add", "--zone", "zone-e"]);
    assert_eq!(members_of(&after).len(), 4, "{after}");
    assert!(
        members_of(&after).iter().all(|(_, voter)| *voter),
        "{after}"
    );
    let after = cluster.replica(&["remove", "--member", "1"]);
    let ids: Vec<u64> = members_of(&after).iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), 3, "{after}");
    assert!(ids.contains(&2) && ids.contains(&new), "{after}");

    // The removed members' processes stop by themselves.
    let deadline = Instant::now() + Duration::from_secs(30);
    while running(pid_of_zone("zone-a")) || running(pid_of_zone("zone-b")) {
        assert!(
            Instant::now() < deadline,
            "a removed member still runs\n{}",
            cluster.log_tail(150)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The topology lists the current members; the launcher's process table
    // lists the new replicas.
    let topology: serde_json::Value = serde_json::from_slice(
        &std::fs::read(cluster._dir.path().join("topology.json")).expect("topology"),
    )
    .expect("json");
    let entry = &topology["tables"][0];
    assert_eq!(entry["epoch"], 4, "{entry}");
    let listed: Vec<u64> = entry["partitions"][0]["replicas"]
        .as_array()
        .expect("replicas")
        .iter()
        .map(|r| r["memberId"].as_u64().expect("memberId"))
        .collect();
    assert_eq!(listed.len(), 3);
    assert!(
        ids.iter().all(|id| listed.contains(id)),
        "{listed:?} {ids:?}"
    );
    let processes = wait_for_processes(&cluster._dir.path().join("processes.json"));
    for zone in ["zone-d", "zone-e"] {
        assert!(processes.iter().any(|p| p["zone"] == zone), "{processes:?}");
    }

    // Every item is still there, and the partition takes writes.
    for i in 0..60 {
        let got = client
            .get_item()
            .table_name(&table)
            .key("pk", s(&format!("k{i}")))
            .consistent_read(true)
            .send()
            .await
            .expect("get");
        assert!(got.item.is_some(), "k{i} lost");
    }
    client
        .put_item()
        .table_name(&table)
        .item("pk", s("after"))
        .send()
        .await
        .expect("put after the changes");
}
