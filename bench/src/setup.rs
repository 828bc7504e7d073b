//! Per-target preparation before any timed phase: wait until the endpoint
//! answers, create the table and wait for ACTIVE, preload the Get and Query
//! data sets, then check that a GetItem and a Query return what was written
//! (so a target answering 200 with the wrong content cannot score).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use serde_json::Value;

use crate::http::Conn;
use crate::load::{self, Feed, PhaseResult};
use crate::protocol::{self, Op, Wire, ITEMS_PER_QUERY};

/// Sizes of the preloaded data sets.
#[derive(Clone, Copy, Debug)]
pub struct DataSet {
    /// Items read by GetItem (one sort key each).
    pub get_keys: usize,
    /// Partition keys read by Query, `ITEMS_PER_QUERY` items each.
    pub query_keys: usize,
}

/// Prepared requests for the GetItem and Query phases.
pub struct Requests {
    pub get: Arc<Vec<Bytes>>,
    pub query: Arc<Vec<Bytes>>,
}

impl DataSet {
    /// Prepares the read requests once, before anything is timed.
    pub fn requests(&self, wire: &Wire) -> Requests {
        Requests {
            get: Arc::new(
                (0..self.get_keys)
                    .map(|i| {
                        let body = protocol::get_body(&protocol::get_key(i), "0");
                        wire.request(Op::GetItem, &body)
                    })
                    .collect(),
            ),
            query: Arc::new(
                (0..self.query_keys)
                    .map(|i| {
                        let body = protocol::query_body(&protocol::query_key(i));
                        wire.request(Op::Query, &body)
                    })
                    .collect(),
            ),
        }
    }

    fn preload_requests(&self, wire: &Wire) -> Vec<Bytes> {
        let mut v = Vec::with_capacity(self.get_keys + self.query_keys * ITEMS_PER_QUERY);
        for i in 0..self.get_keys {
            let body = protocol::put_body(&protocol::get_key(i), "0", i as u64);
            v.push(wire.request(Op::PutItem, &body));
        }
        for i in 0..self.query_keys {
            for j in 0..ITEMS_PER_QUERY {
                let sk = protocol::query_sort_key(j);
                let body = protocol::put_body(&protocol::query_key(i), &sk, j as u64);
                v.push(wire.request(Op::PutItem, &body));
            }
        }
        v
    }
}

/// Waits up to `timeout` for the endpoint to answer HTTP at all (any status:
/// a server still missing ListTables is up; what it lacks shows in setup).
pub async fn wait_ready(addr: SocketAddr, wire: &Wire, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        match Conn::open(addr).await {
            Ok(mut c) => match c.call(&wire.request(Op::ListTables, b"{}")).await {
                Ok(_) => return Ok(()),
                Err(e) => last = format!("{e:#}"),
            },
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("{addr} did not answer HTTP within {timeout:?}: {last}")
}

/// Creates the benchmark table (an existing one is reused) and waits until
/// DescribeTable reports it ACTIVE.
pub async fn create_table(addr: SocketAddr, wire: &Wire) -> anyhow::Result<()> {
    let mut c = Conn::open(addr).await?;
    let status = c
        .call(&wire.request(Op::CreateTable, &protocol::create_table_body()))
        .await?;
    let body = c.body();
    if status != 200 && !String::from_utf8_lossy(body).contains("ResourceInUseException") {
        bail!(
            "CreateTable: HTTP {status}: {}",
            String::from_utf8_lossy(body)
        );
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = c
            .call(&wire.request(Op::DescribeTable, &protocol::describe_table_body()))
            .await?;
        let body = c.body();
        if status == 200 {
            let v: Value = serde_json::from_slice(body).context("DescribeTable response")?;
            if v["Table"]["TableStatus"] == "ACTIVE" {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "table not ACTIVE after 30 s: HTTP {status}: {}",
                String::from_utf8_lossy(body)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes every item the read phases need, over `conns` connections.
pub async fn preload(
    addr: SocketAddr,
    wire: &Wire,
    data: DataSet,
    conns: usize,
) -> anyhow::Result<PhaseResult> {
    let bodies = Arc::new(data.preload_requests(wire));
    let n = bodies.len() as u64;
    let r = load::run_phase(
        addr,
        wire,
        Op::PutItem,
        Feed::Once(bodies),
        conns,
        Duration::from_secs(600),
    )
    .await?;
    if r.ok != n {
        bail!(
            "preload wrote {} of {n} items ({} errors): {:?}",
            r.ok,
            r.errors,
            r.error_samples
        );
    }
    Ok(r)
}

/// Checks one GetItem and one Query against the preloaded data.
pub async fn validate(addr: SocketAddr, wire: &Wire, data: DataSet) -> anyhow::Result<()> {
    let mut c = Conn::open(addr).await?;
    let i = data.get_keys / 2;
    let status = c
        .call(&wire.request(Op::GetItem, &protocol::get_body(&protocol::get_key(i), "0")))
        .await?;
    let v: Value = serde_json::from_slice(c.body())
        .with_context(|| format!("GetItem: HTTP {status}: not JSON"))?;
    if status != 200 || v["Item"]["pk"]["S"] != protocol::get_key(i).as_str() {
        bail!("GetItem returned HTTP {status}: {v}");
    }
    let q = data.query_keys / 2;
    let status = c
        .call(&wire.request(Op::Query, &protocol::query_body(&protocol::query_key(q))))
        .await?;
    let v: Value = serde_json::from_slice(c.body())
        .with_context(|| format!("Query: HTTP {status}: not JSON"))?;
    let items = v["Items"].as_array().map_or(0, Vec::len);
    if status != 200 || v["Count"] != ITEMS_PER_QUERY || items != ITEMS_PER_QUERY {
        bail!("Query returned HTTP {status} with {items} items: {v}");
    }
    let first = &v["Items"][0]["sk"]["S"];
    if first != protocol::query_sort_key(0).as_str() {
        bail!("Query items not in sort-key order: first sk {first}");
    }
    Ok(())
}
