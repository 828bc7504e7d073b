//! Authentication and authorization, black-box: `partita serve --auth FILE`
//! with several users, driven by the Rust SDK (which signs with SigV4) and
//! by raw HTTP requests signed with the independent `aws-sigv4` crate.
//!
//! The tenant policy `ForAllValues:StringEquals dynamodb:LeadingKeys
//! ["${aws:username}"]` confines alice and bob to their own items through
//! every operation; each attempt at the other's items is AccessDenied and
//! changes nothing (checked with the admin user). Signature errors are the
//! exact AWS types and messages, never a 500.
//!
//! These tests need their own server (they start it with an auth file);
//! with DYNAMODB_ENDPOINT set they skip.

use std::io::Write as _;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, DeleteRequest, Get, KeysAndAttributes, Put, PutRequest,
    TransactGetItem, TransactWriteItem, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use partita_blackbox_tests::*;

const ACCOUNT: &str = "123456789012";
const MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

const AUTH_FILE: &str = r#"
users:
  - name: admin
    accessKeyId: AKIAADMIN0000000001
    secretAccessKey: admin-secret
    policies: [admin]
  - name: alice
    accessKeyId: AKIAALICE0000000001
    secretAccessKey: alice-secret
    policies: [tenant-items]
  - name: bob
    accessKeyId: AKIABOB00000000001
    secretAccessKey: bob-secret
    policies: [tenant-items]
  - name: temp
    accessKeyId: ASIATEMP0000000001
    secretAccessKey: temp-secret
    sessionToken: temp-session-token
    policies: [admin]
  - name: tls-only
    accessKeyId: AKIATLSONLY00000001
    secretAccessKey: tls-secret
    policies: [secure-transport]
policies:
  admin:
    Version: "2012-10-17"
    Statement:
      - Effect: Allow
        Action: "dynamodb:*"
        Resource: "*"
  secure-transport:
    Version: "2012-10-17"
    Statement:
      - Effect: Allow
        Action: "dynamodb:ListTables"
        Resource: "*"
        Condition:
          Bool:
            aws:SecureTransport: true
  tenant-items:
    Version: "2012-10-17"
    Statement:
      - Effect: Allow
        Action:
          - dynamodb:GetItem
          - dynamodb:PutItem
          - dynamodb:UpdateItem
          - dynamodb:DeleteItem
          - dynamodb:Query
          - dynamodb:Scan
          - dynamodb:BatchGetItem
          - dynamodb:BatchWriteItem
          - dynamodb:ConditionCheckItem
          - dynamodb:PartiQL*
        Resource:
          - "arn:aws:dynamodb:*:*:table/Tenants"
          - "arn:aws:dynamodb:*:*:table/Tenants/index/*"
        Condition:
          ForAllValues:StringEquals:
            dynamodb:LeadingKeys: ["${aws:username}"]
"#;

struct AuthEnv {
    server: Server,
    _dir: tempfile::TempDir,
    auth_path: std::path::PathBuf,
}

impl AuthEnv {
    fn start(extra: &[&str]) -> Option<AuthEnv> {
        AuthEnv::start_with_file(AUTH_FILE, extra)
    }

    fn start_with_file(text: &str, extra: &[&str]) -> Option<AuthEnv> {
        AuthEnv::start_with_file_env(text, extra, &[])
    }

    /// Like [`AuthEnv::start_with_file`], with environment variables.
    fn start_with_file_env(text: &str, extra: &[&str], env: &[(&str, &str)]) -> Option<AuthEnv> {
        if skip_without_own_server("auth") {
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let auth_path = dir.path().join("auth.yaml");
        std::fs::write(&auth_path, text).expect("write auth file");
        let path = auth_path.to_string_lossy().to_string();
        let mut args = vec!["--auth", path.as_str(), "--region", REGION];
        args.extend_from_slice(extra);
        let server = Server::start_with(&args, env);
        Some(AuthEnv {
            server,
            _dir: dir,
            auth_path,
        })
    }

    fn client(&self, key: &str, secret: &str) -> Client {
        client_with_credentials(&self.server.endpoint(), REGION, key, secret, None)
    }

    fn admin(&self) -> Client {
        self.client("AKIAADMIN0000000001", "admin-secret")
    }

    fn alice(&self) -> Client {
        self.client("AKIAALICE0000000001", "alice-secret")
    }

    fn bob(&self) -> Client {
        self.client("AKIABOB00000000001", "bob-secret")
    }
}

fn k(pk: &str, sk: &str) -> Item {
    item([("pk", s(pk)), ("sk", s(sk))])
}

fn denied_message(user: &str, action: &str) -> String {
    format!(
        "User: arn:aws:iam::{ACCOUNT}:user/{user} is not authorized to perform: dynamodb:{action} on resource: arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/Tenants because no identity-based policy allows the dynamodb:{action} action"
    )
}

/// Every item of the table, as sorted (name, value) lists.
async fn all_items(admin: &Client) -> Vec<Vec<(String, String)>> {
    let items = admin
        .scan()
        .table_name("Tenants")
        .consistent_read(true)
        .send()
        .await
        .expect("admin scan")
        .items
        .unwrap_or_default();
    let mut out: Vec<Vec<(String, String)>> = items
        .iter()
        .map(|i| {
            let mut attrs: Vec<(String, String)> = i
                .iter()
                .map(|(k, v)| (k.clone(), format!("{v:?}")))
                .collect();
            attrs.sort();
            attrs
        })
        .collect();
    out.sort();
    out
}

async fn setup_tenants(env: &AuthEnv) {
    let admin = env.admin();
    create_table(
        &admin,
        "Tenants",
        ("pk", aws_sdk_dynamodb::types::ScalarAttributeType::S),
        Some(("sk", aws_sdk_dynamodb::types::ScalarAttributeType::S)),
    )
    .await;
    for pk in ["alice", "bob"] {
        for sk in ["1", "2"] {
            admin
                .put_item()
                .table_name("Tenants")
                .set_item(Some(item([("pk", s(pk)), ("sk", s(sk)), ("v", n("1"))])))
                .send()
                .await
                .expect("seed");
        }
    }
}

#[tokio::test]
async fn tenants_reach_only_their_own_items_through_every_operation() {
    let Some(env) = AuthEnv::start(&[]) else {
        return;
    };
    setup_tenants(&env).await;
    let admin = env.admin();
    let alice = env.alice();
    let t = "Tenants";

    // Alice, on her own items: every operation works.
    let got = alice
        .get_item()
        .table_name(t)
        .set_key(Some(k("alice", "1")))
        .send()
        .await
        .expect("get own");
    assert_eq!(get_n(got.item().expect("item"), "v"), "1");
    alice
        .put_item()
        .table_name(t)
        .set_item(Some(k("alice", "3")))
        .send()
        .await
        .expect("put own");
    alice
        .update_item()
        .table_name(t)
        .set_key(Some(k("alice", "1")))
        .update_expression("SET v = :v")
        .expression_attribute_values(":v", n("2"))
        .send()
        .await
        .expect("update own");
    alice
        .delete_item()
        .table_name(t)
        .set_key(Some(k("alice", "3")))
        .send()
        .await
        .expect("delete own");
    let q = alice
        .query()
        .table_name(t)
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", s("alice"))
        .send()
        .await
        .expect("query own");
    assert_eq!(q.count(), 2);
    let bg = alice
        .batch_get_item()
        .request_items(
            t,
            KeysAndAttributes::builder()
                .keys(k("alice", "1"))
                .keys(k("alice", "2"))
                .build()
                .expect("keys"),
        )
        .send()
        .await
        .expect("batch get own");
    assert_eq!(bg.responses().and_then(|r| r.get(t)).map(Vec::len), Some(2));
    alice
        .batch_write_item()
        .request_items(
            t,
            vec![
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(k("alice", "4")))
                            .build()
                            .expect("put"),
                    )
                    .build(),
                WriteRequest::builder()
                    .delete_request(
                        DeleteRequest::builder()
                            .set_key(Some(k("alice", "3")))
                            .build()
                            .expect("del"),
                    )
                    .build(),
            ],
        )
        .send()
        .await
        .expect("batch write own");
    alice
        .delete_item()
        .table_name(t)
        .set_key(Some(k("alice", "4")))
        .send()
        .await
        .expect("cleanup own");
    let tg = alice
        .transact_get_items()
        .transact_items(
            TransactGetItem::builder()
                .get(
                    Get::builder()
                        .table_name(t)
                        .set_key(Some(k("alice", "1")))
                        .build()
                        .expect("get"),
                )
                .build(),
        )
        .send()
        .await
        .expect("transact get own");
    assert_eq!(tg.responses().len(), 1);
    alice
        .transact_write_items()
        .transact_items(
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(t)
                        .set_item(Some(k("alice", "5")))
                        .build()
                        .expect("put"),
                )
                .build(),
        )
        .send()
        .await
        .expect("transact write own");
    alice
        .delete_item()
        .table_name(t)
        .set_key(Some(k("alice", "5")))
        .send()
        .await
        .expect("cleanup own");

    let before = all_items(&admin).await;

    // Every attempt at bob's items is AccessDenied.
    assert_api_err(
        alice
            .get_item()
            .table_name(t)
            .set_key(Some(k("bob", "1")))
            .send()
            .await,
        "AccessDeniedException",
        &denied_message("alice", "GetItem"),
    );
    assert_api_err(
        alice
            .put_item()
            .table_name(t)
            .set_item(Some(k("bob", "9")))
            .send()
            .await,
        "AccessDeniedException",
        &denied_message("alice", "PutItem"),
    );
    assert_api_err(
        alice
            .update_item()
            .table_name(t)
            .set_key(Some(k("bob", "1")))
            .update_expression("SET v = :v")
            .expression_attribute_values(":v", n("666"))
            .send()
            .await,
        "AccessDeniedException",
        &denied_message("alice", "UpdateItem"),
    );
    assert_api_err(
        alice
            .delete_item()
            .table_name(t)
            .set_key(Some(k("bob", "1")))
            .send()
            .await,
        "AccessDeniedException",
        &denied_message("alice", "DeleteItem"),
    );
    assert_api_err(
        alice
            .query()
            .table_name(t)
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", s("bob"))
            .send()
            .await,
        "AccessDeniedException",
        &denied_message("alice", "Query"),
    );
    // Scan reads every partition: denied under a LeadingKeys condition.
    assert_api_err(
        alice.scan().table_name(t).send().await,
        "AccessDeniedException",
        &denied_message("alice", "Scan"),
    );
    // One foreign key in a batch denies the whole batch.
    assert_api_err(
        alice
            .batch_get_item()
            .request_items(
                t,
                KeysAndAttributes::builder()
                    .keys(k("alice", "1"))
                    .keys(k("bob", "1"))
                    .build()
                    .expect("keys"),
            )
            .send()
            .await,
        "AccessDeniedException",
        &denied_message("alice", "BatchGetItem"),
    );
    assert_api_err(
        alice
            .batch_write_item()
            .request_items(
                t,
                vec![
                    WriteRequest::builder()
                        .put_request(
                            PutRequest::builder()
                                .set_item(Some(k("alice", "9")))
                                .build()
                                .expect("put"),
                        )
                        .build(),
                    WriteRequest::builder()
                        .delete_request(
                            DeleteRequest::builder()
                                .set_key(Some(k("bob", "1")))
                                .build()
                                .expect("del"),
                        )
                        .build(),
                ],
            )
            .send()
            .await,
        "AccessDeniedException",
        &denied_message("alice", "BatchWriteItem"),
    );
    assert_api_err(
        alice
            .transact_get_items()
            .transact_items(
                TransactGetItem::builder()
                    .get(
                        Get::builder()
                            .table_name(t)
                            .set_key(Some(k("bob", "1")))
                            .build()
                            .expect("get"),
                    )
                    .build(),
            )
            .send()
            .await,
        "AccessDeniedException",
        &denied_message("alice", "GetItem"),
    );
    assert_api_err(
        alice
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(t)
                            .set_item(Some(k("alice", "9")))
                            .build()
                            .expect("put"),
                    )
                    .build(),
            )
            .transact_items(
                TransactWriteItem::builder()
                    .delete(
                        Delete::builder()
                            .table_name(t)
                            .set_key(Some(k("bob", "1")))
                            .build()
                            .expect("del"),
                    )
                    .build(),
            )
            .send()
            .await,
        "AccessDeniedException",
        &denied_message("alice", "DeleteItem"),
    );
    let e = api_err(
        alice
            .execute_statement()
            .statement("DELETE FROM \"Tenants\" WHERE pk = 'bob' AND sk = '1'")
            .send()
            .await,
    );
    assert_eq!(e.code, "AccessDeniedException", "{e:?}");
    // PartiQL on her own partition is allowed (the planned statement's
    // partition key is the leading key); a statement that scans is not.
    let own = alice
        .execute_statement()
        .statement("SELECT * FROM \"Tenants\" WHERE pk = ?")
        .parameters(AttributeValue::S("alice".into()))
        .send()
        .await
        .expect("alice's PartiQL query of her own partition");
    assert!(!own.items().is_empty());
    assert!(own
        .items()
        .iter()
        .all(|i| i.get("pk") == Some(&AttributeValue::S("alice".into()))));
    let e = api_err(
        alice
            .execute_statement()
            .statement("SELECT * FROM \"Tenants\" WHERE pk = ?")
            .parameters(AttributeValue::S("bob".into()))
            .send()
            .await,
    );
    assert_eq!(e.code, "AccessDeniedException", "{e:?}");
    let e = api_err(
        alice
            .execute_statement()
            .statement("SELECT * FROM \"Tenants\"")
            .send()
            .await,
    );
    assert_eq!(e.code, "AccessDeniedException", "{e:?}");
    // Control plane: not in the tenant policy.
    let e = api_err(alice.delete_table().table_name(t).send().await);
    assert_eq!(e.code, "AccessDeniedException");
    assert_eq!(
        e.message,
        format!("User: arn:aws:iam::{ACCOUNT}:user/alice is not authorized to perform: dynamodb:DeleteTable on resource: arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/Tenants because no identity-based policy allows the dynamodb:DeleteTable action")
    );
    let e = api_err(alice.list_tables().send().await);
    assert_eq!(e.code, "AccessDeniedException");

    // Nothing changed.
    assert_eq!(all_items(&admin).await, before);
    let bob1 = admin
        .get_item()
        .table_name(t)
        .set_key(Some(k("bob", "1")))
        .consistent_read(true)
        .send()
        .await
        .expect("admin get");
    assert_eq!(get_n(bob1.item().expect("bob's item"), "v"), "1");
    assert!(admin
        .get_item()
        .table_name(t)
        .set_key(Some(k("alice", "9")))
        .send()
        .await
        .expect("get")
        .item()
        .is_none());

    // And the same holds the other way round.
    let bob = env.bob();
    bob.get_item()
        .table_name(t)
        .set_key(Some(k("bob", "1")))
        .send()
        .await
        .expect("bob reads his own");
    let e = api_err(
        bob.get_item()
            .table_name(t)
            .set_key(Some(k("alice", "1")))
            .send()
            .await,
    );
    assert_eq!(
        (e.code.as_str(), e.message.as_str()),
        (
            "AccessDeniedException",
            denied_message("bob", "GetItem").as_str()
        )
    );
}

#[tokio::test]
async fn sdk_signature_errors_are_aws_errors() {
    let Some(env) = AuthEnv::start(&[]) else {
        return;
    };
    let endpoint = env.server.endpoint();
    // The real SDK's signature verifies.
    env.admin()
        .list_tables()
        .send()
        .await
        .expect("admin lists tables");
    assert_api_err(
        env.client("AKIAUNKNOWN00000001", "x")
            .list_tables()
            .send()
            .await,
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    );
    assert_api_err(
        env.client("AKIAALICE0000000001", "not-alice-secret")
            .list_tables()
            .send()
            .await,
        "InvalidSignatureException",
        MISMATCH,
    );
    assert_api_err(
        client_with_credentials(
            &endpoint,
            "eu-west-1",
            "AKIAADMIN0000000001",
            "admin-secret",
            None,
        )
        .list_tables()
        .send()
        .await,
        "InvalidSignatureException",
        "Credential should be scoped to a valid region, not 'eu-west-1'. ",
    );
    // Temporary credentials need their session token.
    client_with_credentials(
        &endpoint,
        REGION,
        "ASIATEMP0000000001",
        "temp-secret",
        Some("temp-session-token"),
    )
    .list_tables()
    .send()
    .await
    .expect("with session token");
    for token in [None, Some("wrong-token")] {
        assert_api_err(
            client_with_credentials(
                &endpoint,
                REGION,
                "ASIATEMP0000000001",
                "temp-secret",
                token,
            )
            .list_tables()
            .send()
            .await,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        );
    }
    // A key without a session token refuses one.
    assert_api_err(
        client_with_credentials(
            &endpoint,
            REGION,
            "AKIAADMIN0000000001",
            "admin-secret",
            Some("tok"),
        )
        .list_tables()
        .send()
        .await,
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    );
    // No secret in the server's log.
    let log = env.server.log_text();
    for secret in [
        "admin-secret",
        "alice-secret",
        "temp-secret",
        "temp-session-token",
        "not-alice-secret",
    ] {
        assert!(!log.contains(secret), "secret {secret} in log:\n{log}");
    }
}

/// A request signed with the `aws-sigv4` crate: (request target, headers).
struct Signed {
    target: String,
    headers: Vec<(String, String)>,
}

fn sign_raw(
    host: &str,
    op: &str,
    body: &[u8],
    key: (&str, &str),
    region: &str,
    time: SystemTime,
    presign: Option<Duration>,
) -> Signed {
    use aws_sigv4::http_request::{
        sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    };
    use aws_sigv4::sign::v4;
    let creds = aws_credential_types::Credentials::new(key.0, key.1, None, None, "blackbox");
    let identity: aws_smithy_runtime_api::client::identity::Identity = creds.into();
    let mut settings = SigningSettings::default();
    if let Some(expires) = presign {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(expires);
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("dynamodb")
        .time(time)
        .settings(settings)
        .build()
        .expect("signing params")
        .into();
    let headers = vec![
        ("host".to_string(), host.to_string()),
        (
            "content-type".to_string(),
            "application/x-amz-json-1.0".to_string(),
        ),
        (
            "x-amz-target".to_string(),
            format!("DynamoDB_20120810.{op}"),
        ),
    ];
    let signable = SignableRequest::new(
        "POST",
        format!("http://{host}/"),
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    let mut out = headers.clone();
    for (k, v) in instructions.headers() {
        out.push((k.to_string(), v.to_string()));
    }
    let mut target = "/".to_string();
    for (i, (k, v)) in instructions.params().iter().enumerate() {
        target.push(if i == 0 { '?' } else { '&' });
        target.push_str(&format!("{}={}", encode(k), encode(v)));
    }
    Signed {
        target,
        headers: out,
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn assert_error(r: &RawResponse, code: &str, message_prefix: &str) {
    assert_eq!(r.status, 400, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.error_type(),
        code,
        "{:?}",
        String::from_utf8_lossy(&r.body)
    );
    let m = r.error_message().unwrap_or_default();
    assert!(
        m.starts_with(message_prefix),
        "{m:?} does not start with {message_prefix:?}"
    );
}

const ADMIN: (&str, &str) = ("AKIAADMIN0000000001", "admin-secret");

#[tokio::test]
async fn raw_signature_checks() {
    let Some(env) = AuthEnv::start(&[]) else {
        return;
    };
    let endpoint = env.server.endpoint();
    let host = endpoint.trim_start_matches("http://").to_string();
    let body = b"{}";
    let now = SystemTime::now();

    // Signed by an independent signer: accepted.
    let ok = sign_raw(&host, "ListTables", body, ADMIN, REGION, now, None);
    let r = raw_http(&endpoint, "POST", &ok.target, &ok.headers, body);
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));

    // No authentication at all.
    let bare: Vec<(String, String)> = ok
        .headers
        .iter()
        .filter(|(k, _)| k != "authorization")
        .cloned()
        .collect();
    assert_error(
        &raw_http(&endpoint, "POST", "/", &bare, body),
        "MissingAuthenticationTokenException",
        "Request is missing Authentication Token",
    );

    // Tampered body.
    assert_error(
        &raw_http(&endpoint, "POST", &ok.target, &ok.headers, b"{\"Limit\":1}"),
        "InvalidSignatureException",
        MISMATCH,
    );
    // Tampered signed header.
    let mut tampered = ok.headers.clone();
    for (k, v) in tampered.iter_mut() {
        if k == "x-amz-target" {
            *v = "DynamoDB_20120810.DescribeLimits".to_string();
        }
    }
    assert_error(
        &raw_http(&endpoint, "POST", &ok.target, &tampered, body),
        "InvalidSignatureException",
        MISMATCH,
    );
    // Wrong secret, unknown key.
    let wrong = sign_raw(
        &host,
        "ListTables",
        body,
        ("AKIAADMIN0000000001", "nope"),
        REGION,
        now,
        None,
    );
    assert_error(
        &raw_http(&endpoint, "POST", &wrong.target, &wrong.headers, body),
        "InvalidSignatureException",
        MISMATCH,
    );
    let unknown = sign_raw(
        &host,
        "ListTables",
        body,
        ("AKIAWHO000000000001", "x"),
        REGION,
        now,
        None,
    );
    assert_error(
        &raw_http(&endpoint, "POST", &unknown.target, &unknown.headers, body),
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    );
    // Expired and future dates (15-minute window).
    let old = sign_raw(
        &host,
        "ListTables",
        body,
        ADMIN,
        REGION,
        now - Duration::from_secs(20 * 60),
        None,
    );
    assert_error(
        &raw_http(&endpoint, "POST", &old.target, &old.headers, body),
        "InvalidSignatureException",
        "Signature expired: ",
    );
    let future = sign_raw(
        &host,
        "ListTables",
        body,
        ADMIN,
        REGION,
        now + Duration::from_secs(20 * 60),
        None,
    );
    assert_error(
        &raw_http(&endpoint, "POST", &future.target, &future.headers, body),
        "InvalidSignatureException",
        "Signature not yet current: ",
    );
    let skewed = sign_raw(
        &host,
        "ListTables",
        body,
        ADMIN,
        REGION,
        now - Duration::from_secs(10 * 60),
        None,
    );
    assert_eq!(
        raw_http(&endpoint, "POST", &skewed.target, &skewed.headers, body).status,
        200
    );
    // Wrong region.
    let region = sign_raw(&host, "ListTables", body, ADMIN, "ap-south-1", now, None);
    assert_error(
        &raw_http(&endpoint, "POST", &region.target, &region.headers, body),
        "InvalidSignatureException",
        "Credential should be scoped to a valid region, not 'ap-south-1'. ",
    );

    // Presigned: fresh works, and replaying it with a tampered body fails.
    let pre = sign_raw(
        &host,
        "ListTables",
        body,
        ADMIN,
        REGION,
        now,
        Some(Duration::from_secs(60)),
    );
    assert!(pre.target.contains("X-Amz-Signature="), "{}", pre.target);
    assert!(!pre.headers.iter().any(|(k, _)| k == "authorization"));
    let r = raw_http(&endpoint, "POST", &pre.target, &pre.headers, body);
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_error(
        &raw_http(
            &endpoint,
            "POST",
            &pre.target,
            &pre.headers,
            b"{\"Limit\":2}",
        ),
        "InvalidSignatureException",
        MISMATCH,
    );
    // A presigned URL replayed after its expiry.
    let stale = sign_raw(
        &host,
        "ListTables",
        body,
        ADMIN,
        REGION,
        now - Duration::from_secs(120),
        Some(Duration::from_secs(60)),
    );
    assert_error(
        &raw_http(&endpoint, "POST", &stale.target, &stale.headers, body),
        "InvalidSignatureException",
        "Signature expired: ",
    );

    // Malformed Authorization headers: each a 400 with a signature error.
    let date = ok
        .headers
        .iter()
        .find(|(k, _)| k == "x-amz-date")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let day = &date[..8];
    let malformed: Vec<(String, &str)> = vec![
        ("Basic YWxpY2U6c2VjcmV0".to_string(), "IncompleteSignatureException"),
        ("AWS4-HMAC-SHA256".to_string(), "IncompleteSignatureException"),
        ("AWS4-HMAC-SHA256 Credential=AKIAADMIN0000000001".to_string(), "IncompleteSignatureException"),
        (format!("AWS4-HMAC-SHA256 Credential=AKIAADMIN0000000001/{day}/{REGION}/dynamodb/aws4_request, Signature=00"), "IncompleteSignatureException"),
        (format!("AWS4-HMAC-SHA256 Credential=AKIAADMIN0000000001/{day}/{REGION}/dynamodb/aws4_request SignedHeaders=host Signature=00"), "IncompleteSignatureException"),
        (format!("AWS4-HMAC-SHA256 Credential=AKIAADMIN0000000001/{day}/{REGION}/dynamodb/aws4_request, SignedHeaders=host, Signature=00"), "InvalidSignatureException"),
        (format!("AWS4-HMAC-SHA256 Credential=AKIAADMIN0000000001/{day}/{REGION}/dynamodb/aws4_request, SignedHeaders=x-amz-date, Signature=00"), "InvalidSignatureException"),
        (format!("AWS4-HMAC-SHA256 Credential=AKIAADMIN0000000001/{day}/{REGION}/s3/aws4_request, SignedHeaders=host, Signature=00"), "InvalidSignatureException"),
        (format!("AWS4-HMAC-SHA256 Credential=AKIAADMIN0000000001/19990101/{REGION}/dynamodb/aws4_request, SignedHeaders=host, Signature=00"), "InvalidSignatureException"),
        ("AWS4-HMAC-SHA256 Credential=////, SignedHeaders=;;;, Signature=é".to_string(), "IncompleteSignatureException"),
        ("AWS4-HMAC-SHA512 Credential=a/b/c/d/e, SignedHeaders=host, Signature=00".to_string(), "IncompleteSignatureException"),
        (format!("AWS4-HMAC-SHA256 Credential=AKIAADMIN0000000001/{day}/{REGION}/dynamodb/aws4_request, SignedHeaders=host, Signature={}", "f".repeat(5000)), "InvalidSignatureException"),
    ];
    for (auth, code) in malformed {
        let mut headers: Vec<(String, String)> = bare.clone();
        headers.push(("authorization".to_string(), auth.clone()));
        let r = raw_http(&endpoint, "POST", "/", &headers, body);
        assert_eq!(
            r.status,
            400,
            "{auth:?}: {:?}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(
            r.error_type(),
            code,
            "{auth:?}: {:?}",
            String::from_utf8_lossy(&r.body)
        );
    }
    // No date header at all.
    let no_date: Vec<(String, String)> = ok
        .headers
        .iter()
        .filter(|(k, _)| k != "x-amz-date")
        .cloned()
        .collect();
    assert_error(
        &raw_http(&endpoint, "POST", "/", &no_date, body),
        "IncompleteSignatureException",
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
    );
    // Presigned query strings missing parameters.
    assert_error(
        &raw_http(
            &endpoint,
            "POST",
            "/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20260101T000000Z",
            &bare,
            body,
        ),
        "IncompleteSignatureException",
        "AWS query-string parameters must include 'X-Amz-Credential'.",
    );
    // The server is still serving.
    env.admin().list_tables().send().await.expect("still alive");
}

fn wait_until(deadline: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

const ONLY_ADMIN: &str = "users:\n  - name: admin\n    accessKeyId: AKIAADMIN0000000001\n    secretAccessKey: admin-secret\n    policies: [admin]\npolicies:\n  admin: {Version: \"2012-10-17\", Statement: [{Effect: Allow, Action: \"dynamodb:*\", Resource: \"*\"}]}\n";

#[tokio::test]
async fn auth_file_reloads_and_a_bad_reload_keeps_the_old_one() {
    let Some(env) = AuthEnv::start_with_file(ONLY_ADMIN, &[]) else {
        return;
    };
    let endpoint = env.server.endpoint();
    let host = endpoint.trim_start_matches("http://").to_string();
    let status_of = |key: (&str, &str)| {
        let signed = sign_raw(
            &host,
            "ListTables",
            b"{}",
            key,
            REGION,
            SystemTime::now(),
            None,
        );
        raw_http(&endpoint, "POST", &signed.target, &signed.headers, b"{}")
    };
    let carol = ("AKIACAROL000000001", "carol-secret");
    assert_eq!(status_of(carol).error_type(), "UnrecognizedClientException");

    // Add carol; the server picks the change up.
    let text = ONLY_ADMIN.replace(
        "policies:\n",
        "  - name: carol\n    accessKeyId: AKIACAROL000000001\n    secretAccessKey: carol-secret\n    policies: [admin]\npolicies:\n",
    );
    std::fs::write(&env.auth_path, &text).expect("rewrite");
    assert!(
        wait_until(Duration::from_secs(10), || status_of(carol).status == 200),
        "carol was not added"
    );

    // A malformed file is not installed: carol keeps working, the log says why.
    let mut f = std::fs::File::create(&env.auth_path).expect("rewrite");
    f.write_all(b"users:\n  - name: carol\n    accessKeyId: AKIACAROL000000001\n    secretAccessKey: carol-secret\n    policiez: []\n").expect("write");
    drop(f);
    assert!(
        wait_until(Duration::from_secs(10), || env
            .server
            .log_text()
            .contains("auth file not reloaded")),
        "no reload failure logged:\n{}",
        env.server.log_text()
    );
    let log = env.server.log_text();
    assert!(log.contains("line 5"), "{log}");
    assert!(!log.contains("carol-secret"), "{log}");
    assert_eq!(status_of(carol).status, 200);
    assert_eq!(status_of(ADMIN).status, 200);
}

/// The reloader runs supervised: a panic while it reloads is counted, and
/// the restarted reloader installs the changed file at once.
#[tokio::test]
async fn a_reloader_panic_is_counted_and_the_restarted_reloader_installs_the_file() {
    if crate::background::skip(
        "a_reloader_panic_is_counted_and_the_restarted_reloader_installs_the_file",
    ) {
        return;
    }
    let admin = free_loopback_port();
    let admin_arg = admin.to_string();
    let Some(env) = AuthEnv::start_with_file_env(
        ONLY_ADMIN,
        &["--admin-port", &admin_arg],
        &[("PARTITA_FAILPOINTS", "auth_reload:1")],
    ) else {
        return;
    };
    let carol = env.client("AKIACAROL000000001", "carol-secret");
    assert_eq!(
        api_err(carol.list_tables().send().await).code,
        "UnrecognizedClientException"
    );
    let text = ONLY_ADMIN.replace(
        "policies:\n",
        "  - name: carol\n    accessKeyId: AKIACAROL000000001\n    secretAccessKey: carol-secret\n    policies: [admin]\npolicies:\n",
    );
    std::fs::write(&env.auth_path, &text).expect("rewrite");
    let end = Instant::now() + Duration::from_secs(20);
    while carol.list_tables().send().await.is_err() {
        assert!(
            Instant::now() < end,
            "carol was not added:\n{}",
            env.server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(crate::background::failures(admin, "auth_reload"), 1.0);
    assert_eq!(admin_get(admin, "/readyz"), (200, "ready\n".to_string()));
}

#[test]
fn a_malformed_auth_file_is_refused_at_start() {
    if skip_without_own_server("a_malformed_auth_file_is_refused_at_start") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        ("users:\n  - name: a\n    accessKeyId: AKIA1\n    secretAccessKey: s\n    policies: [nope]\n", "line 2"),
        ("policies:\n  p:\n    Version: \"2012-10-17\"\n    Statement:\n      - Effect: Allow\n        Action: \"*\"\n", "line 2"),
        ("users:\n  - name: a\n   accessKeyId: x\n", "line 3"),
    ];
    for (text, want) in cases {
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, text).expect("write");
        let out = std::process::Command::new(partita_binary())
            .arg("serve")
            .arg("--port")
            .arg(free_loopback_port().to_string())
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--auth")
            .arg(&path)
            .output()
            .expect("run partita");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started with {text:?}");
        assert!(
            stderr.contains("refused") && stderr.contains(want),
            "{text:?}: {stderr}"
        );
    }
}

#[test]
fn https_listener_with_rustls() {
    if skip_without_own_server("https_listener_with_rustls") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).expect("write cert");
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).expect("write key");
    let tls_port = free_loopback_port().to_string();
    let (cert_arg, key_arg) = (
        cert_path.to_string_lossy().to_string(),
        key_path.to_string_lossy().to_string(),
    );
    let Some(env) = AuthEnv::start(&[
        "--tls-cert",
        &cert_arg,
        "--tls-key",
        &key_arg,
        "--tls-port",
        &tls_port,
    ]) else {
        return;
    };

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(certified.cert.der().clone())
        .expect("trust the test cert");
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let host = format!("localhost:{tls_port}");
    let https = |key: (&str, &str)| -> RawResponse {
        let signed = sign_raw(
            &host,
            "ListTables",
            b"{}",
            key,
            REGION,
            SystemTime::now(),
            None,
        );
        let mut conn = rustls::ClientConnection::new(
            std::sync::Arc::new(config.clone()),
            "localhost".try_into().expect("name"),
        )
        .expect("client connection");
        let mut tcp = None;
        for _ in 0..50 {
            if let Ok(s) =
                std::net::TcpStream::connect(("127.0.0.1", tls_port.parse::<u16>().unwrap_or(0)))
            {
                tcp = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut tcp = tcp.expect("connect to the HTTPS port");
        let mut stream = rustls::Stream::new(&mut conn, &mut tcp);
        let mut req = format!("POST {} HTTP/1.1\r\n", signed.target);
        for (k, v) in &signed.headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("Content-Length: 2\r\nConnection: close\r\n\r\n{}");
        stream.write_all(req.as_bytes()).expect("write over TLS");
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stream, &mut buf);
        parse_raw_response(&buf)
    };
    let r = https(ADMIN);
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert!(r.json().get("TableNames").is_some());
    // aws:SecureTransport is true only over TLS.
    let tls_only = ("AKIATLSONLY00000001", "tls-secret");
    assert_eq!(https(tls_only).status, 200);
    let endpoint = env.server.endpoint();
    let plain_host = endpoint.trim_start_matches("http://").to_string();
    let signed = sign_raw(
        &plain_host,
        "ListTables",
        b"{}",
        tls_only,
        REGION,
        SystemTime::now(),
        None,
    );
    let plain = raw_http(&endpoint, "POST", &signed.target, &signed.headers, b"{}");
    assert_eq!(plain.error_type(), "AccessDeniedException");
    // Plain HTTP keeps working alongside.
    let admin_plain = sign_raw(
        &plain_host,
        "ListTables",
        b"{}",
        ADMIN,
        REGION,
        SystemTime::now(),
        None,
    );
    assert_eq!(
        raw_http(
            &endpoint,
            "POST",
            &admin_plain.target,
            &admin_plain.headers,
            b"{}"
        )
        .status,
        200
    );
}
