//! Data types and their limits: every AttributeValue type, exact 38-digit
//! numbers, the 400 KB item size rule (names count), key size limits, empty
//! values, nesting depth 32. Rejected writes change nothing.

use partita_blackbox_tests::aws_sdk_dynamodb::primitives::Blob;
use partita_blackbox_tests::aws_sdk_dynamodb::types::{AttributeValue, ScalarAttributeType};
use partita_blackbox_tests::aws_sdk_dynamodb::Client;
use partita_blackbox_tests::*;

const MAX_ITEM: usize = 400 * 1024;

/// The two wordings seen for "more than 38 significant digits": DynamoDB
/// Local's, and the one recorded from DynamoDB by older emulators. For an
/// expression attribute value DynamoDB Local wraps it in `prefix`/`suffix`;
/// the bare message is accepted there too.
const PRECISION_MESSAGES: [&str; 2] = [
    "DynamoDB only supports precision up to 38 digits",
    "Attempting to store more than 38 significant digits in a Number",
];

fn assert_precision_error(e: ApiError, prefix: &str, suffix: &str) {
    assert_eq!(e.code, "ValidationException");
    assert!(
        PRECISION_MESSAGES
            .iter()
            .any(|m| e.message == format!("{prefix}{m}{suffix}") || e.message == *m),
        "unexpected message {:?}",
        e.message
    );
}

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

fn sort_sets(v: &mut AttributeValue) {
    match v {
        AttributeValue::Ss(x) | AttributeValue::Ns(x) => x.sort(),
        AttributeValue::Bs(x) => x.sort_by(|a, b| a.as_ref().cmp(b.as_ref())),
        AttributeValue::M(m) => m.values_mut().for_each(sort_sets),
        AttributeValue::L(l) => l.iter_mut().for_each(sort_sets),
        _ => {}
    }
}

#[tokio::test]
async fn every_type_round_trips() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_hash_table(c, "types").await;
    let blob = |b: &[u8]| Blob::new(b.to_vec());
    let mut it = item([
        ("pk", s("all")),
        ("s", s("héllo wörld ✓")),
        ("n", n("-12.5")),
        ("b", AttributeValue::B(blob(&[0, 1, 2, 255]))),
        ("t", AttributeValue::Bool(true)),
        ("f", AttributeValue::Bool(false)),
        ("z", AttributeValue::Null(true)),
        ("ss", AttributeValue::Ss(vec!["x".into(), "y".into()])),
        (
            "ns",
            AttributeValue::Ns(vec!["1".into(), "2.5".into(), "-3".into()]),
        ),
        ("bs", AttributeValue::Bs(vec![blob(&[1]), blob(&[2, 3])])),
        (
            "m",
            AttributeValue::M(item([
                ("inner", s("v")),
                (
                    "list",
                    AttributeValue::L(vec![n("1"), s("two"), AttributeValue::Null(true)]),
                ),
                ("empty_map", AttributeValue::M(Item::new())),
            ])),
        ),
        ("l", AttributeValue::L(vec![])),
        ("empty_s", s("")),
        ("empty_b", AttributeValue::B(blob(&[]))),
    ]);
    c.put_item()
        .table_name(&t)
        .set_item(Some(it.clone()))
        .send()
        .await
        .expect("put all types");
    let mut got = get(c, &t, "all").await.expect("item");
    got.values_mut().for_each(sort_sets);
    it.values_mut().for_each(sort_sets);
    assert_eq!(got, it);
    delete_table(c, &t).await;
}

#[tokio::test]
async fn numbers_are_exact_decimals() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_hash_table(c, "numbers").await;
    let cases = [
        ("12345678901234567890123456789012345678", "12345678901234567890123456789012345678"),
        ("-0.12345678901234567890123456789012345678", "-0.12345678901234567890123456789012345678"),
        ("9.9999999999999999999999999999999999999E+125", "999999999999999999999999999999999999990000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"),
        ("1E-130", "0.0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001"),
        ("00042", "42"),
        ("3.140", "3.14"),
        ("1.0", "1"),
        ("1.5E2", "150"),
        ("-0", "0"),
    ];
    for (i, (input, canonical)) in cases.iter().enumerate() {
        let pk = format!("n{i}");
        c.put_item()
            .table_name(&t)
            .item("pk", s(&pk))
            .item("v", n(input))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {input}: {e:?}"));
        let got = get(c, &t, &pk).await.expect("item");
        assert_eq!(get_n(&got, "v"), *canonical, "{input} stored");
    }

    // Arithmetic is exact, never binary floating point.
    c.put_item()
        .table_name(&t)
        .item("pk", s("sum"))
        .item("v", n("0.1"))
        .send()
        .await
        .expect("put");
    let out = c
        .update_item()
        .table_name(&t)
        .key("pk", s("sum"))
        .update_expression("SET v = v + :a ADD w :big")
        .expression_attribute_values(":a", n("0.2"))
        .expression_attribute_values(":big", n("99999999999999999999999999999999999999"))
        .return_values(partita_blackbox_tests::aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
        .send()
        .await
        .expect("add");
    let attrs = out.attributes().expect("attributes");
    assert_eq!(get_n(attrs, "v"), "0.3");
    assert_eq!(get_n(attrs, "w"), "99999999999999999999999999999999999999");
    // A result that needs a 39th significant digit is rejected, not rounded.
    assert_precision_error(
        api_err(
            c.update_item()
                .table_name(&t)
                .key("pk", s("sum"))
                .update_expression("ADD w :x")
                .expression_attribute_values(":x", n("0.1"))
                .send()
                .await,
        ),
        "",
        "",
    );
    // 39 significant digits in an operand are rejected before arithmetic.
    assert_precision_error(
        api_err(
            c.update_item()
                .table_name(&t)
                .key("pk", s("sum"))
                .update_expression("SET w = w - :x")
                .expression_attribute_values(":x", n("99999999999999999999999999999999999998.5"))
                .send()
                .await,
        ),
        "ExpressionAttributeValues contains invalid value: ",
        " for key :x",
    );
    let kept = get(c, &t, "sum").await.expect("item");
    assert_eq!(get_n(&kept, "w"), "99999999999999999999999999999999999999");
    // Carrying into a new digit is fine: 38 nines + 1 = 1E+38.
    let out = c
        .update_item()
        .table_name(&t)
        .key("pk", s("sum"))
        .update_expression("ADD w :one")
        .expression_attribute_values(":one", n("1"))
        .return_values(partita_blackbox_tests::aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
        .send()
        .await
        .expect("carry");
    assert_eq!(
        get_n(out.attributes().expect("attributes"), "w"),
        "100000000000000000000000000000000000000"
    );

    assert_precision_error(
        api_err(
            c.put_item()
                .table_name(&t)
                .item("pk", s("bad"))
                .item("v", n("123456789012345678901234567890123456789"))
                .send()
                .await,
        ),
        "",
        "",
    );
    for (input, message) in [
        (
            "1E+126",
            "Number overflow. Attempting to store a number with magnitude larger than supported range",
        ),
        (
            "-1E+126",
            "Number overflow. Attempting to store a number with magnitude larger than supported range",
        ),
        (
            "1E-131",
            "Number underflow. Attempting to store a number with magnitude smaller than supported range",
        ),
    ] {
        assert_api_err(
            c.put_item()
                .table_name(&t)
                .item("pk", s("bad"))
                .item("v", n(input))
                .send()
                .await,
            "ValidationException",
            message,
        );
    }
    let e = api_err(
        c.put_item()
            .table_name(&t)
            .item("pk", s("bad"))
            .item("v", n("twelve"))
            .send()
            .await,
    );
    assert_eq!(e.code, "ValidationException");
    // DynamoDB Local's wording, and the one older emulators recorded.
    assert!(
        e.message == "A value provided cannot be converted into a number"
            || e.message == "The parameter cannot be converted to a numeric value: twelve",
        "unexpected message {:?}",
        e.message
    );
    assert!(get(c, &t, "bad").await.is_none());
    delete_table(c, &t).await;
}

#[tokio::test]
async fn item_size_limit_counts_names_and_rejected_writes_change_nothing() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_hash_table(c, "itemsize").await;
    // pk "big" = 2 + 3 bytes; attribute "data" = 4 bytes + value.
    let exact = MAX_ITEM - 5 - 4;
    c.put_item()
        .table_name(&t)
        .item("pk", s("big"))
        .item("data", s(&"a".repeat(exact)))
        .send()
        .await
        .expect("item of exactly 400 KB");
    let got = get(c, &t, "big").await.expect("item");
    assert_eq!(get_s(&got, "data").len(), exact);

    // One byte more, by value or by a longer attribute name, is rejected.
    assert_api_err(
        c.put_item()
            .table_name(&t)
            .item("pk", s("big"))
            .item("data", s(&"b".repeat(exact + 1)))
            .send()
            .await,
        "ValidationException",
        "Item size has exceeded the maximum allowed size",
    );
    assert_api_err(
        c.put_item()
            .table_name(&t)
            .item("pk", s("big"))
            .item("data2", s(&"b".repeat(exact)))
            .send()
            .await,
        "ValidationException",
        "Item size has exceeded the maximum allowed size",
    );
    // Many attributes: names count too.
    let mut many = item([("pk", s("big"))]);
    let name_len = 200;
    let per_value = (MAX_ITEM - 5) / 100 - name_len + 1;
    for i in 0..100 {
        many.insert(format!("{i:0>200}"), s(&"c".repeat(per_value)));
    }
    assert_api_err(
        c.put_item()
            .table_name(&t)
            .set_item(Some(many))
            .send()
            .await,
        "ValidationException",
        "Item size has exceeded the maximum allowed size",
    );
    // An update that would grow the item past the limit.
    assert_api_err(
        c.update_item()
            .table_name(&t)
            .key("pk", s("big"))
            .update_expression("SET extra = :v")
            .expression_attribute_values(":v", s("x"))
            .send()
            .await,
        "ValidationException",
        "Item size to update has exceeded the maximum allowed size",
    );
    let after = get(c, &t, "big").await.expect("item");
    assert_eq!(after, got, "rejected writes left the item unchanged");
    delete_table(c, &t).await;
}

#[tokio::test]
async fn key_size_limits() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_composite_table(c, "keysize").await;
    c.put_item()
        .table_name(&t)
        .item("pk", s(&"h".repeat(2048)))
        .item("sk", s(&"r".repeat(1024)))
        .send()
        .await
        .expect("maximum key sizes");
    let hash = api_err(
        c.put_item()
            .table_name(&t)
            .item("pk", s(&"h".repeat(2049)))
            .item("sk", s("r"))
            .send()
            .await,
    );
    let range = api_err(
        c.put_item()
            .table_name(&t)
            .item("pk", s("h"))
            .item("sk", s(&"r".repeat(1025)))
            .send()
            .await,
    );
    assert_eq!(
        (hash.code.as_str(), range.code.as_str()),
        ("ValidationException", "ValidationException")
    );
    if !skip_on_dynamodb_local(
        "key_size_limits/messages",
        "DynamoDB Local says 'Hash primary key values must be under 2048 bytes, ...'",
    ) {
        assert_eq!(
            hash.message,
            "One or more parameter values were invalid: Size of hashkey has exceeded the maximum size limit of2048 bytes"
        );
        assert_eq!(
            range.message,
            "One or more parameter values were invalid: Aggregated size of all range keys has exceeded the size limit of 1024 bytes"
        );
    }
    let e = api_err(
        c.get_item()
            .table_name(&t)
            .key("pk", s(&"h".repeat(2049)))
            .key("sk", s("r"))
            .send()
            .await,
    );
    assert_eq!(e.code, "ValidationException");
    delete_table(c, &t).await;
}

#[tokio::test]
async fn empty_values_rules() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = create_composite_table(c, "empty").await;
    let put = |pk: &str, sk: &str, extra: Option<AttributeValue>| {
        let mut r = c
            .put_item()
            .table_name(&t)
            .item("pk", s(pk))
            .item("sk", s(sk));
        if let Some(v) = extra {
            r = r.item("attr", v);
        }
        r.send()
    };
    put("p", "s", Some(s("")))
        .await
        .expect("empty non-key string");
    put("p", "s", Some(AttributeValue::L(vec![s("")])))
        .await
        .expect("empty string in a list");
    assert_api_err(
        put("", "s", None).await,
        "ValidationException",
        "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: pk",
    );
    assert_api_err(
        put("p", "", None).await,
        "ValidationException",
        "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: sk",
    );
    assert_api_err(
        put("p", "s", Some(AttributeValue::Ss(vec![]))).await,
        "ValidationException",
        "One or more parameter values were invalid: An string set  may not be empty",
    );
    assert_api_err(
        put("p", "s", Some(AttributeValue::Ns(vec![]))).await,
        "ValidationException",
        "One or more parameter values were invalid: An number set  may not be empty",
    );
    assert_api_err(
        put("p", "s", Some(AttributeValue::Bs(vec![]))).await,
        "ValidationException",
        "One or more parameter values were invalid: Binary sets should not be empty",
    );
    assert_api_err(
        put(
            "p",
            "s",
            Some(AttributeValue::M(item([("x", AttributeValue::Ss(vec![]))]))),
        )
        .await,
        "ValidationException",
        "One or more parameter values were invalid: An string set  may not be empty",
    );
    let dup = api_err(
        put(
            "p",
            "s",
            Some(AttributeValue::Ss(vec!["a".into(), "a".into()])),
        )
        .await,
    );
    assert_eq!(dup.code, "ValidationException");
    if !skip_on_dynamodb_local(
        "empty_values_rules/duplicates_message",
        "DynamoDB Local drops the final period",
    ) {
        assert_eq!(
            dup.message,
            "One or more parameter values were invalid: Input collection [a, a] contains duplicates."
        );
    }
    assert_api_err(
        put("p", "s", Some(AttributeValue::Null(false))).await,
        "ValidationException",
        "One or more parameter values were invalid: Null attribute value types must have the value of true",
    );
    let got = c
        .get_item()
        .table_name(&t)
        .key("pk", s("p"))
        .key("sk", s("s"))
        .consistent_read(true)
        .send()
        .await
        .expect("get");
    assert_eq!(
        got.item().and_then(|i| i.get("attr")),
        Some(&AttributeValue::L(vec![s("")]))
    );
    delete_table(c, &t).await;
}

/// A value of `depth` alternating maps and lists around a string. Inside an
/// item (itself the first level) it reaches `depth + 1` levels.
fn nested(depth: usize) -> AttributeValue {
    let mut v = s("leaf");
    for i in 0..depth {
        v = if i % 2 == 0 {
            AttributeValue::M(item([("m", v)]))
        } else {
            AttributeValue::L(vec![v])
        };
    }
    v
}

#[tokio::test]
async fn nesting_depth_limit_is_32_levels() {
    let env = TestEnv::new();
    let c = &env.client;
    let t = unique_name("nesting");
    create_table(c, &t, ("pk", ScalarAttributeType::S), None).await;
    c.put_item()
        .table_name(&t)
        .item("pk", s("ok"))
        .item("deep", nested(31))
        .send()
        .await
        .expect("32 levels");
    let got = get(c, &t, "ok").await.expect("item");
    assert_eq!(got.get("deep"), Some(&nested(31)));
    let e = api_err(
        c.put_item()
            .table_name(&t)
            .item("pk", s("too-deep"))
            .item("deep", nested(32))
            .send()
            .await,
    );
    assert_eq!(e.code, "ValidationException");
    assert_eq!(
        e.message,
        "Nesting Levels have exceeded supported limits: Attributes in the item have nested levels beyond supported limit"
    );
    assert!(get(c, &t, "too-deep").await.is_none());
    delete_table(c, &t).await;
}
