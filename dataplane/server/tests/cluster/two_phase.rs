//! Transactions whose items are in different Raft groups: two-phase
//! commit through the gateway (partita_cluster's `router::two_phase`).
//! Each test names the invariant it checks.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use partita_model::AttributeValue;
use serde_json::{json, Value};

use crate::get;
use crate::harness::{free_ports, http_call, key, Cluster, TABLE};

/// Returns the partition (of 2) owning partition key `pk`.
fn partition_of(pk: &str) -> usize {
    let hash = partita_storage::keys::partition_hash(&AttributeValue::S(pk.into())).unwrap();
    partita_topology::split_hash_space(2)
        .iter()
        .position(|r| r.start <= hash && hash <= r.end)
        .unwrap()
}

/// Partition keys `prefix0..prefix15`, asserted to cover both partitions.
fn spread(prefix: &str) -> Vec<String> {
    let keys: Vec<String> = (0..16).map(|i| format!("{prefix}{i}")).collect();
    assert!(keys.iter().any(|k| partition_of(k) == 0));
    assert!(keys.iter().any(|k| partition_of(k) == 1));
    keys
}

fn puts(pks: &[String], sk: &str) -> Vec<Value> {
    pks.iter()
        .map(|pk| {
            json!({"Put": {"TableName": TABLE,
                "Item": {"pk": {"S": pk}, "sk": {"S": sk}, "v": {"N": "1"}}}})
        })
        .collect()
}

/// Invariant: a transaction over two partitions commits all its items, and
/// one whose condition fails on one item cancels with DynamoDB's error
/// (one reason per action) and writes nothing anywhere.
#[test]
fn cross_partition_transaction_commits_or_cancels_atomically() {
    let cluster = Cluster::start(2, 10_000);
    let pks = spread("x");
    let (status, body) = cluster.call(
        "TransactWriteItems",
        &json!({"TransactItems": puts(&pks, "1")}),
    );
    assert_eq!(status, 200, "{body}");
    for pk in &pks {
        assert!(
            get(&cluster, pk, "1").is_some(),
            "{pk} missing after commit"
        );
    }
    // The last action's condition fails: nothing of the 16 is written.
    let mut actions = puts(&pks, "2");
    actions[15]["Put"]["ConditionExpression"] = json!("attribute_exists(pk)");
    let (status, body) = cluster.call("TransactWriteItems", &json!({"TransactItems": actions}));
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["__type"],
        "com.amazonaws.dynamodb.v20120810#TransactionCanceledException"
    );
    let mut reasons = vec!["None"; 15];
    reasons.push("ConditionalCheckFailed");
    assert_eq!(
        body["message"],
        format!(
            "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
            reasons.join(", ")
        )
    );
    assert_eq!(
        body["CancellationReasons"][15]["Code"],
        "ConditionalCheckFailed"
    );
    for pk in &pks {
        assert!(
            get(&cluster, pk, "2").is_none(),
            "{pk} written by a cancelled transaction"
        );
    }
    // One failing action in each partition: both reasons are reported
    // (every group is asked, as DynamoDB lists every reason).
    let first_in = |p: usize| pks.iter().position(|k| partition_of(k) == p).unwrap();
    let (a, b) = (first_in(0), first_in(1));
    let mut actions = puts(&pks, "3");
    for i in [a, b] {
        actions[i]["Put"]["ConditionExpression"] = json!("attribute_exists(pk)");
    }
    let (status, body) = cluster.call("TransactWriteItems", &json!({"TransactItems": actions}));
    assert_eq!(status, 400, "{body}");
    for (i, reason) in body["CancellationReasons"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let want = if i == a || i == b {
            "ConditionalCheckFailed"
        } else {
            "None"
        };
        assert_eq!(reason["Code"], want, "action {i}: {body}");
    }
    // Actions of about 3.5 MB in all (each item near the 400 KB limit):
    // the prepare records are larger than an item and still commit.
    let big: Vec<Value> = pks[..10]
        .iter()
        .map(|pk| {
            json!({"Put": {"TableName": TABLE, "Item": {"pk": {"S": pk}, "sk": {"S": "big"},
                "payload": {"S": "x".repeat(350_000)}}}})
        })
        .collect();
    let (status, body) = cluster.call("TransactWriteItems", &json!({"TransactItems": big}));
    assert_eq!(status, 200, "{body}");
    for pk in &pks[..10] {
        assert!(
            get(&cluster, pk, "big").is_some(),
            "{pk} missing after the big commit"
        );
    }
    // The lock table is not reachable through the gateway.
    let (status, body) = cluster.call(
        "GetItem",
        &json!({"TableName": "__partita_tx_locks", "Key": {"k": {"S": "x"}}}),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["__type"],
        "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException"
    );
    // Plain writes to the items work again (no lock left behind).
    let (status, body) = cluster.call(
        "PutItem",
        &json!({"TableName": TABLE, "Item": {"pk": {"S": "x0"}, "sk": {"S": "2"}}}),
    );
    assert_eq!(status, 200, "{body}");
}

/// The sum of the balances of `accounts`, read consistently (each read
/// waits for or recovers a transaction holding the account).
fn total_of(cluster: &Cluster, accounts: &[String]) -> i64 {
    accounts
        .iter()
        .map(|pk| {
            get(cluster, pk, "b").unwrap()["n"]["N"]
                .as_str()
                .unwrap()
                .parse::<i64>()
                .unwrap()
        })
        .sum()
}

/// A transfer of `amount` from `from` to `to` (guarded: `from` keeps a
/// non-negative balance) that also writes its witness record `witness`
/// (created once: `attribute_not_exists`), naming both accounts and the
/// amount, in the same transaction.
fn transfer(from: &str, to: &str, amount: u64, witness: &str) -> Value {
    let update = |pk: &str, delta: i64, guard: bool| {
        let mut u = json!({
            "TableName": TABLE,
            "Key": key(pk, "b"),
            "UpdateExpression": "ADD n :d",
            "ExpressionAttributeValues": {":d": {"N": delta.to_string()}},
        });
        if guard {
            u["ConditionExpression"] = json!("n >= :a");
            u["ExpressionAttributeValues"][":a"] = json!({"N": amount.to_string()});
        }
        json!({ "Update": u })
    };
    let record = json!({"Put": {
        "TableName": TABLE,
        "Item": {"pk": {"S": witness}, "sk": {"S": "w"}, "from": {"S": from},
                 "to": {"S": to}, "amount": {"N": amount.to_string()}},
        "ConditionExpression": "attribute_not_exists(pk)",
    }});
    json!({"TransactItems": [update(from, -(amount as i64), true), update(to, amount as i64, false), record]})
}

/// What the client learned of each transfer it sent, by witness key.
#[derive(Default)]
struct Outcomes {
    acknowledged: Vec<String>,
    cancelled: Vec<String>,
    unknown: Vec<String>,
}

/// Checks the transfers against their witnesses: every acknowledged
/// transfer's witness exists, no cancelled one's does, and each account's
/// balance is its start plus what the existing witnesses moved in minus
/// what they moved out (so each transfer applied exactly once, on both
/// sides), never below zero (the guard held).
fn check_witnesses(cluster: &Cluster, accounts: &[String], start: i64, outcomes: &Outcomes) {
    let witness = |pk: &str| get(cluster, pk, "w");
    let mut expected: std::collections::BTreeMap<&str, i64> =
        accounts.iter().map(|a| (a.as_str(), start)).collect();
    let mut apply = |record: &Value| {
        let amount: i64 = record["amount"]["N"].as_str().unwrap().parse().unwrap();
        *expected
            .get_mut(record["from"]["S"].as_str().unwrap())
            .unwrap() -= amount;
        *expected
            .get_mut(record["to"]["S"].as_str().unwrap())
            .unwrap() += amount;
    };
    for pk in &outcomes.acknowledged {
        let record = witness(pk).unwrap_or_else(|| panic!("acknowledged transfer {pk} is lost"));
        apply(&record);
    }
    for pk in &outcomes.cancelled {
        assert!(witness(pk).is_none(), "cancelled transfer {pk} applied");
    }
    let mut unknown_applied = 0;
    for pk in &outcomes.unknown {
        if let Some(record) = witness(pk) {
            unknown_applied += 1;
            apply(&record);
        }
    }
    for pk in accounts {
        let balance: i64 = get(cluster, pk, "b").unwrap()["n"]["N"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(balance >= 0, "account {pk} overdrawn: {balance}");
        assert_eq!(
            balance,
            expected[pk.as_str()],
            "account {pk}: its balance is not what its transfers' witnesses say"
        );
    }
    eprintln!(
        "witnesses: {} acknowledged, {} cancelled, {} unknown ({unknown_applied} applied)",
        outcomes.acknowledged.len(),
        outcomes.cancelled.len(),
        outcomes.unknown.len()
    );
}

/// Invariant: concurrent transfers between accounts on two partitions
/// conserve the total, and a concurrent TransactGetItems over every account
/// never sees half a transfer.
#[test]
fn concurrent_transfers_conserve_the_total_and_reads_see_no_half() {
    let cluster = Arc::new(Cluster::start(2, 10_000));
    let accounts: Vec<String> = spread("acct").into_iter().take(8).collect();
    assert!(accounts.iter().any(|k| partition_of(k) == 0));
    assert!(accounts.iter().any(|k| partition_of(k) == 1));
    for pk in &accounts {
        let (status, body) = cluster.call(
            "PutItem",
            &json!({"TableName": TABLE, "Item": {"pk": {"S": pk}, "sk": {"S": "b"}, "n": {"N": "100"}}}),
        );
        assert_eq!(status, 200, "{body}");
    }
    let total = 100 * accounts.len() as i64;
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let crossing = Arc::new(AtomicU64::new(0));
    let checker = {
        let (cluster, stop, accounts) = (cluster.clone(), stop.clone(), accounts.clone());
        std::thread::spawn(move || {
            let gets: Vec<Value> = accounts
                .iter()
                .map(|pk| json!({"Get": {"TableName": TABLE, "Key": key(pk, "b")}}))
                .collect();
            let mut checks = 0;
            while !stop.load(Ordering::Relaxed) {
                let (status, body) =
                    cluster.call("TransactGetItems", &json!({"TransactItems": gets}));
                if status != 200 {
                    continue;
                }
                let balances: Vec<i64> = body["Responses"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| {
                        r["Item"]["n"]["N"]
                            .as_str()
                            .unwrap()
                            .parse::<i64>()
                            .unwrap()
                    })
                    .collect();
                assert_eq!(
                    balances.iter().sum::<i64>(),
                    total,
                    "a read saw half a transfer: {body}"
                );
                assert!(
                    balances.iter().all(|b| *b >= 0),
                    "a read saw an overdraft: {body}"
                );
                checks += 1;
            }
            checks
        })
    };
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let workers: Vec<_> = (0..4u64)
        .map(|w| {
            let (cluster, accounts) = (cluster.clone(), accounts.clone());
            let (committed, crossing) = (committed.clone(), crossing.clone());
            let outcomes = outcomes.clone();
            std::thread::spawn(move || {
                let mut seed = 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(w + 1);
                let mut next = move || {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed
                };
                for t in 0..25 {
                    let from = (next() % accounts.len() as u64) as usize;
                    let to = (from + 1 + (next() % (accounts.len() as u64 - 1)) as usize)
                        % accounts.len();
                    let amount = 1 + next() % 5;
                    // Conflicting transfers cancel each other: retry a few
                    // times, each attempt a transfer of its own.
                    for attempt in 0..20 {
                        let witness = format!("w{w}-{t}-{attempt}");
                        let body = transfer(&accounts[from], &accounts[to], amount, &witness);
                        let (status, answer) = cluster.call("TransactWriteItems", &body);
                        if status == 200 {
                            outcomes.lock().unwrap().acknowledged.push(witness);
                            committed.fetch_add(1, Ordering::Relaxed);
                            if partition_of(&accounts[from]) != partition_of(&accounts[to]) {
                                crossing.fetch_add(1, Ordering::Relaxed);
                            }
                            break;
                        }
                        assert!(
                            status == 400
                                && answer["__type"]
                                    .as_str()
                                    .is_some_and(|t| t.ends_with("#TransactionCanceledException")),
                            "unexpected answer: {status} {answer}"
                        );
                        outcomes.lock().unwrap().cancelled.push(witness);
                        std::thread::sleep(Duration::from_millis(5 + 7 * attempt));
                    }
                    // Leave the checker gaps between locks.
                    std::thread::sleep(Duration::from_millis(15));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let checks = checker.join().unwrap();
    let sum = total_of(&cluster, &accounts);
    assert_eq!(sum, total);
    check_witnesses(&cluster, &accounts, 100, &outcomes.lock().unwrap());
    assert!(
        crossing.load(Ordering::Relaxed) > 10,
        "too few cross-partition transfers committed"
    );
    assert!(checks > 10, "the checker ran only {checks} times");
    eprintln!(
        "transfers committed: {} ({} across partitions), checks: {checks}",
        committed.load(Ordering::Relaxed),
        crossing.load(Ordering::Relaxed)
    );
}

/// Runs a 16-item transaction over both partitions through a gateway that
/// exits at `point`, and returns the items' partition keys.
fn transaction_of_a_dying_gateway(cluster: &Cluster, point: &str, sk: &str) -> Vec<String> {
    let port = free_ports(1)[0];
    let mut gateway = cluster.spawn_gateway(port, &[("PARTITA_TEST_2PC_EXIT", point)]);
    let pks = spread("r");
    let (status, body) = http_call(
        port,
        "TransactWriteItems",
        &json!({"TransactItems": puts(&pks, sk)}),
    );
    assert!(
        status == 0 || status >= 500,
        "the gateway answered: {status} {body}"
    );
    let exit = gateway.wait().unwrap();
    assert_eq!(exit.code(), Some(3), "the gateway did not exit on the hook");
    pks
}

/// Invariant: a transaction whose coordinator died between prepare and
/// decision holds its items (writes are refused with
/// TransactionConflictException) until a write meets the stale lock and
/// aborts it on every participant: nothing was written and the items are
/// free again.
#[test]
fn recovery_aborts_a_transaction_whose_coordinator_died_before_deciding() {
    let cluster = Cluster::start(2, 10_000);
    let pks = transaction_of_a_dying_gateway(&cluster, "after-prepare", "p");
    let (status, body) = cluster.call(
        "PutItem",
        &json!({"TableName": TABLE, "Item": {"pk": {"S": pks[0]}, "sk": {"S": "p"}}}),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["__type"],
        "com.amazonaws.dynamodb.v20120810#TransactionConflictException"
    );
    // A TransactGetItems across the held items is cancelled, one
    // TransactionConflict reason per item, as DynamoDB's.
    let gets: Vec<Value> = pks[..2]
        .iter()
        .map(|pk| json!({"Get": {"TableName": TABLE, "Key": {"pk": {"S": pk}, "sk": {"S": "p"}}}}))
        .collect();
    let (status, body) = cluster.call("TransactGetItems", &json!({"TransactItems": gets}));
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["__type"],
        "com.amazonaws.dynamodb.v20120810#TransactionCanceledException"
    );
    assert_eq!(
        body["message"],
        "Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict, TransactionConflict]"
    );
    // Once the lock is stale, the next write to the item recovers the
    // transaction (an abort: there is no decision) and applies.
    std::thread::sleep(Duration::from_millis(2_200));
    let (status, body) = cluster.call(
        "PutItem",
        &json!({"TableName": TABLE, "Item": {"pk": {"S": pks[0]}, "sk": {"S": "p"}, "v": {"N": "2"}}}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(get(&cluster, &pks[0], "p").unwrap()["v"]["N"], "2");
    for pk in &pks[1..] {
        let started = Instant::now();
        assert!(
            get(&cluster, pk, "p").is_none(),
            "{pk} written by an aborted transaction"
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{pk} still locked"
        );
        let (status, body) = cluster.call(
            "PutItem",
            &json!({"TableName": TABLE, "Item": {"pk": {"S": pk}, "sk": {"S": "p"}, "v": {"N": "2"}}}),
        );
        assert_eq!(status, 200, "{body}");
    }
}

/// Invariant: a transaction whose coordinator died after recording the
/// commit decision is committed by recovery: a consistent read waits on
/// the young lock, then recovers it, and every item appears.
#[test]
fn recovery_commits_a_transaction_whose_coordinator_died_after_deciding() {
    let cluster = Cluster::start(2, 10_000);
    let pks = transaction_of_a_dying_gateway(&cluster, "after-decide", "d");
    for pk in &pks {
        let item = get(&cluster, pk, "d").unwrap_or_else(|| panic!("{pk} not committed"));
        assert_eq!(item["v"]["N"], "1");
    }
    // A stale lock met by a write is recovered too: the write then applies.
    let (status, body) = cluster.call(
        "PutItem",
        &json!({"TableName": TABLE, "Item": {"pk": {"S": pks[0]}, "sk": {"S": "d"}, "v": {"N": "3"}}}),
    );
    assert_eq!(status, 200, "{body}");
}

/// Invariant: a cross-partition transaction retried with its
/// ClientRequestToken applies once; the token refuses a different request.
#[test]
fn cross_partition_token_applies_once() {
    let mut cluster = Cluster::start(2, 10_000);
    let pks = spread("k");
    let mut body = json!({"TransactItems": [
        {"Update": {"TableName": TABLE, "Key": key(&pks[0], "t"),
            "UpdateExpression": "ADD n :d", "ExpressionAttributeValues": {":d": {"N": "1"}}}},
        {"Update": {"TableName": TABLE, "Key": key(&pks[15], "t"),
            "UpdateExpression": "ADD n :d", "ExpressionAttributeValues": {":d": {"N": "1"}}}},
    ], "ClientRequestToken": "cross-token-1"});
    assert_ne!(partition_of(&pks[0]), partition_of(&pks[15]));
    // A fresh gateway before each retry: only the replicated record in
    // the coordinator group can answer.
    for _ in 0..2 {
        let (status, answer) = cluster.call("TransactWriteItems", &body);
        assert_eq!(status, 200, "{answer}");
        cluster.restart_gateway();
    }
    for pk in [&pks[0], &pks[15]] {
        assert_eq!(get(&cluster, pk, "t").unwrap()["n"]["N"], "1");
    }
    body["TransactItems"][0]["Update"]["ExpressionAttributeValues"][":d"]["N"] = json!("2");
    let (status, answer) = cluster.call("TransactWriteItems", &body);
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["__type"],
        "com.amazonaws.dynamodb.v20120810#IdempotentParameterMismatchException"
    );
}

/// Invariant: killing a participant's leader while transfers run across
/// two partitions loses no money and creates none: transfers whose outcome
/// the client could not learn (a 500) either committed on both partitions
/// or on neither, and their locks are resolved by the reads that meet them.
#[test]
fn transfers_conserve_the_total_across_a_participant_leader_kill() {
    let mut cluster = Cluster::start(2, 10_000);
    let accounts: Vec<String> = spread("acct").into_iter().take(8).collect();
    for pk in &accounts {
        let (status, body) = cluster.call(
            "PutItem",
            &json!({"TableName": TABLE, "Item": {"pk": {"S": pk}, "sk": {"S": "b"}, "n": {"N": "100"}}}),
        );
        assert_eq!(status, 200, "{body}");
    }
    let total = 100 * accounts.len() as i64;
    let port = cluster.gateway_port;
    let stop = Arc::new(AtomicBool::new(false));
    let unknown = Arc::new(AtomicU64::new(0));
    let committed = Arc::new(AtomicU64::new(0));
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    // Transfers acknowledged since the kill (progress after the fault).
    let killed = Arc::new(AtomicBool::new(false));
    let after_kill = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..3u64)
        .map(|w| {
            let accounts = accounts.clone();
            let (stop, unknown, committed) = (stop.clone(), unknown.clone(), committed.clone());
            let (outcomes, killed, after_kill) =
                (outcomes.clone(), killed.clone(), after_kill.clone());
            std::thread::spawn(move || {
                let mut seed = 0x2545_f491_4f6c_dd1du64.wrapping_mul(w + 3);
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let from = (seed % 8) as usize;
                    let to = (from + 1 + ((seed >> 8) % 7) as usize) % 8;
                    n += 1;
                    let witness = format!("w{w}-{n}");
                    let after = killed.load(Ordering::Relaxed);
                    let body = transfer(
                        &accounts[from],
                        &accounts[to],
                        1 + (seed >> 16) % 5,
                        &witness,
                    );
                    let (status, answer) = http_call(port, "TransactWriteItems", &body);
                    match status {
                        200 => {
                            committed.fetch_add(1, Ordering::Relaxed);
                            if after {
                                after_kill.fetch_add(1, Ordering::Relaxed);
                            }
                            outcomes.lock().unwrap().acknowledged.push(witness);
                        }
                        400 => {
                            assert!(
                                answer["__type"]
                                    .as_str()
                                    .is_some_and(|t| t.ends_with("#TransactionCanceledException")),
                                "unexpected answer: {answer}"
                            );
                            outcomes.lock().unwrap().cancelled.push(witness);
                        }
                        // Outcome unknown (the leader died mid-way).
                        _ => {
                            unknown.fetch_add(1, Ordering::Relaxed);
                            outcomes.lock().unwrap().unknown.push(witness);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        })
        .collect();
    let wait_for = |what: &str, counter: &AtomicU64, count: u64| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while counter.load(Ordering::Relaxed) < count {
            assert!(
                Instant::now() < deadline,
                "{what}: too few transfers acknowledged"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for("before the kill", &committed, 20);
    let leader = crate::leader_of(&cluster, 1).expect("a leader of partition 1");
    killed.store(true, Ordering::Relaxed);
    cluster.kill_node(leader);
    // Progress after the fault: transfers sent after the kill acknowledged.
    wait_for("after the kill", &after_kill, 20);
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    // Consistent reads wait for (or recover) every transaction left open.
    let sum = total_of(&cluster, &accounts);
    assert_eq!(sum, total);
    check_witnesses(&cluster, &accounts, 100, &outcomes.lock().unwrap());
    eprintln!(
        "transfers committed: {} ({} after the kill), outcome unknown: {}",
        committed.load(Ordering::Relaxed),
        after_kill.load(Ordering::Relaxed),
        unknown.load(Ordering::Relaxed)
    );
    // Writes work again on every account (no lock left behind).
    for pk in &accounts {
        let (status, body) = cluster.call(
            "PutItem",
            &json!({"TableName": TABLE, "Item": {"pk": {"S": pk}, "sk": {"S": "b"}, "n": {"N": "0"}}}),
        );
        assert_eq!(status, 200, "{body}");
    }
}
