//! The `partita` binary.
//!
//! `partita serve` runs the standalone server: the DynamoDB endpoint and every
//! partition of every table in one process, durable on local disk.
//! `partita node`, `partita gateway` and `partita dev-cluster` run cluster
//! mode (see `partita-cluster`); `partita members` changes a partition's
//! Raft membership.

mod cluster_admin;
mod dev_cluster;
mod dev_replica;
mod gateway;
mod members;
mod node;
mod rpc_tls;
mod serve;

use clap::{Parser, Subcommand};

// mimalloc instead of the system allocator: the request path allocates and
// frees on different threads (tokio workers, the group-commit writer), where
// glibc malloc spent ~15% of the server's CPU in PutItem profiles.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "partita",
    version,
    about = "DynamoDB-compatible database for Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the standalone server (one process, durable on local disk).
    Serve(serve::ServeArgs),
    /// Run one replica of one partition of one table (cluster mode).
    Node(node::NodeArgs),
    /// Run the DynamoDB endpoint of a cluster.
    Gateway(gateway::GatewayArgs),
    /// Start a local cluster: a gateway and partitions x replicas nodes.
    DevCluster(dev_cluster::DevClusterArgs),
    /// Show or change the members of a partition's Raft group (cluster mode).
    Members(members::MembersArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Node(args) => node::run(args),
        Command::Gateway(args) => gateway::run(args),
        Command::DevCluster(args) => dev_cluster::run(args),
        Command::Members(args) => members::run(args),
    }
}
