//! UpdateItem: SET, REMOVE, ADD, DELETE, arithmetic, list_append,
//! if_not_exists, nested paths, every ReturnValues mode, upsert and
//! conditional updates.

use partita_blackbox_tests::aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use partita_blackbox_tests::aws_sdk_dynamodb::Client;
use partita_blackbox_tests::*;

async fn get(c: &Client, t: &str, pk: &str) -> Option<Item> {
    c.get_item()
        .table_name(t)
        .key("pk", s(pk))
        .consistent_read(true)
        .send()
        .await
        .expect("get")
        .item()
        .cloned()
}

fn ss(v: &[&str]) -> AttributeValue {
    AttributeValue::Ss(v.iter().map(|x| x.to_string()).collect())
}

fn ns(v: &[&str]) -> AttributeValue {
    AttributeValue::Ns(v.iter().map(|x| x.to_string()).collect())
}

fn sorted_set(v: Option<&AttributeValue>) -> Vec<String> {
    let mut out = match v {
        Some(AttributeValue::Ss(x)) | Some(AttributeValue::Ns(x)) => x.clone(),
        other => panic!("expected a set, got {other:?}"),
    };
    out.sort();
    out
}

#[tokio::test]
async fn set_remove_add_delete_in_one_expression() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_hash_table(c, "upd_all").await;
    c.put_item()
        .table_name(&t)
        .item("pk", s("k"))
        .item("count", n("10"))
        .item("price_1", n("2.5"))
        .item("tag_set", ss(&["a", "b", "c"]))
        .item("num_set", ns(&["1", "2"]))
        .item("hist_l", AttributeValue::L(vec![s("x")]))
        .item("old_1", s("bye"))
        .item(
            "m1",
            AttributeValue::M(item([("in_1", n("1")), ("drop", s("me"))])),
        )
        .send()
        .await
        .expect("put");

    let r = c
        .update_item()
        .table_name(&t)
        .key("pk", s("k"))
        .update_expression(
            "SET #c = #c + :one, price_1 = price_1 - :half, hist_l = list_append(hist_l, :more), \
             m1.in_1 = m1.in_1 * :nothing_is_mul, fresh_1 = if_not_exists(fresh_1, :init), \
             count2 = if_not_exists(#c, :init) \
             REMOVE old_1, m1.#d \
             ADD num_set :three, visits_1 :one \
             DELETE tag_set :ab",
        )
        .expression_attribute_names("#c", "count")
        .expression_attribute_names("#d", "drop")
        .expression_attribute_values(":one", n("1"))
        .expression_attribute_values(":half", n("0.5"))
        .expression_attribute_values(":more", AttributeValue::L(vec![s("y"), s("z")]))
        .expression_attribute_values(":nothing_is_mul", n("7"))
        .expression_attribute_values(":init", n("100"))
        .expression_attribute_values(":three", ns(&["3"]))
        .expression_attribute_values(":ab", ss(&["a", "b"]))
        .send()
        .await;
    // DynamoDB has no '*' operator.
    assert_eq!(api_err(r).code, "ValidationException");

    c.update_item()
        .table_name(&t)
        .key("pk", s("k"))
        .update_expression(
            "SET #c = #c + :one, price_1 = price_1 - :half, hist_l = list_append(hist_l, :more), \
             m1.in_1 = :seven, fresh_1 = if_not_exists(fresh_1, :init), \
             count2 = if_not_exists(#c, :init) \
             REMOVE old_1, m1.#d \
             ADD num_set :three, visits_1 :one \
             DELETE tag_set :ab",
        )
        .expression_attribute_names("#c", "count")
        .expression_attribute_names("#d", "drop")
        .expression_attribute_values(":one", n("1"))
        .expression_attribute_values(":half", n("0.5"))
        .expression_attribute_values(":more", AttributeValue::L(vec![s("y"), s("z")]))
        .expression_attribute_values(":seven", n("7"))
        .expression_attribute_values(":init", n("100"))
        .expression_attribute_values(":three", ns(&["3"]))
        .expression_attribute_values(":ab", ss(&["a", "b"]))
        .send()
        .await
        .expect("update");

    let it = get(c, &t, "k").await.expect("item");
    assert_eq!(get_n(&it, "count"), "11");
    if !skip_on_dynamodb_local(
        "set_remove_add_delete_in_one_expression/canonical_number",
        "DynamoDB Local keeps the operand scale (2.0); DynamoDB returns canonical numbers",
    ) {
        assert_eq!(get_n(&it, "price_1"), "2");
    }
    assert_eq!(get_n(&it, "fresh_1"), "100");
    assert_eq!(
        get_n(&it, "count2"),
        "10",
        "if_not_exists reads the old value"
    );
    assert_eq!(
        get_n(&it, "visits_1"),
        "1",
        "ADD to a missing number starts at 0"
    );
    assert_eq!(
        it.get("hist_l"),
        Some(&AttributeValue::L(vec![s("x"), s("y"), s("z")]))
    );
    assert_eq!(
        it.get("m1"),
        Some(&AttributeValue::M(item([("in_1", n("7"))])))
    );
    assert!(!it.contains_key("old_1"));
    assert_eq!(sorted_set(it.get("num_set")), vec!["1", "2", "3"]);
    assert_eq!(sorted_set(it.get("tag_set")), vec!["c"]);

    // Deleting every element removes the set attribute.
    c.update_item()
        .table_name(&t)
        .key("pk", s("k"))
        .update_expression("DELETE tag_set :c")
        .expression_attribute_values(":c", ss(&["c"]))
        .send()
        .await
        .expect("delete last");
    let it = get(c, &t, "k").await.expect("item");
    assert!(!it.contains_key("tag_set"), "empty set is removed: {it:?}");
    delete_table(c, &t).await;
}

#[tokio::test]
async fn list_index_paths_and_prepend() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_hash_table(c, "upd_list").await;
    c.put_item()
        .table_name(&t)
        .item("pk", s("k"))
        .item("l", AttributeValue::L(vec![s("a"), s("b"), s("c")]))
        .send()
        .await
        .expect("put");
    let r = c
        .update_item()
        .table_name(&t)
        .key("pk", s("k"))
        .update_expression("SET l[1] = :B, l = list_append(:front, l) REMOVE l[2]")
        .expression_attribute_values(":B", s("B"))
        .expression_attribute_values(":front", AttributeValue::L(vec![s("0")]))
        .send()
        .await;
    // The paths l and l[1] overlap.
    assert_eq!(api_err(r).code, "ValidationException");
    c.update_item()
        .table_name(&t)
        .key("pk", s("k"))
        .update_expression("SET l[1] = :B, l[10] = :end REMOVE l[0]")
        .expression_attribute_values(":B", s("B"))
        .expression_attribute_values(":end", s("end"))
        .send()
        .await
        .expect("list paths");
    let it = get(c, &t, "k").await.expect("item");
    assert_eq!(
        it.get("l"),
        Some(&AttributeValue::L(vec![s("B"), s("c"), s("end")]))
    );
    c.update_item()
        .table_name(&t)
        .key("pk", s("k"))
        .update_expression("SET l = list_append(:front, l)")
        .expression_attribute_values(":front", AttributeValue::L(vec![s("0")]))
        .send()
        .await
        .expect("prepend");
    let it = get(c, &t, "k").await.expect("item");
    assert_eq!(
        it.get("l"),
        Some(&AttributeValue::L(vec![s("0"), s("B"), s("c"), s("end")]))
    );
    delete_table(c, &t).await;
}

#[tokio::test]
async fn update_creates_missing_item_and_honours_conditions() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_hash_table(c, "upd_upsert").await;
    let out = c
        .update_item()
        .table_name(&t)
        .key("pk", s("new"))
        .update_expression("SET a = :a")
        .expression_attribute_values(":a", s("x"))
        .return_values(ReturnValue::AllNew)
        .send()
        .await
        .expect("upsert");
    assert_eq!(
        out.attributes(),
        Some(&item([("pk", s("new")), ("a", s("x"))]))
    );
    assert_api_err(
        c.update_item()
            .table_name(&t)
            .key("pk", s("absent"))
            .update_expression("SET a = :a")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":a", s("x"))
            .send()
            .await,
        "ConditionalCheckFailedException",
        "The conditional request failed",
    );
    assert!(
        get(c, &t, "absent").await.is_none(),
        "failed update wrote nothing"
    );

    // Arithmetic on a missing attribute is a validation error.
    assert_api_err(
        c.update_item()
            .table_name(&t)
            .key("pk", s("new"))
            .update_expression("SET total_1 = total_1 + :one")
            .expression_attribute_values(":one", n("1"))
            .send()
            .await,
        "ValidationException",
        "The provided expression refers to an attribute that does not exist in the item",
    );
    // Arithmetic on a string is a validation error.
    assert_api_err(
        c.update_item()
            .table_name(&t)
            .key("pk", s("new"))
            .update_expression("SET a = a + :one")
            .expression_attribute_values(":one", n("1"))
            .send()
            .await,
        "ValidationException",
        "An operand in the update expression has an incorrect data type",
    );
    delete_table(c, &t).await;
}

#[tokio::test]
async fn update_return_values_in_every_mode() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_hash_table(c, "upd_rv").await;
    c.put_item()
        .table_name(&t)
        .item("pk", s("k"))
        .item("a", n("1"))
        .item("b", s("keep"))
        .send()
        .await
        .expect("put");

    let mut counter = 1;
    for mode in [
        ReturnValue::None,
        ReturnValue::AllOld,
        ReturnValue::UpdatedOld,
        ReturnValue::AllNew,
        ReturnValue::UpdatedNew,
    ] {
        let out = c
            .update_item()
            .table_name(&t)
            .key("pk", s("k"))
            .update_expression("SET a = a + :one, c = :c")
            .expression_attribute_values(":one", n("1"))
            .expression_attribute_values(":c", s("new"))
            .return_values(mode.clone())
            .send()
            .await
            .expect("update");
        let before = counter.to_string();
        counter += 1;
        let after = counter.to_string();
        let first = counter == 2;
        let expected: Option<Item> = match mode {
            ReturnValue::None => None,
            ReturnValue::AllOld => Some(if first {
                item([("pk", s("k")), ("a", n(&before)), ("b", s("keep"))])
            } else {
                item([
                    ("pk", s("k")),
                    ("a", n(&before)),
                    ("b", s("keep")),
                    ("c", s("new")),
                ])
            }),
            ReturnValue::UpdatedOld => Some(item([("a", n(&before)), ("c", s("new"))])),
            ReturnValue::AllNew => Some(item([
                ("pk", s("k")),
                ("a", n(&after)),
                ("b", s("keep")),
                ("c", s("new")),
            ])),
            ReturnValue::UpdatedNew => Some(item([("a", n(&after)), ("c", s("new"))])),
            _ => unreachable!(),
        };
        assert_eq!(out.attributes().cloned(), expected, "ReturnValues {mode:?}");
    }
    delete_table(c, &t).await;
}

#[tokio::test]
async fn update_expression_errors() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_composite_table(c, "upd_err").await;
    let key = |r: partita_blackbox_tests::aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder| {
        r.table_name(&t).key("pk", s("k")).key("sk", s("s"))
    };
    assert_api_err(
        key(c.update_item())
            .update_expression("SET pk = :v")
            .expression_attribute_values(":v", s("x"))
            .send()
            .await,
        "ValidationException",
        "One or more parameter values were invalid: Cannot update attribute pk. This attribute is part of the key",
    );
    assert_api_err(
        key(c.update_item())
            .update_expression("SET sk = :v")
            .expression_attribute_values(":v", s("x"))
            .send()
            .await,
        "ValidationException",
        "One or more parameter values were invalid: Cannot update attribute sk. This attribute is part of the key",
    );
    assert_api_err(
        key(c.update_item())
            .update_expression("INVALID SYNTAX HERE")
            .expression_attribute_values(":v", s("x"))
            .send()
            .await,
        "ValidationException",
        "Invalid UpdateExpression: Syntax error; token: \"INVALID\", near: \"INVALID SYNTAX\"",
    );
    assert_api_err(
        key(c.update_item())
            .update_expression("SET a = :v")
            .send()
            .await,
        "ValidationException",
        "Invalid UpdateExpression: An expression attribute value used in expression is not defined; attribute value: :v",
    );
    assert_api_err(
        key(c.update_item())
            .update_expression("SET a = :v")
            .expression_attribute_values(":v", s("x"))
            .expression_attribute_values(":unused", s("y"))
            .send()
            .await,
        "ValidationException",
        "Value provided in ExpressionAttributeValues unused in expressions: keys: {:unused}",
    );
    assert_api_err(
        key(c.update_item())
            .update_expression("SET a = :v")
            .expression_attribute_values(":v", s("x"))
            .expression_attribute_names("#unused", "z")
            .send()
            .await,
        "ValidationException",
        "Value provided in ExpressionAttributeNames unused in expressions: keys: {#unused}",
    );
    assert_api_err(
        key(c.update_item()).update_expression("").send().await,
        "ValidationException",
        "Invalid UpdateExpression: The expression can not be empty;",
    );
    // Nothing was written by any of the failed updates.
    let got = c
        .get_item()
        .table_name(&t)
        .key("pk", s("k"))
        .key("sk", s("s"))
        .consistent_read(true)
        .send()
        .await
        .expect("get");
    assert!(got.item().is_none());
    delete_table(c, &t).await;
}
