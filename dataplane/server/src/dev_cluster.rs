//! `partita dev-cluster`: a local multi-process cluster for tests and for
//! trying cluster mode. It writes a topology file for the given tables
//! (`--table FILE`, a CreateTable request body; a default `Items` table with
//! `pk` (S) / `sk` (S) when none is given), starts `partitions × replicas`
//! `partita node` processes per table (RPC ports from `--rpc-base-port`,
//! zones `zone-a`, `zone-b`, ...) and one `partita gateway` on `--port`,
//! prints which process is which (and writes the same as
//! `DATA_DIR/processes.json`), and on SIGTERM or Ctrl-C stops them all.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::Context;
use clap::Args;
use partita_topology::{
    split_hash_space, Epoch, PartitionTopology, ReplicaAddress, TableTopology, TopologyFile,
};

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
    /// First internal RPC port (default: --port + 1).
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
}

fn zone(i: u32) -> String {
    format!("zone-{}", (b'a' + (i % 26) as u8) as char)
}

/// Kills every child when dropped (also on errors).
struct Children(Vec<Child>);

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
    if specs.is_empty() {
        specs.push(serde_json::json!({
            "TableName": "Items",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                          {"AttributeName": "sk", "KeyType": "RANGE"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                     {"AttributeName": "sk", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST"
        }));
    }
    let mut next_port = u32::from(args.rpc_base_port.unwrap_or(args.port.saturating_add(1)));
    let mut tables = Vec::new();
    for spec in specs {
        let name = spec["TableName"]
            .as_str()
            .context("TableName missing")?
            .to_string();
        let partition_key = spec["KeySchema"]
            .as_array()
            .and_then(|k| k.iter().find(|e| e["KeyType"] == "HASH"))
            .and_then(|e| e["AttributeName"].as_str())
            .context("KeySchema without HASH key")?
            .to_string();
        let mut partitions = Vec::new();
        for (i, hash_range) in split_hash_space(args.partitions).into_iter().enumerate() {
            let mut replicas = Vec::new();
            for r in 0..args.replicas.max(1) {
                let port = u16::try_from(next_port).context("out of ports")?;
                next_port += 1;
                replicas.push(ReplicaAddress {
                    zone: zone(r),
                    address: format!("127.0.0.1:{port}"),
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
            partitions,
        });
    }
    let topology = TopologyFile::new(tables);
    topology
        .validate()
        .map_err(|e| anyhow::anyhow!("generated topology: {e}"))?;
    let topology_path = data_dir.join("topology.json");
    std::fs::write(&topology_path, topology.to_json())?;
    let exe = std::env::current_exe().context("locating the partita binary")?;
    let mut children = Children(Vec::new());
    let mut processes = Vec::new();
    for t in &topology.tables {
        for p in &t.partitions {
            for r in &p.replicas {
                let dir = data_dir.join(format!("{}-p{}-{}", t.table_name, p.id, r.zone));
                let port = r.address.rsplit_once(':').map(|x| x.1).unwrap_or("0");
                let child = Command::new(&exe)
                    .args(["node", "--topology-file"])
                    .arg(&topology_path)
                    .args(["--table", &t.table_name, "--partition", &p.id.to_string()])
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
                    .args(["--snapshot-logs", &args.snapshot_logs.to_string()])
                    .stdin(Stdio::null())
                    .spawn()
                    .context("starting a node")?;
                let line = serde_json::json!({
                    "role": "node", "table": t.table_name, "partition": p.id,
                    "zone": r.zone, "address": r.address, "pid": child.id(),
                    "dataDir": dir,
                });
                println!("{line}");
                processes.push(line);
                children.0.push(child);
            }
        }
    }
    let gateway = Command::new(&exe)
        .args(["gateway", "--topology-file"])
        .arg(&topology_path)
        .args(["--port", &args.port.to_string()])
        .stdin(Stdio::null())
        .spawn()
        .context("starting the gateway")?;
    let line = serde_json::json!({"role": "gateway", "port": args.port, "pid": gateway.id()});
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
    shutdown_signal().await;
    drop(children);
    Ok(())
}
