//! The pod runtime on the simulated API, with `partita serve` pods: pods
//! get their own addresses, PVCs outlive pods, a deleted pod comes back at
//! a new address with its data, and template changes roll out as the
//! StatefulSet controller does (RollingUpdate one pod at a time from the
//! highest ordinal, honouring `partition`; OnDelete not at all).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use partita_kubesim::pods::{PodEvent, Runtime, RuntimeOptions};
use partita_kubesim::KubeSim;
use serde_json::json;

fn partita_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let binary = exe.parent().unwrap().parent().unwrap().join("partita");
    assert!(
        binary.exists(),
        "{} is missing: build it first (cargo build -p partita)",
        binary.display()
    );
    binary
}

fn statefulset(replicas: i32, strategy: serde_json::Value, marker: &str) -> StatefulSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "test"},
        "spec": {
            "replicas": replicas,
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "updateStrategy": strategy,
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{
                    "name": "db",
                    "image": "example.com/partita:1",
                    "args": ["serve", "--host", "0.0.0.0", "--port", "8000", "--admin-port", "8001",
                             "--data-dir", "/var/lib/db"],
                    "env": [{"name": "MARKER", "value": marker}],
                    "ports": [{"name": "metrics", "containerPort": 8001}],
                    "readinessProbe": {"httpGet": {"path": "/readyz", "port": "metrics"}},
                    "volumeMounts": [{"name": "data", "mountPath": "/var/lib/db"}]
                }]}
            },
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
        }
    }))
    .unwrap()
}

struct Setup {
    _root: tempfile::TempDir,
    runtime: Runtime,
    sets: Api<StatefulSet>,
    pods: Api<Pod>,
}

async fn setup(set: StatefulSet) -> Setup {
    let sim = KubeSim::new(
        kube_fake_client::ClientBuilder::new()
            .with_status_subresource::<StatefulSet>()
            .with_status_subresource::<Pod>(),
    )
    .await
    .unwrap();
    let root = tempfile::tempdir().unwrap();
    let runtime = Runtime::start(
        sim.client(),
        RuntimeOptions {
            root: root.path().to_path_buf(),
            images: [("partita".to_string(), partita_binary())].into(),
            env: vec![],
        },
    )
    .unwrap();
    let sets: Api<StatefulSet> = Api::namespaced(sim.client(), "test");
    sets.create(&PostParams::default(), &set).await.unwrap();
    Setup {
        _root: root,
        runtime,
        sets,
        pods: Api::namespaced(sim.client(), "test"),
    }
}

async fn wait_ready(s: &Setup, replicas: i32, revision_of: Option<&str>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let set = s.sets.get_status("db").await.unwrap();
        let generation = set.metadata.generation;
        let status = set.status.unwrap_or_default();
        let updated_ok = revision_of.is_none_or(|_| status.updated_replicas == Some(replicas));
        if status.ready_replicas == Some(replicas)
            && status.replicas == replicas
            && updated_ok
            && status.observed_generation >= generation
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not ready: {status:?}\n{:?}",
            s.runtime.history()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn call(address: &str, op: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = body.to_string();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: DynamoDB_20120810.{op}\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    (status, serde_json::from_str(body).unwrap_or_default())
}

fn address_of(s: &Setup, pod: &str) -> String {
    s.runtime.addresses()[&("test".to_string(), pod.to_string())].clone()
}

/// Pods get their own addresses; a pod deleted through the API comes back
/// at a new address with the data of its PVC.
#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_pod_comes_back_at_a_new_address_with_its_volume() {
    let s = setup(statefulset(2, json!({"type": "RollingUpdate"}), "a")).await;
    wait_ready(&s, 2, None).await;
    let (first, second) = (address_of(&s, "db-0"), address_of(&s, "db-1"));
    assert_ne!(first, second);
    let endpoint = format!("{first}:8000");
    let (status, body) = call(
        &endpoint,
        "CreateTable",
        json!({"TableName": "kept",
        "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = call(
        &endpoint,
        "PutItem",
        json!({"TableName": "kept", "Item": {"k": {"S": "x"}}}),
    )
    .await;
    assert_eq!(status, 200);
    s.pods
        .delete("db-0", &DeleteParams::default())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let moved = loop {
        if let Some(address) = s
            .runtime
            .addresses()
            .get(&("test".to_string(), "db-0".to_string()))
        {
            if *address != first {
                break address.clone();
            }
        }
        assert!(Instant::now() < deadline, "db-0 was not recreated");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    wait_ready(&s, 2, None).await;
    let (status, body) = call(
        &format!("{moved}:8000"),
        "GetItem",
        json!({"TableName": "kept", "Key": {"k": {"S": "x"}}, "ConsistentRead": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Item"]["k"]["S"], "x", "the PVC outlived the pod");
    let pod = s.pods.get("db-0").await.unwrap();
    assert_eq!(pod.status.unwrap().pod_ip.as_deref(), Some(moved.as_str()));
}

/// A pod whose claim was deleted (its volume lost) comes back on a new,
/// empty volume: what it stored is gone, its peer keeps its own.
#[tokio::test(flavor = "multi_thread")]
async fn a_pod_whose_claim_was_deleted_comes_back_on_an_empty_volume() {
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    let s = setup(statefulset(2, json!({"type": "RollingUpdate"}), "a")).await;
    wait_ready(&s, 2, None).await;
    let create = json!({"TableName": "kept",
        "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST"});
    for pod in ["db-0", "db-1"] {
        let endpoint = format!("{}:8000", address_of(&s, pod));
        let (status, body) = call(&endpoint, "CreateTable", create.clone()).await;
        assert_eq!(status, 200, "{body}");
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(s.pods.clone().into_client(), "test");
    let before = claims.get("data-db-0").await.unwrap().metadata.uid;
    // The claim goes first (it stays in use), then the pod.
    claims
        .delete("data-db-0", &DeleteParams::default())
        .await
        .unwrap();
    let old = address_of(&s, "db-0");
    s.pods
        .delete("db-0", &DeleteParams::default())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while s
        .runtime
        .addresses()
        .get(&("test".to_string(), "db-0".to_string()))
        .is_none_or(|a| *a == old)
    {
        assert!(Instant::now() < deadline, "db-0 was not recreated");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_ready(&s, 2, None).await;
    let after = claims.get("data-db-0").await.unwrap().metadata.uid;
    assert_ne!(after, before, "a new claim");
    let (status, body) = call(
        &format!("{}:8000", address_of(&s, "db-0")),
        "DescribeTable",
        json!({"TableName": "kept"}),
    )
    .await;
    assert_eq!(status, 400, "the new volume is empty: {body}");
    assert_eq!(
        body["__type"],
        "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException"
    );
    let (status, body) = call(
        &format!("{}:8000", address_of(&s, "db-1")),
        "DescribeTable",
        json!({"TableName": "kept"}),
    )
    .await;
    assert_eq!(status, 200, "db-1 keeps its volume: {body}");
}

fn stops(history: &[PodEvent]) -> Vec<String> {
    history
        .iter()
        .filter(|e| e.what == "stopped")
        .map(|e| e.pod.clone())
        .collect()
}

/// A changed template rolls out one pod at a time from the highest
/// ordinal, each replaced only when every pod is ready; with a partition
/// only the ordinals at or above it; with OnDelete not at all.
#[tokio::test(flavor = "multi_thread")]
async fn template_changes_roll_out_like_the_statefulset_controller() {
    let s = setup(statefulset(3, json!({"type": "RollingUpdate"}), "a")).await;
    wait_ready(&s, 3, None).await;
    let before = s.runtime.history().len();
    s.sets
        .patch("db", &PatchParams::default(), &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [
            statefulset(3, json!({}), "b").spec.unwrap().template.spec.unwrap().containers[0].clone()
        ]}}}})))
        .await
        .unwrap();
    wait_ready(&s, 3, Some("b")).await;
    let history = s.runtime.history()[before..].to_vec();
    assert_eq!(stops(&history), ["db-2", "db-1", "db-0"], "{history:?}");
    // Never two pods down at once: every stop comes after the previous
    // replacement is ready again.
    let mut down: BTreeSet<String> = BTreeSet::new();
    for event in &history {
        match event.what.as_str() {
            "stopped" => {
                down.insert(event.pod.clone());
                assert!(down.len() <= 1, "two pods down at once: {history:?}");
            }
            "ready" => {
                down.remove(&event.pod);
            }
            _ => {}
        }
    }

    // A partition: only ordinals 2.. move.
    let before = s.runtime.history().len();
    s.sets
        .patch("db", &PatchParams::default(), &Patch::Merge(json!({"spec": {
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
            "template": {"spec": {"containers": [
                statefulset(3, json!({}), "c").spec.unwrap().template.spec.unwrap().containers[0].clone()
            ]}}}})))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while stops(&s.runtime.history()[before..]).is_empty() {
        assert!(Instant::now() < deadline, "no rollout above the partition");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_ready(&s, 3, None).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stops(&s.runtime.history()[before..]), ["db-2"]);

    // OnDelete: a template change restarts nothing.
    let before = s.runtime.history().len();
    s.sets
        .patch("db", &PatchParams::default(), &Patch::Merge(json!({"spec": {
            "updateStrategy": {"type": "OnDelete", "rollingUpdate": null},
            "template": {"spec": {"containers": [
                statefulset(3, json!({}), "d").spec.unwrap().template.spec.unwrap().containers[0].clone()
            ]}}}})))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(stops(&s.runtime.history()[before..]), Vec::<String>::new());
}
