//! DynamoDB Streams and TTL through real clients: `aws-sdk-dynamodb` for
//! the table and `aws-sdk-dynamodbstreams` for the stream, on the same
//! endpoint.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{
    AttributeValue, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodbstreams::types::{
    AttributeValue as StreamValue, OperationType, Record, ShardIteratorType,
};
use partita_blackbox_tests::*;

pub(crate) type Streams = aws_sdk_dynamodbstreams::Client;

/// A DynamoDB Streams client for `endpoint`, configured like the harness's
/// DynamoDB client (static credentials, no retries, plain HTTP).
pub(crate) fn streams_client(endpoint: &str) -> Streams {
    use aws_sdk_dynamodbstreams::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_dynamodbstreams::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(
            ACCESS_KEY,
            "partita-test-secret",
            None,
            None,
            "partita-blackbox",
        ))
        .endpoint_url(endpoint)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(aws_sdk_dynamodbstreams::config::retry::RetryConfig::disabled())
        .build();
    Streams::from_conf(config)
}

/// Creates a `pk`-keyed table with a stream of `view` and returns (name,
/// stream ARN).
pub(crate) async fn stream_table(
    client: &Client,
    prefix: &str,
    view: StreamViewType,
) -> (String, String) {
    let name = unique_name(prefix);
    client
        .create_table()
        .table_name(&name)
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .attribute_definitions(attr_def("pk", ScalarAttributeType::S))
        .key_schema(key_elem("pk", aws_sdk_dynamodb::types::KeyType::Hash))
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(view)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    wait_active(client, &name).await;
    let arn = latest_stream_arn(client, &name).await;
    (name, arn)
}

async fn latest_stream_arn(client: &Client, table: &str) -> String {
    client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .table()
        .and_then(|t| t.latest_stream_arn())
        .unwrap()
        .to_string()
}

/// Reads every record of every shard from TRIM_HORIZON, shard by shard.
/// A page may be empty while records follow (as in DynamoDB, e.g. over a
/// trimmed range), so a shard is read until three pages in a row are empty.
pub(crate) async fn read_all(streams: &Streams, arn: &str) -> Vec<Record> {
    let desc = streams
        .describe_stream()
        .stream_arn(arn)
        .send()
        .await
        .unwrap();
    let mut out = Vec::new();
    for shard in desc.stream_description().unwrap().shards() {
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(arn)
            .shard_id(shard.shard_id().unwrap())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator()
            .map(str::to_string);
        let mut empty = 0;
        while let Some(it) = iterator {
            let page = streams
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .unwrap();
            if page.records().is_empty() {
                empty += 1;
                if empty == 3 {
                    break;
                }
            } else {
                empty = 0;
            }
            out.extend(page.records().iter().cloned());
            iterator = page.next_shard_iterator().map(str::to_string);
        }
    }
    out
}

/// A TRIM_HORIZON iterator of `shard`.
async fn horizon_iterator(streams: &Streams, arn: &str, shard: &str) -> String {
    streams
        .get_shard_iterator()
        .stream_arn(arn)
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator()
        .unwrap()
        .to_string()
}

pub(crate) fn pk_of(r: &Record) -> String {
    match r
        .dynamodb()
        .and_then(|d| d.keys())
        .and_then(|k| k.get("pk"))
    {
        Some(StreamValue::S(s)) => s.clone(),
        other => panic!("record without an S pk: {other:?}"),
    }
}

pub(crate) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn every_view_type_shapes_records_as_the_sdk_parses_them() {
    let env = TestEnv::new();
    let streams = streams_client(env.endpoint());
    let c = &env.client;
    for view in [
        StreamViewType::KeysOnly,
        StreamViewType::NewImage,
        StreamViewType::OldImage,
        StreamViewType::NewAndOldImages,
    ] {
        let (table, arn) = stream_table(c, "sview", view.clone()).await;
        let before = now_secs();
        let v1 = item([("pk", s("a")), ("v", n("1"))]);
        c.put_item()
            .table_name(&table)
            .set_item(Some(v1.clone()))
            .send()
            .await
            .unwrap();
        // Identical put: DynamoDB records nothing.
        c.put_item()
            .table_name(&table)
            .set_item(Some(v1))
            .send()
            .await
            .unwrap();
        c.update_item()
            .table_name(&table)
            .key("pk", s("a"))
            .update_expression("SET v = :v")
            .expression_attribute_values(":v", n("2"))
            .send()
            .await
            .unwrap();
        c.delete_item()
            .table_name(&table)
            .key("pk", s("a"))
            .send()
            .await
            .unwrap();
        let records = read_all(&streams, &arn).await;
        let events: Vec<_> = records.iter().map(|r| r.event_name().cloned()).collect();
        assert_eq!(
            events,
            [
                Some(OperationType::Insert),
                Some(OperationType::Modify),
                Some(OperationType::Remove)
            ],
            "{view:?}"
        );
        let mut last_seq = String::new();
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.event_source(), Some("aws:dynamodb"));
            assert_eq!(r.event_version(), Some("1.1"));
            // The table's region, as its stream ARN names it.
            assert_eq!(r.aws_region(), arn.split(':').nth(3));
            assert_eq!(r.event_id().map(str::len), Some(32));
            assert!(r.user_identity().is_none());
            let d = r.dynamodb().unwrap();
            assert_eq!(
                d.stream_view_type().map(|v| v.as_str()),
                Some(view.as_str())
            );
            assert_eq!(
                d.keys().unwrap().get("pk"),
                Some(&StreamValue::S("a".into()))
            );
            assert!(d.size_bytes().unwrap() > 0);
            let when = d.approximate_creation_date_time().unwrap().secs();
            assert!(when >= before - 1 && when <= now_secs() + 1, "{when}");
            let seq = d.sequence_number().unwrap().to_string();
            assert!(seq.len() >= 21 && seq > last_seq, "{seq} after {last_seq}");
            last_seq = seq;
            let value = |img: Option<&std::collections::HashMap<String, StreamValue>>| {
                img.and_then(|m| m.get("v")).cloned()
            };
            let (new, old) = (value(d.new_image()), value(d.old_image()));
            let keeps_new = matches!(
                view,
                StreamViewType::NewImage | StreamViewType::NewAndOldImages
            );
            let keeps_old = matches!(
                view,
                StreamViewType::OldImage | StreamViewType::NewAndOldImages
            );
            let want_new = [Some("1"), Some("2"), None][i].filter(|_| keeps_new);
            let want_old = [None, Some("1"), Some("2")][i].filter(|_| keeps_old);
            assert_eq!(
                new,
                want_new.map(|v| StreamValue::N(v.into())),
                "{view:?} {i}"
            );
            assert_eq!(
                old,
                want_old.map(|v| StreamValue::N(v.into())),
                "{view:?} {i}"
            );
        }
    }
}

#[tokio::test]
async fn records_of_one_key_arrive_in_write_order() {
    let env = TestEnv::new();
    let streams = streams_client(env.endpoint());
    let c = &env.client;
    let (table, arn) = stream_table(c, "sorder", StreamViewType::NewImage).await;
    for _ in 0..40 {
        c.update_item()
            .table_name(&table)
            .key("pk", s("counter"))
            .update_expression("ADD n :one")
            .expression_attribute_values(":one", n("1"))
            .send()
            .await
            .unwrap();
    }
    let records = read_all(&streams, &arn).await;
    let values: Vec<_> = records
        .iter()
        .map(|r| r.dynamodb().unwrap().new_image().unwrap()["n"].clone())
        .collect();
    let expected: Vec<_> = (1..=40).map(|i| StreamValue::N(i.to_string())).collect();
    assert_eq!(values, expected);
}

#[tokio::test]
async fn shard_iteration_continues_across_a_restart() {
    if skip_without_own_server("shard_iteration_continues_across_a_restart") {
        return;
    }
    let mut env = TestEnv::new();
    let (table, arn) = stream_table(&env.client, "srestart", StreamViewType::KeysOnly).await;
    for i in 0..5 {
        env.client
            .put_item()
            .table_name(&table)
            .item("pk", s(&format!("k{i}")))
            .send()
            .await
            .unwrap();
    }
    let streams = streams_client(env.endpoint());
    let desc = streams
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .unwrap();
    let shard = desc.stream_description().unwrap().shards()[0]
        .shard_id()
        .unwrap()
        .to_string();
    let it = horizon_iterator(&streams, &arn, &shard).await;
    let first = streams
        .get_records()
        .shard_iterator(it)
        .limit(3)
        .send()
        .await
        .unwrap();
    assert_eq!(first.records().len(), 3);
    let next = first.next_shard_iterator().unwrap().to_string();
    let last_seq = first.records()[2]
        .dynamodb()
        .unwrap()
        .sequence_number()
        .unwrap()
        .to_string();

    env.kill9_and_restart();
    env.client
        .put_item()
        .table_name(&table)
        .item("pk", s("after"))
        .send()
        .await
        .unwrap();
    let streams = streams_client(env.endpoint());
    // The iterator handed out before the restart still reads on.
    let rest = streams
        .get_records()
        .shard_iterator(next)
        .send()
        .await
        .unwrap();
    let keys: Vec<_> = rest.records().iter().map(pk_of).collect();
    // Everything the shard holds after the first three records: k3, k4 and
    // "after" on one partition; with several (cluster mode) the shard holds
    // the keys that hash to its partition.
    let whole = horizon_iterator(&streams, &arn, &shard).await;
    let all = streams
        .get_records()
        .shard_iterator(whole)
        .send()
        .await
        .unwrap();
    let all_keys: Vec<_> = all.records().iter().map(pk_of).collect();
    assert!(all_keys.len() >= 3, "{all_keys:?}");
    assert_eq!(keys, all_keys[3..]);
    if cluster_partitions().is_none() {
        assert_eq!(keys, ["k3", "k4", "after"]);
    }
    // So does a consumer that only checkpointed a sequence number.
    let it = streams
        .get_shard_iterator()
        .stream_arn(&arn)
        .shard_id(&shard)
        .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
        .sequence_number(&last_seq)
        .send()
        .await
        .unwrap()
        .shard_iterator()
        .unwrap()
        .to_string();
    let again = streams
        .get_records()
        .shard_iterator(it)
        .send()
        .await
        .unwrap();
    let again_keys: Vec<_> = again.records().iter().map(pk_of).collect();
    assert_eq!(again_keys, keys);
}

#[tokio::test]
async fn disabling_and_enabling_makes_a_new_stream_and_closes_the_old() {
    let env = TestEnv::new();
    let streams = streams_client(env.endpoint());
    let c = &env.client;
    let (table, old_arn) = stream_table(c, "sreenable", StreamViewType::KeysOnly).await;
    c.put_item()
        .table_name(&table)
        .item("pk", s("before"))
        .send()
        .await
        .unwrap();
    let spec = |enabled: bool| {
        let b = StreamSpecification::builder().stream_enabled(enabled);
        let b = if enabled {
            b.stream_view_type(StreamViewType::NewImage)
        } else {
            b
        };
        b.build().unwrap()
    };
    c.update_table()
        .table_name(&table)
        .stream_specification(spec(false))
        .send()
        .await
        .unwrap();
    wait_active(c, &table).await;
    c.put_item()
        .table_name(&table)
        .item("pk", s("unstreamed"))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    c.update_table()
        .table_name(&table)
        .stream_specification(spec(true))
        .send()
        .await
        .unwrap();
    wait_active(c, &table).await;
    c.put_item()
        .table_name(&table)
        .item("pk", s("after"))
        .send()
        .await
        .unwrap();
    let new_arn = latest_stream_arn(c, &table).await;
    assert_ne!(new_arn, old_arn);

    let old = streams
        .describe_stream()
        .stream_arn(&old_arn)
        .send()
        .await
        .unwrap();
    let old = old.stream_description().unwrap();
    assert_eq!(old.stream_status().map(|s| s.as_str()), Some("DISABLED"));
    assert!(!old.shards().is_empty());
    for shard in old.shards() {
        let range = shard.sequence_number_range().unwrap();
        assert!(range.ending_sequence_number().is_some(), "{shard:?}");
    }
    let new = streams
        .describe_stream()
        .stream_arn(&new_arn)
        .send()
        .await
        .unwrap();
    let new = new.stream_description().unwrap();
    assert_eq!(new.stream_status().map(|s| s.as_str()), Some("ENABLED"));
    assert_eq!(
        new.stream_view_type().map(|v| v.as_str()),
        Some("NEW_IMAGE")
    );
    assert_eq!(new.table_name(), Some(table.as_str()));
    assert!(new.shards().iter().all(|s| s
        .sequence_number_range()
        .unwrap()
        .ending_sequence_number()
        .is_none()));

    let old_keys: Vec<_> = read_all(&streams, &old_arn)
        .await
        .iter()
        .map(pk_of)
        .collect();
    assert_eq!(old_keys, ["before"]);
    let new_keys: Vec<_> = read_all(&streams, &new_arn)
        .await
        .iter()
        .map(pk_of)
        .collect();
    assert_eq!(new_keys, ["after"]);

    let listed = streams
        .list_streams()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let mut arns: Vec<_> = listed
        .streams()
        .iter()
        .map(|s| s.stream_arn().unwrap().to_string())
        .collect();
    arns.sort();
    let mut want = vec![old_arn.clone(), new_arn.clone()];
    want.sort();
    assert_eq!(arns, want);
    // Paging by one.
    let first = streams
        .list_streams()
        .table_name(&table)
        .limit(1)
        .send()
        .await
        .unwrap();
    assert_eq!(first.streams().len(), 1);
    let start = first.last_evaluated_stream_arn().unwrap();
    let second = streams
        .list_streams()
        .table_name(&table)
        .exclusive_start_stream_arn(start)
        .send()
        .await
        .unwrap();
    assert_eq!(second.streams().len(), 1);
    assert!(second.last_evaluated_stream_arn().is_none());
}

#[tokio::test]
async fn records_past_the_retention_are_trimmed() {
    if skip_without_own_server("records_past_the_retention_are_trimmed") {
        return;
    }
    let server = Server::start_with(&["--stream-retention", "2s"], &[]);
    let client = client_for(&server.endpoint());
    let streams = streams_client(&server.endpoint());
    let (table, arn) = stream_table(&client, "strim", StreamViewType::KeysOnly).await;
    for i in 0..3 {
        client
            .put_item()
            .table_name(&table)
            .item("pk", s(&format!("old{i}")))
            .send()
            .await
            .unwrap();
    }
    // A TRIM_HORIZON iterator of every shard holding one of those records.
    let desc = streams
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .unwrap();
    let mut early = Vec::new();
    for shard in desc.stream_description().unwrap().shards() {
        let iterator = horizon_iterator(&streams, &arn, shard.shard_id().unwrap()).await;
        let page = streams
            .get_records()
            .shard_iterator(&iterator)
            .send()
            .await
            .unwrap();
        if !page.records().is_empty() {
            early.push(iterator);
        }
    }
    assert!(!early.is_empty(), "no shard holds the records");
    // Past the retention every shard is trimmed: its early iterator is
    // refused (polled: each partition trims on its own schedule).
    let deadline = Instant::now() + Duration::from_secs(60);
    for iterator in &early {
        loop {
            match streams.get_records().shard_iterator(iterator).send().await {
                Ok(page) => assert!(
                    Instant::now() < deadline,
                    "not trimmed within 60 s: {} records",
                    page.records().len()
                ),
                Err(e) => {
                    let err = api_err::<(), _, _>(Err(e));
                    assert_eq!(err.code, "TrimmedDataAccessException", "{err:?}");
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    client
        .put_item()
        .table_name(&table)
        .item("pk", s("new"))
        .send()
        .await
        .unwrap();
    // Only the new record is left (read well within its own retention),
    // in whichever shard (partition) holds it.
    let keys: Vec<_> = read_all(&streams, &arn).await.iter().map(pk_of).collect();
    assert_eq!(keys, ["new"]);
}

#[tokio::test]
async fn ttl_expiry_removes_items_with_service_stream_records() {
    if skip_without_own_server("ttl_expiry_removes_items_with_service_stream_records") {
        return;
    }
    let server = Server::start_with(&["--ttl-sweep-interval", "1s"], &[]);
    let client = client_for(&server.endpoint());
    let streams = streams_client(&server.endpoint());
    let (table, arn) = stream_table(&client, "sttl", StreamViewType::NewAndOldImages).await;
    client
        .update_time_to_live()
        .table_name(&table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("exp")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let now = now_secs();
    let rows: [(&str, Option<AttributeValue>); 4] = [
        ("expired", Some(n(&(now - 60).to_string()))),
        ("future", Some(n(&(now + 3600).to_string()))),
        ("string", Some(s(&(now - 60).to_string()))),
        ("missing", None),
    ];
    for (pk, exp) in &rows {
        let mut req = client.put_item().table_name(&table).item("pk", s(pk));
        if let Some(exp) = exp {
            req = req.item("exp", exp.clone());
        }
        req.send().await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = client
            .get_item()
            .table_name(&table)
            .key("pk", s("expired"))
            .send()
            .await
            .unwrap();
        if got.item().is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the expired item was not deleted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for pk in ["future", "string", "missing"] {
        let got = client
            .get_item()
            .table_name(&table)
            .key("pk", s(pk))
            .send()
            .await
            .unwrap();
        assert!(got.item().is_some(), "{pk} must not expire");
    }
    let records = read_all(&streams, &arn).await;
    let removes: Vec<_> = records
        .iter()
        .filter(|r| r.event_name() == Some(&OperationType::Remove))
        .collect();
    assert_eq!(removes.len(), 1);
    let remove = removes[0];
    assert_eq!(pk_of(remove), "expired");
    let identity = remove.user_identity().expect("userIdentity");
    assert_eq!(identity.r#type(), Some("Service"));
    assert_eq!(identity.principal_id(), Some("dynamodb.amazonaws.com"));
    assert!(remove.dynamodb().unwrap().old_image().is_some());
    assert!(records
        .iter()
        .filter(|r| r.event_name() != Some(&OperationType::Remove))
        .all(|r| r.user_identity().is_none()));
}

#[tokio::test]
async fn streams_errors_have_dynamodb_types() {
    let env = TestEnv::new();
    let streams = streams_client(env.endpoint());
    let (_, arn) = stream_table(&env.client, "serr", StreamViewType::KeysOnly).await;
    let missing = format!("{}-nope", arn);
    let err = api_err(streams.describe_stream().stream_arn(&missing).send().await);
    assert_eq!(err.code, "ResourceNotFoundException", "{err:?}");
    let err = api_err(
        streams
            .get_records()
            .shard_iterator("not-an-iterator")
            .send()
            .await,
    );
    assert_eq!(err.code, "ValidationException", "{err:?}");
    let desc = streams
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .unwrap();
    let shard = desc.stream_description().unwrap().shards()[0]
        .shard_id()
        .unwrap()
        .to_string();
    let err = api_err(
        streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(&shard)
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .send()
            .await,
    );
    assert_eq!(err.code, "ValidationException", "{err:?}");
    let err = api_err(
        streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id("shardId-00000000000000000000-00000000")
            .shard_iterator_type(ShardIteratorType::Latest)
            .send()
            .await,
    );
    assert_eq!(err.code, "ResourceNotFoundException", "{err:?}");
}
