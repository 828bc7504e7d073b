//! The gateway's router: the API's [`Backend`] over the cluster.
//!
//! Each call is routed by the 64-bit hash of its partition key value
//! (`partita_storage::keys::partition_hash`, the same function that orders
//! a store) to the partition owning that hash in the topology file.
//! Writes and consistent reads go to the partition's leader: the router
//! remembers the last leader per partition, follows `NotLeader` hints, and
//! tries the replicas in turn when a replica is unreachable or has no
//! leader yet, until a deadline. A write is retried only when it certainly
//! was not appended (connection refused, `NotLeader`); after a timeout or a
//! broken connection its outcome is unknown and the error goes back to the
//! client, like a DynamoDB InternalServerError.
//!
//! Topology changes: a node answering `StaleEpoch` or `WrongPartition`
//! makes the router re-read the topology file and retry the partition on
//! its current replicas; the gateway also reloads the file periodically.
//! (Re-routing a key to a different partition after a split is not done:
//! splits are not implemented.)
//!
//! Fan-out: a Scan segment visits, in hash order, every partition whose
//! hash range meets the segment's range (each replica scans the same
//! segment of its own data); its exclusive start key resumes in the
//! partition owning that key's hash. BatchWriteItem groups commands per
//! partition, one replicated write group each. A transaction is one
//! replicated command when all its items live in one Raft group (one
//! partition of one table, or one partition index of the dynamic tables,
//! which share their groups); across groups the router coordinates a
//! two-phase commit ([`two_phase`]). With a ClientRequestToken a
//! single-group transaction is a `TransactOnce` command, a cross-group one
//! records the token with its commit decision: the token record is
//! replicated with the data, so a retry after a timeout, a leader change or
//! a gateway restart applies nothing twice (see [`crate::tokens`]).
//!
//! Consistent GetItems and TransactGetItems read each item with its
//! transaction lock entry and wait for (or recover) a transaction holding
//! it ([`two_phase`]).
//!
//! Queries on a local index route like table queries; a Query on a global
//! index queries every partition (each maintains the index entries of its
//! own items) and merges the pages in index key order.
//!
//! DynamoDB Streams: every write and table command carries the gateway's
//! clock ([`Command::Timed`]), so every replica of a group writes the same
//! change log; a table's streams are the union of its groups' (see
//! `streams`).
//!
//! Query and Scan pages are read on the leader after a read-index round
//! (linearizable): the `Backend` trait does not carry `ConsistentRead` for
//! them, so they take the strong path; only `get_with(.., false)` reads
//! from any replica.
//!
//! Reads are synchronous in the `Backend` trait; the router runs them with
//! `tokio::task::block_in_place` on the gateway's multi-thread runtime.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use partita_api::backend::{Backend, BoxFuture, OnceOutcome, TableChange};
use partita_expr::SortKeyCondition;
use partita_model::schema::{IndexDefinition, IndexState};
use partita_model::{AttributeValue, Item, TableDefinition};
use partita_storage::keys::{partition_hash, range_start};
use partita_storage::{StorageError, TransactionFailure, Visit, WriteCommand, WriteOutcome};
use partita_topology::topology::DYNAMIC_TABLES;
use partita_topology::{TableTopology, TopologyFile};

mod replication;
mod streams;
pub mod two_phase;

use crate::rpc::{Clients, NodeError, Page, Request, Response, RpcError, Target};
use crate::types::{Command, OnceReply, Reply, TokenClaim, WireError};

/// Items per page fetched from a replica for Query and Scan.
const PAGE: u32 = 512;

/// Routing settings.
#[derive(Clone, Debug)]
pub struct RouterOptions {
    /// How long one request may keep retrying (leader changes, restarts).
    pub deadline: Duration,
    /// Deadline of one read call to one replica.
    pub call_timeout: Duration,
    /// Deadline of one write call (longer: a timed-out write has an unknown
    /// outcome and clients retry it).
    pub write_timeout: Duration,
    /// Serve eventually consistent GetItems from any replica (possibly
    /// stale, like DynamoDB's); off: every read goes to the leader.
    pub follower_reads: bool,
    /// TLS client configuration for calls to nodes (`None`: plaintext).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Added to the clock stamped on commands (tests of skewed regions).
    pub clock_offset_ms: i64,
}

impl Default for RouterOptions {
    fn default() -> Self {
        RouterOptions {
            deadline: Duration::from_secs(10),
            call_timeout: Duration::from_secs(3),
            write_timeout: Duration::from_secs(6),
            follower_reads: false,
            tls: None,
            clock_offset_ms: 0,
        }
    }
}

/// How long a gateway answers from a table definition it read: another
/// gateway may change the table meanwhile (an index, time to live, the
/// table deleted and created again), and this gateway sees it after at
/// most this long.
const DEFINITION_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Table definitions read from partition 0's group, each for
/// [`DEFINITION_TTL`].
#[derive(Default)]
struct DefinitionCache(Mutex<HashMap<String, (TableDefinition, std::time::Instant)>>);

impl DefinitionCache {
    fn get(&self, table: &str) -> Option<TableDefinition> {
        let mut defs = self.0.lock();
        match defs.get(table) {
            Some((def, read)) if read.elapsed() < DEFINITION_TTL => Some(def.clone()),
            Some(_) => {
                defs.remove(table);
                None
            }
            None => None,
        }
    }

    fn insert(&self, table: &str, def: TableDefinition) {
        self.0
            .lock()
            .insert(table.to_string(), (def, std::time::Instant::now()));
    }

    fn remove(&self, table: &str) {
        self.0.lock().remove(table);
    }

    fn clear(&self) {
        self.0.lock().clear();
    }
}

/// The cluster backend of `partita gateway`.
pub struct Router {
    topology: RwLock<TopologyFile>,
    clients: Clients,
    leaders: Mutex<HashMap<(String, u32), String>>,
    defs: DefinitionCache,
    next: AtomicUsize,
    options: RouterOptions,
    /// Replicas that recently failed to answer, until when to avoid them.
    suspects: Mutex<HashMap<String, std::time::Instant>>,
    /// Where the topology was read from; reloaded on a stale-epoch answer
    /// and by [`Router::reload`].
    path: Option<PathBuf>,
    /// Replicated secrets already read (see `streams`).
    secrets: Mutex<HashMap<String, [u8; 32]>>,
    /// Woken periodically for replicators (see `replication`).
    change_poll: std::sync::OnceLock<Arc<tokio::sync::Notify>>,
    /// Replication cursors this gateway wrote: (table id, region, partition).
    cursors: Mutex<HashMap<(String, String, u32), Option<u64>>>,
    /// Taken by every table definition change for its whole run, so an
    /// UpdateTable's read-modify-write cannot lose a concurrent change and
    /// the groups see the changes in one order (see `replicate_ddl`).
    ddl: tokio::sync::Mutex<()>,
}

fn unavailable(what: String) -> StorageError {
    StorageError::Engine {
        operation: "cluster",
        message: what,
    }
}

/// Returns `command` stamped with the gateway's clock shifted by
/// `offset_ms` (unless it is stamped already).
fn timed(command: Command, offset_ms: i64) -> Command {
    match command {
        timed @ Command::Timed(..) => timed,
        other => Command::Timed(
            crate::wall_ms().saturating_add_signed(offset_ms),
            Box::new(other),
        ),
    }
}

fn not_managed() -> StorageError {
    StorageError::Unsupported(
        "in cluster mode this table is created and deleted through its Table resource (the topology file)"
            .into(),
    )
}

/// How many times a definition change is tried against the first
/// partition's revision before giving up.
const DEFINITION_ATTEMPTS: u64 = 20;

/// Builds a definition change from the definition read: (the first
/// partition's command, the other partitions').
type MakeChange<'a> = dyn FnMut(TableDefinition) -> Result<(Command, Command), StorageError> + 'a;

/// Commands of one (table, partition): their positions and the commands.
type WriteGroup = ((String, u32), Vec<usize>, Vec<(String, WriteCommand)>);

/// What to do after a failed attempt.
enum Next {
    Retry(Option<String>),
    Fail(StorageError),
}

impl Router {
    pub fn new(topology: TopologyFile, options: RouterOptions) -> Router {
        Router {
            topology: RwLock::new(topology),
            clients: Clients::with_tls(options.tls.clone()),
            leaders: Mutex::new(HashMap::new()),
            defs: DefinitionCache::default(),
            ddl: tokio::sync::Mutex::new(()),
            next: AtomicUsize::new(0),
            options,
            suspects: Mutex::new(HashMap::new()),
            path: None,
            secrets: Mutex::new(HashMap::new()),
            change_poll: std::sync::OnceLock::new(),
            cursors: Mutex::new(HashMap::new()),
        }
    }

    fn suspect(&self, address: &str) {
        self.suspects.lock().insert(
            address.to_string(),
            std::time::Instant::now() + Duration::from_secs(3),
        );
    }

    fn is_suspect(&self, address: &str) -> bool {
        let mut suspects = self.suspects.lock();
        match suspects.get(address) {
            Some(until) if *until > std::time::Instant::now() => true,
            Some(_) => {
                suspects.remove(address);
                false
            }
            None => false,
        }
    }

    /// A router that reloads its map from `path` (see [`Router::reload`]).
    pub fn with_topology_file(mut self, path: PathBuf) -> Router {
        self.path = Some(path);
        self
    }

    /// Re-reads the topology file; when it changed, installs it and forgets
    /// cached leaders and table definitions. Returns whether it changed. A
    /// file that cannot be read or parsed is logged and ignored.
    pub fn reload(&self) -> bool {
        let Some(path) = &self.path else {
            return false;
        };
        let bytes = match std::fs::read(path) {
            // Not rendered yet (a gateway may start before its operator).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
            read => read,
        };
        let parsed = bytes
            .map_err(|e| e.to_string())
            .and_then(|b| TopologyFile::parse(&b).map_err(|e| e.to_string()));
        match parsed {
            Ok(file) => {
                if *self.topology.read() == file {
                    return false;
                }
                *self.topology.write() = file;
                self.leaders.lock().clear();
                self.defs.clear();
                tracing::info!(path = %path.display(), "topology reloaded");
                true
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "topology file not reloaded");
                false
            }
        }
    }

    /// Returns the partition map of `table`: its own entry, else the
    /// dynamic-tables entry (renamed to `table`). The replicas' hidden
    /// tables (applied state, tokens, transaction records) are not
    /// reachable through the gateway.
    fn table_topology(&self, table: &str) -> Result<TableTopology, StorageError> {
        if crate::txn::is_hidden(table) {
            return Err(StorageError::TableNotFound(table.to_string()));
        }
        let topology = self.topology.read();
        if table != DYNAMIC_TABLES {
            if let Some(t) = topology.table(table) {
                return Ok(t.clone());
            }
        }
        match topology.table(DYNAMIC_TABLES) {
            Some(t) => {
                let mut t = t.clone();
                t.table_name = table.to_string();
                Ok(t)
            }
            None => Err(StorageError::TableNotFound(table.to_string())),
        }
    }

    /// Returns the name of the topology entry whose Raft groups hold
    /// `table`: its own entry, else the dynamic-tables entry.
    fn group_of(&self, table: &str) -> String {
        let topology = self.topology.read();
        match topology.table(table) {
            Some(_) if table != DYNAMIC_TABLES => table.to_string(),
            _ => DYNAMIC_TABLES.to_string(),
        }
    }

    /// Returns the map of `table` for a change of its definition
    /// (UpdateTable, indexes, time to live, tags): its own entry or the
    /// dynamic-tables one. The operator brings a topology-defined table to
    /// its Table resource's spec through these same calls.
    fn changeable_topology(&self, table: &str) -> Result<TableTopology, StorageError> {
        if self.topology.read().table(table).is_some() && table != DYNAMIC_TABLES {
            return self.table_topology(table);
        }
        self.dynamic_topology(table)
    }

    /// Returns the dynamic-tables map for `table`, or `not_managed` when
    /// the table is defined by the topology file (or there is no such map):
    /// what creating or deleting a table needs.
    fn dynamic_topology(&self, table: &str) -> Result<TableTopology, StorageError> {
        {
            let topology = self.topology.read();
            if topology.table(table).is_some() || topology.table(DYNAMIC_TABLES).is_none() {
                return Err(not_managed());
            }
        }
        self.table_topology(table)
    }

    /// Replicates a table command to every partition of `topo` (the first
    /// error stops) and returns partition 0's answer. Partition 0's group
    /// answers DescribeTable and ListTables, so a table being created is
    /// created there last — once a client sees it, every group has it —
    /// and every other command reaches it first.
    ///
    /// One change at a time per gateway: two changes in flight together
    /// could reach the groups in different orders. (Gateways do not
    /// coordinate with each other; see docs/not_done.md.)
    async fn replicate_ddl(
        &self,
        topo: &TableTopology,
        command: Command,
    ) -> Result<TableDefinition, StorageError> {
        let _turn = self.ddl.lock().await;
        self.replicate_ddl_in_turn(topo, command).await
    }

    /// [`Router::replicate_ddl`] for a caller holding `ddl`.
    async fn replicate_ddl_in_turn(
        &self,
        topo: &TableTopology,
        command: Command,
    ) -> Result<TableDefinition, StorageError> {
        // One clock for every group: the same stream times everywhere.
        let command = timed(command, self.options.clock_offset_ms);
        let creates = matches!(&command, Command::Timed(_, inner)
            if matches!(**inner, Command::CreateTable(_) | Command::CreateReplicated(..)));
        let mut order: Vec<u32> = topo.partitions.iter().map(|p| p.id).collect();
        if creates {
            order.reverse();
        }
        let mut zero = None;
        for p in order {
            let reply = self.write_group(topo, p, command.clone()).await?;
            match reply {
                Reply::Table(Ok(def)) if p == 0 => zero = Some(*def),
                Reply::Table(Ok(_)) => {}
                Reply::Table(Err(e)) => return Err(e.into()),
                _ => return Err(unavailable("malformed table reply".into())),
            }
        }
        zero.ok_or_else(|| unavailable("no partition 0".into()))
    }

    /// Changes `name`'s definition: `make` turns the definition read from
    /// the table's first partition into the command for it and the command
    /// for the others. The first partition takes its command only at the
    /// revision it was made from (compare and set); when another gateway
    /// changed the table meanwhile, the definition is read and `make`
    /// called again. The other partitions then take theirs (a definition
    /// only when newer than theirs), so concurrent changes through several
    /// gateways are all kept and every group ends with the last one.
    async fn change_definition(
        &self,
        topo: &TableTopology,
        name: &str,
        make: &mut MakeChange<'_>,
    ) -> Result<TableDefinition, StorageError> {
        let _turn = self.ddl.lock().await;
        let mut attempt = 0;
        let (zero, others) = loop {
            attempt += 1;
            let (def, _, _) = self.describe(topo, 0, name).await?;
            let expected = def.revision;
            let (first, others) = make(def)?;
            let command = timed(
                Command::Revised(expected, Box::new(first)),
                self.options.clock_offset_ms,
            );
            match self.write_group(topo, 0, command).await? {
                Reply::Table(Ok(def)) => break (*def, others),
                Reply::Table(Err(WireError::TransactionConflict))
                    if attempt < DEFINITION_ATTEMPTS =>
                {
                    // Another gateway's change came first: build on it.
                    tokio::time::sleep(Duration::from_millis(5 * attempt)).await;
                }
                Reply::Table(Err(e)) => return Err(e.into()),
                _ => return Err(unavailable("malformed table reply".into())),
            }
        };
        let others = timed(others, self.options.clock_offset_ms);
        for p in topo.partitions.iter().map(|p| p.id).filter(|p| *p != 0) {
            match self.write_group(topo, p, others.clone()).await? {
                Reply::Table(Ok(_)) => {}
                Reply::Table(Err(e)) => return Err(e.into()),
                _ => return Err(unavailable("malformed table reply".into())),
            }
        }
        Ok(zero)
    }

    fn block<F: Future>(&self, fut: F) -> Result<F::Output, StorageError> {
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                Ok(tokio::task::block_in_place(|| h.block_on(fut)))
            }
            _ => Err(unavailable(
                "the cluster router needs a multi-thread tokio runtime".into(),
            )),
        }
    }

    /// Calls partition `partition` of `table`, on its leader when `leader`,
    /// retrying per the module docs. `safe` says whether an ambiguous
    /// failure (timeout, broken connection) may be retried.
    async fn call<T>(
        &self,
        table: &TableTopology,
        partition: u32,
        leader: bool,
        safe: bool,
        make: impl Fn(Target) -> Request,
        extract: impl Fn(Response) -> Option<Result<T, NodeError>>,
    ) -> Result<T, StorageError> {
        let mut table = table.clone();
        let replicas_of = |t: &TableTopology| -> Vec<String> {
            t.partitions
                .get(partition as usize)
                .map(|p| p.replicas.iter().map(|r| r.address.clone()).collect())
                .unwrap_or_default()
        };
        let mut replicas = replicas_of(&table);
        if replicas.is_empty() {
            return Err(unavailable(format!(
                "no replicas for partition {partition}"
            )));
        }
        let key = (table.table_name.clone(), partition);
        let deadline = tokio::time::Instant::now() + self.options.deadline;
        let mut attempt = self.next.fetch_add(1, Ordering::Relaxed);
        let mut hint: Option<String> = if leader {
            self.leaders.lock().get(&key).cloned()
        } else {
            None
        };
        let mut last_error = String::new();
        loop {
            let address = match hint.take() {
                Some(a) => a,
                None => {
                    // Round robin, skipping replicas that just failed to
                    // answer when another one is available.
                    let mut pick = None;
                    for _ in 0..replicas.len() {
                        attempt = attempt.wrapping_add(1);
                        let a = &replicas[attempt % replicas.len()];
                        if !self.is_suspect(a) {
                            pick = Some(a.clone());
                            break;
                        }
                    }
                    pick.unwrap_or_else(|| replicas[attempt % replicas.len()].clone())
                }
            };
            let target = Target {
                table: table.table_name.clone(),
                partition,
                epoch: table.epoch.0,
            };
            let client = self.clients.get(&address);
            // A write that times out has an unknown outcome (and SDKs retry
            // a 500), so writes get the whole deadline; reads can move on.
            let timeout = if safe {
                self.options.call_timeout
            } else {
                self.options.write_timeout
            };
            let next = match client.call(&make(target), timeout).await {
                Ok(response) => match extract(response) {
                    Some(Ok(v)) => {
                        if leader {
                            self.leaders.lock().insert(key.clone(), address);
                        }
                        return Ok(v);
                    }
                    Some(Err(NodeError::NotLeader { leader_hint, .. })) => {
                        last_error = format!("{address} is not the leader");
                        Next::Retry(leader_hint.filter(|h| *h != address))
                    }
                    Some(Err(NodeError::Storage(e))) => Next::Fail(e.into()),
                    Some(Err(
                        e @ (NodeError::StaleEpoch { .. } | NodeError::WrongPartition { .. }),
                    )) => {
                        // The map changed: reload it and retry the same
                        // partition on its current replicas.
                        last_error = e.to_string();
                        self.reload();
                        match self.table_topology(&table.table_name) {
                            Ok(t) if !replicas_of(&t).is_empty() => {
                                replicas = replicas_of(&t);
                                table = t;
                            }
                            _ => {}
                        }
                        Next::Retry(None)
                    }
                    Some(Err(NodeError::Unavailable(e))) if safe => {
                        last_error = e;
                        Next::Retry(None)
                    }
                    Some(Err(e)) => Next::Fail(unavailable(e.to_string())),
                    None => Next::Fail(unavailable(format!("unexpected answer from {address}"))),
                },
                Err(e @ RpcError::Connect { .. }) => {
                    self.suspect(&address);
                    last_error = e.to_string();
                    Next::Retry(None)
                }
                Err(e) if safe => {
                    self.suspect(&address);
                    last_error = e.to_string();
                    Next::Retry(None)
                }
                Err(e) => {
                    self.suspect(&address);
                    // The replica may be gone: do not send the next request there.
                    if leader {
                        self.leaders.lock().remove(&key);
                    }
                    Next::Fail(unavailable(format!(
                        "outcome unknown, the replica did not answer: {e}"
                    )))
                }
            };
            match next {
                Next::Fail(e) => return Err(e),
                Next::Retry(h) => {
                    if leader {
                        self.leaders.lock().remove(&key);
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(unavailable(format!(
                            "partition {partition} of {} unavailable: {last_error}",
                            table.table_name
                        )));
                    }
                    if h.is_none() {
                        tokio::time::sleep(Duration::from_millis(30)).await;
                    }
                    hint = h;
                }
            }
        }
    }

    fn partition_of_value(
        table: &TableTopology,
        value: &AttributeValue,
    ) -> Result<u32, StorageError> {
        let hash = partition_hash(value)?;
        table
            .partition_for_hash(hash)
            .map(|p| p.id)
            .ok_or_else(|| unavailable(format!("no partition owns hash {hash:#x}")))
    }

    fn partition_of_key(&self, table: &TableTopology, key: &Item) -> Result<u32, StorageError> {
        let def = self.table(&table.table_name)?;
        let value = key
            .get(&def.key_schema.hash.name)
            .ok_or_else(|| StorageError::InvalidKey("the partition key is missing".into()))?;
        Self::partition_of_value(table, value)
    }

    async fn write_group(
        &self,
        table: &TableTopology,
        partition: u32,
        command: Command,
    ) -> Result<Reply, StorageError> {
        let command = timed(command, self.options.clock_offset_ms);
        self.call(
            table,
            partition,
            true,
            false,
            |t| Request::Write(t, command.clone()),
            |r| match r {
                Response::Write(r) => Some(r),
                _ => None,
            },
        )
        .await
    }

    async fn write_many_async(
        &self,
        commands: Vec<(String, WriteCommand)>,
    ) -> Vec<Result<WriteOutcome, StorageError>> {
        let count = commands.len();
        let mut results: Vec<Option<Result<WriteOutcome, StorageError>>> =
            (0..count).map(|_| None).collect();
        // (table, partition) → positions and commands, in order of first use.
        let mut groups: Vec<WriteGroup> = Vec::new();
        for (i, (table, command)) in commands.into_iter().enumerate() {
            let routed = self
                .table_topology(&table)
                .and_then(|t| self.partition_of_key(&t, key_of(&command)).map(|p| (t, p)));
            match routed {
                Ok((_, p)) => {
                    let k = (table.clone(), p);
                    match groups.iter_mut().find(|g| g.0 == k) {
                        Some(g) => {
                            g.1.push(i);
                            g.2.push((table, command));
                        }
                        None => groups.push((k, vec![i], vec![(table, command)])),
                    }
                }
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        for ((table, partition), positions, group) in groups {
            let outcome = match self.table_topology(&table) {
                Ok(t) => self.write_group(&t, partition, Command::Write(group)).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(Reply::Write(outcomes)) if outcomes.len() == positions.len() => {
                    for (pos, o) in positions.into_iter().zip(outcomes) {
                        results[pos] = Some(o.map_err(StorageError::from));
                    }
                }
                Ok(_) => {
                    for pos in positions {
                        results[pos] = Some(Err(unavailable("malformed write reply".into())));
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    let mut first = Some(e);
                    for pos in positions {
                        results[pos] = Some(Err(first
                            .take()
                            .unwrap_or_else(|| unavailable(message.clone()))));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(unavailable("write not routed".into()))))
            .collect()
    }

    async fn describe(
        &self,
        table: &TableTopology,
        partition: u32,
        name: &str,
    ) -> Result<(TableDefinition, u64, u64), StorageError> {
        self.call(
            table,
            partition,
            true,
            true,
            |t| Request::Describe {
                target: t,
                table: name.to_string(),
            },
            |r| match r {
                Response::Describe(r) => Some(r.map(|b| *b)),
                _ => None,
            },
        )
        .await
    }

    /// Visits pages from one partition until the visitor stops or the
    /// partition is exhausted; returns whether the visitor stopped.
    #[allow(clippy::too_many_arguments)]
    async fn page_through(
        &self,
        table: &TableTopology,
        partition: u32,
        def: &TableDefinition,
        index: Option<&str>,
        mut start: Option<Item>,
        make: &(dyn Fn(Target, Option<Item>) -> Request + Sync),
        visit: &mut dyn FnMut(Item) -> Visit,
    ) -> Result<bool, StorageError> {
        let deadline = tokio::time::Instant::now() + self.options.deadline;
        loop {
            let page: Page = self
                .call(
                    table,
                    partition,
                    true,
                    true,
                    |t| make(t, start.clone()),
                    |r| match r {
                        Response::Page(r) => Some(r),
                        _ => None,
                    },
                )
                .await?;
            // A page read below a transaction's lock is read again once
            // the transaction is resolved (until the deadline: then as it
            // is, read committed).
            if let Some(tx) = &page.lock {
                if tokio::time::Instant::now() < deadline {
                    self.meet_lock(tx).await?;
                    continue;
                }
            }
            let more = page.more;
            let mut last = None;
            for item in page.items {
                last = Some(resume_key(def, index, &item));
                if let Visit::Stop = visit(item) {
                    return Ok(true);
                }
            }
            match (more, last) {
                (true, Some(Some(key))) => start = Some(key),
                _ => return Ok(false),
            }
        }
    }
}

/// The key a page resumes after: the table key plus the index key
/// attributes (what the storage's exclusive start of an index expects).
fn resume_key(def: &TableDefinition, index: Option<&str>, item: &Item) -> Option<Item> {
    let mut key = def.key_schema.extract_key(item)?;
    if let Some(index) = index {
        let idx = def
            .local_indexes
            .iter()
            .chain(&def.global_indexes)
            .find(|i| i.name == index)?;
        for attr in idx.key_schema.attributes() {
            key.insert(attr.name.clone(), item.get(&attr.name)?.clone());
        }
    }
    Some(key)
}

fn key_of(command: &WriteCommand) -> &Item {
    match command {
        WriteCommand::Put { item, .. } => item,
        WriteCommand::Delete { key, .. }
        | WriteCommand::Update { key, .. }
        | WriteCommand::ConditionCheck { key, .. } => key,
    }
}

impl Router {
    /// Runs a transaction, under `claim` when given (the replicated token
    /// record, see [`crate::tokens`]): one command when its items are in
    /// one group, else a two-phase commit ([`two_phase`]).
    async fn transact(
        &self,
        actions: Vec<(String, WriteCommand)>,
        claim: Option<TokenClaim>,
    ) -> Result<OnceOutcome, TransactionFailure> {
        let count = actions.len();
        let fail = |e: StorageError| TransactionFailure {
            reasons: {
                let message = e.to_string();
                let mut first = Some(e);
                (0..count)
                    .map(|_| Some(first.take().unwrap_or_else(|| unavailable(message.clone()))))
                    .collect()
            },
        };
        if actions.is_empty() {
            return Ok(OnceOutcome::Committed(Vec::new()));
        }
        let mut shares = self.shares(actions).map_err(fail)?;
        if shares.len() > 1 {
            return self.transact_across(shares, count, claim).await;
        }
        let Some(share) = shares.pop() else {
            return Ok(OnceOutcome::Committed(Vec::new()));
        };
        let (topo, p, actions) = (share.topology, share.group.partition, share.actions);
        let command = match claim {
            Some(claim) => Command::TransactOnce(actions, claim),
            None => Command::Transact(actions),
        };
        let ran = |result: Result<Vec<WriteOutcome>, Vec<Option<WireError>>>| match result {
            Ok(outcomes) => Ok(OnceOutcome::Committed(outcomes)),
            Err(reasons) => Err(TransactionFailure {
                reasons: reasons
                    .into_iter()
                    .map(|r| r.map(StorageError::from))
                    .collect(),
            }),
        };
        match self.write_group(&topo, p, command).await {
            Ok(Reply::Transact(result)) => ran(result),
            Ok(Reply::Once(OnceReply::Ran(result))) => ran(result),
            Ok(Reply::Once(OnceReply::Replayed(sizes))) => Ok(OnceOutcome::Replayed(sizes)),
            Ok(Reply::Once(OnceReply::Mismatch)) => Ok(OnceOutcome::Mismatch),
            Ok(_) => Err(fail(unavailable("malformed transaction reply".into()))),
            Err(e) => Err(fail(e)),
        }
    }
}

/// Returns whether partition range `[start, end]` meets scan segment
/// `segment` of `total`.
fn meets_segment(start: u64, end: u64, segment: u32, total: u32) -> bool {
    let s = range_start(segment, total);
    let e = range_start(segment + 1, total);
    u128::from(start) < e && u128::from(end) >= s
}

impl Router {
    #[allow(clippy::too_many_arguments)]
    fn scan_any(
        &self,
        table: &str,
        index: Option<&str>,
        segment: u32,
        total_segments: u32,
        exclusive_start: Option<&Item>,
        visit: &mut dyn FnMut(Item) -> Visit,
    ) -> Result<(), StorageError> {
        if total_segments == 0 || segment >= total_segments {
            return Err(StorageError::InvalidSegment {
                segment,
                total_segments,
            });
        }
        let topo = self.table_topology(table)?;
        let def = self.table(table)?;
        let resume_hash = match exclusive_start {
            Some(k) => match k.get(&def.key_schema.hash.name) {
                Some(v) => Some(partition_hash(v)?),
                None => return Err(StorageError::InvalidKey("bad exclusive start key".into())),
            },
            None => None,
        };
        // Entries of a global index are ordered by the index key's hash, not
        // the table key's: every partition may hold entries of any segment.
        let global = index.is_some_and(|i| def.global_indexes.iter().any(|g| g.name == i));
        for p in &topo.partitions {
            if !global
                && !meets_segment(
                    p.hash_range.start,
                    p.hash_range.end,
                    segment,
                    total_segments,
                )
            {
                continue;
            }
            let start = match resume_hash {
                Some(h) if p.hash_range.end < h => continue,
                Some(h) if p.hash_range.contains(h) => exclusive_start.cloned(),
                _ => None,
            };
            let make = |t: Target, start: Option<Item>| Request::Scan {
                target: t,
                table: table.to_string(),
                index: index.map(str::to_string),
                segment,
                total_segments,
                exclusive_start: start,
                limit: PAGE,
                consistent: true,
            };
            let stopped = self.block(self.page_through(
                &topo,
                p.id,
                &def,
                index,
                start,
                &make,
                &mut *visit,
            ))??;
            if stopped {
                return Ok(());
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn query_any(
        &self,
        table: &str,
        index: Option<&str>,
        hash_value: &AttributeValue,
        sort: Option<&SortKeyCondition>,
        forward: bool,
        exclusive_start: Option<&Item>,
        visit: &mut dyn FnMut(Item) -> Visit,
    ) -> Result<(), StorageError> {
        let topo = self.table_topology(table)?;
        let def = self.table(table)?;
        let partition = match index {
            Some(name) if def.global_indexes.iter().any(|g| g.name == name) => {
                if topo.partitions.len() != 1 {
                    return self.block(self.query_global_index(
                        &topo,
                        &def,
                        name,
                        hash_value,
                        sort,
                        forward,
                        exclusive_start,
                        visit,
                    ))?;
                }
                0
            }
            _ => Self::partition_of_value(&topo, hash_value)?,
        };
        let make = |t: Target, start: Option<Item>| Request::Query {
            target: t,
            table: table.to_string(),
            index: index.map(str::to_string),
            hash_value: hash_value.clone(),
            sort: sort.cloned(),
            forward,
            exclusive_start: start,
            limit: PAGE,
            consistent: true,
        };
        self.block(self.page_through(
            &topo,
            partition,
            &def,
            index,
            exclusive_start.cloned(),
            &make,
            &mut *visit,
        ))??;
        Ok(())
    }
}

/// One partition's stream of a global-index Query: buffered page, whether
/// the replica has more, and where the next page starts.
struct Cursor {
    partition: u32,
    items: std::collections::VecDeque<(Vec<u8>, Item)>,
    more: bool,
    start: Option<Item>,
}

impl Router {
    /// A Query on a global secondary index of a multi-partition table:
    /// every partition holds the index entries of its own items, so the
    /// router queries all of them and merges the pages in index key order
    /// (the storage's own entry-key encoding: index keys, then table key),
    /// lazily, page by page. The exclusive start key is a position in that
    /// order, valid on every partition.
    #[allow(clippy::too_many_arguments)]
    async fn query_global_index(
        &self,
        topo: &TableTopology,
        def: &TableDefinition,
        index: &str,
        hash_value: &AttributeValue,
        sort: Option<&SortKeyCondition>,
        forward: bool,
        exclusive_start: Option<&Item>,
        visit: &mut dyn FnMut(Item) -> Visit,
    ) -> Result<(), StorageError> {
        let index_def = def
            .global_indexes
            .iter()
            .find(|g| g.name == index)
            .ok_or_else(|| StorageError::IndexNotFound(index.to_string()))?;
        let encode = |item: &Item| {
            partita_storage::index_keys::encode_index_key(
                &def.key_schema,
                &index_def.key_schema,
                partita_storage::index_keys::IndexKind::Global,
                item,
            )
            .map(|k| k.bytes)
        };
        let mut cursors: Vec<Cursor> = topo
            .partitions
            .iter()
            .map(|p| Cursor {
                partition: p.id,
                items: Default::default(),
                more: true,
                start: exclusive_start.cloned(),
            })
            .collect();
        loop {
            for c in cursors.iter_mut().filter(|c| c.items.is_empty() && c.more) {
                let start = c.start.clone();
                let page: Page = self
                    .call(
                        topo,
                        c.partition,
                        true,
                        true,
                        |t| Request::Query {
                            target: t,
                            table: topo.table_name.clone(),
                            index: Some(index.to_string()),
                            hash_value: hash_value.clone(),
                            sort: sort.cloned(),
                            forward,
                            exclusive_start: start.clone(),
                            limit: PAGE,
                            consistent: true,
                        },
                        |r| match r {
                            Response::Page(r) => Some(r),
                            _ => None,
                        },
                    )
                    .await?;
                c.more = page.more;
                if let Some(last) = page.items.last() {
                    c.start = resume_key(def, Some(index), last);
                }
                for item in page.items {
                    c.items.push_back((encode(&item)?, item));
                }
            }
            let next = cursors
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.items.front().map(|(k, _)| (i, k)))
                .reduce(|a, b| {
                    let b_first = if forward { b.1 < a.1 } else { b.1 > a.1 };
                    if b_first {
                        b
                    } else {
                        a
                    }
                })
                .map(|(i, _)| i);
            let Some(i) = next else {
                return Ok(());
            };
            if let Some((_, item)) = cursors[i].items.pop_front() {
                if let Visit::Stop = visit(item) {
                    return Ok(());
                }
            }
        }
    }
}

impl Backend for Router {
    fn streams(
        &self,
        table: &str,
    ) -> Result<(String, Vec<partita_storage::StreamInfo>), StorageError> {
        self.block(self.cluster_streams(table))?
    }
    fn read_changes(
        &self,
        table: &str,
        partition: u32,
        from: u64,
        until: Option<u64>,
        limit: usize,
    ) -> Result<partita_storage::ChangePage, StorageError> {
        self.block(self.cluster_read_changes(table, partition, from, until, limit))?
    }
    fn secret(&self, name: &str) -> Result<[u8; 32], StorageError> {
        self.block(self.cluster_secret(name))?
    }
    fn create_table(&self, def: TableDefinition) -> Result<(), StorageError> {
        if self.topology.read().table(&def.name).is_some() {
            return Err(StorageError::TableExists(def.name));
        }
        let topo = self.dynamic_topology(&def.name)?;
        self.defs.remove(&def.name);
        self.block(self.replicate_ddl(&topo, Command::CreateTable(def)))??;
        Ok(())
    }
    fn create_global_index(
        &self,
        table: &str,
        index: IndexDefinition,
    ) -> Result<TableDefinition, StorageError> {
        let topo = self.changeable_topology(table)?;
        self.defs.remove(table);
        let mut make = |_: TableDefinition| {
            let command = Command::CreateGlobalIndex(table.to_string(), index.clone());
            Ok((command.clone(), command))
        };
        let result = self.block(self.change_definition(&topo, table, &mut make))?;
        self.defs.remove(table);
        result
    }
    fn delete_global_index(
        &self,
        table: &str,
        index: &str,
    ) -> Result<TableDefinition, StorageError> {
        let topo = self.changeable_topology(table)?;
        self.defs.remove(table);
        let mut make = |_: TableDefinition| {
            let command = Command::DeleteGlobalIndex(table.to_string(), index.to_string());
            Ok((command.clone(), command))
        };
        let result = self.block(self.change_definition(&topo, table, &mut make))?;
        self.defs.remove(table);
        result
    }
    fn index_state(&self, table: &str, index: &str) -> Result<IndexState, StorageError> {
        self.index_info(table, index).map(|(s, _, _)| s)
    }
    fn index_stats(&self, table: &str, index: &str) -> Result<(u64, u64), StorageError> {
        self.index_info(table, index).map(|(_, n, b)| (n, b))
    }
    fn wait_for_index_delivery(
        &self,
        _table: &str,
        _timeout: Duration,
    ) -> Result<bool, StorageError> {
        Ok(true)
    }
    fn delete_table(&self, name: &str) -> Result<TableDefinition, StorageError> {
        let topo = self.dynamic_topology(name)?;
        self.defs.remove(name);
        let result =
            self.block(self.replicate_ddl(&topo, Command::DeleteTable(name.to_string())))?;
        self.defs.remove(name);
        result
    }
    fn table(&self, name: &str) -> Result<TableDefinition, StorageError> {
        if let Some(def) = self.defs.get(name) {
            return Ok(def);
        }
        let topo = self.table_topology(name)?;
        let (def, _, _) = self.block(self.describe(&topo, 0, name))??;
        self.defs.insert(name, def.clone());
        Ok(def)
    }
    fn list_tables(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .topology
            .read()
            .tables
            .iter()
            .filter(|t| t.table_name != DYNAMIC_TABLES)
            .map(|t| t.table_name.clone())
            .collect();
        let dynamic = self.topology.read().table(DYNAMIC_TABLES).cloned();
        if let Some(topo) = dynamic {
            let listed =
                self.block(
                    self.call(&topo, 0, true, true, Request::ListTables, |r| match r {
                        Response::Names(r) => Some(r),
                        _ => None,
                    }),
                );
            match listed {
                Ok(Ok(dynamic)) => names.extend(dynamic),
                Ok(Err(e)) | Err(e) => {
                    tracing::warn!(error = %e, "listing dynamic tables failed")
                }
            }
        }
        names.sort();
        names.dedup();
        names
    }
    fn update_table_dyn(
        &self,
        name: &str,
        change: TableChange<'_>,
    ) -> Result<TableDefinition, StorageError> {
        let topo = self.changeable_topology(name)?;
        self.defs.remove(name);
        let mut make = |before: TableDefinition| {
            let mut def = before.clone();
            change(&mut def)?;
            if def.name != before.name
                || def.table_id != before.table_id
                || def.key_schema != before.key_schema
            {
                return Err(StorageError::InvalidTableDefinition(
                    "the name, id and key schema of a table cannot change".into(),
                ));
            }
            def.revision = before.revision + 1;
            Ok((
                Command::UpdateTable(def.clone()),
                Command::UpdateTableIfNewer(def),
            ))
        };
        let result = self.block(self.change_definition(&topo, name, &mut make))?;
        self.defs.remove(name);
        result
    }
    fn table_stats(&self, name: &str) -> Result<(u64, u64), StorageError> {
        let topo = self.table_topology(name)?;
        let mut total = (0, 0);
        for p in &topo.partitions {
            let (_, n, b) = self.block(self.describe(&topo, p.id, name))??;
            total.0 += n;
            total.1 += b;
        }
        Ok(total)
    }
    fn write<'a>(
        &'a self,
        table: &'a str,
        command: WriteCommand,
    ) -> BoxFuture<'a, Result<WriteOutcome, StorageError>> {
        Box::pin(async move {
            let commands = vec![(table.to_string(), command)];
            let mut results = self.write_many_async(commands.clone()).await;
            self.retry_conflicts(&commands, &mut results).await;
            results
                .pop()
                .unwrap_or_else(|| Err(unavailable("no write result".into())))
        })
    }
    fn write_many(
        &self,
        commands: Vec<(String, WriteCommand)>,
    ) -> BoxFuture<'_, Vec<Result<WriteOutcome, StorageError>>> {
        Box::pin(async move {
            let mut results = self.write_many_async(commands.clone()).await;
            self.retry_conflicts(&commands, &mut results).await;
            results
        })
    }
    fn transact_write(
        &self,
        actions: Vec<(String, WriteCommand)>,
    ) -> BoxFuture<'_, Result<Vec<WriteOutcome>, TransactionFailure>> {
        Box::pin(async move {
            match self.transact(actions, None).await? {
                OnceOutcome::Committed(outcomes) => Ok(outcomes),
                _ => Err(TransactionFailure {
                    reasons: vec![Some(unavailable("malformed transaction reply".into()))],
                }),
            }
        })
    }
    fn transact_write_once(
        &self,
        actions: Vec<(String, WriteCommand)>,
        token: String,
        fingerprint: u64,
    ) -> BoxFuture<'_, Result<OnceOutcome, TransactionFailure>> {
        let now_ms = crate::wall_ms();
        let claim = TokenClaim {
            token,
            fingerprint,
            now_ms,
        };
        Box::pin(self.transact(actions, Some(claim)))
    }
    fn transact_get(&self, gets: &[(String, Item)]) -> Result<Vec<Option<Item>>, StorageError> {
        // One call per Raft group (tables defined at run time share the
        // groups of the dynamic-tables entry); across groups, two rounds
        // (see `two_phase`).
        for (table, _) in gets {
            self.table(table)?;
        }
        let mut groups: Vec<((String, u32), Vec<usize>)> = Vec::new();
        for (i, (table, key)) in gets.iter().enumerate() {
            let topo = self.table_topology(table)?;
            let p = self.partition_of_key(&topo, key)?;
            // Keyed by Raft group, so the reads of one group are one snapshot.
            let k = (self.group_of(table), p);
            match groups.iter_mut().find(|g| g.0 == k) {
                Some(g) => g.1.push(i),
                None => groups.push((k, vec![i])),
            }
        }
        self.block(self.transact_get_resolved(gets, &groups))?
    }
    fn get_with(
        &self,
        table: &str,
        key: &Item,
        consistent: bool,
    ) -> Result<Option<Item>, StorageError> {
        let consistent = consistent || !self.options.follower_reads;
        let topo = self.table_topology(table)?;
        let p = self.partition_of_key(&topo, key)?;
        if consistent {
            // Read with the item's lock entry (see `two_phase`).
            return self.block(self.get_resolved(&topo, p, table, key))?;
        }
        self.block(self.call(
            &topo,
            p,
            consistent,
            true,
            |t| Request::Get {
                target: t,
                table: table.to_string(),
                key: key.clone(),
                consistent,
            },
            |r| match r {
                Response::Item(r) => Some(r),
                _ => None,
            },
        ))?
    }
    fn query(
        &self,
        table: &str,
        hash_value: &AttributeValue,
        sort: Option<&SortKeyCondition>,
        forward: bool,
        exclusive_start: Option<&Item>,
        visit: &mut dyn FnMut(Item) -> Visit,
    ) -> Result<(), StorageError> {
        self.query_any(
            table,
            None,
            hash_value,
            sort,
            forward,
            exclusive_start,
            visit,
        )
    }
    fn scan(
        &self,
        table: &str,
        segment: u32,
        total_segments: u32,
        exclusive_start: Option<&Item>,
        visit: &mut dyn FnMut(Item) -> Visit,
    ) -> Result<(), StorageError> {
        self.scan_any(table, None, segment, total_segments, exclusive_start, visit)
    }
    fn query_index(
        &self,
        table: &str,
        index: &str,
        hash_value: &AttributeValue,
        sort: Option<&SortKeyCondition>,
        forward: bool,
        exclusive_start: Option<&Item>,
        visit: &mut dyn FnMut(Item) -> Visit,
    ) -> Result<(), StorageError> {
        self.query_any(
            table,
            Some(index),
            hash_value,
            sort,
            forward,
            exclusive_start,
            visit,
        )
    }
    fn scan_index(
        &self,
        table: &str,
        index: &str,
        segment: u32,
        total_segments: u32,
        exclusive_start: Option<&Item>,
        visit: &mut dyn FnMut(Item) -> Visit,
    ) -> Result<(), StorageError> {
        self.scan_any(
            table,
            Some(index),
            segment,
            total_segments,
            exclusive_start,
            visit,
        )
    }
}

impl Router {
    fn index_info(&self, table: &str, index: &str) -> Result<(IndexState, u64, u64), StorageError> {
        let topo = self.table_topology(table)?;
        let mut state: Option<IndexState> = None;
        let mut totals = (0, 0);
        for p in &topo.partitions {
            let (s, n, b) = self.block(self.call(
                &topo,
                p.id,
                true,
                true,
                |t| Request::IndexInfo {
                    target: t,
                    table: table.to_string(),
                    index: index.to_string(),
                },
                |r| match r {
                    Response::IndexInfo(r) => Some(r),
                    _ => None,
                },
            ))??;
            // The index is as far along as its slowest partition.
            match &state {
                Some(current)
                    if current.status != partita_model::schema::IndexStatus::Active
                        || current.backfilling => {}
                _ => state = Some(s),
            }
            totals.0 += n;
            totals.1 += b;
        }
        state
            .map(|s| (s, totals.0, totals.1))
            .ok_or_else(|| StorageError::IndexNotFound(index.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_meet_the_partitions_they_overlap() {
        let halves = partita_topology::split_hash_space(2);
        // One segment covers both partitions.
        assert!(meets_segment(halves[0].start, halves[0].end, 0, 1));
        assert!(meets_segment(halves[1].start, halves[1].end, 0, 1));
        // Four segments: the first two fall in the first half only.
        assert!(meets_segment(halves[0].start, halves[0].end, 1, 4));
        assert!(!meets_segment(halves[1].start, halves[1].end, 1, 4));
        assert!(!meets_segment(halves[0].start, halves[0].end, 2, 4));
        assert!(meets_segment(halves[1].start, halves[1].end, 3, 4));
    }
}
