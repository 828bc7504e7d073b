//! `status`: the Table's status from what was applied and what is observed.
//! Pure: the controller fetches StatefulSets and Pods and passes them in.
//!
//! - `tableStatus`: CREATING until every data pod has been ready once, then
//!   ACTIVE, or UPDATING while a rollout or scale is in flight; STOPPED when
//!   `clusterOperation.stopped`; DELETING while the finalizer runs.
//! - `Available`: every partition has a quorum of ready replicas.
//! - `Progressing`: pods are being created, updated or scaled.
//! - `Degraded`: the spec is invalid, an apply failed, or the throughput
//!   needs more partitions than the table has (splits come later).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use partita_topology::partitions::format_hash;
use partita_topology::split_hash_space;

use crate::build::ZONE_LABEL;
use crate::crd::table::{PartitionStatus, TableStatus};
use crate::validate::ValidatedTable;

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";

/// Condition reason when throughput needs more partitions than exist.
pub const SPLIT_REQUIRED: &str = "PartitionSplitRequired";

/// What the controller observed after applying.
#[derive(Debug, Default)]
pub struct Observed<'a> {
    pub statefulsets: &'a [StatefulSet],
    pub pods: &'a [Pod],
}

/// Sets condition `type_` in `conditions`, keeping its lastTransitionTime
/// when the status does not change.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: i64,
    now: Timestamp,
) {
    let status = if status { "True" } else { "False" };
    set_condition_status(conditions, type_, status, reason, message, generation, now);
}

/// As [`set_condition`], with the status as a string: "True", "False" or
/// "Unknown" (when the operator cannot tell).
pub fn set_condition_status(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    generation: i64,
    now: Timestamp,
) {
    let status = status.to_string();
    let previous = conditions.iter().position(|c| c.type_ == type_);
    let last_transition_time = match previous.map(|i| &conditions[i]) {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Time(now),
    };
    let condition = Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message,
        observed_generation: Some(generation),
        last_transition_time,
    };
    match previous {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
}

/// Returns whether a pod's Ready condition is True.
pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Returns the pod's StatefulSet ordinal (from its name's numeric suffix).
pub fn pod_ordinal(pod: &Pod) -> Option<u32> {
    let name = pod.metadata.name.as_deref()?;
    name.rsplit_once('-')?.1.parse().ok()
}

/// Computes the status after a successful apply.
pub fn build_status(
    table: &ValidatedTable,
    previous: &TableStatus,
    observed: &Observed<'_>,
    config: &crate::config::OperatorConfig,
    stream_label: Option<String>,
    now: Timestamp,
) -> TableStatus {
    let replicas_per_partition = table.replicas_per_partition() as i32;
    let desired_pods = if table.stopped {
        0
    } else {
        table.partitions as i32 * replicas_per_partition
    };
    let zone_slugs: Vec<&str> = table.zones.iter().map(|z| z.slug.as_str()).collect();

    // Ready replicas per partition, from pods of this table's zones.
    let mut ready_by_partition: BTreeMap<u32, i32> = BTreeMap::new();
    let mut ready_pods = 0;
    for pod in observed.pods {
        let in_zone = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(ZONE_LABEL))
            .is_some_and(|z| zone_slugs.contains(&z.as_str()));
        let Some(ordinal) = pod_ordinal(pod) else {
            continue;
        };
        if in_zone && ordinal < table.partitions && pod_ready(pod) && !table.stopped {
            *ready_by_partition.entry(ordinal).or_default() += 1;
            ready_pods += 1;
        }
    }
    let partitions: Vec<PartitionStatus> = split_hash_space(table.partitions)
        .into_iter()
        .enumerate()
        .map(|(i, range)| PartitionStatus {
            id: i as i32,
            hash_range_start: format_hash(range.start),
            hash_range_end: format_hash(range.end),
            replicas: if table.stopped {
                0
            } else {
                replicas_per_partition
            },
            ready_replicas: ready_by_partition.get(&(i as u32)).copied().unwrap_or(0),
        })
        .collect();
    let quorum = replicas_per_partition / 2 + 1;
    let available = !table.stopped && partitions.iter().all(|p| p.ready_replicas >= quorum);

    // Rollout state of the StatefulSets.
    let rolled_out = observed.statefulsets.len() == table.zones.len()
        && observed.statefulsets.iter().all(|s| {
            let generation = s.metadata.generation.unwrap_or(0);
            let want = s.spec.as_ref().and_then(|sp| sp.replicas).unwrap_or(0);
            s.status.as_ref().is_some_and(|st| {
                st.observed_generation.unwrap_or(0) >= generation
                    && st.ready_replicas.unwrap_or(0) == want
                    && st.updated_replicas.unwrap_or(0) == want
                    && st.replicas == want
            })
        });
    let settled = rolled_out && ready_pods == desired_pods;

    let was_active = matches!(
        previous.table_status.as_deref(),
        Some("ACTIVE") | Some("UPDATING") | Some("STOPPED")
    );
    let table_status = if table.stopped {
        "STOPPED"
    } else if settled {
        "ACTIVE"
    } else if was_active {
        "UPDATING"
    } else {
        "CREATING"
    };

    let mut conditions = previous.conditions.clone();
    let g = table.generation;
    if table.stopped {
        set_condition(
            &mut conditions,
            AVAILABLE,
            false,
            "Stopped",
            "clusterOperation.stopped is set; data pods are scaled to zero, volumes kept".into(),
            g,
            now,
        );
    } else if available {
        set_condition(
            &mut conditions,
            AVAILABLE,
            true,
            "QuorumReady",
            format!(
                "every partition has at least {quorum} of {replicas_per_partition} replicas ready"
            ),
            g,
            now,
        );
    } else {
        set_condition(&mut conditions, AVAILABLE, false, "QuorumNotReady", format!("{ready_pods} of {desired_pods} data pods ready; some partition has fewer than {quorum} ready replicas"), g, now);
    }
    if settled || table.stopped && rolled_out {
        set_condition(
            &mut conditions,
            PROGRESSING,
            false,
            "Settled",
            format!("{ready_pods}/{desired_pods} data pods ready and up to date"),
            g,
            now,
        );
    } else {
        let reason = if was_active { "Updating" } else { "Creating" };
        set_condition(
            &mut conditions,
            PROGRESSING,
            true,
            reason,
            format!("{ready_pods}/{desired_pods} data pods ready"),
            g,
            now,
        );
    }
    if table.needed_partitions > table.partitions {
        set_condition(
            &mut conditions,
            DEGRADED,
            true,
            SPLIT_REQUIRED,
            split_message(table),
            g,
            now,
        );
    } else {
        set_condition(
            &mut conditions,
            DEGRADED,
            false,
            "AsExpected",
            "spec is valid and applied".into(),
            g,
            now,
        );
    }

    let table_arn = format!(
        "arn:aws:dynamodb:{}:{}:table/{}",
        config.region, config.account_id, table.table_name
    );
    TableStatus {
        table_status: Some(table_status.into()),
        observed_generation: Some(g),
        conditions,
        table_name: Some(table.table_name.clone()),
        latest_stream_arn: stream_label.map(|label| format!("{table_arn}/stream/{label}")),
        table_arn: Some(table_arn),
        partition_count: Some(table.partitions as i32),
        desired_partition_count: Some(table.needed_partitions as i32),
        ready: Some(format!("{ready_pods}/{desired_pods}")),
        partitions,
        item_count: previous.item_count.or(Some(0)),
        table_size_bytes: previous.table_size_bytes.or(Some(0)),
        endpoint: Some(config.gateway_endpoint.clone()),
        epoch: Some(table.epoch as i64),
    }
}

/// The message of the PartitionSplitRequired condition and Event.
pub fn split_message(table: &ValidatedTable) -> String {
    format!(
        "provisioned throughput needs {} partitions but the table has {}; the increase takes effect once partition splits exist (data pods are never added without moving their data)",
        table.needed_partitions, table.partitions
    )
}

/// The status after a refused spec: Degraded with the validation reason;
/// everything else as before, observedGeneration advanced.
pub fn invalid_spec_status(
    previous: &TableStatus,
    generation: i64,
    reason: &'static str,
    message: String,
    now: Timestamp,
) -> TableStatus {
    let mut status = previous.clone();
    set_condition(
        &mut status.conditions,
        DEGRADED,
        true,
        reason,
        message,
        generation,
        now,
    );
    set_condition(
        &mut status.conditions,
        PROGRESSING,
        false,
        reason,
        "the spec was refused; existing objects are left unchanged".into(),
        generation,
        now,
    );
    if status.table_status.is_none() {
        status.table_status = Some("CREATING".into());
    }
    status.observed_generation = Some(generation);
    status
}
