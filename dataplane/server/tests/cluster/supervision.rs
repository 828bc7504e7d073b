//! Supervised background work in cluster mode (`partita_supervise`), with
//! failpoints (the workspace's debug binary has them): a replica whose Raft
//! core fails exits with a clear error instead of staying half alive, and
//! the leader's housekeeping restarts after a panic and goes on proposing.

use std::time::{Duration, Instant};

use crate::harness::Cluster;
use crate::{leader_of, put, status_applied};

/// Invariant: a replica whose Raft core fails (here its state machine
/// panics while applying) exits with code 70 and says why; the group keeps
/// accepting writes, and the replica restarted without the fault catches
/// up.
#[test]
fn a_replica_whose_raft_core_fails_exits_and_the_group_goes_on() {
    let mut cluster = Cluster::start(1, 10_000);
    for i in 0..5 {
        assert!(put(&cluster, "before", &i.to_string(), i));
    }
    let leader = leader_of(&cluster, 0).expect("a leader");
    let victim = (leader + 1) % 3;
    cluster.kill_node(victim);
    cluster.nodes[victim].env = vec![("PARTITA_FAILPOINTS".into(), "raft_apply:1".into())];
    cluster.start_node(victim);
    // New entries reach the victim, whose first apply panics.
    let mut acknowledged = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if put(&cluster, "during", &acknowledged.to_string(), acknowledged) {
            acknowledged += 1;
        }
        if let Some(status) = cluster.wait_node_exit(victim, Duration::from_millis(100)) {
            break status;
        }
        assert!(Instant::now() < deadline, "the failed replica did not exit");
    };
    assert_eq!(status.code(), Some(70), "{status}");
    let log = cluster.node_log(victim);
    assert!(
        log.contains("background task raft_core failed and cannot be restarted in place"),
        "{log}"
    );
    // The other two go on.
    for i in 0..5 {
        assert!(
            put(&cluster, "after", &i.to_string(), i),
            "a write after the exit failed"
        );
    }
    // Restarted without the fault, the replica catches up with the leader.
    cluster.nodes[victim].env.clear();
    cluster.start_node(victim);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let leader = leader_of(&cluster, 0).expect("a leader");
        match (
            status_applied(&cluster, leader),
            status_applied(&cluster, victim),
        ) {
            (Some(l), Some(v)) if v >= l => break,
            other => assert!(
                Instant::now() < deadline,
                "the restarted replica did not catch up: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Invariant: the leader's housekeeping (change-log maintenance and TTL
/// expiry, proposed through the log) restarts after a panic and goes on
/// proposing: with no client writes, the leader's applied index keeps
/// growing after the restart.
#[test]
fn leader_housekeeping_restarts_after_a_panic() {
    // Change-log maintenance every 250 ms (an eighth of the retention).
    let mut cluster = Cluster::start_with_args(1, &["--stream-retention", "2s"], &[]);
    for i in 0..3 {
        cluster.kill_node(i);
        cluster.nodes[i].env = vec![("PARTITA_FAILPOINTS".into(), "raft_housekeeping:1".into())];
        cluster.start_node(i);
    }
    cluster.wait_ready(Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(30);
    let leader = loop {
        let leader = leader_of(&cluster, 0).expect("a leader");
        let log = cluster.node_log(leader);
        if log.contains("a background task failed; restarting it")
            && log.contains("failpoint raft_housekeeping")
        {
            break leader;
        }
        assert!(
            Instant::now() < deadline,
            "no housekeeping panic logged by the leader:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let first = status_applied(&cluster, leader).expect("applied index");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = status_applied(&cluster, leader).expect("applied index");
        if now >= first + 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no proposals after the restart: applied {first} then {now}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Invariant: the gateway's topology reloader restarts after a panic and
/// still picks up a changed topology file.
#[test]
fn the_topology_reloader_restarts_after_a_panic() {
    let cluster = Cluster::start(1, 10_000);
    let port = crate::harness::free_ports(1)[0];
    let mut gateway = cluster.spawn_gateway(port, &[("PARTITA_FAILPOINTS", "topology_reload:1")]);
    let log = || {
        std::fs::read_to_string(
            cluster
                .topology
                .with_file_name(format!("gateway-{port}.log")),
        )
        .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(log().contains("a background task failed; restarting it")
        && log().contains("failpoint topology_reload"))
    {
        assert!(
            Instant::now() < deadline,
            "no reloader panic logged:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    cluster.set_epoch(2);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !log().contains("topology reloaded") {
        assert!(
            Instant::now() < deadline,
            "the new topology was not loaded:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = gateway.kill();
    let _ = gateway.wait();
}
