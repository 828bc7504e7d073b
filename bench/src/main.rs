//! `partita-bench`: the DynamoDB-protocol load generator behind `bench/run.sh`.
//!
//! It owns measuring, not process management: `bench/run.sh` starts and stops
//! each target (partita serve, DynamoDB Local, dynalite, Dynoxide) one at a
//! time and calls `run` for each; `report` then aggregates the run files into
//! medians and ratios. See `bench/README.md`.

mod http;
mod indexes;
mod load;
mod protocol;
mod report;
mod run;
mod selftest;
mod setup;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(about = "DynamoDB-protocol benchmark: partita serve against its peers")]
struct Cli {
    /// Tokio worker threads of the load generator (the target shares the machine).
    #[arg(long, global = true, default_value_t = 1)]
    client_threads: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One run against one running target; writes one JSON result file.
    Run(RunArgs),
    /// Records that a target was not measured (e.g. it failed to start).
    Skip {
        #[arg(long)]
        target: String,
        #[arg(long, default_value = "")]
        storage: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Aggregates the run files in a directory: medians, ratios, summary.json.
    Report {
        /// Directory holding run-*.json (and skip-*.json) files.
        dir: PathBuf,
        /// The target compared against the best peer.
        #[arg(long, default_value = "partita")]
        subject: String,
    },
    /// Serves `{}` to every request (the selftest's target).
    /// Secondary indexes on one target: PutItem throughput with 2 GSIs and
    /// 1 LSI vs without, and GSI propagation delay under a steady load.
    Indexes {
        #[arg(long)]
        endpoint: String,
        #[arg(long, default_value_t = 16)]
        connections: usize,
        /// Seconds per timed phase (and of the propagation load).
        #[arg(long, default_value_t = 10)]
        duration: u64,
        #[arg(long, default_value_t = 2)]
        warmup: u64,
        /// Rounds of the plain/indexed PutItem pair.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Total PutItem rate of the propagation writers, per second.
        #[arg(long, default_value_t = 2000)]
        rate: u32,
        #[arg(long, default_value_t = 4)]
        writers: usize,
        #[arg(long, default_value_t = 4)]
        pollers: usize,
        #[arg(long)]
        out: PathBuf,
    },
    #[command(hide = true)]
    TrivialServer {
        #[arg(long)]
        port: u16,
    },
    /// Measures the generator against a trivial `{}` server in a child process.
    Selftest {
        #[arg(long, default_value_t = 16)]
        connections: usize,
        #[arg(long, default_value_t = 3.0)]
        duration: f64,
        #[arg(long, default_value_t = 1)]
        server_threads: usize,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Target name as shown in the report (`partita` is the subject).
    #[arg(long)]
    target: String,
    /// `host:port` or `http://host:port` of the target (loopback only).
    #[arg(long)]
    endpoint: String,
    /// How the target stores data, shown in the report.
    #[arg(long, default_value = "")]
    storage: String,
    /// Run number (1-based), for the report.
    #[arg(long, default_value_t = 1)]
    run: u32,
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Seconds of each timed phase.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of untimed load before each timed phase.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Items preloaded for GetItem.
    #[arg(long, default_value_t = 10_000)]
    get_keys: usize,
    /// Partition keys preloaded for Query (10 items each).
    #[arg(long, default_value_t = 1_000)]
    query_keys: usize,
    /// Seconds to wait for the target to answer ListTables.
    #[arg(long, default_value_t = 60.0)]
    ready_timeout: f64,
    /// Time only these operations (comma-separated, e.g. `PutItem`; for
    /// profiling one phase by hand). Default: GetItem, Query, PutItem.
    #[arg(long, value_delimiter = ',')]
    ops: Vec<String>,
    /// Result file.
    #[arg(long)]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // One thread: a current-thread runtime, the cheapest scheduler.
    let rt = if cli.client_threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.client_threads)
            .enable_all()
            .build()?
    };
    rt.block_on(dispatch(cli.command))
}

async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(a) => {
            let addr = loopback_addr(&a.endpoint)?;
            let spec = run::RunSpec {
                target: a.target,
                storage: a.storage,
                addr,
                run: a.run,
                connections: a.connections.max(1),
                duration: secs(a.duration),
                warmup: secs(a.warmup),
                data: setup::DataSet {
                    get_keys: a.get_keys.max(1),
                    query_keys: a.query_keys.max(1),
                },
                ready_timeout: secs(a.ready_timeout),
                ops: run::timed_ops(&a.ops)?,
            };
            let result = run::execute(&spec).await;
            run::write(&result, &a.out)?;
            if let Some(f) = &result.failure {
                // A plain message: this is a finding about the target, not a
                // crash of the generator.
                eprintln!("  {} run {} failed: {f}", spec.target, spec.run);
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Skip {
            target,
            storage,
            reason,
            out,
        } => {
            let result = run::RunResult {
                target,
                storage,
                run: 0,
                connections: 0,
                duration_s: 0.0,
                warmup_s: 0.0,
                get_keys: 0,
                query_keys: 0,
                started_unix_s: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                preload: None,
                ops: Vec::new(),
                failure: Some(reason),
            };
            run::write(&result, &out)
        }
        Command::Indexes {
            endpoint,
            connections,
            duration,
            warmup,
            rounds,
            rate,
            writers,
            pollers,
            out,
        } => {
            let spec = indexes::IndexSpec {
                addr: loopback_addr(&endpoint)?,
                connections: connections.max(1),
                duration: Duration::from_secs(duration.max(1)),
                warmup: Duration::from_secs(warmup),
                rounds: rounds.max(1),
                rate: rate.max(1),
                writers: writers.max(1),
                pollers: pollers.max(1),
            };
            let result = indexes::execute(&spec).await?;
            let text = indexes::render(&result, &spec);
            print!("{text}");
            std::fs::write(&out, serde_json::to_vec_pretty(&result)?)
                .with_context(|| format!("writing {}", out.display()))?;
            std::fs::write(out.with_extension("txt"), text)
                .with_context(|| format!("writing {}", out.display()))?;
            Ok(())
        }
        Command::Report { dir, subject } => {
            let runs = report::load_runs(&dir)?;
            anyhow::ensure!(!runs.is_empty(), "no run files in {}", dir.display());
            let summaries = report::summarize(&runs, &subject);
            let measured = runs.iter().find(|r| r.connections > 0);
            let header = match measured {
                Some(r) => format!(
                    "{} connections, {} s per timed phase after {} s warm-up, \
                     {} GetItem keys, {} Query keys x 10 items; median over runs",
                    r.connections, r.duration_s, r.warmup_s, r.get_keys, r.query_keys
                ),
                None => "no target was measured".to_string(),
            };
            let text = report::render(&summaries, &subject, &header);
            print!("{text}");
            std::fs::write(dir.join("summary.txt"), &text)?;
            std::fs::write(
                dir.join("summary.json"),
                serde_json::to_vec_pretty(&summaries)?,
            )?;
            Ok(())
        }
        Command::TrivialServer { port } => selftest::serve_trivial(port).await,
        Command::Selftest {
            connections,
            duration,
            server_threads,
        } => {
            let r = selftest::run(connections.max(1), secs(duration), server_threads).await?;
            println!(
                "trivial server: {:.0} req/s  p50 {:.3} ms  p99 {:.3} ms  errors {}  \
                 generator CPU {:.2} cores ({:.1} us/request)",
                r.throughput,
                r.p50_ms,
                r.p99_ms,
                r.errors,
                r.client_cpu_cores,
                r.client_cpu_cores * 1e6 / r.throughput.max(1.0)
            );
            Ok(())
        }
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.clamp(0.0, 86_400.0))
}

/// Resolves `endpoint` and refuses anything outside the loopback range.
fn loopback_addr(endpoint: &str) -> anyhow::Result<SocketAddr> {
    let hostport = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let addr = hostport
        .to_socket_addrs()
        .with_context(|| format!("resolving {hostport}"))?
        .next()
        .with_context(|| format!("{hostport} resolves to nothing"))?;
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "{addr} is not a loopback address; the benchmark only targets this machine"
    );
    Ok(addr)
}
