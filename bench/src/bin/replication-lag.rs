//! `replication-lag`: global-table replication lag between two running
//! regions (`bench/replication.sh` starts them).
//!
//! Creates a table with a NEW_AND_OLD_IMAGES stream in region A, adds the
//! replica in region B (UpdateTable ReplicaUpdates), waits until both
//! regions show it ACTIVE, then runs a steady PutItem load in A
//! (`--rate` per second over `--writers` connections). For every
//! acknowledged put a poller reads the key in B (GetItem, strongly
//! consistent, every `--poll-ms`) until it appears: the lag is the time
//! from A's acknowledgement to the first read in B that sees the item.
//! Prints one JSON object: count, p50, p90, p99 and max lag in ms.

#[allow(dead_code)]
#[path = "../http.rs"]
mod http;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use tokio::sync::{mpsc, Mutex};

#[derive(Parser)]
#[command(about = "Global-table replication lag between two running partita regions")]
struct Args {
    /// Region A's endpoint (host:port); writes go here.
    #[arg(long)]
    a: String,
    /// Region B's endpoint (host:port); reads go here.
    #[arg(long)]
    b: String,
    /// Region B's name (the replica added from A).
    #[arg(long, default_value = "eu-west-1")]
    b_region: String,
    #[arg(long, default_value = "replication_lag")]
    table: String,
    /// PutItem per second in A.
    #[arg(long, default_value_t = 500)]
    rate: u32,
    #[arg(long, default_value_t = 4)]
    writers: usize,
    #[arg(long, default_value_t = 8)]
    pollers: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Interval between reads of one key in B, ms.
    #[arg(long, default_value_t = 1)]
    poll_ms: u64,
    /// Skip creating the table and the replica (a later run on the same pair).
    #[arg(long)]
    reuse: bool,
}

fn addr(endpoint: &str) -> anyhow::Result<SocketAddr> {
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    host.to_socket_addrs()?
        .next()
        .with_context(|| format!("cannot resolve {host}"))
}

fn request(addr: SocketAddr, op: &str, body: &str) -> Vec<u8> {
    format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-amz-json-1.0\r\n\
         X-Amz-Target: DynamoDB_20120810.{op}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn call(
    conn: &mut http::Conn,
    addr: SocketAddr,
    op: &str,
    body: &str,
) -> anyhow::Result<serde_json::Value> {
    let status = conn.call(&request(addr, op, body)).await?;
    let value: serde_json::Value = serde_json::from_slice(conn.body()).unwrap_or_default();
    if status != 200 {
        bail!("{op} answered {status}: {value}");
    }
    Ok(value)
}

async fn setup(args: &Args, a: SocketAddr, b: SocketAddr) -> anyhow::Result<()> {
    let mut ca = http::Conn::open(a).await?;
    let mut cb = http::Conn::open(b).await?;
    let table = &args.table;
    call(
        &mut ca,
        a,
        "CreateTable",
        &serde_json::json!({
            "TableName": table,
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "StreamSpecification": {"StreamEnabled": true, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        })
        .to_string(),
    )
    .await?;
    call(
        &mut ca,
        a,
        "UpdateTable",
        &serde_json::json!({
            "TableName": table,
            "ReplicaUpdates": [{"Create": {"RegionName": args.b_region}}]
        })
        .to_string(),
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let describe = serde_json::json!({ "TableName": table }).to_string();
    loop {
        let da = call(&mut ca, a, "DescribeTable", &describe).await?;
        let db = call(&mut cb, b, "DescribeTable", &describe).await.ok();
        let active = |d: &serde_json::Value| {
            d["Table"]["TableStatus"] == "ACTIVE"
                && d["Table"]["Replicas"].as_array().is_some_and(|r| {
                    !r.is_empty() && r.iter().all(|x| x["ReplicaStatus"] == "ACTIVE")
                })
        };
        if active(&da) && db.as_ref().is_some_and(active) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("replica not ACTIVE within 60 s: {da}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (a, b) = (addr(&args.a)?, addr(&args.b)?);
    if !args.reuse {
        setup(&args, a, b).await?;
    }
    let (tx, rx) = mpsc::unbounded_channel::<(String, Instant)>();
    let rx = Arc::new(Mutex::new(rx));
    let lags = Arc::new(Mutex::new(Vec::<f64>::new()));
    let missing = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut pollers = Vec::new();
    for _ in 0..args.pollers {
        let rx = rx.clone();
        let lags = lags.clone();
        let missing = missing.clone();
        let table = args.table.clone();
        let poll = Duration::from_millis(args.poll_ms);
        pollers.push(tokio::spawn(async move {
            let mut conn = http::Conn::open(b).await?;
            loop {
                let next = rx.lock().await.recv().await;
                let Some((key, acked)) = next else {
                    return anyhow::Ok(());
                };
                let body = serde_json::json!({
                    "TableName": table, "Key": {"pk": {"S": key}}, "ConsistentRead": true
                })
                .to_string();
                let deadline = acked + Duration::from_secs(30);
                loop {
                    let v = call(&mut conn, b, "GetItem", &body).await?;
                    if v.get("Item").is_some() {
                        let lag = acked.elapsed().as_secs_f64() * 1000.0;
                        lags.lock().await.push(lag);
                        break;
                    }
                    if Instant::now() > deadline {
                        missing.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        break;
                    }
                    tokio::time::sleep(poll).await;
                }
            }
        }));
    }
    let per_writer = f64::from(args.rate) / args.writers as f64;
    let until = Instant::now() + Duration::from_secs(args.duration);
    let mut writers = Vec::new();
    for w in 0..args.writers {
        let tx = tx.clone();
        let table = args.table.clone();
        writers.push(tokio::spawn(async move {
            let mut conn = http::Conn::open(a).await?;
            let interval = Duration::from_secs_f64(1.0 / per_writer.max(0.001));
            let mut next = Instant::now();
            let mut n = 0u64;
            while Instant::now() < until {
                let key = format!("w{w}-{n}-{}", std::process::id());
                let body = serde_json::json!({
                    "TableName": table,
                    "Item": {"pk": {"S": key}, "payload": {"S": "x".repeat(100)}}
                })
                .to_string();
                call(&mut conn, a, "PutItem", &body).await?;
                let _ = tx.send((key, Instant::now()));
                n += 1;
                next += interval;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    tokio::time::sleep(wait).await;
                }
            }
            anyhow::Ok(n)
        }));
    }
    drop(tx);
    let mut written = 0;
    for w in writers {
        written += w.await??;
    }
    for p in pollers {
        p.await??;
    }
    let mut lags = std::mem::take(&mut *lags.lock().await);
    lags.sort_by(f64::total_cmp);
    let out = serde_json::json!({
        "written": written,
        "seen": lags.len(),
        "missing": missing.load(std::sync::atomic::Ordering::Relaxed),
        "rate": args.rate,
        "p50_ms": percentile(&lags, 0.50),
        "p90_ms": percentile(&lags, 0.90),
        "p99_ms": percentile(&lags, 0.99),
        "max_ms": lags.last().copied().unwrap_or(0.0),
    });
    println!("{out}");
    Ok(())
}
