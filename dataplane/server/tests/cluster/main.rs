//! Cluster-mode tests with real processes on loopback: `partita node` ×3
//! per partition and `partita gateway`, driven over the DynamoDB JSON
//! protocol. Each fault test names the invariant it checks.

mod definitions;
mod handover;
mod harness;
mod linearizability;
mod membership;
mod replication_flag;
mod streams;
mod supervision;
mod tls;
mod tokens;
mod two_phase;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::{key, Cluster, TABLE};
use partita_cluster::rpc::{Client, Request, Response, Target};
use serde_json::json;

/// Returns the index (in `cluster.nodes`) of the replica of `partition`
/// that says it is the leader, waiting up to 5 s for one (leadership may
/// be changing hands).
pub(crate) fn leader_of(cluster: &Cluster, partition: u32) -> Option<usize> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(l) = leader_now(cluster, partition) {
            return Some(l);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn leader_now(cluster: &Cluster, partition: u32) -> Option<usize> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for (i, node) in cluster.nodes.iter().enumerate() {
            if node.partition != partition || node.child.is_none() {
                continue;
            }
            let client = Client::new(cluster.node_address(i));
            let target = Target {
                table: TABLE.into(),
                partition,
                epoch: 1,
            };
            if let Ok(Response::Status(Ok(s))) = client
                .call(&Request::Status(target), Duration::from_secs(1))
                .await
            {
                if s.leader == Some(s.node_id) {
                    return Some(i);
                }
            }
        }
        None
    })
}

pub(crate) fn target(partition: u32) -> Target {
    Target {
        table: TABLE.into(),
        partition,
        epoch: 1,
    }
}

/// One internal RPC call to node `i` (None: no answer).
pub(crate) fn call_node(cluster: &Cluster, i: usize, request: Request) -> Option<Response> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        Client::new(cluster.node_address(i))
            .call(&request, Duration::from_secs(1))
            .await
            .ok()
    })
}

pub(crate) fn status_applied(cluster: &Cluster, i: usize) -> Option<u64> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let node = &cluster.nodes[i];
    rt.block_on(async {
        let client = Client::new(cluster.node_address(i));
        let target = Target {
            table: TABLE.into(),
            partition: node.partition,
            epoch: 1,
        };
        match client
            .call(&Request::Status(target), Duration::from_secs(1))
            .await
        {
            Ok(Response::Status(Ok(s))) => s.last_applied,
            _ => None,
        }
    })
}

pub(crate) fn put(cluster: &Cluster, pk: &str, sk: &str, v: i64) -> bool {
    let (status, _) = cluster.call(
        "PutItem",
        &json!({"TableName": TABLE, "Item": {"pk": {"S": pk}, "sk": {"S": sk}, "v": {"N": v.to_string()}}}),
    );
    status == 200
}

pub(crate) fn get(cluster: &Cluster, pk: &str, sk: &str) -> Option<serde_json::Value> {
    let (status, body) = cluster.call(
        "GetItem",
        &json!({"TableName": TABLE, "Key": key(pk, sk), "ConsistentRead": true}),
    );
    assert_eq!(status, 200, "GetItem failed: {body}");
    body.get("Item").cloned()
}

/// Invariant: killing the leader during concurrent writes elects a new
/// leader within seconds and loses no acknowledged write.
#[test]
fn leader_kill_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start(1, 10_000);
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    // Writes begun after the kill and acknowledged: progress after the fault.
    let acked_after = Arc::new(AtomicU64::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let port = cluster.gateway_port;
    let mut writers = Vec::new();
    for w in 0..4 {
        let (acked, acked_after) = (acked.clone(), acked_after.clone());
        let (killed, stop) = (killed.clone(), stop.clone());
        writers.push(std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let sk = format!("{w}-{i}");
                let after = killed.load(Ordering::Relaxed);
                let (status, _) = harness::http_call(
                    port,
                    "PutItem",
                    &json!({"TableName": TABLE, "Item": {"pk": {"S": "k"}, "sk": {"S": sk}}}),
                );
                if status == 200 {
                    acked.lock().unwrap().insert(sk);
                    if after {
                        acked_after.fetch_add(1, Ordering::Relaxed);
                    }
                }
                i += 1;
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < 50 {
        assert!(
            Instant::now() < deadline,
            "too few writes acknowledged before the kill"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let leader = leader_of(&cluster, 0).expect("a leader");
    killed.store(true, Ordering::Relaxed);
    cluster.kill_node(leader);
    let killed_at = Instant::now();
    // A new leader: writes begun after the kill are acknowledged.
    let recovered = loop {
        if acked_after.load(Ordering::Relaxed) >= 10 {
            break killed_at.elapsed();
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(15),
            "no write acknowledged within 15 s of the leader kill"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let new_leader = leader_of(&cluster, 0).expect("a new leader");
    assert_ne!(new_leader, leader);
    println!("writes resumed {recovered:?} after the leader kill");
    assert!(recovered < Duration::from_secs(8), "took {recovered:?}");
    let acked = acked.lock().unwrap().clone();
    let mut missing = Vec::new();
    for sk in &acked {
        if get(&cluster, "k", sk).is_none() {
            missing.push(sk.clone());
        }
    }
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
    // The old leader comes back as a follower and catches up.
    cluster.start_node(leader);
    let target = status_applied(&cluster, new_leader).unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while status_applied(&cluster, leader).unwrap_or(0) < target {
        assert!(
            Instant::now() < deadline,
            "restarted replica did not catch up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Invariant: a minority of a partition (one replica of three) accepts no
/// write; the majority restored, writes succeed again.
#[test]
fn minority_accepts_no_writes() {
    let mut cluster = Cluster::start(1, 10_000);
    assert!(put(&cluster, "m", "before", 1));
    let alive = 0;
    for i in 1..3 {
        cluster.kill_node(i);
    }
    let started = Instant::now();
    assert!(
        !put(&cluster, "m", "during", 2),
        "a minority acknowledged a write"
    );
    println!("minority write refused after {:?}", started.elapsed());
    let _ = alive;
    cluster.start_node(1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !put(&cluster, "m", "after", 3) {
        assert!(
            Instant::now() < deadline,
            "writes did not resume with a majority"
        );
    }
    assert!(get(&cluster, "m", "before").is_some());
    assert!(get(&cluster, "m", "after").is_some());
}

/// Invariant: a replica whose data directory was wiped while it was down
/// comes back as a blank new member (a new id, recorded in its
/// member.json) and takes no part in the group: it never votes under the
/// identity the directory had. The group stays writable with the two
/// members left; with one of them down too there is no quorum (the blank
/// replica does not count), and writes resume when that member returns.
#[test]
fn a_wiped_replica_comes_back_blank_and_never_votes() {
    use partita_cluster::identity::{Identity, MemberState};
    let mut cluster = Cluster::start(1, 50);
    for i in 0..60 {
        assert!(put(&cluster, "wiped", &format!("{i}"), i));
    }
    let leader = leader_of(&cluster, 0).expect("a leader");
    let victim = (0..3).find(|i| *i != leader).unwrap();
    let third = (0..3).find(|i| *i != leader && *i != victim).unwrap();
    let old = Identity::load(&cluster.nodes[victim].dir)
        .unwrap()
        .expect("an identity");
    assert_eq!(old.state, MemberState::Member);
    cluster.kill_node(victim);
    std::fs::remove_dir_all(&cluster.nodes[victim].dir).unwrap();
    cluster.start_node(victim);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cluster
        .node_log(victim)
        .contains("a blank member: waiting to be added")
    {
        assert!(
            Instant::now() < deadline,
            "the wiped replica did not come back blank: {}",
            cluster.node_log(victim)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let new = Identity::load(&cluster.nodes[victim].dir)
        .unwrap()
        .expect("an identity");
    assert_eq!(new.state, MemberState::Blank);
    assert_ne!(new.member_id, old.member_id);
    assert!(new.member_id >= 1 << 63, "{new:?}");
    // The two members go on.
    for i in 60..80 {
        assert!(put(&cluster, "wiped", &format!("{i}"), i));
    }
    // One member and the blank replica are no quorum.
    cluster.kill_node(third);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        assert!(
            !put(&cluster, "wiped", "during", 0),
            "a write was acknowledged without a quorum of members"
        );
    }
    cluster.start_node(third);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !put(&cluster, "wiped", "after", 1) {
        assert!(Instant::now() < deadline, "writes did not resume");
    }
    // The blank replica answers nothing for the group, and refuses calls
    // for the identity its directory had.
    assert_eq!(status_applied(&cluster, victim), None);
    let refused = call_node(
        &cluster,
        victim,
        Request::ForMember(old.member_id, Box::new(Request::Status(target(0)))),
    );
    match refused {
        Some(Response::BadRequest(message)) => assert!(
            message.contains(&format!("not member {}", old.member_id)),
            "{message}"
        ),
        other => panic!("a call for the old identity was answered: {other:?}"),
    }
    // Nor does it serve reads from its empty store, even eventually
    // consistent ones.
    let read = call_node(
        &cluster,
        victim,
        Request::Scan {
            target: target(0),
            table: TABLE.into(),
            index: None,
            segment: 0,
            total_segments: 1,
            exclusive_start: None,
            limit: 10,
            consistent: false,
        },
    );
    assert!(
        matches!(
            read,
            Some(Response::Page(Err(
                partita_cluster::rpc::NodeError::NotLeader { .. }
            )))
        ),
        "{read:?}"
    );
    assert!(get(&cluster, "wiped", "79").is_some());
    // It joins as the new member it is (catching up from a snapshot: the
    // log is compacted every 50 entries) and the old identity leaves.
    let after = cluster
        .members(
            0,
            &[],
            &[
                "replace",
                "--member",
                &old.member_id.to_string(),
                "--address",
                &cluster.node_address(victim),
            ],
        )
        .expect("the wiped replica replaces its old identity");
    let members: BTreeSet<u64> = after["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    let expected = BTreeSet::from([leader as u64, third as u64, new.member_id]);
    assert_eq!(members, expected, "{after}");
    assert!(after["members"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["voter"] == true));
    // It counts for the quorum and holds the data: the old leader down,
    // the new member and the third one go on and serve every write.
    cluster.kill_node(leader);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !put(&cluster, "wiped", "rejoined", 1) {
        assert!(
            Instant::now() < deadline,
            "writes did not resume with the new member"
        );
    }
    for i in 0..80 {
        assert!(
            get(&cluster, "wiped", &format!("{i}")).is_some(),
            "write {i} lost"
        );
    }
}

/// Invariant: founding members bootstrap their group only once every one
/// of them promised: a replica started alone on an empty directory waits
/// (it initializes nothing and answers nothing for the group), and when the
/// others start late the group forms with all three as members.
#[test]
fn founders_wait_for_each_other_and_form_the_group() {
    use partita_cluster::identity::{Identity, MemberState};
    let mut cluster = Cluster::prepare(1);
    cluster.start_node(0);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        status_applied(&cluster, 0),
        None,
        "a lone founder started its group"
    );
    assert!(
        Identity::load(&cluster.nodes[0].dir).unwrap().is_none(),
        "a lone replica decided without hearing from its peers"
    );
    cluster.start_node(1);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(status_applied(&cluster, 0), None);
    cluster.start_node(2);
    cluster.start_gateway();
    cluster.wait_ready(Duration::from_secs(30));
    assert!(put(&cluster, "founded", "1", 1));
    for i in 0..3 {
        let identity = Identity::load(&cluster.nodes[i].dir)
            .unwrap()
            .expect("an identity");
        assert_eq!(
            (identity.member_id, identity.state),
            (i as u64, MemberState::Member)
        );
    }
}

/// Invariant: a data directory is opened only as the member it was
/// created for: a volume of partition 0 mounted on a replica of
/// partition 1 is refused with a clear error, and its owner still starts
/// on it.
#[test]
fn a_data_directory_is_opened_only_as_its_own_member() {
    let mut cluster = Cluster::start(2, 10_000);
    assert!(put(&cluster, "id", "1", 1));
    let owner = 0; // partition 0, zone a
    let other = 3; // partition 1, zone a
    assert_eq!(
        (
            cluster.nodes[owner].partition,
            cluster.nodes[other].partition
        ),
        (0, 1)
    );
    cluster.kill_node(owner);
    cluster.kill_node(other);
    let own_dir = cluster.nodes[other].dir.clone();
    cluster.nodes[other].dir = cluster.nodes[owner].dir.clone();
    cluster.start_node(other);
    let status = cluster
        .wait_node_exit(other, Duration::from_secs(30))
        .expect("the replica refuses the volume");
    assert!(!status.success(), "{status}");
    let log = cluster.node_log(other);
    assert!(
        log.contains("belongs to member 0 of table Items partition 0, not to the replica of table Items partition 1 in zone zone-a"),
        "{log}"
    );
    cluster.nodes[other].dir = own_dir;
    cluster.start_node(other);
    cluster.start_node(owner);
    cluster.wait_ready(Duration::from_secs(30));
    assert!(get(&cluster, "id", "1").is_some());
}

/// Item operations, Query and Scan (paged, segmented) through the gateway
/// on a table of two partitions.
#[test]
fn item_operations_query_and_scan_across_partitions() {
    let cluster = Cluster::start(2, 10_000);
    for p in 0..20 {
        for s in 0..5 {
            assert!(put(
                &cluster,
                &format!("p{p}"),
                &format!("s{s}"),
                p * 10 + s
            ));
        }
    }
    // Update with a condition, then a failing condition.
    let (status, body) = cluster.call(
        "UpdateItem",
        &json!({"TableName": TABLE, "Key": key("p3", "s1"), "UpdateExpression": "ADD v :d",
                "ConditionExpression": "attribute_exists(pk)",
                "ExpressionAttributeValues": {":d": {"N": "100"}}, "ReturnValues": "UPDATED_NEW"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Attributes"]["v"]["N"], "131");
    let (status, body) = cluster.call(
        "PutItem",
        &json!({"TableName": TABLE, "Item": {"pk": {"S": "p3"}, "sk": {"S": "s1"}},
                "ConditionExpression": "attribute_not_exists(pk)"}),
    );
    assert_eq!(status, 400);
    assert!(body["__type"]
        .as_str()
        .unwrap()
        .ends_with("ConditionalCheckFailedException"));
    let (status, _) = cluster.call(
        "DeleteItem",
        &json!({"TableName": TABLE, "Key": key("p4", "s0")}),
    );
    assert_eq!(status, 200);
    assert!(get(&cluster, "p4", "s0").is_none());
    // Query in reverse with a limit.
    let (status, body) = cluster.call(
        "Query",
        &json!({"TableName": TABLE, "KeyConditionExpression": "pk = :p AND sk > :s",
                "ExpressionAttributeValues": {":p": {"S": "p7"}, ":s": {"S": "s1"}},
                "ScanIndexForward": false, "Limit": 2}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Count"], 2);
    assert_eq!(body["Items"][0]["sk"]["S"], "s4");
    assert!(body.get("LastEvaluatedKey").is_some());
    // Scan: paged and in 3 segments, each item exactly once.
    for segments in [1u32, 3] {
        let mut seen = BTreeSet::new();
        for segment in 0..segments {
            let mut start = serde_json::Value::Null;
            loop {
                let mut req = json!({"TableName": TABLE, "Limit": 17});
                if segments > 1 {
                    req["Segment"] = json!(segment);
                    req["TotalSegments"] = json!(segments);
                }
                if !start.is_null() {
                    req["ExclusiveStartKey"] = start.clone();
                }
                let (status, body) = cluster.call("Scan", &req);
                assert_eq!(status, 200, "{body}");
                for item in body["Items"].as_array().unwrap() {
                    let k = format!("{}/{}", item["pk"]["S"], item["sk"]["S"]);
                    assert!(seen.insert(k), "item returned twice");
                }
                match body.get("LastEvaluatedKey") {
                    Some(k) => start = k.clone(),
                    None => break,
                }
            }
        }
        assert_eq!(seen.len(), 99, "with {segments} segments");
    }
    // BatchWriteItem and BatchGetItem spanning both partitions.
    let puts: Vec<_> = (0..10)
        .map(|i| json!({"PutRequest": {"Item": {"pk": {"S": format!("b{i}")}, "sk": {"S": "x"}}}}))
        .collect();
    let (status, body) = cluster.call("BatchWriteItem", &json!({"RequestItems": {TABLE: puts}}));
    assert_eq!(status, 200, "{body}");
    let keys: Vec<_> = (0..10).map(|i| key(&format!("b{i}"), "x")).collect();
    let (status, body) = cluster.call(
        "BatchGetItem",
        &json!({"RequestItems": {TABLE: {"Keys": keys}}}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Responses"][TABLE].as_array().unwrap().len(), 10);
    // Single-partition transaction.
    let (status, body) = cluster.call(
        "TransactWriteItems",
        &json!({"TransactItems": [
            {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "t"}, "sk": {"S": "1"}}}},
            {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "t"}, "sk": {"S": "2"}}}}
        ]}),
    );
    assert_eq!(status, 200, "{body}");
    assert!(get(&cluster, "t", "2").is_some());
    // DescribeTable counts items over both partitions.
    let (status, body) = cluster.call("DescribeTable", &json!({"TableName": TABLE}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Table"]["ItemCount"], 99 + 10 + 2);
}

/// Invariant: a replica cut off the network (netns + veth, link down)
/// misses writes the majority keeps acknowledging, and once healed it
/// catches up with every one of them.
#[test]
fn cut_off_replica_catches_up_after_heal() {
    let mut cluster = Cluster::start_netns(10_000);
    let leader = leader_of(&cluster, 0).expect("a leader");
    let victim = (0..3).find(|i| *i != leader).unwrap();
    cluster.cut(victim);
    for i in 0..100 {
        assert!(
            put(&cluster, "cut", &format!("{i:03}"), i),
            "majority refused a write"
        );
    }
    assert!(
        status_applied(&cluster, victim).is_none(),
        "the cut-off replica is still reachable"
    );
    cluster.heal(victim);
    let target = status_applied(&cluster, leader).unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while status_applied(&cluster, victim).unwrap_or(0) < target {
        assert!(Instant::now() < deadline, "healed replica did not catch up");
        std::thread::sleep(Duration::from_millis(100));
    }
    cluster.kill_node(victim);
    let store = partita_storage::Store::open(
        &cluster.node_store_dir(victim),
        partita_storage::StoreOptions::default(),
    )
    .unwrap();
    let mut n = 0;
    store
        .query(
            TABLE,
            &partita_model::AttributeValue::S("cut".into()),
            None,
            true,
            None,
            &mut |_| {
                n += 1;
                partita_storage::Visit::Continue
            },
        )
        .unwrap();
    assert_eq!(n, 100);
}

/// Invariant: a leader cut off from its followers is replaced by the
/// majority within seconds (writes go on through the gateway), and once
/// healed it rejoins as a follower and converges on the majority's log.
/// (That a minority commits nothing is `minority_accepts_no_writes`.)
#[test]
fn isolated_leader_is_replaced_and_rejoins() {
    let cluster = Cluster::start_netns(10_000);
    let leader = leader_of(&cluster, 0).expect("a leader");
    cluster.cut(leader);
    // Writes through the gateway land on the majority's new leader (the
    // first ones may time out on the unreachable old leader).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !put(&cluster, "iso", "after-cut", 1) {
        assert!(
            Instant::now() < deadline,
            "majority did not elect a new leader"
        );
    }
    let new_leader = leader_of(&cluster, 0).expect("a new leader");
    assert_ne!(new_leader, leader);
    cluster.heal(leader);
    let target = status_applied(&cluster, new_leader).unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while status_applied(&cluster, leader).unwrap_or(0) < target {
        assert!(Instant::now() < deadline, "old leader did not rejoin");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(get(&cluster, "iso", "after-cut").is_some());
}

/// Waits until `history` holds at least `count` answered reads and
/// `count` acknowledged writes that began at or after `since`.
pub(crate) fn wait_for_progress(
    history: &linearizability::History,
    since: u128,
    count: usize,
    deadline: Duration,
) {
    let end = Instant::now() + deadline;
    loop {
        let (reads, writes) = history.acknowledged_since(since);
        if reads >= count && writes >= count {
            return;
        }
        assert!(
            Instant::now() < end,
            "no progress: {reads} reads and {writes} writes acknowledged in {deadline:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Four clients of the single-key register `reg`/`x` through the gateway
/// on `port`, alternating PutItem and consistent GetItem, recording every
/// call in `history` (a write counts only when answered 200) until `stop`.
pub(crate) fn register_clients(
    port: u16,
    history: &Arc<linearizability::History>,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..4u64)
        .map(|c| {
            let (history, stop) = (history.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let start = history.now();
                    if (n + c).is_multiple_of(2) {
                        let value = c * 1_000_000 + n;
                        let (status, _) = harness::http_call(
                            port,
                            "PutItem",
                            &json!({"TableName": TABLE, "Item": {"pk": {"S": "reg"}, "sk": {"S": "x"}, "v": {"N": value.to_string()}}}),
                        );
                        history.write(value, start, (status == 200).then(|| history.now()));
                    } else {
                        let (status, body) = harness::http_call(
                            port,
                            "GetItem",
                            &json!({"TableName": TABLE, "Key": key("reg", "x"), "ConsistentRead": true}),
                        );
                        if status == 200 {
                            let value = body["Item"]["v"]["N"].as_str().and_then(|v| v.parse().ok());
                            history.read(value, start, history.now());
                        }
                    }
                }
            })
        })
        .collect()
}

/// Invariant: strongly consistent reads of a single-key register are
/// linearizable, with the leader killed in the middle of the history, and
/// the register makes progress after the kill.
#[test]
fn consistent_register_reads_are_linearizable() {
    let mut cluster = Cluster::start(1, 10_000);
    let port = cluster.gateway_port;
    let history = Arc::new(linearizability::History::default());
    let stop = Arc::new(AtomicBool::new(false));
    let clients = register_clients(port, &history, &stop);
    // Enough history before the fault.
    wait_for_progress(&history, 0, 100, Duration::from_secs(60));
    let leader = leader_of(&cluster, 0).expect("a leader");
    let killed_at = history.now();
    cluster.kill_node(leader);
    // Progress after it: acknowledged writes and answered reads that began
    // after the kill (a new leader serves them).
    wait_for_progress(&history, killed_at, 100, Duration::from_secs(60));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let (reads, writes) = history.acknowledged_since(0);
    let (reads_after, writes_after) = history.acknowledged_since(killed_at);
    println!("history: {reads} reads, {writes} acknowledged writes ({reads_after} and {writes_after} after the kill)");
    if let Err(violation) = history.check() {
        panic!("not linearizable: {violation}");
    }
}

/// A newer topology epoch on the nodes: the gateway's requests carry the old
/// epoch, the nodes answer StaleEpoch, the gateway reloads the topology
/// file and goes on without a failed request.
#[test]
fn gateway_follows_a_topology_epoch_bump() {
    let mut cluster = Cluster::start(1, 10_000);
    assert!(put(&cluster, "e", "1", 1));
    cluster.set_epoch(2);
    for i in 0..3 {
        cluster.kill_node(i);
        cluster.start_node(i);
        std::thread::sleep(Duration::from_millis(300));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while !put(&cluster, "e", "2", 2) {
        assert!(
            Instant::now() < deadline,
            "writes did not resume after the epoch bump"
        );
    }
    assert!(get(&cluster, "e", "1").is_some());
    assert!(get(&cluster, "e", "2").is_some());
    assert!(
        cluster.gateway_log().contains("topology reloaded"),
        "the gateway did not reload the topology: {}",
        cluster.gateway_log()
    );
}

/// With `--follower-reads`, an eventually consistent GetItem is answered
/// by a follower even when the partition has no quorum (and so no leader),
/// while a consistent read of the same item fails.
#[test]
fn follower_reads_answer_without_a_quorum() {
    let mut cluster = Cluster::start_with_gateway(1, &["--follower-reads"]);
    assert!(put(&cluster, "f", "1", 1));
    // Every replica applies the write before two of them go.
    let leader = leader_of(&cluster, 0).expect("a leader");
    let target = status_applied(&cluster, leader).expect("the leader's applied index");
    let deadline = Instant::now() + Duration::from_secs(30);
    while (0..3).any(|i| status_applied(&cluster, i).unwrap_or(0) < target) {
        assert!(
            Instant::now() < deadline,
            "the replicas did not apply the write"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let survivor = (0..3).find(|i| *i != leader).unwrap();
    for i in (0..3).filter(|i| *i != survivor) {
        cluster.kill_node(i);
    }
    let (status, body) = cluster.call(
        "GetItem",
        &json!({"TableName": TABLE, "Key": key("f", "1")}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Item"]["v"]["N"], "1");
    let (status, _) = cluster.call(
        "GetItem",
        &json!({"TableName": TABLE, "Key": key("f", "1"), "ConsistentRead": true}),
    );
    assert_ne!(status, 200, "a consistent read succeeded without a quorum");
}

/// `GET path` on `port`: the status code (None: no answer).
fn admin_status(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split(' ').nth(1)?.parse().ok()
}

/// A gateway started before its topology file exists (the operator renders
/// it once it runs) is ready at once and answers as an account without
/// tables; once the file appears it serves the tables it lists.
#[test]
fn a_gateway_starts_ready_without_a_topology_file_and_picks_it_up() {
    let mut cluster = Cluster::prepare(1);
    let later = cluster.topology.with_extension("later");
    std::fs::rename(&cluster.topology, &later).unwrap();
    let ports = harness::free_ports(2);
    let (port, admin) = (ports[0], ports[1]);
    let mut gateway = std::process::Command::new(harness::BIN)
        .args(["gateway", "--topology-file"])
        .arg(&cluster.topology)
        .args([
            "--port",
            &port.to_string(),
            "--admin-port",
            &admin.to_string(),
        ])
        .env("PARTITA_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stderr(
            std::fs::File::create(cluster.topology.with_file_name("early-gateway.log")).unwrap(),
        )
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while admin_status(admin, "/readyz") != Some(200) {
        assert!(
            Instant::now() < deadline,
            "the gateway is not ready without a topology"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body) = harness::http_call(port, "ListTables", &json!({}));
    assert_eq!((status, &body["TableNames"]), (200, &json!([])), "{body}");
    let (status, body) = harness::http_call(
        port,
        "GetItem",
        &json!({"TableName": TABLE, "Key": key("a", "b")}),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["__type"],
        "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException"
    );
    // The file appears: the gateway serves its table.
    std::fs::rename(&later, &cluster.topology).unwrap();
    for i in 0..3 {
        cluster.start_node(i);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = harness::http_call(
            port,
            "PutItem",
            &json!({"TableName": TABLE, "Item": {"pk": {"S": "a"}, "sk": {"S": "b"}}}),
        );
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the topology file was not picked up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = gateway.kill();
    let _ = gateway.wait();
}
