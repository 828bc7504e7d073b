//! `partita node`: one replica of one partition of one table (DESIGN.md §5),
//! per the topology file. Flag names come from `partita_topology::flags`.
//!
//! Layout of `--data-dir`: `store/` (the replica's item store, holding the
//! table and the hidden applied-state table), `raft/` (the Raft log and
//! hard state), `snapshot.bin` (the last snapshot). The table is created
//! from the topology's `createTable` body through the same API code as
//! `partita serve` (same validation), before Raft starts. A node of the
//! dynamic-tables entry (`--table '*'`) starts with no table: tables come
//! and go through replicated CreateTable/DeleteTable commands.
//!
//! The RPC listener and the calls to Raft peers speak mutual TLS with the
//! `--rpc-tls-*` flags (see `partita_cluster::tls`), plaintext without.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use partita_api::admin::{AdminHooks, AdminState};
use partita_api::{Api, ApiConfig};
use partita_cluster::identity::{self, MemberState, Peers};
use partita_cluster::metrics::RaftMetrics;
use partita_cluster::rpc::{Clients, FoundingState, Request, Response, Target};
use partita_cluster::state_machine::{meta_table_definition, META_TABLE};
use partita_cluster::{Replica, ReplicaOptions};
use partita_storage::{Store, StoreOptions};
use partita_topology::flags::{DEFAULT_ADMIN_PORT, DEFAULT_RPC_PORT, PARTITION_ENV};
use partita_topology::topology::DYNAMIC_TABLES;
use partita_topology::TopologyFile;
use tokio::net::TcpListener;

use crate::cluster_admin;
use crate::rpc_tls::{client_config, RpcTlsArgs};
use crate::serve::{init_logging, shutdown_signal, LogFormat};

/// Flags of `partita node`.
#[derive(Args, Debug)]
pub struct NodeArgs {
    /// The topology file.
    #[arg(long, env = "PARTITA_TOPOLOGY_FILE")]
    pub topology_file: PathBuf,
    /// The table this replica serves.
    #[arg(long, env = "PARTITA_TABLE")]
    pub table: String,
    /// The partition this replica serves.
    #[arg(long, env = PARTITION_ENV)]
    pub partition: u32,
    /// The zone of this replica (selects its entry among the partition's replicas).
    #[arg(long, env = "PARTITA_ZONE")]
    pub zone: String,
    /// Directory holding the replica's data; created if missing.
    #[arg(long, env = "PARTITA_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Internal RPC port (Raft peers and gateways).
    #[arg(long, env = "PARTITA_RPC_PORT", default_value_t = DEFAULT_RPC_PORT)]
    pub rpc_port: u16,
    /// Address the internal RPC listener binds.
    #[arg(long, env = "PARTITA_RPC_HOST", default_value = "0.0.0.0")]
    pub rpc_host: String,
    /// Admin port on the RPC host: GET /metrics (the store's series and
    /// the Raft series), /healthz, /readyz (ready once a leader is known);
    /// 0 disables it.
    #[arg(long, env = "PARTITA_ADMIN_PORT", default_value_t = DEFAULT_ADMIN_PORT)]
    pub admin_port: u16,
    /// Log output format.
    #[arg(long, env = "PARTITA_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub rpc_tls: RpcTlsArgs,
    /// Applied entries since the last snapshot that trigger a new snapshot.
    #[arg(long, env = "PARTITA_SNAPSHOT_LOGS", default_value_t = 10_000)]
    pub snapshot_logs: u64,
    /// How often the partition's leader deletes expired items (through
    /// the Raft log).
    #[arg(long, env = "PARTITA_TTL_SWEEP_INTERVAL", default_value = "60s", value_parser = crate::serve::parse_duration)]
    pub ttl_sweep_interval: Duration,
    /// How long DynamoDB Streams records are kept (24 hours in DynamoDB);
    /// every replica of a partition must use the same value.
    #[arg(long, env = "PARTITA_STREAM_RETENTION", default_value = "24h", value_parser = crate::serve::parse_duration)]
    pub stream_retention: Duration,
}

pub fn run(args: NodeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(node(args))
}

async fn node(args: NodeArgs) -> anyhow::Result<()> {
    // Refuse bad TLS material before touching the data.
    let tls = args.rpc_tls.load()?;
    let bytes = std::fs::read(&args.topology_file)
        .with_context(|| format!("reading {}", args.topology_file.display()))?;
    let topology = TopologyFile::parse(&bytes)
        .map_err(|e| anyhow::anyhow!("topology {}: {e}", args.topology_file.display()))?;
    let table = topology
        .table(&args.table)
        .with_context(|| format!("table {} is not in the topology", args.table))?
        .clone();
    let partition = table
        .partitions
        .get(args.partition as usize)
        .with_context(|| format!("table {} has no partition {}", args.table, args.partition))?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
    // The RPC listener answers before the replica exists: founding
    // replicas ask each other where they stand.
    let listener = TcpListener::bind((args.rpc_host.as_str(), args.rpc_port))
        .await
        .with_context(|| format!("binding {}:{}", args.rpc_host, args.rpc_port))?;
    let founding = Arc::new(parking_lot::Mutex::new(FoundingState::Undecided));
    let member: Arc<OnceLock<u64>> = Arc::default();
    let slot: Arc<OnceLock<Arc<Replica>>> = Arc::default();
    let server = {
        let (founding, member, slot) = (founding.clone(), member.clone(), slot.clone());
        tokio::spawn(partita_cluster::rpc::serve_tls(
            listener,
            tls.as_ref().map(|t| t.server.clone()),
            move |req| {
                let state = *founding.lock();
                let (member, replica) = (member.get().copied(), slot.get().cloned());
                async move {
                    match (req, replica) {
                        (Request::Founding(_), _) => Response::Founding(state),
                        (Request::Identity(_), _) => Response::Identity(member, state),
                        (_, _) if state == FoundingState::Removed => Response::BadRequest(
                            "this replica was removed from its group: see its log".into(),
                        ),
                        (req, Some(replica)) => replica.handle(req).await,
                        (_, None) => Response::BadRequest(
                            "this replica is not a member of its group (yet): see its log".into(),
                        ),
                    }
                }
            },
        ))
    };
    // Who this data directory is: a member, a founder, or a blank new
    // member of a group that exists (see partita_cluster::identity).
    let peers = Peers {
        target: Target {
            table: table.table_name.clone(),
            partition: args.partition,
            epoch: table.epoch.0,
        },
        addresses: partition
            .replicas
            .iter()
            .filter(|r| r.zone != args.zone)
            .map(|r| r.address.clone())
            .collect(),
        clients: Arc::new(Clients::with_tls(client_config(&tls))),
    };
    let identity = tokio::select! {
        decided = identity::decide(&args.data_dir, &table.table_name, partition, &args.zone, &peers, &founding) => {
            decided.context("deciding the data directory's member identity")?
        }
        () = shutdown_signal() => {
            server.abort();
            return Ok(());
        }
    };
    let node_id = identity.member_id;
    let _ = member.set(node_id);
    if identity.state == MemberState::Blank {
        tracing::warn!(
            table = %table.table_name,
            partition = args.partition,
            member_id = node_id,
            "a blank member: waiting to be added to the group (partita members add)"
        );
    }
    let store = Arc::new(
        // No per-commit fsync: the Raft log is the durable record (see
        // partita_cluster::state_machine).
        Store::open(
            &args.data_dir.join("store"),
            StoreOptions {
                sync: false,
                // Expiry, trimming and shard rolls go through the log.
                replicated: true,
                stream_retention: args.stream_retention,
                ..StoreOptions::default()
            },
        )
        .with_context(|| format!("opening {}", args.data_dir.display()))?,
    );
    let tables = store.list_tables();
    if table.table_name != DYNAMIC_TABLES && !tables.contains(&table.table_name) {
        // Every replica builds the same definition: an id derived from the
        // table's entry and the entry's creation time, so the table's
        // identity (ARN id, stream shard ids and times) is the group's.
        let body = serde_json::to_vec(&table.create_table)?;
        let mut def = partita_api::table_definition(
            &body,
            static_table_id(&table.table_name, &body),
            table.created_at_ms.unwrap_or(0),
        )
        .map_err(|e| anyhow::anyhow!("creating table {}: {e:?}", table.table_name))?;
        // Time to live is no CreateTable parameter: set with the definition.
        def.ttl = table.time_to_live.as_ref().filter(|t| t.enabled).map(|t| {
            partita_model::schema::TimeToLive {
                enabled: true,
                attribute_name: t.attribute_name.clone(),
            }
        });
        // The stream (if enabled) starts at the same time everywhere too.
        store.set_clock(table.created_at_ms.unwrap_or(0).max(1));
        store
            .create_table(def)
            .with_context(|| format!("creating table {}", table.table_name))?;
    }
    let api = Arc::new(Api::new(store.clone(), ApiConfig::default()));
    if !tables.iter().any(|t| t == META_TABLE) {
        store
            .create_table(meta_table_definition())
            .context("creating the applied-state table")?;
    }
    let options = ReplicaOptions {
        snapshot_logs: args.snapshot_logs,
        peer_tls: client_config(&tls),
        // Trimming runs an eighth of the retention apart, as in serve.
        stream_maintenance_interval: (args.stream_retention / 8)
            .clamp(Duration::from_millis(50), Duration::from_secs(60)),
        ttl_interval: args.ttl_sweep_interval,
        ..ReplicaOptions::default()
    };
    let replica = Replica::start(
        &table,
        args.partition,
        node_id,
        identity.state != MemberState::Blank,
        &args.data_dir,
        store.clone(),
        options,
    )
    .await
    .context("starting the replica")?;
    // A founder has initialized the group: it is a member from now on.
    if identity::Identity::load(&args.data_dir)
        .context("reading the member identity")?
        .is_some_and(|i| i.state == MemberState::Founding)
    {
        identity
            .save(&args.data_dir)
            .context("recording the membership")?;
    }
    if identity.state == MemberState::Member {
        // A member that was removed while it was down is refused.
        let own_index = replica.membership().log_index;
        if let Some(m) = identity::removed_by_peers(&peers, node_id, own_index).await {
            return removed(&args.data_dir, identity, &m, &replica, &founding).await;
        }
        *founding.lock() = FoundingState::Member;
    }
    let _ = slot.set(replica.clone());
    tracing::info!(
        table = %table.table_name,
        partition = args.partition,
        node_id,
        rpc_port = args.rpc_port,
        "partita node serving"
    );
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let admin = cluster_admin::spawn(
        &args.rpc_host,
        args.admin_port,
        AdminState {
            api,
            store: Some(store.clone()),
            data_dir: Some(args.data_dir.clone()),
        },
        node_hooks(&replica, &table.table_name, args.partition),
        async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        },
    )
    .await;
    let outcome = tokio::select! {
        () = shutdown_signal() => Ok(()),
        removal = watch_membership(&replica, identity.clone(), &args.data_dir, &peers, &founding) => {
            removed(&args.data_dir, identity, &removal, &replica, &founding).await
        }
    };
    tracing::info!("shutting down");
    // A leader stopping (a rolling update, a drain) first hands its
    // partition over to a caught-up member.
    replica.hand_over(HAND_OVER_TIMEOUT).await;
    let _ = stop_tx.send(true);
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    server.abort();
    if let Err(e) = replica.raft.shutdown().await {
        tracing::warn!(error = %e, "raft shutdown");
    }
    outcome
}

/// How long a stopping leader waits for another member to be elected.
const HAND_OVER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a member may go without a leader before it asks its peers
/// whether it was removed.
const LEADERLESS_CHECK: Duration = Duration::from_secs(3);
/// How long a leaderless member whose log is behind a peer's stops
/// standing for election (`Replica::stand_down`).
const STAND_DOWN: Duration = Duration::from_secs(3);

/// Follows the replica's membership: a blank member that was added becomes
/// a member (recorded in its identity); returns the membership that
/// removed this member once a peer's leader confirms it (checked when the
/// replica's own view no longer lists it, or it has known no leader for a
/// while). A member without a leader whose log is behind a peer's stands
/// down from elections for a while so the peer can win one.
async fn watch_membership(
    replica: &Arc<Replica>,
    mut identity: identity::Identity,
    dir: &std::path::Path,
    peers: &Peers,
    founding: &parking_lot::Mutex<FoundingState>,
) -> partita_cluster::rpc::Membership {
    let mut leaderless_since = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let view = replica.membership();
        if view.leader.is_some() {
            leaderless_since = tokio::time::Instant::now();
        }
        let listed = view.contains(identity.member_id);
        if listed && identity.state == MemberState::Blank {
            identity.state = MemberState::Member;
            match identity.save(dir) {
                Ok(()) => {
                    *founding.lock() = FoundingState::Member;
                    tracing::info!(
                        member_id = identity.member_id,
                        "added to the partition's group: a member from now on"
                    );
                }
                Err(e) => {
                    identity.state = MemberState::Blank;
                    tracing::warn!(error = %e, "recording the membership failed; will retry");
                }
            }
        }
        let unsure = (identity.state == MemberState::Member && !listed)
            || leaderless_since.elapsed() >= LEADERLESS_CHECK;
        if unsure && identity.state == MemberState::Member {
            let mut asked = peers.addresses.clone();
            for m in &view.members {
                if m.id != identity.member_id && !asked.contains(&m.address) {
                    asked.push(m.address.clone());
                }
            }
            let everyone = Peers {
                target: peers.target.clone(),
                addresses: asked,
                clients: peers.clients.clone(),
            };
            let views = everyone.views().await;
            if let Some(m) = identity::removal(&views, identity.member_id, view.log_index) {
                return m.clone();
            }
            if view.leader.is_none() && identity::behind(&views, view.last_log) {
                replica.stand_down(STAND_DOWN).await;
            }
            leaderless_since = tokio::time::Instant::now();
        }
    }
}

/// Records that this member was removed (its data directory is never
/// opened again), stops answering and fails the process with the reason.
async fn removed(
    dir: &std::path::Path,
    mut identity: identity::Identity,
    by: &partita_cluster::rpc::Membership,
    replica: &Arc<Replica>,
    founding: &parking_lot::Mutex<FoundingState>,
) -> anyhow::Result<()> {
    *founding.lock() = FoundingState::Removed;
    identity.state = MemberState::Removed;
    identity
        .save(dir)
        .context("recording the removal in the member identity")?;
    let _ = replica.raft.shutdown().await;
    let members: Vec<u64> = by.members.iter().map(|m| m.id).collect();
    tracing::error!(
        member_id = identity.member_id,
        ?members,
        "this member was removed from the partition's group"
    );
    anyhow::bail!(
        "member {} was removed from table {} partition {} (members now {members:?}): its data directory {} can only rejoin as a new member (empty it)",
        identity.member_id,
        identity.table,
        identity.partition,
        dir.display()
    )
}

/// The Raft series and the readiness rule (a leader is known) of a node.
fn node_hooks(replica: &Arc<Replica>, table: &str, partition: u32) -> AdminHooks {
    let ready = {
        let replica = replica.clone();
        Arc::new(move || replica.has_leader()) as Arc<dyn Fn() -> bool + Send + Sync>
    };
    let extra_metrics = match RaftMetrics::new(table, partition) {
        Ok(metrics) => {
            let replica = replica.clone();
            Some(Arc::new(move || metrics.render(&replica)) as Arc<dyn Fn() -> String + Send + Sync>)
        }
        Err(e) => {
            tracing::warn!(error = %e, "raft metrics not registered");
            None
        }
    };
    AdminHooks {
        extra_metrics,
        ready: Some(ready),
    }
}

/// Returns the id of a topology-defined table: UUID-shaped, derived from
/// its name and CreateTable body (the same on every replica).
fn static_table_id(name: &str, create_table: &[u8]) -> String {
    let word = |salt: &str| {
        let mut input = salt.as_bytes().to_vec();
        input.extend_from_slice(name.as_bytes());
        input.push(0);
        input.extend_from_slice(create_table);
        let value = partita_model::AttributeValue::B(input);
        partita_storage::keys::partition_hash(&value).unwrap_or(0)
    };
    partita_api::table_id_of(word("hi"), word("lo"))
}
