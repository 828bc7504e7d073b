//! Provisioned and on-demand capacity limits, throttling, and the
//! Prometheus metrics of the admin port.
//!
//! These tests start their own `partita serve` with the hidden
//! `--capacity-clock-scale S` flag (the capacity clock runs S times faster,
//! so a table of 10 WCU admits 10·S write units per real second and banks
//! burst credit S times faster) and `--admin-port` on a free port. They
//! skip themselves against an external endpoint or a dev-cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use partita_blackbox_tests::aws_sdk_dynamodb::config::retry::RetryConfig;
use partita_blackbox_tests::aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use partita_blackbox_tests::aws_sdk_dynamodb::types::{
    BillingMode, GlobalSecondaryIndex, OnDemandThroughput, Projection, ProjectionType,
    ProvisionedThroughput, ReturnConsumedCapacity, ScalarAttributeType,
};
use partita_blackbox_tests::aws_sdk_dynamodb::Client;
use partita_blackbox_tests::*;

/// A server of our own with capacity settings, and its admin port.
struct Env {
    server: Server,
    admin_port: u16,
    client: Client,
}

impl Env {
    /// None (the test skips) against an external endpoint or a cluster.
    fn start(test: &str, clock_scale: f64, extra: &[&str]) -> Option<Env> {
        if skip_without_own_server(test)
            || std::env::var("PARTITA_BLACKBOX_CLUSTER").is_ok_and(|v| !v.is_empty())
        {
            return None;
        }
        let admin_port = free_loopback_port();
        let admin = admin_port.to_string();
        let scale = clock_scale.to_string();
        let mut args = vec![
            "--admin-port",
            admin.as_str(),
            "--capacity-clock-scale",
            scale.as_str(),
        ];
        args.extend_from_slice(extra);
        let server = Server::start_with(&args, &[]);
        let client = client_for(&server.endpoint());
        Some(Env {
            server,
            admin_port,
            client,
        })
    }

    fn scrape(&self) -> Scrape {
        let text = http_get(self.admin_port, "/metrics");
        parse_exposition(&text).unwrap_or_else(|e| panic!("bad exposition: {e}\n{text}"))
    }
}

async fn table_arn(c: &Client, table: &str) -> String {
    let d = c
        .describe_table()
        .table_name(table)
        .send()
        .await
        .expect("describe");
    d.table()
        .and_then(|t| t.table_arn())
        .expect("TableArn")
        .to_string()
}

/// A client with the SDK's default (standard) retry configuration.
fn retrying_client(endpoint: &str) -> Client {
    let base = client_for(endpoint);
    let config = base
        .config()
        .to_builder()
        .retry_config(RetryConfig::standard())
        .build();
    Client::from_conf(config)
}

async fn create_provisioned(c: &Client, prefix: &str, rcu: i64, wcu: i64) -> String {
    let name = unique_name(prefix);
    c.create_table()
        .table_name(&name)
        .attribute_definitions(attr_def("pk", ScalarAttributeType::S))
        .key_schema(key_elem(
            "pk",
            partita_blackbox_tests::aws_sdk_dynamodb::types::KeyType::Hash,
        ))
        .billing_mode(BillingMode::Provisioned)
        .provisioned_throughput(throughput(rcu, wcu))
        .send()
        .await
        .expect("create provisioned table");
    name
}

fn throughput(rcu: i64, wcu: i64) -> ProvisionedThroughput {
    ProvisionedThroughput::builder()
        .read_capacity_units(rcu)
        .write_capacity_units(wcu)
        .build()
        .expect("throughput")
}

/// An item of exactly `bytes` bytes (DynamoDB size): `pk` + `data`.
fn item_of(pk: &str, bytes: usize) -> Item {
    let overhead = 2 + pk.len() + 4;
    item([("pk", s(pk)), ("data", s(&"x".repeat(bytes - overhead)))])
}

/// Writes `bytes`-sized items with `workers` concurrent writers for `for_`
/// and returns (successful writes, throttled writes). Any error other than
/// ProvisionedThroughputExceededException fails the test.
async fn hammer(
    c: &Client,
    table: &str,
    bytes: usize,
    workers: usize,
    for_: Duration,
) -> (u64, u64) {
    let ok = Arc::new(AtomicU64::new(0));
    let throttled = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + for_;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (c, table, ok, throttled) =
            (c.clone(), table.to_string(), ok.clone(), throttled.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while Instant::now() < deadline {
                i += 1;
                let r = c
                    .put_item()
                    .table_name(&table)
                    .set_item(Some(item_of(&format!("w{w}_{i}"), bytes)))
                    .send()
                    .await;
                match r {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        let code = e.code().map(str::to_string);
                        assert_eq!(
                            code.as_deref(),
                            Some("ProvisionedThroughputExceededException"),
                            "{e:?}"
                        );
                        throttled.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer task");
    }
    (
        ok.load(Ordering::Relaxed),
        throttled.load(Ordering::Relaxed),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_wcu_sustain_their_rate_plus_banked_burst_then_throttle_and_recover() {
    const SCALE: f64 = 10.0;
    let Some(env) = Env::start("capacity_rate", SCALE, &[]) else {
        return;
    };
    let c = &env.client;
    let t = create_provisioned(c, "cap_rate", 10, 10).await;
    // A new table's partition starts with its full bank: 300 s x 10 WCU =
    // 3000 units. A first write spends 64; two idle real seconds (20
    // capacity seconds, 200 units) refill it only up to the 3000 cap.
    c.put_item()
        .table_name(&t)
        .set_item(Some(item_of("first", 64 * 1024)))
        .send()
        .await
        .expect("first write");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let (ok, throttled) = hammer(c, &t, 64 * 1024, 4, Duration::from_millis(1500)).await;
    let elapsed = started.elapsed().as_secs_f64();
    // 64 WCU per write: the 3000 banked, plus 10 WCU x SCALE per real
    // second while writing; each of the 4 writers may overshoot by one
    // write (admission needs positive credit, the charge may go below).
    let expected = 3000.0 + 10.0 * SCALE * elapsed;
    let consumed = ok as f64 * 64.0;
    assert!(
        throttled > 0,
        "never throttled: {ok} writes in {elapsed:.2}s"
    );
    assert!(
        consumed >= expected * 0.85 && consumed <= expected * 1.05 + 4.0 * 64.0,
        "consumed {consumed} WCU, expected about {expected:.0} ({ok} ok, {throttled} throttled, {elapsed:.2}s)"
    );

    // Out of credit now: the exact error, its reasons, and nothing applied.
    let probe = "throttled_probe";
    let mut seen = None;
    for _ in 0..50 {
        let r = c
            .put_item()
            .table_name(&t)
            .set_item(Some(item_of(probe, 4096)))
            .send()
            .await;
        if let Err(SdkError::ServiceError(e)) = r {
            seen = Some(e.into_err());
            break;
        }
        c.delete_item()
            .table_name(&t)
            .key("pk", s(probe))
            .send()
            .await
            .ok();
    }
    let err = seen.expect("a throttled write");
    use partita_blackbox_tests::aws_sdk_dynamodb::operation::put_item::PutItemError;
    let PutItemError::ProvisionedThroughputExceededException(e) = &err else {
        panic!("expected ProvisionedThroughputExceededException, got {err:?}");
    };
    assert_eq!(
        e.message(),
        Some("The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.")
    );
    let reasons: Vec<(Option<&str>, Option<&str>)> = e
        .throttling_reasons()
        .iter()
        .map(|r| (r.reason(), r.resource()))
        .collect();
    let arn = table_arn(c, &t).await;
    assert_eq!(
        reasons,
        vec![(
            Some("TableWriteProvisionedThroughputExceeded"),
            Some(arn.as_str())
        )]
    );
    let got = c
        .get_item()
        .table_name(&t)
        .key("pk", s(probe))
        .consistent_read(true)
        .send()
        .await
        .expect("read back");
    assert!(got.item().is_none(), "a throttled write was applied");

    // After a window of 1 real second (10 capacity seconds), writes pass.
    tokio::time::sleep(Duration::from_secs(1)).await;
    c.put_item()
        .table_name(&t)
        .set_item(Some(item_of("after_window", 4096)))
        .send()
        .await
        .expect("write after the window");

    // Metrics saw the throttles with their reason.
    let m = env.scrape();
    let throttles = m.sum("partita_throttled_requests_total", &[("table", t.as_str())]);
    assert!(throttles >= throttled as f64, "{throttles} < {throttled}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_requests_apply_nothing_and_sdk_retries_succeed() {
    let Some(env) = Env::start("capacity_retry", 1.0, &[]) else {
        return;
    };
    let c = &env.client;
    let t = create_provisioned(c, "cap_retry", 100, 1).await;
    // The bank of 1 WCU is 300 units: a 300 KB write spends it, a second
    // one (admitted on the credit earned meanwhile) leaves 300 s of debt.
    for k in ["bank", "big"] {
        c.put_item()
            .table_name(&t)
            .set_item(Some(item_of(k, 300 * 1024)))
            .send()
            .await
            .expect("write into debt");
    }
    // No-retry client: every kind of write is refused, none applied.
    let put = c
        .put_item()
        .table_name(&t)
        .set_item(Some(item_of("p", 100)))
        .send()
        .await;
    let update = c
        .update_item()
        .table_name(&t)
        .key("pk", s("big"))
        .update_expression("SET extra = :v")
        .expression_attribute_values(":v", s("v"))
        .send()
        .await;
    let delete = c
        .delete_item()
        .table_name(&t)
        .key("pk", s("big"))
        .send()
        .await;
    for code in [
        api_err(put).code,
        api_err(update).code,
        api_err(delete).code,
    ] {
        assert_eq!(code, "ProvisionedThroughputExceededException");
    }
    let got = c
        .get_item()
        .table_name(&t)
        .key("pk", s("p"))
        .consistent_read(true)
        .send()
        .await
        .expect("read");
    assert!(got.item().is_none(), "throttled put applied");
    let big = c
        .get_item()
        .table_name(&t)
        .key("pk", s("big"))
        .consistent_read(true)
        .send()
        .await
        .expect("read");
    let big = big.item().expect("throttled delete applied");
    assert!(!big.contains_key("extra"), "throttled update applied");
    let throttles = || {
        env.scrape()
            .sum("partita_throttled_requests_total", &[("table", t.as_str())])
    };
    assert_eq!(throttles(), 3.0);

    // The SDK's default retry configuration (standard mode: 3 attempts,
    // jittered exponential backoff from 1 s): its first attempt is
    // throttled (seen in the metrics); once the throughput is raised the
    // SDK's retry succeeds.
    let retrying = retrying_client(&env.server.endpoint());
    let table = t.clone();
    let put = tokio::spawn(async move {
        retrying
            .put_item()
            .table_name(&table)
            .set_item(Some(item_of("retried", 100)))
            .send()
            .await
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while throttles() < 4.0 {
        assert!(
            Instant::now() < deadline,
            "the SDK's first attempt never came"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    c.update_table()
        .table_name(&t)
        .provisioned_throughput(throughput(100, 100_000))
        .send()
        .await
        .expect("raise WCU");
    put.await
        .expect("task")
        .expect("the SDK retried the throttled write to success");
    let got = c
        .get_item()
        .table_name(&t)
        .key("pk", s("retried"))
        .consistent_read(true)
        .send()
        .await
        .expect("read");
    assert!(got.item().is_some());
}

/// Puts 4 KB items until one is throttled (true) or `tries` passed.
async fn throttled_within(c: &Client, table: &str, tries: usize) -> bool {
    for i in 0..tries {
        let r = c
            .put_item()
            .table_name(table)
            .set_item(Some(item_of(&format!("probe{i}"), 4096)))
            .send()
            .await;
        if let Err(e) = r {
            assert_eq!(
                e.code(),
                Some("ProvisionedThroughputExceededException"),
                "{e:?}"
            );
            return true;
        }
    }
    false
}

#[tokio::test]
async fn update_table_changes_throughput_live_and_switches_billing_mode() {
    let Some(env) = Env::start("capacity_update", 1.0, &[]) else {
        return;
    };
    let c = &env.client;
    let t = create_provisioned(c, "cap_update", 5, 1).await;
    // Spend the 300-unit bank of 1 WCU: throttled within a few writes.
    c.put_item()
        .table_name(&t)
        .set_item(Some(item_of("bank", 300 * 1024)))
        .send()
        .await
        .expect("spend the bank");
    assert!(throttled_within(c, &t, 5).await, "1 WCU never throttled");
    // Raised to 2000 WCU: the debt is repaid in milliseconds.
    c.update_table()
        .table_name(&t)
        .provisioned_throughput(throughput(5, 2000))
        .send()
        .await
        .expect("raise WCU");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!throttled_within(c, &t, 20).await, "throttled at 2000 WCU");
    // Lowered to 1 WCU: the credit is clamped to the new 300-unit bank.
    c.update_table()
        .table_name(&t)
        .provisioned_throughput(throughput(5, 1))
        .send()
        .await
        .expect("lower WCU");
    c.put_item()
        .table_name(&t)
        .set_item(Some(item_of("bank2", 300 * 1024)))
        .send()
        .await
        .expect("spend the clamped bank");
    assert!(
        throttled_within(c, &t, 5).await,
        "1 WCU again never throttled"
    );
    // On-demand: no limit at once.
    c.update_table()
        .table_name(&t)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("switch to on-demand");
    assert!(!throttled_within(c, &t, 30).await, "throttled on demand");
}

#[tokio::test]
async fn on_demand_maximum_request_units_are_enforced() {
    let Some(env) = Env::start("capacity_ondemand", 1.0, &[]) else {
        return;
    };
    let c = &env.client;
    let t = unique_name("cap_od");
    c.create_table()
        .table_name(&t)
        .attribute_definitions(attr_def("pk", ScalarAttributeType::S))
        .key_schema(key_elem(
            "pk",
            partita_blackbox_tests::aws_sdk_dynamodb::types::KeyType::Hash,
        ))
        .billing_mode(BillingMode::PayPerRequest)
        .on_demand_throughput(
            OnDemandThroughput::builder()
                .max_write_request_units(5)
                .build(),
        )
        .send()
        .await
        .expect("create on-demand table with a maximum");
    let d = c
        .describe_table()
        .table_name(&t)
        .send()
        .await
        .expect("describe");
    let od = d
        .table()
        .and_then(|t| t.on_demand_throughput())
        .expect("OnDemandThroughput");
    assert_eq!(od.max_write_request_units(), Some(5));
    assert_eq!(od.max_read_request_units(), Some(-1));
    // One second of 5 units, no burst: two 4 KB writes (4 WCU each) pass,
    // the second leaving a debt of 3 units (0.6 s); the third is refused.
    for i in 0..2 {
        c.put_item()
            .table_name(&t)
            .set_item(Some(item_of(&format!("k{i}"), 4096)))
            .send()
            .await
            .expect("within the maximum");
    }
    let r = c
        .put_item()
        .table_name(&t)
        .set_item(Some(item_of("over", 4096)))
        .send()
        .await;
    let e = api_err(r);
    assert_eq!(
        (e.code.as_str(), e.message.as_str()),
        (
            "ThrottlingException",
            "Throughput exceeds the maximum OnDemandThroughput configured on table or index"
        )
    );
    // Reads are not limited.
    for _ in 0..20 {
        c.get_item()
            .table_name(&t)
            .key("pk", s("k0"))
            .send()
            .await
            .expect("reads have no maximum");
    }
    let m = env.scrape();
    assert_eq!(
        m.sum(
            "partita_throttled_requests_total",
            &[
                ("table", t.as_str()),
                ("reason", "TableWriteMaxOnDemandThroughputExceeded")
            ]
        ),
        1.0
    );
    // Removing the maximum (-1) lifts the limit at once.
    c.update_table()
        .table_name(&t)
        .on_demand_throughput(
            OnDemandThroughput::builder()
                .max_write_request_units(-1)
                .build(),
        )
        .send()
        .await
        .expect("remove the maximum");
    for i in 0..20 {
        c.put_item()
            .table_name(&t)
            .set_item(Some(item_of(&format!("u{i}"), 1000)))
            .send()
            .await
            .expect("no maximum any more");
    }
}

#[tokio::test]
async fn control_plane_is_rate_limited_with_throttling_exception() {
    let Some(env) = Env::start("capacity_control", 1.0, &["--control-plane-rate", "1"]) else {
        return;
    };
    // 1 per second with 10 seconds of burst: the 12th call in a row fails.
    let mut codes = Vec::new();
    for _ in 0..12 {
        match env.client.list_tables().send().await {
            Ok(_) => codes.push("ok".to_string()),
            Err(e) => codes.push(api_err::<(), _, _>(Err(e)).code),
        }
    }
    assert!(codes[..10].iter().all(|c| c == "ok"), "{codes:?}");
    assert_eq!(
        codes.last().map(String::as_str),
        Some("ThrottlingException")
    );
    // Data-plane calls are not affected.
    let r = env
        .client
        .get_item()
        .table_name("missing")
        .key("pk", s("k"))
        .send()
        .await;
    assert_eq!(api_err(r).code, "ResourceNotFoundException");
}

/// The GSI-amplified consumption a response reports and the metrics count,
/// for calls that asked for it and calls that did not.
#[tokio::test]
async fn consumed_capacity_in_responses_and_metrics_match_the_arithmetic() {
    let Some(env) = Env::start("capacity_metrics", 1.0, &[]) else {
        return;
    };
    let c = &env.client;
    let t = unique_name("cap_metrics");
    c.create_table()
        .table_name(&t)
        .attribute_definitions(attr_def("pk", ScalarAttributeType::S))
        .attribute_definitions(attr_def("g", ScalarAttributeType::S))
        .key_schema(key_elem(
            "pk",
            partita_blackbox_tests::aws_sdk_dynamodb::types::KeyType::Hash,
        ))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("by_g")
                .key_schema(key_elem(
                    "g",
                    partita_blackbox_tests::aws_sdk_dynamodb::types::KeyType::Hash,
                ))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .expect("gsi"),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create");
    // 2000-byte item with g: 2 WCU on the table, 1 on the keys-only index.
    let mut it = item_of("a", 2000 - 3);
    it.insert("g".into(), s("x"));
    let put = c
        .put_item()
        .table_name(&t)
        .set_item(Some(it.clone()))
        .return_consumed_capacity(ReturnConsumedCapacity::Indexes)
        .send()
        .await
        .expect("put");
    let cc = put.consumed_capacity().expect("ConsumedCapacity");
    assert_eq!(cc.capacity_units(), Some(3.0));
    assert_eq!(cc.table().and_then(|t| t.capacity_units()), Some(2.0));
    let gsi = cc
        .global_secondary_indexes()
        .expect("GlobalSecondaryIndexes");
    assert_eq!(gsi.get("by_g").and_then(|c| c.capacity_units()), Some(1.0));
    // TOTAL adds the index too; a write that leaves the index entry as it
    // is (keys-only, same g) costs the index nothing.
    let mut it2 = it.clone();
    it2.insert("other".into(), s("y"));
    let put = c
        .put_item()
        .table_name(&t)
        .set_item(Some(it2))
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .await
        .expect("put 2");
    assert_eq!(
        put.consumed_capacity().and_then(|c| c.capacity_units()),
        Some(2.0)
    );
    // Not asked for: not in the response, but counted: a change of g
    // (delete + put on the index: 2) and the table write (2).
    let mut it3 = it.clone();
    it3.insert("g".into(), s("z"));
    let put = c
        .put_item()
        .table_name(&t)
        .set_item(Some(it3))
        .send()
        .await
        .expect("put 3");
    assert!(put.consumed_capacity().is_none());
    // Reads: 0.5 (eventual, 1 unit of 4 KB) + 1 (consistent).
    c.get_item()
        .table_name(&t)
        .key("pk", s("a"))
        .send()
        .await
        .expect("get");
    c.get_item()
        .table_name(&t)
        .key("pk", s("a"))
        .consistent_read(true)
        .send()
        .await
        .expect("get consistent");
    // A GSI query: 0.5 on the index, reported as the index's.
    let q = c
        .query()
        .table_name(&t)
        .index_name("by_g")
        .key_condition_expression("g = :g")
        .expression_attribute_values(":g", s("z"))
        .return_consumed_capacity(ReturnConsumedCapacity::Indexes)
        .send()
        .await
        .expect("query");
    let qc = q.consumed_capacity().expect("query capacity");
    assert_eq!(qc.capacity_units(), Some(0.5));
    assert_eq!(
        qc.global_secondary_indexes()
            .and_then(|g| g.get("by_g"))
            .and_then(|c| c.capacity_units()),
        Some(0.5)
    );
    // A transaction: 2x.
    let tx = c
        .transact_write_items()
        .transact_items(
            partita_blackbox_tests::aws_sdk_dynamodb::types::TransactWriteItem::builder()
                .put(
                    partita_blackbox_tests::aws_sdk_dynamodb::types::Put::builder()
                        .table_name(&t)
                        .set_item(Some(item_of("tx", 500)))
                        .build()
                        .expect("put"),
                )
                .build(),
        )
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .await
        .expect("transaction");
    assert_eq!(
        tx.consumed_capacity()
            .first()
            .and_then(|c| c.capacity_units()),
        Some(2.0)
    );

    let m = env.scrape();
    let table = t.as_str();
    assert_eq!(
        m.sum(
            "partita_consumed_capacity_units_total",
            &[("table", table), ("index", ""), ("kind", "write")]
        ),
        2.0 + 2.0 + 2.0 + 2.0
    );
    assert_eq!(
        m.sum(
            "partita_consumed_capacity_units_total",
            &[("table", table), ("index", "by_g"), ("kind", "write")]
        ),
        1.0 + 0.0 + 2.0
    );
    assert_eq!(
        m.sum(
            "partita_consumed_capacity_units_total",
            &[("table", table), ("index", ""), ("kind", "read")]
        ),
        1.5
    );
    assert_eq!(
        m.sum(
            "partita_consumed_capacity_units_total",
            &[("table", table), ("index", "by_g"), ("kind", "read")]
        ),
        0.5
    );
    assert_eq!(
        m.sum(
            "partita_requests_total",
            &[
                ("operation", "PutItem"),
                ("table", table),
                ("outcome", "success")
            ]
        ),
        3.0
    );
}

/// Every series the issue names exists and moves as requests are made; the
/// Grafana dashboard only queries series this scrape saw.
#[tokio::test]
async fn metrics_scrape_moves_and_the_dashboard_queries_seen_series() {
    let Some(env) = Env::start("capacity_scrape", 1.0, &[]) else {
        return;
    };
    assert_eq!(http_get(env.admin_port, "/healthz").trim(), "ok");
    assert_eq!(http_get(env.admin_port, "/readyz").trim(), "ready");
    let c = &env.client;
    let t = create_provisioned(c, "cap_scrape", 5, 1).await;
    let before = env.scrape();
    for i in 0..3 {
        // The first write spends the 300-unit bank of 1 WCU: throttles.
        let size = if i == 0 { 301 * 1024 } else { 4096 };
        let _ = c
            .put_item()
            .table_name(&t)
            .set_item(Some(item_of(&format!("k{i}"), size)))
            .send()
            .await;
    }
    let _ = c.get_item().table_name(&t).key("pk", s("k0")).send().await;
    let bad = c.get_item().table_name(&t).send().await; // no key: ValidationException
    assert_eq!(api_err(bad).code, "ValidationException");
    let (streamed, arn) = create_stream_table(&env, "cap_scrape_stream").await;
    c.put_item()
        .table_name(&streamed)
        .item("pk", s("k"))
        .send()
        .await
        .expect("put");
    let endpoint = env.server.endpoint();
    let (read, _) = read_stream_shards(&endpoint, trim_horizon_iterators(&endpoint, &arn));
    assert_eq!(read, 1);
    let after = env.scrape();

    let table = t.as_str();
    let moved = |name: &str, labels: &[(&str, &str)]| {
        let (b, a) = (before.sum(name, labels), after.sum(name, labels));
        assert!(a > b, "{name}{labels:?} did not move: {b} -> {a}");
    };
    moved(
        "partita_requests_total",
        &[("operation", "PutItem"), ("table", table)],
    );
    moved(
        "partita_request_duration_seconds_count",
        &[
            ("operation", "PutItem"),
            ("table", table),
            ("outcome", "success"),
        ],
    );
    moved(
        "partita_request_duration_seconds_bucket",
        &[("operation", "GetItem"), ("le", "+Inf")],
    );
    moved(
        "partita_consumed_capacity_units_total",
        &[("table", table), ("kind", "write")],
    );
    moved(
        "partita_throttled_requests_total",
        &[
            ("table", table),
            ("reason", "TableWriteProvisionedThroughputExceeded"),
        ],
    );
    moved(
        "partita_errors_total",
        &[("exception", "ProvisionedThroughputExceededException")],
    );
    moved(
        "partita_errors_total",
        &[("exception", "ValidationException")],
    );
    moved("partita_table_items", &[("table", table)]);
    moved("partita_table_size_bytes", &[("table", table)]);
    moved("partita_writer_commands_total", &[]);
    moved("partita_writer_commits_total", &[]);
    assert_eq!(
        after.sum(
            "partita_provisioned_capacity_units",
            &[("table", table), ("index", ""), ("kind", "write")]
        ),
        1.0
    );
    assert_eq!(
        after.sum(
            "partita_provisioned_capacity_units",
            &[("table", table), ("index", ""), ("kind", "read")]
        ),
        5.0
    );
    moved(
        "partita_stream_records_read_total",
        &[("table", streamed.as_str())],
    );
    for name in [
        "partita_stream_iterator_age_seconds",
        "partita_gsi_pending_writes",
        "partita_storage_engine",
        "partita_storage_compactions_total",
        "partita_data_dir_bytes",
        "partita_tables",
        "partita_writer_groups_total",
    ] {
        assert!(after.names().contains(name), "{name} missing");
    }
    assert!(after.sum("partita_data_dir_bytes", &[]) > 0.0);
    assert!(after.sum("partita_storage_engine", &[("stat", "disk_bytes")]) > 0.0);

    // The dashboards the chart ships: every data-plane partita_ series they
    // query was in this scrape (partita_operator_* series come from the
    // operator's own /metrics).
    let seen = after.names();
    for (file, min_queries) in [("partita-dataplane.json", 8), ("partita-overview.json", 3)] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../charts/partita/dashboards")
            .join(file);
        let text = std::fs::read_to_string(&path).expect("read the dashboard");
        let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
        let mut exprs = Vec::new();
        collect_exprs(&dashboard, &mut exprs);
        assert!(
            exprs.len() >= min_queries,
            "{file}: too few queries: {exprs:?}"
        );
        let mut referenced = BTreeSet::new();
        for e in &exprs {
            for name in series_names(e) {
                if !name.starts_with("partita_operator_") {
                    referenced.insert(name);
                }
            }
        }
        assert!(!referenced.is_empty(), "{file}");
        for name in &referenced {
            assert!(
                seen.contains(name.as_str()),
                "{file} queries {name}, not in the scrape"
            );
        }
    }
}

/// Local secondary indexes: writes cost the same index units as global
/// ones (a changed index key is a delete and a put), charged to the table
/// (its metrics count them) and named under `LocalSecondaryIndexes` with
/// INDEXES; a Query of a local index reports its units as the index's.
/// The numbers are DynamoDB Local's for the same requests.
#[tokio::test]
async fn local_index_units_are_the_tables_and_broken_out_with_indexes() {
    let Some(env) = Env::start("capacity_lsi", 1.0, &[]) else {
        return;
    };
    let endpoint = env.server.endpoint();
    let call = |op: &str, body: serde_json::Value| {
        let target = format!("DynamoDB_20120810.{op}");
        let r = raw_post(&endpoint, Some(&target), body.to_string().as_bytes());
        assert_eq!(r.status, 200, "{op}: {}", String::from_utf8_lossy(&r.body));
        r.json()
    };
    let t = unique_name("cap_lsi");
    let key = |name: &str, kind: &str| serde_json::json!({"AttributeName": name, "KeyType": kind});
    let attr = |name: &str| serde_json::json!({"AttributeName": name, "AttributeType": "S"});
    call(
        "CreateTable",
        serde_json::json!({
            "TableName": t,
            "AttributeDefinitions": [attr("pk"), attr("sk"), attr("l"), attr("g")],
            "KeySchema": [key("pk", "HASH"), key("sk", "RANGE")],
            "BillingMode": "PAY_PER_REQUEST",
            "LocalSecondaryIndexes": [{"IndexName": "byL",
                "KeySchema": [key("pk", "HASH"), key("l", "RANGE")],
                "Projection": {"ProjectionType": "ALL"}}],
            "GlobalSecondaryIndexes": [{"IndexName": "byG",
                "KeySchema": [key("g", "HASH")],
                "Projection": {"ProjectionType": "ALL"}}]
        }),
    );
    wait_active(&env.client, &t).await;
    let s_ = |v: &str| serde_json::json!({"S": v});
    let units = |cc: &serde_json::Value, path: &[&str]| {
        let mut v = cc;
        for p in path {
            v = &v[*p];
        }
        v["CapacityUnits"].as_f64()
    };
    let put = |item: serde_json::Value| {
        call(
            "PutItem",
            serde_json::json!({"TableName": t, "Item": item, "ReturnConsumedCapacity": "INDEXES"}),
        )["ConsumedCapacity"]
            .clone()
    };
    // New item in both indexes: table 1, LSI 1, GSI 1.
    let cc = put(serde_json::json!({"pk": s_("a"), "sk": s_("1"), "l": s_("x"), "g": s_("y")}));
    assert_eq!(units(&cc, &[]), Some(3.0), "{cc}");
    assert_eq!(units(&cc, &["Table"]), Some(1.0), "{cc}");
    assert_eq!(
        units(&cc, &["LocalSecondaryIndexes", "byL"]),
        Some(1.0),
        "{cc}"
    );
    assert_eq!(
        units(&cc, &["GlobalSecondaryIndexes", "byG"]),
        Some(1.0),
        "{cc}"
    );
    // The LSI key changes (delete + put: 2); the GSI entry only changes a
    // projected attribute (1).
    let cc = put(serde_json::json!({"pk": s_("a"), "sk": s_("1"), "l": s_("x2"), "g": s_("y")}));
    assert_eq!(units(&cc, &[]), Some(4.0), "{cc}");
    assert_eq!(
        units(&cc, &["LocalSecondaryIndexes", "byL"]),
        Some(2.0),
        "{cc}"
    );
    // In neither index: the table only, and no index members.
    let cc = put(serde_json::json!({"pk": s_("a"), "sk": s_("2")}));
    assert_eq!(units(&cc, &[]), Some(1.0), "{cc}");
    assert!(cc.get("LocalSecondaryIndexes").is_none(), "{cc}");
    // TOTAL mode counts the local index too.
    let cc = call(
        "PutItem",
        serde_json::json!({"TableName": t, "ReturnConsumedCapacity": "TOTAL",
            "Item": {"pk": s_("b"), "sk": s_("1"), "l": s_("x")}}),
    )["ConsumedCapacity"]
        .clone();
    assert_eq!(units(&cc, &[]), Some(2.0), "{cc}");
    assert!(cc.get("Table").is_none(), "{cc}");

    let query = |index: &str, key: &str, value: &str| {
        call(
            "Query",
            serde_json::json!({"TableName": t, "IndexName": index,
                "KeyConditionExpression": format!("{key} = :v"),
                "ExpressionAttributeValues": {":v": s_(value)},
                "ReturnConsumedCapacity": "INDEXES"}),
        )["ConsumedCapacity"]
            .clone()
    };
    let cc = query("byL", "pk", "a");
    assert_eq!(units(&cc, &[]), Some(0.5), "{cc}");
    assert_eq!(units(&cc, &["Table"]), Some(0.0), "{cc}");
    assert_eq!(
        units(&cc, &["LocalSecondaryIndexes", "byL"]),
        Some(0.5),
        "{cc}"
    );
    assert!(cc.get("GlobalSecondaryIndexes").is_none(), "{cc}");

    let m = env.scrape();
    let table = t.as_str();
    assert_eq!(
        m.sum(
            "partita_consumed_capacity_units_total",
            &[("table", table), ("index", ""), ("kind", "write")]
        ),
        (1.0 + 1.0) + (1.0 + 2.0) + 1.0 + (1.0 + 1.0),
        "table writes include the local index's"
    );
    assert_eq!(
        m.sum(
            "partita_consumed_capacity_units_total",
            &[("table", table), ("index", "byG"), ("kind", "write")]
        ),
        2.0
    );
    assert_eq!(
        m.sum(
            "partita_consumed_capacity_units_total",
            &[("table", table), ("index", "byL")]
        ),
        0.0,
        "a local index has no series of its own"
    );
}

/// Stream lag: a GetRecords that returns a record written a while ago
/// reports that record's age; a reader caught up at the tip reports zero.
#[tokio::test]
async fn stream_iterator_age_shows_how_far_readers_lag() {
    let Some(env) = Env::start("stream_lag", 1.0, &[]) else {
        return;
    };
    let (t, arn) = create_stream_table(&env, "stream_lag").await;
    env.client
        .put_item()
        .table_name(&t)
        .item("pk", s("lagging"))
        .send()
        .await
        .expect("put");
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let endpoint = env.server.endpoint();
    let (read, next) = read_stream_shards(&endpoint, trim_horizon_iterators(&endpoint, &arn));
    assert_eq!(read, 1, "one record written");
    let m = env.scrape();
    let age = m.sum("partita_stream_iterator_age_seconds", &[("table", &t)]);
    assert!(
        (1.4..60.0).contains(&age),
        "the record read was written 1.5 s earlier: age {age}"
    );
    assert_eq!(
        m.sum("partita_stream_records_read_total", &[("table", &t)]),
        1.0
    );

    // Caught up: the next read returns nothing and the lag is zero.
    let (read, _) = read_stream_shards(&endpoint, next);
    assert_eq!(read, 0);
    let m = env.scrape();
    assert_eq!(
        m.sum("partita_stream_iterator_age_seconds", &[("table", &t)]),
        0.0
    );
    assert_eq!(
        m.sum("partita_stream_records_read_total", &[("table", &t)]),
        1.0
    );
}

/// One DynamoDB Streams call (raw JSON), which must succeed.
fn stream_call(endpoint: &str, op: &str, body: serde_json::Value) -> serde_json::Value {
    let target = format!("DynamoDBStreams_20120810.{op}");
    let r = raw_post(endpoint, Some(&target), body.to_string().as_bytes());
    assert_eq!(r.status, 200, "{op}: {}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// Creates a `pk`-keyed on-demand table with a NEW_IMAGE stream; returns
/// (table, stream ARN).
async fn create_stream_table(env: &Env, prefix: &str) -> (String, String) {
    let t = unique_name(prefix);
    let body = serde_json::json!({
        "TableName": t,
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "BillingMode": "PAY_PER_REQUEST",
        "StreamSpecification": {"StreamEnabled": true, "StreamViewType": "NEW_IMAGE"}
    });
    let r = raw_post(
        &env.server.endpoint(),
        Some("DynamoDB_20120810.CreateTable"),
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let arn = r.json()["TableDescription"]["LatestStreamArn"]
        .as_str()
        .expect("stream arn")
        .to_string();
    wait_active(&env.client, &t).await;
    (t, arn)
}

/// A TRIM_HORIZON iterator for every shard of the stream.
fn trim_horizon_iterators(endpoint: &str, arn: &str) -> Vec<serde_json::Value> {
    let desc = stream_call(
        endpoint,
        "DescribeStream",
        serde_json::json!({"StreamArn": arn}),
    );
    let shards = desc["StreamDescription"]["Shards"]
        .as_array()
        .expect("shards");
    shards
        .iter()
        .map(|shard| {
            let body = serde_json::json!({
                "StreamArn": arn,
                "ShardId": shard["ShardId"],
                "ShardIteratorType": "TRIM_HORIZON"
            });
            stream_call(endpoint, "GetShardIterator", body)["ShardIterator"].clone()
        })
        .collect()
}

/// One GetRecords per iterator; returns the records read and the next
/// iterators of the shards that returned records.
fn read_stream_shards(
    endpoint: &str,
    iterators: Vec<serde_json::Value>,
) -> (usize, Vec<serde_json::Value>) {
    let mut read = 0;
    let mut next = Vec::new();
    for it in iterators {
        let page = stream_call(
            endpoint,
            "GetRecords",
            serde_json::json!({"ShardIterator": it}),
        );
        let n = page["Records"].as_array().map_or(0, Vec::len);
        read += n;
        if n > 0 {
            next.push(page["NextShardIterator"].clone());
        }
    }
    (read, next)
}

fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                if k == "expr" {
                    if let Some(s) = v.as_str() {
                        out.push(s.to_string());
                    }
                } else {
                    collect_exprs(v, out);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

/// The `partita_` metric names a PromQL expression mentions.
fn series_names(expr: &str) -> Vec<String> {
    let bytes = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(pos) = expr[i..].find("partita_") {
        let start = i + pos;
        let boundary = start == 0 || {
            let c = bytes[start - 1];
            !(c.is_ascii_alphanumeric() || c == b'_')
        };
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if boundary {
            out.push(expr[start..end].to_string());
        }
        i = end;
    }
    out
}

// ---- a strict Prometheus text-format (0.0.4) parser ----

/// One scrape: every sample by name, with its labels.
pub(crate) struct Scrape {
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Scrape {
    /// Sum of the samples of `name` whose labels include `labels`.
    pub(crate) fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str).unwrap_or("") == *v)
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    /// Every series name with samples, plus the family names of histograms.
    pub(crate) fn names(&self) -> BTreeSet<&str> {
        let mut names = BTreeSet::new();
        for (n, _, _) in &self.samples {
            names.insert(n.as_str());
            for suffix in ["_bucket", "_sum", "_count"] {
                if let Some(base) = n.strip_suffix(suffix) {
                    names.insert(base);
                }
            }
        }
        names
    }
}

/// Parses the text exposition format strictly: HELP/TYPE comments before
/// their samples, valid names, quoted and escaped label values, float
/// values, one TYPE per family, no duplicate series.
pub(crate) fn parse_exposition(text: &str) -> Result<Scrape, String> {
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Vec::new();
    let mut seen = BTreeSet::new();
    for (no, line) in text.lines().enumerate() {
        let no = no + 1;
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let keyword = parts.next().unwrap_or("");
            let name = parts.next().unwrap_or("");
            let value = parts.next().unwrap_or("");
            match keyword {
                "HELP" if !valid_name(name) => {
                    return Err(format!("line {no}: bad HELP name {name:?}"));
                }
                "TYPE" => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&value) {
                        return Err(format!("line {no}: bad TYPE {value:?}"));
                    }
                    if types.insert(name.to_string(), value.to_string()).is_some() {
                        return Err(format!("line {no}: second TYPE for {name}"));
                    }
                }
                _ => {}
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or(format!("line {no}: no value"))?;
        let name = &line[..name_end];
        if !valid_name(name) {
            return Err(format!("line {no}: bad metric name {name:?}"));
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|b| types.get(*b).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        if !types.contains_key(family) {
            return Err(format!("line {no}: sample of {name} before its TYPE"));
        }
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if let Some(after) = rest.strip_prefix('{') {
            let mut chars = after.char_indices().peekable();
            loop {
                let (start, c) = chars
                    .next()
                    .ok_or(format!("line {no}: unterminated labels"))?;
                if c == '}' {
                    rest = &after[start + 1..];
                    break;
                }
                let eq = after[start..]
                    .find('=')
                    .map(|p| start + p)
                    .ok_or(format!("line {no}: label without ="))?;
                let label = &after[start..eq];
                if !valid_name(label) || label.contains(':') {
                    return Err(format!("line {no}: bad label name {label:?}"));
                }
                while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                    chars.next();
                }
                if chars.next().map(|(_, c)| c) != Some('"') {
                    return Err(format!("line {no}: label value not quoted"));
                }
                let mut value = String::new();
                loop {
                    let (_, c) = chars
                        .next()
                        .ok_or(format!("line {no}: unterminated value"))?;
                    match c {
                        '"' => break,
                        '\\' => match chars.next().map(|(_, c)| c) {
                            Some('\\') => value.push('\\'),
                            Some('"') => value.push('"'),
                            Some('n') => value.push('\n'),
                            other => return Err(format!("line {no}: bad escape {other:?}")),
                        },
                        c => value.push(c),
                    }
                }
                if labels.insert(label.to_string(), value).is_some() {
                    return Err(format!("line {no}: duplicate label {label}"));
                }
                match chars.peek().map(|(_, c)| *c) {
                    Some(',') => {
                        chars.next();
                    }
                    Some('}') => {}
                    other => return Err(format!("line {no}: unexpected {other:?} after label")),
                }
            }
        }
        let value_text = rest
            .strip_prefix(' ')
            .ok_or(format!("line {no}: no space before value"))?;
        let value_text = value_text.split(' ').next().unwrap_or("");
        let value = match value_text {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v
                .parse::<f64>()
                .map_err(|_| format!("line {no}: bad value {v:?}"))?,
        };
        let key = format!("{name}{labels:?}");
        if !seen.insert(key) {
            return Err(format!("line {no}: duplicate series"));
        }
        samples.push((name.to_string(), labels, value));
    }
    Ok(Scrape { samples })
}

/// A plain HTTP GET on the admin port; returns the body (panics on a
/// non-200 status).
pub(crate) fn http_get(port: u16, path: &str) -> String {
    let (status, body) = admin_get(port, path);
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

#[test]
fn the_exposition_parser_is_strict() {
    let ok = "# HELP partita_x x\n# TYPE partita_x counter\npartita_x{a=\"1\",b=\"q\\\"\"} 2\n";
    let s = parse_exposition(ok).expect("valid");
    assert_eq!(s.sum("partita_x", &[("a", "1")]), 2.0);
    assert_eq!(s.sum("partita_x", &[("b", "q\"")]), 2.0);
    for bad in [
        "partita_x 1\n",                                        // no TYPE
        "# TYPE partita_x counter\npartita_x{a=1} 2\n",         // unquoted
        "# TYPE partita_x counter\npartita_x{a=\"1\"}2\n",      // no space
        "# TYPE partita_x counter\npartita_x 1\npartita_x 1\n", // duplicate
        "# TYPE partita_x counter\npartita_x one\n",            // bad value
        "# TYPE partita_x counter\n# TYPE partita_x gauge\n",   // two TYPEs
    ] {
        assert!(parse_exposition(bad).is_err(), "accepted {bad:?}");
    }
    assert_eq!(
        series_names("sum(rate(partita_a_total[5m])) / xpartita_b + partita_c_bucket"),
        vec![
            "partita_a_total".to_string(),
            "partita_c_bucket".to_string()
        ]
    );
}

/// `--log-format json`: the lines a request logs carry its request id (the
/// one the client got in `x-amzn-requestid`), and item values are not
/// logged at info.
#[tokio::test]
async fn json_logs_carry_the_request_id_and_no_item_values() {
    use partita_blackbox_tests::aws_sdk_dynamodb::operation::RequestId;
    let Some(env) = Env::start("capacity_logs", 1.0, &["--log-format", "json"]) else {
        return;
    };
    let c = &env.client;
    let name = unique_name("cap_logs");
    let created = c
        .create_table()
        .table_name(&name)
        .attribute_definitions(attr_def("pk", ScalarAttributeType::S))
        .key_schema(key_elem(
            "pk",
            partita_blackbox_tests::aws_sdk_dynamodb::types::KeyType::Hash,
        ))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create");
    let request_id = created.request_id().expect("request id").to_string();
    c.put_item()
        .table_name(&name)
        .item("pk", s("k"))
        .item("secret", s("VALUE_THAT_MUST_NOT_BE_LOGGED"))
        .send()
        .await
        .expect("put");
    let log = env.server.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("table created") && l.contains(&name))
        .unwrap_or_else(|| panic!("no 'table created' line in:\n{log}"));
    let v: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    assert_eq!(v["span"]["request_id"], request_id.as_str(), "{line}");
    assert_eq!(v["span"]["operation"], "CreateTable", "{line}");
    assert!(!log.contains("VALUE_THAT_MUST_NOT_BE_LOGGED"));
}
