//! `partita members`: shows and changes the membership of one partition's
//! Raft group over the internal RPC (mutual TLS with the `--rpc-tls-*`
//! flags, like every internal call). The changes are the ones of
//! `partita_cluster::membership`, made by the partition's leader; this
//! command finds the leader (any member answers who it is), follows it when
//! it moves, and retries every step until `--timeout`: each step is
//! idempotent, so a leader killed in the middle of a change costs a retry,
//! never a half-made change it cannot finish.
//!
//! - `list`: the membership as the leader sees it (JSON);
//! - `add --address A`: the replica listening at `A` (a blank member: a
//!   `partita node` started on an empty data directory) joins as a learner,
//!   catches up, and becomes a voter (`--learner` stops before);
//! - `remove --member ID`: takes a member out;
//! - `replace --member OLD --address A`: adds `A` as above, then removes
//!   `OLD` (moving a member to another zone is replacing it with a replica
//!   started in that zone).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use partita_cluster::rpc::{
    Clients, FoundingState, MemberChange, Membership, NodeError, Request, Response, Target,
};
use partita_topology::TopologyFile;

use crate::rpc_tls::{client_config, RpcTlsArgs};

/// Flags of `partita members`.
#[derive(Args, Debug)]
pub struct MembersArgs {
    /// The table (`*` for the dynamic-tables entry of a dev-cluster).
    #[arg(long, env = "PARTITA_TABLE")]
    pub table: String,
    /// The partition.
    #[arg(long, env = "PARTITA_PARTITION")]
    pub partition: u32,
    /// RPC address of a member of the partition (repeatable); with
    /// --topology-file, its replicas of the partition are asked too.
    #[arg(long = "node", global = true)]
    pub nodes: Vec<String>,
    /// A topology file listing the partition's replicas.
    #[arg(long, env = "PARTITA_TOPOLOGY_FILE")]
    pub topology_file: Option<std::path::PathBuf>,
    /// How long to keep trying (leader changes, a learner catching up).
    #[arg(long, global = true, default_value = "120s", value_parser = crate::serve::parse_duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub rpc_tls: RpcTlsArgs,
    #[command(subcommand)]
    pub change: Change,
}

#[derive(Subcommand, Debug)]
pub enum Change {
    /// Print the partition's membership (JSON).
    List,
    /// Add the replica listening at --address: a learner, then a voter.
    Add {
        #[arg(long)]
        address: String,
        /// Leave it a learner.
        #[arg(long)]
        learner: bool,
    },
    /// Remove a member (voter or learner).
    Remove {
        #[arg(long)]
        member: u64,
    },
    /// Add the replica at --address, then remove --member.
    Replace {
        #[arg(long)]
        member: u64,
        #[arg(long)]
        address: String,
    },
}

pub fn run(args: MembersArgs) -> anyhow::Result<()> {
    crate::serve::init_logging(crate::serve::LogFormat::Text);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(members(args))
}

/// A session with one partition's group.
pub(crate) struct Group {
    target: Target,
    clients: Clients,
    /// Addresses to ask who leads (the flags', then members' addresses).
    seeds: Vec<String>,
    deadline: Instant,
}

impl Group {
    /// A session with `table`'s partition `partition`, found through
    /// `seeds`, giving up after `timeout`.
    pub(crate) fn new(
        table: &str,
        partition: u32,
        seeds: Vec<String>,
        tls: Option<std::sync::Arc<rustls::ClientConfig>>,
        timeout: Duration,
    ) -> Group {
        Group {
            target: Target {
                table: table.to_string(),
                partition,
                epoch: u64::MAX,
            },
            clients: Clients::with_tls(tls),
            seeds,
            deadline: Instant::now() + timeout,
        }
    }
}

async fn members(args: MembersArgs) -> anyhow::Result<()> {
    let tls = args.rpc_tls.load()?;
    let mut seeds = args.nodes.clone();
    if let Some(path) = &args.topology_file {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let topology = TopologyFile::parse(&bytes)
            .map_err(|e| anyhow::anyhow!("topology {}: {e}", path.display()))?;
        let table = topology
            .table(&args.table)
            .with_context(|| format!("table {} is not in the topology", args.table))?;
        let part = table
            .partitions
            .get(args.partition as usize)
            .with_context(|| format!("table {} has no partition {}", args.table, args.partition))?;
        seeds.extend(part.replicas.iter().map(|r| r.address.clone()));
    }
    if seeds.is_empty() {
        bail!("name a member with --node ADDRESS or give --topology-file");
    }
    let group = Group::new(
        &args.table,
        args.partition,
        seeds,
        client_config(&tls),
        args.timeout,
    );
    let after = match args.change {
        Change::List => group.leader().await?.1,
        Change::Add { address, learner } => group.add(&address, !learner).await?,
        Change::Remove { member } => group.change(MemberChange::Remove { member }).await?,
        Change::Replace { member, address } => {
            group.add(&address, true).await?;
            group.change(MemberChange::Remove { member }).await?
        }
    };
    println!("{}", serde_json::to_string_pretty(&after)?);
    Ok(())
}

impl Group {
    fn expired(&self, last: &str) -> anyhow::Result<()> {
        if Instant::now() >= self.deadline {
            bail!("gave up: {last}");
        }
        Ok(())
    }

    /// Finds the leader: its address and its membership.
    pub(crate) async fn leader(&self) -> anyhow::Result<(String, Membership)> {
        let mut last = String::from("no member answered");
        loop {
            let mut asked: Vec<String> = self.seeds.clone();
            let mut i = 0;
            while i < asked.len() {
                let address = asked[i].clone();
                i += 1;
                let answer = self
                    .clients
                    .get(&address)
                    .call(
                        &Request::Members(self.target.clone()),
                        Duration::from_secs(2),
                    )
                    .await;
                match answer {
                    Ok(Response::Members(Ok(m))) => {
                        if m.leader == Some(m.member) {
                            return Ok((address, m));
                        }
                        for member in &m.members {
                            if !asked.contains(&member.address) {
                                asked.push(member.address.clone());
                            }
                        }
                        last = format!("{address}: member {} knows no leader", m.member);
                    }
                    Ok(Response::Members(Err(e))) => last = format!("{address}: {e}"),
                    Ok(other) => last = format!("{address}: {other:?}"),
                    Err(e) => last = e.to_string(),
                }
            }
            self.expired(&last)?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Makes `change` on the leader, retrying through leader changes and
    /// while a learner catches up.
    pub(crate) async fn change(&self, change: MemberChange) -> anyhow::Result<Membership> {
        loop {
            let (address, m) = self.leader().await?;
            let request = Request::ForMember(
                m.member,
                Box::new(Request::ChangeMembers(self.target.clone(), change.clone())),
            );
            let answer = self
                .clients
                .get(&address)
                .call(&request, Duration::from_secs(90))
                .await;
            let last = match answer {
                Ok(Response::Members(Ok(after))) => return Ok(after),
                Ok(Response::Members(Err(NodeError::Membership(e))))
                    if !e.contains("call again") && !e.contains("entries behind") =>
                {
                    bail!("{change:?} refused: {e}")
                }
                Ok(Response::Members(Err(e))) => e.to_string(),
                Ok(other) => format!("{other:?}"),
                Err(e) => e.to_string(),
            };
            tracing::info!(?change, %last, "membership change not done yet; retrying");
            self.expired(&last)?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Adds the replica listening at `address` as a learner and, with
    /// `promote`, makes it a voter.
    pub(crate) async fn add(&self, address: &str, promote: bool) -> anyhow::Result<Membership> {
        let member = self.identity(address).await?;
        let mut after = self
            .change(MemberChange::AddLearner {
                member,
                address: address.to_string(),
            })
            .await?;
        if promote {
            after = self.change(MemberChange::Promote { member }).await?;
        }
        Ok(after)
    }

    /// The member id of the replica at `address`.
    pub(crate) async fn identity(&self, address: &str) -> anyhow::Result<u64> {
        loop {
            let answer = self
                .clients
                .get(address)
                .call(
                    &Request::Identity(self.target.clone()),
                    Duration::from_secs(2),
                )
                .await;
            let last = match answer {
                Ok(Response::Identity(Some(id), FoundingState::Blank | FoundingState::Member)) => {
                    return Ok(id)
                }
                Ok(Response::Identity(_, FoundingState::Removed)) => {
                    bail!("the replica at {address} was removed from the group: start it on an empty data directory to add it again")
                }
                Ok(other) => format!("{address} is not ready: {other:?}"),
                Err(e) => e.to_string(),
            };
            self.expired(&last)?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
