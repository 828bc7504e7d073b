//! Builder tests: YAML Table in, full expected objects out.

use serde_json::{json, Value};

use super::*;
use crate::crd::Table;
use crate::validate::{validate_table, Existing};

const ORDERS: &str = r#"
apiVersion: partita.dev/v1alpha1
kind: Table
metadata:
  name: orders
  namespace: shop
  uid: 6b1c1f9e-0000-4000-8000-000000000001
  generation: 3
spec:
  tableName: Orders
  attributeDefinitions:
    - attributeName: pk
      attributeType: S
    - attributeName: sk
      attributeType: S
  keySchema:
    - attributeName: pk
      keyType: HASH
    - attributeName: sk
      keyType: RANGE
  billingMode: PROVISIONED
  provisionedThroughput:
    readCapacityUnits: 6000
    writeCapacityUnits: 1500
  placement:
    zones: [zone-a, zone-b, zone-c]
    storage:
      size: 20Gi
      storageClassName: fast
"#;

fn orders() -> (ValidatedTable, OwnerReference, OperatorConfig) {
    let table: Table = serde_yaml::from_str(ORDERS).unwrap();
    let config = OperatorConfig::default();
    let validated = validate_table(&table, &Existing::default(), &config).unwrap();
    let owner = crate::controller::owner_reference(&table).unwrap();
    (validated, owner, config)
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap()
}

fn expected_labels(zone: Option<&str>, component: &str) -> Value {
    let mut labels = json!({
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/instance": "orders",
        "app.kubernetes.io/managed-by": "partita-operator",
        "app.kubernetes.io/name": "partita",
        "app.kubernetes.io/part-of": "partita",
        "partita.dev/table": "orders",
    });
    if let Some(z) = zone {
        labels["partita.dev/zone"] = json!(z);
    }
    labels
}

fn owner_json() -> Value {
    json!([{
        "apiVersion": "partita.dev/v1alpha1",
        "blockOwnerDeletion": true,
        "controller": true,
        "kind": "Table",
        "name": "orders",
        "uid": "6b1c1f9e-0000-4000-8000-000000000001",
    }])
}

#[test]
fn partition_count_comes_from_throughput() {
    let (t, _, _) = orders();
    // max(1, ceil(6000/3000), ceil(1500/1000)) = 2
    assert_eq!(t.partitions, 2);
    assert_eq!(t.table_name, "Orders");
    assert_eq!(t.partition_key, "pk");
}

#[test]
fn statefulset_for_zone_a_is_complete() {
    let (t, owner, config) = orders();
    let objects = build_table_objects(&t, &owner, &config);
    assert_eq!(objects.statefulsets.len(), 3);
    let names: Vec<_> = objects
        .statefulsets
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["orders-zone-a", "orders-zone-b", "orders-zone-c"]);

    let selector = json!({
        "app.kubernetes.io/component": "node",
        "app.kubernetes.io/instance": "orders",
        "app.kubernetes.io/name": "partita",
        "partita.dev/table": "orders",
        "partita.dev/zone": "zone-a",
    });
    let expected = json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {
            "name": "orders-zone-a",
            "namespace": "shop",
            "labels": expected_labels(Some("zone-a"), "node"),
            "annotations": {"partita.dev/partitions": "2", "partita.dev/zone-name": "zone-a"},
            "ownerReferences": owner_json(),
        },
        "spec": {
            "replicas": 2,
            "serviceName": "orders-nodes",
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": selector},
            "updateStrategy": {"type": "OnDelete"},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            "template": {
                "metadata": {
                    "labels": expected_labels(Some("zone-a"), "node"),
                    "annotations": {"prometheus.io/port": "8001", "prometheus.io/scrape": "true"},
                },
                "spec": {
                    "affinity": {
                        "nodeAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": {
                                "nodeSelectorTerms": [{"matchExpressions": [{
                                    "key": "topology.kubernetes.io/zone",
                                    "operator": "In",
                                    "values": ["zone-a"],
                                }]}],
                            },
                        },
                        "podAntiAffinity": {
                            "preferredDuringSchedulingIgnoredDuringExecution": [{
                                "weight": 100,
                                "podAffinityTerm": {
                                    "labelSelector": {"matchLabels": selector},
                                    "topologyKey": "kubernetes.io/hostname",
                                },
                            }],
                        },
                    },
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": 65532,
                        "runAsGroup": 65532,
                        "fsGroup": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [{
                        "name": "partita",
                        "image": "ghcr.io/partita-db/partita:0.1.0",
                        "imagePullPolicy": "IfNotPresent",
                        "args": [
                            "node",
                            "--topology-file", "/etc/partita/topology/topology.json",
                            "--table", "Orders",
                            "--zone", "zone-a",
                            "--data-dir", "/var/lib/partita",
                            "--rpc-port", "7000",
                            "--admin-port", "8001",
                            "--log-format", "json",
                        ],
                        "env": [{
                            "name": "PARTITA_PARTITION",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}},
                        }],
                        "ports": [
                            {"name": "rpc", "containerPort": 7000, "protocol": "TCP"},
                            {"name": "metrics", "containerPort": 8001, "protocol": "TCP"},
                        ],
                        "livenessProbe": {
                            "httpGet": {"path": "/healthz", "port": "metrics"},
                            "periodSeconds": 10,
                            "failureThreshold": 6,
                        },
                        "readinessProbe": {
                            "httpGet": {"path": "/readyz", "port": "metrics"},
                            "periodSeconds": 5,
                            "failureThreshold": 3,
                        },
                        "startupProbe": {
                            "httpGet": {"path": "/healthz", "port": "metrics"},
                            "periodSeconds": 10,
                            "failureThreshold": 180,
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "runAsNonRoot": true,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "volumeMounts": [
                            {"name": "data", "mountPath": "/var/lib/partita"},
                            {"name": "topology", "mountPath": "/etc/partita/topology", "readOnly": true},
                            {"name": "tmp", "mountPath": "/tmp"},
                        ],
                    }],
                    "volumes": [
                        {"name": "topology", "configMap": {"name": "orders-topology"}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
            "volumeClaimTemplates": [{
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data", "labels": selector},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "fast",
                    "resources": {"requests": {"storage": "20Gi"}},
                },
            }],
        },
    });
    assert_eq!(to_json(&objects.statefulsets[0]), expected);
}

#[test]
fn every_zone_is_pinned_and_selected_by_its_own_labels() {
    let (t, owner, config) = orders();
    let objects = build_table_objects(&t, &owner, &config);
    for (sts, zone) in objects
        .statefulsets
        .iter()
        .zip(["zone-a", "zone-b", "zone-c"])
    {
        let v = to_json(sts);
        assert_eq!(
            v["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
                ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
                ["matchExpressions"][0]["values"],
            json!([zone])
        );
        // The selector matches the pod template's labels.
        let selector = v["spec"]["selector"]["matchLabels"].as_object().unwrap();
        let labels = &v["spec"]["template"]["metadata"]["labels"];
        for (k, val) in selector {
            assert_eq!(&labels[k], val, "{zone}: template label {k}");
        }
        assert_eq!(selector["partita.dev/zone"], json!(zone));
        assert_eq!(v["metadata"]["ownerReferences"], owner_json());
    }
}

#[test]
fn headless_service_pdb_and_topology_are_complete() {
    let (t, owner, config) = orders();
    let objects = build_table_objects(&t, &owner, &config);
    let pod_selector = json!({
        "app.kubernetes.io/component": "node",
        "app.kubernetes.io/instance": "orders",
        "app.kubernetes.io/name": "partita",
        "partita.dev/table": "orders",
    });
    assert_eq!(
        to_json(&objects.services),
        json!([{
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "orders-nodes",
                "namespace": "shop",
                "labels": expected_labels(None, "node"),
                "ownerReferences": owner_json(),
            },
            "spec": {
                "clusterIP": "None",
                "publishNotReadyAddresses": true,
                "selector": pod_selector,
                "ports": [
                    {"name": "rpc", "port": 7000, "targetPort": "rpc", "protocol": "TCP"},
                    {"name": "metrics", "port": 8001, "targetPort": "metrics", "protocol": "TCP"},
                ],
            },
        }])
    );
    assert_eq!(
        to_json(&objects.pdb),
        json!({
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {
                "name": "orders",
                "namespace": "shop",
                "labels": expected_labels(None, "node"),
                "ownerReferences": owner_json(),
            },
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": pod_selector}},
        })
    );

    let cm = to_json(&objects.topology);
    assert_eq!(
        (&cm["apiVersion"], &cm["kind"]),
        (&json!("v1"), &json!("ConfigMap"))
    );
    assert_eq!(
        cm["metadata"],
        json!({
            "name": "orders-topology",
            "namespace": "shop",
            "labels": {
                "app.kubernetes.io/component": "topology",
                "app.kubernetes.io/instance": "orders",
                "app.kubernetes.io/managed-by": "partita-operator",
                "app.kubernetes.io/name": "partita",
                "app.kubernetes.io/part-of": "partita",
                "partita.dev/table": "orders",
                "partita.dev/topology": "true",
            },
            "annotations": {"partita.dev/epoch": "1"},
            "ownerReferences": owner_json(),
        })
    );
    let file: Value = serde_json::from_str(cm["data"]["topology.json"].as_str().unwrap()).unwrap();
    let replicas = |p: u32| {
        json!(["zone-a", "zone-b", "zone-c"]
            .iter()
            .map(|z| json!({"zone": z, "address": format!("orders-{z}-{p}.orders-nodes.shop.svc:7000")}))
            .collect::<Vec<_>>())
    };
    assert_eq!(
        file,
        json!({
            "formatVersion": 1,
            "tables": [{
                "tableName": "Orders",
                "epoch": 1,
                "partitionKey": "pk",
                "createTable": {
                    "TableName": "Orders",
                    "AttributeDefinitions": [
                        {"AttributeName": "pk", "AttributeType": "S"},
                        {"AttributeName": "sk", "AttributeType": "S"},
                    ],
                    "KeySchema": [
                        {"AttributeName": "pk", "KeyType": "HASH"},
                        {"AttributeName": "sk", "KeyType": "RANGE"},
                    ],
                    "BillingMode": "PROVISIONED",
                    "ProvisionedThroughput": {"ReadCapacityUnits": 6000, "WriteCapacityUnits": 1500},
                },
                "partitions": [
                    {"id": 0, "hashRange": {"start": "0x0000000000000000", "end": "0x7fffffffffffffff"}, "replicas": replicas(0)},
                    {"id": 1, "hashRange": {"start": "0x8000000000000000", "end": "0xffffffffffffffff"}, "replicas": replicas(1)},
                ],
            }],
        })
    );
    // And the data plane's own parser accepts it.
    partita_topology::TopologyFile::parse(cm["data"]["topology.json"].as_str().unwrap().as_bytes())
        .unwrap();
}

#[test]
fn stopped_table_keeps_volumes_and_scales_to_zero() {
    let mut table: Table = serde_yaml::from_str(ORDERS).unwrap();
    table.spec.cluster_operation = Some(crate::crd::table::ClusterOperation {
        reconciliation_paused: None,
        stopped: Some(true),
    });
    table
        .spec
        .placement
        .as_mut()
        .unwrap()
        .storage
        .as_mut()
        .unwrap()
        .volume_retention_policy = Some(crate::crd::table::VolumeRetentionPolicy::Delete);
    let config = OperatorConfig::default();
    let t = validate_table(&table, &Existing::default(), &config).unwrap();
    let owner = crate::controller::owner_reference(&table).unwrap();
    let sts = to_json(&build_table_objects(&t, &owner, &config).statefulsets[1]);
    assert_eq!(sts["spec"]["replicas"], 0);
    assert_eq!(
        sts["metadata"]["annotations"]["partita.dev/partitions"],
        "2"
    );
    assert_eq!(
        sts["spec"]["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Delete", "whenScaled": "Retain"})
    );
}

#[test]
fn existing_partition_count_wins_over_throughput() {
    let table: Table = serde_yaml::from_str(ORDERS).unwrap();
    let existing = Existing {
        partitions: Some(1),
        zones: Some(vec!["zone-a".into(), "zone-b".into(), "zone-c".into()]),
        epoch: Some(4),
    };
    let t = validate_table(&table, &existing, &OperatorConfig::default()).unwrap();
    assert_eq!((t.partitions, t.needed_partitions, t.epoch), (1, 2, 4));
}

/// A Table that asks for more replicas than it lists zones gets its
/// replicas spread over the zones round-robin: zone-a holds two slots of
/// three, each its own StatefulSet pinned to zone-a, whose pods keep
/// replicas of one partition on different nodes; the topology keys the
/// second slot `zone-a/2`, which its node selects with `--zone`.
#[test]
fn more_replicas_than_zones_spread_over_the_zones() {
    let mut table: Table = serde_yaml::from_str(ORDERS).unwrap();
    let placement = table.spec.placement.as_mut().unwrap();
    placement.zones = Some(vec!["zone-a".into(), "zone-b".into()]);
    placement.replicas_per_partition = Some(3);
    let config = OperatorConfig::default();
    let t = validate_table(&table, &Existing::default(), &config).unwrap();
    let slots: Vec<(&str, &str, &str)> = t
        .zones
        .iter()
        .map(|z| (z.name.as_str(), z.slug.as_str(), z.replica.as_str()))
        .collect();
    assert_eq!(
        slots,
        [
            ("zone-a", "zone-a", "zone-a"),
            ("zone-b", "zone-b", "zone-b"),
            ("zone-a", "zone-a-2", "zone-a/2")
        ]
    );
    assert_eq!(t.replicas_per_partition(), 3);
    let owner = crate::controller::owner_reference(&table).unwrap();
    let objects = build_table_objects(&t, &owner, &config);
    let names: Vec<String> = objects
        .statefulsets
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["orders-zone-a", "orders-zone-b", "orders-zone-a-2"]);
    let second = to_json(&objects.statefulsets[2]);
    let pod = &second["spec"]["template"]["spec"];
    assert_eq!(
        pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"][0]["matchExpressions"][0]["values"],
        json!(["zone-a"])
    );
    let args: Vec<String> = serde_json::from_value(pod["containers"][0]["args"].clone()).unwrap();
    let zone_flag = args.iter().position(|a| a == "--zone").unwrap();
    assert_eq!(args[zone_flag + 1], "zone-a/2");
    let apart =
        &pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
    assert_eq!(
        apart[0]["matchLabelKeys"],
        json!(["apps.kubernetes.io/pod-index"])
    );
    assert_eq!(apart[0]["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(
        apart[0]["labelSelector"]["matchLabels"],
        to_json(&selector_labels(&t))
    );
    // zone-b holds one slot: nothing required beyond its zone.
    let single = to_json(&objects.statefulsets[1]);
    assert!(
        single["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
            ["requiredDuringSchedulingIgnoredDuringExecution"]
            .is_null()
    );
    let topology = partita_topology::TopologyFile::parse(
        objects.topology.data.as_ref().unwrap()["topology.json"].as_bytes(),
    )
    .unwrap();
    let keys: Vec<&str> = topology.tables[0].partitions[0]
        .replicas
        .iter()
        .map(|r| r.zone.as_str())
        .collect();
    assert_eq!(keys, ["zone-a", "zone-b", "zone-a/2"]);
    // Five replicas over three zones: two, two and one.
    let placement = table.spec.placement.as_mut().unwrap();
    placement.zones = Some(vec!["zone-a".into(), "zone-b".into(), "zone-c".into()]);
    placement.replicas_per_partition = Some(5);
    let t = validate_table(&table, &Existing::default(), &config).unwrap();
    let replicas: Vec<&str> = t.zones.iter().map(|z| z.replica.as_str()).collect();
    assert_eq!(
        replicas,
        ["zone-a", "zone-b", "zone-c", "zone-a/2", "zone-b/2"]
    );
    // More zones than replicas, or an even count, are refused.
    let placement = table.spec.placement.as_mut().unwrap();
    placement.zones = Some(vec!["a".into(), "b".into(), "c".into(), "d".into()]);
    placement.replicas_per_partition = Some(3);
    assert!(matches!(
        validate_table(&table, &Existing::default(), &config),
        Err(crate::validate::ValidateError::ZoneCount {
            zones: 4,
            replicas: 3
        })
    ));
    let placement = table.spec.placement.as_mut().unwrap();
    placement.zones = Some(vec!["a".into(), "b".into()]);
    placement.replicas_per_partition = None;
    assert!(validate_table(&table, &Existing::default(), &config).is_err());
}
