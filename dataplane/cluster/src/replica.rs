//! One replica of one partition: its Raft member, its store, and the
//! handler of the calls it receives (Raft messages from peers, data calls
//! from gateways).
//!
//! Node ids are the member ids of [`crate::identity`]: a founding member's
//! is the id the topology file gives its zone's replica (its position in
//! the partition's replica list unless the entry names one); each node's
//! openraft `BasicNode` address is its address when it was added, and the
//! topology's address for the member wins when it lists one (pods and
//! dev-cluster nodes move). A replica starts only once its identity is
//! decided: founders initialize the group with the full membership once
//! every founder promised (openraft accepts the same initial membership on
//! every member); a blank member (an empty data directory of a group that
//! exists) starts uninitialized and takes part only once the leader added
//! it ([`crate::membership`]). Raft calls to a peer name the member they
//! are for (`Request::ForMember`), and a replica refuses calls for any
//! other member.
//!
//! Reads: `consistent` reads go through `ensure_linearizable` (read index:
//! the leader confirms its leadership with a quorum and waits until it has
//! applied up to its commit index) and are answered by the leader only;
//! other reads are answered from the local store (possibly stale).
//!
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    CheckIsLeaderError, ClientWriteError, InstallSnapshotError, NetworkError, RPCError, RaftError,
    RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Config, SnapshotPolicy};
use partita_model::Item;
use partita_storage::raft_log::RaftLog;
use partita_storage::{StorageError, Store, Visit};
use partita_supervise::OnFailure;
use partita_topology::topology::DYNAMIC_TABLES;
use partita_topology::TableTopology;

use crate::log_store::LogStore;
use crate::rpc::{Client, Clients, NodeError, Page, Request, Response, Status, Target};
use crate::state_machine::{SnapshotCounters, StateMachine};
use crate::types::{Command, Raft, Reply, TypeConfig};
use crate::{wall_ms, ClusterError};

/// Settings of a replica.
#[derive(Clone, Debug)]
pub struct ReplicaOptions {
    /// Entries applied since the last snapshot that trigger a new one.
    pub snapshot_logs: u64,
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// TLS client configuration for calls to Raft peers (`None`: plaintext).
    pub peer_tls: Option<Arc<rustls::ClientConfig>>,
    /// How often the leader proposes change-log maintenance (trimming,
    /// shard rolls) through the log.
    pub stream_maintenance_interval: Duration,
    /// How often the leader looks for expired items and proposes their
    /// deletion through the log.
    pub ttl_interval: Duration,
}

impl Default for ReplicaOptions {
    fn default() -> Self {
        ReplicaOptions {
            snapshot_logs: 10_000,
            heartbeat_ms: 100,
            election_timeout_min_ms: 500,
            election_timeout_max_ms: 1000,
            peer_tls: None,
            stream_maintenance_interval: Duration::from_secs(60),
            ttl_interval: partita_storage::DEFAULT_TTL_SWEEP_INTERVAL,
        }
    }
}

/// A running replica.
pub struct Replica {
    pub raft: Raft,
    pub store: Arc<Store>,
    pub node_id: u64,
    pub(crate) table: String,
    pub(crate) partition: u32,
    epoch: u64,
    /// Member addresses the topology file lists, by member id.
    addresses: HashMap<u64, String>,
    /// Last committed index + 1 saved by the log store (0: none).
    committed: Arc<std::sync::atomic::AtomicU64>,
    snapshots: Arc<SnapshotCounters>,
    /// Set while this leader hands its leadership over before stopping
    /// (`Replica::hand_over`): it answers no data call meanwhile.
    pub(crate) handing_over: std::sync::atomic::AtomicBool,
}

/// The openraft network: one multiplexed RPC client per peer.
#[derive(Clone)]
struct Network {
    clients: Arc<Clients>,
    target: Target,
    /// Peer addresses by member id, from the topology file: the addresses
    /// in the stored membership may be stale (a pod or a dev-cluster
    /// restarted on new addresses), the topology is current when it lists
    /// the member.
    addresses: HashMap<u64, String>,
}

struct PeerLink {
    client: Arc<Client>,
    target: Target,
    peer: u64,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerLink;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerLink {
        let address = self
            .addresses
            .get(&target)
            .cloned()
            .unwrap_or_else(|| node.addr.clone());
        PeerLink {
            client: self.clients.get(&address),
            target: self.target.clone(),
            peer: target,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Transport(String);

impl PeerLink {
    async fn call<E: std::error::Error>(
        &self,
        request: Request,
        option: &RPCOption,
    ) -> Result<Response, RPCError<u64, BasicNode, E>> {
        self.client
            .call(&request, option.hard_ttl())
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&Transport(e.to_string()))))
    }

    /// Wraps `request` so that only the member it is for answers it.
    fn for_peer(&self, request: Request) -> Request {
        Request::ForMember(self.peer, Box::new(request))
    }

    fn unexpected<E: std::error::Error>(&self, r: Response) -> RPCError<u64, BasicNode, E> {
        RPCError::Network(NetworkError::new(&Transport(format!(
            "unexpected answer from node {}: {r:?}",
            self.peer
        ))))
    }
}

impl RaftNetwork<TypeConfig> for PeerLink {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self
            .call(
                self.for_peer(Request::AppendEntries(self.target.clone(), rpc)),
                &option,
            )
            .await?
        {
            Response::AppendEntries(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.peer, e)))
            }
            other => Err(self.unexpected(other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        match self
            .call(
                self.for_peer(Request::InstallSnapshot(self.target.clone(), rpc)),
                &option,
            )
            .await?
        {
            Response::InstallSnapshot(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.peer, e)))
            }
            other => Err(self.unexpected(other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self
            .call(
                self.for_peer(Request::Vote(self.target.clone(), rpc)),
                &option,
            )
            .await?
        {
            Response::Vote(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.peer, e)))
            }
            other => Err(self.unexpected(other)),
        }
    }
}

fn storage(e: StorageError) -> NodeError {
    NodeError::Storage(e.into())
}

impl Replica {
    /// Starts the replica `node_id` of partition `partition` of `table`:
    /// opens the Raft log under `data_dir/raft`, the state machine on
    /// `store` (which already holds the table and the meta table), starts
    /// Raft and, for a founding member (`found`), initializes the group
    /// with the topology's members when it never was. A blank member
    /// (`!found`) starts uninitialized and waits to be added.
    pub async fn start(
        table: &TableTopology,
        partition: u32,
        node_id: u64,
        found: bool,
        data_dir: &Path,
        store: Arc<Store>,
        options: ReplicaOptions,
    ) -> Result<Arc<Replica>, ClusterError> {
        let part = table
            .partitions
            .get(partition as usize)
            .ok_or_else(|| ClusterError::Config(format!("no partition {partition}")))?;
        let addresses: HashMap<u64, String> = part
            .members()
            .map(|(id, r)| (id, r.address.clone()))
            .collect();
        let log = RaftLog::open(&data_dir.join("raft"), true).map_err(ClusterError::Storage)?;
        let log_store = LogStore::new(Arc::new(log));
        let committed = log_store.committed_handle();
        let sm = StateMachine::open(store.clone(), data_dir.join("snapshot.bin"))
            .map_err(|e| ClusterError::Config(format!("state machine: {e}")))?;
        let snapshots = sm.counters();
        let config = Config {
            cluster_name: format!("{}-{}", table.table_name, partition),
            heartbeat_interval: options.heartbeat_ms,
            election_timeout_min: options.election_timeout_min_ms,
            election_timeout_max: options.election_timeout_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(options.snapshot_logs),
            max_in_snapshot_log_to_keep: 100,
            ..Default::default()
        };
        let config = Arc::new(
            config
                .validate()
                .map_err(|e| ClusterError::Config(format!("raft config: {e}")))?,
        );
        let target = Target {
            table: table.table_name.clone(),
            partition,
            epoch: table.epoch.0,
        };
        let network = Network {
            clients: Arc::new(Clients::with_tls(options.peer_tls.clone())),
            target,
            addresses: addresses.clone(),
        };
        let raft = Raft::new(node_id, config, network, log_store, sm)
            .await
            .map_err(|e| ClusterError::Config(format!("raft start: {e}")))?;
        let members: BTreeMap<u64, BasicNode> = part
            .members()
            .map(|(id, r)| (id, BasicNode::new(r.address.clone())))
            .collect();
        if found
            && !raft
                .is_initialized()
                .await
                .map_err(|e| ClusterError::Config(format!("raft: {e}")))?
        {
            if let Err(e) = raft.initialize(members).await {
                tracing::info!(error = %e, "raft group already initialized by a peer");
            }
        }
        let replica = Arc::new(Replica {
            raft,
            store,
            node_id,
            table: table.table_name.clone(),
            partition,
            epoch: table.epoch.0,
            addresses,
            committed,
            snapshots,
            handing_over: std::sync::atomic::AtomicBool::new(false),
        });
        let detail = format!("table {} partition {partition}", table.table_name);
        let weak = Arc::downgrade(&replica);
        partita_supervise::spawn_task(
            "raft_housekeeping",
            detail.clone(),
            OnFailure::Restart,
            move |task| leader_housekeeping(weak.clone(), options.clone(), task),
        );
        let metrics = replica.raft.metrics();
        let weak = Arc::downgrade(&replica);
        partita_supervise::spawn_task("raft_core", detail, OnFailure::Exit, move |_| {
            watch_raft_core(metrics.clone(), weak.clone())
        });
        Ok(replica)
    }

    /// True when this replica is its group's leader now (and is not
    /// handing its leadership over).
    fn is_leader(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        m.current_leader == Some(self.node_id) && !self.handing_over.load(Ordering::Relaxed)
    }

    /// Proposes `command` at the leader's clock (leader only).
    async fn propose_timed(&self, command: Command) -> Result<Reply, NodeError> {
        let now_ms = wall_ms();
        match self
            .raft
            .client_write(Command::Timed(now_ms, Box::new(command)))
            .await
        {
            Ok(response) => Ok(response.data),
            Err(e) => Err(NodeError::Unavailable(e.to_string())),
        }
    }

    /// Finds items expired now and proposes their deletion, a chunk at a
    /// time; returns how many were deleted.
    async fn expire_now(&self) -> Result<usize, NodeError> {
        let mut deleted = 0;
        loop {
            let now_secs = (wall_ms() / 1000) as i64;
            let store = self.store.clone();
            let expired =
                tokio::task::spawn_blocking(move || store.expired(now_secs, EXPIRE_CHUNK))
                    .await
                    .map_err(|e| NodeError::Unavailable(e.to_string()))?
                    .map_err(storage)?;
            if expired.is_empty() {
                return Ok(deleted);
            }
            let full = expired.len() == EXPIRE_CHUNK;
            if let Reply::Expired(done) = self.propose_timed(Command::Expire(expired)).await? {
                deleted += done.iter().filter(|d| **d).count();
            }
            if !full {
                return Ok(deleted);
            }
        }
    }

    /// Returns the last committed index + 1 this replica saved (0: none).
    pub fn committed_index(&self) -> u64 {
        self.committed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Returns the snapshot counters of this replica's state machine.
    pub fn snapshot_counters(&self) -> Arc<SnapshotCounters> {
        self.snapshots.clone()
    }

    /// True when this replica knows a leader of its partition (readiness).
    pub fn has_leader(&self) -> bool {
        self.raft.metrics().borrow().current_leader.is_some()
    }

    /// Checks that a call from a Raft peer is for this replica's group.
    /// Not its epoch: the topology's epoch grows with membership changes
    /// (the topology lists the new members), and the members of a group
    /// started at different epochs still talk to each other.
    fn check_group(&self, target: &Target) -> Result<(), NodeError> {
        let table_ok = self.table == DYNAMIC_TABLES || target.table == self.table;
        if !table_ok || target.partition != self.partition {
            return Err(NodeError::WrongPartition {
                table: self.table.clone(),
                partition: self.partition,
            });
        }
        Ok(())
    }

    /// Checks that a gateway's call is for this replica's partition at the
    /// current or a newer epoch of the partition map.
    ///
    /// A replica outside its group's membership (a blank member not added
    /// yet, or a removed one) answers no data call: its store is not the
    /// group's. It answers "not the leader" with no hint, so the gateway
    /// tries another replica.
    fn check(&self, target: &Target) -> Result<(), NodeError> {
        self.check_group(target)?;
        if self.handing_over.load(Ordering::Relaxed) {
            return Err(self.not_leader(None));
        }
        let member = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&self.node_id)
            .is_some();
        if !member {
            return Err(self.not_leader(None));
        }
        if target.epoch < self.epoch {
            return Err(NodeError::StaleEpoch {
                current: self.epoch,
            });
        }
        Ok(())
    }

    /// The address of member `member`: the topology's when it lists the
    /// member, else the one it was added with.
    pub(crate) fn address_of(&self, member: u64) -> Option<String> {
        if let Some(address) = self.addresses.get(&member) {
            return Some(address.clone());
        }
        let m = self.raft.metrics().borrow().clone();
        m.membership_config
            .membership()
            .get_node(&member)
            .map(|n| n.addr.clone())
    }

    pub(crate) fn not_leader(&self, leader: Option<u64>) -> NodeError {
        NodeError::NotLeader {
            partition: self.partition,
            leader_hint: leader.and_then(|l| self.address_of(l)),
        }
    }

    /// Waits until reads on this replica are linearizable (leader only).
    async fn linearize(&self) -> Result<(), NodeError> {
        match self.raft.ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(self.not_leader(f.leader_id))
            }
            Err(RaftError::APIError(e)) => Err(NodeError::Unavailable(e.to_string())),
            Err(RaftError::Fatal(e)) => Err(NodeError::Unavailable(e.to_string())),
        }
    }

    /// Returns this replica's Raft status.
    pub fn status(&self) -> Status {
        let m = self.raft.metrics().borrow().clone();
        Status {
            node_id: self.node_id,
            term: m.current_term,
            leader: m.current_leader,
            last_applied: m.last_applied.map(|l| l.index),
            last_log: m.last_log_index,
            snapshot: m.snapshot.map(|l| l.index),
        }
    }

    /// Handles one call.
    pub async fn handle(self: Arc<Self>, request: Request) -> Response {
        match request {
            // A running replica is a member of its group.
            Request::Founding(_) => Response::Founding(crate::rpc::FoundingState::Member),
            Request::Identity(_) => {
                Response::Identity(Some(self.node_id), crate::rpc::FoundingState::Member)
            }
            Request::ForMember(member, request) => {
                if member != self.node_id {
                    return Response::BadRequest(format!(
                        "this replica is member {} of table {} partition {}, not member {member}",
                        self.node_id, self.table, self.partition
                    ));
                }
                Box::pin(self.handle(*request)).await
            }
            Request::Members(target) => Response::Members(
                async {
                    self.check_group(&target)?;
                    Ok(self.membership())
                }
                .await,
            ),
            Request::ChangeMembers(target, change) => Response::Members(
                async {
                    self.check_group(&target)?;
                    self.change_members(change).await
                }
                .await,
            ),
            Request::AppendEntries(t, rpc) => match self.check_group(&t) {
                Ok(()) => Response::AppendEntries(self.raft.append_entries(rpc).await),
                Err(e) => Response::BadRequest(e.to_string()),
            },
            Request::Vote(t, rpc) => match self.check_group(&t) {
                Ok(()) => Response::Vote(self.raft.vote(rpc).await),
                Err(e) => Response::BadRequest(e.to_string()),
            },
            Request::InstallSnapshot(t, rpc) => match self.check_group(&t) {
                Ok(()) => Response::InstallSnapshot(self.raft.install_snapshot(rpc).await),
                Err(e) => Response::BadRequest(e.to_string()),
            },
            Request::Write(t, command) => Response::Write(self.write(&t, command).await),
            Request::Get {
                target,
                table,
                key,
                consistent,
            } => Response::Item(self.get(&target, &table, &key, consistent).await),
            Request::Query {
                target,
                table,
                index,
                hash_value,
                sort,
                forward,
                exclusive_start,
                limit,
                consistent,
            } => Response::Page(
                async {
                    self.check(&target)?;
                    if consistent {
                        self.linearize().await?;
                    }
                    let mut page = Page {
                        items: Vec::new(),
                        more: false,
                        lock: crate::txn::table_lock(&self.store, &table).map_err(storage)?,
                    };
                    let mut visit = |item: Item| {
                        if page.items.len() >= limit as usize {
                            page.more = true;
                            return Visit::Stop;
                        }
                        page.items.push(item);
                        Visit::Continue
                    };
                    let result = match &index {
                        Some(index) => self.store.query_index(
                            &table,
                            index,
                            &hash_value,
                            sort.as_ref(),
                            forward,
                            exclusive_start.as_ref(),
                            &mut visit,
                        ),
                        None => self.store.query(
                            &table,
                            &hash_value,
                            sort.as_ref(),
                            forward,
                            exclusive_start.as_ref(),
                            &mut visit,
                        ),
                    };
                    result.map_err(storage)?;
                    Ok(page)
                }
                .await,
            ),
            Request::Scan {
                target,
                table,
                index,
                segment,
                total_segments,
                exclusive_start,
                limit,
                consistent,
            } => Response::Page(
                async {
                    self.check(&target)?;
                    if consistent {
                        self.linearize().await?;
                    }
                    let mut page = Page {
                        items: Vec::new(),
                        more: false,
                        lock: crate::txn::table_lock(&self.store, &table).map_err(storage)?,
                    };
                    let mut visit = |item: Item| {
                        if page.items.len() >= limit as usize {
                            page.more = true;
                            return Visit::Stop;
                        }
                        page.items.push(item);
                        Visit::Continue
                    };
                    let result = match &index {
                        Some(index) => self.store.scan_index(
                            &table,
                            index,
                            segment,
                            total_segments,
                            exclusive_start.as_ref(),
                            &mut visit,
                        ),
                        None => self.store.scan(
                            &table,
                            segment,
                            total_segments,
                            exclusive_start.as_ref(),
                            &mut visit,
                        ),
                    };
                    result.map_err(storage)?;
                    Ok(page)
                }
                .await,
            ),
            Request::TransactGet { target, gets } => Response::Items(
                async {
                    self.check(&target)?;
                    self.linearize().await?;
                    self.store.transact_get(&gets).map_err(storage)
                }
                .await,
            ),
            Request::Describe { target, table } => Response::Describe(
                async {
                    self.check(&target)?;
                    // The leader may not have applied its log tail yet
                    // (e.g. right after a restart): read index first.
                    self.linearize().await?;
                    let def = self.store.table(&table).map_err(storage)?;
                    let (items, bytes) = self.store.table_stats(&table).map_err(storage)?;
                    Ok(Box::new((def, items, bytes)))
                }
                .await,
            ),
            Request::IndexInfo {
                target,
                table,
                index,
            } => Response::IndexInfo(
                async {
                    self.check(&target)?;
                    self.linearize().await?;
                    let state = self.store.index_state(&table, &index).map_err(storage)?;
                    let (n, b) = self.store.index_stats(&table, &index).map_err(storage)?;
                    Ok((state, n, b))
                }
                .await,
            ),
            Request::Status(target) => {
                Response::Status(self.check_group(&target).map(|_| self.status()))
            }
            Request::ListTables(target) => Response::Names(
                async {
                    self.check(&target)?;
                    self.linearize().await?;
                    Ok(self
                        .store
                        .list_tables()
                        .into_iter()
                        .filter(|t| !crate::txn::is_hidden(t))
                        .collect())
                }
                .await,
            ),
            Request::Streams { target, table } => Response::Streams(
                async {
                    self.check(&target)?;
                    self.linearize().await?;
                    self.store.streams(&table).map_err(storage)
                }
                .await,
            ),
            Request::ReadChanges {
                target,
                table,
                from,
                until,
                limit,
            } => Response::Changes(
                async {
                    self.check(&target)?;
                    // No read-index round: every replica numbers the same
                    // records alike, so a replica that is behind only
                    // answers fewer of them (the next read gets the rest);
                    // change-log tailers poll this often.
                    self.store
                        .read_changes(&table, 0, from, until, limit as usize)
                        .map_err(storage)
                }
                .await,
            ),
            Request::Replication { target, table } => Response::Replication(
                async {
                    self.check(&target)?;
                    self.linearize().await?;
                    self.store.replication(&table).map_err(storage)
                }
                .await,
            ),
            Request::CopyPage {
                target,
                table,
                after,
                limit,
            } => Response::CopyPage(
                async {
                    self.check(&target)?;
                    self.linearize().await?;
                    self.store
                        .copy_page(&table, 0, after.as_deref(), limit as usize)
                        .map_err(storage)
                }
                .await,
            ),
            Request::Cursor {
                target,
                table,
                region,
            } => Response::Cursor(
                async {
                    self.check(&target)?;
                    self.linearize().await?;
                    self.store
                        .replication_cursor(&table, &region, 0)
                        .map_err(storage)
                }
                .await,
            ),
        }
    }

    async fn write(
        &self,
        target: &Target,
        command: crate::types::Command,
    ) -> Result<crate::types::Reply, NodeError> {
        self.check(target)?;
        match self.raft.client_write(command).await {
            Ok(response) => Ok(response.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(self.not_leader(f.leader_id))
            }
            Err(RaftError::APIError(e)) => Err(NodeError::Unavailable(e.to_string())),
            Err(RaftError::Fatal(e)) => Err(NodeError::Unavailable(e.to_string())),
        }
    }

    async fn get(
        &self,
        target: &Target,
        table: &str,
        key: &Item,
        consistent: bool,
    ) -> Result<Option<Item>, NodeError> {
        self.check(target)?;
        if consistent {
            self.linearize().await?;
        }
        self.store.get(table, key).map_err(storage)
    }

    /// Returns the current voters (for tests).
    pub fn voters(&self) -> BTreeSet<u64> {
        let m = self.raft.metrics().borrow().clone();
        m.membership_config.membership().voter_ids().collect()
    }

    /// Waits until this replica knows a leader, up to `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Option<u64> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(l) = self.raft.metrics().borrow().current_leader {
                return Some(l);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Expired items proposed per log entry.
const EXPIRE_CHUNK: usize = 256;

/// Returns an error when the Raft core stops for any reason but a normal
/// shutdown (a storage error of the log or the state machine, a panic —
/// after which the core is gone without a word: its metrics channel
/// closes while the replica still exists): the replica could no longer
/// vote or apply, so the process must exit and be restarted (task
/// `raft_core`, see `partita_supervise`). Ends when the core shuts down
/// normally or the replica is dropped.
async fn watch_raft_core(
    mut metrics: tokio::sync::watch::Receiver<openraft::RaftMetrics<u64, BasicNode>>,
    replica: std::sync::Weak<Replica>,
) -> Result<(), String> {
    loop {
        let state = metrics.borrow().running_state.clone();
        match state {
            Ok(()) => {}
            Err(openraft::error::Fatal::Stopped) => return Ok(()),
            Err(fatal) => return Err(format!("the Raft core stopped: {fatal}")),
        }
        if metrics.changed().await.is_err() {
            if replica.strong_count() == 0 {
                return Ok(());
            }
            return Err("the Raft core ended without a shutdown (it panicked)".into());
        }
    }
}

/// The group's background work that changes state, done by its leader
/// through the log (the stores of replicas run no housekeeping of their
/// own, see `StoreOptions::replicated`): change-log maintenance and TTL
/// expiry. Ends when the replica is dropped. Supervised (task
/// `raft_housekeeping`): a failure restarts it with fresh schedules.
async fn leader_housekeeping(
    replica: std::sync::Weak<Replica>,
    options: ReplicaOptions,
    task: partita_supervise::Task,
) -> Result<(), String> {
    let tick = Duration::from_millis(200);
    let mut next_maintenance = tokio::time::Instant::now() + options.stream_maintenance_interval;
    let mut next_ttl = tokio::time::Instant::now() + options.ttl_interval;
    loop {
        tokio::time::sleep(tick).await;
        let Some(replica) = replica.upgrade() else {
            return Ok(());
        };
        if !replica.is_leader() {
            task.progressed();
            continue;
        }
        partita_supervise::failpoint("raft_housekeeping");
        let now = tokio::time::Instant::now();
        if now >= next_maintenance {
            if let Err(e) = replica.propose_timed(Command::MaintainStreams).await {
                tracing::debug!(error = %e, "change-log maintenance not proposed");
            }
            next_maintenance = now + options.stream_maintenance_interval;
        }
        if now >= next_ttl {
            match replica.expire_now().await {
                Ok(0) => {}
                Ok(deleted) => tracing::debug!(deleted, "expired items deleted"),
                Err(e) => tracing::debug!(error = %e, "ttl expiry not proposed"),
            }
            next_ttl = tokio::time::Instant::now() + options.ttl_interval;
        }
    }
}
