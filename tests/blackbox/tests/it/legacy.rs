//! The legacy (pre-expression) parameters: Expected, ConditionalOperator,
//! AttributeUpdates, AttributesToGet, KeyConditions, QueryFilter, ScanFilter.

use partita_blackbox_tests::aws_sdk_dynamodb::types::{
    AttributeAction, AttributeValue, AttributeValueUpdate, ComparisonOperator, Condition,
    ConditionalOperator, ExpectedAttributeValue, ScalarAttributeType,
};
use partita_blackbox_tests::*;

fn cond(op: ComparisonOperator, values: Vec<AttributeValue>) -> Condition {
    Condition::builder()
        .comparison_operator(op)
        .set_attribute_value_list(Some(values))
        .build()
        .expect("condition")
}

fn expect_exists(exists: bool) -> ExpectedAttributeValue {
    ExpectedAttributeValue::builder().exists(exists).build()
}

fn expect_op(op: ComparisonOperator, values: Vec<AttributeValue>) -> ExpectedAttributeValue {
    ExpectedAttributeValue::builder()
        .comparison_operator(op)
        .set_attribute_value_list(Some(values))
        .build()
}

fn update(action: AttributeAction, value: Option<AttributeValue>) -> AttributeValueUpdate {
    AttributeValueUpdate::builder()
        .action(action)
        .set_value(value)
        .build()
}

#[tokio::test]
async fn expected_and_conditional_operator() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_hash_table(c, "leg_expected").await;
    c.put_item()
        .table_name(&t)
        .item("pk", s("k"))
        .item("status", s("open"))
        .expected("pk", expect_exists(false))
        .send()
        .await
        .expect("put if absent");
    assert_api_err(
        c.put_item()
            .table_name(&t)
            .item("pk", s("k"))
            .expected("pk", expect_exists(false))
            .send()
            .await,
        "ConditionalCheckFailedException",
        "The conditional request failed",
    );
    // Value + Exists:true is an equality check.
    c.put_item()
        .table_name(&t)
        .item("pk", s("k"))
        .item("status", s("open"))
        .item("n", n("3"))
        .expected(
            "status",
            ExpectedAttributeValue::builder()
                .value(s("open"))
                .exists(true)
                .build(),
        )
        .send()
        .await
        .expect("put if status = open");
    assert_api_err(
        c.put_item()
            .table_name(&t)
            .item("pk", s("k"))
            .expected("n", expect_op(ComparisonOperator::Gt, vec![n("3")]))
            .send()
            .await,
        "ConditionalCheckFailedException",
        "The conditional request failed",
    );
    // AND (default): both must hold; OR: either.
    assert_api_err(
        c.put_item()
            .table_name(&t)
            .item("pk", s("k"))
            .expected("n", expect_op(ComparisonOperator::Eq, vec![n("3")]))
            .expected(
                "status",
                expect_op(ComparisonOperator::Eq, vec![s("closed")]),
            )
            .send()
            .await,
        "ConditionalCheckFailedException",
        "The conditional request failed",
    );
    c.put_item()
        .table_name(&t)
        .item("pk", s("k"))
        .item("status", s("open"))
        .item("n", n("3"))
        .expected("n", expect_op(ComparisonOperator::Eq, vec![n("3")]))
        .expected(
            "status",
            expect_op(ComparisonOperator::Eq, vec![s("closed")]),
        )
        .conditional_operator(ConditionalOperator::Or)
        .send()
        .await
        .expect("OR passes");
    c.delete_item()
        .table_name(&t)
        .key("pk", s("k"))
        .expected(
            "status",
            expect_op(ComparisonOperator::BeginsWith, vec![s("op")]),
        )
        .expected(
            "n",
            expect_op(ComparisonOperator::Between, vec![n("1"), n("5")]),
        )
        .send()
        .await
        .expect("delete with Expected");

    assert_api_err(
        c.put_item()
            .table_name(&t)
            .item("pk", s("k"))
            .expected("pk", expect_exists(false))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await,
        "ValidationException",
        "Can not use both expression and non-expression parameters in the same request: Non-expression parameters: {Expected} Expression parameters: {ConditionExpression}",
    );
    delete_table(c, &t).await;
}

#[tokio::test]
async fn attribute_updates_and_attributes_to_get() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_hash_table(c, "leg_update").await;
    c.put_item()
        .table_name(&t)
        .item("pk", s("k"))
        .item("count", n("10"))
        .item(
            "tags",
            AttributeValue::Ss(vec!["a".into(), "b".into(), "c".into()]),
        )
        .item("old", s("x"))
        .send()
        .await
        .expect("put");
    c.update_item()
        .table_name(&t)
        .key("pk", s("k"))
        .attribute_updates("name", update(AttributeAction::Put, Some(s("Ada"))))
        .attribute_updates("count", update(AttributeAction::Add, Some(n("5"))))
        .attribute_updates(
            "tags",
            update(
                AttributeAction::Delete,
                Some(AttributeValue::Ss(vec!["b".into()])),
            ),
        )
        .attribute_updates("old", update(AttributeAction::Delete, None))
        .attribute_updates(
            "more",
            update(
                AttributeAction::Add,
                Some(AttributeValue::Ns(vec!["1".into()])),
            ),
        )
        .send()
        .await
        .expect("AttributeUpdates");

    let got = c
        .get_item()
        .table_name(&t)
        .key("pk", s("k"))
        .attributes_to_get("name")
        .attributes_to_get("count")
        .attributes_to_get("tags")
        .attributes_to_get("old")
        .attributes_to_get("more")
        .consistent_read(true)
        .send()
        .await
        .expect("get");
    let mut it = got.item().cloned().expect("item");
    if let Some(AttributeValue::Ss(v)) = it.get_mut("tags") {
        v.sort();
    }
    assert_eq!(
        it,
        item([
            ("name", s("Ada")),
            ("count", n("15")),
            ("tags", AttributeValue::Ss(vec!["a".into(), "c".into()])),
            ("more", AttributeValue::Ns(vec!["1".into()])),
        ])
    );

    assert_api_err(
        c.update_item()
            .table_name(&t)
            .key("pk", s("k"))
            .attribute_updates("pk", update(AttributeAction::Put, Some(s("other"))))
            .send()
            .await,
        "ValidationException",
        "One or more parameter values were invalid: Cannot update attribute pk. This attribute is part of the key",
    );
    assert_api_err(
        c.update_item()
            .table_name(&t)
            .key("pk", s("k"))
            .update_expression("SET a = :v")
            .expression_attribute_values(":v", s("x"))
            .attribute_updates("a", update(AttributeAction::Put, Some(s("x"))))
            .send()
            .await,
        "ValidationException",
        "Can not use both expression and non-expression parameters in the same request: Non-expression parameters: {AttributeUpdates} Expression parameters: {UpdateExpression}",
    );
    delete_table(c, &t).await;
}

#[tokio::test]
async fn key_conditions_query_filter_and_scan_filter() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = unique_name("leg_query");
    create_table(
        c,
        &t,
        ("pk", ScalarAttributeType::S),
        Some(("sk", ScalarAttributeType::N)),
    )
    .await;
    for i in 0..10 {
        let mut req = c
            .put_item()
            .table_name(&t)
            .item("pk", s(if i < 8 { "a" } else { "b" }))
            .item("sk", n(&i.to_string()))
            .item("color", s(if i % 2 == 0 { "red" } else { "blue" }));
        if i % 3 == 0 {
            req = req.item("tag", s(&format!("t{i}")));
        }
        req.send().await.expect("put");
    }

    let out = c
        .query()
        .table_name(&t)
        .key_conditions("pk", cond(ComparisonOperator::Eq, vec![s("a")]))
        .key_conditions(
            "sk",
            cond(ComparisonOperator::Between, vec![n("2"), n("6")]),
        )
        .query_filter("color", cond(ComparisonOperator::Eq, vec![s("red")]))
        .scan_index_forward(false)
        .attributes_to_get("sk")
        .send()
        .await
        .expect("legacy query");
    let got: Vec<&str> = out.items().iter().map(|i| get_n(i, "sk")).collect();
    assert_eq!(got, vec!["6", "4", "2"]);
    assert_eq!((out.count(), out.scanned_count()), (3, 5));
    assert!(out.items().iter().all(|i| i.len() == 1));

    // QueryFilter with OR.
    let out = c
        .query()
        .table_name(&t)
        .key_conditions("pk", cond(ComparisonOperator::Eq, vec![s("a")]))
        .query_filter("color", cond(ComparisonOperator::Eq, vec![s("blue")]))
        .query_filter("tag", cond(ComparisonOperator::NotNull, vec![]))
        .conditional_operator(ConditionalOperator::Or)
        .send()
        .await
        .expect("legacy query OR");
    let got: Vec<&str> = out.items().iter().map(|i| get_n(i, "sk")).collect();
    assert_eq!(got, vec!["0", "1", "3", "5", "6", "7"]);

    // ScanFilter: several operators, ANDed.
    let out = c
        .scan()
        .table_name(&t)
        .scan_filter("sk", cond(ComparisonOperator::Ge, vec![n("3")]))
        .scan_filter("tag", cond(ComparisonOperator::Contains, vec![s("t")]))
        .scan_filter(
            "color",
            cond(ComparisonOperator::In, vec![s("red"), s("blue")]),
        )
        .consistent_read(true)
        .send()
        .await
        .expect("legacy scan");
    let mut got: Vec<String> = out
        .items()
        .iter()
        .map(|i| get_n(i, "sk").to_string())
        .collect();
    got.sort();
    assert_eq!(got, vec!["3", "6", "9"]);
    assert_eq!(out.scanned_count(), 10);

    let out = c
        .scan()
        .table_name(&t)
        .scan_filter("tag", cond(ComparisonOperator::Null, vec![]))
        .scan_filter("color", cond(ComparisonOperator::Ne, vec![s("red")]))
        .conditional_operator(ConditionalOperator::And)
        .send()
        .await
        .expect("legacy scan NULL");
    let mut got: Vec<String> = out
        .items()
        .iter()
        .map(|i| get_n(i, "sk").to_string())
        .collect();
    got.sort();
    assert_eq!(got, vec!["1", "5", "7"]);
    delete_table(c, &t).await;
}
