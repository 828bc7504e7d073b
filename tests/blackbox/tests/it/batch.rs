//! BatchGetItem (up to 100 keys) and BatchWriteItem (up to 25 requests)
//! across several tables, and their limits.

use std::collections::{BTreeSet, HashMap};

use partita_blackbox_tests::aws_sdk_dynamodb::types::{
    DeleteRequest, KeysAndAttributes, PutRequest, WriteRequest,
};
use partita_blackbox_tests::aws_sdk_dynamodb::Client;
use partita_blackbox_tests::*;

fn put_req(it: Item) -> WriteRequest {
    WriteRequest::builder()
        .put_request(
            PutRequest::builder()
                .set_item(Some(it))
                .build()
                .expect("put"),
        )
        .build()
}

fn delete_req(key: Item) -> WriteRequest {
    WriteRequest::builder()
        .delete_request(
            DeleteRequest::builder()
                .set_key(Some(key))
                .build()
                .expect("delete"),
        )
        .build()
}

fn keys_of(keys: Vec<Item>) -> KeysAndAttributes {
    KeysAndAttributes::builder()
        .set_keys(Some(keys))
        .consistent_read(true)
        .build()
        .expect("keys")
}

/// BatchGetItem, following UnprocessedKeys until done.
async fn batch_get_all(
    c: &Client,
    mut req: HashMap<String, KeysAndAttributes>,
) -> HashMap<String, Vec<Item>> {
    let mut out: HashMap<String, Vec<Item>> = HashMap::new();
    for _ in 0..100 {
        let r = c
            .batch_get_item()
            .set_request_items(Some(req))
            .send()
            .await
            .expect("batch get");
        for (t, items) in r.responses().cloned().unwrap_or_default() {
            out.entry(t).or_default().extend(items);
        }
        req = r.unprocessed_keys().cloned().unwrap_or_default();
        if req.is_empty() {
            return out;
        }
    }
    panic!("UnprocessedKeys never drained");
}

#[tokio::test]
async fn batch_write_25_and_get_100_across_tables() {
    let env = TestEnv::new();
    let c = &env.client;
    let a = create_hash_table(c, "batch_a").await;
    let b = create_composite_table(c, "batch_b").await;

    // 4 batches of 25 puts, mixing both tables: 60 items in a, 40 in b.
    let mut all_a = Vec::new();
    let mut all_b = Vec::new();
    for batch in 0..4 {
        let mut req: HashMap<String, Vec<WriteRequest>> = HashMap::new();
        for i in 0..25 {
            let idx = batch * 25 + i;
            if idx % 5 < 3 {
                let it = item([("pk", s(&format!("a{idx}"))), ("v", n(&idx.to_string()))]);
                all_a.push(it.clone());
                req.entry(a.clone()).or_default().push(put_req(it));
            } else {
                let it = item([
                    ("pk", s(&format!("b{idx}"))),
                    ("sk", s("x")),
                    ("v", n(&idx.to_string())),
                ]);
                all_b.push(it.clone());
                req.entry(b.clone()).or_default().push(put_req(it));
            }
        }
        let out = c
            .batch_write_item()
            .set_request_items(Some(req))
            .send()
            .await
            .expect("batch write 25");
        assert!(
            out.unprocessed_items()
                .is_none_or(|u| u.values().all(|v| v.is_empty())),
            "no UnprocessedItems for a small batch"
        );
    }
    assert_eq!((all_a.len(), all_b.len()), (60, 40));

    // One BatchGetItem with exactly 100 keys over both tables.
    let mut req = HashMap::new();
    req.insert(
        a.clone(),
        keys_of(
            all_a
                .iter()
                .map(|i| item([("pk", i["pk"].clone())]))
                .collect(),
        ),
    );
    req.insert(
        b.clone(),
        keys_of(
            all_b
                .iter()
                .map(|i| item([("pk", i["pk"].clone()), ("sk", s("x"))]))
                .collect(),
        ),
    );
    let got = batch_get_all(c, req).await;
    let pairs = |items: &[Item]| -> BTreeSet<(String, String)> {
        items
            .iter()
            .map(|i| (get_s(i, "pk").to_string(), get_n(i, "v").to_string()))
            .collect()
    };
    let want_a = pairs(&all_a);
    let got_a = pairs(&got[&a]);
    assert_eq!(got[&a].len(), 60);
    assert_eq!(got_a, want_a);
    assert_eq!(got[&b].len(), 40);

    // Missing keys are simply absent; projection applies per table.
    let mut req = HashMap::new();
    req.insert(
        a.clone(),
        KeysAndAttributes::builder()
            .keys(item([("pk", s("a0"))]))
            .keys(item([("pk", s("nope"))]))
            .projection_expression("v")
            .build()
            .expect("keys"),
    );
    let got = batch_get_all(c, req).await;
    assert_eq!(got[&a], vec![item([("v", n("0"))])]);

    // Deletes and puts in one batch.
    let mut req: HashMap<String, Vec<WriteRequest>> = HashMap::new();
    req.insert(
        a.clone(),
        vec![
            delete_req(item([("pk", s("a0"))])),
            put_req(item([("pk", s("a-new"))])),
        ],
    );
    req.insert(
        b.clone(),
        vec![delete_req(item([("pk", s("b3")), ("sk", s("x"))]))],
    );
    c.batch_write_item()
        .set_request_items(Some(req))
        .send()
        .await
        .expect("mixed batch");
    let count = |t: String| async move {
        c.scan()
            .table_name(t)
            .select(partita_blackbox_tests::aws_sdk_dynamodb::types::Select::Count)
            .consistent_read(true)
            .send()
            .await
            .expect("count")
            .count()
    };
    assert_eq!(count(a.clone()).await, 60);
    assert_eq!(count(b.clone()).await, 39);
    delete_table(c, &a).await;
    delete_table(c, &b).await;
}

#[tokio::test]
async fn batch_limits_and_errors() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_hash_table(c, "batch_lim").await;

    // 101 keys.
    let keys: Vec<Item> = (0..101)
        .map(|i| item([("pk", s(&format!("k{i}")))]))
        .collect();
    let e = api_err(
        c.batch_get_item()
            .request_items(&t, keys_of(keys))
            .send()
            .await,
    );
    assert_eq!(e.code, "ValidationException");
    if !skip_on_dynamodb_local(
        "batch_limits_and_errors/101_keys_message",
        "DynamoDB Local says 'Too many items requested for the BatchGetItem call'",
    ) {
        assert_eq!(
            e.message,
            format!("1 validation error detected: Value at 'RequestItems.{t}.member.Keys' failed to satisfy constraint: Member must have length less than or equal to 100")
        );
    }

    // 26 writes.
    let writes: Vec<WriteRequest> = (0..26)
        .map(|i| put_req(item([("pk", s(&format!("k{i}")))])))
        .collect();
    let e = api_err(c.batch_write_item().request_items(&t, writes).send().await);
    assert_eq!(e.code, "ValidationException");
    if !skip_on_dynamodb_local(
        "batch_limits_and_errors/26_writes_message",
        "DynamoDB Local says 'Too many items requested for the BatchWriteItem call'",
    ) {
        assert!(
            e.message.starts_with("1 validation error detected: Value '{")
                && e.message.ends_with(
                    "}' at 'requestItems' failed to satisfy constraint: Map value must satisfy constraint: [Member must have length less than or equal to 25, Member must have length greater than or equal to 1]"
                ),
            "message {:?}",
            e.message
        );
    }

    // Duplicate keys.
    assert_api_err(
        c.batch_get_item()
            .request_items(
                &t,
                keys_of(vec![item([("pk", s("d"))]), item([("pk", s("d"))])]),
            )
            .send()
            .await,
        "ValidationException",
        "Provided list of item keys contains duplicates",
    );
    assert_api_err(
        c.batch_write_item()
            .request_items(
                &t,
                vec![
                    put_req(item([("pk", s("d"))])),
                    delete_req(item([("pk", s("d"))])),
                ],
            )
            .send()
            .await,
        "ValidationException",
        "Provided list of item keys contains duplicates",
    );

    // A missing table fails the whole batch, writing nothing.
    let missing = unique_name("batch_missing");
    let mut req: HashMap<String, Vec<WriteRequest>> = HashMap::new();
    req.insert(t.clone(), vec![put_req(item([("pk", s("written?"))]))]);
    req.insert(missing.clone(), vec![put_req(item([("pk", s("x"))]))]);
    let e = api_err(
        c.batch_write_item()
            .set_request_items(Some(req))
            .send()
            .await,
    );
    assert_eq!(e.code, "ResourceNotFoundException");
    if !skip_on_dynamodb_local(
        "batch_limits_and_errors/missing_table_message",
        "DynamoDB Local says 'Cannot do operations on a non-existent table'",
    ) {
        assert_eq!(e.message, "Requested resource not found");
    }
    let got = c
        .get_item()
        .table_name(&t)
        .key("pk", s("written?"))
        .consistent_read(true)
        .send()
        .await
        .expect("get");
    assert!(got.item().is_none(), "failed batch wrote nothing");
    let e = api_err(
        c.batch_get_item()
            .request_items(&missing, keys_of(vec![item([("pk", s("x"))])]))
            .send()
            .await,
    );
    assert_eq!(e.code, "ResourceNotFoundException");

    // Empty RequestItems.
    let e = api_err(
        c.batch_write_item()
            .set_request_items(Some(HashMap::new()))
            .send()
            .await,
    );
    assert_eq!(e.code, "ValidationException");
    if !skip_on_dynamodb_local(
        "batch_limits_and_errors/empty_request_items_message",
        "DynamoDB Local words the empty-RequestItems error differently",
    ) {
        assert_eq!(
            e.message,
            "The requestItems parameter is required for BatchWriteItem"
        );
    }
    delete_table(c, &t).await;
}
