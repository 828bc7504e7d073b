//! Bringing a live table to its Table resource's spec (issue 22).
//!
//! Nodes create a table from its topology entry (the CreateTable body and
//! time to live). Every later change of the spec reaches the data plane
//! the way it reaches DynamoDB: the operator compares what DynamoDB
//! answers through the gateway (DescribeTable, DescribeTimeToLive,
//! ListTagsOfResource) with the spec and makes the first change still
//! missing with DynamoDB's own calls (UpdateTable, UpdateTimeToLive,
//! TagResource, UntagResource), one per reconcile, as an ACK controller
//! does against AWS. DynamoDB's rules apply unchanged: one index change at
//! a time, deletion protection changed alone, a stream's view type changed
//! by disabling it first. The gateway writes each change to every
//! partition's group.
//!
//! The operator signs its calls with its own access key: the Secret
//! `<gateway>-operator-credentials` (created once, with a random key) and a
//! user [`OPERATOR_USER`] allowed every DynamoDB action, which the gateway
//! config controller adds to the gateway's auth file.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use kube::Client;
use serde_json::{json, Value};

use crate::controller::access_policy::GatewayTarget;

/// The user the operator's key belongs to in the gateway's auth file.
pub const OPERATOR_USER: &str = "partita-operator";
/// The policy bound to [`OPERATOR_USER`] (AccessPolicy names have a `/`).
pub const OPERATOR_POLICY: &str = "partita-operator";

const ACCESS_KEY_ID: &str = "accessKeyId";
const SECRET_ACCESS_KEY: &str = "secretAccessKey";

/// The policy of [`OPERATOR_USER`]: every DynamoDB action on every table.
pub fn operator_policy() -> Value {
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}]})
}

/// The operator's access key for the gateway.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// The name of the Secret holding the operator's access key.
pub fn credentials_secret(target: &GatewayTarget) -> String {
    format!("{}-operator-credentials", target.name)
}

fn credentials_of(secret: &Secret) -> Option<Credentials> {
    let data = secret.data.as_ref()?;
    let get = |k: &str| {
        data.get(k)
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
            .filter(|s| !s.is_empty())
    };
    Some(Credentials {
        access_key_id: get(ACCESS_KEY_ID)?,
        secret_access_key: get(SECRET_ACCESS_KEY)?,
    })
}

/// `count` random characters of `alphabet` from the system's random source.
fn random_text(alphabet: &[u8], count: usize) -> Result<String, getrandom::Error> {
    let mut bytes = vec![0u8; count];
    getrandom::fill(&mut bytes)?;
    Ok(bytes
        .iter()
        .map(|b| alphabet[usize::from(*b) % alphabet.len()] as char)
        .collect())
}

/// Reads the operator's access key; `None` until
/// [`ensure_credentials`] created it.
pub async fn read_credentials(
    client: &Client,
    target: &GatewayTarget,
) -> Result<Option<Credentials>, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &target.namespace);
    Ok(api
        .get_opt(&credentials_secret(target))
        .await?
        .as_ref()
        .and_then(credentials_of))
}

/// Returns the operator's access key, creating its Secret (with a random
/// key) the first time.
pub async fn ensure_credentials(
    client: &Client,
    target: &GatewayTarget,
) -> Result<Credentials, kube::Error> {
    if let Some(existing) = read_credentials(client, target).await? {
        return Ok(existing);
    }
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const ANY: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let random = |alphabet, count| {
        random_text(alphabet, count).map_err(|e| {
            kube::Error::Service(format!("no random source for the operator's key: {e}").into())
        })
    };
    let created = Credentials {
        access_key_id: format!("AKIAPARTITAOP{}", random(UPPER, 7)?),
        secret_access_key: random(ANY, 40)?,
    };
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(credentials_secret(target)),
            namespace: Some(target.namespace.clone()),
            labels: Some(
                [(
                    "app.kubernetes.io/managed-by".to_string(),
                    crate::build::FIELD_MANAGER.to_string(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(
            [
                (
                    ACCESS_KEY_ID.to_string(),
                    ByteString(created.access_key_id.clone().into_bytes()),
                ),
                (
                    SECRET_ACCESS_KEY.to_string(),
                    ByteString(created.secret_access_key.clone().into_bytes()),
                ),
            ]
            .into(),
        ),
        ..Default::default()
    };
    let api: Api<Secret> = Api::namespaced(client.clone(), &target.namespace);
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(created),
        // Another operator instance created it first: use that key.
        Err(kube::Error::Api(e)) if e.code == 409 => read_credentials(client, target)
            .await?
            .ok_or_else(|| kube::Error::Service("the operator's key Secret is malformed".into())),
        Err(e) => Err(e),
    }
}

/// Where the gateway's DynamoDB endpoints are: `host:port` addresses, tried
/// in order.
pub type Endpoints = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

/// The gateway, as the operator calls it.
#[derive(Clone)]
pub struct DataPlane {
    pub target: GatewayTarget,
    /// The region the gateway signs for.
    pub region: String,
    pub endpoints: Endpoints,
}

impl std::fmt::Debug for DataPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataPlane")
            .field("target", &self.target)
            .field("region", &self.region)
            .field("endpoints", &(self.endpoints)())
            .finish()
    }
}

/// Why a call to the gateway failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("the gateway did not answer: {0}")]
    Unreachable(String),
    #[error("{kind}: {message}")]
    Refused { kind: String, message: String },
}

/// Where a reconcile left a table's definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// DynamoDB's answers match the spec.
    InSync,
    /// A change was made (what).
    Changed(String),
    /// DynamoDB is still making a change (what).
    InProgress(String),
    /// The data plane cannot be asked yet (why).
    Unavailable(String),
    /// DynamoDB refused the change (its error type and message).
    Refused(String),
}

/// What a reconcile learnt and did: where the definition stands, and the
/// table's item count and size as DescribeTable reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    pub outcome: Outcome,
    /// (ItemCount, TableSizeBytes), when DescribeTable answered.
    pub stats: Option<(i64, i64)>,
}

/// One DynamoDB call that moves the table towards its spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub operation: &'static str,
    pub body: Value,
    /// What it changes, for status messages and Events.
    pub what: String,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    InSync,
    Wait(String),
    Make(Change),
}

const CALL_TIMEOUT: Duration = Duration::from_secs(10);

impl DataPlane {
    /// The gateway's Service in the cluster.
    pub fn in_cluster(target: GatewayTarget, region: String) -> DataPlane {
        let service = format!("{}.{}.svc:8000", target.name, target.namespace);
        DataPlane {
            target,
            region,
            endpoints: Arc::new(move || vec![service.clone()]),
        }
    }

    /// Calls `operation` with `body`, signed with `credentials`, on the first
    /// endpoint that answers.
    pub async fn call(
        &self,
        credentials: &Credentials,
        operation: &str,
        body: &Value,
    ) -> Result<Value, CallError> {
        let endpoints = (self.endpoints)();
        let mut last = CallError::Unreachable("no gateway endpoint".into());
        for endpoint in endpoints {
            match tokio::time::timeout(
                CALL_TIMEOUT,
                self.call_one(&endpoint, credentials, operation, body),
            )
            .await
            {
                Ok(Err(CallError::Unreachable(e))) => last = CallError::Unreachable(e),
                Ok(answer) => return answer,
                Err(_) => last = CallError::Unreachable(format!("{operation} timed out")),
            }
        }
        Err(last)
    }

    async fn call_one(
        &self,
        endpoint: &str,
        credentials: &Credentials,
        operation: &str,
        body: &Value,
    ) -> Result<Value, CallError> {
        let unreachable =
            |e: &dyn std::fmt::Display| CallError::Unreachable(format!("{endpoint}: {e}"));
        let bytes = serde_json::to_vec(body).map_err(|e| unreachable(&e))?;
        let headers = sign(endpoint, credentials, &self.region, operation, &bytes)
            .map_err(|e| unreachable(&e))?;
        let mut request = hyper::Request::builder().method("POST").uri("/");
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| unreachable(&e))?;
        let stream = tokio::net::TcpStream::connect(endpoint)
            .await
            .map_err(|e| unreachable(&e))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| unreachable(&e))?;
        tokio::spawn(connection);
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| unreachable(&e))?;
        let status = response.status().as_u16();
        let answer = Limited::new(response.into_body(), 16 << 20)
            .collect()
            .await
            .map_err(|e| unreachable(&e))?
            .to_bytes();
        let value: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        if status == 200 {
            return Ok(value);
        }
        Err(CallError::Refused {
            kind: value["__type"]
                .as_str()
                .map(|t| t.rsplit('#').next().unwrap_or(t).to_string())
                .unwrap_or_else(|| format!("HTTP {status}")),
            message: value["message"]
                .as_str()
                .or_else(|| value["Message"].as_str())
                .unwrap_or_default()
                .to_string(),
        })
    }

    /// Makes the next change that brings table `desired["TableName"]` to
    /// `desired` (a CreateTable body) and `ttl`.
    pub async fn sync(
        &self,
        client: &Client,
        desired: &Value,
        ttl: Option<&partita_topology::TimeToLive>,
    ) -> Synced {
        let mut stats = None;
        let outcome = self.sync_with(client, desired, ttl, &mut stats).await;
        Synced { outcome, stats }
    }

    async fn sync_with(
        &self,
        client: &Client,
        desired: &Value,
        ttl: Option<&partita_topology::TimeToLive>,
        stats: &mut Option<(i64, i64)>,
    ) -> Outcome {
        let credentials = match read_credentials(client, &self.target).await {
            Ok(Some(c)) => c,
            Ok(None) => {
                return Outcome::Unavailable("the operator's gateway key is not created yet".into())
            }
            Err(e) => {
                return Outcome::Unavailable(format!("reading the operator's gateway key: {e}"))
            }
        };
        let name = json!({"TableName": desired["TableName"]});
        let waiting = |e: CallError| match e {
            CallError::Refused { kind, .. } if kind == "ResourceNotFoundException" => {
                Outcome::Unavailable("the data plane has not created the table yet".into())
            }
            CallError::Refused { kind, .. }
                if kind == "UnrecognizedClientException" || kind == "AccessDeniedException" =>
            {
                Outcome::Unavailable("the gateway does not know the operator's key yet".into())
            }
            other => Outcome::Unavailable(format!("asking the gateway: {other}")),
        };
        let table = match self.call(&credentials, "DescribeTable", &name).await {
            Ok(answer) => answer["Table"].clone(),
            Err(e) => return waiting(e),
        };
        *stats = Some((
            table["ItemCount"].as_i64().unwrap_or(0),
            table["TableSizeBytes"].as_i64().unwrap_or(0),
        ));
        let live_ttl = match self.call(&credentials, "DescribeTimeToLive", &name).await {
            Ok(answer) => answer["TimeToLiveDescription"].clone(),
            Err(e) => return waiting(e),
        };
        let arn = json!({"ResourceArn": table["TableArn"]});
        let tags = match self.call(&credentials, "ListTagsOfResource", &arn).await {
            Ok(answer) => answer["Tags"].as_array().cloned().unwrap_or_default(),
            Err(e) => return waiting(e),
        };
        match next_change(desired, ttl, &table, &live_ttl, &tags) {
            Next::InSync => Outcome::InSync,
            Next::Wait(why) => Outcome::InProgress(why),
            Next::Make(change) => {
                match self
                    .call(&credentials, change.operation, &change.body)
                    .await
                {
                    Ok(_) => Outcome::Changed(change.what),
                    // A failure of the service, not a refusal of the spec:
                    // the next reconcile reads the table again and retries.
                    Err(CallError::Refused { kind, message }) if transient(&kind) => {
                        Outcome::InProgress(format!("{}: {kind}: {message}", change.what))
                    }
                    Err(CallError::Refused { kind, message }) => Outcome::Refused(format!(
                        "{} ({}): {kind}: {message}",
                        change.what, change.operation
                    )),
                    // Unknown outcome: the next reconcile reads it back.
                    Err(e) => Outcome::InProgress(format!("{}: {e}", change.what)),
                }
            }
        }
    }
}

/// True for an error type that says the service could not do the call now
/// (overloaded, another change in progress, an answer lost), rather than
/// that DynamoDB refuses the change itself.
fn transient(kind: &str) -> bool {
    matches!(
        kind,
        "InternalServerError"
            | "ServiceUnavailable"
            | "ThrottlingException"
            | "LimitExceededException"
            | "ResourceInUseException"
            | "TransactionConflictException"
            | "ProvisionedThroughputExceededException"
    ) || kind.starts_with("HTTP 5")
}

/// SigV4 headers of a DynamoDB JSON call (`aws-sigv4`).
fn sign(
    host: &str,
    credentials: &Credentials,
    region: &str,
    operation: &str,
    body: &[u8],
) -> Result<Vec<(String, String)>, String> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    let identity: aws_smithy_runtime_api::client::identity::Identity =
        aws_credential_types::Credentials::new(
            &credentials.access_key_id,
            &credentials.secret_access_key,
            None,
            None,
            "partita-operator",
        )
        .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("dynamodb")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let mut headers = vec![
        ("host".to_string(), host.to_string()),
        (
            "content-type".to_string(),
            "application/x-amz-json-1.0".to_string(),
        ),
        (
            "x-amz-target".to_string(),
            format!("DynamoDB_20120810.{operation}"),
        ),
    ];
    let request = SignableRequest::new(
        "POST",
        format!("http://{host}/"),
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    for (name, value) in instructions.headers() {
        headers.push((name.to_string(), value.to_string()));
    }
    Ok(headers)
}

fn text<'a>(value: &'a Value, default: &'a str) -> &'a str {
    value.as_str().unwrap_or(default)
}

/// (read, write) capacity units of a ProvisionedThroughput object.
fn units(throughput: &Value) -> (i64, i64) {
    (
        throughput["ReadCapacityUnits"].as_i64().unwrap_or(0),
        throughput["WriteCapacityUnits"].as_i64().unwrap_or(0),
    )
}

fn indexes(table: &Value) -> Vec<Value> {
    table["GlobalSecondaryIndexes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn update(table: &str, what: String, mut body: Value) -> Next {
    body["TableName"] = Value::from(table);
    Next::Make(Change {
        operation: "UpdateTable",
        body,
        what,
    })
}

/// The first change that brings the live table (`table` as DescribeTable
/// shows it, `live_ttl`, `live_tags`) to `desired` (a CreateTable body) and
/// `ttl`; or why to wait (a change still in progress).
pub fn next_change(
    desired: &Value,
    ttl: Option<&partita_topology::TimeToLive>,
    table: &Value,
    live_ttl: &Value,
    live_tags: &[Value],
) -> Next {
    let name = text(&desired["TableName"], "");
    let status = text(&table["TableStatus"], "ACTIVE");
    if status != "ACTIVE" {
        return Next::Wait(format!("the table is {status}"));
    }
    let live_indexes = indexes(table);
    if let Some(busy) = live_indexes
        .iter()
        .find(|i| text(&i["IndexStatus"], "ACTIVE") != "ACTIVE")
    {
        return Next::Wait(format!(
            "index {} is {}",
            text(&busy["IndexName"], "?"),
            text(&busy["IndexStatus"], "?")
        ));
    }
    let wanted_indexes = indexes(desired);
    let named = |list: &[Value], n: &str| list.iter().find(|i| i["IndexName"] == n).cloned();

    // Indexes the spec no longer has go first.
    if let Some(gone) = live_indexes
        .iter()
        .find(|i| named(&wanted_indexes, text(&i["IndexName"], "")).is_none())
    {
        let index = text(&gone["IndexName"], "");
        return update(
            name,
            format!("deleting index {index}"),
            json!({"GlobalSecondaryIndexUpdates": [{"Delete": {"IndexName": index}}]}),
        );
    }

    // Billing mode and throughput (the kept indexes' throughput with them
    // when the table becomes provisioned, as DynamoDB requires).
    let mode = text(&desired["BillingMode"], "PROVISIONED");
    let live_mode = text(&table["BillingModeSummary"]["BillingMode"], "PROVISIONED");
    let provisioned = mode == "PROVISIONED";
    let throughput_differs = provisioned
        && units(&desired["ProvisionedThroughput"]) != units(&table["ProvisionedThroughput"]);
    if mode != live_mode || throughput_differs {
        let mut body = json!({"BillingMode": mode});
        if provisioned {
            body["ProvisionedThroughput"] = desired["ProvisionedThroughput"].clone();
            if live_mode != "PROVISIONED" {
                let kept: Vec<Value> = live_indexes
                    .iter()
                    .filter_map(|i| named(&wanted_indexes, text(&i["IndexName"], "")))
                    .map(|i| {
                        json!({"Update": {"IndexName": i["IndexName"],
                            "ProvisionedThroughput": i["ProvisionedThroughput"]}})
                    })
                    .collect();
                if !kept.is_empty() {
                    body["GlobalSecondaryIndexUpdates"] = Value::Array(kept);
                }
            }
        }
        let what = if provisioned {
            let (r, w) = units(&desired["ProvisionedThroughput"]);
            format!("setting billing mode {mode} with {r} RCU / {w} WCU")
        } else {
            format!("setting billing mode {mode}")
        };
        return update(name, what, body);
    }

    // New indexes, one at a time (DynamoDB backfills each).
    if let Some(new) = wanted_indexes
        .iter()
        .find(|i| named(&live_indexes, text(&i["IndexName"], "")).is_none())
    {
        let mut create = json!({"IndexName": new["IndexName"], "KeySchema": new["KeySchema"],
            "Projection": new["Projection"]});
        if provisioned && new.get("ProvisionedThroughput").is_some() {
            create["ProvisionedThroughput"] = new["ProvisionedThroughput"].clone();
        }
        return update(
            name,
            format!("creating index {}", text(&new["IndexName"], "")),
            json!({"AttributeDefinitions": desired["AttributeDefinitions"],
                "GlobalSecondaryIndexUpdates": [{"Create": create}]}),
        );
    }
    if provisioned {
        for wanted in &wanted_indexes {
            let index = text(&wanted["IndexName"], "");
            let live = named(&live_indexes, index).unwrap_or(Value::Null);
            if units(&wanted["ProvisionedThroughput"]) != units(&live["ProvisionedThroughput"]) {
                return update(
                    name,
                    format!("setting the throughput of index {index}"),
                    json!({"GlobalSecondaryIndexUpdates": [{"Update": {"IndexName": index,
                        "ProvisionedThroughput": wanted["ProvisionedThroughput"]}}]}),
                );
            }
        }
    }

    // The stream: a new view type needs the stream disabled first.
    let stream_of = |spec: &Value| {
        let enabled = spec["StreamEnabled"].as_bool().unwrap_or(false);
        (
            enabled,
            enabled.then(|| text(&spec["StreamViewType"], "").to_string()),
        )
    };
    let wanted_stream = stream_of(&desired["StreamSpecification"]);
    let live_stream = stream_of(&table["StreamSpecification"]);
    if wanted_stream != live_stream {
        let (body, what) = if live_stream.0 {
            (
                json!({"StreamEnabled": false}),
                "disabling the stream".to_string(),
            )
        } else {
            (
                json!({"StreamEnabled": true, "StreamViewType": wanted_stream.1}),
                format!(
                    "enabling the stream ({})",
                    wanted_stream.1.unwrap_or_default()
                ),
            )
        };
        return update(name, what, json!({"StreamSpecification": body}));
    }

    let protection = desired["DeletionProtectionEnabled"]
        .as_bool()
        .unwrap_or(false);
    if protection
        != table["DeletionProtectionEnabled"]
            .as_bool()
            .unwrap_or(false)
    {
        return update(
            name,
            format!("setting deletion protection {protection}"),
            json!({"DeletionProtectionEnabled": protection}),
        );
    }

    let class = text(&desired["TableClass"], "STANDARD");
    if class != text(&table["TableClassSummary"]["TableClass"], "STANDARD") {
        return update(
            name,
            format!("setting table class {class}"),
            json!({"TableClass": class}),
        );
    }

    // Time to live: another attribute needs it disabled first.
    let live_status = text(&live_ttl["TimeToLiveStatus"], "DISABLED");
    let live_attribute = text(&live_ttl["AttributeName"], "");
    if live_status == "ENABLING" || live_status == "DISABLING" {
        return Next::Wait(format!("time to live is {live_status}"));
    }
    let wanted_ttl = ttl.filter(|t| t.enabled);
    let ttl_change = |enabled: bool, attribute: &str, what: String| {
        Next::Make(Change {
            operation: "UpdateTimeToLive",
            body: json!({"TableName": name, "TimeToLiveSpecification":
                {"Enabled": enabled, "AttributeName": attribute}}),
            what,
        })
    };
    match (wanted_ttl, live_status == "ENABLED") {
        (Some(t), true) if t.attribute_name == live_attribute => {}
        (_, true) => {
            return ttl_change(false, live_attribute, "disabling time to live".into());
        }
        (Some(t), false) => {
            return ttl_change(
                true,
                &t.attribute_name,
                format!("enabling time to live on {}", t.attribute_name),
            );
        }
        (None, false) => {}
    }

    // Tags: the spec's, no more.
    let wanted_tags = desired["Tags"].as_array().cloned().unwrap_or_default();
    let value_of = |list: &[Value], key: &Value| {
        list.iter()
            .find(|t| &t["Key"] == key)
            .map(|t| t["Value"].clone())
    };
    let missing: Vec<Value> = wanted_tags
        .iter()
        .filter(|t| value_of(live_tags, &t["Key"]).as_ref() != Some(&t["Value"]))
        .map(|t| json!({"Key": t["Key"], "Value": t["Value"]}))
        .collect();
    let arn = table["TableArn"].clone();
    if !missing.is_empty() {
        return Next::Make(Change {
            operation: "TagResource",
            body: json!({"ResourceArn": arn, "Tags": missing}),
            what: format!("tagging ({} tags)", missing.len()),
        });
    }
    let extra: Vec<Value> = live_tags
        .iter()
        .filter(|t| value_of(&wanted_tags, &t["Key"]).is_none())
        .map(|t| t["Key"].clone())
        .collect();
    if !extra.is_empty() {
        return Next::Make(Change {
            operation: "UntagResource",
            body: json!({"ResourceArn": arn, "TagKeys": extra}),
            what: format!("removing {} tags", extra.len()),
        });
    }
    Next::InSync
}

/// Sets a Table's status from where its definition stands: `UPDATING` and
/// Progressing while DynamoDB makes a change, Progressing while the data
/// plane cannot be asked, Degraded when DynamoDB refused a change (the
/// spec asks for something DynamoDB does not allow). In sync, the status
/// is left as the Kubernetes objects made it.
pub fn apply_outcome(
    status: &mut crate::crd::table::TableStatus,
    outcome: &Outcome,
    generation: i64,
    now: k8s_openapi::jiff::Timestamp,
) {
    use crate::status::{set_condition, DEGRADED, PROGRESSING};
    let conditions = &mut status.conditions;
    match outcome {
        // Left as the Kubernetes objects made it (Degraded "AsExpected"
        // clears a refusal of an earlier spec).
        Outcome::InSync => {}
        Outcome::Changed(what) | Outcome::InProgress(what) => {
            status.table_status = Some("UPDATING".into());
            set_condition(
                conditions,
                PROGRESSING,
                true,
                "Updating",
                what.clone(),
                generation,
                now,
            );
        }
        Outcome::Unavailable(why) => {
            set_condition(
                conditions,
                PROGRESSING,
                true,
                "DefinitionPending",
                why.clone(),
                generation,
                now,
            );
        }
        Outcome::Refused(message) => {
            set_condition(
                conditions,
                PROGRESSING,
                false,
                DEFINITION_REFUSED,
                message.clone(),
                generation,
                now,
            );
            set_condition(
                conditions,
                DEGRADED,
                true,
                DEFINITION_REFUSED,
                message.clone(),
                generation,
                now,
            );
        }
    }
}

/// The condition reason of a change DynamoDB refused.
pub const DEFINITION_REFUSED: &str = "DefinitionChangeRefused";

#[cfg(test)]
mod tests {
    use super::*;

    fn orders() -> Value {
        json!({"TableName": "Orders", "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                     {"AttributeName": "color", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}]})
    }

    fn live() -> Value {
        json!({"TableName": "Orders", "TableStatus": "ACTIVE",
            "TableArn": "arn:aws:dynamodb:us-west-2:123456789012:table/Orders",
            "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
            "ProvisionedThroughput": {"ReadCapacityUnits": 0, "WriteCapacityUnits": 0}})
    }

    fn disabled() -> Value {
        json!({"TimeToLiveStatus": "DISABLED"})
    }

    fn make(next: Next) -> Change {
        match next {
            Next::Make(change) => change,
            other => panic!("expected a change, got {other:?}"),
        }
    }

    #[test]
    fn a_table_matching_its_spec_is_in_sync() {
        assert_eq!(
            next_change(&orders(), None, &live(), &disabled(), &[]),
            Next::InSync
        );
    }

    #[test]
    fn changes_in_progress_are_waited_for() {
        let mut table = live();
        table["TableStatus"] = json!("UPDATING");
        assert_eq!(
            next_change(&orders(), None, &table, &disabled(), &[]),
            Next::Wait("the table is UPDATING".into())
        );
        let mut table = live();
        table["GlobalSecondaryIndexes"] =
            json!([{"IndexName": "by-color", "IndexStatus": "CREATING"}]);
        assert_eq!(
            next_change(&orders(), None, &table, &disabled(), &[]),
            Next::Wait("index by-color is CREATING".into())
        );
    }

    #[test]
    fn indexes_are_created_and_deleted_one_at_a_time() {
        let mut desired = orders();
        desired["GlobalSecondaryIndexes"] = json!([
            {"IndexName": "by-color", "KeySchema": [{"AttributeName": "color", "KeyType": "HASH"}],
             "Projection": {"ProjectionType": "ALL"}},
            {"IndexName": "by-pk", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
             "Projection": {"ProjectionType": "KEYS_ONLY"}}]);
        let change = make(next_change(&desired, None, &live(), &disabled(), &[]));
        assert_eq!(change.operation, "UpdateTable");
        assert_eq!(
            change.body,
            json!({"TableName": "Orders", "AttributeDefinitions": desired["AttributeDefinitions"],
                "GlobalSecondaryIndexUpdates": [{"Create": {"IndexName": "by-color",
                    "KeySchema": [{"AttributeName": "color", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "ALL"}}}]})
        );
        // An index the spec dropped goes before anything else.
        let mut table = live();
        table["GlobalSecondaryIndexes"] = json!([{"IndexName": "old", "IndexStatus": "ACTIVE"}]);
        let change = make(next_change(&desired, None, &table, &disabled(), &[]));
        assert_eq!(
            change.body["GlobalSecondaryIndexUpdates"],
            json!([{"Delete": {"IndexName": "old"}}])
        );
    }

    #[test]
    fn becoming_provisioned_carries_the_kept_indexes_throughput() {
        let mut desired = orders();
        desired["BillingMode"] = json!("PROVISIONED");
        desired["ProvisionedThroughput"] = json!({"ReadCapacityUnits": 5, "WriteCapacityUnits": 6});
        desired["GlobalSecondaryIndexes"] = json!([{"IndexName": "by-color",
            "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 2}}]);
        let mut table = live();
        table["GlobalSecondaryIndexes"] =
            json!([{"IndexName": "by-color", "IndexStatus": "ACTIVE"}]);
        let change = make(next_change(&desired, None, &table, &disabled(), &[]));
        assert_eq!(
            change.what,
            "setting billing mode PROVISIONED with 5 RCU / 6 WCU"
        );
        assert_eq!(
            change.body,
            json!({"TableName": "Orders", "BillingMode": "PROVISIONED",
                "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 6},
                "GlobalSecondaryIndexUpdates": [{"Update": {"IndexName": "by-color",
                    "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 2}}}]})
        );
    }

    #[test]
    fn a_new_stream_view_disables_the_stream_first() {
        let mut desired = orders();
        desired["StreamSpecification"] =
            json!({"StreamEnabled": true, "StreamViewType": "KEYS_ONLY"});
        let mut table = live();
        table["StreamSpecification"] =
            json!({"StreamEnabled": true, "StreamViewType": "NEW_IMAGE"});
        let change = make(next_change(&desired, None, &table, &disabled(), &[]));
        assert_eq!(
            change.body["StreamSpecification"],
            json!({"StreamEnabled": false})
        );
        table["StreamSpecification"] = Value::Null;
        let change = make(next_change(&desired, None, &table, &disabled(), &[]));
        assert_eq!(
            change.body["StreamSpecification"],
            json!({"StreamEnabled": true, "StreamViewType": "KEYS_ONLY"})
        );
    }

    #[test]
    fn protection_class_time_to_live_and_tags_follow_the_spec() {
        let mut desired = orders();
        desired["DeletionProtectionEnabled"] = json!(true);
        let change = make(next_change(&desired, None, &live(), &disabled(), &[]));
        assert_eq!(
            change.body,
            json!({"TableName": "Orders", "DeletionProtectionEnabled": true})
        );

        let mut desired = orders();
        desired["TableClass"] = json!("STANDARD_INFREQUENT_ACCESS");
        let change = make(next_change(&desired, None, &live(), &disabled(), &[]));
        assert_eq!(change.body["TableClass"], "STANDARD_INFREQUENT_ACCESS");

        let ttl = partita_topology::TimeToLive {
            attribute_name: "expiresAt".into(),
            enabled: true,
        };
        let change = make(next_change(
            &orders(),
            Some(&ttl),
            &live(),
            &disabled(),
            &[],
        ));
        assert_eq!(change.operation, "UpdateTimeToLive");
        assert_eq!(
            change.body["TimeToLiveSpecification"],
            json!({"Enabled": true, "AttributeName": "expiresAt"})
        );
        let other = json!({"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"});
        let change = make(next_change(&orders(), Some(&ttl), &live(), &other, &[]));
        assert_eq!(
            change.body["TimeToLiveSpecification"],
            json!({"Enabled": false, "AttributeName": "ttl"})
        );
        let change = make(next_change(&orders(), None, &live(), &other, &[]));
        assert_eq!(change.what, "disabling time to live");
        let enabling = json!({"TimeToLiveStatus": "ENABLING", "AttributeName": "expiresAt"});
        assert_eq!(
            next_change(&orders(), Some(&ttl), &live(), &enabling, &[]),
            Next::Wait("time to live is ENABLING".into())
        );

        let mut desired = orders();
        desired["Tags"] = json!([{"Key": "app", "Value": "shop"}, {"Key": "team", "Value": "a"}]);
        let live_tags = [
            json!({"Key": "app", "Value": "shop"}),
            json!({"Key": "old", "Value": "x"}),
        ];
        let change = make(next_change(
            &desired,
            None,
            &live(),
            &disabled(),
            &live_tags,
        ));
        assert_eq!(change.operation, "TagResource");
        assert_eq!(change.body["Tags"], json!([{"Key": "team", "Value": "a"}]));
        let live_tags = [
            json!({"Key": "app", "Value": "shop"}),
            json!({"Key": "team", "Value": "a"}),
            json!({"Key": "old", "Value": "x"}),
        ];
        let change = make(next_change(
            &desired,
            None,
            &live(),
            &disabled(),
            &live_tags,
        ));
        assert_eq!(change.operation, "UntagResource");
        assert_eq!(change.body["TagKeys"], json!(["old"]));
    }
}
