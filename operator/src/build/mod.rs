//! `build`: a [`ValidatedTable`] → the objects that run it. Pure; one file
//! per Kubernetes kind. Every object carries the same labels, a controller
//! owner reference to the Table, and a name derived from the Table's
//! resource name, so `apply` can find orphans by label.

mod configmap;
mod pdb;
mod service;
mod statefulset;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

pub use configmap::{build_topology, build_topology_configmap, replica_address};
pub use pdb::build_pdb;
pub use service::build_headless_service;
pub use statefulset::{build_statefulset, rpc_tls_flags, with_cert_fingerprint, RPC_TLS_VOLUME};

use crate::config::OperatorConfig;
use crate::validate::{ValidatedTable, Zone};

/// `app.kubernetes.io/name` of every Partita object.
pub const APP_NAME: &str = "partita";
/// Component label value of data pods and their objects.
pub const COMPONENT_NODE: &str = "node";
/// Field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "partita-operator";
/// Label naming the Table resource an object belongs to.
pub const TABLE_LABEL: &str = "partita.dev/table";
/// Label naming the zone (slug) of a StatefulSet and its pods.
pub const ZONE_LABEL: &str = "partita.dev/zone";
/// Annotation on StatefulSets: the partition count the pods were created for.
pub const PARTITIONS_ANNOTATION: &str = "partita.dev/partitions";
/// Annotation on StatefulSets: the zone (node-label value) they run in.
pub const ZONE_ANNOTATION: &str = "partita.dev/zone-name";
/// Annotation on the topology ConfigMap: its epoch.
pub const EPOCH_ANNOTATION: &str = "partita.dev/epoch";
/// Label on topology ConfigMaps (the gateway's merged map is built from them).
pub const TOPOLOGY_LABEL: &str = "partita.dev/topology";
/// Where the topology ConfigMap is mounted in data pods.
pub const TOPOLOGY_MOUNT: &str = "/etc/partita/topology";
/// Where the data volume is mounted in data pods.
pub const DATA_MOUNT: &str = "/var/lib/partita";
/// UID and GID the data-plane image runs as (distroless nonroot).
pub const RUN_AS: i64 = 65532;

/// Every object one Table needs.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredObjects {
    pub statefulsets: Vec<StatefulSet>,
    pub services: Vec<Service>,
    pub pdb: PodDisruptionBudget,
    pub topology: ConfigMap,
}

/// Builds every object for `table`, owned by `owner`.
pub fn build_table_objects(
    table: &ValidatedTable,
    owner: &OwnerReference,
    config: &OperatorConfig,
) -> DesiredObjects {
    DesiredObjects {
        statefulsets: table
            .zones
            .iter()
            .map(|z| build_statefulset(table, z, owner, config))
            .collect(),
        services: vec![build_headless_service(table, owner, config)],
        pdb: build_pdb(table, owner, config),
        topology: build_topology_configmap(table, owner, config),
    }
}

/// Labels every object of `table` carries.
pub fn common_labels(table: &ValidatedTable, config: &OperatorConfig) -> BTreeMap<String, String> {
    let mut labels = config.extra_labels.clone();
    labels.extend(selector_labels(table));
    labels.insert("app.kubernetes.io/managed-by".into(), FIELD_MANAGER.into());
    labels.insert("app.kubernetes.io/part-of".into(), APP_NAME.into());
    labels
}

/// Labels selecting every data pod of `table`.
pub fn selector_labels(table: &ValidatedTable) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), APP_NAME.to_string()),
        (
            "app.kubernetes.io/component".to_string(),
            COMPONENT_NODE.to_string(),
        ),
        (
            "app.kubernetes.io/instance".to_string(),
            table.resource_name.clone(),
        ),
        (TABLE_LABEL.to_string(), table.resource_name.clone()),
    ])
}

/// Labels selecting the data pods of `table` in `zone`.
pub fn zone_selector_labels(table: &ValidatedTable, zone: &Zone) -> BTreeMap<String, String> {
    let mut labels = selector_labels(table);
    labels.insert(ZONE_LABEL.into(), zone.slug.clone());
    labels
}

/// Name of the StatefulSet of `table` in `zone`: `<table>-<zone>`.
pub fn statefulset_name(table: &ValidatedTable, zone: &Zone) -> String {
    format!("{}-{}", table.resource_name, zone.slug)
}

/// Name of the headless Service governing the data pods: `<table>-nodes`.
pub fn headless_service_name(table: &ValidatedTable) -> String {
    format!("{}-nodes", table.resource_name)
}

/// Name of the internal RPC certificate Secret: `<table>-rpc-tls`.
pub fn rpc_tls_secret_name(table: &ValidatedTable) -> String {
    format!("{}-rpc-tls", table.resource_name)
}

/// Name of the topology ConfigMap: `<table>-topology`.
pub fn topology_configmap_name(table: &ValidatedTable) -> String {
    format!("{}-topology", table.resource_name)
}

fn meta(
    name: String,
    table: &ValidatedTable,
    owner: &OwnerReference,
    labels: BTreeMap<String, String>,
    annotations: Option<BTreeMap<String, String>>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(table.namespace.clone()),
        labels: Some(labels),
        annotations,
        owner_references: Some(vec![owner.clone()]),
        ..ObjectMeta::default()
    }
}

#[cfg(test)]
mod tests;
