//! Membership changes of a partition's group, made by its leader through
//! Raft (openraft's learner → voter path) and asked for over the internal
//! RPC (`Request::ChangeMembers`, mutual TLS in a cluster like every
//! internal call): `partita members`, `dev-cluster` and the operator drive
//! them.
//!
//! Every change is idempotent, so a caller that lost an answer calls
//! again: adding a learner that is already one only waits for it to catch
//! up, promoting a voter or removing a non-member changes nothing. Each
//! change is logged with the membership before and after.
//!
//! - `AddLearner` adds the member and answers once the leader knows it
//!   holds the log up to the entry that added it (a snapshot, then the
//!   log), or fails after [`CATCH_UP_TIMEOUT`] (call again to keep waiting);
//! - `Promote` makes a caught-up learner a voter (joint consensus, so a
//!   quorum of the old and of the new voters decides meanwhile), and
//!   refuses a learner more than [`PROMOTE_LAG`] entries behind;
//! - `Remove` takes a voter or a learner out; it refuses to remove the
//!   last voter.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};

use crate::replica::Replica;
use crate::rpc::{MemberChange, MemberInfo, Membership, NodeError};

/// How long `AddLearner` waits for the learner to catch up.
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// How far behind the leader's log a learner may be when promoted.
pub const PROMOTE_LAG: u64 = 100;

impl Replica {
    /// The partition's membership as this replica sees it.
    pub fn membership(&self) -> Membership {
        let m = self.raft.metrics().borrow().clone();
        let config = m.membership_config.membership();
        let voters: BTreeSet<u64> = config.voter_ids().collect();
        let members = config
            .nodes()
            .map(|(id, node)| MemberInfo {
                id: *id,
                address: self.address_of(*id).unwrap_or_else(|| node.addr.clone()),
                voter: voters.contains(id),
                matched: match &m.replication {
                    None => None,
                    Some(_) if *id == self.node_id => m.last_log_index,
                    Some(r) => r.get(id).cloned().flatten().map(|l| l.index),
                },
            })
            .collect();
        Membership {
            member: self.node_id,
            leader: m.current_leader,
            term: m.current_term,
            log_index: m.membership_config.log_id().map(|l| l.index),
            joint: config.get_joint_config().len() > 1,
            members,
            last_log: m.last_log_index,
        }
    }

    /// Stops this replica standing for election for `pause`.
    ///
    /// openraft has no pre-vote and draws each replica's election timeout
    /// once. A replica whose log is behind (it missed entries a quorum
    /// committed while it was down) but whose timeout is shorter than an
    /// up-to-date peer's raises its term before each of the peer's
    /// elections and so refuses the peer's vote every time: with the rest
    /// of the group down nobody wins. While this replica pauses, the peer's
    /// next election carries a higher term, and this replica grants it.
    pub async fn stand_down(&self, pause: Duration) {
        tracing::info!(
            member = self.node_id,
            ?pause,
            "a peer's log is ahead of this leaderless replica's: not standing for election meanwhile"
        );
        self.raft.runtime_config().elect(false);
        tokio::time::sleep(pause).await;
        self.raft.runtime_config().elect(true);
    }

    /// Moves the leadership off this replica before it stops, when it
    /// leads a group with other voters: it answers no data call from now
    /// on (the gateway retries elsewhere), lets the voters catch up with
    /// its log (up to a second), then stops sending heartbeats and standing
    /// for election, so a caught-up voter is elected once the leader's
    /// lease runs out (under a second) instead of after the group notices a
    /// dead leader. Returns the new leader, or None when this replica did
    /// not lead or no leader came within `timeout`.
    pub async fn hand_over(&self, timeout: Duration) -> Option<u64> {
        let start = tokio::time::Instant::now();
        let m = self.raft.metrics().borrow().clone();
        if m.current_leader != Some(self.node_id) {
            return None;
        }
        let voters: BTreeSet<u64> = m.membership_config.membership().voter_ids().collect();
        if voters.iter().all(|v| *v == self.node_id) {
            return None;
        }
        self.handing_over
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let caught_up = |m: &openraft::RaftMetrics<u64, openraft::BasicNode>| {
            m.replication.as_ref().is_some_and(|r| {
                voters
                    .iter()
                    .filter(|v| **v != self.node_id)
                    .all(|v| r.get(v).cloned().flatten().map(|l| l.index) == m.last_log_index)
            })
        };
        while start.elapsed() < Duration::from_secs(1)
            && !caught_up(&self.raft.metrics().borrow().clone())
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.raft.runtime_config().heartbeat(false);
        self.raft.runtime_config().elect(false);
        tracing::info!(
            member = self.node_id,
            "stopping: handing the partition's leadership over"
        );
        loop {
            let leader = self.raft.metrics().borrow().current_leader;
            if let Some(leader) = leader.filter(|l| *l != self.node_id) {
                tracing::info!(
                    member = self.node_id,
                    new_leader = leader,
                    after = ?start.elapsed(),
                    "leadership handed over"
                );
                return Some(leader);
            }
            if start.elapsed() >= timeout {
                tracing::warn!(
                    member = self.node_id,
                    ?timeout,
                    "no other leader was elected: stopping anyway"
                );
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Makes `change` (leader only) and returns the membership after it.
    pub async fn change_members(&self, change: MemberChange) -> Result<Membership, NodeError> {
        let before = self.membership();
        if before.leader != Some(self.node_id) {
            return Err(self.not_leader(before.leader));
        }
        match &change {
            MemberChange::AddLearner { member, address } => {
                let known = before
                    .members
                    .iter()
                    .find(|m| m.id == *member)
                    .map(|m| m.address.clone());
                let since = match known {
                    Some(known) if known == *address => before.log_index.unwrap_or(0),
                    Some(known) => {
                        return Err(NodeError::Membership(format!(
                            "member {member} is already in the group at {known}, not at {address}"
                        )))
                    }
                    None => {
                        let added = self
                            .raft
                            .add_learner(*member, BasicNode::new(address.clone()), false)
                            .await
                            .map_err(|e| self.write_error(e))?;
                        self.log_change(&change, &before);
                        added.log_id.index
                    }
                };
                self.wait_caught_up(*member, since).await?;
            }
            MemberChange::Promote { member } => {
                let Some(info) = before.members.iter().find(|m| m.id == *member) else {
                    return Err(NodeError::Membership(format!(
                        "member {member} is not in the group: add it as a learner first"
                    )));
                };
                if !info.voter {
                    let last = before.last_log.unwrap_or(0);
                    let matched = info.matched.unwrap_or(0);
                    if last.saturating_sub(matched) > PROMOTE_LAG {
                        return Err(NodeError::Membership(format!(
                            "learner {member} is {} entries behind the leader: promote it once it caught up",
                            last.saturating_sub(matched)
                        )));
                    }
                    self.raft
                        .change_membership(ChangeMembers::AddVoterIds([*member].into()), false)
                        .await
                        .map_err(|e| self.write_error(e))?;
                    self.log_change(&change, &before);
                }
            }
            MemberChange::Remove { member } => {
                let Some(info) = before.members.iter().find(|m| m.id == *member) else {
                    return Ok(before);
                };
                let change_set = if info.voter {
                    if before.voters() == [*member] {
                        return Err(NodeError::Membership(format!(
                            "member {member} is the group's last voter"
                        )));
                    }
                    ChangeMembers::RemoveVoters([*member].into())
                } else {
                    ChangeMembers::RemoveNodes([*member].into())
                };
                self.raft
                    .change_membership(change_set, false)
                    .await
                    .map_err(|e| self.write_error(e))?;
                self.log_change(&change, &before);
            }
        }
        Ok(self.membership())
    }

    /// Waits until the leader knows `member` holds the log up to `index`.
    async fn wait_caught_up(&self, member: u64, index: u64) -> Result<(), NodeError> {
        let mut metrics = self.raft.metrics();
        let deadline = tokio::time::Instant::now() + CATCH_UP_TIMEOUT;
        loop {
            {
                let m = metrics.borrow_and_update();
                if m.current_leader != Some(self.node_id) {
                    return Err(self.not_leader(m.current_leader));
                }
                let matched = m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&member).cloned())
                    .flatten();
                if matched.is_some_and(|l| l.index >= index) {
                    return Ok(());
                }
            }
            match tokio::time::timeout_at(deadline, metrics.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(NodeError::Unavailable("raft stopped".into())),
                Err(_) => {
                    return Err(NodeError::Membership(format!(
                        "learner {member} has not caught up in {CATCH_UP_TIMEOUT:?}: it is added; call again to keep waiting"
                    )))
                }
            }
        }
    }

    fn write_error(&self, e: RaftError<u64, ClientWriteError<u64, BasicNode>>) -> NodeError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                self.not_leader(f.leader_id)
            }
            RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
                NodeError::Membership(e.to_string())
            }
            RaftError::Fatal(e) => NodeError::Unavailable(e.to_string()),
        }
    }

    fn log_change(&self, change: &MemberChange, before: &Membership) {
        let after = self.membership();
        let describe = |m: &Membership| {
            m.members
                .iter()
                .map(|i| {
                    format!(
                        "{}{}@{}",
                        if i.voter { "" } else { "learner " },
                        i.id,
                        i.address
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        tracing::info!(
            table = %self.table,
            partition = self.partition,
            ?change,
            before = %describe(before),
            after = %describe(&after),
            "membership changed"
        );
    }
}
