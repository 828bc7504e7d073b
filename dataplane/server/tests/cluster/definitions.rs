//! Definition changes of a topology-defined table through the gateway
//! (issue 22): the operator brings a table to its Table resource's spec
//! with DynamoDB's own calls, so UpdateTable, UpdateTimeToLive and tag
//! calls reach every partition's group; creating or deleting the table
//! stays with the Table resource.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{Cluster, TABLE};

fn ok(cluster: &Cluster, op: &str, body: &Value) -> Value {
    let (status, answer) = cluster.call(op, body);
    assert_eq!(status, 200, "{op}: {answer}");
    answer
}

/// Waits until DescribeTable shows `done` (table and indexes settled).
fn wait_described(cluster: &Cluster, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let described = ok(cluster, "DescribeTable", &json!({"TableName": TABLE}));
        if done(&described["Table"]) {
            return described["Table"].clone();
        }
        assert!(Instant::now() < deadline, "{what}: {described}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Invariant: a definition change of a table the topology defines reaches
/// every partition's group — a global index added is backfilled in each
/// partition (a query on it finds the items of both), then removed; time
/// to live, throughput, tags and deletion protection change as DynamoDB
/// changes them — while CreateTable and DeleteTable of it are refused
/// with DynamoDB's error types.
#[test]
fn definition_changes_of_a_topology_table_reach_every_group() {
    let cluster = Cluster::start(2, 0);
    for i in 0..40 {
        ok(
            &cluster,
            "PutItem",
            &json!({"TableName": TABLE, "Item": {"pk": {"S": format!("p{i}")}, "sk": {"S": "x"}, "color": {"S": "blue"}}}),
        );
    }
    ok(
        &cluster,
        "UpdateTable",
        &json!({"TableName": TABLE,
            "AttributeDefinitions": [{"AttributeName": "color", "AttributeType": "S"}],
            "GlobalSecondaryIndexUpdates": [{"Create": {"IndexName": "by-color",
                "KeySchema": [{"AttributeName": "color", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"}}}]}),
    );
    wait_described(&cluster, "the index becomes ACTIVE", |t| {
        t["GlobalSecondaryIndexes"][0]["IndexStatus"] == "ACTIVE"
    });
    let found = ok(
        &cluster,
        "Query",
        &json!({"TableName": TABLE, "IndexName": "by-color",
            "KeyConditionExpression": "color = :c",
            "ExpressionAttributeValues": {":c": {"S": "blue"}}, "Select": "COUNT"}),
    );
    assert_eq!(found["Count"], 40, "{found}");

    ok(
        &cluster,
        "UpdateTimeToLive",
        &json!({"TableName": TABLE, "TimeToLiveSpecification": {"Enabled": true, "AttributeName": "expiresAt"}}),
    );
    let ttl = ok(&cluster, "DescribeTimeToLive", &json!({"TableName": TABLE}));
    assert_eq!(
        ttl["TimeToLiveDescription"],
        json!({"TimeToLiveStatus": "ENABLED", "AttributeName": "expiresAt"})
    );
    // DynamoDB changes deletion protection alone.
    ok(
        &cluster,
        "UpdateTable",
        &json!({"TableName": TABLE, "DeletionProtectionEnabled": true}),
    );
    let table = wait_described(&cluster, "the table becomes ACTIVE", |t| {
        t["TableStatus"] == "ACTIVE"
    });
    assert_eq!(table["DeletionProtectionEnabled"], true);
    let arn = table["TableArn"].as_str().unwrap().to_string();
    ok(
        &cluster,
        "TagResource",
        &json!({"ResourceArn": arn, "Tags": [{"Key": "app", "Value": "shop"}]}),
    );
    let tags = ok(&cluster, "ListTagsOfResource", &json!({"ResourceArn": arn}));
    assert_eq!(tags["Tags"], json!([{"Key": "app", "Value": "shop"}]));

    // Deletion protection on: DynamoDB's refusal. Off: still refused, the
    // Table resource deletes it.
    let (status, refused) = cluster.call("DeleteTable", &json!({"TableName": TABLE}));
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["__type"]
            .as_str()
            .unwrap()
            .ends_with("ValidationException"),
        "{refused}"
    );
    ok(
        &cluster,
        "UpdateTable",
        &json!({"TableName": TABLE, "DeletionProtectionEnabled": false}),
    );
    ok(
        &cluster,
        "UpdateTable",
        &json!({"TableName": TABLE,
            "GlobalSecondaryIndexUpdates": [{"Delete": {"IndexName": "by-color"}}]}),
    );
    wait_described(&cluster, "the index goes away", |t| {
        t.get("GlobalSecondaryIndexes").is_none() && t["TableStatus"] == "ACTIVE"
    });
    ok(
        &cluster,
        "UpdateTable",
        &json!({"TableName": TABLE, "BillingMode": "PROVISIONED",
            "ProvisionedThroughput": {"ReadCapacityUnits": 7, "WriteCapacityUnits": 9}}),
    );
    wait_described(&cluster, "the table becomes ACTIVE", |t| {
        t["TableStatus"] == "ACTIVE"
    });
    let table = wait_described(&cluster, "the table becomes ACTIVE", |t| {
        t["TableStatus"] == "ACTIVE"
    });
    assert_eq!(table["ProvisionedThroughput"]["WriteCapacityUnits"], 9);
    let (status, refused) = cluster.call("DeleteTable", &json!({"TableName": TABLE}));
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("through its Table resource"),
        "{refused}"
    );
    let (status, refused) = cluster.call(
        "CreateTable",
        &json!({"TableName": TABLE, "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]}),
    );
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["__type"]
            .as_str()
            .unwrap()
            .ends_with("ResourceInUseException"),
        "{refused}"
    );
}
