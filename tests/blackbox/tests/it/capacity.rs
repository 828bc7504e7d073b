//! ReturnConsumedCapacity with DynamoDB's exact arithmetic, and
//! ReturnItemCollectionMetrics.
//!
//! Item size = sum over attributes of (UTF-8 name length + value size); a
//! string's size is its UTF-8 length. Writes cost 1 unit per started KB of
//! the larger of the old and new item; strongly consistent reads 1 unit per
//! started 4 KB, eventually consistent reads half that. Query and Scan add
//! up the sizes of all items read (before filtering) and round once;
//! BatchGetItem rounds each item.

use partita_blackbox_tests::aws_sdk_dynamodb::types::{
    BillingMode, ConsumedCapacity, KeyType, KeysAndAttributes, LocalSecondaryIndex, Projection,
    ProjectionType, PutRequest, ReturnConsumedCapacity, ReturnItemCollectionMetrics,
    ScalarAttributeType, WriteRequest,
};
use partita_blackbox_tests::*;

/// An item `{pk: <pk>, data: "x" * data_len}` of size 2 + pk.len() + 4 + data_len.
fn sized(pk: &str, data_len: usize) -> Item {
    item([("pk", s(pk)), ("data", s(&"x".repeat(data_len)))])
}

fn units(cc: Option<&ConsumedCapacity>) -> f64 {
    cc.and_then(|c| c.capacity_units())
        .unwrap_or_else(|| panic!("no CapacityUnits in {cc:?}"))
}

#[tokio::test]
async fn single_item_operations_consume_exact_units() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_hash_table(c, "cap_item").await;
    let total = ReturnConsumedCapacity::Total;

    // 2+2 + 4+2000 = 2008 bytes -> 2 write units.
    let put = c
        .put_item()
        .table_name(&t)
        .set_item(Some(sized("k1", 2000)))
        .return_consumed_capacity(total.clone())
        .send()
        .await
        .expect("put");
    assert_eq!(units(put.consumed_capacity()), 2.0);
    assert_eq!(
        put.consumed_capacity().and_then(|cc| cc.table_name()),
        Some(t.as_str())
    );
    // Exactly 1024 bytes -> 1 unit; 1025 -> 2.
    let put = c
        .put_item()
        .table_name(&t)
        .set_item(Some(sized("k2", 1024 - 8)))
        .return_consumed_capacity(total.clone())
        .send()
        .await
        .expect("put 1 KB");
    assert_eq!(units(put.consumed_capacity()), 1.0);
    let put = c
        .put_item()
        .table_name(&t)
        .set_item(Some(sized("k3", 1025 - 8)))
        .return_consumed_capacity(total.clone())
        .send()
        .await
        .expect("put 1 KB + 1");
    assert_eq!(units(put.consumed_capacity()), 2.0);

    // 2+2 + 4+9000 = 9008 bytes: 9 write units, 3 strong / 1.5 eventual read units.
    let put = c
        .put_item()
        .table_name(&t)
        .set_item(Some(sized("k4", 9000)))
        .return_consumed_capacity(total.clone())
        .send()
        .await
        .expect("put 9 KB");
    assert_eq!(units(put.consumed_capacity()), 9.0);
    for (consistent, expected) in [(true, 3.0), (false, 1.5)] {
        let get = c
            .get_item()
            .table_name(&t)
            .key("pk", s("k4"))
            .consistent_read(consistent)
            .return_consumed_capacity(total.clone())
            .send()
            .await
            .expect("get");
        assert_eq!(
            units(get.consumed_capacity()),
            expected,
            "ConsistentRead={consistent}"
        );
    }
    // Exactly 4096 bytes is one strong unit; a missing item still costs one.
    c.put_item()
        .table_name(&t)
        .set_item(Some(sized("k5", 4096 - 8)))
        .send()
        .await
        .expect("put 4 KB");
    for (key, expected) in [("k5", 1.0), ("absent", 1.0)] {
        let get = c
            .get_item()
            .table_name(&t)
            .key("pk", s(key))
            .consistent_read(true)
            .return_consumed_capacity(total.clone())
            .send()
            .await
            .expect("get");
        assert_eq!(units(get.consumed_capacity()), expected, "key {key}");
    }

    // INDEXES also reports the table's own share.
    let get = c
        .get_item()
        .table_name(&t)
        .key("pk", s("k4"))
        .return_consumed_capacity(ReturnConsumedCapacity::Indexes)
        .send()
        .await
        .expect("get indexes");
    let cc = get.consumed_capacity().expect("consumed");
    assert_eq!(cc.capacity_units(), Some(1.5));
    assert_eq!(cc.table().and_then(|t| t.capacity_units()), Some(1.5));

    // NONE (the default) returns nothing.
    let get = c
        .get_item()
        .table_name(&t)
        .key("pk", s("k4"))
        .send()
        .await
        .expect("get");
    assert!(get.consumed_capacity().is_none());

    // Delete costs the size of the deleted item; deleting nothing costs 1.
    let del = c
        .delete_item()
        .table_name(&t)
        .key("pk", s("k1"))
        .return_consumed_capacity(total.clone())
        .send()
        .await
        .expect("delete");
    assert_eq!(units(del.consumed_capacity()), 2.0);
    let del = c
        .delete_item()
        .table_name(&t)
        .key("pk", s("k1"))
        .return_consumed_capacity(total.clone())
        .send()
        .await
        .expect("delete absent");
    assert_eq!(units(del.consumed_capacity()), 1.0);

    // Update costs the larger of the item before and after: 9008 -> 12 bytes.
    let upd = c
        .update_item()
        .table_name(&t)
        .key("pk", s("k4"))
        .update_expression("REMOVE #d")
        .expression_attribute_names("#d", "data")
        .return_consumed_capacity(total.clone())
        .send()
        .await
        .expect("update");
    assert_eq!(units(upd.consumed_capacity()), 9.0);
    delete_table(c, &t).await;
}

#[tokio::test]
async fn overwriting_put_costs_the_larger_item() {
    if skip_on_dynamodb_local(
        "overwriting_put_costs_the_larger_item",
        "DynamoDB Local charges a replacing PutItem for the new item only",
    ) {
        return;
    }
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_hash_table(c, "cap_overwrite").await;
    c.put_item()
        .table_name(&t)
        .set_item(Some(sized("k", 5000)))
        .send()
        .await
        .expect("put big");
    let put = c
        .put_item()
        .table_name(&t)
        .set_item(Some(sized("k", 10)))
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .await
        .expect("put small over big");
    assert_eq!(units(put.consumed_capacity()), 5.0);
    delete_table(c, &t).await;
}

#[tokio::test]
async fn query_scan_and_batch_consume_exact_units() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_composite_table(c, "cap_query").await;
    // Each item: pk "q" (2+1) + sk "1".."3" (2+1) + data (4+2000) = 2010 bytes.
    for sk in ["1", "2", "3"] {
        c.put_item()
            .table_name(&t)
            .item("pk", s("q"))
            .item("sk", s(sk))
            .item("data", s(&"x".repeat(2000)))
            .send()
            .await
            .expect("put");
    }
    let total = ReturnConsumedCapacity::Total;
    // 3 * 2010 = 6030 bytes -> 2 strong units, 1 eventual unit; the filter
    // removes every item but the items were read.
    for (consistent, filter, expected) in
        [(true, false, 2.0), (false, false, 1.0), (true, true, 2.0)]
    {
        let mut q = c
            .query()
            .table_name(&t)
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", s("q"))
            .consistent_read(consistent)
            .return_consumed_capacity(total.clone());
        if filter {
            q = q
                .filter_expression("attribute_exists(nothing)")
                .expression_attribute_values(":p", s("q"));
        }
        let out = q.send().await.expect("query");
        assert_eq!(
            units(out.consumed_capacity()),
            expected,
            "consistent={consistent} filter={filter}"
        );
        assert_eq!(out.scanned_count(), 3);
        assert_eq!(out.count(), if filter { 0 } else { 3 });
    }
    let scan = c
        .scan()
        .table_name(&t)
        .consistent_read(true)
        .return_consumed_capacity(total.clone())
        .send()
        .await
        .expect("scan");
    assert_eq!(units(scan.consumed_capacity()), 2.0);

    // BatchGetItem rounds each item: 3 * 1 strong unit, 3 * 0.5 eventual.
    for (consistent, expected) in [(true, 3.0), (false, 1.5)] {
        let mut keys = KeysAndAttributes::builder().consistent_read(consistent);
        for sk in ["1", "2", "3"] {
            keys = keys.keys(item([("pk", s("q")), ("sk", s(sk))]));
        }
        let out = c
            .batch_get_item()
            .request_items(&t, keys.build().expect("keys"))
            .return_consumed_capacity(total.clone())
            .send()
            .await
            .expect("batch get");
        let cc = out.consumed_capacity();
        assert_eq!(cc.len(), 1);
        assert_eq!(cc[0].table_name(), Some(t.as_str()));
        assert_eq!(cc[0].capacity_units(), Some(expected));
    }

    // BatchWriteItem: 3 items of 2010 bytes -> 3 * 2 units.
    let writes: Vec<WriteRequest> = ["4", "5", "6"]
        .iter()
        .map(|sk| {
            WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .set_item(Some(item([
                            ("pk", s("q")),
                            ("sk", s(sk)),
                            ("data", s(&"x".repeat(2000))),
                        ])))
                        .build()
                        .expect("put request"),
                )
                .build()
        })
        .collect();
    let out = c
        .batch_write_item()
        .request_items(&t, writes)
        .return_consumed_capacity(total)
        .send()
        .await
        .expect("batch write");
    let cc = out.consumed_capacity();
    assert_eq!(cc.len(), 1);
    assert_eq!(cc[0].capacity_units(), Some(6.0));
    delete_table(c, &t).await;
}

#[tokio::test]
async fn item_collection_metrics_only_for_tables_with_local_indexes() {
    let env = TestEnv::new();
    let c = &env.client;
    let plain = create_composite_table(c, "icm_plain").await;
    let out = c
        .put_item()
        .table_name(&plain)
        .item("pk", s("a"))
        .item("sk", s("b"))
        .return_item_collection_metrics(ReturnItemCollectionMetrics::Size)
        .send()
        .await
        .expect("put");
    assert!(out.item_collection_metrics().is_none());
    delete_table(c, &plain).await;

    if skip_on_dynamodb_local(
        "item_collection_metrics_only_for_tables_with_local_indexes/lsi",
        "DynamoDB Local returns no ItemCollectionMetrics",
    ) {
        return;
    }
    let t = unique_name("icm_lsi");
    c.create_table()
        .table_name(&t)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr_def("pk", ScalarAttributeType::S))
        .attribute_definitions(attr_def("sk", ScalarAttributeType::S))
        .attribute_definitions(attr_def("alt", ScalarAttributeType::S))
        .key_schema(key_elem("pk", KeyType::Hash))
        .key_schema(key_elem("sk", KeyType::Range))
        .local_secondary_indexes(
            LocalSecondaryIndex::builder()
                .index_name("byAlt")
                .key_schema(key_elem("pk", KeyType::Hash))
                .key_schema(key_elem("alt", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .expect("lsi"),
        )
        .send()
        .await
        .expect("create with LSI");
    wait_active(c, &t).await;
    let out = c
        .put_item()
        .table_name(&t)
        .item("pk", s("coll"))
        .item("sk", s("1"))
        .item("alt", s("x"))
        .return_item_collection_metrics(ReturnItemCollectionMetrics::Size)
        .send()
        .await
        .expect("put");
    let m = out.item_collection_metrics().expect("metrics");
    assert_eq!(m.item_collection_key(), Some(&item([("pk", s("coll"))])));
    assert_eq!(m.size_estimate_range_gb(), &[0.0, 1.0]);
    let out = c
        .delete_item()
        .table_name(&t)
        .key("pk", s("coll"))
        .key("sk", s("1"))
        .return_item_collection_metrics(ReturnItemCollectionMetrics::Size)
        .send()
        .await
        .expect("delete");
    assert!(out.item_collection_metrics().is_some());
    delete_table(c, &t).await;
}
