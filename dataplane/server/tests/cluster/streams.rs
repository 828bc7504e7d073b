//! DynamoDB Streams in cluster mode: every replica keeps the same change
//! log, so a reader goes on across a leader change.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{Cluster, TABLE};
use crate::{leader_of, put};

fn streams_call(cluster: &Cluster, op: &str, body: &Value) -> Value {
    let (status, reply) = cluster.call(&format!("DynamoDBStreams_20120810.{op}"), body);
    assert_eq!(status, 200, "{op}: {reply}");
    reply
}

/// Reads the shard from `iterator` until `want` records arrived (or 20 s
/// passed); returns the records' sort keys and sequence numbers.
fn read_on(cluster: &Cluster, mut iterator: String, want: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while out.len() < want && Instant::now() < deadline {
        let page = streams_call(cluster, "GetRecords", &json!({"ShardIterator": iterator}));
        for r in page["Records"].as_array().unwrap() {
            let d = &r["dynamodb"];
            out.push((
                d["Keys"]["sk"]["S"].as_str().unwrap().to_string(),
                d["SequenceNumber"].as_str().unwrap().to_string(),
            ));
        }
        iterator = page["NextShardIterator"].as_str().unwrap().to_string();
    }
    out
}

/// Invariant: an iterator handed out by one leader reads on after that
/// leader is killed, with no record lost or repeated, and a record written
/// under the new leader follows in order.
#[test]
fn stream_reads_continue_across_a_leader_kill() {
    // Snapshots every 20 entries: the replicas also install or build
    // snapshots that carry the change log.
    let mut cluster = Cluster::start(1, 20);
    for i in 0..30 {
        assert!(put(&cluster, "k", &format!("{i:03}"), i));
    }
    let (status, table) = cluster.call("DescribeTable", &json!({"TableName": TABLE}));
    assert_eq!(status, 200, "{table}");
    let arn = table["Table"]["LatestStreamArn"]
        .as_str()
        .unwrap()
        .to_string();
    let stream = streams_call(&cluster, "DescribeStream", &json!({"StreamArn": arn}));
    let shards = stream["StreamDescription"]["Shards"].as_array().unwrap();
    assert_eq!(shards.len(), 1, "{stream}");
    let shard = shards[0]["ShardId"].as_str().unwrap().to_string();
    let it = streams_call(
        &cluster,
        "GetShardIterator",
        &json!({"StreamArn": arn, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"}),
    )["ShardIterator"]
        .as_str()
        .unwrap()
        .to_string();
    let first = streams_call(
        &cluster,
        "GetRecords",
        &json!({"ShardIterator": it, "Limit": 10}),
    );
    let records = first["Records"].as_array().unwrap();
    assert_eq!(records.len(), 10);
    let next = first["NextShardIterator"].as_str().unwrap().to_string();

    let leader = leader_of(&cluster, 0).expect("a leader");
    cluster.kill_node(leader);
    // Retried on a 5xx as SDKs do (a write in flight when the leader died
    // has an unknown outcome); the Put is idempotent.
    let mut last = (0, Value::Null);
    for _ in 0..5 {
        last = cluster.call(
            "PutItem",
            &json!({"TableName": TABLE, "Item": {"pk": {"S": "k"}, "sk": {"S": "after"}}}),
        );
        if last.0 < 500 {
            break;
        }
    }
    assert_eq!(last.0, 200, "no write after the kill: {}", last.1);

    let rest = read_on(&cluster, next, 21);
    let keys: Vec<&str> = rest.iter().map(|(k, _)| k.as_str()).collect();
    let mut expected: Vec<String> = (10..30).map(|i| format!("{i:03}")).collect();
    expected.push("after".into());
    assert_eq!(keys, expected);
    let seqs: Vec<&String> = rest.iter().map(|(_, s)| s).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    // The same shard id and stream under the new leader.
    let again = streams_call(&cluster, "DescribeStream", &json!({"StreamArn": arn}));
    assert_eq!(
        again["StreamDescription"]["Shards"][0]["ShardId"],
        json!(shard)
    );
    assert_eq!(
        again["StreamDescription"]["CreationRequestDateTime"],
        stream["StreamDescription"]["CreationRequestDateTime"]
    );
}
