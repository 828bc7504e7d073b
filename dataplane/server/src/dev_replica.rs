//! `partita dev-cluster --data-dir D replica add|remove|replace`: changes
//! the members of a partition of the dev-cluster running on `D`, so a user
//! can watch a membership change happen locally.
//!
//! - `add --partition P --zone Z`: the launcher starts a new replica of
//!   partition P in zone Z on an empty data directory (a blank member);
//!   it joins as a learner, catches up and becomes a voter;
//! - `remove --partition P --member M`: member M leaves the group (its
//!   process stops by itself once it learns it);
//! - `replace --partition P --member M [--zone Z]`: adds a new replica (in
//!   M's zone unless --zone moves it), then removes M.
//!
//! Each prints the membership after the change (JSON) and rewrites
//! `D/topology.json` to list the partition's current members with their
//! member ids (epoch + 1), as the operator does for a cluster, so the
//! gateway routes to them.
//!
//! The new process is started by the running launcher (`partita
//! dev-cluster`), which polls `D/requests/`: a request `<id>.json`
//! (`{"table", "partition", "zone"}`) is answered with `<id>.answer.json`
//! (the new process's line of the process table, or `{"error"}`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use parking_lot::Mutex;
use partita_topology::topology::DYNAMIC_TABLES;
use partita_topology::{ReplicaAddress, TopologyFile};
use serde_json::{json, Value};

use crate::dev_cluster::{Children, DevClusterArgs, FreePorts, NodeLaunch};
use crate::members::Group;
use crate::rpc_tls::client_config;

#[derive(Subcommand, Debug)]
pub enum DevClusterCommand {
    /// Add, remove or replace a replica of a running dev-cluster.
    Replica(ReplicaArgs),
}

#[derive(Args, Debug)]
pub struct ReplicaArgs {
    /// The topology entry (`*`: the tables created through the gateway).
    #[arg(long, default_value = DYNAMIC_TABLES)]
    pub table: String,
    #[arg(long)]
    pub partition: u32,
    /// How long to keep trying.
    #[arg(long, default_value = "120s", value_parser = crate::serve::parse_duration)]
    pub timeout: Duration,
    #[command(subcommand)]
    pub action: ReplicaAction,
}

#[derive(Subcommand, Debug)]
pub enum ReplicaAction {
    /// Start a replica in --zone and add it: a learner, then a voter.
    Add {
        #[arg(long)]
        zone: String,
    },
    /// Remove member --member from the partition's group.
    Remove {
        #[arg(long)]
        member: u64,
    },
    /// Start a replica (in --member's zone, or --zone) and replace --member.
    Replace {
        #[arg(long)]
        member: u64,
        #[arg(long)]
        zone: Option<String>,
    },
}

/// How long a request waits for the launcher to answer.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);

pub fn run(args: &DevClusterArgs, command: &DevClusterCommand) -> anyhow::Result<()> {
    crate::serve::init_logging(crate::serve::LogFormat::Text);
    let DevClusterCommand::Replica(replica) = command;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(change(args, replica))
}

async fn change(args: &DevClusterArgs, replica: &ReplicaArgs) -> anyhow::Result<()> {
    let tls = args.rpc_tls.load()?;
    let data_dir = std::fs::canonicalize(&args.data_dir)
        .with_context(|| format!("no dev-cluster on {}", args.data_dir.display()))?;
    let topology_path = data_dir.join("topology.json");
    let topology = read_topology(&topology_path)?;
    let part = topology
        .table(&replica.table)
        .and_then(|t| t.partitions.get(replica.partition as usize))
        .with_context(|| {
            format!(
                "the dev-cluster has no partition {} of {}",
                replica.partition, replica.table
            )
        })?
        .clone();
    let seeds = part.replicas.iter().map(|r| r.address.clone()).collect();
    let group = Group::new(
        &replica.table,
        replica.partition,
        seeds,
        client_config(&tls),
        replica.timeout,
    );
    let zone_of = |member: u64| {
        part.members()
            .find(|(id, _)| *id == member)
            .map(|(_, r)| r.zone.clone())
    };
    let (added, removed) = match &replica.action {
        ReplicaAction::Add { zone } => (Some(zone.clone()), None),
        ReplicaAction::Remove { member } => (None, Some(*member)),
        ReplicaAction::Replace { member, zone } => {
            let zone = zone.clone().or_else(|| zone_of(*member)).with_context(|| {
                format!("member {member} is not in the topology: name the new replica's --zone")
            })?;
            (Some(zone), Some(*member))
        }
    };
    let mut after = None;
    let mut new_entry = None;
    if let Some(zone) = added {
        let line = launch(&data_dir, &replica.table, replica.partition, &zone).await?;
        let address = line["address"]
            .as_str()
            .context("the launcher's answer has no address")?
            .to_string();
        eprintln!("started {line}");
        let member = group.identity(&address).await?;
        after = Some(group.add(&address, true).await?);
        new_entry = Some(ReplicaAddress {
            zone,
            address,
            member_id: Some(member),
        });
    }
    if let Some(member) = removed {
        after = Some(
            group
                .change(partita_cluster::rpc::MemberChange::Remove { member })
                .await?,
        );
    }
    update_topology(
        &topology_path,
        &replica.table,
        replica.partition,
        new_entry,
        removed,
    )?;
    println!("{}", serde_json::to_string_pretty(&after)?);
    Ok(())
}

fn read_topology(path: &Path) -> anyhow::Result<TopologyFile> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    TopologyFile::parse(&bytes).map_err(|e| anyhow::anyhow!("topology {}: {e}", path.display()))
}

/// Lists the partition's current members in the topology file: `added`
/// joins, `removed` leaves, every entry names its member id, and the
/// table's epoch grows by one. Written to a temporary file and renamed.
fn update_topology(
    path: &Path,
    table: &str,
    partition: u32,
    added: Option<ReplicaAddress>,
    removed: Option<u64>,
) -> anyhow::Result<()> {
    let mut topology = read_topology(path)?;
    let entry = topology
        .tables
        .iter_mut()
        .find(|t| t.table_name == table)
        .context("table left the topology")?;
    let part = entry
        .partitions
        .get_mut(partition as usize)
        .context("partition left the topology")?;
    let mut replicas: Vec<ReplicaAddress> = part
        .members()
        .filter(|(id, _)| Some(*id) != removed)
        .map(|(id, r)| ReplicaAddress {
            member_id: Some(id),
            ..r.clone()
        })
        .collect();
    replicas.extend(added);
    part.replicas = replicas;
    entry.epoch.0 += 1;
    topology
        .validate()
        .map_err(|e| anyhow::anyhow!("updated topology: {e}"))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, topology.to_json())?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Asks the running launcher to start a replica of `table`'s partition in
/// `zone` and returns its line of the process table.
async fn launch(data_dir: &Path, table: &str, partition: u32, zone: &str) -> anyhow::Result<Value> {
    let requests = data_dir.join("requests");
    std::fs::create_dir_all(&requests)?;
    let id = format!("{}-{}", crate_now_ms(), std::process::id());
    let request = requests.join(format!("{id}.json"));
    let tmp = requests.join(format!("{id}.tmp"));
    std::fs::write(
        &tmp,
        json!({"table": table, "partition": partition, "zone": zone}).to_string(),
    )?;
    std::fs::rename(&tmp, &request)?;
    let answer = requests.join(format!("{id}.answer.json"));
    let deadline = tokio::time::Instant::now() + LAUNCH_TIMEOUT;
    loop {
        if let Ok(bytes) = std::fs::read(&answer) {
            let _ = std::fs::remove_file(&answer);
            let line: Value = serde_json::from_slice(&bytes)?;
            if let Some(error) = line["error"].as_str() {
                bail!("the launcher did not start the replica: {error}");
            }
            return Ok(line);
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = std::fs::remove_file(&request);
            bail!(
                "no answer from the launcher in {LAUNCH_TIMEOUT:?}: is `partita dev-cluster --data-dir {}` running?",
                data_dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn crate_now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// The launcher's side: starts the replicas asked for in `requests/`
/// (children of the launcher, so they die with it) and adds them to
/// `processes.json`.
pub(crate) async fn serve_requests(
    launch: NodeLaunch,
    children: Arc<Mutex<Children>>,
    processes: Arc<Mutex<Vec<Value>>>,
    admin_none: bool,
) {
    let requests: PathBuf = launch.data_dir.join("requests");
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok(entries) = std::fs::read_dir(&requests) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let Some(id) = name.strip_suffix(".json") else {
                continue;
            };
            if id.ends_with(".answer") {
                continue;
            }
            let answer = match start_requested(&launch, &path, admin_none) {
                Ok((child, line)) => {
                    children.lock().0.push(child);
                    let mut all = processes.lock();
                    all.push(line.clone());
                    if let Ok(text) = serde_json::to_string_pretty(&*all) {
                        let _ = std::fs::write(launch.data_dir.join("processes.json"), text);
                    }
                    println!("{line}");
                    line
                }
                Err(e) => json!({"error": format!("{e:#}")}),
            };
            let _ = std::fs::remove_file(&path);
            let tmp = requests.join(format!("{id}.answer.tmp"));
            if std::fs::write(&tmp, answer.to_string()).is_ok() {
                let _ = std::fs::rename(&tmp, requests.join(format!("{id}.answer.json")));
            }
        }
    }
}

fn start_requested(
    launch: &NodeLaunch,
    request: &Path,
    admin_none: bool,
) -> anyhow::Result<(std::process::Child, Value)> {
    let request: Value = serde_json::from_slice(&std::fs::read(request)?)?;
    let table = request["table"].as_str().context("no table")?;
    let partition = request["partition"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .context("no partition")?;
    let zone = request["zone"].as_str().context("no zone")?;
    let topology = read_topology(&launch.topology_path)?;
    if topology
        .table(table)
        .and_then(|t| t.partitions.get(partition as usize))
        .is_none()
    {
        bail!("the dev-cluster has no partition {partition} of {table}");
    }
    let mut free = FreePorts::new(Vec::new());
    let port = free.pick()?;
    let admin = if admin_none { 0 } else { free.pick()? };
    drop(free);
    let replica = ReplicaAddress {
        zone: zone.to_string(),
        address: format!("127.0.0.1:{port}"),
        member_id: None,
    };
    let suffix = format!("-{}", crate_now_ms());
    launch.spawn(table, partition, &replica, &suffix, admin)
}
