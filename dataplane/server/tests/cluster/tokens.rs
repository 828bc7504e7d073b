//! Invariant: a TransactWriteItems with a ClientRequestToken applies at
//! most once per token across leader changes and gateway restarts (the
//! token record is replicated with the data), and the token refuses a
//! different request (IdempotentParameterMismatchException).
//!
//! The gateway is restarted before each retry, so its in-process token
//! cache is empty: only the replicated record can answer.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{key, Cluster, TABLE};
use crate::{get, leader_of, status_applied};

fn transfer(token: &str, amount: i64) -> Value {
    json!({
        "ClientRequestToken": token,
        "TransactItems": [
            {"Update": {
                "TableName": TABLE,
                "Key": key("acct", "a"),
                "UpdateExpression": "ADD n :d",
                "ExpressionAttributeValues": {":d": {"N": amount.to_string()}},
            }},
            {"Update": {
                "TableName": TABLE,
                "Key": key("acct", "b"),
                "UpdateExpression": "ADD n :d",
                "ExpressionAttributeValues": {":d": {"N": (-amount).to_string()}},
            }},
        ],
    })
}

/// Sends `body` until the cluster answers with something other than a
/// server error (a new leader may still be being elected).
fn transact(cluster: &Cluster, body: &Value) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, answer) = cluster.call("TransactWriteItems", body);
        if (status != 0 && status < 500) || Instant::now() > deadline {
            return (status, answer);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn balance(cluster: &Cluster, sk: &str) -> i64 {
    let item = get(cluster, "acct", sk).expect("account item");
    item["n"]["N"].as_str().unwrap().parse().unwrap()
}

#[test]
fn transaction_token_survives_leader_kill_and_gateway_restart() {
    let mut cluster = Cluster::start(1, 10_000);
    let first = transfer("transfer-0001", 7);
    let (status, body) = transact(&cluster, &first);
    assert_eq!(status, 200, "{body}");
    assert_eq!((balance(&cluster, "a"), balance(&cluster, "b")), (7, -7));

    // Kill the leader between the transaction and its retry; the retry
    // reaches a new gateway process and a new leader.
    let old_leader = leader_of(&cluster, 0).expect("a leader");
    cluster.kill_node(old_leader);
    cluster.restart_gateway();
    let (status, body) = transact(&cluster, &first);
    assert_eq!(status, 200, "the retry succeeds: {body}");
    assert_eq!(
        (balance(&cluster, "a"), balance(&cluster, "b")),
        (7, -7),
        "the retry applied nothing"
    );

    // The same token with another request is refused, and applies nothing.
    cluster.restart_gateway();
    let (status, body) = transact(&cluster, &transfer("transfer-0001", 100));
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["__type"],
        "com.amazonaws.dynamodb.v20120810#IdempotentParameterMismatchException"
    );
    assert_eq!((balance(&cluster, "a"), balance(&cluster, "b")), (7, -7));

    // A fresh token applies.
    let (status, body) = transact(&cluster, &transfer("transfer-0002", 1));
    assert_eq!(status, 200, "{body}");
    assert_eq!((balance(&cluster, "a"), balance(&cluster, "b")), (8, -8));

    // The killed replica comes back and catches up from the log; then
    // the current leader dies too, and the records still answer.
    cluster.start_node(old_leader);
    let leader = leader_of(&cluster, 0).expect("a leader");
    let target = status_applied(&cluster, leader).unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while status_applied(&cluster, old_leader).unwrap_or(0) < target {
        assert!(
            Instant::now() < deadline,
            "restarted replica did not catch up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    cluster.kill_node(leader);
    cluster.restart_gateway();
    for (token, amount) in [("transfer-0001", 7), ("transfer-0002", 1)] {
        let (status, body) = transact(&cluster, &transfer(token, amount));
        assert_eq!(status, 200, "{token}: {body}");
    }
    assert_eq!((balance(&cluster, "a"), balance(&cluster, "b")), (8, -8));
}
