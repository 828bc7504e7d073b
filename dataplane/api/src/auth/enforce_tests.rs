use std::sync::Arc;

use partita_storage::{Store, StoreOptions};
use serde_json::json;

use super::*;
use crate::auth::config::AuthConfig;
use crate::auth::{Caller, Principal};
use crate::ApiConfig;

const POLICIES: &str = r#"
users:
  - name: alice
    accessKeyId: AKIAALICE
    secretAccessKey: a
    policies: [tenant]
  - name: admin
    accessKeyId: AKIAADMIN
    secretAccessKey: b
    policies: [admin]
  - name: reader
    accessKeyId: AKIAREADER
    secretAccessKey: c
    policies: [admin, no-writes, few-attrs]
  - name: consumer
    accessKeyId: AKIACONSUMER
    secretAccessKey: d
    policies: [tenant-stream]
  - name: tabler
    accessKeyId: AKIATABLER
    secretAccessKey: e
    policies: [tenant-table]
policies:
  tenant-stream:
    Version: "2012-10-17"
    Statement:
      - Effect: Allow
        Action: ["dynamodb:DescribeStream", "dynamodb:GetShardIterator", "dynamodb:GetRecords"]
        Resource: "arn:aws:dynamodb:*:*:table/Tenants/stream/*"
      - Effect: Allow
        Action: "dynamodb:ListStreams"
        Resource: "*"
  tenant-table:
    Version: "2012-10-17"
    Statement:
      - Effect: Allow
        Action: "dynamodb:*"
        Resource: "arn:aws:dynamodb:*:*:table/Tenants"
  tenant:
    Version: "2012-10-17"
    Statement:
      - Effect: Allow
        Action: ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
                 "dynamodb:Query", "dynamodb:Scan", "dynamodb:BatchGetItem", "dynamodb:BatchWriteItem",
                 "dynamodb:ConditionCheckItem", "dynamodb:PartiQL*"]
        Resource: ["arn:aws:dynamodb:*:*:table/Tenants", "arn:aws:dynamodb:*:*:table/Tenants/index/*"]
        Condition:
          ForAllValues:StringEquals:
            dynamodb:LeadingKeys: ["${aws:username}"]
  admin:
    Version: "2012-10-17"
    Statement:
      - Effect: Allow
        Action: "dynamodb:*"
        Resource: "*"
  no-writes:
    Version: "2012-10-17"
    Statement:
      - Effect: Deny
        Action: ["dynamodb:Put*", "dynamodb:Update*", "dynamodb:Delete*", "dynamodb:BatchWrite*"]
        Resource: "*"
  few-attrs:
    Version: "2012-10-17"
    Statement:
      - Effect: Deny
        Action: "dynamodb:GetItem"
        Resource: "*"
        Condition:
          ForAnyValue:StringEquals:
            dynamodb:Attributes: ["secret"]
"#;

struct Fixture {
    api: Api,
    config: AuthConfig,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), StoreOptions::default()).expect("store");
    let api = Api::new(Arc::new(store), ApiConfig::default());
    let create = json!({
        "TableName": "Tenants",
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "g", "AttributeType": "S"}
        ],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "LocalSecondaryIndexes": [{
            "IndexName": "byg",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "g", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"}
        }],
        "BillingMode": "PAY_PER_REQUEST"
    });
    api.call("CreateTable", create.to_string().as_bytes())
        .await
        .expect("create table");
    Fixture {
        api,
        config: AuthConfig::parse(POLICIES).expect("config"),
        _dir: dir,
    }
}

impl Fixture {
    fn caller(&self, key: &str) -> Caller {
        let entry = self.config.key(key).expect("key");
        Caller {
            principal: Some(Principal {
                user: entry.user.clone(),
                access_key_id: key.to_string(),
            }),
            secure: false,
        }
    }

    fn authorize(&self, key: &str, op: &str, body: Value) -> Result<(), ApiError> {
        let req = Request::parse(body.to_string().as_bytes()).expect("json");
        authorize(&self.api, &self.caller(key), op, &req)
    }

    fn checks(&self, key: &str, op: &str, body: Value) -> Vec<Check> {
        let caller = self.caller(key);
        let principal = caller.principal.as_ref().expect("principal");
        let base = base_keys(&self.api, &caller, principal);
        let req = Request::parse(body.to_string().as_bytes()).expect("json");
        Planner::new(&self.api, base).checks(op, &req)
    }
}

fn key(pk: &str) -> Value {
    json!({"pk": {"S": pk}, "sk": {"S": "1"}})
}

const ALICE: &str = "AKIAALICE";
const ADMIN: &str = "AKIAADMIN";
const READER: &str = "AKIAREADER";

#[tokio::test]
async fn item_operations_follow_the_leading_key() {
    let f = fixture().await;
    for pk in ["alice", "bob"] {
        let cases = [
            ("GetItem", json!({"TableName": "Tenants", "Key": key(pk)})),
            (
                "PutItem",
                json!({"TableName": "Tenants", "Item": {"pk": {"S": pk}, "sk": {"S": "1"}, "v": {"N": "1"}}}),
            ),
            (
                "UpdateItem",
                json!({"TableName": "Tenants", "Key": key(pk), "UpdateExpression": "SET v = :v", "ExpressionAttributeValues": {":v": {"N": "2"}}}),
            ),
            (
                "DeleteItem",
                json!({"TableName": "Tenants", "Key": key(pk)}),
            ),
            (
                "Query",
                json!({"TableName": "Tenants", "KeyConditionExpression": "#p = :p AND sk > :s", "ExpressionAttributeNames": {"#p": "pk"}, "ExpressionAttributeValues": {":p": {"S": pk}, ":s": {"S": "0"}}}),
            ),
            (
                "Query",
                json!({"TableName": "Tenants", "IndexName": "byg", "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": pk}}}),
            ),
            (
                "Query",
                json!({"TableName": "Tenants", "KeyConditions": {"pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": pk}]}}}),
            ),
            (
                "BatchGetItem",
                json!({"RequestItems": {"Tenants": {"Keys": [key("alice"), key(pk)]}}}),
            ),
            (
                "BatchWriteItem",
                json!({"RequestItems": {"Tenants": [{"PutRequest": {"Item": key("alice")}}, {"DeleteRequest": {"Key": key(pk)}}]}}),
            ),
            (
                "TransactWriteItems",
                json!({"TransactItems": [
                {"ConditionCheck": {"TableName": "Tenants", "Key": key("alice"), "ConditionExpression": "attribute_exists(pk)"}},
                {"Put": {"TableName": "Tenants", "Item": key(pk)}}]}),
            ),
        ];
        for (op, body) in cases {
            let r = f.authorize(ALICE, op, body.clone());
            if pk == "alice" {
                assert!(r.is_ok(), "{op} {body}: {r:?}");
            } else {
                let e = r.expect_err(&format!("{op} {body}"));
                assert_eq!(e.kind, ErrorKind::AccessDenied, "{op}");
                assert!(e.message.starts_with("User: arn:aws:iam::123456789012:user/alice is not authorized to perform: dynamodb:"), "{}", e.message);
            }
            assert!(f.authorize(ADMIN, op, body).is_ok(), "admin {op}");
        }
    }
    // TransactWriteItems with alice's items only: PutItem is allowed, but
    // the transaction's Put maps to dynamodb:PutItem (allowed) and the
    // ConditionCheck to ConditionCheckItem (allowed).
    let t = json!({"TransactItems": [
        {"ConditionCheck": {"TableName": "Tenants", "Key": key("alice"), "ConditionExpression": "attribute_exists(pk)"}},
        {"Put": {"TableName": "Tenants", "Item": key("alice")}}]});
    assert!(f.authorize(ALICE, "TransactWriteItems", t).is_ok());
}

#[tokio::test]
async fn scan_partiql_and_unknown_shapes_fail_closed() {
    let f = fixture().await;
    for (op, body) in [
        ("Scan", json!({"TableName": "Tenants"})),
        ("Scan", json!({"TableName": "Tenants", "IndexName": "byg"})),
        // A PartiQL statement that scans has no known leading key.
        (
            "ExecuteStatement",
            json!({"Statement": "SELECT * FROM \"Tenants\""}),
        ),
        (
            "ExecuteStatement",
            json!({"Statement": "SELECT * FROM \"Tenants\" WHERE pk = 'bob'"}),
        ),
        // The key cannot be read: the hash key attribute is missing.
        (
            "GetItem",
            json!({"TableName": "Tenants", "Key": {"sk": {"S": "1"}}}),
        ),
        // A table that does not exist has no known key schema.
        ("GetItem", json!({"TableName": "Nope", "Key": key("alice")})),
        (
            "Query",
            json!({"TableName": "Tenants", "KeyConditionExpression": "pk = :p"}),
        ),
    ] {
        let e = f
            .authorize(ALICE, op, body.clone())
            .expect_err(&format!("{op} {body}"));
        assert_eq!(e.kind, ErrorKind::AccessDenied, "{op} {body}");
        assert!(f.authorize(ADMIN, op, body).is_ok(), "admin {op}");
    }
    // A PartiQL statement on her own partition carries its leading key.
    assert!(f
        .authorize(
            ALICE,
            "ExecuteStatement",
            json!({"Statement": "SELECT * FROM \"Tenants\" WHERE pk = ?", "Parameters": [{"S": "alice"}]}),
        )
        .is_ok());
    // Without a table name the request is left to validation.
    assert!(f
        .authorize(ALICE, "GetItem", json!({"Key": key("bob")}))
        .is_ok());
}

#[tokio::test]
async fn access_denied_messages_use_aws_wording() {
    let f = fixture().await;
    let e = f
        .authorize(
            ALICE,
            "GetItem",
            json!({"TableName": "Tenants", "Key": key("bob")}),
        )
        .expect_err("denied");
    assert_eq!(e.message, "User: arn:aws:iam::123456789012:user/alice is not authorized to perform: dynamodb:GetItem on resource: arn:aws:dynamodb:us-east-1:123456789012:table/Tenants because no identity-based policy allows the dynamodb:GetItem action");
    assert_eq!(e.kind.short_name(), "AccessDeniedException");
    let e = f
        .authorize(
            READER,
            "PutItem",
            json!({"TableName": "Tenants", "Item": key("bob")}),
        )
        .expect_err("denied");
    assert_eq!(e.message, "User: arn:aws:iam::123456789012:user/reader is not authorized to perform: dynamodb:PutItem on resource: arn:aws:dynamodb:us-east-1:123456789012:table/Tenants with an explicit deny in an identity-based policy");
    let e = f
        .authorize(ALICE, "Query", json!({"TableName": "Tenants", "IndexName": "byg", "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "bob"}}}))
        .expect_err("denied");
    assert!(
        e.message.contains(
            "on resource: arn:aws:dynamodb:us-east-1:123456789012:table/Tenants/index/byg because"
        ),
        "{}",
        e.message
    );
    let e = f
        .authorize(ALICE, "ListTables", json!({}))
        .expect_err("denied");
    assert!(
        e.message
            .contains("dynamodb:ListTables on resource: * because"),
        "{}",
        e.message
    );
    let e = f
        .authorize(ALICE, "CreateTable", json!({"TableName": "X"}))
        .expect_err("denied");
    assert!(e.message.contains("dynamodb:CreateTable on resource: arn:aws:dynamodb:us-east-1:123456789012:table/X because"), "{}", e.message);
}

#[tokio::test]
async fn attributes_select_and_return_values_keys() {
    let f = fixture().await;
    let c = f.checks(ALICE, "GetItem", json!({"TableName": "arn:aws:dynamodb:us-east-1:123456789012:table/Tenants", "Key": key("alice"), "ProjectionExpression": "#a.b, c[1], pk", "ExpressionAttributeNames": {"#a": "secret"}, "ReturnConsumedCapacity": "TOTAL"}));
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].action, "dynamodb:GetItem");
    assert_eq!(
        c[0].resource,
        "arn:aws:dynamodb:us-east-1:123456789012:table/Tenants"
    );
    let k = &c[0].keys;
    assert_eq!(
        k.get("dynamodb:LeadingKeys"),
        Some(&["alice".to_string()][..])
    );
    assert_eq!(
        k.get("dynamodb:Attributes").map(|a| a.to_vec()),
        Some(vec![
            "c".to_string(),
            "pk".to_string(),
            "secret".to_string(),
            "sk".to_string()
        ])
    );
    assert_eq!(
        k.get("dynamodb:Select"),
        Some(&["SPECIFIC_ATTRIBUTES".to_string()][..])
    );
    assert_eq!(
        k.get("dynamodb:ReturnConsumedCapacity"),
        Some(&["TOTAL".to_string()][..])
    );
    assert_eq!(k.get("aws:username"), Some(&["alice".to_string()][..]));

    let c = f.checks(ALICE, "UpdateItem", json!({"TableName": "Tenants", "Key": key("alice"), "UpdateExpression": "SET a.b = :v REMOVE c ADD d :n", "ExpressionAttributeValues": {":v": {"S": "x"}, ":n": {"N": "1"}}, "ReturnValues": "ALL_NEW"}));
    let k = &c[0].keys;
    assert_eq!(
        k.get("dynamodb:Attributes").map(|a| a.to_vec()),
        Some(["a", "c", "d", "pk", "sk"].map(String::from).to_vec())
    );
    assert_eq!(
        k.get("dynamodb:ReturnValues"),
        Some(&["ALL_NEW".to_string()][..])
    );
    assert_eq!(k.get("dynamodb:Select"), None);

    let c = f.checks(ALICE, "Query", json!({"TableName": "Tenants", "IndexName": "byg", "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "alice"}}}));
    assert_eq!(
        c[0].keys.get("dynamodb:Select"),
        Some(&["ALL_PROJECTED_ATTRIBUTES".to_string()][..])
    );
    let c = f.checks(
        ALICE,
        "GetItem",
        json!({"TableName": "Tenants", "Key": key("alice")}),
    );
    assert_eq!(
        c[0].keys.get("dynamodb:Select"),
        Some(&["ALL_ATTRIBUTES".to_string()][..])
    );

    // The reader's Deny on the "secret" attribute.
    assert!(f
        .authorize(
            READER,
            "GetItem",
            json!({"TableName": "Tenants", "Key": key("x"), "ProjectionExpression": "v"})
        )
        .is_ok());
    assert!(f.authorize(READER, "GetItem", json!({"TableName": "Tenants", "Key": key("x"), "ProjectionExpression": "#s", "ExpressionAttributeNames": {"#s": "secret"}})).is_err());
    assert!(f
        .authorize(
            READER,
            "GetItem",
            json!({"TableName": "Tenants", "Key": key("x"), "AttributesToGet": ["secret"]})
        )
        .is_err());
    // A projection that cannot be parsed makes Attributes unknown: the Deny applies.
    assert!(f
        .authorize(
            READER,
            "GetItem",
            json!({"TableName": "Tenants", "Key": key("x"), "ProjectionExpression": "(("})
        )
        .is_err());
}

#[tokio::test]
async fn batch_and_transact_check_each_item() {
    let f = fixture().await;
    let c = f.checks(ALICE, "BatchWriteItem", json!({"RequestItems": {"Tenants": [
        {"PutRequest": {"Item": key("a")}}, {"DeleteRequest": {"Key": key("b")}}], "Other": [{"PutRequest": {"Item": {"id": {"S": "z"}}}}]}}));
    let summary: Vec<(String, Option<Vec<String>>)> = c
        .iter()
        .map(|c| {
            (
                c.resource
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                c.keys.get("dynamodb:LeadingKeys").map(|v| v.to_vec()),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("Other".to_string(), None),
            ("Tenants".to_string(), Some(vec!["a".to_string()])),
            ("Tenants".to_string(), Some(vec!["b".to_string()])),
        ]
    );
    let c = f.checks(ALICE, "TransactGetItems", json!({"TransactItems": [{"Get": {"TableName": "Tenants", "Key": key("a")}}, {"Get": {"TableName": "Tenants", "Key": key("b")}}]}));
    assert_eq!(
        c.iter().map(|c| c.action.as_str()).collect::<Vec<_>>(),
        ["dynamodb:GetItem", "dynamodb:GetItem"]
    );
    let c = f.checks(ALICE, "TransactWriteItems", json!({"TransactItems": [
        {"Put": {"TableName": "Tenants", "Item": key("a")}},
        {"Update": {"TableName": "Tenants", "Key": key("a"), "UpdateExpression": "SET x = :x", "ExpressionAttributeValues": {":x": {"S": "1"}}}},
        {"Delete": {"TableName": "Tenants", "Key": key("a")}},
        {"ConditionCheck": {"TableName": "Tenants", "Key": key("a"), "ConditionExpression": "attribute_exists(pk)"}}]}));
    assert_eq!(
        c.iter().map(|c| c.action.as_str()).collect::<Vec<_>>(),
        [
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:ConditionCheckItem"
        ]
    );
}

type Target<'a> = Option<(&'a str, Option<&'a str>)>;

#[test]
fn partiql_targets() {
    let cases: &[(&str, &str, Target)] = &[
        (
            "SELECT * FROM \"Tenants\" WHERE pk = 'alice'",
            "PartiQLSelect",
            Some(("Tenants", None)),
        ),
        (
            "select a, b from Tenants.\"byg\" where pk = ?",
            "PartiQLSelect",
            Some(("Tenants", Some("byg"))),
        ),
        (
            "SELECT 'FROM' FROM \"T\"",
            "PartiQLSelect",
            Some(("T", None)),
        ),
        (
            "INSERT INTO \"Tenants\" VALUE {'pk': 'a'}",
            "PartiQLInsert",
            Some(("Tenants", None)),
        ),
        (
            "UPDATE \"Tenants\" SET v = 1 WHERE pk = 'a'",
            "PartiQLUpdate",
            Some(("Tenants", None)),
        ),
        (
            "DELETE FROM Tenants WHERE pk = 'a'",
            "PartiQLDelete",
            Some(("Tenants", None)),
        ),
        (
            "EXISTS(SELECT * FROM \"T\")",
            "PartiQLSelect",
            Some(("T", None)),
        ),
        ("garbage", "PartiQLSelect", None),
        ("", "PartiQLSelect", None),
    ];
    for (text, action, table) in cases {
        let (a, t) = partiql_target(text);
        assert_eq!(a, *action, "{text}");
        let t = t.as_ref().map(|(n, i)| (n.as_str(), i.as_deref()));
        assert_eq!(t, *table, "{text}");
    }
}

#[tokio::test]
async fn streams_calls_are_authorized_on_the_stream_arn() {
    let f = fixture().await;
    let open = Caller {
        principal: None,
        secure: false,
    };
    let update = json!({"TableName": "Tenants",
        "StreamSpecification": {"StreamEnabled": true, "StreamViewType": "KEYS_ONLY"}});
    f.api
        .call("UpdateTable", update.to_string().as_bytes())
        .await
        .expect("enable the stream");
    let described = f
        .api
        .call(
            "DescribeTable",
            json!({"TableName": "Tenants"}).to_string().as_bytes(),
        )
        .await
        .expect("describe");
    let arn = described["Table"]["LatestStreamArn"]
        .as_str()
        .expect("stream arn")
        .to_string();
    assert!(arn.contains(":table/Tenants/stream/"), "{arn}");
    let stream = f
        .api
        .call_streams_as(
            &open,
            "DescribeStream",
            json!({"StreamArn": arn}).to_string().as_bytes(),
        )
        .await
        .expect("describe stream");
    let shard = stream["StreamDescription"]["Shards"][0]["ShardId"]
        .as_str()
        .expect("shard")
        .to_string();
    let body = json!({"StreamArn": arn, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"});
    let iterator = f
        .api
        .call_streams_as(&open, "GetShardIterator", body.to_string().as_bytes())
        .await
        .expect("iterator")["ShardIterator"]
        .as_str()
        .expect("iterator string")
        .to_string();
    let records = json!({"ShardIterator": iterator});
    // The resource of each call is the stream, the iterator's included.
    for (op, req) in [
        ("DescribeStream", json!({"StreamArn": arn})),
        ("GetShardIterator", body.clone()),
        ("GetRecords", records.clone()),
    ] {
        let checks = f.checks("AKIACONSUMER", op, req.clone());
        assert_eq!(checks.len(), 1, "{op}");
        assert_eq!(checks[0].resource, arn, "{op}");
        assert!(f.authorize("AKIACONSUMER", op, req.clone()).is_ok(), "{op}");
        // A grant on the table ARN alone does not cover its stream.
        let denied = f.authorize("AKIATABLER", op, req).unwrap_err();
        assert_eq!(denied.kind, ErrorKind::AccessDenied, "{op}");
    }
    let list = json!({"TableName": "Tenants"});
    assert_eq!(
        f.checks("AKIACONSUMER", "ListStreams", list.clone())[0].resource,
        "*"
    );
    assert!(f
        .authorize("AKIACONSUMER", "ListStreams", list.clone())
        .is_ok());
    assert!(f.authorize("AKIATABLER", "ListStreams", list).is_err());
}
