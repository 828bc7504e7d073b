//! Single-item operations: PutItem, GetItem, DeleteItem (UpdateItem's
//! expression language lives in `update_expr.rs`): conditions, projections,
//! attribute names/values, ReturnValues and ReturnValuesOnConditionCheckFailure.

use partita_blackbox_tests::aws_sdk_dynamodb::error::SdkError;
use partita_blackbox_tests::aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use partita_blackbox_tests::aws_sdk_dynamodb::operation::put_item::PutItemError;
use partita_blackbox_tests::aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use partita_blackbox_tests::aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure,
};
use partita_blackbox_tests::*;

const CCF: &str = "ConditionalCheckFailedException";
const CCF_MSG: &str = "The conditional request failed";

#[tokio::test]
async fn put_get_delete_round_trip() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_composite_table(c, "crud").await;
    let it = item([
        ("pk", s("user#1")),
        ("sk", s("profile")),
        ("name", s("Ada")),
        ("age", n("36")),
    ]);
    let put = c
        .put_item()
        .table_name(&t)
        .set_item(Some(it.clone()))
        .send()
        .await
        .expect("put");
    assert!(
        put.attributes().is_none(),
        "ReturnValues NONE returns nothing"
    );

    let got = c
        .get_item()
        .table_name(&t)
        .key("pk", s("user#1"))
        .key("sk", s("profile"))
        .consistent_read(true)
        .send()
        .await
        .expect("get");
    assert_eq!(got.item(), Some(&it));

    let missing = c
        .get_item()
        .table_name(&t)
        .key("pk", s("user#1"))
        .key("sk", s("nope"))
        .send()
        .await
        .expect("get missing");
    assert!(missing.item().is_none());

    // Put replaces the whole item.
    c.put_item()
        .table_name(&t)
        .item("pk", s("user#1"))
        .item("sk", s("profile"))
        .item("name", s("Grace"))
        .send()
        .await
        .expect("overwrite");
    let got = c
        .get_item()
        .table_name(&t)
        .key("pk", s("user#1"))
        .key("sk", s("profile"))
        .consistent_read(true)
        .send()
        .await
        .expect("get");
    assert_eq!(
        got.item(),
        Some(&item([
            ("pk", s("user#1")),
            ("sk", s("profile")),
            ("name", s("Grace"))
        ]))
    );

    let del = c
        .delete_item()
        .table_name(&t)
        .key("pk", s("user#1"))
        .key("sk", s("profile"))
        .send()
        .await
        .expect("delete");
    assert!(del.attributes().is_none());
    let gone = c
        .get_item()
        .table_name(&t)
        .key("pk", s("user#1"))
        .key("sk", s("profile"))
        .consistent_read(true)
        .send()
        .await
        .expect("get");
    assert!(gone.item().is_none());
    // Deleting an absent item succeeds.
    c.delete_item()
        .table_name(&t)
        .key("pk", s("user#1"))
        .key("sk", s("profile"))
        .send()
        .await
        .expect("delete absent");
    delete_table(c, &t).await;
}

#[tokio::test]
async fn put_and_delete_return_all_old() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_hash_table(c, "rv_put").await;
    let first = c
        .put_item()
        .table_name(&t)
        .item("pk", s("k"))
        .item("v", n("1"))
        .return_values(ReturnValue::AllOld)
        .send()
        .await
        .expect("put new");
    assert!(
        first.attributes().is_none(),
        "no old item, nothing returned"
    );
    let second = c
        .put_item()
        .table_name(&t)
        .item("pk", s("k"))
        .item("v", n("2"))
        .return_values(ReturnValue::AllOld)
        .send()
        .await
        .expect("put over");
    assert_eq!(
        second.attributes(),
        Some(&item([("pk", s("k")), ("v", n("1"))]))
    );
    let del = c
        .delete_item()
        .table_name(&t)
        .key("pk", s("k"))
        .return_values(ReturnValue::AllOld)
        .send()
        .await
        .expect("delete");
    assert_eq!(
        del.attributes(),
        Some(&item([("pk", s("k")), ("v", n("2"))]))
    );

    let bad = api_err(
        c.put_item()
            .table_name(&t)
            .item("pk", s("k"))
            .return_values(ReturnValue::AllNew)
            .send()
            .await,
    );
    assert_eq!(bad.code, "ValidationException");
    assert_eq!(bad.message, "Return values set to invalid value");
    delete_table(c, &t).await;
}

#[tokio::test]
async fn condition_expressions_gate_writes() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_hash_table(c, "cond").await;
    c.put_item()
        .table_name(&t)
        .item("pk", s("k"))
        .item("status", s("open"))
        .item("n", n("5"))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await
        .expect("first create");
    assert_api_err(
        c.put_item()
            .table_name(&t)
            .item("pk", s("k"))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await,
        CCF,
        CCF_MSG,
    );

    // Comparisons, functions, logic and names/values.
    let passing = [
        "#s = :open AND n > :four",
        "#s IN (:closed, :open) OR n < :four",
        "NOT (#s = :closed)",
        "n BETWEEN :four AND :six",
        "begins_with(#s, :o) AND contains(#s, :pe)",
        "attribute_type(n, :numtype) AND size(#s) = :four",
        "attribute_exists(#s) AND attribute_not_exists(no_such_attr)",
        "(#s <> :closed) AND (n >= :five AND n <= :five)",
    ];
    let values = [
        (":open", s("open")),
        (":closed", s("closed")),
        (":four", n("4")),
        (":five", n("5")),
        (":six", n("6")),
        (":o", s("o")),
        (":pe", s("pe")),
        (":numtype", s("N")),
    ];
    for cond in passing {
        let used: Vec<&(&str, AttributeValue)> = values
            .iter()
            .filter(|(k, _)| contains_token(cond, k))
            .collect();
        let mut req = c
            .put_item()
            .table_name(&t)
            .item("pk", s("k"))
            .item("status", s("open"))
            .item("n", n("5"))
            .condition_expression(cond);
        if cond.contains("#s") {
            req = req.expression_attribute_names("#s", "status");
        }
        for (k, v) in used {
            req = req.expression_attribute_values(*k, v.clone());
        }
        req.send()
            .await
            .unwrap_or_else(|e| panic!("condition {cond:?} should pass: {e:?}"));
    }

    // A failing condition on delete leaves the item in place.
    assert_api_err(
        c.delete_item()
            .table_name(&t)
            .key("pk", s("k"))
            .condition_expression("n > :v")
            .expression_attribute_values(":v", n("100"))
            .send()
            .await,
        CCF,
        CCF_MSG,
    );
    let still = c
        .get_item()
        .table_name(&t)
        .key("pk", s("k"))
        .consistent_read(true)
        .send()
        .await
        .expect("get");
    assert_eq!(still.item().map(|i| get_n(i, "n")), Some("5"));
    c.delete_item()
        .table_name(&t)
        .key("pk", s("k"))
        .condition_expression("n = :v")
        .expression_attribute_values(":v", n("5"))
        .send()
        .await
        .expect("conditional delete");
    delete_table(c, &t).await;
}

/// True if `expr` contains `token` not followed by another name character.
fn contains_token(expr: &str, token: &str) -> bool {
    expr.match_indices(token).any(|(i, _)| {
        expr[i + token.len()..]
            .chars()
            .next()
            .is_none_or(|ch| !(ch.is_alphanumeric() || ch == '_'))
    })
}

#[tokio::test]
async fn return_values_on_condition_check_failure_returns_the_item() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_hash_table(c, "rvoccf").await;
    let original = item([("pk", s("k")), ("v", s("original"))]);
    c.put_item()
        .table_name(&t)
        .set_item(Some(original.clone()))
        .send()
        .await
        .expect("put");

    let put = c
        .put_item()
        .table_name(&t)
        .item("pk", s("k"))
        .condition_expression("attribute_not_exists(pk)")
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await;
    match put {
        Err(SdkError::ServiceError(e)) => match e.into_err() {
            PutItemError::ConditionalCheckFailedException(ccf) => {
                assert_eq!(ccf.message(), Some(CCF_MSG));
                assert_eq!(ccf.item(), Some(&original));
            }
            other => panic!("expected ConditionalCheckFailedException, got {other:?}"),
        },
        other => panic!("expected a service error, got {other:?}"),
    }

    let upd = c
        .update_item()
        .table_name(&t)
        .key("pk", s("k"))
        .update_expression("SET v = :n")
        .condition_expression("v = :x")
        .expression_attribute_values(":n", s("new"))
        .expression_attribute_values(":x", s("other"))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await;
    match upd {
        Err(SdkError::ServiceError(e)) => match e.into_err() {
            UpdateItemError::ConditionalCheckFailedException(ccf) => {
                assert_eq!(ccf.item(), Some(&original))
            }
            other => panic!("expected ConditionalCheckFailedException, got {other:?}"),
        },
        other => panic!("expected a service error, got {other:?}"),
    }

    // NONE (the default) returns no item with the error.
    let del = c
        .delete_item()
        .table_name(&t)
        .key("pk", s("k"))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await;
    match del {
        Err(SdkError::ServiceError(e)) => match e.into_err() {
            DeleteItemError::ConditionalCheckFailedException(ccf) => {
                assert!(ccf.item().is_none())
            }
            other => panic!("expected ConditionalCheckFailedException, got {other:?}"),
        },
        other => panic!("expected a service error, got {other:?}"),
    }
    delete_table(c, &t).await;
}

#[tokio::test]
async fn projection_expression_selects_paths() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_hash_table(c, "proj").await;
    let profile = AttributeValue::M(item([
        ("city", s("Oslo")),
        ("zip", s("0150")),
        (
            "phones",
            AttributeValue::L(vec![s("111"), s("222"), s("333")]),
        ),
    ]));
    c.put_item()
        .table_name(&t)
        .item("pk", s("k"))
        .item("name", s("Ada"))
        .item("profile", profile)
        .item("count", n("3"))
        .send()
        .await
        .expect("put");
    let got = c
        .get_item()
        .table_name(&t)
        .key("pk", s("k"))
        .projection_expression("#n, profile.city, profile.phones[1], #c")
        .expression_attribute_names("#n", "name")
        .expression_attribute_names("#c", "count")
        .consistent_read(true)
        .send()
        .await
        .expect("get projected");
    let expected = item([
        ("name", s("Ada")),
        ("count", n("3")),
        (
            "profile",
            AttributeValue::M(item([
                ("city", s("Oslo")),
                ("phones", AttributeValue::L(vec![s("222")])),
            ])),
        ),
    ]);
    assert_eq!(got.item(), Some(&expected));

    // Projecting only absent attributes returns an empty item.
    let none = c
        .get_item()
        .table_name(&t)
        .key("pk", s("k"))
        .projection_expression("nothing_here")
        .send()
        .await
        .expect("get absent projection");
    assert_eq!(none.item(), Some(&Item::new()));
    delete_table(c, &t).await;
}
