//! The headless Service governing every data pod of a table, giving each pod
//! the stable DNS name used in the topology. Not-ready pods are published so
//! Raft peers find each other before they are ready.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use partita_topology::flags::{DEFAULT_ADMIN_PORT, DEFAULT_RPC_PORT};

use super::{common_labels, headless_service_name, meta, selector_labels};
use crate::config::OperatorConfig;
use crate::validate::ValidatedTable;

/// Builds `<table>-nodes` (clusterIP None) selecting the table's data pods.
pub fn build_headless_service(
    table: &ValidatedTable,
    owner: &OwnerReference,
    config: &OperatorConfig,
) -> Service {
    Service {
        metadata: meta(
            headless_service_name(table),
            table,
            owner,
            common_labels(table, config),
            None,
        ),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(table)),
            ports: Some(vec![
                ServicePort {
                    name: Some("rpc".into()),
                    port: i32::from(DEFAULT_RPC_PORT),
                    target_port: Some(IntOrString::String("rpc".into())),
                    protocol: Some("TCP".into()),
                    ..ServicePort::default()
                },
                ServicePort {
                    name: Some("metrics".into()),
                    port: i32::from(DEFAULT_ADMIN_PORT),
                    target_port: Some(IntOrString::String("metrics".into())),
                    protocol: Some("TCP".into()),
                    ..ServicePort::default()
                },
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}
