//! The JSON 1.0 wire protocol spoken directly: response headers
//! (`x-amzn-RequestId`, a correct `x-amz-crc32`), malformed JSON, unknown
//! operations, oversize bodies. Rejected requests change no data.

use std::collections::BTreeSet;

use partita_blackbox_tests::*;
use serde_json::json;

fn assert_protocol_headers(r: &RawResponse) {
    let id = r
        .header("x-amzn-requestid")
        .expect("x-amzn-RequestId header");
    assert!(!id.is_empty());
    if r.status != 200
        && skip_on_dynamodb_local(
            "assert_protocol_headers/error_crc32",
            "DynamoDB Local sends no x-amz-crc32 on error responses",
        )
    {
        return;
    }
    let crc: u32 = r
        .header("x-amz-crc32")
        .expect("x-amz-crc32 header")
        .parse()
        .expect("x-amz-crc32 is a decimal u32");
    assert_eq!(
        crc,
        crc32fast::hash(&r.body),
        "x-amz-crc32 matches the body"
    );
    assert_eq!(r.header("content-type"), Some("application/x-amz-json-1.0"));
}

async fn count_items(env: &TestEnv, t: &str) -> i32 {
    env.client
        .scan()
        .table_name(t)
        .consistent_read(true)
        .send()
        .await
        .expect("scan")
        .count()
}

#[tokio::test]
async fn responses_carry_request_id_and_crc32() {
    let env = TestEnv::new();
    let t = create_hash_table(&env.client, "headers").await;
    let put = env.raw(
        "PutItem",
        &json!({"TableName": t, "Item": {"pk": {"S": "k"}, "v": {"S": "héllo"}}}),
    );
    assert_eq!(put.status, 200, "{:?}", String::from_utf8_lossy(&put.body));
    assert_protocol_headers(&put);
    assert_eq!(put.json(), json!({}));

    let get = env.raw(
        "GetItem",
        &json!({"TableName": t, "Key": {"pk": {"S": "k"}}, "ConsistentRead": true}),
    );
    assert_eq!(get.status, 200);
    assert_protocol_headers(&get);
    assert_eq!(
        get.json(),
        json!({"Item": {"pk": {"S": "k"}, "v": {"S": "héllo"}}})
    );

    let err = env.raw(
        "GetItem",
        &json!({"TableName": t, "Key": {"nope": {"S": "k"}}}),
    );
    assert_eq!(err.status, 400);
    assert_protocol_headers(&err);
    assert_eq!(err.error_type(), "ValidationException");

    // Request ids are unique.
    let ids: BTreeSet<String> = (0..5)
        .map(|_| {
            env.raw("DescribeTable", &json!({"TableName": t}))
                .header("x-amzn-requestid")
                .expect("id")
                .to_string()
        })
        .collect();
    assert_eq!(ids.len(), 5);
    delete_table(&env.client, &t).await;
}

#[tokio::test]
async fn malformed_json_is_a_serialization_exception_and_writes_nothing() {
    if skip_on_dynamodb_local(
        "malformed_json_is_a_serialization_exception_and_writes_nothing",
        "DynamoDB Local answers malformed JSON with a 500 InternalFailure",
    ) {
        return;
    }
    let env = TestEnv::new();
    let t = create_hash_table(&env.client, "malformed").await;
    let bodies: [Vec<u8>; 4] = [
        format!("{{\"TableName\": \"{t}\", \"Item\": {{\"pk\": {{\"S\": \"k\"}}").into_bytes(),
        b"not json at all".to_vec(),
        format!("{{\"TableName\": \"{t}\", \"Item\": {{\"pk\": {{\"S\": \"k\"}}}},}}").into_bytes(),
        vec![0xff, 0xfe, b'{', b'}'],
    ];
    for body in bodies {
        let r = env.raw_bytes(Some("DynamoDB_20120810.PutItem"), &body);
        assert_eq!(r.status, 400, "body {:?}", String::from_utf8_lossy(&body));
        assert_eq!(r.error_type(), "SerializationException");
        assert!(r.header("x-amzn-requestid").is_some());
    }
    // A value of the wrong JSON type is also a serialization error.
    let r = env.raw(
        "PutItem",
        &json!({"TableName": t, "Item": {"pk": {"S": 5}}}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.error_type(), "SerializationException");
    assert_eq!(count_items(&env, &t).await, 0);
    delete_table(&env.client, &t).await;
}

#[tokio::test]
async fn unknown_operation_is_rejected() {
    let env = TestEnv::new();
    let r = env.raw_bytes(Some("DynamoDB_20120810.MakeCoffee"), b"{}");
    assert_eq!(r.status, 400);
    assert_eq!(r.error_type(), "UnknownOperationException");
    assert!(r.header("x-amzn-requestid").is_some());
    if skip_on_dynamodb_local(
        "unknown_operation_is_rejected/foreign_or_missing_target",
        "DynamoDB Local answers a foreign or missing X-Amz-Target with 500",
    ) {
        return;
    }
    let r = env.raw_bytes(Some("SomeOtherService_20120810.ListTables"), b"{}");
    assert!((400..500).contains(&r.status), "status {}", r.status);
    let r = env.raw_bytes(None, b"{}");
    assert!((400..500).contains(&r.status), "status {}", r.status);
}

#[tokio::test]
async fn oversize_request_body_is_rejected_and_writes_nothing() {
    let env = TestEnv::new();
    let t = create_hash_table(&env.client, "oversize").await;
    // 17 MB: larger than any DynamoDB request may be.
    let body = json!({
        "TableName": t,
        "Item": {"pk": {"S": "huge"}, "data": {"S": "x".repeat(17 * 1024 * 1024)}}
    });
    let r = env.raw("PutItem", &body);
    assert!(
        (400..500).contains(&r.status),
        "status {} body {:?}",
        r.status,
        String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
    );
    if r.status == 400 {
        let ty = r.error_type();
        assert!(
            ty == "ValidationException" || ty == "RequestEntityTooLargeException",
            "error type {ty}"
        );
    }
    assert_eq!(count_items(&env, &t).await, 0);
    // The server is still healthy afterwards.
    let ok = env.raw("DescribeTable", &json!({"TableName": t}));
    assert_eq!(ok.status, 200);
    delete_table(&env.client, &t).await;
}
