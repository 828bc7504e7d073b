//! Property tests standing in for fuzz targets: the Authorization header
//! parser, the whole authentication path and the policy parser/evaluator
//! get arbitrary and near-valid input and must never panic. Bounded by the
//! case counts so they run in `cargo test`.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::authenticate_with;
use super::config::AuthConfig;
use super::policy::{evaluate, ContextKeys, Policy, RequestContext};
use super::sigv4::{self, HttpParts};

fn header_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("AWS4-HMAC-SHA256".to_string()),
        Just("AWS4-HMAC-SHA256 ".to_string()),
        Just("Credential=".to_string()),
        Just("AKID/20260101/us-east-1/dynamodb/aws4_request".to_string()),
        Just("SignedHeaders=".to_string()),
        Just("host;x-amz-date".to_string()),
        Just("Signature=".to_string()),
        Just(",".to_string()),
        Just(" ".to_string()),
        Just("=".to_string()),
        Just("/".to_string()),
        "[a-f0-9]{0,70}",
        "\\PC{0,12}",
    ]
}

fn near_valid_header() -> impl Strategy<Value = String> {
    prop::collection::vec(header_piece(), 0..12).prop_map(|v| v.concat())
}

const CONFIG: &str =
    "users:\n  - name: alice\n    accessKeyId: AKID\n    secretAccessKey: s\npolicies: {}\n";

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn authorization_parser_never_panics(s in "\\PC*", t in near_valid_header()) {
        let _ = sigv4::parse_authorization(&s);
        let _ = sigv4::parse_authorization(&t);
    }

    #[test]
    fn authentication_never_panics(
        auth in near_valid_header(),
        date in prop_oneof![Just("20260101T120000Z".to_string()), "[0-9TZ]{0,20}", "\\PC{0,20}"],
        query in prop_oneof![
            Just(String::new()),
            "(X-Amz-(Algorithm|Credential|Date|Expires|SignedHeaders|Signature|Security-Token)=[A-Za-z0-9%/_.-]{0,30}&){0,8}",
            "\\PC{0,40}",
        ],
        path in prop_oneof![Just("/".to_string()), "/[a-z%./]{0,20}", "\\PC{0,20}"],
        with_auth in any::<bool>(),
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let config = AuthConfig::parse(CONFIG).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut headers: Vec<(&str, &[u8])> = vec![("host", b"localhost"), ("x-amz-date", date.as_bytes())];
        if with_auth {
            headers.push(("authorization", auth.as_bytes()));
        }
        let parts = HttpParts { method: "POST", path: &path, query: &query, headers };
        let _ = authenticate_with(&config, &parts, &body, "us-east-1", 1_767_268_800);
    }

    #[test]
    fn policy_parser_and_evaluator_never_panic(doc in policy_like(), action in "[a-z:*A-Z]{0,20}", resource in "\\PC{0,30}", leading in prop::collection::vec("\\PC{0,6}", 0..3)) {
        if let Ok(p) = Policy::parse(&doc) {
            let mut keys = ContextKeys::new();
            keys.set("aws:username", "alice");
            keys.set_many("dynamodb:LeadingKeys", leading);
            let _ = evaluate([&p], &RequestContext { action: &action, resource: &resource, keys: &keys });
        }
    }

    #[test]
    fn auth_file_parser_never_panics(text in "\\PC{0,200}") {
        let _ = AuthConfig::parse(&text);
    }
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("*")),
        Just(json!("dynamodb:Get*")),
        Just(json!("Allow")),
        Just(json!("Deny")),
        Just(json!("2012-10-17")),
        Just(json!("${aws:username}")),
        Just(json!("${aws:username, 'x'}")),
        Just(json!("${")),
        Just(json!("arn:aws:dynamodb:*:*:table/${aws:userid}/*")),
        Just(json!(true)),
        Just(json!(null)),
        Just(json!(3)),
        "\\PC{0,10}".prop_map(Value::String),
    ]
}

fn key_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Version".to_string()),
        Just("Statement".to_string()),
        Just("Effect".to_string()),
        Just("Action".to_string()),
        Just("NotAction".to_string()),
        Just("Resource".to_string()),
        Just("NotResource".to_string()),
        Just("Condition".to_string()),
        Just("ForAllValues:StringEquals".to_string()),
        Just("ForAnyValue:StringLike".to_string()),
        Just("StringNotEqualsIfExists".to_string()),
        Just("Null".to_string()),
        Just("Bool".to_string()),
        Just("NumericLessThan".to_string()),
        Just("dynamodb:LeadingKeys".to_string()),
        Just("aws:username".to_string()),
        "\\PC{0,8}",
    ]
}

fn policy_like() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key_name(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
