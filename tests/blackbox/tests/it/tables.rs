//! Control plane: CreateTable, DescribeTable, ListTables, UpdateTable,
//! DeleteTable, tags, TTL, DescribeLimits, DescribeEndpoints, table ARNs.

use std::time::{Duration, Instant};

use partita_blackbox_tests::aws_sdk_dynamodb::types::{
    BillingMode, KeyType, ProvisionedThroughput, ScalarAttributeType, StreamSpecification,
    StreamViewType, TableClass, TableStatus, Tag, TimeToLiveSpecification, TimeToLiveStatus,
};
use partita_blackbox_tests::aws_sdk_dynamodb::Client;
use partita_blackbox_tests::*;

fn throughput(r: i64, w: i64) -> ProvisionedThroughput {
    ProvisionedThroughput::builder()
        .read_capacity_units(r)
        .write_capacity_units(w)
        .build()
        .expect("throughput")
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build().expect("tag")
}

/// Asserts `arn` is `arn:aws:dynamodb:<region>:<12-digit account>:table/<name>`.
fn assert_table_arn(arn: &str, name: &str) {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    assert_eq!(parts.len(), 6, "arn {arn}");
    assert_eq!(&parts[..3], &["arn", "aws", "dynamodb"], "arn {arn}");
    assert!(
        !parts[3].is_empty()
            && parts[3]
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "region in {arn}"
    );
    assert!(
        parts[4].len() == 12 && parts[4].chars().all(|c| c.is_ascii_digit()),
        "account in {arn}"
    );
    assert_eq!(parts[5], format!("table/{name}"), "resource in {arn}");
}

/// Polls until DescribeTable says the table does not exist.
async fn wait_gone(client: &Client, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match client.describe_table().table_name(name).send().await {
            Err(e) => {
                let e = api_err::<(), _, _>(Err(e));
                assert_eq!(e.code, "ResourceNotFoundException");
                return;
            }
            Ok(_) => {
                assert!(
                    Instant::now() < deadline,
                    "table {name} still exists after 60 s"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test]
async fn create_table_records_every_setting() {
    let env = TestEnv::new();
    let c = &env.client;
    let name = unique_name("create_full");
    let out = c
        .create_table()
        .table_name(&name)
        .attribute_definitions(attr_def("pk", ScalarAttributeType::S))
        .attribute_definitions(attr_def("sk", ScalarAttributeType::N))
        .key_schema(key_elem("pk", KeyType::Hash))
        .key_schema(key_elem("sk", KeyType::Range))
        .billing_mode(BillingMode::Provisioned)
        .provisioned_throughput(throughput(5, 7))
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .expect("stream spec"),
        )
        .table_class(TableClass::StandardInfrequentAccess)
        .deletion_protection_enabled(true)
        .send()
        .await
        .expect("create table");
    let t = out.table_description().expect("table description");
    assert_eq!(t.table_name(), Some(name.as_str()));
    assert!(
        matches!(
            t.table_status(),
            Some(TableStatus::Creating | TableStatus::Active)
        ),
        "status {:?}",
        t.table_status()
    );
    wait_active(c, &name).await;

    let d = c
        .describe_table()
        .table_name(&name)
        .send()
        .await
        .expect("describe");
    let t = d.table().expect("table");
    assert_eq!(t.table_name(), Some(name.as_str()));
    assert_eq!(t.table_status(), Some(&TableStatus::Active));
    let ks: Vec<(String, KeyType)> = t
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name().to_string(), k.key_type().clone()))
        .collect();
    assert_eq!(
        ks,
        vec![
            ("pk".to_string(), KeyType::Hash),
            ("sk".to_string(), KeyType::Range)
        ]
    );
    let mut defs: Vec<(String, ScalarAttributeType)> = t
        .attribute_definitions()
        .iter()
        .map(|a| (a.attribute_name().to_string(), a.attribute_type().clone()))
        .collect();
    defs.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        defs,
        vec![
            ("pk".to_string(), ScalarAttributeType::S),
            ("sk".to_string(), ScalarAttributeType::N)
        ]
    );
    let pt = t.provisioned_throughput().expect("provisioned throughput");
    assert_eq!(pt.read_capacity_units(), Some(5));
    assert_eq!(pt.write_capacity_units(), Some(7));
    let ss = t
        .stream_specification()
        .expect("stream specification recorded");
    assert!(ss.stream_enabled());
    assert_eq!(
        ss.stream_view_type(),
        Some(&StreamViewType::NewAndOldImages)
    );
    assert_eq!(t.item_count(), Some(0));
    assert_eq!(t.table_size_bytes(), Some(0));
    assert!(t.creation_date_time().is_some());
    assert_eq!(t.deletion_protection_enabled(), Some(true));
    if !skip_on_dynamodb_local(
        "create_table_records_every_setting/table_class_and_arn",
        "DynamoDB Local reports no TableClassSummary and a ddblocal ARN",
    ) {
        assert_eq!(
            t.table_class_summary().and_then(|s| s.table_class()),
            Some(&TableClass::StandardInfrequentAccess)
        );
        assert_table_arn(t.table_arn().expect("arn"), &name);
        let stream_arn = t.latest_stream_arn().expect("stream arn");
        assert!(
            stream_arn.starts_with(&format!("{}/stream/", t.table_arn().unwrap_or_default())),
            "stream arn {stream_arn}"
        );
    }

    // Deletion protection is honoured, and UpdateTable can lift it.
    let err = api_err(c.delete_table().table_name(&name).send().await);
    assert_eq!(err.code, "ValidationException");
    assert_eq!(
        err.message,
        "Resource cannot be deleted as it is currently protected against deletion. Disable deletion protection first."
    );
    c.describe_table()
        .table_name(&name)
        .send()
        .await
        .expect("still there");
    c.update_table()
        .table_name(&name)
        .deletion_protection_enabled(false)
        .send()
        .await
        .expect("lift protection");
    wait_active(c, &name).await;
    let del = c
        .delete_table()
        .table_name(&name)
        .send()
        .await
        .expect("delete");
    assert_eq!(
        del.table_description().and_then(|t| t.table_name()),
        Some(name.as_str())
    );
    wait_gone(c, &name).await;
}

#[tokio::test]
async fn create_table_on_demand_reports_billing_mode() {
    let env = TestEnv::new();
    let c = &env.client;
    let name = create_hash_table(c, "ondemand").await;
    let d = c
        .describe_table()
        .table_name(&name)
        .send()
        .await
        .expect("describe");
    let t = d.table().expect("table");
    assert_eq!(
        t.billing_mode_summary().and_then(|b| b.billing_mode()),
        Some(&BillingMode::PayPerRequest)
    );
    let pt = t.provisioned_throughput().expect("throughput");
    assert_eq!(pt.read_capacity_units(), Some(0));
    assert_eq!(pt.write_capacity_units(), Some(0));
    assert_eq!(t.deletion_protection_enabled(), Some(false));
    delete_table(c, &name).await;
}

#[tokio::test]
async fn create_existing_table_is_resource_in_use() {
    let env = TestEnv::new();
    let c = &env.client;
    let name = create_hash_table(c, "dup").await;
    let r = c
        .create_table()
        .table_name(&name)
        .attribute_definitions(attr_def("pk", ScalarAttributeType::S))
        .key_schema(key_elem("pk", KeyType::Hash))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await;
    let e = api_err(r);
    assert_eq!(e.code, "ResourceInUseException");
    if !skip_on_dynamodb_local(
        "create_existing_table_is_resource_in_use/message",
        "DynamoDB Local says 'Cannot create preexisting table'",
    ) {
        assert_eq!(e.message, format!("Table already exists: {name}"));
    }
    delete_table(c, &name).await;
}

#[tokio::test]
async fn missing_table_is_resource_not_found() {
    let env = TestEnv::new();
    let c = &env.client;
    let name = unique_name("missing");
    let describe = api_err(c.describe_table().table_name(&name).send().await);
    let delete = api_err(c.delete_table().table_name(&name).send().await);
    for e in [&describe, &delete] {
        assert_eq!(e.code, "ResourceNotFoundException");
    }
    if !skip_on_dynamodb_local(
        "missing_table_is_resource_not_found/message",
        "DynamoDB Local says 'Cannot do operations on a non-existent table'",
    ) {
        let expected = format!("Requested resource not found: Table: {name} not found");
        assert_eq!(describe.message, expected);
        assert_eq!(delete.message, expected);
    }
}

#[tokio::test]
async fn list_tables_paginates_in_name_order() {
    let env = TestEnv::new();
    let c = &env.client;
    let base = unique_name("list");
    let mut mine = Vec::new();
    for suffix in ["c", "a", "e", "b", "d"] {
        let name = format!("{base}_{suffix}");
        create_table(c, &name, ("pk", ScalarAttributeType::S), None).await;
        mine.push(name);
    }
    mine.sort();

    // Page through everything with Limit 2.
    let mut all = Vec::new();
    let mut start: Option<String> = None;
    let mut pages = 0;
    loop {
        let out = c
            .list_tables()
            .limit(2)
            .set_exclusive_start_table_name(start.clone())
            .send()
            .await
            .expect("list tables");
        let names = out.table_names().to_vec();
        assert!(
            names.len() <= 2,
            "page of {} names with Limit 2",
            names.len()
        );
        pages += 1;
        all.extend(names.iter().cloned());
        match out.last_evaluated_table_name() {
            Some(last) => {
                assert_eq!(Some(last), names.last().map(String::as_str));
                start = Some(last.to_string());
            }
            None => break,
        }
        assert!(pages < 10_000, "ListTables never ends");
    }
    let mut sorted = all.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        all, sorted,
        "ListTables returns names in ascending order, no repeats"
    );
    let ours: Vec<String> = all
        .iter()
        .filter(|n| n.starts_with(&base))
        .cloned()
        .collect();
    assert_eq!(ours, mine);
    assert!(pages >= 3);

    // ExclusiveStartTableName starts strictly after the given name.
    let out = c
        .list_tables()
        .exclusive_start_table_name(&mine[1])
        .limit(3)
        .send()
        .await
        .expect("list from");
    assert_eq!(out.table_names(), &mine[2..5]);

    for name in &mine {
        delete_table(c, name).await;
    }
}

#[tokio::test]
async fn update_table_changes_billing_throughput_protection_and_streams() {
    let env = TestEnv::new();
    let c = &env.client;
    let name = unique_name("update");
    c.create_table()
        .table_name(&name)
        .attribute_definitions(attr_def("pk", ScalarAttributeType::S))
        .key_schema(key_elem("pk", KeyType::Hash))
        .billing_mode(BillingMode::Provisioned)
        .provisioned_throughput(throughput(1, 1))
        .send()
        .await
        .expect("create");
    wait_active(c, &name).await;

    let out = c
        .update_table()
        .table_name(&name)
        .provisioned_throughput(throughput(10, 20))
        .send()
        .await
        .expect("update throughput");
    assert_eq!(
        out.table_description().and_then(|t| t.table_name()),
        Some(name.as_str())
    );
    wait_active(c, &name).await;
    let t = c
        .describe_table()
        .table_name(&name)
        .send()
        .await
        .expect("describe");
    let pt = t
        .table()
        .and_then(|t| t.provisioned_throughput())
        .expect("throughput");
    assert_eq!(
        (pt.read_capacity_units(), pt.write_capacity_units()),
        (Some(10), Some(20))
    );

    c.update_table()
        .table_name(&name)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::KeysOnly)
                .build()
                .expect("spec"),
        )
        .send()
        .await
        .expect("enable stream");
    wait_active(c, &name).await;
    let t = c
        .describe_table()
        .table_name(&name)
        .send()
        .await
        .expect("describe");
    let ss = t
        .table()
        .and_then(|t| t.stream_specification())
        .expect("stream spec");
    assert!(ss.stream_enabled());
    assert_eq!(ss.stream_view_type(), Some(&StreamViewType::KeysOnly));

    c.update_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("switch to on-demand");
    wait_active(c, &name).await;
    c.update_table()
        .table_name(&name)
        .deletion_protection_enabled(true)
        .send()
        .await
        .expect("protect");
    wait_active(c, &name).await;
    let t = c
        .describe_table()
        .table_name(&name)
        .send()
        .await
        .expect("describe");
    let t = t.table().expect("table");
    assert_eq!(
        t.billing_mode_summary().and_then(|b| b.billing_mode()),
        Some(&BillingMode::PayPerRequest)
    );
    assert_eq!(t.deletion_protection_enabled(), Some(true));
    let e = api_err(c.delete_table().table_name(&name).send().await);
    assert_eq!(e.code, "ValidationException");

    c.update_table()
        .table_name(&name)
        .deletion_protection_enabled(false)
        .send()
        .await
        .expect("unprotect");
    wait_active(c, &name).await;
    delete_table(c, &name).await;
}

#[tokio::test]
async fn tags_can_be_added_listed_overwritten_and_removed() {
    if skip_on_dynamodb_local(
        "tags_can_be_added_listed_overwritten_and_removed",
        "DynamoDB Local: 'Tagging is not currently supported in DynamoDB Local.'",
    ) {
        return;
    }
    let env = TestEnv::new();
    let c = &env.client;
    let name = unique_name("tags");
    c.create_table()
        .table_name(&name)
        .attribute_definitions(attr_def("pk", ScalarAttributeType::S))
        .key_schema(key_elem("pk", KeyType::Hash))
        .billing_mode(BillingMode::PayPerRequest)
        .tags(tag("env", "dev"))
        .send()
        .await
        .expect("create with tags");
    wait_active(c, &name).await;
    let arn = c
        .describe_table()
        .table_name(&name)
        .send()
        .await
        .expect("describe")
        .table()
        .and_then(|t| t.table_arn())
        .expect("arn")
        .to_string();
    assert_table_arn(&arn, &name);

    let list = |c: Client, arn: String| async move {
        let out = c
            .list_tags_of_resource()
            .resource_arn(arn)
            .send()
            .await
            .expect("list tags");
        let mut tags: Vec<(String, String)> = out
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect();
        tags.sort();
        tags
    };
    assert_eq!(
        list(c.clone(), arn.clone()).await,
        vec![("env".into(), "dev".into())]
    );

    c.tag_resource()
        .resource_arn(&arn)
        .tags(tag("team", "storage"))
        .tags(tag("env", "prod"))
        .send()
        .await
        .expect("tag");
    assert_eq!(
        list(c.clone(), arn.clone()).await,
        vec![
            ("env".into(), "prod".into()),
            ("team".into(), "storage".into())
        ]
    );

    c.untag_resource()
        .resource_arn(&arn)
        .tag_keys("team")
        .send()
        .await
        .expect("untag");
    assert_eq!(
        list(c.clone(), arn.clone()).await,
        vec![("env".into(), "prod".into())]
    );

    let bad = api_err(
        c.tag_resource()
            .resource_arn("not-an-arn")
            .tags(tag("a", "b"))
            .send()
            .await,
    );
    assert_eq!(bad.code, "ValidationException");
    delete_table(c, &name).await;
}

#[tokio::test]
async fn time_to_live_settings_round_trip() {
    let env = TestEnv::new();
    let c = &env.client;
    let name = create_hash_table(c, "ttl").await;
    let d = c
        .describe_time_to_live()
        .table_name(&name)
        .send()
        .await
        .expect("describe ttl");
    assert_eq!(
        d.time_to_live_description()
            .and_then(|t| t.time_to_live_status()),
        Some(&TimeToLiveStatus::Disabled)
    );

    let out = c
        .update_time_to_live()
        .table_name(&name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("expiresAt")
                .build()
                .expect("spec"),
        )
        .send()
        .await
        .expect("enable ttl");
    let spec = out.time_to_live_specification().expect("spec echoed");
    assert!(spec.enabled());
    assert_eq!(spec.attribute_name(), "expiresAt");

    let d = c
        .describe_time_to_live()
        .table_name(&name)
        .send()
        .await
        .expect("describe ttl");
    let t = d.time_to_live_description().expect("description");
    assert!(
        matches!(
            t.time_to_live_status(),
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        ),
        "status {:?}",
        t.time_to_live_status()
    );
    assert_eq!(t.attribute_name(), Some("expiresAt"));

    let missing = api_err(
        c.update_time_to_live()
            .table_name(unique_name("ttl_missing"))
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("ttl")
                    .build()
                    .expect("spec"),
            )
            .send()
            .await,
    );
    assert_eq!(missing.code, "ResourceNotFoundException");
    delete_table(c, &name).await;
}

#[tokio::test]
async fn describe_limits_reports_account_and_table_maxima() {
    let env = TestEnv::new();
    let out = env
        .client
        .describe_limits()
        .send()
        .await
        .expect("describe limits");
    let acct_r = out.account_max_read_capacity_units().expect("account read");
    let acct_w = out
        .account_max_write_capacity_units()
        .expect("account write");
    let table_r = out.table_max_read_capacity_units().expect("table read");
    let table_w = out.table_max_write_capacity_units().expect("table write");
    assert!(table_r > 0 && table_w > 0);
    assert!(table_r <= acct_r && table_w <= acct_w);
}

#[tokio::test]
async fn describe_endpoints_returns_an_address_with_cache_period() {
    if skip_on_dynamodb_local(
        "describe_endpoints_returns_an_address_with_cache_period",
        "DynamoDB Local does not implement DescribeEndpoints",
    ) {
        return;
    }
    let env = TestEnv::new();
    let out = env
        .client
        .describe_endpoints()
        .send()
        .await
        .expect("describe endpoints");
    let eps = out.endpoints();
    assert!(!eps.is_empty());
    assert!(!eps[0].address().is_empty());
    assert_eq!(eps[0].cache_period_in_minutes(), 1440);
}

/// Table changes made at the same time are all kept: each one changes the
/// current definition, not the one it read before another change landed.
/// (Through a cluster, a GSI created while TTL was being enabled once
/// lost the TTL setting.)
#[tokio::test]
async fn concurrent_changes_to_one_table_are_all_kept() {
    use partita_blackbox_tests::aws_sdk_dynamodb::types::{
        CreateGlobalSecondaryIndexAction, GlobalSecondaryIndexUpdate, Projection, ProjectionType,
    };
    let env = TestEnv::new();
    let c = &env.client;
    let name = create_hash_table(c, "concurrent").await;
    let arn = c
        .describe_table()
        .table_name(&name)
        .send()
        .await
        .expect("describe")
        .table()
        .and_then(|t| t.table_arn())
        .expect("arn")
        .to_string();
    let mut tasks = tokio::task::JoinSet::new();
    const TAGS: usize = 12;
    for i in 0..TAGS {
        let (c, arn) = (c.clone(), arn.clone());
        tasks.spawn(async move {
            c.tag_resource()
                .resource_arn(&arn)
                .tags(tag(&format!("k{i}"), &format!("v{i}")))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("tag {i}: {e:?}"))
        });
    }
    let (c2, table) = (c.clone(), name.clone());
    tasks.spawn(async move {
        c2.update_time_to_live()
            .table_name(&table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("expires")
                    .build()
                    .expect("ttl"),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("ttl: {e:?}"))
    });
    let (c3, table) = (c.clone(), name.clone());
    tasks.spawn(async move {
        let gsi = CreateGlobalSecondaryIndexAction::builder()
            .index_name("by_g")
            .key_schema(key_elem("g", KeyType::Hash))
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::KeysOnly)
                    .build(),
            )
            .build()
            .expect("gsi");
        c3.update_table()
            .table_name(&table)
            .attribute_definitions(attr_def("g", ScalarAttributeType::S))
            .global_secondary_index_updates(
                GlobalSecondaryIndexUpdate::builder().create(gsi).build(),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("gsi: {e:?}"))
    });
    while let Some(done) = tasks.join_next().await {
        done.expect("task").expect("every change is accepted");
    }

    let mut tags: Vec<String> = c
        .list_tags_of_resource()
        .resource_arn(&arn)
        .send()
        .await
        .expect("list tags")
        .tags()
        .iter()
        .map(|t| format!("{}={}", t.key(), t.value()))
        .collect();
    tags.sort();
    let mut want: Vec<String> = (0..TAGS).map(|i| format!("k{i}=v{i}")).collect();
    want.sort();
    assert_eq!(tags, want, "every tag is kept");
    let ttl = c
        .describe_time_to_live()
        .table_name(&name)
        .send()
        .await
        .expect("describe ttl");
    assert_eq!(
        ttl.time_to_live_description()
            .and_then(|t| t.attribute_name()),
        Some("expires"),
        "the TTL setting is kept"
    );
    let table = c
        .describe_table()
        .table_name(&name)
        .send()
        .await
        .expect("describe")
        .table
        .expect("table");
    let indexes: Vec<&str> = table
        .global_secondary_indexes()
        .iter()
        .filter_map(|i| i.index_name())
        .collect();
    assert_eq!(indexes, ["by_g"], "the index is kept");
    assert!(
        table
            .attribute_definitions()
            .iter()
            .any(|a| a.attribute_name() == "g"),
        "the index's attribute definition is kept"
    );
    wait_active(c, &name).await;
    delete_table(c, &name).await;
}
