//! A leader stopped as Kubernetes stops a pod (SIGTERM) hands its
//! partition's leadership to another member before it exits, so a rolling
//! update never leaves a partition waiting for an election timeout.

use std::time::{Duration, Instant};

use partita_cluster::rpc::{Client, Request, Response};
use serde_json::json;

use super::harness::{key, Cluster, TABLE};
use super::{leader_of, target};

/// The leader each running replica of partition 0 names right now.
fn leaders_named(cluster: &Cluster) -> Vec<(usize, Option<u64>, u64)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut named = Vec::new();
        for (i, node) in cluster.nodes.iter().enumerate() {
            if node.partition != 0 || node.child.is_none() {
                continue;
            }
            let client = Client::new(cluster.node_address(i));
            if let Ok(Response::Status(Ok(s))) = client
                .call(&Request::Status(target(0)), Duration::from_secs(1))
                .await
            {
                named.push((i, s.leader, s.node_id));
            }
        }
        named
    })
}

#[test]
fn a_leader_stopped_with_sigterm_hands_over_before_it_exits() {
    let mut cluster = Cluster::start(1, 10_000);
    for round in 0..3 {
        let old = leader_of(&cluster, 0).expect("a leader");
        let old_id = leaders_named(&cluster)
            .into_iter()
            .find(|(i, _, _)| *i == old)
            .map(|(_, _, id)| id)
            .expect("the leader answers");
        for n in 0..20 {
            let (status, body) = cluster.call(
                "PutItem",
                &json!({"TableName": TABLE, "Item": key(&format!("r{round}"), &format!("{n}"))}),
            );
            assert_eq!(status, 200, "{body}");
        }
        let stopping = Instant::now();
        let exited = cluster.terminate_node(old, Duration::from_secs(10));
        assert!(
            exited.is_some_and(|s| s.success()),
            "the leader did not exit cleanly on SIGTERM: {exited:?}\n{}",
            cluster.node_log(old)
        );
        // Right after it exits, the others already follow a new leader:
        // no election timeout is left to run.
        let named = leaders_named(&cluster);
        assert_eq!(named.len(), 2, "both other replicas answer: {named:?}");
        let new = named[0].1;
        assert!(
            new.is_some() && new != Some(old_id) && named.iter().all(|(_, l, _)| *l == new),
            "round {round}: after the leader (member {old_id}) exited in {:?} the others name {named:?}\n{}",
            stopping.elapsed(),
            cluster.node_log(old)
        );
        assert!(
            cluster.node_log(old).contains("leadership handed over"),
            "{}",
            cluster.node_log(old)
        );
        // Every write is still there; the stopped replica rejoins.
        for n in 0..20 {
            let (status, body) = cluster.call(
                "GetItem",
                &json!({"TableName": TABLE, "Key": key(&format!("r{round}"), &format!("{n}")), "ConsistentRead": true}),
            );
            assert_eq!(status, 200, "{body}");
            assert!(
                body["Item"].is_object(),
                "write {n} of round {round} lost: {body}"
            );
        }
        cluster.start_node(old);
        cluster.wait_ready(Duration::from_secs(30));
    }
}
