//! Prometheus series of a replica's Raft member, rendered at scrape time
//! from openraft's metrics, the log store's committed index and the state
//! machine's snapshot counters (`partita node` appends them to the API's
//! series on its admin port).
//!
//! Every series is prefixed `partita_raft_` and carries the constant labels
//! `table` (the topology entry: a table name, or `*` for the dynamic-tables
//! entry) and `partition`; the only other labels are `peer` on the
//! replication lag, a member id of the partition's group (at most the
//! member count), and `role` (`voter`, `learner`) on the member count. Indexes are reported as `index + 1` of openraft's log
//! ids with 0 meaning "none yet", so an empty log and the first entry
//! differ.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus::{Encoder, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::replica::Replica;

/// The Raft series of one replica.
pub struct RaftMetrics {
    registry: Registry,
    term: IntGauge,
    is_leader: IntGauge,
    has_leader: IntGauge,
    last_log: IntGauge,
    last_applied: IntGauge,
    committed: IntGauge,
    snapshot: IntGauge,
    snapshots: IntCounterVec,
    quorum_ack_ms: IntGauge,
    replication_lag: IntGaugeVec,
    members: IntGaugeVec,
    joint: IntGauge,
}

fn gauge(registry: &Registry, opts: Opts) -> Result<IntGauge, prometheus::Error> {
    let g = IntGauge::with_opts(opts)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

fn plus_one(index: Option<u64>) -> i64 {
    index.map_or(0, |i| i64::try_from(i + 1).unwrap_or(i64::MAX))
}

impl RaftMetrics {
    /// Series for the replica of `partition` of topology entry `table`.
    pub fn new(table: &str, partition: u32) -> Result<RaftMetrics, prometheus::Error> {
        let registry = Registry::new();
        let opts = |name: &str, help: &str| {
            Opts::new(name, help)
                .const_label("table", table)
                .const_label("partition", partition.to_string())
        };
        let term = gauge(&registry, opts("partita_raft_term", "Current Raft term."))?;
        let is_leader = gauge(
            &registry,
            opts(
                "partita_raft_is_leader",
                "1 when this replica is its partition's leader.",
            ),
        )?;
        let has_leader = gauge(
            &registry,
            opts(
                "partita_raft_has_leader",
                "1 when this replica knows a leader of its partition.",
            ),
        )?;
        let last_log = gauge(
            &registry,
            opts(
                "partita_raft_last_log_index",
                "Index + 1 of the last entry in this replica's log (0: empty).",
            ),
        )?;
        let last_applied = gauge(
            &registry,
            opts(
                "partita_raft_last_applied_index",
                "Index + 1 of the last entry applied to the store (0: none).",
            ),
        )?;
        let committed = gauge(
            &registry,
            opts(
                "partita_raft_committed_index",
                "Index + 1 of the last entry known committed (0: none).",
            ),
        )?;
        let snapshot = gauge(
            &registry,
            opts(
                "partita_raft_snapshot_index",
                "Index + 1 of the last entry the current snapshot covers (0: no snapshot).",
            ),
        )?;
        let quorum_ack_ms = gauge(
            &registry,
            opts(
                "partita_raft_millis_since_quorum_ack",
                "On the leader: milliseconds since a quorum last acknowledged it (-1 elsewhere).",
            ),
        )?;
        let snapshots = IntCounterVec::new(
            opts(
                "partita_raft_snapshots_total",
                "Snapshots built or installed by this replica since it started.",
            ),
            &["kind"],
        )?;
        registry.register(Box::new(snapshots.clone()))?;
        let replication_lag = IntGaugeVec::new(
            opts(
                "partita_raft_replication_lag_entries",
                "On the leader: log entries a follower lacks (last log index - matched index).",
            ),
            &["peer"],
        )?;
        registry.register(Box::new(replication_lag.clone()))?;
        let members = IntGaugeVec::new(
            opts(
                "partita_raft_members",
                "Members of the partition's group in the membership this replica holds, by role.",
            ),
            &["role"],
        )?;
        registry.register(Box::new(members.clone()))?;
        let joint = gauge(
            &registry,
            opts(
                "partita_raft_membership_joint",
                "1 while a membership change is in its joint phase (old and new voters decide).",
            ),
        )?;
        Ok(RaftMetrics {
            registry,
            term,
            is_leader,
            has_leader,
            last_log,
            last_applied,
            committed,
            snapshot,
            snapshots,
            quorum_ack_ms,
            replication_lag,
            members,
            joint,
        })
    }

    /// Reads the replica's current state into the series and renders them.
    pub fn render(&self, replica: &Arc<Replica>) -> String {
        let m = replica.raft.metrics().borrow().clone();
        self.term
            .set(i64::try_from(m.current_term).unwrap_or(i64::MAX));
        let leader = m.current_leader == Some(replica.node_id);
        self.is_leader.set(i64::from(leader));
        self.has_leader.set(i64::from(m.current_leader.is_some()));
        self.last_log.set(plus_one(m.last_log_index));
        self.last_applied
            .set(plus_one(m.last_applied.map(|l| l.index)));
        let committed = replica.committed_index();
        self.committed
            .set(i64::try_from(committed).unwrap_or(i64::MAX));
        self.snapshot.set(plus_one(m.snapshot.map(|l| l.index)));
        self.quorum_ack_ms.set(
            m.millis_since_quorum_ack
                .map_or(-1, |ms| i64::try_from(ms).unwrap_or(i64::MAX)),
        );
        let counters = replica.snapshot_counters();
        for (kind, value) in [
            ("built", counters.built.load(Ordering::Relaxed)),
            ("installed", counters.installed.load(Ordering::Relaxed)),
        ] {
            let counter = self.snapshots.with_label_values(&[kind]);
            counter.inc_by(value.saturating_sub(counter.get()));
        }
        let membership = replica.membership();
        let voters = membership.voters().len();
        for (role, count) in [
            ("voter", voters),
            ("learner", membership.members.len() - voters),
        ] {
            self.members
                .with_label_values(&[role])
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        self.joint.set(i64::from(membership.joint));
        self.replication_lag.reset();
        if let (true, Some(replication)) = (leader, m.replication.as_ref()) {
            let last = plus_one(m.last_log_index);
            for (peer, matched) in replication.iter() {
                if *peer == replica.node_id {
                    continue;
                }
                let lag = last - plus_one(matched.map(|l| l.index));
                self.replication_lag
                    .with_label_values(&[peer.to_string().as_str()])
                    .set(lag.max(0));
            }
        }
        let mut out = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }
}
