//! Reconciler tests on kube-fake-client, with a simulated StatefulSet
//! controller that creates the pods of each StatefulSet and marks them ready.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use partita_operator::config::OperatorConfig;
use partita_operator::controller::table::{reconcile_table, FINALIZER};
use partita_operator::controller::Context;
use partita_operator::crd::table::{Table, TableStatus};
use partita_operator::metrics::Metrics;
use serde_json::json;

const NS: &str = "shop";

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
    - {attributeName: sk, attributeType: S}
  keySchema:
    - {attributeName: pk, keyType: HASH}
    - {attributeName: sk, keyType: RANGE}
  provisionedThroughput: {readCapacityUnits: 6000, writeCapacityUnits: 1500}
  placement:
    zones: [zone-a, zone-b, zone-c]
"#;

async fn setup() -> (Client, std::sync::Arc<Context>) {
    let client = kube_fake_client::ClientBuilder::new()
        .with_resource::<Table>()
        .with_status_subresource::<Table>()
        .with_status_subresource::<StatefulSet>()
        .build()
        .await
        .unwrap();
    let ctx = Context::new(
        client.clone(),
        OperatorConfig::default(),
        Metrics::new().unwrap(),
    );
    (client, ctx)
}

fn tables(client: &Client) -> Api<Table> {
    Api::namespaced(client.clone(), NS)
}

async fn create(client: &Client, yaml: &str) -> Table {
    let table: Table = serde_yaml::from_str(yaml).unwrap();
    tables(client)
        .create(&PostParams::default(), &table)
        .await
        .unwrap()
}

/// Fetches the Table and runs one reconcile.
async fn reconcile(client: &Client, ctx: &Context) -> Table {
    let table = tables(client).get("orders").await.unwrap();
    reconcile_table(&table, ctx).await.unwrap();
    tables(client).get("orders").await.unwrap()
}

fn status(t: &Table) -> TableStatus {
    t.status.clone().unwrap_or_default()
}

fn condition(t: &Table, type_: &str) -> (String, String) {
    let s = t.status.as_ref().unwrap();
    let c = s.conditions.iter().find(|c| c.type_ == type_).unwrap();
    (c.status.clone(), c.reason.clone())
}

async fn statefulsets(client: &Client) -> Vec<StatefulSet> {
    Api::<StatefulSet>::namespaced(client.clone(), NS)
        .list(&ListParams::default().labels("partita.dev/table=orders"))
        .await
        .unwrap()
        .items
}

async fn event_reasons(client: &Client) -> Vec<(String, String)> {
    Api::<Event>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| (e.type_.unwrap_or_default(), e.reason.unwrap_or_default()))
        .collect()
}

/// What the StatefulSet controller and kubelet would do: one ready pod per
/// ordinal, surplus pods removed, status reporting the rollout done.
async fn simulate_statefulset_controller(client: &Client) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let sts_api: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    for sts in statefulsets(client).await {
        let name = sts.name_any();
        let spec = sts.spec.clone().unwrap();
        let replicas = spec.replicas.unwrap_or(1);
        let labels = spec.template.metadata.clone().unwrap().labels.unwrap();
        let revision = template_revision(&spec.template);
        for i in 0..replicas {
            let pod_name = format!("{name}-{i}");
            if pods.get_opt(&pod_name).await.unwrap().is_some() {
                continue;
            }
            let mut pod_labels = labels.clone();
            pod_labels.insert("apps.kubernetes.io/pod-index".into(), i.to_string());
            pod_labels.insert("controller-revision-hash".into(), revision.clone());
            let pod = Pod {
                metadata: ObjectMeta {
                    name: Some(pod_name),
                    namespace: Some(NS.into()),
                    labels: Some(pod_labels),
                    ..ObjectMeta::default()
                },
                spec: spec.template.spec.clone(),
                status: Some(PodStatus {
                    conditions: Some(vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        ..PodCondition::default()
                    }]),
                    ..PodStatus::default()
                }),
            };
            pods.create(&PostParams::default(), &pod).await.unwrap();
        }
        for pod in pods
            .list(
                &ListParams::default()
                    .labels(&format!("partita.dev/zone={}", labels["partita.dev/zone"])),
            )
            .await
            .unwrap()
            .items
        {
            let ordinal: i32 = pod.name_any().rsplit_once('-').unwrap().1.parse().unwrap();
            if ordinal >= replicas {
                pods.delete(&pod.name_any(), &DeleteParams::default())
                    .await
                    .unwrap();
            }
        }
        // OnDelete: pods keep the revision they were created from.
        let updated = pods
            .list(&ListParams::default().labels(&format!(
                "partita.dev/zone={},controller-revision-hash={revision}",
                labels["partita.dev/zone"]
            )))
            .await
            .unwrap()
            .items
            .len() as i32;
        let status = StatefulSetStatus {
            observed_generation: sts.metadata.generation,
            replicas,
            ready_replicas: Some(replicas),
            updated_replicas: Some(updated),
            available_replicas: Some(replicas),
            current_replicas: Some(updated),
            update_revision: Some(revision),
            ..StatefulSetStatus::default()
        };
        sts_api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
            .unwrap();
    }
}

/// A short hash of a pod template, as the StatefulSet controller's
/// revision names.
fn template_revision(template: &k8s_openapi::api::core::v1::PodTemplateSpec) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(template).unwrap().hash(&mut hasher);
    format!("{:x}", hasher.finish())
}

async fn pod_names(client: &Client) -> Vec<String> {
    Api::<Pod>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| p.name_any())
        .collect()
}

#[tokio::test]
async fn a_new_image_restarts_one_ready_pod_at_a_time_across_the_zones() {
    let (client, ctx) = setup().await;
    make_active(&client, &ctx).await;
    let sts = statefulsets(&client).await;
    assert!(sts.iter().all(|s| s
        .spec
        .as_ref()
        .unwrap()
        .update_strategy
        .as_ref()
        .unwrap()
        .type_
        .as_deref()
        == Some("OnDelete")));
    // An operator upgrade with a new data-plane image.
    let upgraded = Context::new(
        client.clone(),
        OperatorConfig {
            image: "partita:v2".into(),
            ..OperatorConfig::default()
        },
        Metrics::new().unwrap(),
    );
    let t = reconcile(&client, &upgraded).await;
    assert_eq!(status(&t).table_status.as_deref(), Some("UPDATING"));
    let mut restarted = Vec::new();
    for _ in 0..6 {
        simulate_statefulset_controller(&client).await;
        let before = pod_names(&client).await;
        assert_eq!(before.len(), 6);
        let t = reconcile(&client, &upgraded).await;
        let after = pod_names(&client).await;
        let gone: Vec<&String> = before.iter().filter(|p| !after.contains(p)).collect();
        assert_eq!(gone.len(), 1, "one pod restarted per step: {gone:?}");
        restarted.push(gone[0].clone());
        assert_eq!(
            condition(&t, "Progressing"),
            ("True".into(), "RollingUpdate".into())
        );
        // Until its replacement runs, no other pod is touched.
        reconcile(&client, &upgraded).await;
        assert_eq!(pod_names(&client).await.len(), 5);
    }
    restarted.sort();
    restarted.dedup();
    assert_eq!(
        restarted.len(),
        6,
        "every pod restarted once: {restarted:?}"
    );
    simulate_statefulset_controller(&client).await;
    let t = reconcile(&client, &upgraded).await;
    assert_eq!(pod_names(&client).await.len(), 6);
    assert_eq!(status(&t).table_status.as_deref(), Some("ACTIVE"));
    assert_eq!(
        condition(&t, "Progressing"),
        ("False".into(), "Settled".into())
    );
    // Each restart is an Event (kube's recorder folds repeats into a series).
    assert!(event_reasons(&client)
        .await
        .contains(&("Normal".into(), "RollingUpdate".into())));
}

#[tokio::test]
async fn a_pod_that_is_not_ready_holds_the_rollout() {
    let (client, ctx) = setup().await;
    make_active(&client, &ctx).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    pods.patch_status(
        "orders-zone-b-1",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})),
    )
    .await
    .unwrap();
    let patched = pods.get("orders-zone-b-1").await.unwrap();
    assert_eq!(
        patched.status.unwrap().conditions.unwrap()[0].status,
        "False"
    );
    let upgraded = Context::new(
        client.clone(),
        OperatorConfig {
            image: "partita:v2".into(),
            ..OperatorConfig::default()
        },
        Metrics::new().unwrap(),
    );
    reconcile(&client, &upgraded).await;
    simulate_statefulset_controller(&client).await;
    let t = reconcile(&client, &upgraded).await;
    assert_eq!(pod_names(&client).await.len(), 6, "nothing restarted");
    let message = &status(&t)
        .conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .unwrap()
        .message
        .clone();
    assert!(
        message.contains("waiting for orders-zone-b-1 to be ready"),
        "{message}"
    );
}

async fn make_active(client: &Client, ctx: &Context) -> Table {
    create(client, ORDERS).await;
    reconcile(client, ctx).await;
    simulate_statefulset_controller(client).await;
    let t = reconcile(client, ctx).await;
    assert_eq!(
        status(&t).table_status.as_deref(),
        Some("ACTIVE"),
        "{:#?} {:#?}",
        status(&t),
        statefulsets(client)
            .await
            .iter()
            .map(|s| (s.metadata.generation, s.status.clone()))
            .collect::<Vec<_>>()
    );
    t
}

#[tokio::test]
async fn table_goes_from_creating_to_active() {
    let (client, ctx) = setup().await;
    create(&client, ORDERS).await;

    let t = reconcile(&client, &ctx).await;
    assert!(t.finalizers().contains(&FINALIZER.to_string()));
    let s = status(&t);
    assert_eq!(s.table_status.as_deref(), Some("CREATING"));
    assert_eq!(s.partition_count, Some(2));
    assert_eq!(s.ready.as_deref(), Some("0/6"));
    assert_eq!(
        condition(&t, "Available"),
        ("False".into(), "QuorumNotReady".into())
    );
    assert_eq!(
        condition(&t, "Progressing"),
        ("True".into(), "Creating".into())
    );
    let sts = statefulsets(&client).await;
    assert_eq!(sts.len(), 3);
    assert!(sts
        .iter()
        .all(|s| s.spec.as_ref().unwrap().replicas == Some(2)));
    assert!(
        Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), NS)
            .get_opt("orders-topology")
            .await
            .unwrap()
            .is_some()
    );
    assert!(event_reasons(&client)
        .await
        .contains(&("Normal".into(), "Created".into())));

    simulate_statefulset_controller(&client).await;
    let t = reconcile(&client, &ctx).await;
    let s = status(&t);
    assert_eq!(s.table_status.as_deref(), Some("ACTIVE"));
    assert_eq!(s.ready.as_deref(), Some("6/6"));
    assert_eq!(s.observed_generation, t.metadata.generation);
    assert_eq!(s.partitions.len(), 2);
    assert!(s.partitions.iter().all(|p| p.ready_replicas == 3));
    assert_eq!(s.partitions[1].hash_range_start, "0x8000000000000000");
    assert_eq!(
        condition(&t, "Available"),
        ("True".into(), "QuorumReady".into())
    );
    assert_eq!(
        condition(&t, "Progressing"),
        ("False".into(), "Settled".into())
    );
    assert_eq!(
        condition(&t, "Degraded"),
        ("False".into(), "AsExpected".into())
    );
    assert_eq!(
        s.table_arn.as_deref(),
        Some("arn:aws:dynamodb:us-east-1:123456789012:table/Orders")
    );
}

#[tokio::test]
async fn throughput_increase_is_reported_not_applied_by_adding_pods() {
    let (client, ctx) = setup().await;
    let before = make_active(&client, &ctx).await;
    let gen_before = before.metadata.generation.unwrap();

    let patch = json!({"spec": {"provisionedThroughput": {"readCapacityUnits": 12000, "writeCapacityUnits": 1500}}});
    tables(&client)
        .patch("orders", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let t = reconcile(&client, &ctx).await;
    let s = status(&t);
    assert!(t.metadata.generation.unwrap() > gen_before);
    assert_eq!(s.observed_generation, t.metadata.generation);
    assert_eq!(s.partition_count, Some(2));
    assert_eq!(s.desired_partition_count, Some(4));
    assert_eq!(
        condition(&t, "Degraded"),
        ("True".into(), "PartitionSplitRequired".into())
    );
    assert!(statefulsets(&client)
        .await
        .iter()
        .all(|s| s.spec.as_ref().unwrap().replicas == Some(2)));
    assert!(event_reasons(&client)
        .await
        .contains(&("Warning".into(), "PartitionSplitRequired".into())));
    // The topology carries the new throughput for the data plane.
    let cm = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), NS)
        .get("orders-topology")
        .await
        .unwrap();
    assert!(cm.data.unwrap()["topology.json"].contains("\"ReadCapacityUnits\": 12000"));

    // Back within what two partitions serve: no longer degraded.
    let patch = json!({"spec": {"provisionedThroughput": {"readCapacityUnits": 3000, "writeCapacityUnits": 1000}}});
    tables(&client)
        .patch("orders", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let t = reconcile(&client, &ctx).await;
    assert_eq!(status(&t).observed_generation, t.metadata.generation);
    assert_eq!(status(&t).partition_count, Some(2));
    assert_eq!(
        condition(&t, "Degraded"),
        ("False".into(), "AsExpected".into())
    );
}

#[tokio::test]
async fn stopping_scales_to_zero_with_a_scale_event() {
    let (client, ctx) = setup().await;
    make_active(&client, &ctx).await;
    let patch = json!({"spec": {"clusterOperation": {"stopped": true}}});
    tables(&client)
        .patch("orders", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let t = reconcile(&client, &ctx).await;
    assert!(statefulsets(&client)
        .await
        .iter()
        .all(|s| s.spec.as_ref().unwrap().replicas == Some(0)));
    assert_eq!(status(&t).table_status.as_deref(), Some("STOPPED"));
    assert!(event_reasons(&client)
        .await
        .contains(&("Normal".into(), "Scaled".into())));
}

#[tokio::test]
async fn invalid_spec_degrades_without_touching_objects() {
    let (client, ctx) = setup().await;
    make_active(&client, &ctx).await;
    let objects_before: Vec<_> = statefulsets(&client)
        .await
        .into_iter()
        .map(|s| {
            (
                s.name_any(),
                s.resource_version(),
                serde_json::to_value(&s.spec).unwrap(),
            )
        })
        .collect();

    // A key attribute missing from attributeDefinitions (the API server's CEL
    // rule would refuse it; the operator must not trust that it ran).
    let patch =
        json!({"spec": {"attributeDefinitions": [{"attributeName": "pk", "attributeType": "S"}]}});
    tables(&client)
        .patch("orders", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let t = reconcile(&client, &ctx).await;
    assert_eq!(
        condition(&t, "Degraded"),
        ("True".into(), "InvalidKeySchema".into())
    );
    assert_eq!(status(&t).observed_generation, t.metadata.generation);
    assert_eq!(status(&t).table_status.as_deref(), Some("ACTIVE"));
    assert!(event_reasons(&client)
        .await
        .contains(&("Warning".into(), "InvalidKeySchema".into())));
    let objects_after: Vec<_> = statefulsets(&client)
        .await
        .into_iter()
        .map(|s| {
            (
                s.name_any(),
                s.resource_version(),
                serde_json::to_value(&s.spec).unwrap(),
            )
        })
        .collect();
    assert_eq!(objects_before, objects_after);

    // Reconciling again does not repeat the Warning.
    reconcile(&client, &ctx).await;
    let warnings = event_reasons(&client)
        .await
        .into_iter()
        .filter(|(_, r)| r == "InvalidKeySchema")
        .count();
    assert_eq!(warnings, 1);
}

/// kube-fake-client has no graceful deletion (its delete removes objects at
/// once, and it drops deletionTimestamp on create), so these tests store the
/// Table with our finalizer and hand the reconciler the object as the API
/// server presents it after `kubectl delete`: with deletionTimestamp set.
async fn create_with_finalizer(client: &Client, yaml: &str) {
    let mut table: Table = serde_yaml::from_str(yaml).unwrap();
    table.metadata.finalizers = Some(vec![FINALIZER.to_string()]);
    tables(client)
        .create(&PostParams::default(), &table)
        .await
        .unwrap();
}

async fn reconcile_deleting(client: &Client, ctx: &Context) -> Table {
    let mut t = tables(client).get("orders").await.unwrap();
    t.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    reconcile_table(&t, ctx).await.unwrap();
    tables(client).get("orders").await.unwrap()
}

#[tokio::test]
async fn deletion_protection_blocks_deletion_until_disabled() {
    let (client, ctx) = setup().await;
    create_with_finalizer(
        &client,
        &format!("{ORDERS}  deletionProtectionEnabled: true\n"),
    )
    .await;

    let t = reconcile_deleting(&client, &ctx).await;
    assert!(t.finalizers().contains(&FINALIZER.to_string()));
    assert_eq!(
        condition(&t, "Degraded"),
        ("True".into(), "DeletionProtected".into())
    );
    assert!(event_reasons(&client)
        .await
        .contains(&("Warning".into(), "DeletionProtected".into())));
    let t = reconcile_deleting(&client, &ctx).await;
    assert!(t.finalizers().contains(&FINALIZER.to_string()));

    let patch = json!({"spec": {"deletionProtectionEnabled": false}});
    tables(&client)
        .patch("orders", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let t = reconcile_deleting(&client, &ctx).await;
    assert!(
        t.finalizers().is_empty(),
        "finalizer released: {:?}",
        t.finalizers()
    );
}

async fn create_pvc(client: &Client, name: &str, table: &str) {
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    let pvc = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            labels: Some(BTreeMap::from([(
                "partita.dev/table".to_string(),
                table.to_string(),
            )])),
            ..ObjectMeta::default()
        },
        ..PersistentVolumeClaim::default()
    };
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &pvc)
        .await
        .unwrap();
}

async fn pvc_exists(client: &Client, name: &str) -> bool {
    Api::<k8s_openapi::api::core::v1::PersistentVolumeClaim>::namespaced(client.clone(), NS)
        .get_opt(name)
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn delete_policy_removes_the_tables_volumes_only() {
    let (client, ctx) = setup().await;
    create_pvc(&client, "data-orders-zone-a-0", "orders").await;
    create_pvc(&client, "data-other-zone-a-0", "other").await;
    create_with_finalizer(
        &client,
        &format!("{ORDERS}    storage: {{volumeRetentionPolicy: Delete}}\n"),
    )
    .await;
    let t = reconcile_deleting(&client, &ctx).await;
    assert!(t.finalizers().is_empty());
    assert_eq!(status(&t).table_status.as_deref(), Some("DELETING"));
    assert!(!pvc_exists(&client, "data-orders-zone-a-0").await);
    assert!(pvc_exists(&client, "data-other-zone-a-0").await);
}

#[tokio::test]
async fn retain_policy_keeps_volumes() {
    let (client, ctx) = setup().await;
    create_pvc(&client, "data-orders-zone-a-0", "orders").await;
    create_with_finalizer(&client, ORDERS).await;
    let t = reconcile_deleting(&client, &ctx).await;
    assert!(t.finalizers().is_empty());
    assert!(pvc_exists(&client, "data-orders-zone-a-0").await);
}

/// The gateway-config controller renders the gateway's topology ConfigMap
/// as soon as it starts, with no Table or AccessPolicy in the cluster: a
/// fresh install's gateway gets its (empty) topology without waiting for
/// the first periodic render.
#[tokio::test]
async fn gateway_config_is_rendered_at_start_with_no_tables() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use partita_operator::controller::access_policy::{run, GatewayTarget};
    use partita_operator::crd::access_policy::AccessPolicy;
    let client = kube_fake_client::ClientBuilder::new()
        .with_resource::<Table>()
        .with_resource::<AccessPolicy>()
        .build()
        .await
        .unwrap();
    let ctx = Context::new(
        client.clone(),
        OperatorConfig::default(),
        Metrics::new().unwrap(),
    );
    let target = GatewayTarget {
        namespace: "partita-system".into(),
        name: "partita-gateway".into(),
    };
    let controller = tokio::spawn(run(ctx, target));
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "partita-system");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let rendered = loop {
        if let Ok(cm) = configmaps.get("partita-gateway-topology").await {
            break cm;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no gateway topology rendered at start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    controller.abort();
    let file = rendered.data.unwrap()["topology.json"].clone();
    let topology = partita_topology::TopologyFile::parse(file.as_bytes()).unwrap();
    assert!(topology.tables.is_empty(), "{file}");
}

/// Time to live is no CreateTable parameter: the topology carries it
/// beside the CreateTable body, for the nodes to create the table with.
#[tokio::test]
async fn time_to_live_reaches_the_topology() {
    let (client, ctx) = setup().await;
    let with_ttl = format!("{ORDERS}  timeToLive: {{attributeName: expiresAt, enabled: true}}\n");
    create(&client, &with_ttl).await;
    reconcile(&client, &ctx).await;
    let cm = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), NS)
        .get("orders-topology")
        .await
        .unwrap();
    let file: serde_json::Value = serde_json::from_str(&cm.data.unwrap()["topology.json"]).unwrap();
    let table = &file["tables"][0];
    assert_eq!(
        table["timeToLive"],
        json!({"attributeName": "expiresAt", "enabled": true}),
        "{table}"
    );
    assert!(table["createTable"]
        .get("TimeToLiveSpecification")
        .is_none());
}

/// A DynamoDB table name names one table in the cluster: a later Table
/// with a name already held in another namespace is Degraded and gets no
/// objects (so nothing routes to it); the earlier one is untouched.
#[tokio::test]
async fn a_table_name_held_in_another_namespace_degrades_the_later_table() {
    let (client, ctx) = setup().await;
    create(&client, ORDERS).await;
    reconcile(&client, &ctx).await;
    let other: Api<Table> = Api::namespaced(client.clone(), "tenant-b");
    let mut copy: Table = serde_yaml::from_str(ORDERS).unwrap();
    copy.metadata.namespace = Some("tenant-b".into());
    copy.metadata.name = Some("orders-copy".into());
    other.create(&PostParams::default(), &copy).await.unwrap();
    let later = other.get("orders-copy").await.unwrap();
    reconcile_table(&later, &ctx).await.unwrap();
    let later = other.get("orders-copy").await.unwrap();
    assert_eq!(
        condition(&later, "Degraded"),
        ("True".into(), "TableNameConflict".into())
    );
    let message = &later.status.as_ref().unwrap().conditions[0].message;
    assert!(message.contains("shop/orders"), "{message}");
    let built = Api::<StatefulSet>::namespaced(client.clone(), "tenant-b")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert!(built.is_empty(), "{built:?}");
    let configmaps =
        Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), "tenant-b")
            .list(&ListParams::default())
            .await
            .unwrap()
            .items;
    assert!(configmaps.is_empty(), "no topology for the later Table");
    // The earlier Table keeps its objects and is not degraded.
    let t = reconcile(&client, &ctx).await;
    assert_eq!(condition(&t, "Degraded").0, "False");
    assert_eq!(statefulsets(&client).await.len(), 3);
}

/// Deleting a Table shows DELETING, removes its topology (the gateways stop
/// routing to it), scales its StatefulSets to zero and deletes them once
/// their pods are gone, and only then releases the finalizer.
#[tokio::test]
async fn deletion_stops_routing_and_pods_before_releasing_the_table() {
    let (client, ctx) = setup().await;
    create_with_finalizer(&client, ORDERS).await;
    reconcile(&client, &ctx).await;
    simulate_statefulset_controller(&client).await;
    let t = reconcile_deleting(&client, &ctx).await;
    assert_eq!(status(&t).table_status.as_deref(), Some("DELETING"));
    assert_eq!(
        condition(&t, "Progressing"),
        ("True".into(), "Deleting".into())
    );
    let topology = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), NS)
        .get_opt("orders-topology")
        .await
        .unwrap();
    assert!(topology.is_none(), "the gateways stop routing to it");
    let sts = statefulsets(&client).await;
    assert_eq!(sts.len(), 3);
    assert!(sts
        .iter()
        .all(|s| s.spec.as_ref().unwrap().replicas == Some(0)));
    assert!(
        t.finalizers().contains(&FINALIZER.to_string()),
        "kept while pods run"
    );
    // The StatefulSet controller stops the pods.
    simulate_statefulset_controller(&client).await;
    let t = reconcile_deleting(&client, &ctx).await;
    assert!(statefulsets(&client).await.is_empty());
    assert!(t.finalizers().is_empty());
}

/// Orders with its storage size and class set.
fn orders_with_storage(size: &str, class: &str) -> String {
    format!("{ORDERS}    storage: {{size: {size}, storageClassName: {class}}}\n")
}

async fn set_storage(client: &Client, size: &str, class: &str) {
    tables(client)
        .patch(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"placement": {"storage": {"size": size, "storageClassName": class}}}})),
        )
        .await
        .unwrap();
}

async fn claim_sizes(client: &Client) -> Vec<String> {
    statefulsets(client)
        .await
        .iter()
        .map(|s| {
            s.spec
                .as_ref()
                .unwrap()
                .volume_claim_templates
                .as_ref()
                .unwrap()[0]
                .spec
                .as_ref()
                .unwrap()
                .resources
                .as_ref()
                .unwrap()
                .requests
                .as_ref()
                .unwrap()["storage"]
                .0
                .clone()
        })
        .collect()
}

async fn create_storage_class(client: &Client, name: &str, expands: bool) {
    use k8s_openapi::api::storage::v1::StorageClass;
    let class = StorageClass {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        provisioner: "example.com/disk".into(),
        allow_volume_expansion: Some(expands),
        ..StorageClass::default()
    };
    Api::<StorageClass>::all(client.clone())
        .create(&PostParams::default(), &class)
        .await
        .unwrap();
}

async fn active_with_storage(client: &Client, ctx: &Context, class: &str) {
    create(client, &orders_with_storage("20Gi", class)).await;
    reconcile(client, ctx).await;
    simulate_statefulset_controller(client).await;
    let t = reconcile(client, ctx).await;
    assert_eq!(status(&t).table_status.as_deref(), Some("ACTIVE"));
}

#[tokio::test]
async fn a_larger_size_on_a_class_that_cannot_expand_is_refused_with_a_reason() {
    let (client, ctx) = setup().await;
    create_storage_class(&client, "fixed", false).await;
    active_with_storage(&client, &ctx, "fixed").await;
    set_storage(&client, "30Gi", "fixed").await;
    let t = reconcile(&client, &ctx).await;
    assert_eq!(claim_sizes(&client).await, ["20Gi", "20Gi", "20Gi"]);
    assert_eq!(
        condition(&t, "Degraded"),
        ("True".into(), "StorageResizeUnsupported".into())
    );
    assert!(event_reasons(&client)
        .await
        .contains(&("Warning".into(), "StorageResizeUnsupported".into())));
    // Smaller: Kubernetes cannot shrink a volume.
    set_storage(&client, "10Gi", "fixed").await;
    let t = reconcile(&client, &ctx).await;
    assert_eq!(
        condition(&t, "Degraded"),
        ("True".into(), "StorageShrinkRefused".into())
    );
    // Another class: refused too.
    set_storage(&client, "20Gi", "other").await;
    let t = reconcile(&client, &ctx).await;
    assert_eq!(
        condition(&t, "Degraded"),
        ("True".into(), "StorageClassChangeRefused".into())
    );
    // Back to what the volumes are: no longer Degraded.
    set_storage(&client, "20480Mi", "fixed").await;
    let t = reconcile(&client, &ctx).await;
    assert_eq!(condition(&t, "Degraded").0, "False");
    assert_eq!(claim_sizes(&client).await, ["20Gi", "20Gi", "20Gi"]);
}

#[tokio::test]
async fn a_larger_size_expands_the_claims_and_recreates_the_sets_around_their_pods() {
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    let (client, ctx) = setup().await;
    create_storage_class(&client, "fast", true).await;
    active_with_storage(&client, &ctx, "fast").await;
    // The claims the StatefulSet controller made from the templates.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NS);
    for sts in statefulsets(&client).await {
        let labels = sts.spec.as_ref().unwrap().selector.match_labels.clone();
        for i in 0..2 {
            let claim = PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(format!("data-{}-{i}", sts.name_any())),
                    namespace: Some(NS.into()),
                    labels: labels.clone(),
                    ..ObjectMeta::default()
                },
                spec: Some(k8s_openapi::api::core::v1::PersistentVolumeClaimSpec {
                    resources: Some(k8s_openapi::api::core::v1::VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([(
                            "storage".to_string(),
                            k8s_openapi::apimachinery::pkg::api::resource::Quantity("20Gi".into()),
                        )])),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..PersistentVolumeClaim::default()
            };
            claims.create(&PostParams::default(), &claim).await.unwrap();
        }
    }
    let pods_before = pod_names(&client).await;
    set_storage(&client, "40Gi", "fast").await;
    reconcile(&client, &ctx).await;
    // Every claim asks for the new size; the sets are gone, their pods not.
    for claim in claims.list(&ListParams::default()).await.unwrap().items {
        let size = &claim.spec.unwrap().resources.unwrap().requests.unwrap()["storage"].0;
        assert_eq!(size, "40Gi", "{}", claim.metadata.name.unwrap());
    }
    assert!(statefulsets(&client).await.is_empty());
    assert_eq!(pod_names(&client).await, pods_before);
    assert!(event_reasons(&client)
        .await
        .contains(&("Normal".into(), "StorageResized".into())));
    // The next reconcile creates them with the new template.
    let t = reconcile(&client, &ctx).await;
    assert_eq!(claim_sizes(&client).await, ["40Gi", "40Gi", "40Gi"]);
    assert_eq!(condition(&t, "Degraded").0, "False");
    simulate_statefulset_controller(&client).await;
    let t = reconcile(&client, &ctx).await;
    assert_eq!(pod_names(&client).await, pods_before);
    assert_eq!(status(&t).table_status.as_deref(), Some("ACTIVE"));
}
