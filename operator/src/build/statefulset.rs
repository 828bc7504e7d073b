//! One StatefulSet per replica slot (a zone, or a zone's second and later
//! slots when a Table asks for more replicas than zones): pod ordinal i in
//! every slot is a replica of partition i (DESIGN.md §5). Required node
//! affinity pins the set to its zone; preferred anti-affinity spreads its
//! pods over the zone's nodes, and a zone of several slots keeps replicas
//! of one partition on different nodes (required).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, HTTPGetAction, NodeAffinity, NodeSelector, NodeSelectorRequirement,
    NodeSelectorTerm, ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    SeccompProfile, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
    VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use partita_topology::flags::{
    NodeFlags, RpcTlsFlags, DEFAULT_ADMIN_PORT, DEFAULT_RPC_PORT, HEALTHZ_PATH, PARTITION_ENV,
    READYZ_PATH,
};
use partita_topology::topology::FILE_NAME;

use super::{
    common_labels, headless_service_name, meta, rpc_tls_secret_name, statefulset_name,
    topology_configmap_name, zone_selector_labels, DATA_MOUNT, PARTITIONS_ANNOTATION, RUN_AS,
    TOPOLOGY_MOUNT, ZONE_ANNOTATION, ZONE_LABEL,
};
use crate::config::OperatorConfig;
use crate::crd::table::VolumeRetentionPolicy;
use crate::tls;
use crate::validate::{ValidatedTable, Zone};

/// Volume name of the table's RPC certificate Secret in data pods.
pub const RPC_TLS_VOLUME: &str = "rpc-tls";

/// The `--rpc-tls-*` flags pointing at the mounted certificate Secret.
pub fn rpc_tls_flags() -> RpcTlsFlags {
    RpcTlsFlags {
        ca_file: format!("{}/{}", tls::MOUNT, tls::SECRET_CA),
        cert_file: format!("{}/{}", tls::MOUNT, tls::SECRET_CERT),
        key_file: format!("{}/{}", tls::MOUNT, tls::SECRET_KEY),
    }
}

/// Returns `sts` with the fingerprint of its pods' certificate in the pod
/// template ([`tls::CERT_FINGERPRINT_ANNOTATION`]): a re-issued certificate
/// changes the template and rolls the pods, which read it once at start.
pub fn with_cert_fingerprint(sts: &StatefulSet, fingerprint: &str) -> StatefulSet {
    let mut out = sts.clone();
    if let Some(spec) = out.spec.as_mut() {
        spec.template
            .metadata
            .get_or_insert_with(ObjectMeta::default)
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(
                tls::CERT_FINGERPRINT_ANNOTATION.into(),
                fingerprint.to_string(),
            );
    }
    out
}

/// Builds `<table>-<zone>` with one replica per partition (0 when stopped).
pub fn build_statefulset(
    table: &ValidatedTable,
    zone: &Zone,
    owner: &OwnerReference,
    config: &OperatorConfig,
) -> StatefulSet {
    let mut labels = common_labels(table, config);
    labels.insert(ZONE_LABEL.into(), zone.slug.clone());
    let selector = zone_selector_labels(table, zone);
    let replicas = if table.stopped {
        0
    } else {
        table.partitions as i32
    };
    let annotations = BTreeMap::from([
        (
            PARTITIONS_ANNOTATION.to_string(),
            table.partitions.to_string(),
        ),
        (ZONE_ANNOTATION.to_string(), zone.replica.clone()),
    ]);
    let retention = match table.volume_retention {
        VolumeRetentionPolicy::Retain => "Retain",
        VolumeRetentionPolicy::Delete => "Delete",
    };
    StatefulSet {
        metadata: meta(
            statefulset_name(table, zone),
            table,
            owner,
            labels.clone(),
            Some(annotations),
        ),
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(headless_service_name(table)),
            pod_management_policy: Some("Parallel".into()),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..LabelSelector::default()
            },
            // The operator restarts the pods, one at a time across the
            // table's sets (controller::rollout).
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".into()),
                ..StatefulSetUpdateStrategy::default()
            }),
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(retention.into()),
                    when_scaled: Some("Retain".into()),
                },
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(BTreeMap::from([
                        ("prometheus.io/scrape".to_string(), "true".to_string()),
                        (
                            "prometheus.io/port".to_string(),
                            DEFAULT_ADMIN_PORT.to_string(),
                        ),
                    ])),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec(table, zone, config, &selector)),
            },
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some("data".into()),
                    labels: Some(selector),
                    ..ObjectMeta::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".into()]),
                    storage_class_name: table.storage_class.clone(),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([(
                            "storage".to_string(),
                            Quantity(table.storage_size.clone()),
                        )])),
                        ..VolumeResourceRequirements::default()
                    }),
                    ..PersistentVolumeClaimSpec::default()
                }),
                ..PersistentVolumeClaim::default()
            }]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

/// Kubernetes' label of a StatefulSet pod's ordinal (1.28+).
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// When `zone` holds several replica slots of the table, a required
/// anti-affinity that keeps two pods with the same ordinal (replicas of
/// the same partition) of the table off one node: a node lost never takes
/// two voters of a partition. `matchLabelKeys` (Kubernetes 1.31+, or 1.29+
/// with its feature gate) takes the ordinal from the pod being placed.
/// None when the zone holds one slot: node affinity already keeps the
/// table's replicas of a partition in different zones.
fn same_partition_apart(table: &ValidatedTable, zone: &Zone) -> Option<Vec<PodAffinityTerm>> {
    let slots = table.zones.iter().filter(|z| z.name == zone.name).count();
    (slots > 1).then(|| {
        vec![PodAffinityTerm {
            label_selector: Some(LabelSelector {
                match_labels: Some(super::selector_labels(table)),
                ..LabelSelector::default()
            }),
            match_label_keys: Some(vec![POD_INDEX_LABEL.into()]),
            topology_key: "kubernetes.io/hostname".into(),
            ..PodAffinityTerm::default()
        }]
    })
}

fn pod_spec(
    table: &ValidatedTable,
    zone: &Zone,
    config: &OperatorConfig,
    selector: &BTreeMap<String, String>,
) -> PodSpec {
    let flags = NodeFlags {
        topology_file: format!("{TOPOLOGY_MOUNT}/{FILE_NAME}"),
        table: table.table_name.clone(),
        partition: None,
        zone: zone.replica.clone(),
        data_dir: DATA_MOUNT.into(),
        rpc_port: DEFAULT_RPC_PORT,
        admin_port: DEFAULT_ADMIN_PORT,
        log_format: config.log_format.clone(),
        rpc_tls: config.rpc_ca_dir.is_some().then(rpc_tls_flags),
    };
    let probe = |path: &str, period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("metrics".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Probe::default()
    };
    let mut volume_mounts = vec![
        VolumeMount {
            name: "data".into(),
            mount_path: DATA_MOUNT.into(),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: "topology".into(),
            mount_path: TOPOLOGY_MOUNT.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..VolumeMount::default()
        },
    ];
    let mut volumes = vec![
        Volume {
            name: "topology".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: topology_configmap_name(table),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
    if config.rpc_ca_dir.is_some() {
        volume_mounts.push(VolumeMount {
            name: RPC_TLS_VOLUME.into(),
            mount_path: tls::MOUNT.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
        // Not optional: a pod without its certificate must not start (it
        // would refuse no plaintext peer, but nothing would accept it).
        volumes.push(Volume {
            name: RPC_TLS_VOLUME.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(rpc_tls_secret_name(table)),
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    PodSpec {
        affinity: Some(Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: config.zone_label.clone(),
                            operator: "In".into(),
                            values: Some(vec![zone.name.clone()]),
                        }]),
                        ..NodeSelectorTerm::default()
                    }],
                }),
                ..NodeAffinity::default()
            }),
            pod_anti_affinity: Some(PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: same_partition_apart(
                    table, zone,
                ),
                preferred_during_scheduling_ignored_during_execution: Some(vec![
                    WeightedPodAffinityTerm {
                        weight: 100,
                        pod_affinity_term: PodAffinityTerm {
                            label_selector: Some(LabelSelector {
                                match_labels: Some(selector.clone()),
                                ..LabelSelector::default()
                            }),
                            topology_key: "kubernetes.io/hostname".into(),
                            ..PodAffinityTerm::default()
                        },
                    },
                ]),
            }),
            ..Affinity::default()
        }),
        node_selector: (!table.node_selector.is_empty()).then(|| table.node_selector.clone()),
        tolerations: (!table.tolerations.is_empty()).then(|| table.tolerations.clone()),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        termination_grace_period_seconds: Some(30),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS),
            run_as_group: Some(RUN_AS),
            fs_group: Some(RUN_AS),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..SeccompProfile::default()
            }),
            ..PodSecurityContext::default()
        }),
        containers: vec![Container {
            name: "partita".into(),
            image: Some(config.image.clone()),
            image_pull_policy: Some(config.image_pull_policy.clone()),
            args: Some(flags.to_args()),
            env: Some(vec![EnvVar {
                name: PARTITION_ENV.into(),
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "metadata.labels['apps.kubernetes.io/pod-index']".into(),
                        ..ObjectFieldSelector::default()
                    }),
                    ..EnvVarSource::default()
                }),
                ..EnvVar::default()
            }]),
            ports: Some(vec![
                ContainerPort {
                    name: Some("rpc".into()),
                    container_port: i32::from(DEFAULT_RPC_PORT),
                    protocol: Some("TCP".into()),
                    ..ContainerPort::default()
                },
                ContainerPort {
                    name: Some("metrics".into()),
                    container_port: i32::from(DEFAULT_ADMIN_PORT),
                    protocol: Some("TCP".into()),
                    ..ContainerPort::default()
                },
            ]),
            liveness_probe: Some(probe(HEALTHZ_PATH, 10, 6)),
            // Ready: the partition has a leader and this replica has caught
            // up with its log (a rolling update waits for it).
            readiness_probe: Some(probe(READYZ_PATH, 5, 3)),
            // The node answers /healthz once its store is open and its
            // replica started: up to 30 minutes for a large store before
            // the liveness probe may restart it.
            startup_probe: Some(probe(HEALTHZ_PATH, 10, 180)),
            resources: table.resources.clone(),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                read_only_root_filesystem: Some(true),
                run_as_non_root: Some(true),
                capabilities: Some(Capabilities {
                    drop: Some(vec!["ALL".into()]),
                    ..Capabilities::default()
                }),
                ..SecurityContext::default()
            }),
            volume_mounts: Some(volume_mounts),
            ..Container::default()
        }],
        volumes: Some(volumes),
        ..PodSpec::default()
    }
}
