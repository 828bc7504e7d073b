//! `partita-e2e-local`: the Kubernetes path on a cluster of real processes,
//! run by `e2e/local.sh`. No Docker, kind or kube-apiserver: the chart's
//! objects (`helm template`) go into the simulated API of
//! `partita-kubesim` (watches, server-side apply, StatefulSet
//! immutability), the operator's production controllers run in process
//! with the configuration the chart gives the operator's Deployment, and
//! the pod runtime runs every other Deployment and StatefulSet as
//! `partita` processes, each pod in its own network and mount namespace.
//!
//! Usage: `partita-e2e-local --partita BIN --chart OBJECTS.yaml
//! [SCENARIO...]` (all scenarios by default). Each scenario runs on a fresh
//! cluster and prints `PASS <scenario>` or `FAIL <scenario>: <why>`; the
//! exit status is non-zero when any failed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use partita_kubesim::pods::{Runtime, RuntimeOptions};
use partita_kubesim::KubeSim;
use partita_operator::config::OperatorConfig;
use partita_operator::controller::access_policy::GatewayTarget;
use partita_operator::controller::Context;
use partita_operator::crd::access_policy::AccessPolicy;
use partita_operator::crd::global_table::GlobalTable;
use partita_operator::crd::table::Table;
use partita_operator::definition::DataPlane;
use partita_operator::metrics::Metrics;
use partita_operator::run::Controllers;
use serde_json::Value;

mod day_two;
mod workload;

/// The scenarios, in the order they run.
const SCENARIOS: [&str; 11] = [
    "install",
    "create",
    "spec-changes",
    "ddl-two-gateways",
    "status",
    "deletion",
    "rolling-update",
    "pod-delete",
    "stop-resume",
    "ca-rotation",
    "storage-resize",
];

/// Kinds the simulated API does not hold: the operator runs in process
/// (its Deployment and RBAC), CRDs are registered as types, and nothing
/// enforces RBAC or scrapes metrics here.
const SKIPPED_KINDS: [&str; 8] = [
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ServiceMonitor",
    "PrometheusRule",
    "PodDisruptionBudget",
];

struct Args {
    partita: PathBuf,
    chart: PathBuf,
    scenarios: Vec<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut partita = None;
    let mut chart = None;
    let mut scenarios = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--partita" => partita = args.next().map(PathBuf::from),
            "--chart" => chart = args.next().map(PathBuf::from),
            s if SCENARIOS.contains(&s) => scenarios.push(s.to_string()),
            other => bail!("unknown argument {other:?} (scenarios: {SCENARIOS:?})"),
        }
    }
    if scenarios.is_empty() {
        scenarios = SCENARIOS.iter().map(|s| s.to_string()).collect();
    }
    Ok(Args {
        partita: partita.context("--partita BIN is required")?,
        chart: chart.context("--chart OBJECTS.yaml (helm template output) is required")?,
        scenarios,
    })
}

/// One process-backed cluster with the chart installed.
struct Cluster {
    client: kube::Client,
    /// The region the chart gives the gateways (what clients sign for).
    region: String,
    runtime: Runtime,
    operator: tokio::task::JoinHandle<&'static str>,
    /// What the operator was started with (to start it again, upgraded).
    operator_config: OperatorConfig,
    controllers: Controllers,
    _root: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.operator.abort();
    }
}

/// The operator's configuration from its Deployment's environment, as
/// `partita-operator` reads it.
fn operator_config(deployment: &Value, ca_dir: &Path) -> (OperatorConfig, GatewayTarget) {
    let env: BTreeMap<String, String> = deployment["spec"]["template"]["spec"]["containers"][0]
        ["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_string(),
                e["value"].as_str()?.to_string(),
            ))
        })
        .collect();
    let get = |k: &str, default: &str| env.get(k).cloned().unwrap_or_else(|| default.to_string());
    let config = OperatorConfig {
        image: get("PARTITA_IMAGE", "partita"),
        image_pull_policy: get("PARTITA_IMAGE_PULL_POLICY", "IfNotPresent"),
        default_zones: get("PARTITA_DEFAULT_ZONES", "zone-a,zone-b,zone-c")
            .split(',')
            .map(str::to_string)
            .collect(),
        zone_label: get("PARTITA_ZONE_LABEL", "topology.kubernetes.io/zone"),
        default_storage_size: get("PARTITA_DEFAULT_STORAGE_SIZE", "10Gi"),
        region: get("PARTITA_REGION", "us-east-1"),
        account_id: get("PARTITA_ACCOUNT_ID", "123456789012"),
        gateway_endpoint: get("PARTITA_GATEWAY_ENDPOINT", ""),
        log_format: get("PARTITA_LOG_FORMAT", "json"),
        extra_labels: BTreeMap::new(),
        rpc_ca_dir: env
            .contains_key("PARTITA_RPC_TLS_CA_DIR")
            .then(|| ca_dir.to_path_buf()),
    };
    let target = GatewayTarget {
        namespace: get("PARTITA_GATEWAY_NAMESPACE", "partita-system"),
        name: get("PARTITA_GATEWAY_NAME", "partita-gateway"),
    };
    (config, target)
}

impl Cluster {
    /// A fresh simulated cluster with the chart's objects applied, the
    /// operator's controllers running and the pod runtime realising pods.
    async fn install(args: &Args) -> anyhow::Result<Cluster> {
        let sim = KubeSim::new(
            kube_fake_client::ClientBuilder::new()
                .with_resource::<Table>()
                .with_status_subresource::<Table>()
                .with_resource::<GlobalTable>()
                .with_status_subresource::<GlobalTable>()
                .with_resource::<AccessPolicy>()
                .with_status_subresource::<StatefulSet>()
                .with_status_subresource::<Deployment>()
                .with_status_subresource::<Pod>(),
        )
        .await
        .map_err(|e| anyhow!("simulated API: {e}"))?;
        let client = sim.client();
        let root = tempfile::tempdir()?;
        let text = std::fs::read_to_string(&args.chart)
            .with_context(|| format!("reading {}", args.chart.display()))?;
        let mut operator = None;
        for document in serde_yaml::Deserializer::from_str(&text) {
            let object = Value::deserialize_from(document)?;
            let Some(kind) = object["kind"].as_str() else {
                continue;
            };
            if SKIPPED_KINDS.contains(&kind) {
                continue;
            }
            if kind == "Deployment" && object["metadata"]["name"] == "partita-operator" {
                operator = Some(object);
                continue;
            }
            apply(&client, &object).await?;
        }
        let operator = operator.context("the chart has no partita-operator Deployment")?;
        // The operator's CA, as its Deployment mounts it.
        let ca_dir = root.path().join("rpc-ca");
        std::fs::create_dir_all(&ca_dir)?;
        let namespace = operator["metadata"]["namespace"]
            .as_str()
            .unwrap_or("partita-system")
            .to_string();
        if let Some(ca) = Api::<Secret>::namespaced(client.clone(), &namespace)
            .get_opt("partita-rpc-ca")
            .await?
        {
            for (key, value) in ca.data.unwrap_or_default() {
                std::fs::write(ca_dir.join(key), value.0)?;
            }
        }
        let (config, gateway) = operator_config(&operator, &ca_dir);
        let runtime = Runtime::start(
            client.clone(),
            RuntimeOptions {
                root: root.path().join("runtime"),
                images: [("partita".to_string(), args.partita.clone())].into(),
                env: vec![("PARTITA_LOG".into(), "info".into())],
            },
        )
        .map_err(|e| anyhow!("pod runtime: {e}"))?;
        // The operator runs outside the pods' network: it calls the gateway
        // pods by address, as the gateway Service would route.
        let book = runtime.address_book();
        let gateway_namespace = gateway.namespace.clone();
        let gateway_pods = format!("{}-", gateway.name);
        let data_plane = DataPlane {
            target: gateway.clone(),
            region: config.region.clone(),
            endpoints: std::sync::Arc::new(move || {
                book.get()
                    .into_iter()
                    .filter(|((ns, pod), _)| {
                        *ns == gateway_namespace && pod.starts_with(&gateway_pods)
                    })
                    .map(|(_, ip)| format!("{ip}:8000"))
                    .collect()
            }),
        };
        let controllers = Controllers {
            gateway,
            rpc_tls_ca_dir: config.rpc_ca_dir.clone(),
            gateway_admin_endpoint: None,
            data_plane: Some(data_plane),
        };
        let operator = start_operator(&client, &config, &controllers)?;
        Ok(Cluster {
            region: config.region.clone(),
            client,
            runtime,
            operator,
            operator_config: config,
            controllers,
            _root: root,
        })
    }

    /// Stops the operator and starts it again with the configuration
    /// `change` makes (an operator upgrade: e.g. a new data-plane image).
    fn upgrade_operator(&mut self, change: impl FnOnce(&mut OperatorConfig)) -> anyhow::Result<()> {
        self.operator.abort();
        change(&mut self.operator_config);
        self.operator = start_operator(&self.client, &self.operator_config, &self.controllers)?;
        Ok(())
    }

    /// Waits until every Deployment and StatefulSet has all its replicas
    /// ready.
    async fn wait_all_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut waiting = Vec::new();
            for d in Api::<Deployment>::all(self.client.clone())
                .list(&Default::default())
                .await?
                .items
            {
                let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                let ready = d
                    .status
                    .as_ref()
                    .and_then(|s| s.ready_replicas)
                    .unwrap_or(0);
                if ready != want {
                    waiting.push(format!(
                        "deployment {}: {ready}/{want}",
                        d.metadata.name.unwrap_or_default()
                    ));
                }
            }
            for s in Api::<StatefulSet>::all(self.client.clone())
                .list(&Default::default())
                .await?
                .items
            {
                let want = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                let ready = s
                    .status
                    .as_ref()
                    .and_then(|s| s.ready_replicas)
                    .unwrap_or(0);
                if ready != want {
                    waiting.push(format!(
                        "statefulset {}: {ready}/{want}",
                        s.metadata.name.unwrap_or_default()
                    ));
                }
            }
            if waiting.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "not ready in {timeout:?}: {}{}",
                    waiting.join(", "),
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The tail of every pod's log (for failure messages).
    fn logs(&self) -> String {
        let mut out = String::new();
        for (ns, pod) in self.runtime.addresses().keys() {
            let log = std::fs::read_to_string(self.runtime.log_path(ns, pod)).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            out.push_str(&format!("\n--- {ns}/{pod}\n"));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// The addresses of the pods whose name starts with `prefix`.
    fn pods(&self, namespace: &str, prefix: &str) -> Vec<String> {
        self.runtime
            .addresses()
            .into_iter()
            .filter(|((ns, pod), _)| ns == namespace && pod.starts_with(prefix))
            .map(|(_, ip)| ip)
            .collect()
    }
}

/// Runs the operator's controllers in process.
fn start_operator(
    client: &kube::Client,
    config: &OperatorConfig,
    controllers: &Controllers,
) -> anyhow::Result<tokio::task::JoinHandle<&'static str>> {
    let ctx = Context::new(client.clone(), config.clone(), Metrics::new()?);
    Ok(tokio::spawn(partita_operator::run::run(
        ctx,
        controllers.clone(),
    )))
}

/// Creates `object` in the simulated API.
async fn apply(client: &kube::Client, object: &Value) -> anyhow::Result<()> {
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind = object["kind"].as_str().unwrap_or_default();
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    let dynamic: DynamicObject = serde_json::from_value(object.clone())?;
    let api: Api<DynamicObject> = match object["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    api.create(&PostParams::default(), &dynamic)
        .await
        .map(|_| ())
        .with_context(|| {
            format!(
                "creating {kind} {}",
                object["metadata"]["name"].as_str().unwrap_or_default()
            )
        })
}

/// `GET path` on `address`: the status code (0: no answer).
async fn http_status(address: &str, path: &str) -> u16 {
    http(address, "GET", path, &[], "").await.0
}

async fn http(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok()?;
        let text = String::from_utf8_lossy(&answer).into_owned();
        let status = text.split(' ').nth(1)?.parse().ok()?;
        Some((
            status,
            text.split_once("\r\n\r\n")
                .map(|(_, b)| b.to_string())
                .unwrap_or_default(),
        ))
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or((0, String::new()))
}

/// `install`: the chart with no Table — every pod becomes ready (the
/// gateway with an empty topology) and the gateway answers DynamoDB calls.
async fn install(args: &Args) -> anyhow::Result<()> {
    let cluster = Cluster::install(args).await?;
    cluster.wait_all_ready(Duration::from_secs(90)).await?;
    let gateways = cluster.pods("partita-system", "partita-gateway-");
    if gateways.is_empty() {
        bail!("no gateway pod runs");
    }
    for ip in &gateways {
        let status = http_status(&format!("{ip}:8001"), "/readyz").await;
        if status != 200 {
            bail!("gateway {ip} /readyz answered {status}");
        }
        let (status, body) = http(
            &format!("{ip}:8000"),
            "POST",
            "/",
            &[
                ("X-Amz-Target", "DynamoDB_20120810.ListTables"),
                ("Content-Type", "application/x-amz-json-1.0"),
            ],
            "{}",
        )
        .await;
        let answer: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let dynamodb_like = (status == 200 && answer["TableNames"] == serde_json::json!([]))
            || (status == 400 && answer["__type"].is_string());
        if !dynamodb_like {
            bail!("gateway {ip} answered ListTables with {status} {body}");
        }
    }
    Ok(())
}

/// The application namespace of the scenarios' Tables.
const APP_NAMESPACE: &str = "shop";

/// A user of the chart's gateway (auth is on) allowed everything on the
/// Orders table: its keys in a labelled Secret, its AccessPolicy.
const ORDERS_USER: &str = r#"
apiVersion: v1
kind: Secret
metadata:
  name: shop-keys
  labels:
    partita.dev/user: shop
stringData:
  accessKeyId: AKIASHOP000000000001
  secretAccessKey: shop-secret
---
apiVersion: partita.dev/v1alpha1
kind: AccessPolicy
metadata:
  name: shop-orders
spec:
  users: [shop]
  policyDocument: |
    {"Version": "2012-10-17",
     "Statement": [{"Effect": "Allow", "Action": "dynamodb:*",
                    "Resource": ["arn:aws:dynamodb:*:*:table/Orders",
                                 "arn:aws:dynamodb:*:*:table/Orders/*"]}]}
"#;

impl Cluster {
    /// Creates every object of the YAML documents `text` in `namespace`
    /// (unless an object names its own).
    async fn apply_yaml(&self, namespace: &str, text: &str) -> anyhow::Result<()> {
        for document in serde_yaml::Deserializer::from_str(text) {
            let mut object = Value::deserialize_from(document)?;
            if object.is_null() {
                continue;
            }
            if object["metadata"]["namespace"].is_null() {
                object["metadata"]["namespace"] = Value::from(namespace);
            }
            apply(&self.client, &object).await?;
        }
        Ok(())
    }

    /// Waits until Table `name` reports `tableStatus` `want`.
    async fn wait_table_status(
        &self,
        namespace: &str,
        name: &str,
        want: &str,
        timeout: Duration,
    ) -> anyhow::Result<Table> {
        let api = Api::<Table>::namespaced(self.client.clone(), namespace);
        let deadline = Instant::now() + timeout;
        loop {
            let table = api.get(name).await?;
            let status = table.status.as_ref().and_then(|s| s.table_status.clone());
            if status.as_deref() == Some(want) {
                return Ok(table);
            }
            if Instant::now() > deadline {
                bail!(
                    "Table {namespace}/{name} is {status:?}, not {want}, after {timeout:?}: {}{}",
                    serde_json::to_string(&table.status)?,
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Runs `python3 ARGS...` (boto3 programs) with the Orders user's keys
/// in `region`; its standard output, or an error with both outputs.
async fn python(region: &str, args: &[&str]) -> anyhow::Result<String> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let run = tokio::process::Command::new(&python)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "AKIASHOP000000000001")
        .env("AWS_SECRET_ACCESS_KEY", "shop-secret")
        .env("AWS_DEFAULT_REGION", region)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .map_err(|_| anyhow!("{python} {args:?} did not finish in 120 s"))??;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "{python} {args:?} failed ({}): {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout)
}

/// A boto3 call on `endpoint`: `client.OPERATION(**PARAMS)` printed as JSON.
async fn boto3(
    region: &str,
    endpoint: &str,
    operation: &str,
    params: &Value,
) -> anyhow::Result<Value> {
    let program = "import boto3, json, sys\n\
        c = boto3.client('dynamodb', endpoint_url=sys.argv[1])\n\
        print(json.dumps(getattr(c, sys.argv[2])(**json.loads(sys.argv[3])), default=str))\n";
    let out = python(
        region,
        &["-c", program, endpoint, operation, &params.to_string()],
    )
    .await?;
    serde_json::from_str(&out).with_context(|| format!("{operation} printed {out}"))
}

/// `create`: the sample Orders Table (with time to live) becomes ACTIVE;
/// the seed's boto3 Orders program runs through a gateway pod's address
/// (with a user's keys: the chart's gateway checks signatures, scoped to
/// the program's region us-west-2, which `e2e/local.sh` gives the chart),
/// and
/// DescribeTimeToLive through the other gateway shows the Table's time to
/// live applied.
/// The chart installed, the Orders user and the sample Orders Table
/// ACTIVE; the cluster and its two gateways' endpoints.
async fn orders_cluster(args: &Args) -> anyhow::Result<(Cluster, [String; 2])> {
    let cluster = Cluster::install(args).await?;
    cluster.wait_all_ready(Duration::from_secs(90)).await?;
    cluster.apply_yaml(APP_NAMESPACE, ORDERS_USER).await?;
    let orders = std::fs::read_to_string("manifests/samples/orders.yaml")
        .context("reading manifests/samples/orders.yaml (run from the repository root)")?;
    cluster.apply_yaml(APP_NAMESPACE, &orders).await?;
    cluster
        .wait_table_status(APP_NAMESPACE, "orders", "ACTIVE", Duration::from_secs(120))
        .await?;
    let gateways = cluster.pods("partita-system", "partita-gateway-");
    let [first, second] = gateways.as_slice() else {
        bail!("expected the chart's two gateway pods, found {gateways:?}");
    };
    let endpoints = [
        format!("http://{first}:8000"),
        format!("http://{second}:8000"),
    ];
    Ok((cluster, endpoints))
}

/// Runs the seed's Orders program on `endpoint` (retried while the user's
/// policy is on its way to the gateways' auth file); what it printed.
async fn run_orders_program(cluster: &Cluster, endpoint: &str) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match python(&cluster.region, &["examples/orders.py", endpoint]).await {
            Ok(out) => return Ok(out),
            Err(e) if Instant::now() < deadline => {
                tracing::info!(error = %e, "orders.py not through yet");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e.context(cluster.logs())),
        }
    }
}

async fn create(args: &Args) -> anyhow::Result<()> {
    let (cluster, [first, second]) = orders_cluster(args).await?;
    let endpoint = first;
    let printed = run_orders_program(&cluster, &endpoint).await?;
    if !printed.contains("CUSTOMER#1042") || !printed.contains("ORDER#2026-04-21#A-482") {
        bail!("examples/orders.py printed {printed}");
    }
    let ttl = boto3(
        &cluster.region,
        &second,
        "describe_time_to_live",
        &serde_json::json!({"TableName": "Orders"}),
    )
    .await?;
    let description = &ttl["TimeToLiveDescription"];
    if description["TimeToLiveStatus"] != "ENABLED" || description["AttributeName"] != "expiresAt" {
        bail!("DescribeTimeToLive answered {ttl}");
    }
    Ok(())
}

impl Cluster {
    /// Merge-patches Table `name`'s spec with `spec`; its new generation.
    async fn patch_table(&self, name: &str, spec: Value) -> anyhow::Result<i64> {
        let api = Api::<Table>::namespaced(self.client.clone(), APP_NAMESPACE);
        let patched = api
            .patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&serde_json::json!({ "spec": spec })),
            )
            .await
            .with_context(|| format!("patching Table {name}"))?;
        Ok(patched.metadata.generation.unwrap_or(0))
    }

    /// Waits until Table `name` has settled at `generation`: ACTIVE, not
    /// Progressing (the data plane reports every change applied).
    async fn wait_settled(&self, name: &str, generation: i64) -> anyhow::Result<()> {
        let api = Api::<Table>::namespaced(self.client.clone(), APP_NAMESPACE);
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let status = api.get(name).await?.status.unwrap_or_default();
            let progressing = status.conditions.iter().find(|c| c.type_ == "Progressing");
            let settled = status.observed_generation == Some(generation)
                && status.table_status.as_deref() == Some("ACTIVE")
                && progressing.is_some_and(|c| {
                    c.status == "False" && c.observed_generation == Some(generation)
                });
            // A Degraded condition of an earlier generation is no verdict
            // on this one.
            let refused = status.conditions.iter().find(|c| {
                c.type_ == "Degraded"
                    && c.status == "True"
                    && c.observed_generation == Some(generation)
            });
            if let Some(refused) = refused {
                bail!(
                    "Table {name} is Degraded: {}: {}",
                    refused.reason,
                    refused.message
                );
            }
            if settled {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "Table {name} did not settle at generation {generation}: {}{}",
                    serde_json::to_string(&status)?,
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// DescribeTable of Orders through `endpoint` once `ready` holds of it (or
/// after 15 s, for the caller to report what it shows).
async fn described_when(
    region: &str,
    endpoint: &str,
    ready: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let table = boto3(
            region,
            endpoint,
            "describe_table",
            &serde_json::json!({"TableName": "Orders"}),
        )
        .await?["Table"]
            .clone();
        if ready(&table) || Instant::now() > deadline {
            return Ok(table);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `spec-changes`: changes of the Orders Table's spec reach the data plane
/// and show in DynamoDB's own answers through the gateways — an index
/// added (backfilled: it finds the order written before) and removed,
/// time to live disabled, the stream's view type, tags, deletion
/// protection, table class, billing mode and throughput — and the Table
/// stays Progressing until each is applied.
async fn spec_changes(args: &Args) -> anyhow::Result<()> {
    let (cluster, [first, second]) = orders_cluster(args).await?;
    run_orders_program(&cluster, &first).await?;
    let call = |endpoint: &str, op: &'static str, params: Value| {
        let (region, endpoint) = (cluster.region.clone(), endpoint.to_string());
        async move { boto3(&region, &endpoint, op, &params).await }
    };
    let orders = serde_json::json!({"TableName": "Orders"});

    let generation = cluster
        .patch_table(
            "orders",
            serde_json::json!({
                "attributeDefinitions": [
                    {"attributeName": "pk", "attributeType": "S"},
                    {"attributeName": "sk", "attributeType": "S"},
                    {"attributeName": "status", "attributeType": "S"}],
                "globalSecondaryIndexes": [{"indexName": "by-status",
                    "keySchema": [{"attributeName": "status", "keyType": "HASH"}],
                    "projection": {"projectionType": "ALL"}}],
                "timeToLive": {"attributeName": "expiresAt", "enabled": false},
                "streamSpecification": {"streamEnabled": true, "streamViewType": "KEYS_ONLY"},
                "tags": [{"key": "app", "value": "store"}, {"key": "team", "value": "orders"}],
                "deletionProtectionEnabled": true,
                "tableClass": "STANDARD_INFREQUENT_ACCESS"}),
        )
        .await?;
    cluster.wait_settled("orders", generation).await?;
    // A gateway answers from a definition it read up to a second ago.
    let table = described_when(&cluster.region, &second, |t| {
        t["StreamSpecification"]["StreamViewType"] == "KEYS_ONLY"
    })
    .await?;
    let index = &table["GlobalSecondaryIndexes"][0];
    let expected = [
        (
            index["IndexName"] == "by-status" && index["IndexStatus"] == "ACTIVE",
            "the index ACTIVE",
        ),
        (
            table["StreamSpecification"]["StreamViewType"] == "KEYS_ONLY",
            "the KEYS_ONLY stream",
        ),
        (
            table["DeletionProtectionEnabled"] == true,
            "deletion protection",
        ),
        (
            table["TableClassSummary"]["TableClass"] == "STANDARD_INFREQUENT_ACCESS",
            "the table class",
        ),
    ];
    if let Some((_, what)) = expected.iter().find(|(ok, _)| !ok) {
        bail!("DescribeTable does not show {what}: {table}");
    }
    let shipped = call(
        &first,
        "query",
        serde_json::json!({"TableName": "Orders", "IndexName": "by-status",
            "KeyConditionExpression": "#s = :s", "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":s": {"S": "SHIPPED"}}}),
    )
    .await?;
    if shipped["Count"] != 1 {
        bail!("the new index does not find the order written before: {shipped}");
    }
    let ttl = call(&first, "describe_time_to_live", orders.clone()).await?;
    if ttl["TimeToLiveDescription"]["TimeToLiveStatus"] != "DISABLED" {
        bail!("time to live not disabled: {ttl}");
    }
    let tags = call(
        &second,
        "list_tags_of_resource",
        serde_json::json!({"ResourceArn": table["TableArn"]}),
    )
    .await?;
    let want_tags =
        serde_json::json!([{"Key": "app", "Value": "store"}, {"Key": "team", "Value": "orders"}]);
    if tags["Tags"] != want_tags {
        bail!("tags are {tags}");
    }

    // Provisioned, the index removed.
    let generation = cluster
        .patch_table(
            "orders",
            serde_json::json!({"attributeDefinitions": [
                    {"attributeName": "pk", "attributeType": "S"},
                    {"attributeName": "sk", "attributeType": "S"}],
                "billingMode": "PROVISIONED",
                "provisionedThroughput": {"readCapacityUnits": 5, "writeCapacityUnits": 4},
                "globalSecondaryIndexes": null}),
        )
        .await?;
    cluster.wait_settled("orders", generation).await?;
    let table = described_when(&cluster.region, &first, |t| {
        t["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    })
    .await?;
    let billing_ok = table["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
        && table["ProvisionedThroughput"]["ReadCapacityUnits"] == 5
        && table["ProvisionedThroughput"]["WriteCapacityUnits"] == 4;
    if !billing_ok || table.get("GlobalSecondaryIndexes").is_some() {
        bail!("DescribeTable after the second change: {table}");
    }
    Ok(())
}

/// `status`: the Table's status shows the item count and size the data
/// plane reports; a second Table in another namespace with the same
/// tableName is Degraded, gets no pods, and the gateways keep routing the
/// name to the first Table.
async fn status(args: &Args) -> anyhow::Result<()> {
    let (cluster, [first, second]) = orders_cluster(args).await?;
    run_orders_program(&cluster, &first).await?;
    let api = Api::<Table>::namespaced(cluster.client.clone(), APP_NAMESPACE);
    // A change of the resource makes the operator look again at once (it
    // also does every minute).
    api.patch(
        "orders",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(
            serde_json::json!({"metadata": {"annotations": {"e2e/refresh": "1"}}}),
        ),
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let status = api.get("orders").await?.status.unwrap_or_default();
        if status.item_count == Some(1) && status.table_size_bytes.unwrap_or(0) > 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the status does not show the order: {}",
                serde_json::to_string(&status)?
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let orders = std::fs::read_to_string("manifests/samples/orders.yaml")?;
    let copy = orders.replace("name: orders", "name: orders-copy");
    cluster.apply_yaml("tenant-b", &copy).await?;
    let copies = Api::<Table>::namespaced(cluster.client.clone(), "tenant-b");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = copies.get("orders-copy").await?.status.unwrap_or_default();
        let conflict = status.conditions.iter().any(|c| {
            c.type_ == "Degraded" && c.status == "True" && c.reason == "TableNameConflict"
        });
        if conflict {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the second Orders Table is not Degraded: {}",
                serde_json::to_string(&status)?
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let pods = cluster.pods("tenant-b", "");
    if !pods.is_empty() {
        bail!("the second Orders Table got pods: {pods:?}");
    }
    // Both gateways still route Orders to the first Table: the order is there.
    for endpoint in [&first, &second] {
        let found = boto3(
            &cluster.region,
            endpoint,
            "get_item",
            &serde_json::json!({"TableName": "Orders", "ConsistentRead": true,
                "Key": {"pk": {"S": "CUSTOMER#1042"}, "sk": {"S": "ORDER#2026-04-21#A-482"}}}),
        )
        .await?;
        if found["Item"]["status"]["S"] != "SHIPPED" {
            bail!("{endpoint} does not find the order: {found}");
        }
    }
    Ok(())
}

/// Tags `count` keys `<prefix>-<i>` on the table `arn` through `endpoint`,
/// one TagResource call each (one boto3 process).
async fn tag_many(
    region: &str,
    endpoint: &str,
    arn: &str,
    prefix: &str,
    count: usize,
) -> anyhow::Result<()> {
    let program = "import boto3, sys\n\
        c = boto3.client('dynamodb', endpoint_url=sys.argv[1])\n\
        for i in range(int(sys.argv[4])):\n\
        \x20   c.tag_resource(ResourceArn=sys.argv[2], Tags=[{'Key': f'{sys.argv[3]}-{i}', 'Value': 'v'}])\n";
    python(
        region,
        &["-c", program, endpoint, arn, prefix, &count.to_string()],
    )
    .await?;
    Ok(())
}

/// `ddl-two-gateways`: definition changes made at the same moment through
/// both gateways are all kept and both gateways answer with them; the
/// operator (reconciliation paused meanwhile) then brings the table back
/// to its spec.
async fn ddl_two_gateways(args: &Args) -> anyhow::Result<()> {
    let (cluster, [first, second]) = orders_cluster(args).await?;
    run_orders_program(&cluster, &first).await?;
    cluster
        .patch_table(
            "orders",
            serde_json::json!({"clusterOperation": {"reconciliationPaused": true}}),
        )
        .await?;
    // Paused: the operator leaves the table alone from this generation on.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let table = boto3(
        &cluster.region,
        &first,
        "describe_table",
        &serde_json::json!({"TableName": "Orders"}),
    )
    .await?;
    let arn = table["Table"]["TableArn"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (a, b) = tokio::join!(
        tag_many(&cluster.region, &first, &arn, "first", 10),
        tag_many(&cluster.region, &second, &arn, "second", 10),
    );
    a?;
    b?;
    let list = serde_json::json!({"ResourceArn": arn});
    for endpoint in [&first, &second] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let tags = boto3(&cluster.region, endpoint, "list_tags_of_resource", &list).await?;
            let count = tags["Tags"].as_array().map(Vec::len).unwrap_or(0);
            if count == 21 {
                break;
            }
            if Instant::now() > deadline {
                bail!("{endpoint} does not show every change (20 tags and the spec's): {tags}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    // Reconciliation resumed: the spec is the truth again.
    cluster
        .patch_table(
            "orders",
            serde_json::json!({"clusterOperation": {"reconciliationPaused": false}}),
        )
        .await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let tags = boto3(&cluster.region, &second, "list_tags_of_resource", &list).await?;
        if tags["Tags"] == serde_json::json!([{"Key": "app", "Value": "shop"}]) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the operator did not bring the tags back to the spec: {tags}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A second table whose volumes are kept when it is deleted.
const ARCHIVE: &str = r#"
apiVersion: partita.dev/v1alpha1
kind: Table
metadata:
  name: archive
spec:
  tableName: Archive
  attributeDefinitions:
    - {attributeName: pk, attributeType: S}
  keySchema:
    - {attributeName: pk, keyType: HASH}
  billingMode: PAY_PER_REQUEST
  placement:
    zones: [zone-a, zone-b, zone-c]
    storage: {size: 1Gi, volumeRetentionPolicy: Retain}
"#;

impl Cluster {
    /// Deletes Table `name` and waits until it is gone, noting whether its
    /// status showed DELETING on the way.
    async fn delete_table(&self, name: &str) -> anyhow::Result<bool> {
        let api = Api::<Table>::namespaced(self.client.clone(), APP_NAMESPACE);
        api.delete(name, &Default::default()).await?;
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut saw_deleting = false;
        loop {
            match api.get_opt(name).await? {
                None => return Ok(saw_deleting),
                Some(t) => {
                    let status = t.status.unwrap_or_default();
                    saw_deleting |= status.table_status.as_deref() == Some("DELETING");
                    if Instant::now() > deadline {
                        bail!(
                            "Table {name} is not gone: {}{}",
                            serde_json::to_string(&status)?,
                            self.logs()
                        );
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The PVC directories of a table's replicas (claim `data`, one pod per
    /// zone, ordinal 0) that exist.
    fn volumes(&self, table: &str) -> Vec<std::path::PathBuf> {
        ["zone-a", "zone-b", "zone-c"]
            .iter()
            .map(|z| {
                self.runtime
                    .pvc_path(APP_NAMESPACE, "data", &format!("{table}-{z}-0"))
            })
            .filter(|p| p.exists())
            .collect()
    }
}

/// `deletion`: a Table with deletion protection is not deleted (Degraded,
/// its data still served); without it the Table shows DELETING, its pods
/// stop, the gateways answer ResourceNotFoundException, and its volumes go
/// (policy Delete) or stay (policy Retain).
async fn deletion(args: &Args) -> anyhow::Result<()> {
    let (cluster, [first, second]) = orders_cluster(args).await?;
    cluster.apply_yaml(APP_NAMESPACE, ARCHIVE).await?;
    cluster
        .wait_table_status(APP_NAMESPACE, "archive", "ACTIVE", Duration::from_secs(120))
        .await?;
    run_orders_program(&cluster, &first).await?;
    let generation = cluster
        .patch_table(
            "orders",
            serde_json::json!({"deletionProtectionEnabled": true}),
        )
        .await?;
    cluster.wait_settled("orders", generation).await?;
    let api = Api::<Table>::namespaced(cluster.client.clone(), APP_NAMESPACE);
    api.delete("orders", &Default::default()).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = api.get("orders").await?.status.unwrap_or_default();
        let protected = status.conditions.iter().any(|c| {
            c.type_ == "Degraded" && c.status == "True" && c.reason == "DeletionProtected"
        });
        if protected {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "a protected Table is not reported: {}",
                serde_json::to_string(&status)?
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let order = serde_json::json!({"TableName": "Orders", "ConsistentRead": true,
        "Key": {"pk": {"S": "CUSTOMER#1042"}, "sk": {"S": "ORDER#2026-04-21#A-482"}}});
    let kept = boto3(&cluster.region, &second, "get_item", &order).await?;
    if kept["Item"]["status"]["S"] != "SHIPPED" {
        bail!("a protected Table stopped serving: {kept}");
    }
    if cluster.volumes("orders").len() != 3 {
        bail!(
            "the protected Table's volumes: {:?}",
            cluster.volumes("orders")
        );
    }

    // Protection off: the deletion goes on.
    api.patch(
        "orders",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(serde_json::json!({"spec": {"deletionProtectionEnabled": false}})),
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut saw_deleting = false;
    while api.get_opt("orders").await?.is_some() {
        let status = api.get_opt("orders").await?.and_then(|t| t.status);
        saw_deleting |= status.and_then(|s| s.table_status).as_deref() == Some("DELETING");
        if Instant::now() > deadline {
            bail!("the Orders Table is not gone{}", cluster.logs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !saw_deleting {
        bail!("the Orders Table never showed DELETING");
    }
    let pods = cluster.pods(APP_NAMESPACE, "orders-");
    if !pods.is_empty() {
        bail!("pods of the deleted Orders Table run: {pods:?}");
    }
    for endpoint in [&first, &second] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match boto3(
                &cluster.region,
                endpoint,
                "describe_table",
                &serde_json::json!({"TableName": "Orders"}),
            )
            .await
            {
                Err(e) if format!("{e:#}").contains("ResourceNotFoundException") => break,
                other if Instant::now() > deadline => {
                    bail!("{endpoint} still knows the deleted Orders table: {other:?}")
                }
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cluster.volumes("orders").is_empty() {
        if Instant::now() > deadline {
            bail!(
                "volumes of the deleted Orders Table (policy Delete) remain: {:?}",
                cluster.volumes("orders")
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Policy Retain: the volumes stay.
    if !cluster.delete_table("archive").await? {
        bail!("the Archive Table never showed DELETING");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let kept = cluster.volumes("archive");
    if kept.len() != 3 {
        bail!("volumes of the deleted Archive Table (policy Retain): {kept:?}");
    }
    Ok(())
}

async fn run_scenario(name: &str, args: &Args) -> anyhow::Result<()> {
    match name {
        "deletion" => deletion(args).await,
        "ddl-two-gateways" => ddl_two_gateways(args).await,
        "status" => status(args).await,
        "spec-changes" => spec_changes(args).await,
        "install" => install(args).await,
        "create" => create(args).await,
        "rolling-update" => day_two::rolling_update(args).await,
        "pod-delete" => day_two::pod_delete(args).await,
        "stop-resume" => day_two::stop_resume(args).await,
        "ca-rotation" => day_two::ca_rotation(args).await,
        "storage-resize" => day_two::storage_resize(args).await,
        other => bail!("unknown scenario {other}"),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PARTITA_E2E_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let mut failed = false;
    for scenario in &args.scenarios {
        match run_scenario(scenario, &args).await {
            Ok(()) => println!("PASS {scenario}"),
            Err(e) => {
                failed = true;
                println!("FAIL {scenario}: {e:#}");
            }
        }
    }
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}

trait FromDocument {
    fn deserialize_from(document: serde_yaml::Deserializer<'_>) -> anyhow::Result<Value>;
}

impl FromDocument for Value {
    fn deserialize_from(document: serde_yaml::Deserializer<'_>) -> anyhow::Result<Value> {
        use serde::Deserialize;
        let value = serde_yaml::Value::deserialize(document)?;
        Ok(serde_json::to_value(value)?)
    }
}
