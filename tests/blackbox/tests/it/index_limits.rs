//! Index key size limits (DynamoDB: an index partition key value is at most
//! 2,048 bytes, an index sort key value at most 1,024) on every write path,
//! and that a refused or left-out value never stops index maintenance: after
//! each oversized write, writes to another table's global index still reach
//! it, and a global index added over items with oversized values becomes
//! ACTIVE without them and stays current.

use std::time::Duration;

use partita_blackbox_tests::aws_sdk_dynamodb::types::{
    AttributeValue, Put, PutRequest, ScalarAttributeType as T, TransactWriteItem, Update,
    WriteRequest,
};
use partita_blackbox_tests::aws_sdk_dynamodb::Client;
use partita_blackbox_tests::*;

use super::indexes::{
    all, assert_validation, create_action, create_indexed, eventually, gsi, keys_only, lsi, put,
    query_index, scan_all, wait_index_active,
};

fn too_large(attr: &str, size: usize, max: usize, index: &str) -> String {
    format!(
        "One or more parameter values were invalid: Size limit exceeded for Index Key {attr} Actual Size: {size} bytes Max Size: {max} bytes IndexName: {index}"
    )
}

fn text(len: usize) -> AttributeValue {
    s(&"z".repeat(len))
}

/// Writes a sentinel item to `table`'s index `by_g` (hash `g`) and waits
/// until a Query on the index returns it: index delivery is alive.
async fn sentinel_reaches_index(c: &Client, table: &str, tag: &str) {
    put(c, table, item([("pk", s(tag)), ("g", s(tag))])).await;
    eventually(&format!("sentinel {tag} in {table}.by_g"), || async {
        let got = query_index(c, table, "by_g", "g", tag).await;
        if got.len() == 1 {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    })
    .await;
}

#[tokio::test]
async fn oversized_index_keys_are_refused_on_every_write_path() {
    let env = TestEnv::new();
    let c = &env.client;
    let one = unique_name("idx_limit_one");
    let other = unique_name("idx_limit_other");
    create_indexed(
        c,
        &one,
        true,
        &[("g", T::S), ("s", T::S), ("l", T::B)],
        vec![lsi("by_l", "l", keys_only())],
        vec![gsi("by_gs", "g", Some("s"), all())],
    )
    .await;
    create_indexed(
        c,
        &other,
        false,
        &[("g", T::S)],
        vec![],
        vec![gsi("by_g", "g", None, keys_only())],
    )
    .await;
    let key = || item([("pk", s("x")), ("sk", s("y"))]);
    let with = |extra: [(&str, AttributeValue); 2]| {
        let mut it = key();
        it.extend(extra.into_iter().map(|(k, v)| (k.to_string(), v)));
        it
    };

    // The issue's write: a 64 KiB index sort key.
    assert_validation(
        c.put_item()
            .table_name(&one)
            .set_item(Some(with([("g", s("a")), ("s", text(65536))])))
            .send()
            .await,
        &too_large("s", 65536, 1024, "by_gs"),
    );
    sentinel_reaches_index(c, &other, "after-put").await;
    // At the limits exactly: accepted.
    put(c, &one, with([("g", text(2048)), ("s", text(1024))])).await;
    assert_validation(
        c.put_item()
            .table_name(&one)
            .set_item(Some(with([("g", text(2049)), ("s", s("b"))])))
            .send()
            .await,
        &too_large("g", 2049, 2048, "by_gs"),
    );
    // Multi-byte characters count in UTF-8 bytes.
    assert_validation(
        c.put_item()
            .table_name(&one)
            .set_item(Some(with([("g", s("a")), ("s", s(&"é".repeat(513)))])))
            .send()
            .await,
        &too_large("s", 1026, 1024, "by_gs"),
    );
    // A local index sort key, binary.
    assert_validation(
        c.put_item()
            .table_name(&one)
            .set_item(Some(with([
                ("g", s("a")),
                ("l", AttributeValue::B(vec![7u8; 1025].into())),
            ])))
            .send()
            .await,
        &too_large("l", 1025, 1024, "by_l"),
    );

    // UpdateItem: the item is unchanged.
    assert_validation(
        c.update_item()
            .table_name(&one)
            .set_key(Some(key()))
            .update_expression("SET s = :v, extra = :o")
            .expression_attribute_values(":v", text(70_000))
            .expression_attribute_values(":o", s("o"))
            .send()
            .await,
        &too_large("s", 70_000, 1024, "by_gs"),
    );
    let stored = c
        .get_item()
        .table_name(&one)
        .set_key(Some(key()))
        .consistent_read(true)
        .send()
        .await
        .expect("get")
        .item()
        .cloned()
        .expect("the item at the limits");
    assert_eq!(stored, with([("g", text(2048)), ("s", text(1024))]));
    sentinel_reaches_index(c, &other, "after-update").await;

    // BatchWriteItem: the whole batch is refused.
    let request = |it: Item| {
        WriteRequest::builder()
            .put_request(
                PutRequest::builder()
                    .set_item(Some(it))
                    .build()
                    .expect("put"),
            )
            .build()
    };
    let fine = item([("pk", s("batch")), ("sk", s("fine"))]);
    let mut bad = item([("pk", s("batch")), ("sk", s("bad"))]);
    bad.insert("g".into(), text(3000));
    assert_validation(
        c.batch_write_item()
            .request_items(&one, vec![request(fine), request(bad)])
            .send()
            .await,
        &too_large("g", 3000, 2048, "by_gs"),
    );
    sentinel_reaches_index(c, &other, "after-batch").await;

    // TransactWriteItems: an oversized index key in a Put refuses the whole
    // request (as DynamoDB Local; a wrong type would be a cancellation
    // reason).
    let tx_put = |it: Item| {
        TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(&one)
                    .set_item(Some(it))
                    .build()
                    .expect("put"),
            )
            .build()
    };
    let mut bad = item([("pk", s("tx")), ("sk", s("bad"))]);
    bad.insert("s".into(), text(1025));
    bad.insert("g".into(), s("a"));
    assert_validation(
        c.transact_write_items()
            .transact_items(tx_put(item([("pk", s("tx")), ("sk", s("fine"))])))
            .transact_items(tx_put(bad))
            .send()
            .await,
        &too_large("s", 1025, 1024, "by_gs"),
    );
    // An Update whose result is oversized is found when it applies: a
    // cancellation reason.
    let tx_update = TransactWriteItem::builder()
        .update(
            Update::builder()
                .table_name(&one)
                .set_key(Some(key()))
                .update_expression("SET g = :v")
                .expression_attribute_values(":v", text(2049))
                .build()
                .expect("update"),
        )
        .build();
    assert_api_err(
        c.transact_write_items()
            .transact_items(tx_put(item([("pk", s("tx")), ("sk", s("fine"))])))
            .transact_items(tx_update)
            .send()
            .await,
        "TransactionCanceledException",
        "Transaction cancelled, please refer cancellation reasons for specific reasons [None, ValidationError]",
    );
    sentinel_reaches_index(c, &other, "after-transaction").await;

    // PartiQL INSERT and UPDATE.
    assert_validation(
        c.execute_statement()
            .statement(format!(
                r#"INSERT INTO "{one}" VALUE {{'pk': 'q', 'sk': 'r', 'g': 'a', 's': ?}}"#
            ))
            .parameters(text(5000))
            .send()
            .await,
        &too_large("s", 5000, 1024, "by_gs"),
    );
    assert_validation(
        c.execute_statement()
            .statement(format!(
                r#"UPDATE "{one}" SET g = ? WHERE pk = 'x' AND sk = 'y'"#
            ))
            .parameters(text(2049))
            .send()
            .await,
        &too_large("g", 2049, 2048, "by_gs"),
    );
    sentinel_reaches_index(c, &other, "after-partiql").await;

    // Nothing refused was written: the table holds the item at the limits
    // only, and its global index has it too.
    let everything = scan_all(c, &one, None, None, None).await;
    assert_eq!(everything, vec![stored.clone()]);
    eventually("by_gs holds the item at the limits", || async {
        let got = scan_all(c, &one, Some("by_gs"), None, None).await;
        if got == vec![stored.clone()] {
            Ok(())
        } else {
            Err(format!("{} entries", got.len()))
        }
    })
    .await;
}

#[tokio::test]
async fn a_global_index_added_over_oversized_values_leaves_them_out() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = unique_name("idx_limit_backfill");
    let other = unique_name("idx_limit_backfill_other");
    create_indexed(c, &t, false, &[], vec![], vec![]).await;
    create_indexed(
        c,
        &other,
        false,
        &[("g", T::S)],
        vec![],
        vec![gsi("by_g", "g", None, keys_only())],
    )
    .await;
    // Non-key attributes may be this large until an index makes them keys;
    // 70,000 bytes is over the storage engine's own key limit.
    put(c, &t, item([("pk", s("huge")), ("g", text(70_000))])).await;
    put(c, &t, item([("pk", s("big")), ("g", text(2049))])).await;
    put(c, &t, item([("pk", s("limit")), ("g", text(2048))])).await;
    put(c, &t, item([("pk", s("ok")), ("g", s("ok"))])).await;
    c.update_table()
        .table_name(&t)
        .attribute_definitions(attr_def("g", T::S))
        .global_secondary_index_updates(create_action("by_g", "g", keys_only()))
        .send()
        .await
        .expect("add the index");
    wait_index_active(c, &t, "by_g", Duration::from_secs(60)).await;
    let mut indexed: Vec<String> = scan_all(c, &t, Some("by_g"), None, None)
        .await
        .iter()
        .map(|i| get_s(i, "pk").to_string())
        .collect();
    indexed.sort();
    assert_eq!(indexed, vec!["limit", "ok"]);
    // The index stays current, and so does every other table's.
    sentinel_reaches_index(c, &t, "later").await;
    sentinel_reaches_index(c, &other, "after-backfill").await;
    // The left-out items are still readable and updatable; an update that
    // makes one valid indexes it, and writing an oversized value is refused.
    c.update_item()
        .table_name(&t)
        .key("pk", s("huge"))
        .update_expression("SET g = :v")
        .expression_attribute_values(":v", s("fixed"))
        .send()
        .await
        .expect("update the left-out item");
    eventually("the fixed item is indexed", || async {
        let got = query_index(c, &t, "by_g", "g", "fixed").await;
        if got.len() == 1 {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    })
    .await;
    assert_validation(
        c.put_item()
            .table_name(&t)
            .set_item(Some(item([("pk", s("new")), ("g", text(2049))])))
            .send()
            .await,
        &too_large("g", 2049, 2048, "by_g"),
    );
}
