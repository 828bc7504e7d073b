//! Global tables (version 2019.11.21) between real `partita serve`
//! processes, one per region, each with a replication file naming the
//! others: ReplicaUpdates and DescribeTable Replicas, replication both
//! ways, the initial full copy, three regions, last-writer-wins
//! convergence of conflicting writes and of a delete racing an update, a
//! peer outage (caught up from the log, and by a full copy once past the
//! stream retention), no ping-pong, refused replication calls and
//! ReplicaUpdates validation.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use partita_blackbox_tests::aws_sdk_dynamodb::types::{
    AttributeValue, BillingMode, CreateReplicationGroupMemberAction,
    DeleteReplicationGroupMemberAction, KeyType, ReplicationGroupUpdate, ScalarAttributeType,
    StreamSpecification, StreamViewType,
};
use partita_blackbox_tests::aws_sdk_dynamodb::Client;
use partita_blackbox_tests::{
    api_err, attr_def, client_for, free_loopback_port, key_elem, raw_http, s,
    skip_without_own_server, unique_name, Server,
};

type Item = std::collections::HashMap<String, AttributeValue>;

const WAIT: Duration = Duration::from_secs(60);

/// One region: its server, ports and replication file.
struct Region {
    name: String,
    server: Server,
    admin_port: u16,
    client: Client,
}

/// Several regions that are each other's peers.
struct Regions {
    regions: Vec<Region>,
    dir: tempfile::TempDir,
    ports: Vec<u16>,
}

fn access_key(from: &str, to: &str) -> String {
    format!("AKREPL{}TO{}", from.replace('-', ""), to.replace('-', "")).to_uppercase()
}

fn secret(from: &str, to: &str) -> String {
    format!("secret-{from}-{to}")
}

/// The replication file of region `i`: every other region a peer at its
/// port (or at `dead_port` when cut off), inbound keys of every other.
fn replication_file(names: &[&str], ports: &[u16], i: usize, cut: bool) -> String {
    let dead = free_loopback_port();
    let peers: Vec<serde_json::Value> = names
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(j, peer)| {
            let port = if cut { dead } else { ports[j] };
            serde_json::json!({
                "region": peer,
                "endpoint": format!("http://127.0.0.1:{port}"),
                "accessKeyId": access_key(names[i], peer),
                "secretAccessKey": secret(names[i], peer),
            })
        })
        .collect();
    let inbound: Vec<serde_json::Value> = names
        .iter()
        .filter(|peer| **peer != names[i])
        .map(|peer| {
            serde_json::json!({
                "accessKeyId": access_key(peer, names[i]),
                "secretAccessKey": secret(peer, names[i]),
            })
        })
        .collect();
    serde_json::json!({ "formatVersion": 1, "peers": peers, "inbound": inbound }).to_string()
}

impl Regions {
    /// Starts one server per region name; `extra(i)` adds flags.
    fn start(names: &[&str], extra: impl Fn(usize) -> Vec<String>) -> Regions {
        Regions::start_env(names, extra, |_| Vec::new())
    }

    /// Like [`Regions::start`], with environment variables per region.
    fn start_env(
        names: &[&str],
        extra: impl Fn(usize) -> Vec<String>,
        env: impl Fn(usize) -> Vec<(String, String)>,
    ) -> Regions {
        let dir = tempfile::tempdir().expect("temp dir");
        let ports: Vec<u16> = names.iter().map(|_| free_loopback_port()).collect();
        let mut regions = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let path = dir.path().join(format!("{name}.json"));
            std::fs::write(&path, replication_file(names, &ports, i, false)).expect("write file");
            let admin_port = free_loopback_port();
            let mut args: Vec<String> = vec![
                "--region".into(),
                name.to_string(),
                "--replication".into(),
                path.display().to_string(),
                "--admin-port".into(),
                admin_port.to_string(),
            ];
            args.extend(extra(i));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let env = env(i);
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let server = Server::start_on(Some(ports[i]), &args, &env);
            let client = client_for(&server.endpoint());
            regions.push(Region {
                name: name.to_string(),
                server,
                admin_port,
                client,
            });
        }
        Regions {
            regions,
            dir,
            ports,
        }
    }

    fn names(&self) -> Vec<&str> {
        self.regions.iter().map(|r| r.name.as_str()).collect()
    }

    /// Rewrites every region's replication file: peers unreachable (`cut`)
    /// or reachable again; waits until the servers reloaded them.
    async fn set_cut(&self, cut: bool) {
        let names = self.names();
        for i in 0..names.len() {
            self.rewrite_file(i, &replication_file(&names, &self.ports, i, cut))
                .await;
        }
    }

    /// How many times region `i` has installed a changed replication file.
    fn reloads(&self, i: usize) -> usize {
        self.regions[i]
            .server
            .log_text()
            .matches("replication file reloaded")
            .count()
    }

    /// Writes region `i`'s replication file and waits until its server
    /// installed it (the reloader polls every second).
    async fn rewrite_file(&self, i: usize, text: &str) {
        let before = self.reloads(i);
        let path = self
            .dir
            .path()
            .join(format!("{}.json", self.regions[i].name));
        std::fs::write(&path, text).expect("write file");
        let deadline = Instant::now() + WAIT;
        while self.reloads(i) <= before {
            assert!(
                Instant::now() < deadline,
                "region {} did not reload its replication file:\n{}",
                self.regions[i].name,
                self.regions[i].server.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn client(&self, i: usize) -> &Client {
        &self.regions[i].client
    }
}

async fn create_global_source(client: &Client, name: &str) {
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr_def("pk", ScalarAttributeType::S))
        .key_schema(key_elem("pk", KeyType::Hash))
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .expect("stream spec"),
        )
        .send()
        .await
        .expect("create table");
}

async fn add_replica(client: &Client, table: &str, region: &str) -> Vec<(String, String)> {
    let out = client
        .update_table()
        .table_name(table)
        .replica_updates(
            ReplicationGroupUpdate::builder()
                .create(
                    CreateReplicationGroupMemberAction::builder()
                        .region_name(region)
                        .build()
                        .expect("create action"),
                )
                .build(),
        )
        .send()
        .await
        .expect("add replica");
    let desc = out.table_description().expect("description");
    assert_eq!(desc.global_table_version(), Some("2019.11.21"));
    replicas_of(desc.replicas())
}

fn replicas_of(
    replicas: &[partita_blackbox_tests::aws_sdk_dynamodb::types::ReplicaDescription],
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = replicas
        .iter()
        .map(|r| {
            (
                r.region_name().unwrap_or_default().to_string(),
                r.replica_status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    out
}

/// (TableStatus, sorted [(region, status)], GlobalTableVersion).
async fn describe(client: &Client, table: &str) -> (String, Vec<(String, String)>, Option<String>) {
    let d = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .expect("describe");
    let t = d.table().expect("table");
    (
        t.table_status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        replicas_of(t.replicas()),
        t.global_table_version().map(str::to_string),
    )
}

/// Waits until DescribeTable in every region lists the other regions,
/// all ACTIVE, and the table is ACTIVE.
async fn wait_replicas_active(regions: &Regions, table: &str) {
    let deadline = Instant::now() + WAIT;
    let names = regions.names();
    loop {
        let mut done = true;
        let mut seen = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let mut want: Vec<(String, String)> = names
                .iter()
                .filter(|n| *n != name)
                .map(|n| (n.to_string(), "ACTIVE".to_string()))
                .collect();
            want.sort();
            let got = match regions
                .client(i)
                .describe_table()
                .table_name(table)
                .send()
                .await
            {
                Ok(d) => {
                    let t = d.table().expect("table");
                    (
                        t.table_status().map(|s| s.as_str().to_string()),
                        replicas_of(t.replicas()),
                    )
                }
                Err(_) => (None, vec![]),
            };
            if got != (Some("ACTIVE".to_string()), want) {
                done = false;
            }
            seen.push((name.to_string(), got));
        }
        if done {
            return;
        }
        if Instant::now() >= deadline {
            let status: Vec<_> = regions
                .regions
                .iter()
                .map(|r| replication_status(r.admin_port))
                .collect();
            panic!("replicas of {table} not ACTIVE everywhere: {seen:?}; replication status: {status:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn put(client: &Client, table: &str, pk: &str, v: &str) {
    client
        .put_item()
        .table_name(table)
        .item("pk", s(pk))
        .item("v", s(v))
        .send()
        .await
        .expect("put");
}

async fn get(client: &Client, table: &str, pk: &str) -> Option<Item> {
    client
        .get_item()
        .table_name(table)
        .key("pk", s(pk))
        .consistent_read(true)
        .send()
        .await
        .expect("get")
        .item
}

async fn scan_all(client: &Client, table: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan");
        for it in page.items() {
            let pk = it["pk"].as_s().expect("pk").clone();
            let v = it
                .get("v")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default();
            out.insert(pk, v);
        }
        match page.last_evaluated_key {
            Some(k) => start = Some(k),
            None => return out,
        }
    }
}

/// Waits until item `pk` of every region reads as `want` (`None`: absent).
async fn wait_item(regions: &Regions, table: &str, pk: &str, want: Option<&str>) {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut ok = true;
        for i in 0..regions.regions.len() {
            let got = get(regions.client(i), table, pk).await;
            let got_v = got.as_ref().map(|it| it["v"].as_s().expect("v").clone());
            if got_v.as_deref() != want {
                ok = false;
            }
        }
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "item {pk} of {table} did not become {want:?} in every region"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// Waits until every region's table holds exactly the same items and
/// returns them.
async fn wait_converged(regions: &Regions, table: &str) -> BTreeMap<String, String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let first = scan_all(regions.client(0), table).await;
        let mut same = true;
        for i in 1..regions.regions.len() {
            if scan_all(regions.client(i), table).await != first {
                same = false;
            }
        }
        if same {
            return first;
        }
        if Instant::now() >= deadline {
            let mut report = Vec::new();
            for (i, r) in regions.regions.iter().enumerate() {
                let items = scan_all(regions.client(i), table).await;
                let missing: Vec<_> = first.keys().filter(|k| !items.contains_key(*k)).collect();
                let extra: Vec<_> = items.keys().filter(|k| !first.contains_key(*k)).collect();
                report.push(format!(
                    "{}: {} items, missing vs first {missing:?}, extra {extra:?}, status {}",
                    r.name,
                    items.len(),
                    replication_status(r.admin_port)
                ));
            }
            panic!("{table} did not converge:\n{}", report.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn scrape(admin_port: u16) -> String {
    let r = raw_http(
        &format!("http://127.0.0.1:{admin_port}"),
        "GET",
        "/metrics",
        &[("Host".into(), format!("127.0.0.1:{admin_port}"))],
        b"",
    );
    assert_eq!(r.status, 200);
    String::from_utf8_lossy(&r.body).into_owned()
}

/// Sum of the samples of `metric` whose labels contain every `labels`.
fn sample_sum(text: &str, metric: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn replication_status(admin_port: u16) -> serde_json::Value {
    let r = raw_http(
        &format!("http://127.0.0.1:{admin_port}"),
        "GET",
        "/replication",
        &[("Host".into(), format!("127.0.0.1:{admin_port}"))],
        b"",
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// (eventName, pk) of every record of `table`'s stream in the region at
/// `endpoint`, shard by shard.
async fn stream_events(endpoint: &str, client: &Client, table: &str) -> Vec<(String, String)> {
    use aws_sdk_dynamodbstreams::config::{BehaviorVersion, Credentials, Region};
    use aws_sdk_dynamodbstreams::types::ShardIteratorType;
    let config = aws_sdk_dynamodbstreams::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .credentials_provider(Credentials::new("AKID", "secret", None, None, "test"))
        .endpoint_url(endpoint)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    let streams = aws_sdk_dynamodbstreams::Client::from_conf(config);
    let arn = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .expect("describe")
        .table()
        .and_then(|t| t.latest_stream_arn())
        .expect("stream arn")
        .to_string();
    let desc = streams
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .expect("describe stream");
    let mut out = Vec::new();
    for shard in desc.stream_description().expect("description").shards() {
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(shard.shard_id().unwrap_or_default())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("iterator")
            .shard_iterator()
            .map(str::to_string);
        while let Some(it) = iterator {
            let page = streams
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .expect("records");
            if page.records().is_empty() {
                break;
            }
            for r in page.records() {
                let event = r
                    .event_name()
                    .map(|e| e.as_str().to_string())
                    .unwrap_or_default();
                let pk = r
                    .dynamodb()
                    .and_then(|d| d.keys())
                    .and_then(|k| k.get("pk"))
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default();
                out.push((event, pk));
            }
            iterator = page.next_shard_iterator().map(str::to_string);
        }
    }
    out
}

#[tokio::test]
async fn two_regions_copy_existing_items_then_replicate_both_ways() {
    if skip_without_own_server("two_regions_copy_existing_items_then_replicate_both_ways") {
        return;
    }
    // A slow full copy makes CREATING observable in both regions.
    let regions = Regions::start(&["us-east-1", "eu-west-1"], |_| {
        vec!["--replication-copy-delay-ms".into(), "800".into()]
    });
    let (a, b) = (regions.client(0), regions.client(1));
    let table = unique_name("gt");
    create_global_source(a, &table).await;
    for i in 0..30 {
        put(a, &table, &format!("old{i}"), "before").await;
    }
    let shown = add_replica(a, &table, "eu-west-1").await;
    assert_eq!(shown, vec![("eu-west-1".into(), "CREATING".into())]);
    // CREATING in both regions while the items are copied, then ACTIVE.
    let mut seen_a = false;
    let mut seen_b = false;
    let deadline = Instant::now() + WAIT;
    while !(seen_a && seen_b) && Instant::now() < deadline {
        let (status_a, replicas_a, version) = describe(a, &table).await;
        assert_eq!(version.as_deref(), Some("2019.11.21"));
        if replicas_a == vec![("eu-west-1".into(), "CREATING".into())] {
            assert_eq!(status_a, "UPDATING");
            seen_a = true;
        }
        if let Ok(d) = b.describe_table().table_name(&table).send().await {
            let t = d.table().expect("table");
            if t.table_status().map(|s| s.as_str()) == Some("CREATING") {
                assert_eq!(
                    replicas_of(t.replicas()),
                    vec![("us-east-1".into(), "ACTIVE".into())]
                );
                seen_b = true;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        seen_a && seen_b,
        "CREATING seen in A: {seen_a}, in B: {seen_b}"
    );
    wait_replicas_active(&regions, &table).await;
    let (_, replicas_b, version_b) = describe(b, &table).await;
    assert_eq!(replicas_b, vec![("us-east-1".into(), "ACTIVE".into())]);
    assert_eq!(version_b.as_deref(), Some("2019.11.21"));
    // The existing items were copied.
    let items = wait_converged(&regions, &table).await;
    assert_eq!(items.len(), 30);
    assert!(items.values().all(|v| v == "before"));
    // A write in A appears in B and vice versa; updates and deletes too.
    put(a, &table, "from-a", "1").await;
    wait_item(&regions, &table, "from-a", Some("1")).await;
    put(b, &table, "from-b", "2").await;
    wait_item(&regions, &table, "from-b", Some("2")).await;
    b.update_item()
        .table_name(&table)
        .key("pk", s("from-a"))
        .update_expression("SET v = :v")
        .expression_attribute_values(":v", s("updated-in-b"))
        .send()
        .await
        .expect("update");
    wait_item(&regions, &table, "from-a", Some("updated-in-b")).await;
    a.delete_item()
        .table_name(&table)
        .key("pk", s("from-b"))
        .send()
        .await
        .expect("delete");
    wait_item(&regions, &table, "from-b", None).await;
    b.delete_item()
        .table_name(&table)
        .key("pk", s("old3"))
        .send()
        .await
        .expect("delete");
    wait_item(&regions, &table, "old3", None).await;
    let items = wait_converged(&regions, &table).await;
    assert_eq!(items.len(), 30);
    // B's own stream shows the replicated changes like local ones: the
    // copied items, A's insert and A's delete.
    let events = stream_events(&regions.regions[1].server.endpoint(), b, &table).await;
    let copied = events
        .iter()
        .filter(|(e, pk)| e == "INSERT" && pk.starts_with("old"))
        .count();
    assert_eq!(copied, 30, "{events:?}");
    for want in [
        ("INSERT", "from-a"),
        ("INSERT", "from-b"),
        ("MODIFY", "from-a"),
        ("REMOVE", "from-b"),
        ("REMOVE", "old3"),
    ] {
        assert!(
            events.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} not in {events:?}"
        );
    }
    let status = replication_status(regions.regions[0].admin_port);
    assert_eq!(status["region"], "us-east-1");
    let replica = &status["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["tableName"] == table.as_str())
        .expect("table in status")["replicas"][0];
    assert_eq!(replica["regionName"], "eu-west-1");
    assert_eq!(replica["replicaStatus"], "ACTIVE");
    assert_eq!(replica["reachable"], true);
    // Removing the replica deletes B's table, as DynamoDB does.
    a.update_table()
        .table_name(&table)
        .replica_updates(
            ReplicationGroupUpdate::builder()
                .delete(
                    DeleteReplicationGroupMemberAction::builder()
                        .region_name("eu-west-1")
                        .build()
                        .expect("delete action"),
                )
                .build(),
        )
        .send()
        .await
        .expect("delete replica");
    let deadline = Instant::now() + WAIT;
    loop {
        let gone = match b.describe_table().table_name(&table).send().await {
            Ok(_) => false,
            Err(e) => e
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()),
        };
        let (_, replicas_a, _) = describe(a, &table).await;
        if gone && replicas_a.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "replica not deleted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn replication_tasks_restart_after_a_panic_and_replication_resumes() {
    if crate::background::skip("replication_tasks_restart_after_a_panic_and_replication_resumes") {
        return;
    }
    // Each replication task of each region panics once.
    let regions = Regions::start_env(
        &["us-east-1", "eu-west-1"],
        |_| Vec::new(),
        |_| {
            vec![(
                "PARTITA_FAILPOINTS".into(),
                "replicator:1,replication_reconcile:1,replication_reload:1".into(),
            )]
        },
    );
    let (a, b) = (regions.client(0), regions.client(1));
    let table = unique_name("gt_panic");
    create_global_source(a, &table).await;
    add_replica(a, &table, "eu-west-1").await;
    wait_replicas_active(&regions, &table).await;
    put(a, &table, "from-a", "1").await;
    wait_item(&regions, &table, "from-a", Some("1")).await;
    put(b, &table, "from-b", "2").await;
    wait_item(&regions, &table, "from-b", Some("2")).await;
    // The file reloader panics at its first reload; the restarted one
    // installs the file (peers cut off: writes stop crossing).
    regions.set_cut(true).await;
    put(a, &table, "while-cut", "3").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        get(b, &table, "while-cut").await,
        None,
        "the cut file is installed"
    );
    regions.set_cut(false).await;
    wait_item(&regions, &table, "while-cut", Some("3")).await;
    for region in &regions.regions {
        for task in ["replicator", "replication_reconcile", "replication_reload"] {
            assert_eq!(
                crate::background::failures(region.admin_port, task),
                1.0,
                "{task} in {}",
                region.name
            );
        }
        assert_eq!(
            partita_blackbox_tests::admin_get(region.admin_port, "/readyz").0,
            200
        );
    }
}

#[tokio::test]
async fn three_regions_converge_and_list_each_other() {
    if skip_without_own_server("three_regions_converge_and_list_each_other") {
        return;
    }
    let regions = Regions::start(&["us-east-1", "eu-west-1", "ap-south-1"], |_| vec![]);
    let table = unique_name("gt3");
    create_global_source(regions.client(0), &table).await;
    put(regions.client(0), &table, "seed", "0").await;
    add_replica(regions.client(0), &table, "eu-west-1").await;
    // B's replica exists (still filling, maybe); writes keep coming in B
    // while C is added from A.
    let deadline = Instant::now() + WAIT;
    while regions
        .client(1)
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "B's replica not created");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let writer = {
        let b = regions.client(1).clone();
        let table = table.clone();
        tokio::spawn(async move {
            for i in 0..40 {
                put(&b, &table, &format!("b{i}"), "b").await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    add_replica(regions.client(0), &table, "ap-south-1").await;
    writer.await.expect("writer");
    wait_replicas_active(&regions, &table).await;
    for i in 0..3 {
        put(regions.client(i), &table, &format!("w{i}"), &format!("{i}")).await;
    }
    let items = wait_converged(&regions, &table).await;
    assert_eq!(items.len(), 1 + 40 + 3, "{items:?}");
    for i in 0..3 {
        assert_eq!(items[&format!("w{i}")], format!("{i}"));
    }
}

#[tokio::test]
async fn conflicting_writes_and_a_delete_racing_an_update_converge_to_the_later_version() {
    if skip_without_own_server("conflicting_writes_converge") {
        return;
    }
    // eu-west-1's clock runs a minute ahead: its writes carry later
    // versions than us-east-1's even when they happen earlier.
    let regions = Regions::start(&["us-east-1", "eu-west-1"], |i| {
        if i == 1 {
            vec!["--replication-clock-offset-ms".into(), "60000".into()]
        } else {
            vec![]
        }
    });
    let (a, b) = (regions.client(0), regions.client(1));
    let table = unique_name("lww");
    create_global_source(a, &table).await;
    add_replica(a, &table, "eu-west-1").await;
    wait_replicas_active(&regions, &table).await;
    put(a, &table, "del-in-b", "v0").await;
    put(a, &table, "del-in-a", "v0").await;
    wait_item(&regions, &table, "del-in-b", Some("v0")).await;
    wait_item(&regions, &table, "del-in-a", Some("v0")).await;
    // Cut the regions apart; both write the same keys, unaware of each other.
    regions.set_cut(true).await;
    // B first, then A: A's write happens later but has the earlier version.
    put(b, &table, "k1", "from-b").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    put(a, &table, "k1", "from-a").await;
    // A first, then B.
    put(a, &table, "k2", "from-a").await;
    put(b, &table, "k2", "from-b").await;
    // A delete racing an update, both ways.
    b.delete_item()
        .table_name(&table)
        .key("pk", s("del-in-b"))
        .send()
        .await
        .expect("delete");
    put(a, &table, "del-in-b", "updated-in-a").await;
    put(b, &table, "del-in-a", "updated-in-b").await;
    a.delete_item()
        .table_name(&table)
        .key("pk", s("del-in-a"))
        .send()
        .await
        .expect("delete");
    // While cut, each region sees its own writes.
    assert_eq!(get(a, &table, "k1").await.expect("k1")["v"], s("from-a"));
    assert_eq!(get(b, &table, "k1").await.expect("k1")["v"], s("from-b"));
    regions.set_cut(false).await;
    // Everyone converges to the later version: eu-west-1's.
    wait_item(&regions, &table, "k1", Some("from-b")).await;
    wait_item(&regions, &table, "k2", Some("from-b")).await;
    wait_item(&regions, &table, "del-in-b", None).await;
    wait_item(&regions, &table, "del-in-a", Some("updated-in-b")).await;
    let items = wait_converged(&regions, &table).await;
    assert_eq!(items.len(), 3, "{items:?}");
    // us-east-1's four changes lost in eu-west-1 (counted as superseded
    // there, once us-east-1's replicator, backing off from the cut, has
    // shipped them: they change nothing, so convergence does not wait for
    // them); eu-west-1's four won in us-east-1.
    let superseded = || {
        sample_sum(
            &scrape(regions.regions[1].admin_port),
            "partita_replication_applied_total",
            &["outcome=\"superseded\"", "origin_region=\"us-east-1\""],
        )
    };
    let deadline = Instant::now() + WAIT;
    while superseded() < 4.0 {
        assert!(
            Instant::now() < deadline,
            "us-east-1's changes were not all received: {}",
            superseded()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(superseded(), 4.0);
    let metrics = scrape(regions.regions[0].admin_port);
    assert_eq!(
        sample_sum(
            &metrics,
            "partita_replication_applied_total",
            &["outcome=\"superseded\""]
        ),
        0.0,
        "{metrics}"
    );
    // A local write after seeing the later version wins over it.
    put(a, &table, "k1", "a-after-seeing-b").await;
    wait_item(&regions, &table, "k1", Some("a-after-seeing-b")).await;
}

#[tokio::test]
async fn a_stopped_peer_catches_up_from_the_log_without_loss() {
    if skip_without_own_server("a_stopped_peer_catches_up") {
        return;
    }
    let mut regions = Regions::start(&["us-east-1", "eu-west-1"], |_| vec![]);
    let table = unique_name("outage");
    create_global_source(regions.client(0), &table).await;
    add_replica(regions.client(0), &table, "eu-west-1").await;
    wait_replicas_active(&regions, &table).await;
    regions.regions[1].server.kill9();
    for i in 0..60 {
        put(regions.client(0), &table, &format!("k{i}"), "during-outage").await;
    }
    regions
        .client(0)
        .delete_item()
        .table_name(&table)
        .key("pk", s("k7"))
        .send()
        .await
        .expect("delete");
    // A notices the peer is unreachable.
    let deadline = Instant::now() + WAIT;
    loop {
        let status = replication_status(regions.regions[0].admin_port);
        let replica = status["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .find(|t| t["tableName"] == table.as_str())
            .map(|t| t["replicas"][0].clone())
            .unwrap_or_default();
        if replica["reachable"] == false && replica["lastError"].is_string() {
            assert!(
                replica["pendingChanges"].as_u64().unwrap_or(0) > 0,
                "{replica}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "outage not reported: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lag = sample_sum(
        &scrape(regions.regions[0].admin_port),
        "partita_replication_lag_seconds",
        &["region=\"eu-west-1\""],
    );
    assert!(lag > 0.0, "lag {lag}");
    regions.regions[1].server.restart();
    let items = wait_converged(&regions, &table).await;
    assert_eq!(items.len(), 59);
    assert!(!items.contains_key("k7"));
    // Caught up: nothing pending.
    let deadline = Instant::now() + WAIT;
    loop {
        let m = scrape(regions.regions[0].admin_port);
        if sample_sum(&m, "partita_replication_pending_changes", &[]) == 0.0
            && sample_sum(&m, "partita_replication_lag_seconds", &[]) == 0.0
        {
            break;
        }
        assert!(Instant::now() < deadline, "still pending: {m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = regions.regions[0].server.log_text();
    assert_eq!(
        log.matches("full copy started").count(),
        1,
        "only the initial copy ran:\n{log}"
    );
}

#[tokio::test]
async fn a_peer_down_longer_than_the_retention_gets_a_full_copy() {
    if skip_without_own_server("a_peer_down_longer_than_the_retention") {
        return;
    }
    let mut regions = Regions::start(&["us-east-1", "eu-west-1"], |_| {
        vec!["--stream-retention".into(), "1s".into()]
    });
    let table = unique_name("retention");
    create_global_source(regions.client(0), &table).await;
    add_replica(regions.client(0), &table, "eu-west-1").await;
    wait_replicas_active(&regions, &table).await;
    put(regions.client(0), &table, "before", "x").await;
    put(regions.client(0), &table, "gone", "x").await;
    wait_item(&regions, &table, "before", Some("x")).await;
    wait_item(&regions, &table, "gone", Some("x")).await;
    regions.regions[1].server.kill9();
    for i in 0..20 {
        put(regions.client(0), &table, &format!("k{i}"), "during-outage").await;
    }
    // A delete whose record and tombstone expire before the peer is back:
    // the full copy's end removes the item there too.
    regions
        .client(0)
        .delete_item()
        .table_name(&table)
        .key("pk", s("gone"))
        .send()
        .await
        .expect("delete");
    // Longer than the retention: those records are trimmed.
    tokio::time::sleep(Duration::from_secs(4)).await;
    put(regions.client(0), &table, "late", "y").await;
    regions.regions[1].server.restart();
    let items = wait_converged(&regions, &table).await;
    let log_a = regions.regions[0].server.log_text();
    let log_b = regions.regions[1].server.log_text();
    let copy_lines: Vec<&str> = log_a
        .lines()
        .chain(log_b.lines())
        .filter(|l| l.contains("copy") || l.contains("replicat"))
        .map(|l| &l[..l.len().min(300)])
        .collect::<Vec<_>>();
    assert_eq!(items.len(), 22, "{items:?}\n{}", copy_lines.join("\n"));
    assert!(!items.contains_key("gone"));
    assert!(
        log_b.contains("full copy: deleted items the source no longer has"),
        "{log_b}"
    );
    let log = regions.regions[0].server.log_text();
    assert!(
        log.contains("fell behind the change log's retention"),
        "no full copy in the log:\n{log}"
    );
}

#[tokio::test]
async fn no_ping_pong_without_writes() {
    if skip_without_own_server("no_ping_pong_without_writes") {
        return;
    }
    let regions = Regions::start(&["us-east-1", "eu-west-1"], |_| vec![]);
    let table = unique_name("quiet");
    create_global_source(regions.client(0), &table).await;
    add_replica(regions.client(0), &table, "eu-west-1").await;
    wait_replicas_active(&regions, &table).await;
    for i in 0..10 {
        put(regions.client(i % 2), &table, &format!("k{i}"), "v").await;
    }
    wait_converged(&regions, &table).await;
    let counters = |text: &str| {
        (
            sample_sum(text, "partita_replication_sent_total", &[]),
            sample_sum(text, "partita_replication_applied_total", &[]),
        )
    };
    // Settle, then nothing may move for a few seconds.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before: Vec<(f64, f64)> = regions
        .regions
        .iter()
        .map(|r| counters(&scrape(r.admin_port)))
        .collect();
    // Each region shipped its own writes once and applied the other's.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after: Vec<(f64, f64)> = regions
        .regions
        .iter()
        .map(|r| counters(&scrape(r.admin_port)))
        .collect();
    assert_eq!(before, after, "replication traffic without writes");
    // A's sends are exactly its 5 writes (the copy had nothing to send)
    // and B applied exactly those.
    assert_eq!(before[0].0, 5.0);
    assert_eq!(before[1].1, 5.0);
    assert_eq!(before[1].0, 5.0);
    assert_eq!(before[0].1, 5.0);
}

/// Signs a raw replication call with `key`.
fn signed_replication_call(
    host: &str,
    op: &str,
    body: &[u8],
    key: (&str, &str),
    region: &str,
) -> Vec<(String, String)> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;
    let creds = aws_credential_types::Credentials::new(key.0, key.1, None, None, "blackbox");
    let identity: aws_smithy_runtime_api::client::identity::Identity = creds.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("dynamodb")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .expect("signing params")
        .into();
    let headers = vec![
        ("host".to_string(), host.to_string()),
        (
            "content-type".to_string(),
            "application/x-amz-json-1.0".to_string(),
        ),
        (
            "x-amz-target".to_string(),
            format!("PartitaReplication_20261122.{op}"),
        ),
    ];
    let signable = SignableRequest::new(
        "POST",
        format!("http://{host}/"),
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    let mut out = headers;
    for (k, v) in instructions.headers() {
        out.push((k.to_string(), v.to_string()));
    }
    out
}

#[tokio::test]
async fn replication_calls_with_wrong_credentials_are_refused() {
    if skip_without_own_server("replication_calls_with_wrong_credentials_are_refused") {
        return;
    }
    let regions = Regions::start(&["us-east-1", "eu-west-1"], |_| vec![]);
    let table = unique_name("authz");
    create_global_source(regions.client(0), &table).await;
    add_replica(regions.client(0), &table, "eu-west-1").await;
    wait_replicas_active(&regions, &table).await;
    let b = &regions.regions[1];
    let host = format!("127.0.0.1:{}", regions.ports[1]);
    let body = serde_json::json!({
        "TableName": table,
        "SourceRegion": "us-east-1",
        "Changes": [{
            "Keys": {"pk": {"S": "forged"}},
            "NewImage": {"pk": {"S": "forged"}, "v": {"S": "evil"}},
            "Version": {"Timestamp": u64::MAX / 2, "Region": "us-east-1"}
        }]
    })
    .to_string();
    let send = |headers: Vec<(String, String)>| {
        raw_http(&b.server.endpoint(), "POST", "/", &headers, body.as_bytes())
    };
    // Unsigned.
    let unsigned = send(vec![
        ("host".into(), host.clone()),
        ("content-type".into(), "application/x-amz-json-1.0".into()),
        (
            "x-amz-target".into(),
            "PartitaReplication_20261122.ApplyChanges".into(),
        ),
    ]);
    assert_eq!(unsigned.status, 400);
    assert_eq!(unsigned.error_type(), "MissingAuthenticationTokenException");
    // An unknown key (the SDK clients' ordinary test key).
    let unknown = send(signed_replication_call(
        &host,
        "ApplyChanges",
        body.as_bytes(),
        ("AKIDPARTITATEST", "partita-test-secret"),
        "eu-west-1",
    ));
    assert_eq!(unknown.error_type(), "UnrecognizedClientException");
    assert_eq!(
        unknown.error_message().as_deref(),
        Some("The security token included in the request is invalid.")
    );
    // The right key with a wrong secret.
    let key = access_key("us-east-1", "eu-west-1");
    let forged = send(signed_replication_call(
        &host,
        "ApplyChanges",
        body.as_bytes(),
        (&key, "not-the-secret"),
        "eu-west-1",
    ));
    assert_eq!(forged.error_type(), "InvalidSignatureException");
    // Nothing changed.
    assert!(get(regions.client(1), &table, "forged").await.is_none());
    let applied = sample_sum(
        &scrape(b.admin_port),
        "partita_replication_applied_total",
        &[],
    );
    assert_eq!(applied, 0.0);
    // The right credentials work (and the change then replicates nowhere
    // else: it did not originate in eu-west-1).
    let ok = send(signed_replication_call(
        &host,
        "ApplyChanges",
        body.as_bytes(),
        (&key, &secret("us-east-1", "eu-west-1")),
        "eu-west-1",
    ));
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    assert_eq!(ok.json()["Applied"], 1);
    assert!(get(regions.client(1), &table, "forged").await.is_some());
}

#[tokio::test]
async fn replica_updates_are_validated_like_dynamodb() {
    if skip_without_own_server("replica_updates_are_validated_like_dynamodb") {
        return;
    }
    let regions = Regions::start(&["us-east-1", "eu-west-1"], |_| vec![]);
    let a = regions.client(0);
    let create = |region: &str| {
        ReplicationGroupUpdate::builder()
            .create(
                CreateReplicationGroupMemberAction::builder()
                    .region_name(region)
                    .build()
                    .expect("action"),
            )
            .build()
    };
    // No stream: refused.
    let plain = unique_name("plain");
    partita_blackbox_tests::create_table(a, &plain, ("pk", ScalarAttributeType::S), None).await;
    let e = api_err(
        a.update_table()
            .table_name(&plain)
            .replica_updates(create("eu-west-1"))
            .send()
            .await,
    );
    assert_eq!(e.code, "ValidationException");
    assert!(e.message.contains("NEW_AND_OLD_IMAGES"), "{}", e.message);
    let table = unique_name("val");
    create_global_source(a, &table).await;
    // Not a peer.
    let e = api_err(
        a.update_table()
            .table_name(&table)
            .replica_updates(create("sa-east-1"))
            .send()
            .await,
    );
    assert_eq!(e.code, "ValidationException");
    assert!(e.message.contains("sa-east-1"), "{}", e.message);
    // Own region.
    let e = api_err(
        a.update_table()
            .table_name(&table)
            .replica_updates(create("us-east-1"))
            .send()
            .await,
    );
    assert_eq!(e.code, "ValidationException");
    // Twice the same region.
    let e = api_err(
        a.update_table()
            .table_name(&table)
            .replica_updates(create("eu-west-1"))
            .replica_updates(create("eu-west-1"))
            .send()
            .await,
    );
    assert_eq!(e.code, "ValidationException");
    // Together with another change.
    let e = api_err(
        a.update_table()
            .table_name(&table)
            .replica_updates(create("eu-west-1"))
            .deletion_protection_enabled(true)
            .send()
            .await,
    );
    assert_eq!(e.code, "ValidationException");
    assert!(
        e.message
            .contains("must be the only operation in the request"),
        "{}",
        e.message
    );
    // Deleting a replica that does not exist.
    let e = api_err(
        a.update_table()
            .table_name(&table)
            .replica_updates(
                ReplicationGroupUpdate::builder()
                    .delete(
                        DeleteReplicationGroupMemberAction::builder()
                            .region_name("eu-west-1")
                            .build()
                            .expect("action"),
                    )
                    .build(),
            )
            .send()
            .await,
    );
    assert_eq!(e.code, "ResourceNotFoundException");
    // A missing table.
    let e = api_err(
        a.update_table()
            .table_name("no-such-table")
            .replica_updates(create("eu-west-1"))
            .send()
            .await,
    );
    assert_eq!(e.code, "ResourceNotFoundException");
    // Added once; adding again is refused; the stream cannot be disabled.
    add_replica(a, &table, "eu-west-1").await;
    let e = api_err(
        a.update_table()
            .table_name(&table)
            .replica_updates(create("eu-west-1"))
            .send()
            .await,
    );
    assert_eq!(e.code, "ValidationException");
    wait_replicas_active(&regions, &table).await;
    let e = api_err(
        a.update_table()
            .table_name(&table)
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(false)
                    .build()
                    .expect("spec"),
            )
            .send()
            .await,
    );
    assert_eq!(e.code, "ValidationException");
    assert!(e.message.contains("replicas"), "{}", e.message);
    // A table not replicated shows no replica fields.
    let (_, replicas, version) = describe(a, &plain).await;
    assert!(replicas.is_empty());
    assert_eq!(version, None);
}

#[tokio::test]
async fn replica_updates_without_replication_are_refused() {
    if skip_without_own_server("replica_updates_without_replication_are_refused") {
        return;
    }
    let server = Server::start();
    let client = client_for(&server.endpoint());
    let table = unique_name("noreplication");
    create_global_source(&client, &table).await;
    let e = api_err(
        client
            .update_table()
            .table_name(&table)
            .replica_updates(
                ReplicationGroupUpdate::builder()
                    .create(
                        CreateReplicationGroupMemberAction::builder()
                            .region_name("eu-west-1")
                            .build()
                            .expect("action"),
                    )
                    .build(),
            )
            .send()
            .await,
    );
    assert_eq!(e.code, "ValidationException");
    assert!(e.message.contains("--replication"), "{}", e.message);
}

#[tokio::test]
async fn replica_sets_declared_in_the_replication_file_are_created() {
    if skip_without_own_server("replica_sets_declared_in_the_replication_file_are_created") {
        return;
    }
    let regions = Regions::start(&["us-east-1", "eu-west-1"], |_| vec![]);
    let table = unique_name("declared");
    create_global_source(regions.client(0), &table).await;
    put(regions.client(0), &table, "existing", "1").await;
    // What the operator renders: `tables` names the replica regions.
    let names = regions.names();
    let mut file: serde_json::Value =
        serde_json::from_str(&replication_file(&names, &regions.ports, 0, false)).expect("json");
    // A declared table without a suitable stream is reported, not created.
    let plain = unique_name("nostream");
    partita_blackbox_tests::create_table(
        regions.client(0),
        &plain,
        ("pk", ScalarAttributeType::S),
        None,
    )
    .await;
    file["tables"] =
        serde_json::json!({ table.clone(): ["eu-west-1"], plain.clone(): ["eu-west-1"] });
    std::fs::write(regions.dir.path().join("us-east-1.json"), file.to_string())
        .expect("write file");
    wait_replicas_active(&regions, &table).await;
    wait_item(&regions, &table, "existing", Some("1")).await;
    put(regions.client(1), &table, "back", "2").await;
    wait_item(&regions, &table, "back", Some("2")).await;
    let status = replication_status(regions.regions[0].admin_port);
    let entry = status["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["tableName"] == table.as_str())
        .cloned()
        .expect("table in status");
    assert_eq!(entry["replicas"][0]["regionName"], "eu-west-1");
    assert_eq!(entry["replicas"][0]["replicaStatus"], "ACTIVE");
    let failed = status["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["tableName"] == plain.as_str())
        .cloned()
        .expect("declared table in status");
    assert_eq!(failed["replicas"][0]["replicaStatus"], "CREATION_FAILED");
    let error = failed["replicas"][0]["lastError"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("NEW_AND_OLD_IMAGES"), "{failed}");
    assert!(api_err(
        regions
            .client(1)
            .describe_table()
            .table_name(&plain)
            .send()
            .await
    )
    .code
    .contains("ResourceNotFound"));
}

#[tokio::test]
async fn with_auth_a_user_allowed_partita_replicate_may_replicate() {
    if skip_without_own_server("with_auth_a_user_allowed_partita_replicate_may_replicate") {
        return;
    }
    let auth_dir = tempfile::tempdir().expect("temp dir");
    let auth_path = auth_dir.path().join("auth.yaml");
    // eu-west-1 enforces auth: the key us-east-1 signs with belongs to a
    // user allowed partita:Replicate; another user may only use DynamoDB.
    let replicator_key = access_key("us-east-1", "eu-west-1");
    std::fs::write(
        &auth_path,
        format!(
            "users:\n  - name: replicator\n    accessKeyId: {replicator_key}\n    secretAccessKey: {}\n    policies: [replicate]\n  - name: admin\n    accessKeyId: AKIAADMIN0000000001\n    secretAccessKey: admin-secret\n    policies: [admin]\npolicies:\n  replicate: {{Version: \"2012-10-17\", Statement: [{{Effect: Allow, Action: \"partita:Replicate\", Resource: \"*\"}}]}}\n  admin: {{Version: \"2012-10-17\", Statement: [{{Effect: Allow, Action: \"dynamodb:*\", Resource: \"*\"}}]}}\n",
            secret("us-east-1", "eu-west-1")
        ),
    )
    .expect("write auth file");
    let auth_arg = auth_path.display().to_string();
    let regions = Regions::start(&["us-east-1", "eu-west-1"], |i| {
        if i == 1 {
            vec!["--auth".into(), auth_arg.clone()]
        } else {
            vec![]
        }
    });
    // eu-west-1's replication file accepts no inbound key of its own.
    let names = regions.names();
    let mut file: serde_json::Value =
        serde_json::from_str(&replication_file(&names, &regions.ports, 1, false)).expect("json");
    file["inbound"] = serde_json::json!([]);
    // Once reloaded, only the auth file can authorize the replicator's key.
    regions.rewrite_file(1, &file.to_string()).await;
    let b_admin = partita_blackbox_tests::client_with_credentials(
        &regions.regions[1].server.endpoint(),
        "eu-west-1",
        "AKIAADMIN0000000001",
        "admin-secret",
        None,
    );
    let table = unique_name("authrepl");
    create_global_source(regions.client(0), &table).await;
    add_replica(regions.client(0), &table, "eu-west-1").await;
    put(regions.client(0), &table, "k", "v").await;
    let deadline = Instant::now() + WAIT;
    loop {
        // The replica in eu-west-1 is created asynchronously: until then
        // the read answers ResourceNotFoundException.
        let read = b_admin
            .get_item()
            .table_name(&table)
            .key("pk", s("k"))
            .consistent_read(true)
            .send()
            .await;
        if read.is_ok_and(|r| r.item.is_some()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not replicated through the auth user"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The admin user may use DynamoDB but not replicate.
    let host = format!("127.0.0.1:{}", regions.ports[1]);
    let body = serde_json::json!({"TableName": table, "SourceRegion": "us-east-1", "Changes": []})
        .to_string();
    let denied = raw_http(
        &regions.regions[1].server.endpoint(),
        "POST",
        "/",
        &signed_replication_call(
            &host,
            "ApplyChanges",
            body.as_bytes(),
            ("AKIAADMIN0000000001", "admin-secret"),
            "eu-west-1",
        ),
        body.as_bytes(),
    );
    assert_eq!(denied.error_type(), "AccessDeniedException");
    let message = denied.error_message().unwrap_or_default();
    assert!(message.contains("partita:Replicate"), "{message}");
}

#[tokio::test]
async fn indexes_ttl_and_throughput_stay_aligned_across_replicas() {
    if skip_without_own_server("indexes_ttl_and_throughput_stay_aligned_across_replicas") {
        return;
    }
    use partita_blackbox_tests::aws_sdk_dynamodb::types::{
        CreateGlobalSecondaryIndexAction, GlobalSecondaryIndexUpdate, Projection, ProjectionType,
        ProvisionedThroughput, TimeToLiveSpecification, TimeToLiveStatus,
    };
    let regions = Regions::start(&["us-east-1", "eu-west-1"], |_| vec![]);
    let (a, b) = (regions.client(0), regions.client(1));
    let table = unique_name("aligned");
    create_global_source(a, &table).await;
    add_replica(a, &table, "eu-west-1").await;
    wait_replicas_active(&regions, &table).await;
    // Throughput changed in B is changed in A.
    b.update_table()
        .table_name(&table)
        .billing_mode(BillingMode::Provisioned)
        .provisioned_throughput(
            ProvisionedThroughput::builder()
                .read_capacity_units(7)
                .write_capacity_units(9)
                .build()
                .expect("throughput"),
        )
        .send()
        .await
        .expect("throughput");
    let deadline = Instant::now() + WAIT;
    loop {
        let wcu = a
            .describe_table()
            .table_name(&table)
            .send()
            .await
            .expect("describe")
            .table()
            .and_then(|t| t.provisioned_throughput())
            .and_then(|p| p.write_capacity_units());
        if wcu == Some(9) {
            break;
        }
        assert!(Instant::now() < deadline, "throughput not aligned: {wcu:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A GSI added in A appears in B, backfilled with B's items.
    a.put_item()
        .table_name(&table)
        .item("pk", s("p1"))
        .item("g", s("blue"))
        .send()
        .await
        .expect("put");
    a.update_table()
        .table_name(&table)
        .attribute_definitions(attr_def("g", ScalarAttributeType::S))
        .global_secondary_index_updates(
            GlobalSecondaryIndexUpdate::builder()
                .create(
                    CreateGlobalSecondaryIndexAction::builder()
                        .index_name("by_g")
                        .key_schema(key_elem("g", KeyType::Hash))
                        .projection(
                            Projection::builder()
                                .projection_type(ProjectionType::All)
                                .build(),
                        )
                        .provisioned_throughput(
                            ProvisionedThroughput::builder()
                                .read_capacity_units(1)
                                .write_capacity_units(1)
                                .build()
                                .expect("throughput"),
                        )
                        .build()
                        .expect("gsi"),
                )
                .build(),
        )
        .send()
        .await
        .expect("add gsi");
    // TTL enabled in A is enabled in B.
    a.update_time_to_live()
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
        .expect("ttl");
    let deadline = Instant::now() + WAIT;
    loop {
        let found = b
            .query()
            .table_name(&table)
            .index_name("by_g")
            .key_condition_expression("g = :g")
            .expression_attribute_values(":g", s("blue"))
            .send()
            .await
            .map(|q| q.count())
            .unwrap_or(0);
        let ttl = b
            .describe_time_to_live()
            .table_name(&table)
            .send()
            .await
            .expect("describe ttl")
            .time_to_live_description()
            .and_then(|d| d.time_to_live_status().cloned());
        let wcu = a
            .describe_table()
            .table_name(&table)
            .send()
            .await
            .expect("describe")
            .table()
            .and_then(|t| t.provisioned_throughput())
            .and_then(|p| p.write_capacity_units());
        if found == 1 && ttl == Some(TimeToLiveStatus::Enabled) && wcu == Some(9) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not aligned: gsi {found}, ttl {ttl:?}, wcu {wcu:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing bounced back: each region logged applying exactly one change
    // from the other.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let count = |i: usize| {
        regions.regions[i]
            .server
            .log_text()
            .matches("applying a replica's settings change")
            .count()
    };
    assert_eq!((count(0), count(1)), (1, 2));
}

#[tokio::test]
async fn peers_are_reached_over_https() {
    if skip_without_own_server("peers_are_reached_over_https") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).expect("write cert");
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).expect("write key");
    let tls_port = free_loopback_port();
    let (cert, key) = (
        cert_path.display().to_string(),
        key_path.display().to_string(),
    );
    // eu-west-1 also listens for HTTPS; us-east-1 trusts its certificate.
    let regions = Regions::start_env(
        &["us-east-1", "eu-west-1"],
        |i| {
            if i == 1 {
                vec![
                    "--tls-cert".into(),
                    cert.clone(),
                    "--tls-key".into(),
                    key.clone(),
                    "--tls-port".into(),
                    tls_port.to_string(),
                ]
            } else {
                vec![]
            }
        },
        |i| {
            if i == 0 {
                vec![("SSL_CERT_FILE".to_string(), cert.clone())]
            } else {
                vec![]
            }
        },
    );
    let names = regions.names();
    let mut file: serde_json::Value =
        serde_json::from_str(&replication_file(&names, &regions.ports, 0, false)).expect("json");
    file["peers"][0]["endpoint"] = serde_json::json!(format!("https://localhost:{tls_port}"));
    // Every call after the reload goes to the HTTPS endpoint.
    regions.rewrite_file(0, &file.to_string()).await;
    let table = unique_name("https");
    create_global_source(regions.client(0), &table).await;
    put(regions.client(0), &table, "before", "1").await;
    add_replica(regions.client(0), &table, "eu-west-1").await;
    wait_replicas_active(&regions, &table).await;
    put(regions.client(0), &table, "after", "2").await;
    put(regions.client(1), &table, "back", "3").await;
    let items = wait_converged(&regions, &table).await;
    assert_eq!(items.len(), 3, "{items:?}");
    let status = replication_status(regions.regions[0].admin_port);
    let replica = status["tables"][0]["replicas"][0].clone();
    assert_eq!(replica["reachable"], true, "{status}");
}

#[tokio::test]
async fn delete_table_in_one_region_removes_that_replica_only() {
    if skip_without_own_server("delete_table_in_one_region_removes_that_replica_only") {
        return;
    }
    let regions = Regions::start(&["us-east-1", "eu-west-1", "ap-south-1"], |_| vec![]);
    let table = unique_name("dropone");
    create_global_source(regions.client(0), &table).await;
    add_replica(regions.client(0), &table, "eu-west-1").await;
    add_replica(regions.client(0), &table, "ap-south-1").await;
    wait_replicas_active(&regions, &table).await;
    partita_blackbox_tests::delete_table(regions.client(1), &table).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, a, _) = describe(regions.client(0), &table).await;
        let (_, c, _) = describe(regions.client(2), &table).await;
        if a == vec![("ap-south-1".to_string(), "ACTIVE".to_string())]
            && c == vec![("us-east-1".to_string(), "ACTIVE".to_string())]
        {
            break;
        }
        assert!(Instant::now() < deadline, "not removed: {a:?} {c:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The other two keep replicating.
    put(regions.client(2), &table, "k", "v").await;
    let deadline = Instant::now() + WAIT;
    while get(regions.client(0), &table, "k").await.is_none() {
        assert!(Instant::now() < deadline, "not replicated");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}
