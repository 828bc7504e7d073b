//! PartiQL: ExecuteStatement (SELECT, INSERT, UPDATE, DELETE, parameters,
//! RETURNING, Limit/NextToken), BatchExecuteStatement and
//! ExecuteTransaction, with DynamoDB's error types and messages.

use partita_blackbox_tests::aws_sdk_dynamodb::types::{
    AttributeValue, BatchStatementErrorCodeEnum, BatchStatementRequest, BillingMode,
    GlobalSecondaryIndex, KeyType, ParameterizedStatement, Projection, ProjectionType,
    ScalarAttributeType,
};
use partita_blackbox_tests::aws_sdk_dynamodb::Client;
use partita_blackbox_tests::*;

async fn exec(c: &Client, statement: &str, params: Vec<AttributeValue>) -> Vec<Item> {
    let params = (!params.is_empty()).then_some(params);
    c.execute_statement()
        .statement(statement)
        .set_parameters(params)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e:?}"))
        .items()
        .to_vec()
}

async fn get(c: &Client, table: &str, key: Item) -> Option<Item> {
    c.get_item()
        .table_name(table)
        .set_key(Some(key))
        .consistent_read(true)
        .send()
        .await
        .expect("get item")
        .item()
        .cloned()
}

fn l(items: Vec<AttributeValue>) -> AttributeValue {
    AttributeValue::L(items)
}

#[tokio::test]
async fn insert_select_update_delete_round_trip() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_hash_table(c, "pq_crud").await;

    exec(
        c,
        &format!(
            "INSERT INTO \"{t}\" VALUE {{'pk': 'a', 'n': 5, 'b': true, 'z': NULL, 'l': [1, 'x'], 'm': {{'in': {{'deep': 'v'}}}}, 'ss': <<'p', 'q'>>, 'ns': <<1, 2>>}}"
        ),
        vec![],
    )
    .await;
    let stored = get(c, &t, item([("pk", s("a"))])).await.expect("inserted");
    assert_eq!(get_n(&stored, "n"), "5");
    assert_eq!(stored["b"], AttributeValue::Bool(true));
    assert_eq!(stored["z"], AttributeValue::Null(true));
    assert_eq!(stored["l"], l(vec![n("1"), s("x")]));
    assert_eq!(
        stored["ss"],
        AttributeValue::Ss(vec!["p".into(), "q".into()])
    );
    assert!(matches!(&stored["ns"], AttributeValue::Ns(v) if v.len() == 2));

    // SELECT by full key, with * and with a projection of nested paths.
    let rows = exec(c, &format!("SELECT * FROM \"{t}\" WHERE pk = 'a'"), vec![]).await;
    assert_eq!(rows, vec![stored.clone()]);
    let rows = exec(
        c,
        &format!("SELECT pk, m.\"in\".deep, l[1] FROM \"{t}\" WHERE pk = ?"),
        vec![s("a")],
    )
    .await;
    assert_eq!(
        rows,
        vec![item([("pk", s("a")), ("deep", s("v")), ("l[1]", s("x"))])]
    );

    // UPDATE with arithmetic, list_append, set_add, REMOVE and RETURNING.
    let rows = exec(
        c,
        &format!(
            "UPDATE \"{t}\" SET n = n + 1 SET l = list_append(l, [3]) SET ss = set_add(ss, <<'r'>>) REMOVE z WHERE pk = 'a' RETURNING ALL NEW *"
        ),
        vec![],
    )
    .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(get_n(&rows[0], "n"), "6");
    assert_eq!(rows[0]["l"], l(vec![n("1"), s("x"), n("3")]));
    assert!(matches!(&rows[0]["ss"], AttributeValue::Ss(v) if v.len() == 3));
    assert!(!rows[0].contains_key("z"));
    let rows = exec(
        c,
        &format!("UPDATE \"{t}\" SET n = ? WHERE pk = ? RETURNING MODIFIED OLD *"),
        vec![n("10"), s("a")],
    )
    .await;
    assert_eq!(rows, vec![item([("n", n("6"))])]);
    let rows = exec(
        c,
        &format!("UPDATE \"{t}\" SET n = 11 WHERE pk = 'a' RETURNING MODIFIED NEW *"),
        vec![],
    )
    .await;
    assert_eq!(rows, vec![item([("n", n("11"))])]);
    let rows = exec(
        c,
        &format!("UPDATE \"{t}\" SET other = 'x' WHERE pk = 'a'"),
        vec![],
    )
    .await;
    assert!(rows.is_empty(), "no RETURNING, no items: {rows:?}");

    // DELETE with RETURNING ALL OLD *; a second delete returns nothing.
    let rows = exec(
        c,
        &format!("DELETE FROM \"{t}\" WHERE pk = 'a' RETURNING ALL OLD *"),
        vec![],
    )
    .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(get_s(&rows[0], "other"), "x");
    assert!(get(c, &t, item([("pk", s("a"))])).await.is_none());
    let rows = exec(
        c,
        &format!("DELETE FROM \"{t}\" WHERE pk = 'a' RETURNING ALL OLD *"),
        vec![],
    )
    .await;
    assert!(rows.is_empty());
}

#[tokio::test]
async fn writes_fail_with_dynamodb_errors() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_hash_table(c, "pq_write_err").await;
    exec(
        c,
        &format!("INSERT INTO \"{t}\" VALUE {{'pk': 'a', 'n': 1}}"),
        vec![],
    )
    .await;

    let run = |stmt: String| {
        let c = c.clone();
        async move { c.execute_statement().statement(stmt).send().await }
    };
    // DynamoDB Local names the error DuplicateItem.
    let e = api_err(run(format!("INSERT INTO \"{t}\" VALUE {{'pk': 'a', 'n': 2}}")).await);
    assert_eq!(e.message, "Duplicate primary key exists in table");
    assert_eq!(
        e.code,
        if is_dynamodb_local() {
            "DuplicateItem"
        } else {
            "DuplicateItemException"
        }
    );
    assert_api_err(
        run(format!("UPDATE \"{t}\" SET n = 2 WHERE pk = 'missing'")).await,
        "ConditionalCheckFailedException",
        "The conditional request failed",
    );
    assert!(get(c, &t, item([("pk", s("missing"))])).await.is_none());
    assert_api_err(
        run(format!("UPDATE \"{t}\" SET n = 2 WHERE pk = 'a' AND n = 5")).await,
        "ConditionalCheckFailedException",
        "The conditional request failed",
    );
    assert_api_err(
        run(format!("DELETE FROM \"{t}\" WHERE pk = 'a' AND n > 1")).await,
        "ConditionalCheckFailedException",
        "The conditional request failed",
    );
    let still = get(c, &t, item([("pk", s("a"))])).await.expect("unchanged");
    assert_eq!(get_n(&still, "n"), "1");
    // A condition that holds lets the write through.
    exec(
        c,
        &format!("UPDATE \"{t}\" SET n = 2 WHERE pk = 'a' AND n = 1 AND attribute_exists(pk)"),
        vec![],
    )
    .await;
    assert_api_err(
        run(format!("UPDATE \"{t}\" SET n = 1 WHERE n = 2")).await,
        "ValidationException",
        "Where clause does not contain a mandatory equality on all key attributes",
    );
    assert_api_err(
        run(format!("UPDATE \"{t}\" SET pk = 'b' WHERE pk = 'a'")).await,
        "ValidationException",
        "One or more parameter values were invalid: Cannot update attribute pk. This attribute is part of the key",
    );
    assert_api_err(
        run(format!("INSERT INTO \"{t}\" VALUE {{'n': 1}}")).await,
        "ValidationException",
        "Key attribute should be present in the item: Key pk",
    );
    assert_api_err(
        run(format!("INSERT INTO \"{t}\" VALUE {{'pk': 1}}")).await,
        "ValidationException",
        "Key attribute's data type should match its data type in table's schema: Key pk",
    );
    assert_api_err(
        run(format!("DELETE FROM \"{t}\" WHERE pk = 'a' RETURNING ALL NEW *")).await,
        "ValidationException",
        "Invalid returning clause: RETURNING ALL NEW *. Only RETURNING ALL OLD * is allowed in DELETE statements.",
    );
    // INSERT after DELETE of the same key succeeds.
    exec(c, &format!("DELETE FROM \"{t}\" WHERE pk = 'a'"), vec![]).await;
    exec(
        c,
        &format!("INSERT INTO \"{t}\" VALUE {{'pk': 'a', 'n': 3}}"),
        vec![],
    )
    .await;
    let again = get(c, &t, item([("pk", s("a"))]))
        .await
        .expect("reinserted");
    assert_eq!(get_n(&again, "n"), "3");
}

#[tokio::test]
async fn select_queries_in_key_order_scans_and_paginates() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = unique_name("pq_select");
    create_table(
        c,
        &t,
        ("pk", ScalarAttributeType::S),
        Some(("sk", ScalarAttributeType::N)),
    )
    .await;
    for i in (0..10).rev() {
        c.put_item()
            .table_name(&t)
            .set_item(Some(item([
                ("pk", s("p")),
                ("sk", n(&i.to_string())),
                ("v", n(&(i * 10).to_string())),
                ("tag", s(if i % 2 == 0 { "even" } else { "odd" })),
            ])))
            .send()
            .await
            .expect("put");
    }
    c.put_item()
        .table_name(&t)
        .set_item(Some(item([("pk", s("q")), ("sk", n("0")), ("v", n("99"))])))
        .send()
        .await
        .expect("put");
    let sks = |rows: &[Item]| -> Vec<String> {
        rows.iter().map(|r| get_n(r, "sk").to_string()).collect()
    };

    let rows = exec(c, &format!("SELECT * FROM \"{t}\" WHERE pk = 'p'"), vec![]).await;
    assert_eq!(
        sks(&rows),
        (0..10).map(|i| i.to_string()).collect::<Vec<_>>()
    );
    let rows = exec(
        c,
        &format!("SELECT sk FROM \"{t}\" WHERE pk = 'p' AND sk BETWEEN 2 AND 4"),
        vec![],
    )
    .await;
    assert_eq!(
        rows,
        vec![
            item([("sk", n("2"))]),
            item([("sk", n("3"))]),
            item([("sk", n("4"))])
        ]
    );
    let rows = exec(
        c,
        &format!("SELECT * FROM \"{t}\" WHERE pk = 'p' AND sk > 6 ORDER BY sk DESC"),
        vec![],
    )
    .await;
    assert_eq!(sks(&rows), vec!["9", "8", "7"]);
    let rows = exec(
        c,
        &format!(
            "SELECT * FROM \"{t}\" WHERE pk = 'p' AND tag = 'odd' AND (sk < 4 OR sk IN [7, 9])"
        ),
        vec![],
    )
    .await;
    assert_eq!(sks(&rows), vec!["1", "3", "7", "9"]);
    // No partition key equality: a scan with the filter.
    let mut rows = exec(
        c,
        &format!("SELECT pk, v FROM \"{t}\" WHERE v >= 80"),
        vec![],
    )
    .await;
    rows.sort_by_key(|r| get_n(r, "v").parse::<i64>().unwrap_or(0));
    assert_eq!(
        rows,
        vec![
            item([("pk", s("p")), ("v", n("80"))]),
            item([("pk", s("p")), ("v", n("90"))]),
            item([("pk", s("q")), ("v", n("99"))]),
        ]
    );
    let rows = exec(
        c,
        &format!("SELECT * FROM \"{t}\" WHERE tag IS MISSING"),
        vec![],
    )
    .await;
    assert_eq!(rows.len(), 1);

    // Limit and NextToken: pages of 3 in key order, bound to the statement.
    let stmt = format!("SELECT sk FROM \"{t}\" WHERE pk = ?");
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let out = c
            .execute_statement()
            .statement(&stmt)
            .parameters(s("p"))
            .limit(3)
            .set_next_token(token.clone())
            .send()
            .await
            .expect("page");
        pages += 1;
        assert!(out.items().len() <= 3);
        seen.extend(sks(out.items()));
        token = out.next_token().map(str::to_string);
        if token.is_none() || pages > 10 {
            break;
        }
    }
    assert_eq!(seen, (0..10).map(|i| i.to_string()).collect::<Vec<_>>());
    assert!(pages >= 4);
    let first = c
        .execute_statement()
        .statement(&stmt)
        .parameters(s("p"))
        .limit(2)
        .send()
        .await
        .expect("first page");
    let token = first.next_token().expect("a next token").to_string();
    if is_dynamodb_local() {
        // DynamoDB Local does not bind tokens to their statement.
        return;
    }
    assert_api_err(
        c.execute_statement()
            .statement(&stmt)
            .parameters(s("q"))
            .next_token(&token)
            .send()
            .await,
        "ValidationException",
        "NextToken does not match request",
    );
    assert_api_err(
        c.execute_statement()
            .statement(&stmt)
            .parameters(s("p"))
            .next_token("garbage")
            .send()
            .await,
        "ValidationException",
        "Invalid NextToken",
    );
}

#[tokio::test]
async fn statement_and_parameter_errors() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = unique_name("pq_errors");
    create_table(
        c,
        &t,
        ("pk", ScalarAttributeType::S),
        Some(("sk", ScalarAttributeType::N)),
    )
    .await;
    let run = |stmt: String, params: Vec<AttributeValue>| {
        let c = c.clone();
        let params = (!params.is_empty()).then_some(params);
        async move {
            c.execute_statement()
                .statement(stmt)
                .set_parameters(params)
                .send()
                .await
        }
    };
    let e = api_err(run(format!("SELECTT * FROMM \"{t}\""), vec![]).await);
    assert_eq!(e.code, "ValidationException");
    // DynamoDB Local echoes the statement rather than the parser's detail.
    assert!(
        is_dynamodb_local()
            || e.message
                == "Statement wasn't well formed, can't be processed: Expected data manipulation",
        "{}",
        e.message
    );
    assert_api_err(
        run(format!("SELECT * FROM \"{t}\" WHERE pk = ?"), vec![]).await,
        "ValidationException",
        "Number of parameters in request and statement don't match.",
    );
    if !is_dynamodb_local() {
        // DynamoDB Local ignores surplus parameters.
        assert_api_err(
            run(
                format!("SELECT * FROM \"{t}\" WHERE pk = 'a'"),
                vec![s("x")],
            )
            .await,
            "ValidationException",
            "Number of parameters in request and statement don't match.",
        );
    }
    let e = api_err(
        run(
            "SELECT * FROM \"pq_no_such_table\" WHERE pk = 'x'".into(),
            vec![],
        )
        .await,
    );
    assert_eq!(e.code, "ResourceNotFoundException");
    assert_api_err(
        run(format!("SELECT * FROM \"{t}\" WHERE pk = 1"), vec![]).await,
        "ValidationException",
        "Key attribute's data type should match its data type in table's schema: Key pk",
    );
    assert_api_err(
        run(format!("DELETE FROM \"{t}\" WHERE pk = 'a'"), vec![]).await,
        "ValidationException",
        "Where clause does not contain a mandatory equality on all key attributes",
    );
    assert_api_err(
        run(format!("SELECT count(*) FROM \"{t}\""), vec![]).await,
        "ValidationException",
        "Unexpected path component at 1:8:5",
    );
    assert_api_err(
        run(format!("SELECT * FROM \"{t}\" WHERE nosuch(pk)"), vec![]).await,
        "ValidationException",
        "Unrecognized function: nosuch",
    );
    assert_api_err(
        run(
            format!("SELECT * FROM \"{t}\".\"idx\" WHERE pk = 'a'"),
            vec![],
        )
        .await,
        "ValidationException",
        "The table does not have the specified index: idx",
    );
    let e = api_err(c.execute_statement().statement("").send().await);
    assert_eq!(e.code, "ValidationException");
    // DynamoDB Local parses the empty statement instead.
    assert!(
        is_dynamodb_local() || e.message
            .ends_with("at 'statement' failed to satisfy constraint: Member must have length greater than or equal to 1"),
        "{}",
        e.message
    );
}

fn stmt(text: String) -> BatchStatementRequest {
    BatchStatementRequest::builder()
        .statement(text)
        .build()
        .expect("statement")
}

#[tokio::test]
async fn batch_execute_statement_answers_each_statement() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_hash_table(c, "pq_batch").await;
    exec(
        c,
        &format!("INSERT INTO \"{t}\" VALUE {{'pk': 'a', 'n': 1}}"),
        vec![],
    )
    .await;

    // Writes: an insert, an update, a duplicate insert and a failed update.
    let out = c
        .batch_execute_statement()
        .statements(stmt(format!(
            "INSERT INTO \"{t}\" VALUE {{'pk': 'b', 'n': 2}}"
        )))
        .statements(stmt(format!(
            "UPDATE \"{t}\" SET n = n + 10 WHERE pk = 'a'"
        )))
        .statements(stmt(format!("INSERT INTO \"{t}\" VALUE {{'pk': 'c'}}")))
        .statements(stmt(format!("UPDATE \"{t}\" SET n = 1 WHERE pk = 'nope'")))
        .send()
        .await
        .expect("batch writes");
    let r = out.responses();
    assert_eq!(r.len(), 4);
    assert!(r[0].error().is_none() && r[1].error().is_none() && r[2].error().is_none());
    assert_eq!(r[0].table_name(), Some(t.as_str()));
    assert_eq!(
        r[3].error().and_then(|e| e.code()),
        Some(&BatchStatementErrorCodeEnum::ConditionalCheckFailed)
    );
    let a = get(c, &t, item([("pk", s("a"))])).await.expect("a");
    assert_eq!(get_n(&a, "n"), "11");
    assert!(get(c, &t, item([("pk", s("b"))])).await.is_some());
    let out = c
        .batch_execute_statement()
        .statements(stmt(format!("INSERT INTO \"{t}\" VALUE {{'pk': 'b'}}")))
        .send()
        .await
        .expect("duplicate insert batch");
    let e = out.responses()[0].error().expect("an error");
    assert_eq!(e.code(), Some(&BatchStatementErrorCodeEnum::DuplicateItem));
    assert_eq!(e.message(), Some("Duplicate primary key exists in table"));

    // Reads: found, not found, unknown table, not a single-item select.
    let out = c
        .batch_execute_statement()
        .statements(stmt(format!("SELECT * FROM \"{t}\" WHERE pk = 'a'")))
        .statements(stmt(format!("SELECT * FROM \"{t}\" WHERE pk = 'zz'")))
        .statements(stmt(
            "SELECT * FROM \"pq_no_such_table\" WHERE pk = 'x'".into(),
        ))
        .statements(stmt(format!("SELECT * FROM \"{t}\" WHERE n = 11")))
        .statements(
            BatchStatementRequest::builder()
                .statement(format!("SELECT n FROM \"{t}\" WHERE pk = ?"))
                .parameters(s("b"))
                .build()
                .expect("statement"),
        )
        .send()
        .await
        .expect("batch reads");
    let r = out.responses();
    assert_eq!(r.len(), 5);
    assert_eq!(r[0].item().map(|i| get_n(i, "n")), Some("11"));
    assert!(r[1].error().is_none() && r[1].item().is_none());
    assert_eq!(
        r[2].error().and_then(|e| e.code()),
        Some(&BatchStatementErrorCodeEnum::ResourceNotFound)
    );
    assert_eq!(
        r[3].error().and_then(|e| e.code()),
        Some(&BatchStatementErrorCodeEnum::ValidationError)
    );
    assert_eq!(r[4].item(), Some(&item([("n", n("2"))])));

    // Whole-batch validation.
    assert_api_err(
        c.batch_execute_statement()
            .statements(stmt(format!("SELECT * FROM \"{t}\" WHERE pk = 'a'")))
            .statements(stmt(format!("INSERT INTO \"{t}\" VALUE {{'pk': 'x'}}")))
            .send()
            .await,
        "ValidationException",
        "Read and write requests together in the same batch is not supported.",
    );
    assert_api_err(
        c.batch_execute_statement()
            .statements(stmt(format!("INSERT INTO \"{t}\" VALUE {{'pk': 'y'}}")))
            .statements(stmt(format!("DELETE FROM \"{t}\" WHERE pk = 'y'")))
            .send()
            .await,
        "ValidationException",
        "Provided list of item keys contains duplicates",
    );
    let e = api_err(c.batch_execute_statement().send().await);
    assert_eq!(e.code, "ValidationException");
    let mut too_many = c.batch_execute_statement();
    for i in 0..26 {
        too_many = too_many.statements(stmt(format!("SELECT * FROM \"{t}\" WHERE pk = 'k{i}'")));
    }
    let e = api_err(too_many.send().await);
    assert_eq!(e.code, "ValidationException");
    // DynamoDB Local words this as BatchGetItem's limit.
    assert!(
        is_dynamodb_local() || e.message.contains("less than or equal to 25"),
        "{}",
        e.message
    );
}

fn tx(text: String) -> ParameterizedStatement {
    ParameterizedStatement::builder()
        .statement(text)
        .build()
        .expect("statement")
}

#[tokio::test]
async fn execute_transaction_is_all_or_nothing() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_hash_table(c, "pq_tx").await;
    exec(
        c,
        &format!("INSERT INTO \"{t}\" VALUE {{'pk': 'acct1', 'balance': 100}}"),
        vec![],
    )
    .await;

    // Writes commit together.
    c.execute_transaction()
        .transact_statements(tx(format!(
            "INSERT INTO \"{t}\" VALUE {{'pk': 'acct2', 'balance': 0}}"
        )))
        .transact_statements(tx(format!(
            "UPDATE \"{t}\" SET balance = balance - 30 WHERE pk = 'acct1' AND balance >= 30"
        )))
        .transact_statements(tx(format!(
            "EXISTS(SELECT * FROM \"{t}\" WHERE pk = 'acct1' AND balance = 100)"
        )))
        .send()
        .await
        .expect_err("acct1 is updated and checked in one transaction");
    let out = c
        .execute_transaction()
        .transact_statements(tx(format!(
            "INSERT INTO \"{t}\" VALUE {{'pk': 'acct2', 'balance': 30}}"
        )))
        .transact_statements(tx(format!(
            "UPDATE \"{t}\" SET balance = balance - 30 WHERE pk = 'acct1' AND balance >= 30"
        )))
        .send()
        .await
        .expect("transfer");
    assert!(out.responses().is_empty());
    let a1 = get(c, &t, item([("pk", s("acct1"))])).await.expect("acct1");
    assert_eq!(get_n(&a1, "balance"), "70");

    // A duplicate INSERT cancels everything, with DuplicateItem as reason.
    let e = c
        .execute_transaction()
        .transact_statements(tx(format!(
            "UPDATE \"{t}\" SET balance = balance - 10 WHERE pk = 'acct1'"
        )))
        .transact_statements(tx(format!(
            "INSERT INTO \"{t}\" VALUE {{'pk': 'acct2', 'balance': 1}}"
        )))
        .transact_statements(tx(format!(
            "INSERT INTO \"{t}\" VALUE {{'pk': 'acct3', 'balance': 1}}"
        )))
        .send()
        .await
        .expect_err("duplicate insert");
    let err = e.into_service_error();
    let reasons: Vec<String> = match &err {
        partita_blackbox_tests::aws_sdk_dynamodb::operation::execute_transaction::ExecuteTransactionError::TransactionCanceledException(tc) => tc
            .cancellation_reasons()
            .iter()
            .map(|r| r.code().unwrap_or_default().to_string())
            .collect(),
        other => panic!("expected TransactionCanceledException, got {other:?}"),
    };
    // DynamoDB Local reports a ValidationError reason instead.
    let duplicate = if is_dynamodb_local() {
        "ValidationError"
    } else {
        "DuplicateItem"
    };
    assert_eq!(reasons, vec!["None", duplicate, "None"]);
    let a1 = get(c, &t, item([("pk", s("acct1"))])).await.expect("acct1");
    assert_eq!(get_n(&a1, "balance"), "70");
    assert!(get(c, &t, item([("pk", s("acct3"))])).await.is_none());

    // A failed condition cancels too.
    let e = api_err(
        c.execute_transaction()
            .transact_statements(tx(format!(
                "UPDATE \"{t}\" SET balance = balance - 500 WHERE pk = 'acct1' AND balance >= 500"
            )))
            .transact_statements(tx(format!(
                "UPDATE \"{t}\" SET balance = balance + 500 WHERE pk = 'acct2'"
            )))
            .send()
            .await,
    );
    assert_eq!(e.code, "TransactionCanceledException");
    assert!(
        e.message.ends_with("[ConditionalCheckFailed, None]"),
        "{}",
        e.message
    );

    // Reads: one snapshot, in order, absent items as empty responses.
    let out = c
        .execute_transaction()
        .transact_statements(tx(format!("SELECT * FROM \"{t}\" WHERE pk = 'acct1'")))
        .transact_statements(tx(format!(
            "SELECT balance FROM \"{t}\" WHERE pk = 'acct2'"
        )))
        .transact_statements(tx(format!("SELECT * FROM \"{t}\" WHERE pk = 'nobody'")))
        .send()
        .await
        .expect("read transaction");
    let r = out.responses();
    assert_eq!(r.len(), 3);
    assert_eq!(r[0].item().map(|i| get_n(i, "balance")), Some("70"));
    assert_eq!(r[1].item(), Some(&item([("balance", n("30"))])));
    assert!(r[2].item().is_none());

    // Validation.
    assert_api_err(
        c.execute_transaction()
            .transact_statements(tx(format!("SELECT * FROM \"{t}\" WHERE pk = 'acct1'")))
            .transact_statements(tx(format!("DELETE FROM \"{t}\" WHERE pk = 'acct2'")))
            .send()
            .await,
        "ValidationException",
        "ExecuteTransaction API does not support both read and write operations in the same request.",
    );
    assert_api_err(
        c.execute_transaction()
            .transact_statements(tx(format!("SELECT * FROM \"{t}\" WHERE balance = 70")))
            .send()
            .await,
        "ValidationException",
        "Validation failed in TransactStatements[0]: Select statements within ExecuteTransaction must specify the primary key in the where clause.",
    );
    assert_api_err(
        c.execute_transaction()
            .transact_statements(tx(format!(
                "UPDATE \"{t}\" SET x = 1 WHERE pk = 'acct1' RETURNING ALL NEW *"
            )))
            .send()
            .await,
        "ValidationException",
        "Validation failed in TransactStatements[0]: RETURNING clause is not supported in ExecuteTransaction.",
    );
    assert_api_err(
        c.execute_transaction()
            .transact_statements(tx(format!("UPDATE \"{t}\" SET x = 1 WHERE pk = 'acct1'")))
            .transact_statements(tx(format!("DELETE FROM \"{t}\" WHERE pk = 'acct1'")))
            .send()
            .await,
        "ValidationException",
        "Transaction request cannot include multiple operations on one item",
    );
    let e = api_err(c.execute_transaction().send().await);
    assert_eq!(e.code, "ValidationException");

    // ClientRequestToken: a repeat is not applied twice.
    let token = unique_name("tok");
    for _ in 0..2 {
        c.execute_transaction()
            .transact_statements(tx(format!(
                "UPDATE \"{t}\" SET balance = balance + 1 WHERE pk = 'acct2'"
            )))
            .client_request_token(&token)
            .send()
            .await
            .expect("idempotent transaction");
    }
    let a2 = get(c, &t, item([("pk", s("acct2"))])).await.expect("acct2");
    assert_eq!(get_n(&a2, "balance"), "31");
    let e = api_err(
        c.execute_transaction()
            .transact_statements(tx(format!(
                "UPDATE \"{t}\" SET balance = balance + 2 WHERE pk = 'acct2'"
            )))
            .client_request_token(&token)
            .send()
            .await,
    );
    assert_eq!(e.code, "IdempotentParameterMismatchException");
}

#[tokio::test]
async fn select_reads_a_global_secondary_index() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = unique_name("pq_gsi");
    c.create_table()
        .table_name(&t)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr_def("pk", ScalarAttributeType::S))
        .attribute_definitions(attr_def("g", ScalarAttributeType::S))
        .attribute_definitions(attr_def("r", ScalarAttributeType::N))
        .key_schema(key_elem("pk", KeyType::Hash))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("byG")
                .key_schema(key_elem("g", KeyType::Hash))
                .key_schema(key_elem("r", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .expect("gsi"),
        )
        .send()
        .await
        .expect("create table");
    wait_active(c, &t).await;
    for i in 0..6 {
        let g = if i % 2 == 0 { "even" } else { "odd" };
        exec(
            c,
            &format!("INSERT INTO \"{t}\" VALUE {{'pk': 'k{i}', 'g': '{g}', 'r': {i}}}"),
            vec![],
        )
        .await;
    }
    // The index is eventually consistent: wait (bounded) for all six
    // entries, the odd ones included (read below).
    let stmt = format!("SELECT pk, r FROM \"{t}\".\"byG\" WHERE g = 'even'");
    let odd = format!("SELECT pk FROM \"{t}\".\"byG\" WHERE g = 'odd'");
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = exec(c, &stmt, vec![]).await;
        if rows.len() == 3 && exec(c, &odd, vec![]).await.len() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let rs: Vec<&str> = rows.iter().map(|r| get_n(r, "r")).collect();
    assert_eq!(rs, vec!["0", "2", "4"], "index order: {rows:?}");
    // DynamoDB Local fails ORDER BY on an index (InternalFailure).
    if !is_dynamodb_local() {
        let rows = exec(
            c,
            &format!("SELECT pk FROM \"{t}\".\"byG\" WHERE g = 'odd' AND r > 1 ORDER BY r DESC"),
            vec![],
        )
        .await;
        assert_eq!(rows, vec![item([("pk", s("k5"))]), item([("pk", s("k3"))])]);
    }
    // Pages over the whole index with Limit and NextToken.
    let scan = format!("SELECT pk FROM \"{t}\".\"byG\"");
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..10 {
        let out = c
            .execute_statement()
            .statement(&scan)
            .limit(4)
            .set_next_token(token.clone())
            .send()
            .await
            .expect("index page");
        seen.extend(out.items().iter().map(|i| get_s(i, "pk").to_string()));
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    seen.sort();
    assert_eq!(seen, vec!["k0", "k1", "k2", "k3", "k4", "k5"]);
    let e = api_err(
        c.execute_statement()
            .statement(&stmt)
            .consistent_read(true)
            .send()
            .await,
    );
    assert_eq!(e.code, "ValidationException");
    // DynamoDB Local words this as for Scan.
    assert!(
        is_dynamodb_local()
            || e.message == "Strongly consistent read is not supported on Global Secondary Indexes",
        "{}",
        e.message
    );
}
