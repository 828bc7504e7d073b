//! Membership changes of a partition's group (issue 21) on real node
//! processes, driven through `partita members`, under concurrent writes
//! whose acknowledged set is checked at the end (raw HTTP, no retries: a
//! write counts only when the gateway answered 200).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{self, key, Cluster, TABLE};
use crate::{leader_of, linearizability, wait_for_progress};

/// Writers of unique keys through the gateway, remembering what was
/// acknowledged and when.
struct Writers {
    acked: Arc<Mutex<Vec<(String, Instant)>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Writers {
    fn start(cluster: &Cluster, count: usize) -> Writers {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let port = cluster.gateway_port;
        let threads = (0..count)
            .map(|w| {
                let (acked, stop) = (acked.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let sk = format!("{w}-{i}");
                        let (status, _) = harness::http_call(
                            port,
                            "PutItem",
                            &json!({"TableName": TABLE, "Item": {"pk": {"S": "m"}, "sk": {"S": sk}}}),
                        );
                        if status == 200 {
                            acked.lock().unwrap().push((sk, Instant::now()));
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        Writers {
            acked,
            stop,
            threads,
        }
    }

    /// Waits until `count` writes begun after `since` were acknowledged:
    /// the partition is writable.
    fn wait_progress(&self, cluster: &Cluster, since: Instant, count: usize, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let n = self
                .acked
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, at)| *at > since)
                .count();
            if n >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no progress after {what}: {n} writes acknowledged in 30 s\n{}",
                cluster.logs_tail(40)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(self) -> BTreeSet<String> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        let acked = self.acked.lock().unwrap();
        acked.iter().map(|(sk, _)| sk.clone()).collect()
    }
}

/// Asserts every acknowledged write is readable (consistent reads).
fn assert_all_present(cluster: &Cluster, acked: &BTreeSet<String>) {
    let mut missing = Vec::new();
    for sk in acked {
        let (status, body) = cluster.call(
            "GetItem",
            &json!({"TableName": TABLE, "Key": key("m", sk), "ConsistentRead": true}),
        );
        assert_eq!(status, 200, "{body}");
        if body.get("Item").is_none() {
            missing.push(sk.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes lost: {missing:?}",
        missing.len(),
        acked.len()
    );
}

fn voters(membership: &Value) -> BTreeSet<u64> {
    membership["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["voter"] == true)
        .map(|m| m["id"].as_u64().unwrap())
        .collect()
}

fn ids(membership: &Value) -> BTreeSet<u64> {
    membership["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect()
}

/// The member id a started node answers with (blank members included).
fn member_id(cluster: &Cluster, i: usize) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(identity)) = partita_cluster::identity::Identity::load(&cluster.nodes[i].dir)
        {
            if identity.state != partita_cluster::identity::MemberState::Founding {
                return identity.member_id;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node {i} has no identity: {}",
            cluster.node_log(i)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills the partition's leader a moment after `change` started (so the
/// kill lands in the middle of it) and returns the killed node.
fn kill_leader_during(cluster: &mut Cluster, started: Instant) -> usize {
    let leader = leader_of(cluster, 0).expect("a leader");
    std::thread::sleep(Duration::from_millis(300).saturating_sub(started.elapsed()));
    cluster.kill_node(leader);
    leader
}

/// Invariant: a member can be replaced under writes, the group grows
/// 3 → 5 and shrinks 5 → 3 under writes, with the leader killed in the
/// middle of each change; the partition stays writable whenever a quorum
/// of its current members is up, and no acknowledged write is lost. The
/// new members come from other zones (a member moved to another zone is
/// one replaced by a replica there) and catch up from a snapshot (the
/// log is compacted every 50 entries).
#[test]
fn members_are_replaced_added_and_removed_under_writes_with_leader_kills() {
    let mut cluster = Cluster::start(1, 50);
    let writers = Writers::start(&cluster, 3);
    writers.wait_progress(
        &cluster,
        Instant::now() - Duration::from_secs(60),
        100,
        "the start",
    );

    // Grow 3 → 5 with zone-d and zone-e; the leader dies while zone-d is
    // being added and comes back.
    let d = cluster.add_node(0, "zone-d");
    let e = cluster.add_node(0, "zone-e");
    cluster.start_node(d);
    cluster.start_node(e);
    let (d_id, e_id) = (member_id(&cluster, d), member_id(&cluster, e));
    assert!(
        d_id >= 1 << 63 && e_id >= 1 << 63,
        "new members get new ids"
    );
    let started = Instant::now();
    let adding = {
        let address = cluster.node_address(d);
        let topology = cluster.topology.clone();
        std::thread::spawn(move || members_cmd(&topology, &["add", "--address", &address]))
    };
    let killed = kill_leader_during(&mut cluster, started);
    writers.wait_progress(
        &cluster,
        Instant::now(),
        20,
        "the leader kill during the add",
    );
    let after = adding.join().unwrap().expect("zone-d added");
    assert!(voters(&after).contains(&d_id), "{after}");
    cluster.start_node(killed);
    let after = cluster
        .members(0, &[d], &["add", "--address", &cluster.node_address(e)])
        .expect("zone-e added");
    assert_eq!(
        voters(&after),
        BTreeSet::from([0, 1, 2, d_id, e_id]),
        "{after}"
    );
    writers.wait_progress(&cluster, Instant::now(), 20, "growing to five");

    // Five members go on with two of them down.
    cluster.kill_node(d);
    let down = (0..3).find(|i| *i != killed).unwrap();
    cluster.kill_node(down);
    writers.wait_progress(&cluster, Instant::now(), 20, "two of five members down");
    cluster.start_node(d);
    cluster.start_node(down);

    // Shrink 5 → 3: remove zone-a and zone-b's members (the leader is
    // killed while the first removal runs), keeping zone-c, d and e.
    let started = Instant::now();
    let removing = {
        let topology = cluster.topology.clone();
        std::thread::spawn(move || members_cmd(&topology, &["remove", "--member", "0"]))
    };
    let killed = kill_leader_during(&mut cluster, started);
    writers.wait_progress(
        &cluster,
        Instant::now(),
        20,
        "the leader kill during a removal",
    );
    removing.join().unwrap().expect("member 0 removed");
    if killed != 0 {
        cluster.start_node(killed);
    }
    let after = cluster
        .members(0, &[d, e], &["remove", "--member", "1"])
        .expect("member 1 removed");
    assert_eq!(voters(&after), BTreeSet::from([2, d_id, e_id]), "{after}");
    assert_eq!(ids(&after), BTreeSet::from([2, d_id, e_id]), "{after}");
    writers.wait_progress(&cluster, Instant::now(), 20, "shrinking to three");

    for i in [0, 1] {
        cluster.kill_node(i);
    }
    // The operator's part after each change: the topology lists the
    // current members (the gateway routes to them).
    cluster.set_replicas(0, &[(2, 2), (d, d_id), (e, e_id)]);

    // Replace zone-c's member with one in zone-f, the leader killed in the
    // middle (and restarted unless it is the member being replaced).
    let f = cluster.add_node(0, "zone-f");
    cluster.start_node(f);
    let f_id = member_id(&cluster, f);
    let started = Instant::now();
    let replacing = {
        let (topology, address) = (cluster.topology.clone(), cluster.node_address(f));
        let seeds = [cluster.node_address(d), cluster.node_address(e)];
        std::thread::spawn(move || {
            let mut args = vec!["replace", "--member", "2", "--address", &address];
            for seed in &seeds {
                args.extend(["--node", seed.as_str()]);
            }
            members_cmd(&topology, &args)
        })
    };
    let killed = kill_leader_during(&mut cluster, started);
    writers.wait_progress(
        &cluster,
        Instant::now(),
        20,
        "the leader kill during a replace",
    );
    let after = replacing.join().unwrap().expect("member 2 replaced");
    assert_eq!(ids(&after), BTreeSet::from([d_id, e_id, f_id]), "{after}");
    if killed != 2 {
        cluster.start_node(killed);
    }
    cluster.kill_node(2);

    cluster.set_replicas(0, &[(d, d_id), (e, e_id), (f, f_id)]);
    // A quorum of the current members is enough.
    cluster.kill_node(e);
    writers.wait_progress(
        &cluster,
        Instant::now(),
        20,
        "one of three new members down",
    );
    cluster.start_node(e);
    let acked = writers.stop();
    println!("{} writes acknowledged across the changes", acked.len());
    assert_all_present(&cluster, &acked);
}

/// `partita members` against the cluster whose topology file is `topology`
/// (for calls from another thread).
fn members_cmd(topology: &std::path::Path, args: &[&str]) -> Result<Value, String> {
    let output = std::process::Command::new(harness::BIN)
        .args(["members", "--topology-file"])
        .arg(topology)
        .args(["--table", TABLE, "--partition", "0", "--timeout", "60s"])
        .args(args)
        .env("PARTITA_LOG", "info")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())
}

/// Invariant: a member removed from the group never serves again on its
/// old volume: removed while down, it is refused when it starts; removed
/// while running, it stops by itself. Either way its identity records the
/// removal, and the remaining members stay writable.
#[test]
fn a_removed_member_is_refused_on_its_old_volume() {
    use partita_cluster::identity::{Identity, MemberState};
    let mut cluster = Cluster::start(1, 10_000);
    assert!(crate::put(&cluster, "r", "1", 1));
    cluster.kill_node(2);
    let after = cluster
        .members(0, &[], &["remove", "--member", "2"])
        .expect("member 2 removed");
    assert_eq!(ids(&after), BTreeSet::from([0, 1]), "{after}");
    cluster.start_node(2);
    let status = cluster
        .wait_node_exit(2, Duration::from_secs(30))
        .expect("the removed member stops");
    assert!(!status.success(), "{status}");
    assert!(
        cluster
            .node_log(2)
            .contains("member 2 was removed from table Items partition 0"),
        "{}",
        cluster.node_log(2)
    );
    let identity = Identity::load(&cluster.nodes[2].dir).unwrap().unwrap();
    assert_eq!(identity.state, MemberState::Removed);
    // Started again, the directory is refused at once.
    cluster.start_node(2);
    let status = cluster
        .wait_node_exit(2, Duration::from_secs(10))
        .expect("refused");
    assert!(!status.success());
    assert!(
        cluster
            .node_log(2)
            .contains("which was removed from the partition's group"),
        "{}",
        cluster.node_log(2)
    );
    // Removed while it runs: the member stops by itself.
    let leader = leader_of(&cluster, 0).expect("a leader");
    let victim = 1 - leader;
    let after = cluster
        .members(0, &[], &["remove", "--member", &victim.to_string()])
        .expect("removed");
    assert_eq!(ids(&after), BTreeSet::from([leader as u64]), "{after}");
    let status = cluster
        .wait_node_exit(victim, Duration::from_secs(30))
        .expect("the removed member stops while running");
    assert!(!status.success());
    assert!(crate::put(&cluster, "r", "2", 2));
    assert!(crate::get(&cluster, "r", "1").is_some());
    // Started on an empty directory, it comes back as a new member.
    std::fs::remove_dir_all(&cluster.nodes[victim].dir).unwrap();
    cluster.start_node(victim);
    let new_id = member_id(&cluster, victim);
    let after = cluster
        .members(0, &[], &["add", "--address", &cluster.node_address(victim)])
        .expect("added again");
    assert_eq!(
        voters(&after),
        BTreeSet::from([leader as u64, new_id]),
        "{after}"
    );
}

/// Invariant: strongly consistent reads of a single-key register stay
/// linearizable across a membership change (the leader's member replaced
/// by one in another zone), and the register makes progress after it.
#[test]
fn a_register_is_linearizable_across_a_membership_change() {
    let mut cluster = Cluster::start(1, 50);
    let port = cluster.gateway_port;
    let history = Arc::new(linearizability::History::default());
    let stop = Arc::new(AtomicBool::new(false));
    let clients = crate::register_clients(port, &history, &stop);
    wait_for_progress(&history, 0, 100, Duration::from_secs(60));
    let leader = leader_of(&cluster, 0).expect("a leader");
    let d = cluster.add_node(0, "zone-d");
    cluster.start_node(d);
    let changed_at = history.now();
    let after = cluster
        .members(
            0,
            &[],
            &[
                "replace",
                "--member",
                &leader.to_string(),
                "--address",
                &cluster.node_address(d),
            ],
        )
        .expect("replaced");
    assert!(!ids(&after).contains(&(leader as u64)), "{after}");
    wait_for_progress(&history, changed_at, 100, Duration::from_secs(60));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let (reads, writes) = history.acknowledged_since(0);
    println!("history: {reads} reads, {writes} acknowledged writes");
    if let Err(violation) = history.check() {
        panic!("not linearizable: {violation}");
    }
}
