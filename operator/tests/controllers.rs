//! The operator's production controller wiring (`partita_operator::run`)
//! against the simulated API of `partita-kubesim`, whose watches deliver
//! changes: a Table created after the controllers started is reconciled
//! into its objects without any direct call, and a later edit of the
//! Table reaches them too.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use partita_kubesim::KubeSim;
use partita_operator::config::OperatorConfig;
use partita_operator::controller::access_policy::GatewayTarget;
use partita_operator::controller::Context;
use partita_operator::crd::access_policy::AccessPolicy;
use partita_operator::crd::global_table::GlobalTable;
use partita_operator::crd::table::Table;
use partita_operator::metrics::Metrics;
use partita_operator::run::{run, Controllers};
use serde_json::json;

const ORDERS: &str = r#"
apiVersion: partita.dev/v1alpha1
kind: Table
metadata:
  name: orders
  namespace: shop
spec:
  tableName: Orders
  attributeDefinitions:
    - {attributeName: pk, attributeType: S}
  keySchema:
    - {attributeName: pk, keyType: HASH}
  billingMode: PAY_PER_REQUEST
  placement:
    zones: [zone-a, zone-b, zone-c]
"#;

/// The production controllers on `client`, with the gateway in
/// `partita-system` and a plaintext internal RPC.
fn start_controllers(client: &kube::Client) -> tokio::task::JoinHandle<&'static str> {
    let ctx = Context::new(
        client.clone(),
        OperatorConfig::default(),
        Metrics::new().unwrap(),
    );
    tokio::spawn(run(
        ctx,
        Controllers {
            gateway: GatewayTarget {
                namespace: "partita-system".into(),
                name: "partita-gateway".into(),
            },
            rpc_tls_ca_dir: None,
            gateway_admin_endpoint: None,
            data_plane: None,
        },
    ))
}

async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what} did not happen in 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_controllers_reconcile_a_table_created_after_they_started() {
    let sim = KubeSim::new(
        kube_fake_client::ClientBuilder::new()
            .with_resource::<Table>()
            .with_status_subresource::<Table>()
            .with_resource::<GlobalTable>()
            .with_status_subresource::<GlobalTable>()
            .with_resource::<AccessPolicy>()
            .with_status_subresource::<StatefulSet>(),
    )
    .await
    .unwrap();
    let client = sim.client();
    let controllers = start_controllers(&client);
    // The gateway's topology is rendered at start, empty.
    let gateway_cms: Api<ConfigMap> = Api::namespaced(client.clone(), "partita-system");
    eventually("the gateway topology at start", || async {
        gateway_cms
            .get_opt("partita-gateway-topology")
            .await
            .unwrap()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let tables: Api<Table> = Api::namespaced(client.clone(), "shop");
    let table: Table = serde_yaml::from_str(ORDERS).unwrap();
    tables.create(&PostParams::default(), &table).await.unwrap();
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), "shop");
    let sets = eventually("the Table's StatefulSets", || async {
        let list = statefulsets.list(&ListParams::default()).await.unwrap();
        (list.items.len() == 3).then_some(list.items)
    })
    .await;
    let mut names: Vec<String> = sets
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["orders-zone-a", "orders-zone-b", "orders-zone-c"]);
    let status = eventually("the Table's status", || async {
        let t = tables.get("orders").await.unwrap();
        t.status.filter(|s| s.table_status.is_some())
    })
    .await;
    assert_eq!(status.table_status.as_deref(), Some("CREATING"));
    // The gateway's topology lists the table (the topology ConfigMap's watch
    // triggers the gateway-config controller).
    eventually("the table in the gateway topology", || async {
        let cm = gateway_cms.get("partita-gateway-topology").await.unwrap();
        cm.data
            .and_then(|d| d.get("topology.json").cloned())
            .filter(|t| t.contains("\"Orders\""))
    })
    .await;

    // An edit of the Table reaches its objects through the watch.
    tables
        .patch(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"placement": {"resources": {"requests": {"cpu": "250m"}}}}}),
            ),
        )
        .await
        .unwrap();
    eventually("the edit in the StatefulSets", || async {
        let list = statefulsets.list(&ListParams::default()).await.unwrap();
        list.items
            .iter()
            .all(|s| {
                s.spec
                    .as_ref()
                    .unwrap()
                    .template
                    .spec
                    .as_ref()
                    .unwrap()
                    .containers[0]
                    .resources
                    .as_ref()
                    .and_then(|r| r.requests.as_ref())
                    .is_some_and(|r| r.get("cpu").is_some_and(|q| q.0 == "250m"))
            })
            .then_some(())
    })
    .await;
    controllers.abort();
}

/// The `partita` binary next to this test's executable (`cargo test
/// --workspace` builds it).
fn partita_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let binary = dir.join("partita");
    assert!(
        binary.exists(),
        "{} is missing: build it first (cargo build -p partita)",
        binary.display()
    );
    binary
}

/// A gateway Deployment as the chart renders it, with a plaintext internal
/// RPC and no auth file (the chart's TLS material comes with the operator's
/// CA, which this test does not set up).
fn gateway_deployment() -> k8s_openapi::api::apps::v1::Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "partita-gateway", "namespace": "partita-system"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "partita-gateway"}},
            "template": {
                "metadata": {"labels": {"app": "partita-gateway"}},
                "spec": {
                    "containers": [{
                        "name": "gateway",
                        "image": "ghcr.io/partita-db/partita:0.1.0",
                        "args": ["gateway", "--topology-file", "/etc/partita/topology/topology.json",
                                 "--host", "0.0.0.0", "--port", "8000", "--admin-port", "8001"],
                        "ports": [{"name": "dynamodb", "containerPort": 8000}, {"name": "metrics", "containerPort": 8001}],
                        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "metrics"}, "periodSeconds": 5},
                        "volumeMounts": [{"name": "topology", "mountPath": "/etc/partita/topology", "readOnly": true}]
                    }],
                    "volumes": [{"name": "topology", "configMap": {"name": "partita-gateway-topology", "optional": true}}]
                }
            }
        }
    }))
    .unwrap()
}

/// The operator's controllers in process, the pod runtime realising its
/// StatefulSets as `partita node` processes in their own network and mount
/// namespaces, and a gateway pod: a Table becomes ACTIVE once its replicas
/// are ready, and serves items through the gateway pod's address.
#[tokio::test(flavor = "multi_thread")]
async fn a_table_becomes_active_on_real_processes_and_serves_through_the_gateway() {
    use partita_kubesim::pods::{Runtime, RuntimeOptions};
    let sim = KubeSim::new(
        kube_fake_client::ClientBuilder::new()
            .with_resource::<Table>()
            .with_status_subresource::<Table>()
            .with_resource::<GlobalTable>()
            .with_status_subresource::<GlobalTable>()
            .with_resource::<AccessPolicy>()
            .with_status_subresource::<StatefulSet>()
            .with_status_subresource::<k8s_openapi::api::apps::v1::Deployment>()
            .with_status_subresource::<k8s_openapi::api::core::v1::Pod>(),
    )
    .await
    .unwrap();
    let client = sim.client();
    let root = tempfile::tempdir().unwrap();
    let runtime = Runtime::start(
        client.clone(),
        RuntimeOptions {
            root: root.path().to_path_buf(),
            images: [("partita".to_string(), partita_binary())].into(),
            env: vec![("PARTITA_LOG".into(), "info".into())],
        },
    )
    .unwrap();
    let controllers = start_controllers(&client);
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), "partita-system");
    deployments
        .create(&PostParams::default(), &gateway_deployment())
        .await
        .unwrap();
    let tables: Api<Table> = Api::namespaced(client.clone(), "shop");
    let mut table: Table = serde_yaml::from_str(ORDERS).unwrap();
    table.spec.placement.as_mut().unwrap().zones =
        Some(vec!["zone-a".into(), "zone-b".into(), "zone-c".into()]);
    tables.create(&PostParams::default(), &table).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let t = tables.get("orders").await.unwrap();
        let status = t.status.clone().unwrap_or_default();
        if status.table_status.as_deref() == Some("ACTIVE") {
            break;
        }
        if Instant::now() > deadline {
            let logs: String = runtime
                .addresses()
                .keys()
                .map(|(ns, pod)| {
                    format!(
                        "--- {ns}/{pod}\n{}\n",
                        std::fs::read_to_string(runtime.log_path(ns, pod)).unwrap_or_default()
                    )
                })
                .collect();
            panic!(
                "the Table did not become ACTIVE: {status:?}\nhistory: {:?}\n{logs}",
                runtime.history()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Six node pods (one partition... as many as the throughput needs) and
    // the gateway, each at its own address.
    let addresses = runtime.addresses();
    let gateway = addresses
        .iter()
        .find(|((ns, pod), _)| ns == "partita-system" && pod.starts_with("partita-gateway-"))
        .map(|(_, ip)| ip.clone())
        .expect("a gateway pod");
    let node_ips: std::collections::BTreeSet<&String> = addresses
        .iter()
        .filter(|((ns, _), _)| ns == "shop")
        .map(|(_, ip)| ip)
        .collect();
    assert!(node_ips.len() >= 3, "{addresses:?}");
    // Items through the gateway pod (it picks the table up from its
    // topology ConfigMap, rendered by the operator).
    let endpoint = format!("{gateway}:8000");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = dynamodb(&endpoint, "PutItem",
            &json!({"TableName": "Orders", "Item": {"pk": {"S": "CUSTOMER#1042"}, "total": {"N": "129.95"}}})).await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "PutItem through the gateway pod: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (status, body) = dynamodb(&endpoint, "GetItem",
        &json!({"TableName": "Orders", "Key": {"pk": {"S": "CUSTOMER#1042"}}, "ConsistentRead": true})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Item"]["total"]["N"], "129.95");
    controllers.abort();
    drop(runtime);
}

/// One DynamoDB JSON call over plain HTTP: (status, body).
async fn dynamodb(endpoint: &str, op: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = body.to_string();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {endpoint}\r\nX-Amz-Target: DynamoDB_20120810.{op}\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let Ok(Ok(mut stream)) = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(endpoint),
    )
    .await
    else {
        return (0, serde_json::Value::Null);
    };
    if stream.write_all(request.as_bytes()).await.is_err() {
        return (0, serde_json::Value::Null);
    }
    let mut answer = Vec::new();
    if tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .is_err()
    {
        return (0, serde_json::Value::Null);
    }
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}
