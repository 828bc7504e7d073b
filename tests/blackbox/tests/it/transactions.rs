//! TransactWriteItems and TransactGetItems: the seed's Accounts transfer,
//! cancellation reasons, validation, ClientRequestToken idempotency, and a
//! concurrent transfer workload with a kill -9 in the middle.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use partita_blackbox_tests::aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use partita_blackbox_tests::aws_sdk_dynamodb::operation::transact_get_items::TransactGetItemsError;
use partita_blackbox_tests::aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use partita_blackbox_tests::aws_sdk_dynamodb::types::{
    ConditionCheck, Delete, Get, Put, ReturnValuesOnConditionCheckFailure, ScalarAttributeType,
    TransactGetItem, TransactWriteItem, Update,
};
use partita_blackbox_tests::aws_sdk_dynamodb::Client;
use partita_blackbox_tests::*;

async fn create_accounts(c: &Client) -> String {
    let name = unique_name("Accounts");
    create_table(c, &name, ("AccountId", ScalarAttributeType::S), None).await
}

fn account(id: &str) -> Item {
    item([("AccountId", s(id))])
}

/// The Update that takes `amount` from `id`, only if the balance covers it.
fn debit(table: &str, id: &str, amount: i64) -> TransactWriteItem {
    TransactWriteItem::builder()
        .update(
            Update::builder()
                .table_name(table)
                .set_key(Some(account(id)))
                .update_expression("SET Balance = Balance - :amt")
                .condition_expression("Balance >= :amt")
                .expression_attribute_values(":amt", n(&amount.to_string()))
                .build()
                .expect("update"),
        )
        .build()
}

/// The Update that adds `amount` to `id`.
fn credit(table: &str, id: &str, amount: i64) -> TransactWriteItem {
    TransactWriteItem::builder()
        .update(
            Update::builder()
                .table_name(table)
                .set_key(Some(account(id)))
                .update_expression("SET Balance = Balance + :amt")
                .condition_expression("attribute_exists(AccountId)")
                .expression_attribute_values(":amt", n(&amount.to_string()))
                .build()
                .expect("update"),
        )
        .build()
}

fn put(table: &str, it: Item) -> TransactWriteItem {
    TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name(table)
                .set_item(Some(it))
                .build()
                .expect("put"),
        )
        .build()
}

async fn balance(c: &Client, table: &str, id: &str) -> i64 {
    let got = c
        .get_item()
        .table_name(table)
        .set_key(Some(account(id)))
        .consistent_read(true)
        .send()
        .await
        .expect("get");
    get_n(got.item().expect("account exists"), "Balance")
        .parse()
        .expect("balance")
}

/// The codes and the message of a TransactionCanceledException.
fn cancellation<R: std::fmt::Debug>(
    result: Result<R, SdkError<TransactWriteItemsError, impl std::fmt::Debug>>,
) -> (String, Vec<(String, Option<Item>)>) {
    match result {
        Err(SdkError::ServiceError(e)) => match e.into_err() {
            TransactWriteItemsError::TransactionCanceledException(t) => (
                t.message().unwrap_or_default().to_string(),
                t.cancellation_reasons()
                    .iter()
                    .map(|r| (r.code().unwrap_or_default().to_string(), r.item().cloned()))
                    .collect(),
            ),
            other => panic!("expected TransactionCanceledException, got {other:?}"),
        },
        other => panic!("expected TransactionCanceledException, got {other:?}"),
    }
}

#[tokio::test]
async fn seed_transfer_commits_and_an_overdraft_changes_nothing() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_accounts(c).await;
    for (id, amount) in [("alice", "100"), ("bob", "0")] {
        c.put_item()
            .table_name(&t)
            .item("AccountId", s(id))
            .item("Balance", n(amount))
            .send()
            .await
            .expect("seed");
    }
    c.transact_write_items()
        .transact_items(debit(&t, "alice", 70))
        .transact_items(credit(&t, "bob", 70))
        .send()
        .await
        .expect("first transfer");
    assert_eq!(
        (balance(c, &t, "alice").await, balance(c, &t, "bob").await),
        (30, 70)
    );

    let result = c
        .transact_write_items()
        .transact_items(debit(&t, "alice", 70))
        .transact_items(credit(&t, "bob", 70))
        .send()
        .await;
    let (message, reasons) = cancellation(result);
    assert_eq!(
        message,
        "Transaction cancelled, please refer cancellation reasons for specific reasons [ConditionalCheckFailed, None]"
    );
    let codes: Vec<&str> = reasons.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(codes, ["ConditionalCheckFailed", "None"]);
    assert_eq!(
        (balance(c, &t, "alice").await, balance(c, &t, "bob").await),
        (30, 70),
        "a cancelled transfer changes nothing"
    );
}

#[tokio::test]
async fn a_failed_condition_returns_the_old_item_when_asked() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_hash_table(c, "tx_old").await;
    c.put_item()
        .table_name(&t)
        .item("pk", s("a"))
        .item("v", s("old"))
        .send()
        .await
        .expect("seed");
    let check = |return_old: bool| {
        let mut b = ConditionCheck::builder()
            .table_name(&t)
            .key("pk", s("a"))
            .condition_expression("v = :x")
            .expression_attribute_values(":x", s("other"));
        if return_old {
            b = b.return_values_on_condition_check_failure(
                ReturnValuesOnConditionCheckFailure::AllOld,
            );
        }
        TransactWriteItem::builder()
            .condition_check(b.build().expect("check"))
            .build()
    };
    for return_old in [true, false] {
        let result = c
            .transact_write_items()
            .transact_items(put(&t, item([("pk", s("b"))])))
            .transact_items(check(return_old))
            .send()
            .await;
        let (_, reasons) = cancellation(result);
        assert_eq!(reasons[0], ("None".to_string(), None));
        assert_eq!(reasons[1].0, "ConditionalCheckFailed");
        let expected = return_old.then(|| item([("pk", s("a")), ("v", s("old"))]));
        assert_eq!(reasons[1].1, expected);
    }
    let b = c
        .get_item()
        .table_name(&t)
        .key("pk", s("b"))
        .consistent_read(true)
        .send()
        .await
        .expect("get");
    assert!(
        b.item().is_none(),
        "the put of a cancelled transaction is absent"
    );
}

#[tokio::test]
async fn transaction_validation_errors() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_hash_table(c, "tx_val").await;
    // Two actions on one item.
    let result = c
        .transact_write_items()
        .transact_items(put(&t, item([("pk", s("x"))])))
        .transact_items(
            TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(&t)
                        .key("pk", s("x"))
                        .build()
                        .expect("delete"),
                )
                .build(),
        )
        .send()
        .await;
    assert_api_err(
        result,
        "ValidationException",
        "Transaction request cannot include multiple operations on one item",
    );
    // An empty list.
    let r = env.raw(
        "TransactWriteItems",
        &serde_json::json!({"TransactItems": []}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "1 validation error detected: Value '[]' at 'transactItems' failed to satisfy constraint: Member must have length greater than or equal to 1"
    );
    // Member constraints are reported together, in member order.
    let r = env.raw(
        "TransactWriteItems",
        &serde_json::json!({
            "ClientRequestToken": "x".repeat(37),
            "ReturnConsumedCapacity": "BOGUS",
            "TransactItems": [{"Put": {"TableName": &t, "Item": {"pk": {"S": "a"}}}}],
        }),
    );
    assert_eq!(
        r.json()["message"],
        format!(
            "2 validation errors detected: Value '{}' at 'clientRequestToken' failed to satisfy constraint: Member must have length less than or equal to 36; Value 'BOGUS' at 'returnConsumedCapacity' failed to satisfy constraint: Member must satisfy enum value set: [INDEXES, TOTAL, NONE]",
            "x".repeat(37)
        )
    );
    // A malformed expression on a later action is reported before a missing
    // table on an earlier one.
    let r = env.raw(
        "TransactWriteItems",
        &serde_json::json!({"TransactItems": [
            {"Put": {"TableName": "bb_missing_table", "Item": {"pk": {"S": "a"}}}},
            {"ConditionCheck": {"TableName": &t, "Key": {"pk": {"S": "a"}},
                                "ConditionExpression": "attribute_not_exists("}},
        ]}),
    );
    assert_eq!(
        r.json()["message"],
        "Invalid ConditionExpression: Syntax error; token: \"<EOF>\", near: \"(\""
    );
    // A key of the wrong type is a cancellation reason; an empty one is not.
    let r = env.raw(
        "TransactWriteItems",
        &serde_json::json!({"TransactItems": [
            {"Put": {"TableName": &t, "Item": {"pk": {"S": "fine"}}}},
            {"Delete": {"TableName": &t, "Key": {"pk": {"N": "5"}}}},
        ]}),
    );
    let body = r.json();
    assert!(body["__type"]
        .as_str()
        .unwrap_or_default()
        .ends_with("TransactionCanceledException"));
    assert_eq!(
        body["CancellationReasons"],
        serde_json::json!([
            {"Code": "None"},
            {"Code": "ValidationError", "Message": "The provided key element does not match the schema"},
        ])
    );
    let r = env.raw(
        "TransactWriteItems",
        &serde_json::json!({"TransactItems": [
            {"Delete": {"TableName": &t, "Key": {"pk": {"S": ""}}}},
        ]}),
    );
    assert_eq!(
        r.json()["message"],
        "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: pk"
    );
    let fine = c
        .get_item()
        .table_name(&t)
        .key("pk", s("fine"))
        .consistent_read(true)
        .send()
        .await
        .expect("get");
    assert!(fine.item().is_none());
    // TransactGetItems: a missing table, a bad key.
    let r = env.raw(
        "TransactGetItems",
        &serde_json::json!({"TransactItems": [
            {"Get": {"TableName": "bb_missing_table", "Key": {"pk": {"S": "a"}}}},
        ]}),
    );
    assert_eq!(r.json()["message"], "Requested resource not found");
    let r = env.raw(
        "TransactGetItems",
        &serde_json::json!({"TransactItems": [{"Get": {"TableName": &t, "Key": {}}}]}),
    );
    assert_eq!(
        r.json()["message"],
        "Transaction cancelled, please refer cancellation reasons for specific reasons [ValidationError]"
    );
}

#[tokio::test]
async fn client_request_token_applies_once() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_hash_table(c, "tx_token").await;
    let add_one = || {
        TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(&t)
                    .key("pk", s("counter"))
                    .update_expression("ADD n :one")
                    .expression_attribute_values(":one", n("1"))
                    .build()
                    .expect("update"),
            )
            .build()
    };
    for _ in 0..3 {
        let out = c
            .transact_write_items()
            .client_request_token("token-1")
            .transact_items(add_one())
            .return_consumed_capacity(
                partita_blackbox_tests::aws_sdk_dynamodb::types::ReturnConsumedCapacity::Total,
            )
            .send()
            .await
            .expect("idempotent transaction");
        assert_eq!(out.consumed_capacity().len(), 1);
    }
    let got = c
        .get_item()
        .table_name(&t)
        .key("pk", s("counter"))
        .consistent_read(true)
        .send()
        .await
        .expect("get");
    assert_eq!(get_n(got.item().expect("counter"), "n"), "1");
    // The same token with another request is refused.
    let result = c
        .transact_write_items()
        .client_request_token("token-1")
        .transact_items(put(&t, item([("pk", s("other"))])))
        .send()
        .await;
    assert_eq!(api_err(result).code, "IdempotentParameterMismatchException");
    // A cancelled transaction records nothing: its token runs again.
    let guarded = || {
        TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(&t)
                    .item("pk", s("guarded"))
                    .condition_expression("attribute_exists(pk)")
                    .build()
                    .expect("put"),
            )
            .build()
    };
    let first = c
        .transact_write_items()
        .client_request_token("token-2")
        .transact_items(guarded())
        .send()
        .await;
    cancellation(first);
    c.put_item()
        .table_name(&t)
        .item("pk", s("guarded"))
        .send()
        .await
        .expect("put");
    c.transact_write_items()
        .client_request_token("token-2")
        .transact_items(guarded())
        .send()
        .await
        .expect("the retried token runs");
}

#[tokio::test]
async fn transact_get_reads_items_across_tables_with_projection() {
    let env = TestEnv::new();
    let c = &env.client;
    let a = create_hash_table(c, "tx_get_a").await;
    let b = create_composite_table(c, "tx_get_b").await;
    c.transact_write_items()
        .transact_items(put(
            &a,
            item([("pk", s("1")), ("x", s("a")), ("y", s("b"))]),
        ))
        .transact_items(put(
            &b,
            item([("pk", s("1")), ("sk", s("2")), ("z", n("3"))]),
        ))
        .send()
        .await
        .expect("write");
    let get = |table: &str, key: Item, projection: Option<&str>| {
        TransactGetItem::builder()
            .get(
                Get::builder()
                    .table_name(table)
                    .set_key(Some(key))
                    .set_projection_expression(projection.map(str::to_string))
                    .build()
                    .expect("get"),
            )
            .build()
    };
    let out = c
        .transact_get_items()
        .transact_items(get(&a, item([("pk", s("1"))]), Some("x")))
        .transact_items(get(&b, item([("pk", s("1")), ("sk", s("2"))]), None))
        .transact_items(get(&a, item([("pk", s("missing"))]), None))
        .send()
        .await
        .expect("transact get");
    let responses = out.responses();
    assert_eq!(responses.len(), 3);
    assert_eq!(responses[0].item(), Some(&item([("x", s("a"))])));
    assert_eq!(
        responses[1].item(),
        Some(&item([("pk", s("1")), ("sk", s("2")), ("z", n("3"))]))
    );
    assert_eq!(responses[2].item(), None);
}

const ACCOUNTS: usize = 8;
const CLIENTS: usize = 12;
const INITIAL: i64 = 200;

/// Transfers between accounts, each with a unique transfer record in the
/// same transaction, from many clients; a reader checks with
/// TransactGetItems that the total never changes; kill -9 in the middle.
/// After the restart: the total is conserved, every acknowledged transfer
/// has its record, and the balances are exactly what the recorded
/// transfers imply (no partial and no duplicated transfer).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transfers_conserve_money_through_kill_9() {
    if skip_without_own_server("concurrent_transfers_conserve_money_through_kill_9") {
        return;
    }
    let mut env = TestEnv::new();
    let accounts = create_accounts(&env.client).await;
    let transfers = create_hash_table(&env.client, "Transfers").await;
    let ids: Vec<String> = (0..ACCOUNTS).map(|i| format!("acct-{i}")).collect();
    for id in &ids {
        env.client
            .put_item()
            .table_name(&accounts)
            .item("AccountId", s(id))
            .item("Balance", n(&INITIAL.to_string()))
            .send()
            .await
            .expect("seed");
    }

    let acked: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let cancelled = Arc::new(Mutex::new(0usize));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let c = env.client.clone();
        let (accounts, transfers, ids) = (accounts.clone(), transfers.clone(), ids.clone());
        let (acked, cancelled, stop) = (acked.clone(), cancelled.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let from = &ids[(client + i) % ACCOUNTS];
                let to = &ids[(client + 3 * i + 1) % ACCOUNTS];
                i += 1;
                if from == to {
                    continue;
                }
                let amount = 1 + ((client * 7 + i * 13) % 300) as i64;
                let id = format!("t-{client}-{i}");
                let record = item([
                    ("pk", s(&id)),
                    ("from", s(from)),
                    ("to", s(to)),
                    ("amount", n(&amount.to_string())),
                ]);
                let result = c
                    .transact_write_items()
                    .transact_items(debit(&accounts, from, amount))
                    .transact_items(credit(&accounts, to, amount))
                    .transact_items(
                        TransactWriteItem::builder()
                            .put(
                                Put::builder()
                                    .table_name(&transfers)
                                    .set_item(Some(record))
                                    .condition_expression("attribute_not_exists(pk)")
                                    .build()
                                    .expect("put"),
                            )
                            .build(),
                    )
                    .send()
                    .await;
                if cluster_partitions().is_some() {
                    // Cluster mode locks items across partitions (two-phase
                    // commit): without pauses the reader's TransactGetItems
                    // almost always meets a lock and is cancelled (with
                    // 20 ms pauses it still read only 4 snapshots in 120 s
                    // once, under the whole suite's load on two cores).
                    tokio::time::sleep(Duration::from_millis(40)).await;
                }
                match result {
                    Ok(_) => acked.lock().expect("lock").push(id),
                    Err(SdkError::ServiceError(e))
                        if matches!(
                            e.err(),
                            TransactWriteItemsError::TransactionCanceledException(_)
                        ) =>
                    {
                        *cancelled.lock().expect("lock") += 1
                    }
                    Err(_) => return, // the server is gone
                }
            }
        }));
    }
    // A reader: every snapshot of all accounts holds the initial total.
    let snapshots = Arc::new(AtomicUsize::new(0));
    let reader = {
        let c = env.client.clone();
        let (accounts, ids, stop) = (accounts.clone(), ids.clone(), stop.clone());
        let snapshots = snapshots.clone();
        tokio::spawn(async move {
            let (mut reads, mut conflicts) = (0usize, 0usize);
            while !stop.load(Ordering::Relaxed) {
                let mut req = c.transact_get_items();
                for id in &ids {
                    req = req.transact_items(
                        TransactGetItem::builder()
                            .get(
                                Get::builder()
                                    .table_name(&accounts)
                                    .set_key(Some(account(id)))
                                    .build()
                                    .expect("get"),
                            )
                            .build(),
                    );
                }
                let out = match req.send().await {
                    Ok(out) => out,
                    // Under contention a read across partitions may be
                    // refused (as DynamoDB's can be); the client retries.
                    Err(SdkError::ServiceError(e))
                        if matches!(
                            e.err(),
                            TransactGetItemsError::TransactionCanceledException(_)
                        ) || e.err().code() == Some("TransactionConflictException") =>
                    {
                        conflicts += 1;
                        continue;
                    }
                    Err(_) => return (reads, conflicts), // the server is gone
                };
                let total: i64 = out
                    .responses()
                    .iter()
                    .map(|r| {
                        get_n(r.item().expect("account"), "Balance")
                            .parse::<i64>()
                            .expect("balance")
                    })
                    .sum();
                assert_eq!(
                    total,
                    INITIAL * ACCOUNTS as i64,
                    "a snapshot saw part of a transfer"
                );
                reads += 1;
                snapshots.fetch_add(1, Ordering::Relaxed);
            }
            (reads, conflicts)
        })
    };

    // Kill only once both sides made progress: 600 transfers acknowledged
    // and 5 snapshots read (under contention a reader may be refused for a
    // while; waiting on what it saw, not on time, keeps two slow cores
    // from failing the test).
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.lock().expect("lock").len() < 600 || snapshots.load(Ordering::Relaxed) < 5 {
        assert!(
            Instant::now() < deadline,
            "too little progress: {} transfers acknowledged, {} snapshots read",
            acked.lock().expect("lock").len(),
            snapshots.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    env.server.as_mut().expect("own server").kill9();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("client task");
    }
    let (reads, read_conflicts) = reader.await.expect("reader");
    assert!(
        reads > 0,
        "the reader read nothing ({read_conflicts} refused reads)"
    );
    let acked = acked.lock().expect("lock").clone();

    env.kill9_and_restart();
    let c = &env.client;
    wait_active(c, &accounts).await;
    // Every recorded transfer.
    let mut records: HashMap<String, (String, String, i64)> = HashMap::new();
    let mut start = None;
    loop {
        let page = c
            .scan()
            .table_name(&transfers)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan transfers");
        for r in page.items() {
            records.insert(
                get_s(r, "pk").to_string(),
                (
                    get_s(r, "from").to_string(),
                    get_s(r, "to").to_string(),
                    get_n(r, "amount").parse().expect("amount"),
                ),
            );
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
    }
    let missing: Vec<&String> = acked
        .iter()
        .filter(|id| !records.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged transfers lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let mut expected: HashMap<&str, i64> = ids.iter().map(|id| (id.as_str(), INITIAL)).collect();
    for (from, to, amount) in records.values() {
        *expected.get_mut(from.as_str()).expect("from") -= amount;
        *expected.get_mut(to.as_str()).expect("to") += amount;
    }
    let mut total = 0;
    for id in &ids {
        let actual = balance(c, &accounts, id).await;
        assert_eq!(
            actual,
            expected[id.as_str()],
            "balance of {id} disagrees with the recorded transfers"
        );
        assert!(actual >= 0, "{id} overdrawn");
        total += actual;
    }
    assert_eq!(
        total,
        INITIAL * ACCOUNTS as i64,
        "money created or destroyed"
    );
    assert!(records.len() >= acked.len());
    eprintln!(
        "transfers: {} acknowledged, {} recorded, {} cancelled; {} snapshot reads ({} refused)",
        acked.len(),
        records.len(),
        *cancelled.lock().expect("lock"),
        reads,
        read_conflicts
    );
}
