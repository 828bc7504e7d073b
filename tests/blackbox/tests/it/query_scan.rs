//! Query and Scan: key conditions, sort order, filters, Select, Limit,
//! pagination, the 1 MB page rule (measured before filtering), consistent
//! reads, and parallel scan segments that partition the table exactly.

use std::collections::{BTreeSet, HashMap};

use partita_blackbox_tests::aws_sdk_dynamodb::types::{
    AttributeValue, PutRequest, ScalarAttributeType, Select, WriteRequest,
};
use partita_blackbox_tests::aws_sdk_dynamodb::Client;
use partita_blackbox_tests::*;

/// Creates a table keyed by pk (S) and sk (N).
async fn numeric_sort_table(c: &Client, prefix: &str) -> String {
    let name = unique_name(prefix);
    create_table(
        c,
        &name,
        ("pk", ScalarAttributeType::S),
        Some(("sk", ScalarAttributeType::N)),
    )
    .await
}

/// Writes items with BatchWriteItem, 25 at a time, retrying unprocessed ones.
pub async fn put_all(c: &Client, table: &str, items: Vec<Item>) {
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
        assert!(
            pending.values().all(|v| v.is_empty()),
            "unprocessed items remain"
        );
    }
}

fn sks(items: &[Item]) -> Vec<String> {
    items.iter().map(|i| get_n(i, "sk").to_string()).collect()
}

#[tokio::test]
async fn query_key_conditions_and_sort_order() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = numeric_sort_table(c, "q_keys").await;
    let numbers = ["-5", "0", "1", "2", "10", "11", "100", "2.5"];
    let mut items: Vec<Item> = numbers
        .iter()
        .map(|sk| item([("pk", s("a")), ("sk", n(sk)), ("v", s(&format!("v{sk}")))]))
        .collect();
    items.push(item([("pk", s("b")), ("sk", n("1"))]));
    put_all(c, &t, items).await;

    let run = |cond: &'static str, vals: Vec<(&'static str, AttributeValue)>, forward: bool| {
        let c = c.clone();
        let t = t.clone();
        async move {
            let mut q = c
                .query()
                .table_name(&t)
                .key_condition_expression(cond)
                .scan_index_forward(forward)
                .expression_attribute_values(":p", s("a"));
            for (k, v) in vals {
                q = q.expression_attribute_values(k, v);
            }
            let out = q.send().await.unwrap_or_else(|e| panic!("{cond}: {e:?}"));
            assert_eq!(out.count() as usize, out.items().len());
            sks(out.items())
        }
    };
    assert_eq!(
        run("pk = :p", vec![], true).await,
        vec!["-5", "0", "1", "2", "2.5", "10", "11", "100"],
        "numbers sort numerically"
    );
    assert_eq!(
        run("pk = :p", vec![], false).await,
        vec!["100", "11", "10", "2.5", "2", "1", "0", "-5"]
    );
    assert_eq!(
        run("pk = :p AND sk < :x", vec![(":x", n("2"))], true).await,
        vec!["-5", "0", "1"]
    );
    assert_eq!(
        run("pk = :p AND sk <= :x", vec![(":x", n("2"))], true).await,
        vec!["-5", "0", "1", "2"]
    );
    assert_eq!(
        run("pk = :p AND sk > :x", vec![(":x", n("10"))], true).await,
        vec!["11", "100"]
    );
    assert_eq!(
        run("sk >= :x AND pk = :p", vec![(":x", n("11"))], true).await,
        vec!["11", "100"]
    );
    assert_eq!(
        run(
            "pk = :p AND sk BETWEEN :lo AND :hi",
            vec![(":lo", n("1")), (":hi", n("10"))],
            false
        )
        .await,
        vec!["10", "2.5", "2", "1"]
    );
    assert_eq!(
        run("pk = :p AND sk = :x", vec![(":x", n("2.50"))], true).await,
        vec!["2.5"]
    );
    delete_table(c, &t).await;
}

#[tokio::test]
async fn query_begins_with_on_string_sort_keys_is_bytewise() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_composite_table(c, "q_begins").await;
    let keys = [
        "ORDER#2026-04-21",
        "ORDER#2026-04-03",
        "ORDER#2026-05-01",
        "ORDER#",
        "order#x",
        "Z",
    ];
    put_all(
        c,
        &t,
        keys.iter()
            .map(|k| item([("pk", s("c")), ("sk", s(k))]))
            .collect(),
    )
    .await;
    let out = c
        .query()
        .table_name(&t)
        .key_condition_expression("pk = :p AND begins_with(sk, :pre)")
        .expression_attribute_values(":p", s("c"))
        .expression_attribute_values(":pre", s("ORDER#2026-04"))
        .send()
        .await
        .expect("query");
    let got: Vec<&str> = out.items().iter().map(|i| get_s(i, "sk")).collect();
    assert_eq!(got, vec!["ORDER#2026-04-03", "ORDER#2026-04-21"]);
    let all = c
        .query()
        .table_name(&t)
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", s("c"))
        .send()
        .await
        .expect("query all");
    let got: Vec<&str> = all.items().iter().map(|i| get_s(i, "sk")).collect();
    assert_eq!(
        got,
        vec![
            "ORDER#",
            "ORDER#2026-04-03",
            "ORDER#2026-04-21",
            "ORDER#2026-05-01",
            "Z",
            "order#x"
        ]
    );
    delete_table(c, &t).await;
}

#[tokio::test]
async fn query_filter_select_limit_and_pagination() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = numeric_sort_table(c, "q_page").await;
    put_all(
        c,
        &t,
        (0..30)
            .map(|i| {
                item([
                    ("pk", s("p")),
                    ("sk", n(&i.to_string())),
                    ("even", AttributeValue::Bool(i % 2 == 0)),
                    ("extra", s("e")),
                ])
            })
            .collect(),
    )
    .await;

    // Limit counts items evaluated, before the filter.
    let out = c
        .query()
        .table_name(&t)
        .key_condition_expression("pk = :p")
        .filter_expression("even = :t")
        .expression_attribute_values(":p", s("p"))
        .expression_attribute_values(":t", AttributeValue::Bool(true))
        .limit(10)
        .send()
        .await
        .expect("query");
    assert_eq!(out.scanned_count(), 10);
    assert_eq!(out.count(), 5);
    assert_eq!(sks(out.items()), vec!["0", "2", "4", "6", "8"]);
    let lek = out.last_evaluated_key().expect("LastEvaluatedKey");
    assert_eq!(lek, &item([("pk", s("p")), ("sk", n("9"))]));

    // Paginate with Limit 7 through everything: no gaps, no repeats.
    let mut seen = Vec::new();
    let mut start: Option<Item> = None;
    let mut pages = 0;
    loop {
        let out = c
            .query()
            .table_name(&t)
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", s("p"))
            .limit(7)
            .set_exclusive_start_key(start.clone())
            .send()
            .await
            .expect("page");
        pages += 1;
        seen.extend(sks(out.items()));
        start = out.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
        assert!(pages < 20);
    }
    let expected: Vec<String> = (0..30).map(|i| i.to_string()).collect();
    assert_eq!(seen, expected);
    assert!((5..=6).contains(&pages), "{pages} pages of 7 for 30 items");

    // Select COUNT returns counts and no items.
    let out = c
        .query()
        .table_name(&t)
        .key_condition_expression("pk = :p")
        .filter_expression("even = :t")
        .expression_attribute_values(":p", s("p"))
        .expression_attribute_values(":t", AttributeValue::Bool(false))
        .select(Select::Count)
        .send()
        .await
        .expect("count");
    assert_eq!((out.count(), out.scanned_count()), (15, 30));
    assert!(out.items().is_empty());

    // Projection returns only the named attributes.
    let out = c
        .query()
        .table_name(&t)
        .key_condition_expression("pk = :p AND sk = :z")
        .expression_attribute_values(":p", s("p"))
        .expression_attribute_values(":z", n("0"))
        .projection_expression("sk, extra")
        .consistent_read(true)
        .send()
        .await
        .expect("projected");
    assert_eq!(out.items(), &[item([("sk", n("0")), ("extra", s("e"))])]);
    let out = c
        .query()
        .table_name(&t)
        .key_condition_expression("pk = :p AND sk = :z")
        .expression_attribute_values(":p", s("p"))
        .expression_attribute_values(":z", n("0"))
        .projection_expression("sk")
        .select(Select::SpecificAttributes)
        .send()
        .await
        .expect("specific");
    assert_eq!(out.items(), &[item([("sk", n("0"))])]);
    delete_table(c, &t).await;
}

#[tokio::test]
async fn pages_stop_at_one_megabyte_before_filtering() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = numeric_sort_table(c, "q_1mb").await;
    // 12 items of ~100 KB each: 1.2 MB in one partition key.
    let blob = "x".repeat(100_000);
    for i in 0..12 {
        c.put_item()
            .table_name(&t)
            .item("pk", s("big"))
            .item("sk", n(&i.to_string()))
            .item("blob", s(&blob))
            .send()
            .await
            .expect("put");
    }
    // Without a filter a page stops once 1 MB has been read.
    let first = c
        .query()
        .table_name(&t)
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", s("big"))
        .send()
        .await
        .expect("query");
    assert!(
        first.last_evaluated_key().is_some(),
        "1.2 MB does not fit one page"
    );
    assert!(
        (10..=11).contains(&first.count()),
        "first page holds {} items of 100 KB",
        first.count()
    );
    let first = c.scan().table_name(&t).send().await.expect("scan");
    assert!(first.last_evaluated_key().is_some());
    assert!(
        (10..=11).contains(&first.count()),
        "scan page {}",
        first.count()
    );

    if skip_on_dynamodb_local(
        "pages_stop_at_one_megabyte_before_filtering/filtered",
        "DynamoDB Local applies the 1 MB limit after filtering",
    ) {
        delete_table(c, &t).await;
        return;
    }
    // The filter matches nothing, yet the page still stops at 1 MB read.
    let mut scanned = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let out = c
            .query()
            .table_name(&t)
            .key_condition_expression("pk = :p")
            .filter_expression("attribute_exists(nope)")
            .expression_attribute_values(":p", s("big"))
            .set_exclusive_start_key(start.clone())
            .send()
            .await
            .expect("query");
        assert_eq!(out.count(), 0);
        scanned.push(out.scanned_count());
        start = out.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
    }
    assert!(
        scanned.len() >= 2 && (10..=11).contains(&scanned[0]),
        "query pages scanned {scanned:?}"
    );
    assert_eq!(scanned.iter().sum::<i32>(), 12);

    let mut scanned = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let out = c
            .scan()
            .table_name(&t)
            .filter_expression("attribute_exists(nope)")
            .set_exclusive_start_key(start.clone())
            .send()
            .await
            .expect("scan");
        scanned.push(out.scanned_count());
        start = out.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
    }
    assert!(
        scanned.len() >= 2 && (10..=11).contains(&scanned[0]),
        "scan pages scanned {scanned:?}"
    );
    assert_eq!(scanned.iter().sum::<i32>(), 12);
    delete_table(c, &t).await;
}

#[tokio::test]
async fn scan_filter_limit_and_pagination() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_hash_table(c, "scan_page").await;
    put_all(
        c,
        &t,
        (0..45)
            .map(|i| item([("pk", s(&format!("k{i:03}"))), ("n", n(&i.to_string()))]))
            .collect(),
    )
    .await;
    let mut keys = Vec::new();
    let mut start: Option<Item> = None;
    let mut total_scanned = 0;
    loop {
        let out = c
            .scan()
            .table_name(&t)
            .filter_expression("n >= :ten")
            .expression_attribute_values(":ten", n("10"))
            .limit(10)
            .consistent_read(true)
            .set_exclusive_start_key(start.clone())
            .send()
            .await
            .expect("scan");
        assert!(out.scanned_count() <= 10);
        assert_eq!(out.count() as usize, out.items().len());
        total_scanned += out.scanned_count();
        keys.extend(out.items().iter().map(|i| get_s(i, "pk").to_string()));
        start = out.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
    }
    assert_eq!(total_scanned, 45);
    let set: BTreeSet<String> = keys.iter().cloned().collect();
    assert_eq!(set.len(), keys.len(), "no item returned twice");
    let expected: BTreeSet<String> = (10..45).map(|i| format!("k{i:03}")).collect();
    assert_eq!(set, expected);

    let out = c
        .scan()
        .table_name(&t)
        .select(Select::Count)
        .send()
        .await
        .expect("count");
    assert_eq!((out.count(), out.scanned_count()), (45, 45));
    assert!(out.items().is_empty());
    delete_table(c, &t).await;
}

#[tokio::test]
async fn parallel_scan_segments_partition_the_table_exactly() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_hash_table(c, "pscan").await;
    let all: BTreeSet<String> = (0..300).map(|i| format!("item-{i}")).collect();
    put_all(c, &t, all.iter().map(|k| item([("pk", s(k))])).collect()).await;

    for total in [1, 3, 7] {
        let mut union = BTreeSet::new();
        let mut sum = 0;
        for segment in 0..total {
            let mut start: Option<Item> = None;
            let mut mine = BTreeSet::new();
            loop {
                let out = c
                    .scan()
                    .table_name(&t)
                    .segment(segment)
                    .total_segments(total)
                    .limit(40)
                    .set_exclusive_start_key(start.clone())
                    .send()
                    .await
                    .expect("segment scan");
                for i in out.items() {
                    let k = get_s(i, "pk").to_string();
                    assert!(mine.insert(k.clone()), "{k} twice in segment {segment}");
                }
                start = out.last_evaluated_key().cloned();
                if start.is_none() {
                    break;
                }
            }
            sum += mine.len();
            for k in &mine {
                assert!(
                    union.insert(k.clone()),
                    "{k} in two segments (TotalSegments {total})"
                );
            }
        }
        assert_eq!(sum, all.len(), "TotalSegments {total}");
        assert_eq!(union, all, "TotalSegments {total}");
    }
    delete_table(c, &t).await;
}

#[tokio::test]
async fn query_and_scan_errors() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_composite_table(c, "qs_err").await;
    let e = api_err(
        c.query()
            .table_name(&t)
            .key_condition_expression("sk = :v")
            .expression_attribute_values(":v", s("x"))
            .send()
            .await,
    );
    assert_eq!(e.code, "ValidationException");
    if !skip_on_dynamodb_local(
        "query_and_scan_errors/missed_key_message",
        "DynamoDB Local omits the ': pk' suffix",
    ) {
        assert_eq!(e.message, "Query condition missed key schema element: pk");
    }
    assert_api_err(
        c.query()
            .table_name(&t)
            .key_condition_expression("")
            .send()
            .await,
        "ValidationException",
        "Invalid KeyConditionExpression: The expression can not be empty;",
    );
    assert_api_err(
        c.query()
            .table_name(&t)
            .key_condition_expression("pk = :v")
            .filter_expression("#missing = :v")
            .expression_attribute_values(":v", s("x"))
            .send()
            .await,
        "ValidationException",
        "Invalid FilterExpression: An expression attribute name used in the document path is not defined; attribute name: #missing",
    );
    let e = api_err(
        c.scan()
            .table_name(&t)
            .segment(5)
            .total_segments(5)
            .send()
            .await,
    );
    assert_eq!(e.code, "ValidationException");
    if !skip_on_dynamodb_local(
        "query_and_scan_errors/segment_messages",
        "DynamoDB Local words the Segment/TotalSegments/Limit errors differently",
    ) {
        assert_eq!(
            e.message,
            "The Segment parameter is zero-based and must be less than parameter TotalSegments: Segment: 5 is not less than TotalSegments: 5"
        );
        assert_api_err(
            c.scan().table_name(&t).segment(1).send().await,
            "ValidationException",
            "The TotalSegments parameter is required but was not present in the request when Segment parameter is present",
        );
        assert_api_err(
            c.scan().table_name(&t).total_segments(2).send().await,
            "ValidationException",
            "The Segment parameter is required but was not present in the request when parameter TotalSegments is present",
        );
        assert_api_err(
            c.scan().table_name(&t).limit(0).send().await,
            "ValidationException",
            "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1",
        );
    }
    delete_table(c, &t).await;
}
