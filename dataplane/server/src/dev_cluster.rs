//! `partita dev-cluster`: a local multi-process cluster for tests and for
//! trying cluster mode. It writes a topology file for the given tables
//! (`--table FILE`, a CreateTable request body) — or, when none is given,
//! one dynamic-tables entry, so tables are created through the gateway
//! like with `partita serve` — starts `partitions × replicas` `partita
//! node` processes per entry (RPC ports from `--rpc-base-port`, else free
//! ephemeral ports; zones `zone-a`, `zone-b`, ...; children die with the
//! launcher even on SIGKILL) and one `partita gateway` on `--port`,
//! prints which process is which (and writes the same as
//! `DATA_DIR/processes.json`), and on SIGTERM or Ctrl-C stops them all.
//!
//! Admin listeners (`/metrics`, `/healthz`, `/readyz`): every process gets
//! its own port so they never collide on the default 8001 — free ephemeral
//! ports by default, `--admin-base-port P` for the gateway on P and the
//! nodes on P+1, P+2, ..., or `--admin-base-port 0` for none. Each
//! process's `adminPort` is in its line of the process table.
//!
//! `--rpc-tls-ca/-cert/-key` are forwarded to every process (one
//! certificate for all: it must name 127.0.0.1).
//!
//! Membership changes of a running dev-cluster: `partita dev-cluster
//! --data-dir D replica add|remove|replace` (see `dev_replica`). The
//! launcher starts the new replica's process when asked through
//! `D/requests/` (so it dies with the cluster like the others).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::Context;
use clap::Args;
use partita_topology::topology::DYNAMIC_TABLES;
use partita_topology::{
    split_hash_space, Epoch, PartitionTopology, ReplicaAddress, TableTopology, TopologyFile,
};

use crate::rpc_tls::RpcTlsArgs;
use crate::serve::shutdown_signal;

#[derive(Args, Debug)]
pub struct DevClusterArgs {
    /// Partitions per table.
    #[arg(long, default_value_t = 1)]
    pub partitions: u32,
    /// Replicas per partition.
    #[arg(long, default_value_t = 3)]
    pub replicas: u32,
    /// The gateway's DynamoDB port.
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// First internal RPC port, then one per node (default: free ports).
    #[arg(long)]
    pub rpc_base_port: Option<u16>,
    #[arg(long, default_value = "./partita-dev-cluster")]
    pub data_dir: PathBuf,
    /// A CreateTable request body (JSON); repeatable.
    #[arg(long = "table")]
    pub tables: Vec<PathBuf>,
    /// Forwarded to every node.
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_logs: u64,
    /// Forwarded to every node.
    #[arg(long, default_value = "60s", value_parser = crate::serve::parse_duration)]
    pub ttl_sweep_interval: std::time::Duration,
    /// Forwarded to every node.
    #[arg(long, default_value = "24h", value_parser = crate::serve::parse_duration)]
    pub stream_retention: std::time::Duration,
    /// Forwarded to the gateway.
    #[arg(long)]
    pub follower_reads: bool,
    /// Admin port of the gateway, then one per node; 0: no admin
    /// listeners (default: free ports).
    #[arg(long)]
    pub admin_base_port: Option<u16>,
    /// Mutual TLS of the internal RPC, forwarded to every node and the gateway.
    #[command(flatten)]
    pub rpc_tls: RpcTlsArgs,
    /// Further `partita gateway` flags, after `--` (e.g. `-- --auth FILE`).
    #[arg(last = true)]
    pub gateway_args: Vec<String>,
    /// Change a running dev-cluster (the one on --data-dir) instead of
    /// starting one.
    #[command(subcommand)]
    pub command: Option<crate::dev_replica::DevClusterCommand>,
}

fn zone(i: u32) -> String {
    format!("zone-{}", (b'a' + (i % 26) as u8) as char)
}

/// Picks free loopback ports that are all different: each stays bound
/// until the picker is dropped, so the kernel cannot hand it out twice (a
/// node's admin port once came out equal to another node's RPC port).
/// Drop it before starting the processes that bind them.
/// The gateway's ports (its endpoint and an `--admin-port` passed to it),
/// chosen by the caller and not bound yet, are never picked.
pub(crate) struct FreePorts {
    held: Vec<std::net::TcpListener>,
    reserved: Vec<u16>,
}

impl FreePorts {
    pub(crate) fn new(reserved: Vec<u16>) -> FreePorts {
        FreePorts {
            held: Vec::new(),
            reserved,
        }
    }

    pub(crate) fn pick(&mut self) -> anyhow::Result<u16> {
        loop {
            let listener =
                std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
            let port = listener.local_addr()?.port();
            self.held.push(listener);
            if !self.reserved.contains(&port) {
                return Ok(port);
            }
        }
    }
}

/// The value of `flag` in `args` (`--flag V` or `--flag=V`).
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter().enumerate().find_map(|(i, a)| {
        if a == flag {
            args.get(i + 1).map(String::as_str)
        } else {
            a.strip_prefix(flag)?.strip_prefix('=')
        }
    })
}

/// Makes the child get SIGKILL when this process dies, however it dies.
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only calls
    // prctl, which is async-signal-safe and touches no memory of ours.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Kills every child when dropped (also on errors).
pub(crate) struct Children(pub(crate) Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

pub fn run(args: DevClusterArgs) -> anyhow::Result<()> {
    if let Some(command) = &args.command {
        return crate::dev_replica::run(&args, command);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(dev_cluster(args))
}

async fn dev_cluster(args: DevClusterArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;
    let mut specs = Vec::new();
    for path in &args.tables {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        specs.push(serde_json::from_slice::<serde_json::Value>(&bytes)?);
    }
    let dynamic = specs.is_empty();
    if dynamic {
        specs.push(serde_json::json!({ "TableName": DYNAMIC_TABLES }));
    }
    let gateway_admin_arg = flag_value(&args.gateway_args, "--admin-port")
        .map(|v| {
            v.parse::<u16>()
                .with_context(|| format!("gateway --admin-port {v:?}"))
        })
        .transpose()?;
    let mut free = FreePorts::new(
        [Some(args.port), gateway_admin_arg]
            .into_iter()
            .flatten()
            .collect(),
    );
    let mut next_port = u32::from(args.rpc_base_port.unwrap_or(0));
    let mut tables = Vec::new();
    for spec in specs {
        let name = spec["TableName"]
            .as_str()
            .context("TableName missing")?
            .to_string();
        let partition_key = if name == DYNAMIC_TABLES {
            String::new()
        } else {
            spec["KeySchema"]
                .as_array()
                .and_then(|k| k.iter().find(|e| e["KeyType"] == "HASH"))
                .and_then(|e| e["AttributeName"].as_str())
                .context("KeySchema without HASH key")?
                .to_string()
        };
        let mut partitions = Vec::new();
        for (i, hash_range) in split_hash_space(args.partitions).into_iter().enumerate() {
            let mut replicas = Vec::new();
            for r in 0..args.replicas.max(1) {
                let port = match args.rpc_base_port {
                    Some(_) => {
                        let port = u16::try_from(next_port).context("out of ports")?;
                        next_port += 1;
                        port
                    }
                    None => free.pick()?,
                };
                replicas.push(ReplicaAddress {
                    zone: zone(r),
                    address: format!("127.0.0.1:{port}"),
                    member_id: None,
                });
            }
            partitions.push(PartitionTopology {
                id: i as u32,
                hash_range,
                replicas,
            });
        }
        tables.push(TableTopology {
            table_name: name,
            epoch: Epoch(1),
            partition_key,
            create_table: spec,
            created_at_ms: Some(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0),
            ),
            time_to_live: None,
            partitions,
        });
    }
    let topology = TopologyFile::new(tables);
    topology
        .validate()
        .map_err(|e| anyhow::anyhow!("generated topology: {e}"))?;
    let topology_path = data_dir.join("topology.json");
    std::fs::write(&topology_path, topology.to_json())?;
    let mut next_admin = u32::from(args.admin_base_port.unwrap_or(0));
    let mut admin_port = || -> anyhow::Result<u16> {
        match args.admin_base_port {
            Some(0) => Ok(0),
            Some(_) => {
                let port = u16::try_from(next_admin).context("out of admin ports")?;
                next_admin += 1;
                Ok(port)
            }
            None => free.pick(),
        }
    };
    // Our pick, passed as --admin-port, unless the caller passed one.
    let gateway_admin = match gateway_admin_arg {
        Some(_) => None,
        None => Some(admin_port()?),
    };
    let tls_flags: Vec<std::ffi::OsString> = [
        ("--rpc-tls-ca", &args.rpc_tls.rpc_tls_ca),
        ("--rpc-tls-cert", &args.rpc_tls.rpc_tls_cert),
        ("--rpc-tls-key", &args.rpc_tls.rpc_tls_key),
    ]
    .into_iter()
    .filter_map(|(flag, path)| path.as_ref().map(|p| (flag, p)))
    .flat_map(|(flag, path)| [flag.into(), path.as_os_str().to_owned()])
    .collect();
    let node_admins = topology
        .tables
        .iter()
        .flat_map(|t| t.partitions.iter().flat_map(|p| p.replicas.iter()))
        .map(|_| admin_port())
        .collect::<anyhow::Result<Vec<u16>>>()?;
    let mut node_admins = node_admins.into_iter();
    drop(free);
    let exe = std::env::current_exe().context("locating the partita binary")?;
    let mut children = Children(Vec::new());
    let mut processes = Vec::new();
    let launch = NodeLaunch {
        exe: exe.clone(),
        topology_path: topology_path.clone(),
        data_dir: data_dir.clone(),
        snapshot_logs: args.snapshot_logs,
        ttl_sweep_interval: args.ttl_sweep_interval,
        stream_retention: args.stream_retention,
        tls_flags: tls_flags.clone(),
    };
    for t in &topology.tables {
        for p in &t.partitions {
            for r in &p.replicas {
                let admin = node_admins.next().unwrap_or(0);
                let (child, line) = launch.spawn(&t.table_name, p.id, r, "", admin)?;
                println!("{line}");
                processes.push(line);
                children.0.push(child);
            }
        }
    }
    // The gateway opens the DynamoDB port only once every partition has
    // a leader, so a client that can connect can create a table at once.
    let admin_ports: Vec<u16> = processes
        .iter()
        .filter_map(|p| p["adminPort"].as_u64())
        .filter_map(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .collect();
    if !wait_ready(&admin_ports, LEADERS_TIMEOUT).await {
        tracing::warn!(
            timeout = ?LEADERS_TIMEOUT,
            "not every partition has a leader yet; starting the gateway anyway"
        );
    }
    let mut command = Command::new(&exe);
    die_with_parent(&mut command);
    let gateway = command
        .args(["gateway", "--topology-file"])
        .arg(&topology_path)
        .args(["--port", &args.port.to_string()])
        .args(args.follower_reads.then_some("--follower-reads"))
        .args(
            gateway_admin
                .iter()
                .flat_map(|p| ["--admin-port".to_string(), p.to_string()]),
        )
        .args(&tls_flags)
        .args(&args.gateway_args)
        .stdin(Stdio::null())
        .spawn()
        .context("starting the gateway")?;
    let line = serde_json::json!({
        "role": "gateway", "port": args.port, "pid": gateway.id(),
        "adminPort": gateway_admin.or(gateway_admin_arg),
    });
    println!("{line}");
    processes.push(line);
    children.0.push(gateway);
    std::fs::write(
        data_dir.join("processes.json"),
        serde_json::to_string_pretty(&processes)?,
    )?;
    println!(
        "{{\"role\": \"dev-cluster\", \"topology\": {:?}}}",
        topology_path.display().to_string()
    );
    let children = std::sync::Arc::new(parking_lot::Mutex::new(children));
    let processes = std::sync::Arc::new(parking_lot::Mutex::new(processes));
    let admin_none = args.admin_base_port == Some(0);
    let requests = tokio::spawn(crate::dev_replica::serve_requests(
        launch,
        children.clone(),
        processes,
        admin_none,
    ));
    shutdown_signal().await;
    requests.abort();
    drop(children);
    Ok(())
}

/// How the launcher starts a node process.
pub(crate) struct NodeLaunch {
    exe: PathBuf,
    pub(crate) topology_path: PathBuf,
    pub(crate) data_dir: PathBuf,
    snapshot_logs: u64,
    ttl_sweep_interval: std::time::Duration,
    stream_retention: std::time::Duration,
    tls_flags: Vec<std::ffi::OsString>,
}

impl NodeLaunch {
    /// Starts the node of `table`'s partition `partition` replica `r` with
    /// its admin listener on `admin` (0: none); its data directory is
    /// named after the table, partition and zone, plus `suffix`. Returns
    /// the child and its line of the process table.
    pub(crate) fn spawn(
        &self,
        table: &str,
        partition: u32,
        r: &ReplicaAddress,
        suffix: &str,
        admin: u16,
    ) -> anyhow::Result<(Child, serde_json::Value)> {
        let dir_name = if table == DYNAMIC_TABLES {
            "dynamic"
        } else {
            table
        };
        let dir = self
            .data_dir
            .join(format!("{dir_name}-p{partition}-{}{suffix}", r.zone));
        let port = r.address.rsplit_once(':').map(|x| x.1).unwrap_or("0");
        let mut command = Command::new(&self.exe);
        die_with_parent(&mut command);
        let child = command
            .args(["node", "--topology-file"])
            .arg(&self.topology_path)
            .args(["--table", table, "--partition", &partition.to_string()])
            .args([
                "--zone",
                &r.zone,
                "--rpc-host",
                "127.0.0.1",
                "--rpc-port",
                port,
            ])
            .arg("--data-dir")
            .arg(&dir)
            .args(["--snapshot-logs", &self.snapshot_logs.to_string()])
            .args([
                "--ttl-sweep-interval",
                &format!("{}ms", self.ttl_sweep_interval.as_millis()),
            ])
            .args([
                "--stream-retention",
                &format!("{}ms", self.stream_retention.as_millis()),
            ])
            .args(["--admin-port", &admin.to_string()])
            .args(&self.tls_flags)
            .stdin(Stdio::null())
            .spawn()
            .context("starting a node")?;
        let line = serde_json::json!({
            "role": "node", "table": table, "partition": partition,
            "zone": r.zone, "address": r.address, "pid": child.id(),
            "dataDir": dir, "adminPort": admin,
        });
        Ok((child, line))
    }
}

/// How long the launcher waits for every partition to elect a leader.
const LEADERS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Waits until every admin listener on `ports` (nodes: ready once a leader
/// is known) answers `/readyz` with 200; false after `timeout`.
async fn wait_ready(ports: &[u16], timeout: std::time::Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut waiting: Vec<u16> = ports.to_vec();
    while !waiting.is_empty() {
        let mut still = Vec::new();
        for port in waiting {
            if !readyz_ok(port).await {
                still.push(port);
            }
        }
        waiting = still;
        if waiting.is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    true
}

/// Whether `GET /readyz` on 127.0.0.1:`port` answers 200 within a second.
async fn readyz_ok(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        Ok::<bool, std::io::Error>(head.ends_with(b" 200"))
    };
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(1), exchange).await,
        Ok(Ok(true))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_flag_values_are_found_in_both_spellings() {
        let args: Vec<String> = ["--region", "eu-west-1", "--admin-port=9100"]
            .map(String::from)
            .to_vec();
        assert_eq!(flag_value(&args, "--region"), Some("eu-west-1"));
        assert_eq!(flag_value(&args, "--admin-port"), Some("9100"));
        assert_eq!(flag_value(&args, "--port"), None);
        assert_eq!(flag_value(&args[..1], "--region"), None);
    }

    #[test]
    fn picked_ports_are_distinct_and_never_the_gateway_ports() {
        let gateway = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let admin = gateway + 1;
        let mut free = FreePorts::new(vec![gateway, admin]);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..300 {
            let port = free.pick().unwrap();
            assert_ne!(port, gateway);
            assert_ne!(port, admin);
            assert!(seen.insert(port), "port {port} picked twice");
        }
    }
}
