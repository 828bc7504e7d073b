//! The `partita` binary.
//!
//! `partita serve` runs the standalone server: the DynamoDB endpoint and every
//! partition of every table in one process, durable on local disk.

mod serve;

use clap::{Parser, Subcommand};

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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
    }
}
