//! The PodDisruptionBudget of a table: at most one data pod of the table down
//! by voluntary disruption at a time, so every partition keeps its quorum.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{common_labels, meta, selector_labels};
use crate::config::OperatorConfig;
use crate::validate::ValidatedTable;

/// Builds `<table>` with maxUnavailable 1 over all of the table's data pods.
pub fn build_pdb(
    table: &ValidatedTable,
    owner: &OwnerReference,
    config: &OperatorConfig,
) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(
            table.resource_name.clone(),
            table,
            owner,
            common_labels(table, config),
            None,
        ),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(table)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}
