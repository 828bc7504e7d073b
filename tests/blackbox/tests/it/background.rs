//! Background tasks under supervision (`partita_supervise`): a panic
//! injected into each task through a failpoint is counted in
//! `partita_background_task_failures_total{task}`, the task restarts and
//! its work resumes; a task that keeps failing makes `/readyz` answer 503
//! naming the task and its error while the API keeps serving; a failure of
//! the writer, which cannot be restarted in place, ends the process with a
//! clear error.
//!
//! Failpoints (`PARTITA_FAILPOINTS`) exist in debug builds only: these
//! tests start the debug binary the workspace builds, and skip when
//! `PARTITA_BIN` names another one or `DYNAMODB_ENDPOINT` an outside server.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{ScalarAttributeType as T, StreamViewType, TimeToLiveSpecification};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use partita_blackbox_tests::*;

use crate::capacity_limits::parse_exposition;
use crate::indexes::{
    create_action, create_indexed, eventually, gsi, keys_only, put, query_index, scan_all,
    wait_index_active,
};
use crate::streams::{now_secs, stream_table, streams_client};

const FAILURES: &str = "partita_background_task_failures_total";

pub(crate) fn skip(test: &str) -> bool {
    if skip_without_own_server(test) {
        return true;
    }
    if cluster_partitions().is_some() && test_is_serve_only(test) {
        eprintln!(
            "skipping {test} in cluster mode: it injects failures into the standalone store's \
             threads; cluster nodes run no such threads (dataplane/server/tests/cluster/supervision.rs \
             covers the Raft core, the leader's housekeeping and the gateway's reloader)"
        );
        return true;
    }
    if std::env::var_os("PARTITA_BIN").is_some() {
        eprintln!("skipping {test}: PARTITA_BIN may be a release build, which has no failpoints");
        return true;
    }
    false
}

/// The tests of this module, which exercise `partita serve`'s own threads.
fn test_is_serve_only(test: &str) -> bool {
    [
        "each_background_task_restarts_after_a_panic_and_its_work_resumes",
        "a_task_that_keeps_failing_makes_the_process_not_ready",
        "a_writer_failure_ends_the_process_with_a_clear_error",
    ]
    .contains(&test)
}

/// The failures counted for `task` in a strict parse of `/metrics`.
pub(crate) fn failures(admin: u16, task: &str) -> f64 {
    let (status, body) = admin_get(admin, "/metrics");
    assert_eq!(status, 200);
    parse_exposition(&body)
        .expect("a valid exposition")
        .sum(FAILURES, &[("task", task)])
}

/// Waits until `task` has failed exactly `count` times.
pub(crate) async fn wait_failures(admin: u16, task: &str, count: f64) {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = failures(admin, task);
        if seen == count {
            return;
        }
        assert!(
            seen < count && Instant::now() < end,
            "{task}: {seen} failures, waiting for {count}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn each_background_task_restarts_after_a_panic_and_its_work_resumes() {
    if skip("each_background_task_restarts_after_a_panic_and_its_work_resumes") {
        return;
    }
    let admin = free_loopback_port().to_string();
    let server = Server::start_with(
        &[
            "--admin-port",
            &admin,
            "--ttl-sweep-interval",
            "1s",
            "--stream-retention",
            "2s",
        ],
        &[(
            "PARTITA_FAILPOINTS",
            "gsi_delivery:1,gsi_backfill:1,ttl_sweep:1,stream_trim:1",
        )],
    );
    let admin: u16 = admin.parse().unwrap();
    let c = &client_for(&server.endpoint());

    // Global index delivery: the first round panics; the restarted task
    // delivers the write anyway.
    let t = unique_name("bg_gsi");
    create_indexed(
        c,
        &t,
        false,
        &[("g", T::S)],
        vec![],
        vec![gsi("by_g", "g", None, keys_only())],
    )
    .await;
    put(c, &t, item([("pk", s("first")), ("g", s("x"))])).await;
    eventually("the first write reaches by_g", || async {
        let got = query_index(c, &t, "by_g", "g", "x").await;
        if got.len() == 1 {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    })
    .await;
    assert_eq!(failures(admin, "gsi_delivery"), 1.0);

    // Backfill: its first chunk panics; the restarted backfill completes.
    let b = unique_name("bg_backfill");
    create_indexed(c, &b, false, &[], vec![], vec![]).await;
    for i in 0..20 {
        put(c, &b, item([("pk", s(&format!("p{i}"))), ("h", s("v"))])).await;
    }
    c.update_table()
        .table_name(&b)
        .attribute_definitions(attr_def("h", T::S))
        .global_secondary_index_updates(create_action("by_h", "h", keys_only()))
        .send()
        .await
        .expect("add an index");
    wait_index_active(c, &b, "by_h", Duration::from_secs(60)).await;
    assert_eq!(scan_all(c, &b, Some("by_h"), None, None).await.len(), 20);
    assert_eq!(failures(admin, "gsi_backfill"), 1.0);

    // Housekeeping: its first change-log pass and its first TTL sweep
    // panic (within a second or so of the start); what follows is the
    // restarted task's work.
    wait_failures(admin, "housekeeping", 2.0).await;
    let ttl = unique_name("bg_ttl");
    create_indexed(c, &ttl, false, &[], vec![], vec![]).await;
    c.update_time_to_live()
        .table_name(&ttl)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("exp")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("enable TTL");
    put(
        c,
        &ttl,
        item([("pk", s("old")), ("exp", n(&(now_secs() - 60).to_string()))]),
    )
    .await;
    put(
        c,
        &ttl,
        item([
            ("pk", s("young")),
            ("exp", n(&(now_secs() + 3600).to_string())),
        ]),
    )
    .await;
    eventually("the expired item is deleted", || async {
        let got = scan_all(c, &ttl, None, None, None).await;
        if got.len() == 1 {
            Ok(got)
        } else {
            Err(format!("{} items", got.len()))
        }
    })
    .await;

    let streams = streams_client(&server.endpoint());
    let (st, arn) = stream_table(c, "bg_stream", StreamViewType::KeysOnly).await;
    put(c, &st, item([("pk", s("early"))])).await;
    let shard = streams
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .unwrap()
        .stream_description()
        .unwrap()
        .shards()[0]
        .shard_id()
        .unwrap()
        .to_string();
    let early = streams
        .get_shard_iterator()
        .stream_arn(&arn)
        .shard_id(&shard)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator()
        .unwrap()
        .to_string();
    eventually("the stream is trimmed past the retention", || async {
        match streams.get_records().shard_iterator(&early).send().await {
            Ok(page) => Err(format!("{} records", page.records().len())),
            Err(e) => match api_err::<(), _, _>(Err(e)) {
                e if e.code == "TrimmedDataAccessException" => Ok(()),
                other => Err(format!("{other:?}")),
            },
        }
    })
    .await;

    assert_eq!(failures(admin, "housekeeping"), 2.0);
    assert_eq!(failures(admin, "writer"), 0.0);
    let (status, body) = admin_get(admin, "/readyz");
    assert_eq!((status, body.trim()), (200, "ready"));
}

#[tokio::test]
async fn a_task_that_keeps_failing_makes_the_process_not_ready() {
    if skip("a_task_that_keeps_failing_makes_the_process_not_ready") {
        return;
    }
    let admin = free_loopback_port().to_string();
    let server = Server::start_with(
        &["--admin-port", &admin],
        &[("PARTITA_FAILPOINTS", "gsi_delivery")],
    );
    let admin: u16 = admin.parse().unwrap();
    let c = &client_for(&server.endpoint());
    assert_eq!(admin_get(admin, "/readyz"), (200, "ready\n".to_string()));
    let t = unique_name("bg_failing");
    create_indexed(
        c,
        &t,
        false,
        &[("g", T::S)],
        vec![],
        vec![gsi("by_g", "g", None, keys_only())],
    )
    .await;
    put(c, &t, item([("pk", s("a")), ("g", s("x"))])).await;
    let body = eventually("/readyz turns not ready", || async {
        match admin_get(admin, "/readyz") {
            (503, body) => Ok(body),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(body.starts_with("not ready\n"), "{body}");
    assert!(
        body.contains("background task gsi_delivery failed")
            && body.contains("panicked: failpoint gsi_delivery"),
        "{body}"
    );
    assert!(failures(admin, "gsi_delivery") >= 3.0);
    // The process is alive and serves reads and writes of the table.
    assert_eq!(admin_get(admin, "/healthz"), (200, "ok\n".to_string()));
    put(c, &t, item([("pk", s("b")), ("g", s("y"))])).await;
    assert_eq!(scan_all(c, &t, None, None, None).await.len(), 2);
}

#[tokio::test]
async fn a_writer_failure_ends_the_process_with_a_clear_error() {
    if skip("a_writer_failure_ends_the_process_with_a_clear_error") {
        return;
    }
    let mut server = Server::start_with(
        &["--admin-port", "0"],
        &[("PARTITA_FAILPOINTS", "writer:1")],
    );
    let c = &client_for(&server.endpoint());
    // The first write group reaches the failpoint: the request fails and
    // the process exits instead of leaving every later write hanging.
    let t = unique_name("bg_writer");
    let created = c
        .create_table()
        .table_name(&t)
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .attribute_definitions(attr_def("pk", T::S))
        .key_schema(key_elem("pk", aws_sdk_dynamodb::types::KeyType::Hash))
        .send()
        .await;
    let first_write = match created {
        Ok(_) => c
            .put_item()
            .table_name(&t)
            .item("pk", s("a"))
            .send()
            .await
            .is_ok(),
        Err(_) => false,
    };
    assert!(!first_write, "no write may succeed through a failed writer");
    let status = server
        .wait_exit(Duration::from_secs(30))
        .expect("the process exits");
    assert_eq!(status.code(), Some(70), "{status}");
    let log = server.log_text();
    assert!(
        log.contains("background task writer failed and cannot be restarted in place: panicked: failpoint writer; exiting"),
        "{log}"
    );
}
