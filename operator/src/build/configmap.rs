//! The topology ConfigMap of one table (DESIGN.md §5): the table's partition
//! map in the `partita-topology` file format, mounted into its data pods.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use partita_topology::flags::DEFAULT_RPC_PORT;
use partita_topology::topology::FILE_NAME;
use partita_topology::{
    split_hash_space, Epoch, PartitionTopology, ReplicaAddress, TableTopology, TopologyFile,
};

use super::{
    common_labels, headless_service_name, meta, statefulset_name, topology_configmap_name,
    EPOCH_ANNOTATION, TOPOLOGY_LABEL,
};
use crate::config::OperatorConfig;
use crate::validate::{ValidatedTable, Zone};

/// Address of replica `ordinal` (= partition) of `table` in `zone`: the pod's
/// stable DNS name under the headless Service, and the RPC port.
pub fn replica_address(table: &ValidatedTable, zone: &Zone, ordinal: u32) -> String {
    format!(
        "{}-{ordinal}.{}.{}.svc:{DEFAULT_RPC_PORT}",
        statefulset_name(table, zone),
        headless_service_name(table),
        table.namespace,
    )
}

/// The table's partition map: P partitions over an even split of the hash
/// space, each with one replica per zone.
pub fn build_topology(table: &ValidatedTable) -> TableTopology {
    TableTopology {
        table_name: table.table_name.clone(),
        epoch: Epoch(table.epoch),
        partition_key: table.partition_key.clone(),
        create_table: table.create_table.clone(),
        created_at_ms: table.created_at_ms,
        time_to_live: table.time_to_live.clone(),
        partitions: split_hash_space(table.partitions)
            .into_iter()
            .enumerate()
            .map(|(i, hash_range)| PartitionTopology {
                id: i as u32,
                hash_range,
                replicas: table
                    .zones
                    .iter()
                    .map(|z| ReplicaAddress {
                        zone: z.replica.clone(),
                        address: replica_address(table, z, i as u32),
                        member_id: None,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Builds `<table>-topology` with `topology.json`.
pub fn build_topology_configmap(
    table: &ValidatedTable,
    owner: &OwnerReference,
    config: &OperatorConfig,
) -> ConfigMap {
    let mut labels = common_labels(table, config);
    labels.insert("app.kubernetes.io/component".into(), "topology".into());
    labels.insert(TOPOLOGY_LABEL.into(), "true".into());
    let file = TopologyFile::new(vec![build_topology(table)]);
    ConfigMap {
        metadata: meta(
            topology_configmap_name(table),
            table,
            owner,
            labels,
            Some(BTreeMap::from([(
                EPOCH_ANNOTATION.to_string(),
                table.epoch.to_string(),
            )])),
        ),
        data: Some(BTreeMap::from([(FILE_NAME.to_string(), file.to_json())])),
        ..ConfigMap::default()
    }
}
