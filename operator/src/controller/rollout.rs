//! Rolling updates of a table's data pods, one pod at a time across the
//! whole table.
//!
//! The StatefulSets use the OnDelete update strategy, so Kubernetes never
//! restarts a data pod by itself (with RollingUpdate each zone's set would
//! roll on its own, and ordinal i of every zone — the replicas of partition
//! i — could restart together). The operator restarts them: it deletes one
//! pod whose revision is not its StatefulSet's update revision, and only
//! when every data pod of the table is running and ready (a node is ready
//! when its partition has a leader and it has caught up with the leader's
//! log), and the StatefulSet controller recreates it on the new revision.
//! A pod stopping hands its partition's leadership to a caught-up member
//! first (the node does so on SIGTERM).
//!
//! Anything that changes the pod template goes this way: the image and
//! flags, resources, and the certificate fingerprint (a renewed certificate
//! or a new CA).

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;

/// The label carrying the revision a StatefulSet pod was created from.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// What the rollout does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Every pod runs its StatefulSet's update revision.
    Done,
    /// Something must settle first (why).
    Wait(String),
    /// Delete this pod (`outdated` pods remain, this one included).
    Restart { pod: String, outdated: usize },
}

fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The StatefulSet a pod belongs to: its owner reference, else the name
/// before its ordinal.
fn owner(pod: &Pod) -> Option<&str> {
    let by_reference = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == "StatefulSet")
        .map(|o| o.name.as_str());
    by_reference.or_else(|| Some(pod.metadata.name.as_deref()?.rsplit_once('-')?.0))
}

fn ordinal(pod: &Pod) -> Option<u32> {
    pod.metadata
        .name
        .as_deref()?
        .rsplit_once('-')?
        .1
        .parse()
        .ok()
}

/// The next step of the rollout of `statefulsets` (the table's) given
/// their `pods`.
pub fn next_step(statefulsets: &[StatefulSet], pods: &[Pod]) -> Step {
    let mut outdated: Vec<(u32, &str, String)> = Vec::new();
    let mut expected = 0;
    for sts in statefulsets {
        let name = sts.metadata.name.as_deref().unwrap_or_default();
        let want = sts
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(0)
            .max(0);
        expected += want as usize;
        // A set whose controller has not seen its last change yet says
        // nothing about its pods' revisions: judged on a later reconcile.
        let Some(revision) = sts
            .status
            .as_ref()
            .filter(|s| s.observed_generation >= sts.metadata.generation)
            .and_then(|s| s.update_revision.as_deref())
        else {
            continue;
        };
        for pod in pods.iter().filter(|p| owner(p) == Some(name)) {
            let Some(ordinal) = ordinal(pod) else {
                continue;
            };
            if ordinal >= want as u32 {
                continue;
            }
            let at = pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(REVISION_LABEL))
                .map(String::as_str);
            if at != Some(revision) {
                outdated.push((ordinal, name, pod.metadata.name.clone().unwrap_or_default()));
            }
        }
    }
    if outdated.is_empty() {
        return Step::Done;
    }
    let running: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            statefulsets.iter().any(|s| {
                let want = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0).max(0);
                s.metadata.name.as_deref() == owner(p)
                    && ordinal(p).is_some_and(|o| o < want as u32)
            })
        })
        .collect();
    if running.len() < expected {
        return Step::Wait(format!(
            "{} of {expected} data pods are running",
            running.len()
        ));
    }
    let not_ready: Vec<&str> = running
        .iter()
        .filter(|p| !ready(p))
        .filter_map(|p| p.metadata.name.as_deref())
        .collect();
    if !not_ready.is_empty() {
        return Step::Wait(format!("waiting for {} to be ready", not_ready.join(", ")));
    }
    // Highest ordinal first, then StatefulSet order, as the StatefulSet
    // controller would within one set.
    outdated.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let count = outdated.len();
    Step::Restart {
        pod: outdated.swap_remove(0).2,
        outdated: count,
    }
}

/// True when every StatefulSet's controller has seen its last change and
/// all its pods run its current template (and exist).
pub fn rolled_out(statefulsets: &[StatefulSet]) -> bool {
    statefulsets.iter().all(|sts| {
        let want = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        sts.status.as_ref().is_some_and(|s| {
            s.observed_generation >= sts.metadata.generation
                && s.updated_replicas.unwrap_or(0) == want
                && s.replicas == want
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{StatefulSetSpec, StatefulSetStatus};
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};

    fn sts(name: &str, replicas: i32, revision: &str) -> StatefulSet {
        StatefulSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                generation: Some(2),
                ..ObjectMeta::default()
            },
            spec: Some(StatefulSetSpec {
                replicas: Some(replicas),
                ..StatefulSetSpec::default()
            }),
            status: Some(StatefulSetStatus {
                observed_generation: Some(2),
                update_revision: Some(revision.into()),
                replicas,
                ..StatefulSetStatus::default()
            }),
        }
    }

    fn pod(set: &str, ordinal: u32, revision: &str, is_ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(format!("{set}-{ordinal}")),
                labels: Some([(REVISION_LABEL.to_string(), revision.to_string())].into()),
                owner_references: Some(vec![OwnerReference {
                    kind: "StatefulSet".into(),
                    name: set.into(),
                    ..OwnerReference::default()
                }]),
                ..ObjectMeta::default()
            },
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if is_ready { "True" } else { "False" }.into(),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn one_outdated_pod_restarts_at_a_time_and_only_when_all_are_ready() {
        let sets = [sts("t-a", 2, "new"), sts("t-b", 2, "new")];
        let mut pods = vec![
            pod("t-a", 0, "old", true),
            pod("t-a", 1, "old", true),
            pod("t-b", 0, "old", true),
            pod("t-b", 1, "new", true),
        ];
        assert_eq!(
            next_step(&sets, &pods),
            Step::Restart {
                pod: "t-a-1".into(),
                outdated: 3
            }
        );
        // t-a-1 recreated on the new revision, not ready yet: wait.
        pods[1] = pod("t-a", 1, "new", false);
        assert_eq!(
            next_step(&sets, &pods),
            Step::Wait("waiting for t-a-1 to be ready".into())
        );
        pods[1] = pod("t-a", 1, "new", true);
        assert_eq!(
            next_step(&sets, &pods),
            Step::Restart {
                pod: "t-a-0".into(),
                outdated: 2
            }
        );
        // Deleted and not recreated yet: fewer pods run than expected.
        let gone: Vec<Pod> = pods
            .iter()
            .filter(|p| p.metadata.name.as_deref() != Some("t-a-0"))
            .cloned()
            .collect();
        assert_eq!(
            next_step(&sets, &gone),
            Step::Wait("3 of 4 data pods are running".into())
        );
        // A pod being deleted does not count as running.
        let mut terminating = pods.clone();
        terminating[0].metadata.deletion_timestamp =
            Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        assert!(matches!(next_step(&sets, &terminating), Step::Wait(_)));
        pods[0] = pod("t-a", 0, "new", true);
        pods[2] = pod("t-b", 0, "new", true);
        assert_eq!(next_step(&sets, &pods), Step::Done);
    }

    #[test]
    fn a_set_that_has_not_seen_its_change_is_judged_later() {
        let mut set = sts("t-a", 1, "new");
        set.metadata.generation = Some(3);
        let pods = [pod("t-a", 0, "old", true)];
        assert_eq!(next_step(std::slice::from_ref(&set), &pods), Step::Done);
        set.status.as_mut().unwrap().observed_generation = Some(3);
        assert!(matches!(next_step(&[set], &pods), Step::Restart { .. }));
        // No update revision yet (a set just created): nothing to roll.
        let mut fresh = sts("t-a", 1, "new");
        fresh.status.as_mut().unwrap().update_revision = None;
        assert_eq!(next_step(&[fresh], &pods), Step::Done);
        // Scaled down: a surplus pod being removed is not rolled.
        let sets = [sts("t-a", 1, "new")];
        let pods = [pod("t-a", 0, "new", true), pod("t-a", 1, "old", true)];
        assert_eq!(next_step(&sets, &pods), Step::Done);
    }
}
