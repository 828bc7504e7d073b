//! GlobalTable controller tests on kube-fake-client, with a fake replication
//! status source standing in for the gateway's `GET /replication`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use partita_operator::config::OperatorConfig;
use partita_operator::controller::access_policy::GatewayTarget;
use partita_operator::controller::global_table::{
    reconcile_global_tables, render, Rendered, REQUEUE_ATTENTION, REQUEUE_SETTLED,
};
use partita_operator::controller::Context;
use partita_operator::crd::global_table::{GlobalTable, GlobalTableStatus};
use partita_operator::crd::Table;
use partita_operator::global::source::{ReplicationStatusSource, StatusError, StatusFuture};
use partita_operator::metrics::Metrics;
use partita_topology::replication::{
    ReplicaState, ReplicationFile, ReplicationStatus, TableReplication, FILE_NAME, SECRET_NAME,
};
use serde_json::json;

const NS: &str = "shop";
const SYSTEM: &str = "partita-system";

/// The gateway's status document as a test sets it; Err = unreadable.
#[derive(Default)]
struct FakeStatus(Mutex<Option<Result<ReplicationStatus, u16>>>);

impl FakeStatus {
    fn set(&self, doc: Result<ReplicationStatus, u16>) {
        *self.0.lock().unwrap() = Some(doc);
    }
}

impl ReplicationStatusSource for FakeStatus {
    fn fetch_status(&self) -> StatusFuture<'_> {
        let current = self.0.lock().unwrap().clone();
        Box::pin(async move {
            match current {
                Some(Ok(doc)) => Ok(doc),
                Some(Err(status)) => Err(StatusError::Http {
                    url: "http://partita-gateway.partita-system.svc:8001/replication".into(),
                    status,
                }),
                None => Err(StatusError::NotConfigured),
            }
        })
    }
}

struct Env {
    client: Client,
    ctx: Arc<Context>,
    status: FakeStatus,
}

impl Env {
    async fn new() -> Env {
        let client = kube_fake_client::ClientBuilder::new()
            .with_resource::<Table>()
            .with_resource::<GlobalTable>()
            .with_status_subresource::<Table>()
            .with_status_subresource::<GlobalTable>()
            .build()
            .await
            .unwrap();
        let ctx = Context::new(
            client.clone(),
            OperatorConfig::default(),
            Metrics::new().unwrap(),
        );
        Env {
            client,
            ctx,
            status: FakeStatus::default(),
        }
    }

    async fn reconcile(&self) -> Rendered {
        let target = GatewayTarget {
            namespace: SYSTEM.into(),
            name: "partita-gateway".into(),
        };
        reconcile_global_tables(&self.ctx, &target, &self.status)
            .await
            .unwrap()
    }

    async fn table(&self, name: &str, table_name: &str) {
        let t: Table = serde_yaml::from_str(&format!(
            r#"
apiVersion: partita.dev/v1alpha1
kind: Table
metadata: {{name: {name}, namespace: {NS}}}
spec:
  tableName: {table_name}
  attributeDefinitions: [{{attributeName: pk, attributeType: S}}]
  keySchema: [{{attributeName: pk, keyType: HASH}}]
  billingMode: PAY_PER_REQUEST
"#
        ))
        .unwrap();
        Api::<Table>::namespaced(self.client.clone(), NS)
            .create(&PostParams::default(), &t)
            .await
            .unwrap();
    }

    async fn secret(&self, name: &str, id: &str, key: Option<&str>) {
        let mut data = BTreeMap::from([(
            "accessKeyId".to_string(),
            ByteString(id.as_bytes().to_vec()),
        )]);
        if let Some(key) = key {
            data.insert(
                "secretAccessKey".to_string(),
                ByteString(key.as_bytes().to_vec()),
            );
        }
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(NS.into()),
                ..ObjectMeta::default()
            },
            data: Some(data),
            ..Secret::default()
        };
        let api = Api::<Secret>::namespaced(self.client.clone(), NS);
        if api.get_opt(name).await.unwrap().is_some() {
            api.replace(name, &PostParams::default(), &secret)
                .await
                .unwrap();
        } else {
            api.create(&PostParams::default(), &secret).await.unwrap();
        }
    }

    async fn global_table(&self, yaml: &str) {
        let gt: GlobalTable = serde_yaml::from_str(yaml).unwrap();
        self.global_tables()
            .create(&PostParams::default(), &gt)
            .await
            .unwrap();
    }

    fn global_tables(&self) -> Api<GlobalTable> {
        Api::namespaced(self.client.clone(), NS)
    }

    async fn status_of(&self, name: &str) -> GlobalTableStatus {
        self.global_tables()
            .get(name)
            .await
            .unwrap()
            .status
            .unwrap_or_default()
    }

    /// The replication file the gateway would read, validated as the data
    /// plane validates it.
    async fn file(&self) -> ReplicationFile {
        let secret = Api::<Secret>::namespaced(self.client.clone(), SYSTEM)
            .get(SECRET_NAME)
            .await
            .unwrap();
        let labels = secret.metadata.labels.clone().unwrap();
        assert_eq!(labels["app.kubernetes.io/managed-by"], "partita-operator");
        assert_eq!(labels["app.kubernetes.io/component"], "gateway");
        let bytes = &secret.data.unwrap()[FILE_NAME].0;
        let file: ReplicationFile = serde_json::from_slice(bytes).unwrap();
        file.validate(Some("us-east-1")).unwrap();
        file
    }

    async fn events(&self) -> Vec<(String, String, String)> {
        Api::<Event>::namespaced(self.client.clone(), NS)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|e| {
                (
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.note.unwrap_or_default(),
                )
            })
            .collect()
    }
}

const ORDERS_GT: &str = r#"
apiVersion: partita.dev/v1alpha1
kind: GlobalTable
metadata: {name: orders, namespace: shop}
spec:
  tableRef: {name: orders}
  inboundCredentialsSecretRef: {name: inbound}
  replicas:
    - {regionName: eu-west-1, endpoint: "https://eu.example:8000", credentialsSecretRef: {name: eu-creds}}
    - {regionName: ap-south-1, endpoint: "http://ap.example:8000", credentialsSecretRef: {name: ap-creds}}
"#;

fn replica(region: &str, status: &str, reachable: bool, lag: f64, pending: u64) -> ReplicaState {
    ReplicaState {
        region_name: region.into(),
        replica_status: status.into(),
        reachable,
        lag_seconds: lag,
        pending_changes: pending,
        last_error: (!reachable).then(|| "connect: connection refused".to_string()),
    }
}

fn report(table: &str, replicas: Vec<ReplicaState>) -> ReplicationStatus {
    ReplicationStatus {
        region: "us-east-1".into(),
        tables: vec![TableReplication {
            table_name: table.into(),
            replicas,
        }],
    }
}

fn condition(s: &GlobalTableStatus, type_: &str) -> (String, String) {
    let c = s
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {s:#?}"));
    (c.status.clone(), c.reason.clone())
}

/// Two replicas, credentials from the Secrets, the gateway reporting both
/// ACTIVE and reachable.
async fn two_region_setup() -> Env {
    let env = Env::new().await;
    env.table("orders", "Orders").await;
    env.secret("eu-creds", "AKIAEU0001", Some("eu-secret"))
        .await;
    env.secret("ap-creds", "AKIAAP0001", Some("ap-secret"))
        .await;
    env.secret("inbound", "AKIAIN0001", Some("in-secret")).await;
    env.global_table(ORDERS_GT).await;
    env
}

#[tokio::test]
async fn two_replicas_render_the_exact_file_and_become_ready() {
    let env = two_region_setup().await;
    env.status.set(Ok(report(
        "Orders",
        vec![
            replica("eu-west-1", "ACTIVE", true, 0.0, 0),
            replica("ap-south-1", "ACTIVE", true, 0.2, 1),
        ],
    )));
    let rendered = env.reconcile().await;

    let file = env.file().await;
    assert_eq!(
        serde_json::to_value(&file).unwrap(),
        json!({
            "formatVersion": 1,
            "peers": [
                {"region": "ap-south-1", "endpoint": "http://ap.example:8000", "accessKeyId": "AKIAAP0001", "secretAccessKey": "ap-secret"},
                {"region": "eu-west-1", "endpoint": "https://eu.example:8000", "accessKeyId": "AKIAEU0001", "secretAccessKey": "eu-secret"},
            ],
            "inbound": [{"accessKeyId": "AKIAIN0001", "secretAccessKey": "in-secret"}],
            "tables": {"Orders": ["ap-south-1", "eu-west-1"]},
        })
    );
    // Byte-exact with the contract's canonical rendering.
    let secret = Api::<Secret>::namespaced(env.client.clone(), SYSTEM)
        .get(SECRET_NAME)
        .await
        .unwrap();
    assert_eq!(
        secret.data.unwrap()[FILE_NAME].0,
        file.to_json().into_bytes()
    );

    let s = env.status_of("orders").await;
    assert_eq!(s.global_table_status.as_deref(), Some("ACTIVE"));
    assert_eq!(s.table_name.as_deref(), Some("Orders"));
    assert_eq!(
        condition(&s, "Ready"),
        ("True".into(), "Replicating".into())
    );
    assert_eq!(
        condition(&s, "Degraded"),
        ("False".into(), "AsExpected".into())
    );
    assert_eq!(s.replicas.len(), 2);
    assert_eq!(s.replicas[1].region_name, "ap-south-1");
    assert_eq!(s.replicas[1].replica_status.as_deref(), Some("ACTIVE"));
    assert_eq!(s.replicas[1].pending_changes, Some(1));
    assert_eq!(rendered.requeue, REQUEUE_SETTLED);
    assert!(env.events().await.contains(&(
        "Normal".into(),
        "Configured".into(),
        "table Orders is replicated to eu-west-1, ap-south-1".into()
    )));

    // Nothing changed: the status is not written again.
    let before = env.global_tables().get("orders").await.unwrap();
    env.reconcile().await;
    let after = env.global_tables().get("orders").await.unwrap();
    assert_eq!(
        before.metadata.resource_version,
        after.metadata.resource_version
    );

    // A rotated key is re-rendered.
    env.secret("eu-creds", "AKIAEU0002", Some("eu-secret-2"))
        .await;
    env.reconcile().await;
    let file = env.file().await;
    assert_eq!(
        file.peer("eu-west-1").unwrap().credentials.access_key_id,
        "AKIAEU0002"
    );
    // Nothing changed for users: no second Configured event.
    let configured = env
        .events()
        .await
        .iter()
        .filter(|e| e.1 == "Configured")
        .count();
    assert_eq!(configured, 1);
}

#[tokio::test]
async fn unreachable_peer_degrades_with_its_lag() {
    let env = two_region_setup().await;
    env.status.set(Ok(report(
        "Orders",
        vec![
            replica("eu-west-1", "ACTIVE", true, 0.0, 0),
            replica("ap-south-1", "ACTIVE", false, 93.5, 412),
        ],
    )));
    let rendered = env.reconcile().await;
    let s = env.status_of("orders").await;
    assert_eq!(
        condition(&s, "Degraded"),
        ("True".into(), "PeerUnreachable".into())
    );
    assert_eq!(
        condition(&s, "Ready"),
        ("False".into(), "PeerUnreachable".into())
    );
    let ap = s
        .replicas
        .iter()
        .find(|r| r.region_name == "ap-south-1")
        .unwrap();
    assert_eq!(ap.reachable, Some(false));
    assert_eq!(ap.lag_seconds, Some(93.5));
    assert_eq!(ap.pending_changes, Some(412));
    assert_eq!(ap.message.as_deref(), Some("connect: connection refused"));
    assert_eq!(rendered.requeue, REQUEUE_ATTENTION);
    assert!(env
        .events()
        .await
        .iter()
        .any(|e| e.0 == "Warning" && e.1 == "PeerUnreachable" && e.2.contains("lag 93.5 s")));
    // Still rendered: an unreachable peer is the data plane's to retry.
    assert_eq!(env.file().await.peers.len(), 2);

    // Recovers.
    env.status.set(Ok(report(
        "Orders",
        vec![
            replica("eu-west-1", "ACTIVE", true, 0.0, 0),
            replica("ap-south-1", "ACTIVE", true, 0.0, 0),
        ],
    )));
    env.reconcile().await;
    let s = env.status_of("orders").await;
    assert_eq!(
        condition(&s, "Ready"),
        ("True".into(), "Replicating".into())
    );
    assert_eq!(
        condition(&s, "Degraded"),
        ("False".into(), "AsExpected".into())
    );
}

#[tokio::test]
async fn creating_replicas_are_not_ready_and_requeue_soon() {
    let env = two_region_setup().await;
    env.status.set(Ok(report(
        "Orders",
        vec![replica("eu-west-1", "CREATING", true, 4.0, 1000)],
    )));
    let rendered = env.reconcile().await;
    let s = env.status_of("orders").await;
    assert_eq!(s.global_table_status.as_deref(), Some("CREATING"));
    assert_eq!(
        condition(&s, "Ready"),
        ("False".into(), "ReplicasNotActive".into())
    );
    // ap-south-1 is not in the report: nothing is invented for it.
    let ap = &s.replicas[1];
    assert_eq!(
        (ap.replica_status.as_ref(), ap.reachable, ap.lag_seconds),
        (None, None, None)
    );
    assert_eq!(rendered.requeue, REQUEUE_ATTENTION);
    assert_eq!(rendered.requeue, Duration::from_secs(15));
}

#[tokio::test]
async fn unreadable_status_is_reported_as_unknown() {
    let env = two_region_setup().await;
    env.status.set(Err(404));
    let rendered = env.reconcile().await;
    let s = env.status_of("orders").await;
    assert_eq!(
        condition(&s, "Ready"),
        ("Unknown".into(), "StatusUnavailable".into())
    );
    assert_eq!(
        condition(&s, "Degraded"),
        ("Unknown".into(), "StatusUnavailable".into())
    );
    let message = &s
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .message;
    assert!(message.contains("answered HTTP 404"), "{message}");
    assert!(s
        .replicas
        .iter()
        .all(|r| r.replica_status.is_none() && r.reachable.is_none()));
    assert_eq!(s.global_table_status.as_deref(), Some("CREATING"));
    assert_eq!(rendered.requeue, REQUEUE_ATTENTION);
    // The file is rendered regardless: status is only observation.
    assert_eq!(env.file().await.tables.len(), 1);
}

#[tokio::test]
async fn missing_secret_degrades_and_renders_nothing_for_it() {
    let env = Env::new().await;
    env.table("orders", "Orders").await;
    env.secret("eu-creds", "AKIAEU0001", Some("eu-secret"))
        .await;
    // ap-creds absent, inbound lacks its secret key.
    env.secret("inbound", "AKIAIN0001", None).await;
    env.global_table(ORDERS_GT).await;
    env.status.set(Ok(report("Orders", vec![])));
    env.reconcile().await;

    assert_eq!(env.file().await, ReplicationFile::new());
    let s = env.status_of("orders").await;
    assert_eq!(s.global_table_status.as_deref(), Some("INACCESSIBLE"));
    assert_eq!(
        condition(&s, "Degraded"),
        ("True".into(), "SecretMissing".into())
    );
    assert_eq!(
        condition(&s, "Ready"),
        ("False".into(), "SecretMissing".into())
    );
    let message = &s
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .unwrap()
        .message;
    assert_eq!(
        message,
        "credentials Secret problem: Secret ap-creds does not exist; Secret inbound has no secretAccessKey; nothing is replicated"
    );
    let warnings: Vec<_> = env
        .events()
        .await
        .into_iter()
        .filter(|e| e.0 == "Warning")
        .map(|e| e.1)
        .collect();
    assert_eq!(warnings, ["SecretMissing"]);

    // Reconciling again does not repeat the Warning.
    env.reconcile().await;
    assert_eq!(
        env.events()
            .await
            .iter()
            .filter(|e| e.1 == "SecretMissing")
            .count(),
        1
    );

    // The Secrets appear: rendered.
    env.secret("ap-creds", "AKIAAP0001", Some("ap-secret"))
        .await;
    env.secret("inbound", "AKIAIN0001", Some("in-secret")).await;
    env.status.set(Ok(report(
        "Orders",
        vec![
            replica("eu-west-1", "ACTIVE", true, 0.0, 0),
            replica("ap-south-1", "ACTIVE", true, 0.0, 0),
        ],
    )));
    env.reconcile().await;
    assert_eq!(env.file().await.peers.len(), 2);
    let s = env.status_of("orders").await;
    assert_eq!(s.global_table_status.as_deref(), Some("ACTIVE"));
    assert_eq!(
        condition(&s, "Degraded"),
        ("False".into(), "AsExpected".into())
    );
}

#[tokio::test]
async fn missing_table_is_table_not_found() {
    let env = Env::new().await;
    env.secret("eu-creds", "AKIAEU0001", Some("eu-secret"))
        .await;
    env.secret("ap-creds", "AKIAAP0001", Some("ap-secret"))
        .await;
    env.secret("inbound", "AKIAIN0001", Some("in-secret")).await;
    env.global_table(ORDERS_GT).await;
    env.status.set(Ok(report("Orders", vec![])));
    env.reconcile().await;
    assert_eq!(env.file().await, ReplicationFile::new());
    let s = env.status_of("orders").await;
    assert_eq!(
        condition(&s, "Degraded"),
        ("True".into(), "TableNotFound".into())
    );
    assert_eq!(s.global_table_status.as_deref(), Some("INACCESSIBLE"));
    assert!(env
        .events()
        .await
        .iter()
        .any(|e| e.0 == "Warning" && e.1 == "TableNotFound"));

    env.table("orders", "Orders").await;
    env.reconcile().await;
    assert_eq!(
        env.file().await.tables.keys().collect::<Vec<_>>(),
        ["Orders"]
    );
}

#[tokio::test]
async fn a_conflicting_region_is_refused_on_the_newer_global_table() {
    let env = two_region_setup().await;
    env.status.set(Ok(report(
        "Orders",
        vec![
            replica("eu-west-1", "ACTIVE", true, 0.0, 0),
            replica("ap-south-1", "ACTIVE", true, 0.0, 0),
        ],
    )));
    env.reconcile().await;
    // A second table names eu-west-1 with another endpoint.
    env.table("carts", "Carts").await;
    env.global_table(
        r#"
apiVersion: partita.dev/v1alpha1
kind: GlobalTable
metadata: {name: zz-carts, namespace: shop}
spec:
  tableRef: {name: carts}
  replicas:
    - {regionName: eu-west-1, endpoint: "https://other-eu.example", credentialsSecretRef: {name: eu-creds}}
"#,
    )
    .await;
    env.reconcile().await;
    let file = env.file().await;
    assert_eq!(file.tables.keys().collect::<Vec<_>>(), ["Orders"]);
    assert_eq!(
        file.peer("eu-west-1").unwrap().endpoint,
        "https://eu.example:8000"
    );
    let s = env.status_of("zz-carts").await;
    assert_eq!(
        condition(&s, "Degraded"),
        ("True".into(), "RegionConflict".into())
    );
    assert_eq!(s.global_table_status.as_deref(), Some("INVALID"));
    assert!(env
        .events()
        .await
        .iter()
        .any(|e| e.0 == "Warning" && e.1 == "RegionConflict" && e.2.contains("shop/orders")));
    // The older one is untouched.
    let s = env.status_of("orders").await;
    assert_eq!(
        condition(&s, "Ready"),
        ("True".into(), "Replicating".into())
    );

    // Same endpoint and credentials: the region is shared, both render.
    let patch = json!({"spec": {"replicas": [
        {"regionName": "eu-west-1", "endpoint": "https://eu.example:8000", "credentialsSecretRef": {"name": "eu-creds"}}
    ]}});
    env.global_tables()
        .patch("zz-carts", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    env.reconcile().await;
    let file = env.file().await;
    assert_eq!(file.peers.len(), 2);
    assert_eq!(file.tables["Carts"], ["eu-west-1"]);
}

#[tokio::test]
async fn deleting_a_global_table_removes_its_table_from_the_file() {
    let env = two_region_setup().await;
    env.table("carts", "Carts").await;
    env.global_table(
        r#"
apiVersion: partita.dev/v1alpha1
kind: GlobalTable
metadata: {name: carts, namespace: shop}
spec:
  tableRef: {name: carts}
  replicas:
    - {regionName: eu-west-1, endpoint: "https://eu.example:8000", credentialsSecretRef: {name: eu-creds}}
"#,
    )
    .await;
    env.status.set(Ok(report("Orders", vec![])));
    env.reconcile().await;
    assert_eq!(
        env.file().await.tables.keys().collect::<Vec<_>>(),
        ["Carts", "Orders"]
    );

    env.global_tables()
        .delete("orders", &DeleteParams::default())
        .await
        .unwrap();
    env.reconcile().await;
    let file = env.file().await;
    assert_eq!(file.tables.keys().collect::<Vec<_>>(), ["Carts"]);
    // ap-south-1 was only Orders' peer; the inbound key was only its too.
    assert_eq!(
        file.peers
            .iter()
            .map(|p| p.region.as_str())
            .collect::<Vec<_>>(),
        ["eu-west-1"]
    );
    assert!(file.inbound.is_empty());

    env.global_tables()
        .delete("carts", &DeleteParams::default())
        .await
        .unwrap();
    env.reconcile().await;
    assert_eq!(env.file().await, ReplicationFile::new());
}

#[tokio::test]
async fn renders_are_counted_in_the_operator_metrics() {
    let env = two_region_setup().await;
    env.status.set(Err(503));
    let target = GatewayTarget {
        namespace: SYSTEM.into(),
        name: "partita-gateway".into(),
    };
    render(&env.ctx, &target, &env.status).await.unwrap();
    let text = env.ctx.metrics.render();
    assert!(
        text.contains(
            "partita_operator_reconciles_total{controller=\"global-table\",result=\"ok\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains(
        "partita_operator_reconcile_duration_seconds_count{controller=\"global-table\"} 1"
    ));
}
