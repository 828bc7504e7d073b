//! Secondary indexes: local indexes (at CreateTable only, strongly
//! consistent, projections, item collection metrics), global indexes (at
//! CreateTable and through UpdateTable with backfill, eventually
//! consistent), sparse indexes, index key type checks on write, projection
//! and Select rules, parallel scans and pagination on indexes, DescribeTable
//! statistics, and removal of index data with its table or index.
//!
//! Global indexes are eventually consistent, so every assertion on one
//! polls with a deadline ([`eventually`]) instead of sleeping.
//!
//! The 10 GB item-collection limit (ItemCollectionSizeLimitExceeded) cannot
//! be reached through the binary in a test; the storage crate's unit tests
//! cover it with a tiny limit.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use partita_blackbox_tests::aws_sdk_dynamodb::types::{
    AttributeValue, BillingMode, CreateGlobalSecondaryIndexAction,
    DeleteGlobalSecondaryIndexAction, GlobalSecondaryIndex, GlobalSecondaryIndexUpdate,
    IndexStatus, KeyType, LocalSecondaryIndex, Projection, ProjectionType, Put, PutRequest,
    ReturnItemCollectionMetrics, ReturnValue, ScalarAttributeType as T, Select, TransactWriteItem,
    WriteRequest,
};
use partita_blackbox_tests::aws_sdk_dynamodb::Client;
use partita_blackbox_tests::*;

/// How long a global index may take to reflect a write in these tests.
const INDEX_DEADLINE: Duration = Duration::from_secs(30);

// ------------------------------------------------------------------ helpers

fn projection(kind: ProjectionType, include: &[&str]) -> Projection {
    let mut p = Projection::builder().projection_type(kind);
    for a in include {
        p = p.non_key_attributes(*a);
    }
    p.build()
}

pub(crate) fn keys_only() -> Projection {
    projection(ProjectionType::KeysOnly, &[])
}

pub(crate) fn all() -> Projection {
    projection(ProjectionType::All, &[])
}

fn include(attrs: &[&str]) -> Projection {
    projection(ProjectionType::Include, attrs)
}

pub(crate) fn gsi(
    name: &str,
    hash: &str,
    range: Option<&str>,
    p: Projection,
) -> GlobalSecondaryIndex {
    let mut b = GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key_elem(hash, KeyType::Hash))
        .projection(p);
    if let Some(r) = range {
        b = b.key_schema(key_elem(r, KeyType::Range));
    }
    b.build().expect("gsi")
}

/// A local index on `pk` with sort key `range`.
pub(crate) fn lsi(name: &str, range: &str, p: Projection) -> LocalSecondaryIndex {
    LocalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key_elem("pk", KeyType::Hash))
        .key_schema(key_elem(range, KeyType::Range))
        .projection(p)
        .build()
        .expect("lsi")
}

/// Creates an on-demand table keyed by `pk` (S) and, if `with_sk`, `sk`
/// (S), with the given indexes and extra attribute definitions; waits for
/// ACTIVE.
pub(crate) async fn create_indexed(
    c: &Client,
    name: &str,
    with_sk: bool,
    attrs: &[(&str, T)],
    lsis: Vec<LocalSecondaryIndex>,
    gsis: Vec<GlobalSecondaryIndex>,
) {
    let mut req = c
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr_def("pk", T::S))
        .key_schema(key_elem("pk", KeyType::Hash));
    if with_sk {
        req = req
            .attribute_definitions(attr_def("sk", T::S))
            .key_schema(key_elem("sk", KeyType::Range));
    }
    for (a, t) in attrs {
        req = req.attribute_definitions(attr_def(a, t.clone()));
    }
    if !lsis.is_empty() {
        req = req.set_local_secondary_indexes(Some(lsis));
    }
    if !gsis.is_empty() {
        req = req.set_global_secondary_indexes(Some(gsis));
    }
    req.send().await.expect("create indexed table");
    wait_active(c, name).await;
}

pub(crate) async fn put(c: &Client, table: &str, it: Item) {
    c.put_item()
        .table_name(table)
        .set_item(Some(it))
        .send()
        .await
        .expect("put item");
}

/// Writes items with BatchWriteItem, 25 at a time, retrying unprocessed ones.
async fn put_batch(c: &Client, table: &str, items: &[Item]) {
    for chunk in items.chunks(25) {
        let mut pending: HashMap<String, Vec<WriteRequest>> = HashMap::new();
        pending.insert(
            table.to_string(),
            chunk
                .iter()
                .map(|it| {
                    WriteRequest::builder()
                        .put_request(
                            PutRequest::builder()
                                .set_item(Some(it.clone()))
                                .build()
                                .expect("put request"),
                        )
                        .build()
                })
                .collect(),
        );
        for _ in 0..100 {
            let out = c
                .batch_write_item()
                .set_request_items(Some(pending))
                .send()
                .await
                .expect("batch write");
            pending = out.unprocessed_items().cloned().unwrap_or_default();
            if pending.values().all(|v| v.is_empty()) {
                break;
            }
        }
        assert!(pending.values().all(|v| v.is_empty()), "unprocessed items");
    }
}

/// Runs `probe` until it returns Some, at most [`INDEX_DEADLINE`]; panics
/// with `what` and the last observation otherwise.
pub(crate) async fn eventually<R, F, Fut>(what: &str, mut probe: F) -> R
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<R, String>>,
{
    let deadline = Instant::now() + INDEX_DEADLINE;
    loop {
        match probe().await {
            Ok(r) => return r,
            Err(last) => {
                assert!(
                    Instant::now() < deadline,
                    "{what}: not reached within {INDEX_DEADLINE:?}; last seen: {last}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Queries `index` for `pk_attr = value`, following LastEvaluatedKey;
/// returns every item in order.
pub(crate) async fn query_index(
    c: &Client,
    table: &str,
    index: &str,
    attr: &str,
    value: &str,
) -> Vec<Item> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let r = c
            .query()
            .table_name(table)
            .index_name(index)
            .key_condition_expression("#h = :v")
            .expression_attribute_names("#h", attr)
            .expression_attribute_values(":v", s(value))
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("query index");
        out.extend(r.items().iter().cloned());
        start = r.last_evaluated_key().cloned();
        if start.is_none() {
            return out;
        }
    }
}

/// Scans `index` (None: the table) completely, following LastEvaluatedKey,
/// optionally as one segment of a parallel scan, with an optional Limit.
pub(crate) async fn scan_all(
    c: &Client,
    table: &str,
    index: Option<&str>,
    segment: Option<(i32, i32)>,
    limit: Option<i32>,
) -> Vec<Item> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let r = c
            .scan()
            .table_name(table)
            .set_index_name(index.map(str::to_string))
            .set_segment(segment.map(|s| s.0))
            .set_total_segments(segment.map(|s| s.1))
            .set_limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan");
        out.extend(r.items().iter().cloned());
        start = r.last_evaluated_key().cloned();
        if start.is_none() {
            return out;
        }
    }
}

/// The `pk` values of items, sorted.
fn pks(items: &[Item]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|i| get_s(i, "pk").to_string()).collect();
    v.sort();
    v
}

/// An item as a sorted map, for order-independent comparison.
fn sorted(items: &[Item]) -> BTreeSet<String> {
    items
        .iter()
        .map(|i| format!("{:?}", i.iter().collect::<BTreeMap<_, _>>()))
        .collect()
}

/// Keeps only the named attributes of an item.
fn only(it: &Item, names: &[&str]) -> Item {
    it.iter()
        .filter(|(k, _)| names.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The DynamoDB size of an item whose values are all strings.
fn string_item_size(it: &Item) -> i64 {
    it.iter()
        .map(|(k, v)| match v {
            AttributeValue::S(s) => (k.len() + s.len()) as i64,
            other => panic!("string_item_size: {other:?}"),
        })
        .sum()
}

fn names<T: AsRef<str>>(keys: impl Iterator<Item = T>) -> BTreeSet<String> {
    keys.map(|k| k.as_ref().to_string()).collect()
}

/// Asserts a validation error, exactly on partita and DynamoDB itself; on
/// DynamoDB Local (whose wording differs for some of these) only the type.
pub(crate) fn assert_validation<T: std::fmt::Debug, E, R>(
    result: Result<T, partita_blackbox_tests::aws_sdk_dynamodb::error::SdkError<E, R>>,
    message: &str,
) where
    E: partita_blackbox_tests::aws_sdk_dynamodb::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    let e = api_err(result);
    assert_eq!(e.code, "ValidationException", "{e:?}");
    if !is_dynamodb_local() {
        assert_eq!(e.message, message);
    }
}

// --------------------------------------------------------- local indexes

/// A table with three LSIs: ALL on `l1`, KEYS_ONLY on `l2`, INCLUDE [a] on
/// `l3`; items in one collection.
async fn lsi_table(c: &Client) -> (String, Vec<Item>) {
    let t = unique_name("lsi");
    create_indexed(
        c,
        &t,
        true,
        &[("l1", T::S), ("l2", T::S), ("l3", T::S)],
        vec![
            lsi("by_l1", "l1", all()),
            lsi("by_l2", "l2", keys_only()),
            lsi("by_l3", "l3", include(&["a"])),
        ],
        vec![],
    )
    .await;
    let items: Vec<Item> = (0..6)
        .map(|i| {
            // l1 reverses the table order; l2 is absent on odd items
            // (sparse); every item has l3.
            let mut it = item([
                ("pk", s("p")),
                ("sk", s(&format!("s{i}"))),
                ("l1", s(&format!("x{}", 9 - i))),
                ("l3", s(&format!("z{i}"))),
                ("a", s(&format!("a{i}"))),
                ("b", s(&format!("b{i}"))),
            ]);
            if i % 2 == 0 {
                it.insert("l2".into(), s(&format!("y{i}")));
            }
            it
        })
        .collect();
    (t, items)
}

#[tokio::test]
async fn lsi_reads_are_strongly_consistent_with_each_projection() {
    let env = TestEnv::new();
    let c = &env.client;
    let (t, items) = lsi_table(c).await;
    // Each write is visible to the very next consistent index query.
    for (n, it) in items.iter().enumerate() {
        put(c, &t, it.clone()).await;
        let r = c
            .query()
            .table_name(&t)
            .index_name("by_l1")
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", s("p"))
            .consistent_read(true)
            .send()
            .await
            .expect("consistent lsi query");
        assert_eq!(r.count(), n as i32 + 1);
    }
    let q = |index: &str| {
        c.query()
            .table_name(&t)
            .index_name(index)
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", s("p"))
            .consistent_read(true)
    };
    // ALL: whole items, in l1 order (the reverse of sk order).
    let r = q("by_l1").send().await.expect("query by_l1");
    let mut reversed = items.clone();
    reversed.reverse();
    assert_eq!(r.items(), reversed.as_slice());
    // KEYS_ONLY and sparse: only the even items, table and index keys.
    let r = q("by_l2").send().await.expect("query by_l2");
    let expected: Vec<Item> = items
        .iter()
        .step_by(2)
        .map(|i| only(i, &["pk", "sk", "l2"]))
        .collect();
    assert_eq!(r.items(), expected.as_slice());
    // INCLUDE: keys plus a.
    let r = q("by_l3").send().await.expect("query by_l3");
    let expected: Vec<Item> = items
        .iter()
        .map(|i| only(i, &["pk", "sk", "l3", "a"]))
        .collect();
    assert_eq!(r.items(), expected.as_slice());
    // Select=ALL_PROJECTED_ATTRIBUTES is the same as the default.
    let r = q("by_l3")
        .select(Select::AllProjectedAttributes)
        .send()
        .await
        .expect("all projected");
    assert_eq!(r.items(), expected.as_slice());
    // A local index fetches what it does not project from the table:
    // Select=ALL_ATTRIBUTES and projections of non-projected attributes.
    let r = q("by_l2")
        .select(Select::AllAttributes)
        .send()
        .await
        .expect("all attributes on keys-only lsi");
    let evens: Vec<Item> = items.iter().step_by(2).cloned().collect();
    assert_eq!(r.items(), evens.as_slice());
    let r = q("by_l3")
        .projection_expression("sk, b")
        .send()
        .await
        .expect("non-projected attribute on lsi");
    let expected: Vec<Item> = items.iter().map(|i| only(i, &["sk", "b"])).collect();
    assert_eq!(r.items(), expected.as_slice());
    // A Query filter on an attribute the index does not project is rejected.
    assert_validation(
        q("by_l2")
            .filter_expression("b = :b OR a = :b")
            .expression_attribute_values(":b", s("b0"))
            .send()
            .await,
        "One or more parameter values were invalid: Secondary index by_l2 does not project one or more filter attributes: [a, b]",
    );
    // A Scan filter on one reads the table's item and returns the projection.
    let r = c
        .scan()
        .table_name(&t)
        .index_name("by_l2")
        .filter_expression("b = :b")
        .expression_attribute_values(":b", s("b4"))
        .send()
        .await
        .expect("scan lsi with filter on non-projected attribute");
    assert_eq!(r.items(), &[only(&items[4], &["pk", "sk", "l2"])]);
    assert_eq!((r.count(), r.scanned_count()), (1, 3));
    // Updates and deletes maintain the index in the same write.
    c.update_item()
        .table_name(&t)
        .key("pk", s("p"))
        .key("sk", s("s0"))
        .update_expression("REMOVE l2")
        .send()
        .await
        .expect("remove l2");
    c.delete_item()
        .table_name(&t)
        .key("pk", s("p"))
        .key("sk", s("s2"))
        .send()
        .await
        .expect("delete s2");
    let r = q("by_l2").send().await.expect("query by_l2 again");
    assert_eq!(r.items(), &[only(&items[4], &["pk", "sk", "l2"])]);
}

#[tokio::test]
async fn lsis_only_at_create_table_and_at_most_five() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = unique_name("lsi_max");
    let attrs: Vec<(String, T)> = (0..6).map(|i| (format!("l{i}"), T::S)).collect();
    let attr_refs: Vec<(&str, T)> = attrs.iter().map(|(a, t)| (a.as_str(), t.clone())).collect();
    let six: Vec<LocalSecondaryIndex> = (0..6)
        .map(|i| lsi(&format!("lsi{i}"), &format!("l{i}"), keys_only()))
        .collect();
    let mut req = c
        .create_table()
        .table_name(&t)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr_def("pk", T::S))
        .attribute_definitions(attr_def("sk", T::S))
        .key_schema(key_elem("pk", KeyType::Hash))
        .key_schema(key_elem("sk", KeyType::Range))
        .set_local_secondary_indexes(Some(six.clone()));
    for (a, ty) in &attr_refs {
        req = req.attribute_definitions(attr_def(a, ty.clone()));
    }
    assert_validation(
        req.send().await,
        "One or more parameter values were invalid: Number of LocalSecondaryIndexes exceeds per-table limit of 5",
    );
    // Five are fine, and DescribeTable lists them.
    create_indexed(c, &t, true, &attr_refs[..5], six[..5].to_vec(), vec![]).await;
    let d = c
        .describe_table()
        .table_name(&t)
        .send()
        .await
        .expect("describe");
    let listed = names(
        d.table()
            .expect("table")
            .local_secondary_indexes()
            .iter()
            .map(|i| i.index_name().unwrap_or_default()),
    );
    assert_eq!(
        listed,
        names(["lsi0", "lsi1", "lsi2", "lsi3", "lsi4"].iter())
    );
}

#[tokio::test]
async fn item_collection_metrics_with_return_item_collection_metrics_size() {
    if skip_on_dynamodb_local(
        "item_collection_metrics_with_return_item_collection_metrics_size",
        "DynamoDB Local never returns ItemCollectionMetrics",
    ) {
        return;
    }
    let env = TestEnv::new();
    let c = &env.client;
    let (t, items) = lsi_table(c).await;
    let collection = item([("pk", s("p"))]);
    let check =
        |m: Option<&partita_blackbox_tests::aws_sdk_dynamodb::types::ItemCollectionMetrics>| {
            let m = m.expect("ItemCollectionMetrics");
            assert_eq!(m.item_collection_key(), Some(&collection));
            assert_eq!(m.size_estimate_range_gb(), &[0.0, 1.0]);
        };
    let r = c
        .put_item()
        .table_name(&t)
        .set_item(Some(items[0].clone()))
        .return_item_collection_metrics(ReturnItemCollectionMetrics::Size)
        .send()
        .await
        .expect("put");
    check(r.item_collection_metrics());
    let r = c
        .update_item()
        .table_name(&t)
        .key("pk", s("p"))
        .key("sk", s("s0"))
        .update_expression("SET b = :b")
        .expression_attribute_values(":b", s("new"))
        .return_item_collection_metrics(ReturnItemCollectionMetrics::Size)
        .send()
        .await
        .expect("update");
    check(r.item_collection_metrics());
    let r = c
        .delete_item()
        .table_name(&t)
        .key("pk", s("p"))
        .key("sk", s("s0"))
        .return_item_collection_metrics(ReturnItemCollectionMetrics::Size)
        .send()
        .await
        .expect("delete");
    check(r.item_collection_metrics());
    // Not asked for: not returned.
    let r = c
        .put_item()
        .table_name(&t)
        .set_item(Some(items[1].clone()))
        .return_item_collection_metrics(ReturnItemCollectionMetrics::None)
        .send()
        .await
        .expect("put without metrics");
    assert!(r.item_collection_metrics().is_none());
    // A table without local indexes has no item collections to report.
    let plain = create_composite_table(c, "icm_plain").await;
    let r = c
        .put_item()
        .table_name(&plain)
        .set_item(Some(item([("pk", s("p")), ("sk", s("s"))])))
        .return_item_collection_metrics(ReturnItemCollectionMetrics::Size)
        .send()
        .await
        .expect("put on plain table");
    assert!(r.item_collection_metrics().is_none());
}

// -------------------------------------------------------- global indexes

/// A table keyed by pk with three GSIs on `g` (S) / `r` (S): KEYS_ONLY,
/// INCLUDE [a] (hash only), ALL.
async fn gsi_table(c: &Client) -> String {
    let t = unique_name("gsi");
    create_indexed(
        c,
        &t,
        false,
        &[("g", T::S), ("r", T::S)],
        vec![],
        vec![
            gsi("g_keys", "g", Some("r"), keys_only()),
            gsi("g_inc", "g", None, include(&["a"])),
            gsi("g_all", "g", Some("r"), all()),
        ],
    )
    .await;
    t
}

#[tokio::test]
async fn gsi_projections_sparse_entries_and_moves() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = gsi_table(c).await;
    // i0..i5 indexed under g=x with r descending; i6 lacks r (only in the
    // hash-only index); i7 lacks g (in no index).
    let mut items: Vec<Item> = (0..6)
        .map(|i| {
            item([
                ("pk", s(&format!("i{i}"))),
                ("g", s("x")),
                ("r", s(&format!("r{}", 9 - i))),
                ("a", s(&format!("a{i}"))),
                ("b", s(&format!("b{i}"))),
            ])
        })
        .collect();
    items.push(item([("pk", s("i6")), ("g", s("x")), ("a", s("a6"))]));
    items.push(item([("pk", s("i7")), ("r", s("r7")), ("a", s("a7"))]));
    for it in &items {
        put(c, &t, it.clone()).await;
    }
    let in_order: Vec<Item> = items[..6].iter().rev().cloned().collect();
    let all_entries = eventually("g_all holds i0..i5", || async {
        let got = query_index(c, &t, "g_all", "g", "x").await;
        if got.len() == 6 {
            Ok(got)
        } else {
            Err(format!("{} items", got.len()))
        }
    })
    .await;
    assert_eq!(all_entries, in_order, "ALL projection, index sort order");
    let keys = eventually("g_keys holds i0..i5", || async {
        let got = query_index(c, &t, "g_keys", "g", "x").await;
        if got.len() == 6 {
            Ok(got)
        } else {
            Err(format!("{} items", got.len()))
        }
    })
    .await;
    let expected: Vec<Item> = in_order
        .iter()
        .map(|i| only(i, &["pk", "g", "r"]))
        .collect();
    assert_eq!(keys, expected, "KEYS_ONLY projection");
    let inc = eventually("g_inc holds i0..i6", || async {
        let got = query_index(c, &t, "g_inc", "g", "x").await;
        if got.len() == 7 {
            Ok(got)
        } else {
            Err(format!("{} items", got.len()))
        }
    })
    .await;
    let expected: Vec<Item> = items[..7]
        .iter()
        .map(|i| only(i, &["pk", "g", "a"]))
        .collect();
    assert_eq!(sorted(&inc), sorted(&expected), "INCLUDE projection");
    // Moving an item to another index partition, and dropping it from the
    // index by removing its key attribute.
    c.update_item()
        .table_name(&t)
        .key("pk", s("i0"))
        .update_expression("SET g = :y")
        .expression_attribute_values(":y", s("y"))
        .send()
        .await
        .expect("move i0");
    c.update_item()
        .table_name(&t)
        .key("pk", s("i1"))
        .update_expression("REMOVE g")
        .send()
        .await
        .expect("unindex i1");
    c.delete_item()
        .table_name(&t)
        .key("pk", s("i2"))
        .send()
        .await
        .expect("delete i2");
    eventually("g_all reflects the move, removal and delete", || async {
        let x = pks(&query_index(c, &t, "g_all", "g", "x").await);
        let y = pks(&query_index(c, &t, "g_all", "g", "y").await);
        if x == ["i3", "i4", "i5"] && y == ["i0"] {
            Ok(())
        } else {
            Err(format!("x={x:?} y={y:?}"))
        }
    })
    .await;
    let y = query_index(c, &t, "g_all", "g", "y").await;
    items[0].insert("g".into(), s("y"));
    assert_eq!(y, vec![items[0].clone()]);
    eventually("g_inc reflects them too", || async {
        let x = pks(&query_index(c, &t, "g_inc", "g", "x").await);
        if x == ["i3", "i4", "i5", "i6"] {
            Ok(())
        } else {
            Err(format!("{x:?}"))
        }
    })
    .await;
}

#[tokio::test]
async fn gsi_read_rules_consistency_select_and_projection() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = gsi_table(c).await;
    let it = item([
        ("pk", s("k")),
        ("g", s("x")),
        ("r", s("r")),
        ("a", s("A")),
        ("b", s("B")),
    ]);
    put(c, &t, it.clone()).await;
    let q = |index: &str| {
        c.query()
            .table_name(&t)
            .index_name(index)
            .key_condition_expression("g = :g")
            .expression_attribute_values(":g", s("x"))
    };
    eventually("g_inc has the item", || async {
        let n = q("g_inc")
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?
            .count();
        if n == 1 {
            Ok(())
        } else {
            Err(format!("count {n}"))
        }
    })
    .await;
    if !skip_on_dynamodb_local(
        "gsi consistent read message",
        "DynamoDB Local words it 'Consistent read cannot be true when querying a GSI'",
    ) {
        assert_api_err(
            q("g_keys").consistent_read(true).send().await,
            "ValidationException",
            "Consistent reads are not supported on global secondary indexes",
        );
        assert_api_err(
            c.scan()
                .table_name(&t)
                .index_name("g_all")
                .consistent_read(true)
                .send()
                .await,
            "ValidationException",
            "Consistent reads are not supported on global secondary indexes",
        );
    }
    // Select=ALL_ATTRIBUTES needs an ALL projection.
    for index in ["g_keys", "g_inc"] {
        let msg = format!(
            "One or more parameter values were invalid: Select type ALL_ATTRIBUTES is not supported for global secondary index {index} because its projection type is not ALL"
        );
        assert_api_err(
            q(index).select(Select::AllAttributes).send().await,
            "ValidationException",
            &msg,
        );
        assert_api_err(
            c.scan()
                .table_name(&t)
                .index_name(index)
                .select(Select::AllAttributes)
                .send()
                .await,
            "ValidationException",
            &msg,
        );
    }
    let r = q("g_all")
        .select(Select::AllAttributes)
        .send()
        .await
        .expect("ALL_ATTRIBUTES on an ALL index");
    assert_eq!(r.items(), std::slice::from_ref(&it));
    // ALL_PROJECTED_ATTRIBUTES returns the projection.
    let r = q("g_inc")
        .select(Select::AllProjectedAttributes)
        .send()
        .await
        .expect("ALL_PROJECTED_ATTRIBUTES");
    assert_eq!(r.items(), &[only(&it, &["pk", "g", "a"])]);
    let r = q("g_keys")
        .select(Select::Count)
        .send()
        .await
        .expect("COUNT");
    assert_eq!((r.count(), r.items().len()), (1, 0));
    // A global index cannot fetch from the table: asking for a
    // non-projected attribute is an error, in a projection (Query and Scan,
    // expression or AttributesToGet) and in a Query filter.
    assert_api_err(
        q("g_inc").projection_expression("b, a, c").send().await,
        "ValidationException",
        "One or more parameter values were invalid: Global secondary index g_inc does not project [b, c]",
    );
    assert_api_err(
        c.scan()
            .table_name(&t)
            .index_name("g_keys")
            .projection_expression("#b")
            .expression_attribute_names("#b", "b")
            .send()
            .await,
        "ValidationException",
        "One or more parameter values were invalid: Global secondary index g_keys does not project [b]",
    );
    assert_api_err(
        c.scan()
            .table_name(&t)
            .index_name("g_keys")
            .attributes_to_get("a")
            .send()
            .await,
        "ValidationException",
        "One or more parameter values were invalid: Global secondary index g_keys does not project [a]",
    );
    assert_api_err(
        q("g_keys")
            .filter_expression("a = :a")
            .expression_attribute_values(":a", s("A"))
            .send()
            .await,
        "ValidationException",
        "One or more parameter values were invalid: Secondary index g_keys does not project one or more filter attributes: [a]",
    );
    // Projected attributes (nested paths by their root) are fine.
    let r = q("g_inc")
        .projection_expression("a, pk")
        .filter_expression("a = :a")
        .expression_attribute_values(":a", s("A"))
        .send()
        .await
        .expect("projected attributes");
    assert_eq!(r.items(), &[only(&it, &["pk", "a"])]);
    assert_api_err(
        q("nope").send().await,
        "ValidationException",
        "The table does not have the specified index: nope",
    );
}

#[tokio::test]
async fn index_key_type_checks_reject_the_whole_write() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = unique_name("idx_types");
    create_indexed(
        c,
        &t,
        true,
        &[("g", T::S), ("gn", T::N), ("l", T::S)],
        vec![lsi("by_l", "l", keys_only())],
        vec![gsi("by_g", "g", Some("gn"), keys_only())],
    )
    .await;
    let original = item([
        ("pk", s("p")),
        ("sk", s("s")),
        ("g", s("x")),
        ("gn", n("1")),
        ("l", s("l")),
    ]);
    put(c, &t, original.clone()).await;
    let mismatch = |attr: &str, expected: &str, actual: &str, index: &str| {
        format!(
            "One or more parameter values were invalid: Type mismatch for Index Key {attr} Expected: {expected} Actual: {actual} IndexName: {index}"
        )
    };
    let new_key = || item([("pk", s("p")), ("sk", s("new"))]);
    let mut bad = new_key();
    bad.insert("gn".into(), s("1"));
    assert_validation(
        c.put_item().table_name(&t).set_item(Some(bad)).send().await,
        &mismatch("gn", "N", "S", "by_g"),
    );
    let mut bad = new_key();
    bad.insert("l".into(), n("1"));
    assert_validation(
        c.put_item().table_name(&t).set_item(Some(bad)).send().await,
        &mismatch("l", "S", "N", "by_l"),
    );
    let mut bad = new_key();
    bad.insert("g".into(), AttributeValue::Ss(vec!["x".into()]));
    assert_validation(
        c.put_item().table_name(&t).set_item(Some(bad)).send().await,
        &mismatch("g", "S", "SS", "by_g"),
    );
    // Empty string index keys.
    let mut bad = new_key();
    bad.insert("g".into(), s(""));
    assert_validation(
        c.put_item().table_name(&t).set_item(Some(bad)).send().await,
        "One or more parameter values are not valid. A value specified for a secondary index key is not supported. The AttributeValue for a key attribute cannot contain an empty string value. IndexName: by_g, IndexKey: g",
    );
    assert!(
        c.get_item()
            .table_name(&t)
            .set_key(Some(new_key()))
            .consistent_read(true)
            .send()
            .await
            .expect("get")
            .item()
            .is_none(),
        "a rejected put wrote nothing"
    );
    // UpdateItem and BatchWriteItem are checked too; the item is unchanged.
    if !skip_on_dynamodb_local(
        "UpdateItem index key type check",
        "DynamoDB Local accepts an UpdateItem that sets an index key to the wrong type",
    ) {
        assert_validation(
            c.update_item()
                .table_name(&t)
                .key("pk", s("p"))
                .key("sk", s("s"))
                .update_expression("SET gn = :v, extra = :v")
                .expression_attribute_values(":v", s("text"))
                .send()
                .await,
            &mismatch("gn", "N", "S", "by_g"),
        );
    }
    let mut bad = new_key();
    bad.insert("gn".into(), s("1"));
    let good = item([("pk", s("p")), ("sk", s("ok"))]);
    assert_eq!(
        api_err(
            c.batch_write_item()
                .request_items(
                    &t,
                    [good, bad]
                        .into_iter()
                        .map(|it| {
                            WriteRequest::builder()
                                .put_request(
                                    PutRequest::builder()
                                        .set_item(Some(it))
                                        .build()
                                        .expect("put"),
                                )
                                .build()
                        })
                        .collect(),
                )
                .send()
                .await
        )
        .code,
        "ValidationException"
    );
    // In a transaction, the bad put cancels the whole transaction.
    let mut bad = new_key();
    bad.insert("gn".into(), s("1"));
    let tx_put = |it: Item| {
        TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(&t)
                    .set_item(Some(it))
                    .build()
                    .expect("put"),
            )
            .build()
    };
    assert_api_err(
        c.transact_write_items()
            .transact_items(tx_put(item([("pk", s("p")), ("sk", s("tx"))])))
            .transact_items(tx_put(bad))
            .send()
            .await,
        "TransactionCanceledException",
        "Transaction cancelled, please refer cancellation reasons for specific reasons [None, ValidationError]",
    );
    let everything = scan_all(c, &t, None, None, None).await;
    assert_eq!(
        everything,
        vec![original.clone()],
        "nothing else was written"
    );
    // The indexes hold only the original item.
    let l = c
        .query()
        .table_name(&t)
        .index_name("by_l")
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", s("p"))
        .send()
        .await
        .expect("lsi");
    assert_eq!(l.items(), &[only(&original, &["pk", "sk", "l"])]);
    let g = eventually("by_g holds the original", || async {
        let got = scan_all(c, &t, Some("by_g"), None, None).await;
        if got.len() == 1 {
            Ok(got)
        } else {
            Err(format!("{got:?}"))
        }
    })
    .await;
    assert_eq!(g, vec![only(&original, &["pk", "sk", "g", "gn"])]);
}

#[tokio::test]
async fn parallel_scan_segments_partition_an_index_exactly() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = unique_name("idx_pscan");
    create_indexed(
        c,
        &t,
        true,
        &[("g", T::S), ("l", T::S)],
        vec![lsi("by_l", "l", keys_only())],
        vec![gsi("by_g", "g", None, keys_only())],
    )
    .await;
    let items: Vec<Item> = (0..400)
        .map(|i| {
            let mut it = item([
                ("pk", s(&format!("p{}", i % 37))),
                ("sk", s(&format!("s{i:04}"))),
                ("l", s(&format!("l{}", i % 11))),
            ]);
            if i % 4 != 0 {
                it.insert("g".into(), s(&format!("g{}", i % 5)));
            }
            it
        })
        .collect();
    put_batch(c, &t, &items).await;
    let key = |it: &Item| format!("{}/{}", get_s(it, "pk"), get_s(it, "sk"));
    for (index, expected) in [("by_g", 300usize), ("by_l", 400usize)] {
        let want: BTreeSet<String> = items
            .iter()
            .filter(|it| index == "by_l" || it.contains_key("g"))
            .map(key)
            .collect();
        assert_eq!(want.len(), expected);
        eventually(&format!("{index} holds {expected} entries"), || async {
            let n = scan_all(c, &t, Some(index), None, None).await.len();
            if n == expected {
                Ok(())
            } else {
                Err(format!("{n}"))
            }
        })
        .await;
        for total in [1, 3, 7] {
            let mut union = BTreeSet::new();
            let mut sum = 0;
            for seg in 0..total {
                let part = scan_all(c, &t, Some(index), Some((seg, total)), Some(13)).await;
                sum += part.len();
                union.extend(part.iter().map(key));
            }
            assert_eq!(sum, expected, "{index}: segments of {total} overlap");
            assert_eq!(union, want, "{index}: segments of {total} miss items");
        }
    }
}

#[tokio::test]
async fn index_pagination_keys_and_every_item_once() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = unique_name("idx_pages");
    create_indexed(
        c,
        &t,
        true,
        &[("g", T::S), ("r", T::S), ("l", T::S)],
        vec![lsi("by_l", "l", all())],
        vec![gsi("by_gr", "g", Some("r"), keys_only())],
    )
    .await;
    // Many items share each index key: the index key alone cannot say
    // where a page ended, the table key must.
    let items: Vec<Item> = (0..90)
        .map(|i| {
            item([
                ("pk", s(&format!("p{}", i % 2))),
                ("sk", s(&format!("s{i:03}"))),
                ("g", s("same")),
                ("r", s(&format!("r{}", i % 3))),
                ("l", s(&format!("l{}", i % 4))),
            ])
        })
        .collect();
    put_batch(c, &t, &items).await;
    let gsi_keys = names(["pk", "sk", "g", "r"].iter());
    let lsi_keys = names(["pk", "sk", "l"].iter());
    eventually("by_gr holds 90", || async {
        let n = query_index(c, &t, "by_gr", "g", "same").await.len();
        if n == 90 {
            Ok(())
        } else {
            Err(format!("{n}"))
        }
    })
    .await;
    // Query pages on the GSI.
    let mut seen = Vec::new();
    let mut start: Option<Item> = None;
    let mut pages = 0;
    loop {
        let r = c
            .query()
            .table_name(&t)
            .index_name("by_gr")
            .key_condition_expression("g = :g")
            .expression_attribute_values(":g", s("same"))
            .limit(7)
            .set_exclusive_start_key(start.clone())
            .send()
            .await
            .expect("query page");
        pages += 1;
        seen.extend(r.items().iter().cloned());
        match r.last_evaluated_key() {
            Some(k) => {
                assert_eq!(names(k.keys()), gsi_keys, "GSI LastEvaluatedKey");
                assert_eq!(
                    Some(k),
                    r.items()
                        .last()
                        .map(|i| only(i, &["pk", "sk", "g", "r"]))
                        .as_ref()
                );
                start = Some(k.clone());
            }
            None => break,
        }
    }
    assert_eq!(
        pages, 13,
        "90 items in pages of 7: 12 full pages and 1 of 6"
    );
    assert_eq!(pks_sks(&seen), all_keys(&items), "every item exactly once");
    let rs: Vec<String> = seen.iter().map(|i| get_s(i, "r").to_string()).collect();
    let mut sorted_rs = rs.clone();
    sorted_rs.sort();
    assert_eq!(rs, sorted_rs, "in index sort-key order");
    // Query pages on the LSI, backwards.
    let mut seen = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let r = c
            .query()
            .table_name(&t)
            .index_name("by_l")
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", s("p0"))
            .scan_index_forward(false)
            .limit(4)
            .set_exclusive_start_key(start.clone())
            .send()
            .await
            .expect("lsi page");
        seen.extend(r.items().iter().cloned());
        match r.last_evaluated_key() {
            Some(k) => {
                assert_eq!(names(k.keys()), lsi_keys, "LSI LastEvaluatedKey");
                start = Some(k.clone());
            }
            None => break,
        }
    }
    let p0: Vec<Item> = items
        .iter()
        .filter(|i| get_s(i, "pk") == "p0")
        .cloned()
        .collect();
    assert_eq!(sorted(&seen), sorted(&p0));
    assert_eq!(seen.len(), 45);
    // Scan pages on both indexes.
    for (index, want_keys) in [("by_gr", &gsi_keys), ("by_l", &lsi_keys)] {
        let mut seen = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let r = c
                .scan()
                .table_name(&t)
                .index_name(index)
                .limit(11)
                .set_exclusive_start_key(start.clone())
                .send()
                .await
                .expect("scan page");
            seen.extend(r.items().iter().cloned());
            match r.last_evaluated_key() {
                Some(k) => {
                    assert_eq!(&names(k.keys()), want_keys, "{index} scan key");
                    start = Some(k.clone());
                }
                None => break,
            }
        }
        assert_eq!(pks_sks(&seen), all_keys(&items), "{index}: every item once");
    }
    // A start key without the table's key attributes is rejected.
    assert_validation(
        c.query()
            .table_name(&t)
            .index_name("by_gr")
            .key_condition_expression("g = :g")
            .expression_attribute_values(":g", s("same"))
            .exclusive_start_key("g", s("same"))
            .exclusive_start_key("r", s("r0"))
            .send()
            .await,
        "The provided starting key is invalid: The provided key element does not match the schema",
    );
}

fn pks_sks(items: &[Item]) -> Vec<String> {
    let mut v: Vec<String> = items
        .iter()
        .map(|i| format!("{}/{}", get_s(i, "pk"), get_s(i, "sk")))
        .collect();
    v.sort();
    v
}

fn all_keys(items: &[Item]) -> Vec<String> {
    let v = pks_sks(items);
    let set: BTreeSet<&String> = v.iter().collect();
    assert_eq!(set.len(), v.len(), "test items have distinct keys");
    v
}

#[tokio::test]
async fn describe_table_reports_index_sizes_and_counts() {
    if skip_on_dynamodb_local(
        "describe_table_reports_index_sizes_and_counts",
        "DynamoDB Local's index statistics are not DynamoDB's",
    ) {
        return;
    }
    let env = TestEnv::new();
    let c = &env.client;
    let t = unique_name("idx_stats");
    create_indexed(
        c,
        &t,
        true,
        &[("g", T::S), ("l", T::S)],
        vec![lsi("by_l", "l", include(&["a"]))],
        vec![
            gsi("g_keys", "g", None, keys_only()),
            gsi("g_all", "g", None, all()),
        ],
    )
    .await;
    let items: Vec<Item> = (0..50)
        .map(|i| {
            let mut it = item([
                ("pk", s(&format!("p{}", i % 5))),
                ("sk", s(&format!("s{i:02}"))),
                ("a", s("aaaaaaaaaa")),
                ("b", s("bbbbbbbbbbbbbbbbbbbb")),
            ]);
            if i % 2 == 0 {
                it.insert("g".into(), s(&format!("g{}", i % 3)));
            }
            if i % 5 != 0 {
                it.insert("l".into(), s("l"));
            }
            it
        })
        .collect();
    put_batch(c, &t, &items).await;
    let expect = |pred: &dyn Fn(&Item) -> bool, keep: Option<&[&str]>| -> (i64, i64) {
        let chosen: Vec<Item> = items.iter().filter(|i| pred(i)).cloned().collect();
        let bytes = chosen
            .iter()
            .map(|i| string_item_size(&keep.map(|k| only(i, k)).unwrap_or_else(|| i.clone())))
            .sum();
        (chosen.len() as i64, bytes)
    };
    let want: BTreeMap<&str, (i64, i64)> = [
        ("table", expect(&|_| true, None)),
        (
            "by_l",
            expect(&|i| i.contains_key("l"), Some(&["pk", "sk", "l", "a"])),
        ),
        (
            "g_keys",
            expect(&|i| i.contains_key("g"), Some(&["pk", "sk", "g"])),
        ),
        ("g_all", expect(&|i| i.contains_key("g"), None)),
    ]
    .into_iter()
    .collect();
    assert_eq!(want["g_keys"].0, 25);
    assert_eq!(want["by_l"].0, 40);
    eventually("DescribeTable statistics", || async {
        let d = c
            .describe_table()
            .table_name(&t)
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        let table = d.table().expect("table");
        let mut got = BTreeMap::new();
        got.insert(
            "table",
            (
                table.item_count().unwrap_or(-1),
                table.table_size_bytes().unwrap_or(-1),
            ),
        );
        for i in table.local_secondary_indexes() {
            got.insert(
                if i.index_name() == Some("by_l") {
                    "by_l"
                } else {
                    "?"
                },
                (
                    i.item_count().unwrap_or(-1),
                    i.index_size_bytes().unwrap_or(-1),
                ),
            );
        }
        for i in table.global_secondary_indexes() {
            let name = match i.index_name() {
                Some("g_keys") => "g_keys",
                Some("g_all") => "g_all",
                _ => "?",
            };
            got.insert(
                name,
                (
                    i.item_count().unwrap_or(-1),
                    i.index_size_bytes().unwrap_or(-1),
                ),
            );
        }
        if got == want {
            Ok(())
        } else {
            Err(format!("{got:?} (want {want:?})"))
        }
    })
    .await;
}

// ------------------------------------------- UpdateTable: create, delete

async fn index_status(c: &Client, t: &str, index: &str) -> Option<(IndexStatus, Option<bool>)> {
    let d = c
        .describe_table()
        .table_name(t)
        .send()
        .await
        .expect("describe");
    d.table()
        .expect("table")
        .global_secondary_indexes()
        .iter()
        .find(|i| i.index_name() == Some(index))
        .map(|i| {
            (
                i.index_status().cloned().expect("IndexStatus"),
                i.backfilling(),
            )
        })
}

pub(crate) async fn wait_index_active(c: &Client, t: &str, index: &str, deadline: Duration) {
    let end = Instant::now() + deadline;
    loop {
        let st = index_status(c, t, index).await;
        if let Some((IndexStatus::Active, backfilling)) = &st {
            assert_ne!(*backfilling, Some(true), "ACTIVE yet backfilling");
            return;
        }
        assert!(
            Instant::now() < end,
            "{index} not ACTIVE within {deadline:?}: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_index_gone(c: &Client, t: &str, index: &str) {
    let end = Instant::now() + Duration::from_secs(60);
    while index_status(c, t, index).await.is_some() {
        assert!(Instant::now() < end, "{index} still listed after 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn create_action(name: &str, hash: &str, p: Projection) -> GlobalSecondaryIndexUpdate {
    GlobalSecondaryIndexUpdate::builder()
        .create(
            CreateGlobalSecondaryIndexAction::builder()
                .index_name(name)
                .key_schema(key_elem(hash, KeyType::Hash))
                .projection(p)
                .build()
                .expect("create action"),
        )
        .build()
}

fn delete_action(name: &str) -> GlobalSecondaryIndexUpdate {
    GlobalSecondaryIndexUpdate::builder()
        .delete(
            DeleteGlobalSecondaryIndexAction::builder()
                .index_name(name)
                .build()
                .expect("delete action"),
        )
        .build()
}

#[tokio::test]
async fn update_table_creates_and_deletes_gsis_one_at_a_time() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = unique_name("gsi_update");
    create_indexed(c, &t, false, &[], vec![], vec![]).await;
    let items: Vec<Item> = (0..300)
        .map(|i| {
            let mut it = item([("pk", s(&format!("k{i:03}"))), ("v", s(&format!("v{i}")))]);
            if i % 3 != 0 {
                it.insert("g".into(), s(&format!("g{}", i % 4)));
            }
            it
        })
        .collect();
    put_batch(c, &t, &items).await;
    // One create or delete per call.
    for updates in [
        vec![
            create_action("one", "g", all()),
            create_action("two", "v", all()),
        ],
        vec![create_action("one", "g", all()), delete_action("two")],
    ] {
        let e = api_err(
            c.update_table()
                .table_name(&t)
                .attribute_definitions(attr_def("g", T::S))
                .attribute_definitions(attr_def("v", T::S))
                .set_global_secondary_index_updates(Some(updates))
                .send()
                .await,
        );
        assert_eq!(e.code, "LimitExceededException");
        assert!(
            e.message.ends_with(
                "Only 1 online index can be created or deleted simultaneously per table"
            ),
            "{e:?}"
        );
    }
    // Create: the answer shows the new index CREATING; it backfills and
    // becomes ACTIVE.
    let r = c
        .update_table()
        .table_name(&t)
        .attribute_definitions(attr_def("g", T::S))
        .global_secondary_index_updates(create_action("by_g", "g", include(&["v"])))
        .send()
        .await
        .expect("create gsi");
    let desc = r.table_description().expect("description");
    let new = &desc.global_secondary_indexes()[0];
    assert_eq!(new.index_name(), Some("by_g"));
    assert_eq!(new.index_status(), Some(&IndexStatus::Creating));
    wait_index_active(c, &t, "by_g", Duration::from_secs(60)).await;
    let mut total = 0;
    for g in 0..4 {
        let got = query_index(c, &t, "by_g", "g", &format!("g{g}")).await;
        let want: Vec<Item> = items
            .iter()
            .filter(|i| i.get("g") == Some(&s(&format!("g{g}"))))
            .cloned()
            .collect();
        assert_eq!(sorted(&got), sorted(&want), "g{g} after backfill");
        total += got.len();
    }
    assert_eq!(total, 200, "sparse: only items with g");
    // A second index on the same attribute under another name works too,
    // and new writes reach both.
    put(
        c,
        &t,
        item([("pk", s("new")), ("g", s("g0")), ("v", s("vn"))]),
    )
    .await;
    eventually("by_g sees the new item", || async {
        let n = query_index(c, &t, "by_g", "g", "g0").await.len();
        if n == 51 {
            Ok(())
        } else {
            Err(format!("{n}"))
        }
    })
    .await;
    // Delete: gone from DescribeTable, unreadable, and its data removed:
    // a new index of the same name on a table whose items lost g is empty.
    c.update_table()
        .table_name(&t)
        .global_secondary_index_updates(delete_action("by_g"))
        .send()
        .await
        .expect("delete gsi");
    wait_index_gone(c, &t, "by_g").await;
    assert_api_err(
        c.query()
            .table_name(&t)
            .index_name("by_g")
            .key_condition_expression("g = :g")
            .expression_attribute_values(":g", s("g0"))
            .send()
            .await,
        "ValidationException",
        "The table does not have the specified index: by_g",
    );
    let every = scan_all(c, &t, None, None, None).await;
    assert_eq!(every.len(), 301);
    for it in &every {
        if it.contains_key("g") {
            c.update_item()
                .table_name(&t)
                .key("pk", it["pk"].clone())
                .update_expression("REMOVE g")
                .send()
                .await
                .expect("remove g");
        }
    }
    c.update_table()
        .table_name(&t)
        .attribute_definitions(attr_def("g", T::S))
        .global_secondary_index_updates(create_action("by_g", "g", keys_only()))
        .send()
        .await
        .expect("re-create gsi");
    wait_index_active(c, &t, "by_g", Duration::from_secs(60)).await;
    assert!(scan_all(c, &t, Some("by_g"), None, None).await.is_empty());
    let d = c
        .describe_table()
        .table_name(&t)
        .send()
        .await
        .expect("describe");
    let g = &d.table().expect("table").global_secondary_indexes()[0];
    assert_eq!((g.item_count(), g.index_size_bytes()), (Some(0), Some(0)));
}

#[tokio::test]
async fn deleting_a_table_removes_its_index_data() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = unique_name("idx_drop");
    let make = || async {
        create_indexed(
            c,
            &t,
            true,
            &[("g", T::S), ("l", T::S)],
            vec![lsi("by_l", "l", all())],
            vec![gsi("by_g", "g", None, all())],
        )
        .await;
    };
    make().await;
    let items: Vec<Item> = (0..40)
        .map(|i| {
            item([
                ("pk", s("p")),
                ("sk", s(&format!("s{i:02}"))),
                ("g", s("g")),
                ("l", s(&format!("l{i}"))),
            ])
        })
        .collect();
    put_batch(c, &t, &items).await;
    eventually("by_g holds 40", || async {
        let n = query_index(c, &t, "by_g", "g", "g").await.len();
        if n == 40 {
            Ok(())
        } else {
            Err(format!("{n}"))
        }
    })
    .await;
    delete_table(c, &t).await;
    let end = Instant::now() + Duration::from_secs(60);
    while c.describe_table().table_name(&t).send().await.is_ok() {
        assert!(Instant::now() < end, "table still exists");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    make().await;
    // Same names, nothing left over, and it stays that way (no late
    // delivery of the old table's outbox).
    for _ in 0..5 {
        assert!(query_index(c, &t, "by_g", "g", "g").await.is_empty());
        let l = c
            .query()
            .table_name(&t)
            .index_name("by_l")
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", s("p"))
            .send()
            .await
            .expect("lsi");
        assert_eq!(l.count(), 0);
        assert!(scan_all(c, &t, Some("by_g"), None, None).await.is_empty());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !is_dynamodb_local() {
        let d = c
            .describe_table()
            .table_name(&t)
            .send()
            .await
            .expect("describe");
        let table = d.table().expect("table");
        assert_eq!(table.global_secondary_indexes()[0].item_count(), Some(0));
        assert_eq!(table.local_secondary_indexes()[0].item_count(), Some(0));
    }
}

// ------------------------------------------- backfill of a large table

const BIG_ITEMS: usize = 100_000;
const LOADERS: usize = 8;
const WRITERS: usize = 4;

/// The item a loader writes for number `i`: 100 values of `g`.
fn big_item(i: usize) -> Item {
    item([
        ("pk", s(&format!("i{i:06}"))),
        ("g", s(&format!("g{:02}", i % 100))),
        ("v", s("0")),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gsi_backfill_of_100k_items_with_concurrent_writes() {
    let env = TestEnv::new();
    let c = env.client.clone();
    let t = unique_name("backfill");
    create_indexed(&c, &t, false, &[], vec![], vec![]).await;

    // Load 100k items from several concurrent tasks.
    let started = Instant::now();
    let mut loads = Vec::new();
    for w in 0..LOADERS {
        let (c, t) = (c.clone(), t.clone());
        loads.push(tokio::spawn(async move {
            let mine: Vec<Item> = (w..BIG_ITEMS).step_by(LOADERS).map(big_item).collect();
            put_batch(&c, &t, &mine).await;
        }));
    }
    for l in loads {
        l.await.expect("loader");
    }
    println!("loaded {BIG_ITEMS} items in {:?}", started.elapsed());

    // The expected table: writers touch disjoint keys (writer w owns the
    // numbers congruent to w mod WRITERS), so their effects commute.
    let mut model: BTreeMap<String, Item> = (0..BIG_ITEMS)
        .map(|i| (format!("i{i:06}"), big_item(i)))
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let backfill_started = Instant::now();
    c.update_table()
        .table_name(&t)
        .attribute_definitions(attr_def("g", T::S))
        .global_secondary_index_updates(create_action("by_g", "g", include(&["v"])))
        .send()
        .await
        .expect("create gsi on 100k items");

    // Writers: during the backfill, each round puts a new item, moves an
    // existing item to another g, drops g from one (sparse) and deletes one.
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (c, t, stop) = (c.clone(), t.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut ops: Vec<(String, Option<Item>)> = Vec::new();
            let mut round = 0usize;
            // Keep writing until the index is ACTIVE, and a little after.
            let mut after_stop = 20;
            while after_stop > 0 {
                if stop.load(Ordering::Acquire) {
                    after_stop -= 1;
                }
                let base = (round * WRITERS + w) * 4 % BIG_ITEMS;
                let new_pk = format!("w{w}_{round:05}");
                let new = item([
                    ("pk", s(&new_pk)),
                    ("g", s(&format!("g{:02}", round % 100))),
                    ("v", s(&format!("{round}"))),
                ]);
                c.put_item()
                    .table_name(&t)
                    .set_item(Some(new.clone()))
                    .send()
                    .await
                    .expect("writer put");
                ops.push((new_pk, Some(new)));
                // Move: g and v change.
                let moved_pk = format!("i{base:06}");
                let moved = c
                    .update_item()
                    .table_name(&t)
                    .key("pk", s(&moved_pk))
                    .update_expression("SET g = :g, v = :v")
                    .expression_attribute_values(":g", s("moved"))
                    .expression_attribute_values(":v", s(&format!("m{round}")))
                    .return_values(ReturnValue::AllNew)
                    .send()
                    .await
                    .expect("writer move");
                ops.push((moved_pk, moved.attributes().cloned()));
                // Unindex: g removed.
                let sparse_pk = format!("i{:06}", base + 1);
                let sparse = c
                    .update_item()
                    .table_name(&t)
                    .key("pk", s(&sparse_pk))
                    .update_expression("REMOVE g")
                    .return_values(ReturnValue::AllNew)
                    .send()
                    .await
                    .expect("writer unindex");
                ops.push((sparse_pk, sparse.attributes().cloned()));
                // Delete.
                let gone_pk = format!("i{:06}", base + 2);
                c.delete_item()
                    .table_name(&t)
                    .key("pk", s(&gone_pk))
                    .send()
                    .await
                    .expect("writer delete");
                ops.push((gone_pk, None));
                round += 1;
            }
            ops
        }));
    }

    // Watch DescribeTable and reads until ACTIVE.
    let mut saw_backfilling = false;
    let mut saw_read_refused = false;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let st = index_status(&c, &t, "by_g").await;
        match st {
            Some((IndexStatus::Creating, Some(true))) => {
                saw_backfilling = true;
                let r = c
                    .query()
                    .table_name(&t)
                    .index_name("by_g")
                    .key_condition_expression("g = :g")
                    .expression_attribute_values(":g", s("g01"))
                    .send()
                    .await;
                if let Err(e) = r {
                    let e = api_err::<(), _, _>(Err(e));
                    assert_eq!(
                        (e.code.as_str(), e.message.as_str()),
                        (
                            "ValidationException",
                            "Cannot read from backfilling global secondary index: by_g"
                        )
                    );
                    saw_read_refused = true;
                }
            }
            Some((IndexStatus::Creating, _)) => {}
            Some((IndexStatus::Active, backfilling)) => {
                assert_ne!(backfilling, Some(true));
                break;
            }
            other => panic!("unexpected index state during backfill: {other:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "backfill did not finish in 600 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let backfill_time = backfill_started.elapsed();
    stop.store(true, Ordering::Release);
    let mut writes = 0;
    for w in writers {
        for (pk, after) in w.await.expect("writer") {
            writes += 1;
            match after {
                Some(it) => model.insert(pk, it),
                None => model.remove(&pk),
            };
        }
    }
    println!(
        "backfill of {BIG_ITEMS} items: ACTIVE after {backfill_time:?}, {writes} concurrent writes; \
         saw Backfilling={saw_backfilling}, read refused={saw_read_refused}"
    );
    assert!(
        saw_backfilling,
        "DescribeTable never showed CREATING with Backfilling=true"
    );
    assert!(saw_read_refused, "no read was refused while backfilling");

    // The table is what the writers made it.
    let table_items = scan_all(&c, &t, None, None, None).await;
    assert_eq!(table_items.len(), model.len());
    let want_table: Vec<&Item> = model.values().collect();
    let mut got_table = table_items.clone();
    got_table.sort_by(|a, b| get_s(a, "pk").cmp(get_s(b, "pk")));
    assert!(
        got_table.iter().eq(want_table.iter().copied()),
        "table differs from the writers' model"
    );

    // The index matches the table exactly (once delivery caught up with the
    // writes made after ACTIVE).
    let want_index: BTreeSet<String> = sorted(
        &model
            .values()
            .filter(|i| i.contains_key("g"))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let mut index_items = Vec::new();
    let deadline = Instant::now() + INDEX_DEADLINE;
    loop {
        let mut parts = Vec::new();
        for seg in 0..4 {
            let (c, t) = (c.clone(), t.clone());
            parts.push(tokio::spawn(async move {
                scan_all(&c, &t, Some("by_g"), Some((seg, 4)), None).await
            }));
        }
        index_items.clear();
        for p in parts {
            index_items.extend(p.await.expect("scan segment"));
        }
        if sorted(&index_items) == want_index && index_items.len() == want_index.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "index has {} entries, table says {} (missing {}, extra {})",
            index_items.len(),
            want_index.len(),
            want_index.difference(&sorted(&index_items)).count(),
            sorted(&index_items).difference(&want_index).count(),
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Queries see every item: each g value's items, exactly.
    let mut by_g: BTreeMap<String, usize> = BTreeMap::new();
    for it in model.values() {
        if let Some(AttributeValue::S(g)) = it.get("g") {
            *by_g.entry(g.clone()).or_default() += 1;
        }
    }
    assert_eq!(by_g.len(), 101, "g00..g99 and moved");
    for (g, count) in &by_g {
        let got = query_index(&c, &t, "by_g", "g", g).await;
        assert_eq!(got.len(), *count, "query on g={g}");
    }
    println!("100k backfill test total {:?}", started.elapsed());
}
