//! Request validation: DynamoDB's exception types and exact messages for
//! table names, keys, expressions and parameter combinations.

use partita_blackbox_tests::aws_sdk_dynamodb::types::{
    BillingMode, KeyType, ReturnValue, ScalarAttributeType,
};
use partita_blackbox_tests::*;
use serde_json::json;

const VE: &str = "ValidationException";

#[tokio::test]
async fn table_name_constraints() {
    if skip_on_dynamodb_local(
        "table_name_constraints",
        "DynamoDB Local says 'Invalid table/index name...' instead of the constraint messages",
    ) {
        return;
    }
    let env = TestEnv::new();
    let c = &env.client;
    let item = json!({"pk": {"S": "x"}});
    let r = env.raw("PutItem", &json!({"Item": item}));
    assert_eq!(r.status, 400);
    assert_eq!(r.error_type(), VE);
    assert_eq!(
        r.error_message().as_deref(),
        Some("1 validation error detected: Value null at 'tableName' failed to satisfy constraint: Member must not be null")
    );
    // The SDK will not send an empty TableName, so send it raw.
    let r = env.raw("PutItem", &json!({"TableName": "", "Item": item}));
    assert_eq!(r.error_type(), VE);
    assert_eq!(
        r.error_message().as_deref(),
        Some("1 validation error detected: Value '' at 'tableName' failed to satisfy constraint: Member must have length greater than or equal to 1")
    );
    let long = "a".repeat(256);
    assert_api_err(
        c.put_item().table_name(&long).item("pk", s("x")).send().await,
        VE,
        &format!("1 validation error detected: Value '{long}' at 'tableName' failed to satisfy constraint: Member must have length less than or equal to 255"),
    );
    assert_api_err(
        c.put_item().table_name("bad table!@#").item("pk", s("x")).send().await,
        VE,
        "1 validation error detected: Value 'bad table!@#' at 'tableName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
    );
    assert_api_err(
        c.create_table()
            .table_name("ab")
            .attribute_definitions(attr_def("pk", ScalarAttributeType::S))
            .key_schema(key_elem("pk", KeyType::Hash))
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await,
        VE,
        "1 validation error detected: Value 'ab' at 'tableName' failed to satisfy constraint: Member must have length greater than or equal to 3",
    );
}

#[tokio::test]
async fn create_table_schema_errors() {
    let env = TestEnv::new();
    let c = &env.client;
    let name = unique_name("bad_schema");
    // A key attribute without a definition.
    let e = api_err(
        c.create_table()
            .table_name(&name)
            .attribute_definitions(attr_def("pk", ScalarAttributeType::S))
            .key_schema(key_elem("other", KeyType::Hash))
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await,
    );
    assert_eq!(e.code, VE);
    if !skip_on_dynamodb_local(
        "create_table_schema_errors/undefined_key_message",
        "DynamoDB Local says 'Hash Key not specified in Attribute Definitions.  Type unknown.'",
    ) {
        assert_eq!(
            e.message,
            "One or more parameter values were invalid: Some index key attributes are not defined in AttributeDefinitions. Keys: [other], AttributeDefinitions: [pk]"
        );
    }
    // Provisioned billing needs throughput.
    let e = api_err(
        c.create_table()
            .table_name(&name)
            .attribute_definitions(attr_def("pk", ScalarAttributeType::S))
            .key_schema(key_elem("pk", KeyType::Hash))
            .billing_mode(BillingMode::Provisioned)
            .send()
            .await,
    );
    assert_eq!(e.code, VE);
    if !skip_on_dynamodb_local(
        "create_table_schema_errors/enum_messages",
        "DynamoDB Local words enum violations without the '1 validation error detected' prefix",
    ) {
        let r = env.raw(
            "CreateTable",
            &json!({
                "TableName": name,
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "INVALID"}],
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "BillingMode": "PAY_PER_REQUEST"
            }),
        );
        assert_eq!(r.error_type(), VE);
        assert_eq!(
            r.error_message().as_deref(),
            Some("1 validation error detected: Value 'INVALID' at 'attributeDefinitions.1.member.attributeType' failed to satisfy constraint: Member must satisfy enum value set: [B, N, S]")
        );
        let r = env.raw(
            "CreateTable",
            &json!({
                "TableName": name,
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "pk", "KeyType": "INVALID"}],
                "BillingMode": "PAY_PER_REQUEST"
            }),
        );
        assert_eq!(r.error_type(), VE);
        assert_eq!(
            r.error_message().as_deref(),
            Some("1 validation error detected: Value 'INVALID' at 'keySchema.1.member.keyType' failed to satisfy constraint: Member must satisfy enum value set: [HASH, RANGE]")
        );
    }
    // None of these created the table.
    let e = api_err(c.describe_table().table_name(&name).send().await);
    assert_eq!(e.code, "ResourceNotFoundException");
}

#[tokio::test]
async fn key_must_match_the_schema() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_composite_table(c, "keymatch").await;
    let e = api_err(c.get_item().table_name(&t).key("pk", s("x")).send().await);
    assert_eq!(e.code, VE);
    if !skip_on_dynamodb_local(
        "key_must_match_the_schema/missing_range_message",
        "DynamoDB Local says 'The number of conditions on the keys is invalid'",
    ) {
        assert_eq!(
            e.message,
            "The provided key element does not match the schema"
        );
        assert_api_err(
            c.delete_item()
                .table_name(&t)
                .key("pk", s("x"))
                .send()
                .await,
            VE,
            "The provided key element does not match the schema",
        );
    }
    let wrong_type = api_err(
        c.get_item()
            .table_name(&t)
            .key("pk", n("1"))
            .key("sk", s("y"))
            .send()
            .await,
    );
    assert_eq!(wrong_type.code, VE);
    let extra = api_err(
        c.get_item()
            .table_name(&t)
            .key("pk", s("x"))
            .key("sk", s("y"))
            .key("extra", s("z"))
            .send()
            .await,
    );
    assert_eq!(extra.code, VE);
    let missing = api_err(
        c.put_item()
            .table_name(&t)
            .item("pk", s("x"))
            .item("other", s("y"))
            .send()
            .await,
    );
    assert_eq!(missing.code, VE);
    let put_wrong_type = api_err(
        c.put_item()
            .table_name(&t)
            .item("pk", s("x"))
            .item("sk", n("1"))
            .send()
            .await,
    );
    assert_eq!(put_wrong_type.code, VE);
    if !skip_on_dynamodb_local(
        "key_must_match_the_schema/type_mismatch_messages",
        "DynamoDB Local words key-schema mismatches differently ('Type mismatch for key', 'One of the required keys was not given a value', ...)",
    ) {
        assert_eq!(
            wrong_type.message,
            "The provided key element does not match the schema"
        );
        assert_eq!(extra.message, "The provided key element does not match the schema");
        assert_eq!(
            missing.message,
            "One or more parameter values were invalid: Missing the key sk in the item"
        );
        assert_eq!(
            put_wrong_type.message,
            "One or more parameter values were invalid: Type mismatch for key sk expected: S actual: N"
        );
    }
    delete_table(c, &t).await;
}

#[tokio::test]
async fn missing_table_on_item_operations() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = unique_name("no_such_table");
    let errors = [
        api_err(c.get_item().table_name(&t).key("pk", s("x")).send().await),
        api_err(c.put_item().table_name(&t).item("pk", s("x")).send().await),
        api_err(
            c.delete_item()
                .table_name(&t)
                .key("pk", s("x"))
                .send()
                .await,
        ),
        api_err(
            c.update_item()
                .table_name(&t)
                .key("pk", s("x"))
                .update_expression("SET a = :a")
                .expression_attribute_values(":a", s("x"))
                .send()
                .await,
        ),
        api_err(
            c.query()
                .table_name(&t)
                .key_condition_expression("pk = :a")
                .expression_attribute_values(":a", s("x"))
                .send()
                .await,
        ),
        api_err(c.scan().table_name(&t).send().await),
    ];
    let local = skip_on_dynamodb_local(
        "missing_table_on_item_operations/message",
        "DynamoDB Local says 'Cannot do operations on a non-existent table'",
    );
    for e in errors {
        assert_eq!(e.code, "ResourceNotFoundException");
        if !local {
            assert_eq!(e.message, "Requested resource not found");
        }
    }
}

#[tokio::test]
async fn expression_errors() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_hash_table(c, "expr_err").await;
    assert_api_err(
        c.get_item()
            .table_name(&t)
            .key("pk", s("x"))
            .projection_expression("!!! INVALID !!!")
            .send()
            .await,
        VE,
        "Invalid ProjectionExpression: Syntax error; token: \"!\", near: \"!!\"",
    );
    assert_api_err(
        c.put_item()
            .table_name(&t)
            .item("pk", s("x"))
            .expression_attribute_values(":v", s("unused"))
            .send()
            .await,
        VE,
        "ExpressionAttributeValues can only be specified when using expressions: ConditionExpression is null",
    );
    assert_api_err(
        c.put_item()
            .table_name(&t)
            .item("pk", s("x"))
            .condition_expression("status = :v")
            .expression_attribute_values(":v", s("a"))
            .send()
            .await,
        VE,
        "Invalid ConditionExpression: Attribute name is a reserved keyword; reserved keyword: status",
    );
    assert_api_err(
        c.put_item()
            .table_name(&t)
            .item("pk", s("x"))
            .condition_expression("a = :missing")
            .send()
            .await,
        VE,
        "Invalid ConditionExpression: An expression attribute value used in expression is not defined; attribute value: :missing",
    );
    assert_api_err(
        c.scan()
            .table_name(&t)
            .filter_expression("#n = :v")
            .expression_attribute_values(":v", s("a"))
            .send()
            .await,
        VE,
        "Invalid FilterExpression: An expression attribute name used in the document path is not defined; attribute name: #n",
    );
    let e = api_err(
        c.put_item()
            .table_name(&t)
            .item("pk", s("x"))
            .condition_expression("a = ")
            .send()
            .await,
    );
    assert_eq!(e.code, VE);
    assert!(
        e.message
            .starts_with("Invalid ConditionExpression: Syntax error;"),
        "{}",
        e.message
    );
    assert_api_err(
        c.delete_item()
            .table_name(&t)
            .key("pk", s("x"))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await,
        VE,
        "Return values set to invalid value",
    );
    // Nothing was written.
    let got = c
        .get_item()
        .table_name(&t)
        .key("pk", s("x"))
        .consistent_read(true)
        .send()
        .await
        .expect("get");
    assert!(got.item().is_none());
    delete_table(c, &t).await;
}

#[tokio::test]
async fn enum_and_range_parameters() {
    if skip_on_dynamodb_local(
        "enum_and_range_parameters",
        "DynamoDB Local words the Select enum violation differently",
    ) {
        return;
    }
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_hash_table(c, "enum_err").await;
    let r = env.raw(
        "Query",
        &json!({
            "TableName": t,
            "KeyConditionExpression": "pk = :v",
            "ExpressionAttributeValues": {":v": {"S": "x"}},
            "Select": "INVALID_VALUE"
        }),
    );
    assert_eq!(r.error_type(), VE);
    assert_eq!(
        r.error_message().as_deref(),
        Some("1 validation error detected: Value 'INVALID_VALUE' at 'select' failed to satisfy constraint: Member must satisfy enum value set: [SPECIFIC_ATTRIBUTES, COUNT, ALL_ATTRIBUTES, ALL_PROJECTED_ATTRIBUTES]")
    );
    delete_table(c, &t).await;
}
