//! Restart durability: kill -9 during concurrent writes, restart on the same
//! data directory, and every acknowledged write is readable. These tests
//! need their own server process, so they skip when DYNAMODB_ENDPOINT is set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use partita_blackbox_tests::aws_sdk_dynamodb::types::{
    AttributeValue, BillingMode, KeyType, ProvisionedThroughput, ScalarAttributeType, Tag,
    TimeToLiveSpecification, TimeToLiveStatus,
};
use partita_blackbox_tests::*;

const WRITERS: usize = 16;
const ACKS_BEFORE_KILL: usize = 600;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_during_concurrent_writes() {
    if skip_without_own_server("acknowledged_writes_survive_kill_9_during_concurrent_writes") {
        return;
    }
    let mut env = TestEnv::new();
    let t = create_hash_table(&env.client, "crash").await;

    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::new(Mutex::new(Vec::new()));
    let counter_acks = Arc::new(Mutex::new(0u64));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let c = env.client.clone();
        let t = t.clone();
        let acked = acked.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("w{w}-{i}");
                let value = format!("value-{w}-{i}-{}", "p".repeat((i % 7) as usize * 100));
                let r = c
                    .put_item()
                    .table_name(&t)
                    .item("pk", s(&key))
                    .item("v", s(&value))
                    .send()
                    .await;
                match r {
                    Ok(_) => acked.lock().expect("lock").push((key, value)),
                    Err(_) => return,
                }
                i += 1;
            }
        }));
    }
    // One writer increments a counter: after recovery the counter is at
    // least the number of acknowledged increments, and at most one more.
    {
        let c = env.client.clone();
        let t = t.clone();
        let counter_acks = counter_acks.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = c
                    .update_item()
                    .table_name(&t)
                    .key("pk", s("counter"))
                    .update_expression("ADD n :one")
                    .expression_attribute_values(":one", n("1"))
                    .send()
                    .await;
                match r {
                    Ok(_) => *counter_acks.lock().expect("lock") += 1,
                    Err(_) => return,
                }
            }
        }));
    }

    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.lock().expect("lock").len() < ACKS_BEFORE_KILL {
        assert!(
            Instant::now() < deadline,
            "only {} writes acknowledged in 120 s",
            acked.lock().expect("lock").len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Kill while the writers are still going.
    env.server.as_mut().expect("own server").kill9();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("writer task");
    }
    let acked = acked.lock().expect("lock").clone();
    let counter_acked = *counter_acks.lock().expect("lock");

    env.kill9_and_restart();
    let c = &env.client;
    wait_active(c, &t).await;
    let mut lost = Vec::new();
    for (key, value) in &acked {
        let got = c
            .get_item()
            .table_name(&t)
            .key("pk", s(key))
            .consistent_read(true)
            .send()
            .await
            .expect("get after restart");
        match got.item() {
            Some(it) if get_s(it, "v") == value => {}
            other => lost.push(format!("{key}: {other:?}")),
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost after kill -9, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
    let counter = c
        .get_item()
        .table_name(&t)
        .key("pk", s("counter"))
        .consistent_read(true)
        .send()
        .await
        .expect("get counter")
        .item()
        .map(|i| get_n(i, "n").parse::<u64>().expect("counter number"))
        .unwrap_or(0);
    assert!(
        counter >= counter_acked && counter <= counter_acked + 1,
        "counter {counter}, acknowledged increments {counter_acked}"
    );
    // The restarted server accepts writes.
    c.put_item()
        .table_name(&t)
        .item("pk", s("after"))
        .send()
        .await
        .expect("write after restart");
    delete_table(c, &t).await;
}

#[tokio::test]
async fn tables_settings_and_deletes_survive_restart() {
    if skip_without_own_server("tables_settings_and_deletes_survive_restart") {
        return;
    }
    let mut env = TestEnv::new();
    let c = env.client.clone();
    let t = unique_name("restart_meta");
    c.create_table()
        .table_name(&t)
        .attribute_definitions(attr_def("pk", ScalarAttributeType::S))
        .attribute_definitions(attr_def("sk", ScalarAttributeType::N))
        .key_schema(key_elem("pk", KeyType::Hash))
        .key_schema(key_elem("sk", KeyType::Range))
        .billing_mode(BillingMode::Provisioned)
        .provisioned_throughput(
            ProvisionedThroughput::builder()
                .read_capacity_units(3)
                .write_capacity_units(4)
                .build()
                .expect("throughput"),
        )
        .deletion_protection_enabled(true)
        .tags(Tag::builder().key("k").value("v").build().expect("tag"))
        .send()
        .await
        .expect("create");
    wait_active(&c, &t).await;
    c.update_time_to_live()
        .table_name(&t)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("exp")
                .build()
                .expect("ttl"),
        )
        .send()
        .await
        .expect("ttl");
    let gone = create_hash_table(&c, "restart_gone").await;
    for i in 0..20 {
        c.put_item()
            .table_name(&t)
            .item("pk", s("p"))
            .item("sk", n(&i.to_string()))
            .send()
            .await
            .expect("put");
    }
    c.put_item()
        .table_name(&t)
        .item("pk", s("p"))
        .item("sk", n("0"))
        .item("changed", AttributeValue::Bool(true))
        .send()
        .await
        .expect("overwrite");
    c.delete_item()
        .table_name(&t)
        .key("pk", s("p"))
        .key("sk", n("1"))
        .send()
        .await
        .expect("delete");
    delete_table(&c, &gone).await;

    env.kill9_and_restart();
    let c = env.client.clone();
    let d = c
        .describe_table()
        .table_name(&t)
        .send()
        .await
        .expect("describe");
    let desc = d.table().expect("table");
    let pt = desc.provisioned_throughput().expect("throughput");
    assert_eq!(
        (pt.read_capacity_units(), pt.write_capacity_units()),
        (Some(3), Some(4))
    );
    assert_eq!(desc.deletion_protection_enabled(), Some(true));
    assert_eq!(desc.key_schema().len(), 2);
    let ttl = c
        .describe_time_to_live()
        .table_name(&t)
        .send()
        .await
        .expect("ttl");
    let ttl = ttl.time_to_live_description().expect("ttl description");
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
    assert_eq!(ttl.attribute_name(), Some("exp"));
    let arn = desc.table_arn().expect("arn").to_string();
    let tags = c
        .list_tags_of_resource()
        .resource_arn(&arn)
        .send()
        .await
        .expect("tags");
    assert_eq!(tags.tags().len(), 1);
    assert_eq!(tags.tags()[0].key(), "k");

    let q = c
        .query()
        .table_name(&t)
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", s("p"))
        .consistent_read(true)
        .send()
        .await
        .expect("query");
    let sks: Vec<&str> = q.items().iter().map(|i| get_n(i, "sk")).collect();
    let expected: Vec<String> = (0..20).filter(|i| *i != 1).map(|i| i.to_string()).collect();
    assert_eq!(sks, expected);
    assert!(q.items()[0].contains_key("changed"));
    let e = api_err(c.describe_table().table_name(&gone).send().await);
    assert_eq!(e.code, "ResourceNotFoundException");

    c.update_table()
        .table_name(&t)
        .deletion_protection_enabled(false)
        .send()
        .await
        .expect("unprotect");
    wait_active(&c, &t).await;
    delete_table(&c, &t).await;
}
