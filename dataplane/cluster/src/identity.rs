//! A replica's identity, kept on its own disk: `member.json` in the data
//! directory names the Raft member the directory belongs to — its member
//! id, table and partition — from the first start on.
//!
//! What it guards:
//! - a data directory is only ever opened as the member it was created
//!   for: a volume mounted on the wrong pod (another partition, another
//!   table, or a zone whose member id differs) is refused with a clear
//!   error;
//! - an empty data directory is a new member, never an old one: before its
//!   Raft starts, the replica asks the partition's other replicas where
//!   they stand ([`decide`], `Request::Founding`). When one is a member,
//!   the group exists and this replica becomes a *blank* member with a new
//!   random id: it never votes under the identity its directory had, and
//!   waits to be added (`crate::membership`, `partita members add`). When
//!   every other replica answered and none is a member, it durably
//!   *promises* to found the group and initializes it once every founder
//!   promised — so a founder wiped after the group formed finds a member
//!   and comes back blank, and one wiped before lost no vote (no Raft ran
//!   yet);
//! - a member removed from the group (it learns it from its own log, or
//!   from a peer's leader when it starts or goes without a leader) records
//!   `removed` and its directory is never opened again: it can only rejoin
//!   as a new member, on an empty data directory;
//! - data directories written before this file existed (a Raft log, no
//!   `member.json`) are adopted as the member their flags name.
//!
//! Format (version 1):
//!
//! ```json
//! {"formatVersion": 1, "memberId": 2, "table": "Orders", "partition": 0,
//!  "createdAtMs": 1796635429723,
//!  "state": "founding" | "member" | "blank" | "removed"}
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use partita_topology::PartitionTopology;
use serde::{Deserialize, Serialize};

use crate::ClusterError;

/// The identity file's name in a replica's data directory.
pub const FILE_NAME: &str = "member.json";
const FORMAT_VERSION: u32 = 1;

/// The member a data directory belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub format_version: u32,
    pub member_id: u64,
    pub table: String,
    pub partition: u32,
    pub created_at_ms: u64,
    /// Where the member stands (absent in files that predate it: member).
    #[serde(default)]
    pub state: MemberState,
}

/// Where a member stands: see the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MemberState {
    /// Promised to found the group; not initialized yet.
    Founding,
    /// A member of the group.
    #[default]
    Member,
    /// A new member of a group that existed before its data directory did:
    /// waits to be added.
    Blank,
    /// Removed from the group: the directory is never opened again; the
    /// replica can only rejoin as a new member (an empty data directory).
    Removed,
}

impl Identity {
    /// Returns a new identity of member `member_id` of `table`'s partition
    /// `partition`.
    pub fn new(
        table: &str,
        partition: u32,
        member_id: u64,
        state: MemberState,
        now_ms: u64,
    ) -> Identity {
        Identity {
            format_version: FORMAT_VERSION,
            member_id,
            table: table.to_string(),
            partition,
            created_at_ms: now_ms,
            state,
        }
    }

    /// Returns a fresh member id for a blank member: random, with the top
    /// bit set, so it is never a founding member's id.
    pub fn blank_member_id() -> u64 {
        let mut bytes = [0u8; 8];
        if let Ok(mut random) = std::fs::File::open("/dev/urandom") {
            use std::io::Read;
            let _ = random.read_exact(&mut bytes);
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        (u64::from_le_bytes(bytes) ^ nanos) | (1 << 63)
    }
}

fn config(message: String) -> ClusterError {
    ClusterError::Config(message)
}

fn path_of(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

impl Identity {
    /// Reads the identity of `dir`; `None` when it has none yet.
    pub fn load(dir: &Path) -> Result<Option<Identity>, ClusterError> {
        let path = path_of(dir);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(config(format!("reading {}: {e}", path.display()))),
        };
        let identity: Identity = serde_json::from_slice(&bytes)
            .map_err(|e| config(format!("{} is not a member identity: {e}", path.display())))?;
        if identity.format_version != FORMAT_VERSION {
            return Err(config(format!(
                "{} has format version {}; this partita reads version {FORMAT_VERSION}",
                path.display(),
                identity.format_version
            )));
        }
        Ok(Some(identity))
    }

    /// Writes the identity durably: a temporary file, fsynced, renamed over
    /// the file, and the directory fsynced.
    pub fn save(&self, dir: &Path) -> Result<(), ClusterError> {
        let path = path_of(dir);
        let tmp = dir.join(format!("{FILE_NAME}.tmp"));
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| config(format!("encoding the member identity: {e}")))?;
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| config(format!("writing {}: {e}", path.display())))
    }

    /// Returns the identity of `dir` when it belongs to member `member_id`
    /// of `table`'s partition `partition`, creating it when the directory
    /// has none; refuses a directory that belongs to another member.
    pub fn establish(
        dir: &Path,
        table: &str,
        partition: u32,
        member_id: u64,
        now_ms: u64,
    ) -> Result<Identity, ClusterError> {
        let wanted = Identity::new(table, partition, member_id, MemberState::Member, now_ms);
        match Identity::load(dir)? {
            Some(found) => {
                if (found.table.as_str(), found.partition) != (table, partition)
                    || (found.state != MemberState::Blank && found.member_id != member_id)
                {
                    return Err(config(format!(
                        "data directory {} belongs to member {} of table {} partition {}, not to member {member_id} of table {table} partition {partition}: a volume mounted on the wrong replica is never opened",
                        dir.display(),
                        found.member_id,
                        found.table,
                        found.partition
                    )));
                }
                Ok(found)
            }
            None => {
                wanted.save(dir)?;
                tracing::info!(dir = %dir.display(), member_id, table, partition,
                    "member identity written to the data directory");
                Ok(wanted)
            }
        }
    }
}

/// The replicas of a partition a founding replica consults.
pub struct Peers {
    /// The target of the partition (table, partition, epoch).
    pub target: crate::rpc::Target,
    /// The RPC addresses of the other replicas the topology lists.
    pub addresses: Vec<String>,
    pub clients: std::sync::Arc<crate::rpc::Clients>,
}

impl Peers {
    /// Asks every peer where it stands; `None` for a peer that did not
    /// answer (down, or too old to know the call).
    async fn states(&self) -> Vec<Option<crate::rpc::FoundingState>> {
        let mut states = Vec::with_capacity(self.addresses.len());
        for address in &self.addresses {
            let request = crate::rpc::Request::Founding(self.target.clone());
            let answer = self
                .clients
                .get(address)
                .call(&request, std::time::Duration::from_secs(1))
                .await;
            states.push(match answer {
                Ok(crate::rpc::Response::Founding(state)) => Some(state),
                _ => None,
            });
        }
        states
    }

    /// Asks every peer for the partition's membership as it sees it, and
    /// the leader a peer follows when it is not one of them (a member
    /// added after this replica last heard from the group); the answers of
    /// those that answered.
    pub async fn views(&self) -> Vec<crate::rpc::Membership> {
        let mut queue: std::collections::VecDeque<String> =
            self.addresses.iter().cloned().collect();
        let mut asked = std::collections::BTreeSet::new();
        let mut views = Vec::new();
        while let Some(address) = queue.pop_front() {
            if asked.len() >= MAX_ASKED || !asked.insert(address.clone()) {
                continue;
            }
            let request = crate::rpc::Request::Members(self.target.clone());
            let answer = self
                .clients
                .get(&address)
                .call(&request, std::time::Duration::from_secs(1))
                .await;
            if let Ok(crate::rpc::Response::Members(Ok(m))) = answer {
                let leader = m
                    .leader
                    .filter(|l| *l != m.member)
                    .and_then(|l| m.members.iter().find(|x| x.id == l));
                if let Some(leader) = leader {
                    queue.push_back(leader.address.clone());
                }
                views.push(m);
            }
        }
        views
    }
}

/// The most replicas [`Peers::views`] asks (a group has a handful).
const MAX_ASKED: usize = 16;

/// Refuses a data directory that belongs to another replica: another
/// table or partition, or a member the topology lists in another zone (a
/// volume mounted on the wrong pod). A member the topology does not list
/// (one added by a membership change) is accepted in any zone.
fn check_owner(
    identity: &Identity,
    dir: &Path,
    table: &str,
    part: &PartitionTopology,
    zone: &str,
) -> Result<(), ClusterError> {
    let elsewhere = part
        .members()
        .any(|(id, r)| id == identity.member_id && r.zone != zone);
    if (identity.table.as_str(), identity.partition) != (table, part.id)
        || (identity.state != MemberState::Blank && elsewhere)
    {
        return Err(config(format!(
            "data directory {} belongs to member {} of table {} partition {}, not to the replica of table {table} partition {} in zone {zone}: a volume mounted on the wrong replica is never opened",
            dir.display(),
            identity.member_id,
            identity.table,
            identity.partition,
            part.id
        )));
    }
    if identity.state == MemberState::Removed {
        return Err(config(format!(
            "data directory {} belongs to member {} of table {table} partition {}, which was removed from the partition's group: it can only rejoin as a new member (empty the data directory)",
            dir.display(),
            identity.member_id,
            part.id
        )));
    }
    Ok(())
}

/// Decides who the replica of `table`'s partition `part` in `zone`, on
/// `dir`, is before its Raft starts, and returns its identity (see the
/// module docs):
///
/// - a directory with an identity keeps it (a `founding` one waits until
///   every founding member promised; a `removed` one is refused);
/// - one written before identities existed (a Raft log, no file) is the
///   member its zone names in the topology;
/// - an empty one asks its peers: when one is a member, the group exists and
///   this replica becomes a blank member under a new id (it waits to be
///   added and takes no part meanwhile); when every peer answered and none
///   is a member, a replica the topology lists promises to found the group
///   under the id the topology gives it, durably, then waits until every
///   peer promised too. A replica in a zone the topology does not list can
///   only join a group that exists.
///
/// `state` is what the replica answers `Request::Founding` with meanwhile.
pub async fn decide(
    dir: &Path,
    table: &str,
    part: &PartitionTopology,
    zone: &str,
    peers: &Peers,
    state: &parking_lot::Mutex<crate::rpc::FoundingState>,
) -> Result<Identity, ClusterError> {
    use crate::rpc::FoundingState as F;
    let partition = part.id;
    let listed = part
        .replicas
        .iter()
        .position(|r| r.zone == zone)
        .map(|i| part.member_id(i));
    let now_ms = crate::wall_ms();
    let mut identity = match Identity::load(dir)? {
        Some(found) => found,
        None if dir.join("raft").exists() => {
            let member_id = listed.ok_or_else(|| {
                config(format!(
                    "data directory {} holds a Raft log but no member identity, and zone {zone} has no replica of table {table} partition {partition} in the topology",
                    dir.display()
                ))
            })?;
            Identity::establish(dir, table, partition, member_id, now_ms)?
        }
        None => {
            *state.lock() = F::Undecided;
            let mut rounds = 0u64;
            loop {
                let answers = peers.states().await;
                if answers.contains(&Some(F::Member)) {
                    let id = Identity::blank_member_id();
                    let blank = Identity::new(table, partition, id, MemberState::Blank, now_ms);
                    blank.save(dir)?;
                    tracing::warn!(dir = %dir.display(), table, partition, member_id = id,
                        "the data directory is empty but the partition's group exists: this replica is a new member and waits to be added (it never votes under the identity the directory had)");
                    break blank;
                }
                if let Some(member_id) = listed.filter(|_| {
                    answers
                        .iter()
                        .all(|a| matches!(a, Some(F::Undecided | F::Promised)))
                }) {
                    let founding =
                        Identity::new(table, partition, member_id, MemberState::Founding, now_ms);
                    founding.save(dir)?;
                    tracing::info!(
                        table,
                        partition,
                        member_id,
                        "promised to found the partition's group"
                    );
                    break founding;
                }
                rounds += 1;
                if rounds.is_multiple_of(200) {
                    tracing::info!(table, partition, ?answers, listed = listed.is_some(),
                        "an empty data directory: waiting for the partition's other replicas to tell whether its group exists");
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };
    check_owner(&identity, dir, table, part, zone)?;
    match identity.state {
        MemberState::Blank => *state.lock() = F::Blank,
        MemberState::Member => *state.lock() = F::Member,
        MemberState::Removed => *state.lock() = F::Removed,
        MemberState::Founding => {
            *state.lock() = F::Promised;
            let mut rounds = 0u64;
            loop {
                let answers = peers.states().await;
                if answers
                    .iter()
                    .all(|a| matches!(a, Some(F::Promised | F::Member)))
                {
                    break;
                }
                rounds += 1;
                if rounds.is_multiple_of(200) {
                    tracing::info!(
                        table,
                        partition,
                        ?answers,
                        "waiting until every founding member of the partition promised"
                    );
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            identity.state = MemberState::Member;
        }
    }
    Ok(identity)
}

/// The membership among peers' `views` that removed `member`: a leader's
/// settled (not joint) membership, at least as new as `own_index` (the
/// membership entry this replica holds: the same entry when the removal
/// reached this replica too), that does not list it.
pub fn removal(
    views: &[crate::rpc::Membership],
    member: u64,
    own_index: Option<u64>,
) -> Option<&crate::rpc::Membership> {
    views.iter().find(|m| {
        m.leader == Some(m.member) && !m.joint && m.log_index >= own_index && !m.contains(member)
    })
}

/// True when a peer's log reaches further than `own_last_log`: a replica
/// that knows no leader then stops standing for election for a while
/// (`Replica::stand_down`), so the peer can win one.
pub fn behind(views: &[crate::rpc::Membership], own_last_log: Option<u64>) -> bool {
    views.iter().any(|m| m.last_log > own_last_log)
}

/// Asks `peers` for the partition's membership and returns the one that
/// removed `member` ([`removal`]); `None` when no peer says so (or none
/// answers).
pub async fn removed_by_peers(
    peers: &Peers,
    member: u64,
    own_index: Option<u64>,
) -> Option<crate::rpc::Membership> {
    removal(&peers.views().await, member, own_index).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Identity::load(dir.path()).unwrap(), None);
        let first = Identity::establish(dir.path(), "T", 1, 2, 100).unwrap();
        assert_eq!(first.member_id, 2);
        // A later start keeps the first identity (its creation time too).
        let again = Identity::establish(dir.path(), "T", 1, 2, 999).unwrap();
        assert_eq!(again, first);
        assert_eq!(Identity::load(dir.path()).unwrap(), Some(first));
        assert!(!dir.path().join("member.json.tmp").exists());
    }

    #[test]
    fn a_directory_of_another_member_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Identity::establish(dir.path(), "T", 1, 2, 100).unwrap();
        for (table, partition, member) in [("U", 1, 2), ("T", 0, 2), ("T", 1, 0)] {
            let err = Identity::establish(dir.path(), table, partition, member, 100)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("belongs to member 2 of table T partition 1"),
                "{err}"
            );
        }
    }

    #[test]
    fn unreadable_or_newer_identities_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"{not json").unwrap();
        assert!(Identity::load(dir.path()).is_err());
        std::fs::write(
            dir.path().join(FILE_NAME),
            br#"{"formatVersion": 2, "memberId": 1, "table": "T", "partition": 0, "createdAtMs": 0}"#,
        )
        .unwrap();
        let err = Identity::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("format version 2"), "{err}");
    }

    fn view(
        member: u64,
        leader: u64,
        index: u64,
        last_log: u64,
        ids: &[u64],
    ) -> crate::rpc::Membership {
        crate::rpc::Membership {
            member,
            leader: Some(leader),
            term: 3,
            log_index: Some(index),
            joint: false,
            members: ids
                .iter()
                .map(|id| crate::rpc::MemberInfo {
                    id: *id,
                    address: format!("n{id}"),
                    voter: true,
                    matched: None,
                })
                .collect(),
            last_log: Some(last_log),
        }
    }

    #[test]
    fn only_a_leaders_settled_membership_at_least_as_new_removes() {
        let leader = view(2, 2, 10, 12, &[2, 3, 4]);
        let views = std::slice::from_ref(&leader);
        assert_eq!(removal(views, 0, Some(10)), Some(&leader));
        assert_eq!(removal(views, 0, Some(9)), Some(&leader));
        // Older than this replica's own membership entry: not the removal.
        assert_eq!(removal(views, 0, Some(11)), None);
        // Still listed.
        assert_eq!(removal(views, 3, Some(10)), None);
        // A follower's view may hold an entry that is not committed.
        assert_eq!(
            removal(&[view(3, 2, 10, 12, &[2, 3, 4])], 0, Some(10)),
            None
        );
        let joint = crate::rpc::Membership {
            joint: true,
            ..leader
        };
        assert_eq!(removal(&[joint], 0, Some(10)), None);
    }

    #[test]
    fn a_replica_is_behind_when_a_peers_log_reaches_further() {
        let peers = [view(2, 2, 10, 12, &[2, 3]), view(3, 2, 10, 15, &[2, 3])];
        assert!(behind(&peers, Some(14)));
        assert!(behind(&peers, None));
        assert!(!behind(&peers, Some(15)));
        assert!(!behind(&[], Some(1)));
    }
}
