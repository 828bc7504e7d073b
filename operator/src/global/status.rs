//! `status`: a GlobalTable's status from its render outcome and what the
//! gateway reports on `GET /replication`. Pure.
//!
//! - `globalTableStatus`: ACTIVE when the gateway reports every replica
//!   region ACTIVE; CREATING until then (UPDATING instead if it was ACTIVE
//!   before, e.g. a region was added); UPDATING while a replica is in another
//!   state (DELETING, ...); INACCESSIBLE / INVALID when it is not rendered
//!   ([`Problem::state`]). While the gateway cannot be asked, the previous
//!   value stays (CREATING for a new resource).
//! - `Ready`: True when every replica is ACTIVE and reachable.
//! - `Degraded`: True with the [`Problem::reason`] when not rendered, with
//!   PeerUnreachable when the replicator's last call to a peer failed.
//! - Both Unknown with reason StatusUnavailable when the gateway's status
//!   document cannot be read: the operator does not guess replica states.

use k8s_openapi::jiff::Timestamp;
use partita_topology::replication::{ReplicaState, ReplicationStatus};

use super::resolve::Outcome;
use crate::crd::global_table::{GlobalTableStatus, ReplicaStatus};
use crate::status::set_condition_status;

pub const READY: &str = "Ready";
pub const DEGRADED: &str = "Degraded";
/// Reason when a peer is unreachable.
pub const PEER_UNREACHABLE: &str = "PeerUnreachable";
/// Reason when the gateway's status document cannot be read.
pub const STATUS_UNAVAILABLE: &str = "StatusUnavailable";

/// What the operator learned from the gateway.
#[derive(Debug, Clone, Copy)]
pub enum Observed<'a> {
    /// The document, as served.
    Report(&'a ReplicationStatus),
    /// Why it could not be read.
    Unavailable(&'a str),
}

fn find<'a>(doc: &'a ReplicationStatus, table: &str, region: &str) -> Option<&'a ReplicaState> {
    doc.tables
        .iter()
        .find(|t| t.table_name == table)?
        .replicas
        .iter()
        .find(|r| r.region_name == region)
}

fn status_of(r: &ReplicaStatus) -> &str {
    r.replica_status.as_deref().unwrap_or("")
}

fn replica_from(region: &str, state: Option<&ReplicaState>) -> ReplicaStatus {
    match state {
        Some(s) => ReplicaStatus {
            region_name: region.to_string(),
            replica_status: Some(s.replica_status.clone()),
            reachable: Some(s.reachable),
            lag_seconds: Some(s.lag_seconds),
            pending_changes: Some(i64::try_from(s.pending_changes).unwrap_or(i64::MAX)),
            message: s.last_error.clone(),
        },
        None => ReplicaStatus {
            region_name: region.to_string(),
            message: Some("not reported by the gateway yet".into()),
            ..ReplicaStatus::default()
        },
    }
}

/// Computes the status of the GlobalTable described by `outcome`.
pub fn build_global_status(
    outcome: &Outcome,
    previous: &GlobalTableStatus,
    observed: Observed<'_>,
    generation: i64,
    now: Timestamp,
) -> GlobalTableStatus {
    let mut conditions = previous.conditions.clone();
    let g = generation;
    let was_active = matches!(
        previous.global_table_status.as_deref(),
        Some("ACTIVE") | Some("UPDATING")
    );
    let mut set = |type_: &str, status: &str, reason: &str, message: String| {
        set_condition_status(&mut conditions, type_, status, reason, message, g, now)
    };
    let (state, replicas) = match (&outcome.problem, observed) {
        (Some(problem), _) => {
            let message = problem.message();
            set(READY, "False", problem.reason(), message.clone());
            set(DEGRADED, "True", problem.reason(), message);
            let replicas = outcome
                .regions
                .iter()
                .map(|r| ReplicaStatus {
                    region_name: r.clone(),
                    message: Some(format!("not replicated: {}", problem.reason())),
                    ..ReplicaStatus::default()
                })
                .collect();
            (problem.state().to_string(), replicas)
        }
        (None, Observed::Unavailable(why)) => {
            let message = format!("the gateway's replication status cannot be read: {why}");
            set(READY, "Unknown", STATUS_UNAVAILABLE, message.clone());
            set(DEGRADED, "Unknown", STATUS_UNAVAILABLE, message);
            let replicas = outcome
                .regions
                .iter()
                .map(|r| ReplicaStatus {
                    region_name: r.clone(),
                    message: Some("status unavailable".into()),
                    ..ReplicaStatus::default()
                })
                .collect();
            let state = match previous.global_table_status.as_deref() {
                Some(s @ ("ACTIVE" | "UPDATING" | "CREATING")) => s.to_string(),
                _ => "CREATING".to_string(),
            };
            (state, replicas)
        }
        (None, Observed::Report(doc)) => {
            let table = outcome.table_name.clone().unwrap_or_default();
            let replicas: Vec<ReplicaStatus> = outcome
                .regions
                .iter()
                .map(|r| replica_from(r, find(doc, &table, r)))
                .collect();
            let all_active = replicas.iter().all(|r| status_of(r) == "ACTIVE");
            let creating = replicas
                .iter()
                .any(|r| matches!(status_of(r), "" | "CREATING"));
            let unreachable: Vec<&ReplicaStatus> = replicas
                .iter()
                .filter(|r| r.reachable == Some(false))
                .collect();
            let state = if all_active {
                "ACTIVE"
            } else if creating && !was_active {
                "CREATING"
            } else {
                "UPDATING"
            };
            if all_active && unreachable.is_empty() {
                set(
                    READY,
                    "True",
                    "Replicating",
                    format!("replicating {table} to {}", outcome.regions.join(", ")),
                );
            } else if !unreachable.is_empty() {
                set(
                    READY,
                    "False",
                    PEER_UNREACHABLE,
                    "a peer region is unreachable".into(),
                );
            } else {
                let waiting: Vec<String> = replicas
                    .iter()
                    .filter(|r| status_of(r) != "ACTIVE")
                    .map(|r| {
                        format!(
                            "{} {}",
                            r.region_name,
                            r.replica_status.as_deref().unwrap_or("not reported")
                        )
                    })
                    .collect();
                set(
                    READY,
                    "False",
                    "ReplicasNotActive",
                    format!("waiting for {}", waiting.join(", ")),
                );
            }
            if unreachable.is_empty() {
                set(
                    DEGRADED,
                    "False",
                    "AsExpected",
                    "every peer region is reachable".into(),
                );
            } else {
                let message = unreachable
                    .iter()
                    .map(|r| {
                        format!(
                            "{} unreachable (lag {:.1} s, {} changes pending){}",
                            r.region_name,
                            r.lag_seconds.unwrap_or(0.0),
                            r.pending_changes.unwrap_or(0),
                            r.message
                                .as_deref()
                                .map(|e| format!(": {e}"))
                                .unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                set(DEGRADED, "True", PEER_UNREACHABLE, message);
            }
            (state.to_string(), replicas)
        }
    };
    GlobalTableStatus {
        global_table_status: Some(state),
        table_name: outcome.table_name.clone(),
        observed_generation: Some(g),
        replicas,
        conditions,
    }
}

/// Whether the status should be looked at again soon: anything but ACTIVE
/// and Ready=True (creating, degraded, unknown).
pub fn needs_attention(status: &GlobalTableStatus) -> bool {
    let ready = status
        .conditions
        .iter()
        .any(|c| c.type_ == READY && c.status == "True");
    !(ready && status.global_table_status.as_deref() == Some("ACTIVE"))
}

/// The reason of the Degraded condition when it is True.
pub fn degraded_reason(status: &GlobalTableStatus) -> Option<&str> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == DEGRADED && c.status == "True")
        .map(|c| c.reason.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::global::resolve::Problem;
    use partita_topology::replication::TableReplication;

    fn outcome() -> Outcome {
        Outcome {
            namespace: "shop".into(),
            name: "orders".into(),
            table_name: Some("Orders".into()),
            regions: vec!["eu-west-1".into(), "ap-south-1".into()],
            problem: None,
        }
    }

    fn state(region: &str, status: &str, reachable: bool) -> ReplicaState {
        ReplicaState {
            region_name: region.into(),
            replica_status: status.into(),
            reachable,
            lag_seconds: if reachable { 0.0 } else { 42.5 },
            pending_changes: if reachable { 0 } else { 17 },
            last_error: (!reachable).then(|| "connection refused".to_string()),
        }
    }

    fn doc(states: Vec<ReplicaState>) -> ReplicationStatus {
        ReplicationStatus {
            region: "us-east-1".into(),
            tables: vec![TableReplication {
                table_name: "Orders".into(),
                replicas: states,
            }],
        }
    }

    fn cond(s: &GlobalTableStatus, t: &str) -> (String, String) {
        let c = s.conditions.iter().find(|c| c.type_ == t).unwrap();
        (c.status.clone(), c.reason.clone())
    }

    #[test]
    fn all_active_and_reachable_is_ready() {
        let d = doc(vec![
            state("eu-west-1", "ACTIVE", true),
            state("ap-south-1", "ACTIVE", true),
        ]);
        let s = build_global_status(
            &outcome(),
            &GlobalTableStatus::default(),
            Observed::Report(&d),
            1,
            Timestamp::now(),
        );
        assert_eq!(s.global_table_status.as_deref(), Some("ACTIVE"));
        assert_eq!(cond(&s, READY), ("True".into(), "Replicating".into()));
        assert_eq!(cond(&s, DEGRADED), ("False".into(), "AsExpected".into()));
        assert!(!needs_attention(&s));
        assert_eq!(s.replicas[0].lag_seconds, Some(0.0));
    }

    #[test]
    fn a_creating_or_unreported_replica_is_not_ready() {
        let d = doc(vec![state("eu-west-1", "CREATING", true)]);
        let s = build_global_status(
            &outcome(),
            &GlobalTableStatus::default(),
            Observed::Report(&d),
            1,
            Timestamp::now(),
        );
        assert_eq!(s.global_table_status.as_deref(), Some("CREATING"));
        assert_eq!(
            cond(&s, READY),
            ("False".into(), "ReplicasNotActive".into())
        );
        assert_eq!(s.replicas[1].replica_status, None);
        assert_eq!(s.replicas[1].reachable, None);
        assert!(needs_attention(&s));
        // Once ACTIVE, a region being added shows UPDATING.
        let previous = GlobalTableStatus {
            global_table_status: Some("ACTIVE".into()),
            ..GlobalTableStatus::default()
        };
        let s = build_global_status(
            &outcome(),
            &previous,
            Observed::Report(&d),
            2,
            Timestamp::now(),
        );
        assert_eq!(s.global_table_status.as_deref(), Some("UPDATING"));
    }

    #[test]
    fn unreachable_peer_degrades_with_its_lag() {
        let d = doc(vec![
            state("eu-west-1", "ACTIVE", true),
            state("ap-south-1", "ACTIVE", false),
        ]);
        let s = build_global_status(
            &outcome(),
            &GlobalTableStatus::default(),
            Observed::Report(&d),
            1,
            Timestamp::now(),
        );
        assert_eq!(cond(&s, DEGRADED), ("True".into(), PEER_UNREACHABLE.into()));
        assert_eq!(cond(&s, READY), ("False".into(), PEER_UNREACHABLE.into()));
        let c = s.conditions.iter().find(|c| c.type_ == DEGRADED).unwrap();
        assert_eq!(
            c.message,
            "ap-south-1 unreachable (lag 42.5 s, 17 changes pending): connection refused"
        );
        assert_eq!(s.replicas[1].lag_seconds, Some(42.5));
        assert_eq!(s.replicas[1].pending_changes, Some(17));
    }

    #[test]
    fn unreadable_status_is_unknown_not_invented() {
        let previous = GlobalTableStatus {
            global_table_status: Some("ACTIVE".into()),
            ..GlobalTableStatus::default()
        };
        let s = build_global_status(
            &outcome(),
            &previous,
            Observed::Unavailable("HTTP 404"),
            1,
            Timestamp::now(),
        );
        assert_eq!(s.global_table_status.as_deref(), Some("ACTIVE"));
        assert_eq!(
            cond(&s, READY),
            ("Unknown".into(), STATUS_UNAVAILABLE.into())
        );
        assert_eq!(
            cond(&s, DEGRADED),
            ("Unknown".into(), STATUS_UNAVAILABLE.into())
        );
        assert!(s.replicas.iter().all(|r| r.replica_status.is_none()
            && r.reachable.is_none()
            && r.lag_seconds.is_none()));
        assert!(needs_attention(&s));
    }

    #[test]
    fn a_problem_wins_over_the_report() {
        let mut o = outcome();
        o.problem = Some(Problem::TableNotFound {
            table: "orders".into(),
        });
        let d = doc(vec![]);
        let s = build_global_status(
            &o,
            &GlobalTableStatus::default(),
            Observed::Report(&d),
            1,
            Timestamp::now(),
        );
        assert_eq!(s.global_table_status.as_deref(), Some("INACCESSIBLE"));
        assert_eq!(degraded_reason(&s), Some("TableNotFound"));
    }
}
