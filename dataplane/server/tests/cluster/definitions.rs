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

/// The definition each replica answers with (None for one that does not:
/// a follower refers to its leader).
fn replica_definitions(cluster: &Cluster) -> Vec<Option<partita_model::TableDefinition>> {
    (0..cluster.nodes.len())
        .map(|i| {
            let request = partita_cluster::rpc::Request::Describe {
                target: crate::target(cluster.nodes[i].partition),
                table: TABLE.to_string(),
            };
            match crate::call_node(cluster, i, request) {
                Some(partita_cluster::rpc::Response::Describe(Ok(described))) => Some(described.0),
                _ => None,
            }
        })
        .collect()
}

/// Invariant: definition changes made at the same moment through two
/// gateways are all kept — each gateway's change is compared and set
/// against the first partition's revision and built again on the other's
/// when it lost — and both partitions' groups end with the same
/// definition.
#[test]
fn concurrent_changes_through_two_gateways_are_all_kept() {
    let cluster = Cluster::start(2, 0);
    let second_port = crate::harness::free_ports(1)[0];
    let mut second = cluster.spawn_gateway(second_port, &[]);
    let arn = ok(&cluster, "DescribeTable", &json!({"TableName": TABLE}))["Table"]["TableArn"]
        .as_str()
        .unwrap()
        .to_string();
    let ports = [cluster.gateway_port, second_port];
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (port, arn) = (ports[t % 2], arn.clone());
            std::thread::spawn(move || {
                for i in 0..5 {
                    let (status, body) = crate::harness::http_call(
                        port,
                        "TagResource",
                        &json!({"ResourceArn": arn, "Tags": [{"Key": format!("k{t}-{i}"), "Value": "v"}]}),
                    );
                    if status != 200 {
                        return Err(format!("TagResource through :{port}: {status} {body}"));
                    }
                }
                Ok(())
            })
        })
        .collect();
    for thread in threads {
        if let Err(e) = thread.join().unwrap() {
            let second_log = std::fs::read_to_string(
                cluster
                    .topology
                    .with_file_name(format!("gateway-{second_port}.log")),
            )
            .unwrap_or_default();
            panic!(
                "{e}\n{}\n--- second gateway\n{second_log}",
                cluster.logs_tail(20)
            );
        }
    }
    // Every change kept (a gateway answers from a definition it read up to
    // a second ago).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let tags = ok(&cluster, "ListTagsOfResource", &json!({"ResourceArn": arn}));
        if tags["Tags"].as_array().unwrap().len() == 20 {
            break;
        }
        assert!(Instant::now() < deadline, "a change was lost: {tags}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Both partitions' groups hold the same definition (a group's leader
    // answers for it), at the twentieth revision.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let defs = replica_definitions(&cluster);
        let answered: Vec<(u32, partita_model::TableDefinition)> = defs
            .into_iter()
            .enumerate()
            .filter_map(|(i, d)| d.map(|d| (cluster.nodes[i].partition, d)))
            .collect();
        let both = [0, 1].iter().all(|p| answered.iter().any(|(q, _)| q == p));
        let same = both
            && answered
                .iter()
                .all(|(_, d)| *d == answered[0].1 && d.tags.len() == 20);
        if same {
            assert_eq!(answered[0].1.revision, 20);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "partitions differ: {:?}",
            answered
                .iter()
                .map(|(p, d)| (p, d.revision, d.tags.len()))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = second.kill();
    let _ = second.wait();
}
