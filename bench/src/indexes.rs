//! The secondary-index benchmark (`partita-bench indexes`):
//!
//! 1. Write cost of indexes: PutItem throughput (fresh keys, closed loop, N
//!    connections) on a table with 2 GSIs and 1 LSI against the same table
//!    without indexes; every item carries the index key attributes, so each
//!    put on the indexed table maintains three index entries. The two tables
//!    alternate for `rounds` rounds; the ratio is indexed / plain of the
//!    median throughputs.
//! 2. GSI propagation delay: writers put items at a steady total rate, each
//!    carrying the time it was sent; pollers query the GSI for each item
//!    (by its unique index key) until it appears. The delay of an item runs
//!    from the write's acknowledgement (and, reported too, from its send)
//!    to the first query that returned it. Polls go back to back, so the
//!    delay resolution is one Query round trip.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::http::Conn;
use crate::load::{run_phase, Feed, PhaseResult};
use crate::protocol::{Op, Wire};
use crate::report::median;

const PLAIN: &str = "bench_plain";
const INDEXED: &str = "bench_indexed";
const PROPAGATION: &str = "bench_propagation";

/// What to run.
pub struct IndexSpec {
    pub addr: SocketAddr,
    pub connections: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub rounds: usize,
    /// Total PutItem rate of the propagation writers, per second.
    pub rate: u32,
    pub writers: usize,
    pub pollers: usize,
}

/// What the index benchmark measured.
#[derive(Debug, Serialize, Deserialize)]
pub struct IndexResult {
    pub plain: Vec<PhaseResult>,
    pub indexed: Vec<PhaseResult>,
    pub plain_median: f64,
    pub indexed_median: f64,
    /// indexed_median / plain_median.
    pub ratio: f64,
    pub propagation: Propagation,
}

/// GSI propagation delays under a steady write load.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Propagation {
    pub rate_target: u32,
    pub writes_ok: u64,
    pub write_errors: u64,
    pub achieved_rate: f64,
    pub observed: u64,
    /// Items never seen within 10 s of their write.
    pub not_seen: u64,
    pub polls: u64,
    pub from_ack_p50_ms: f64,
    pub from_ack_p99_ms: f64,
    pub from_ack_max_ms: f64,
    pub from_send_p50_ms: f64,
    pub from_send_p99_ms: f64,
}

/// Runs both parts against `spec.addr`.
pub async fn execute(spec: &IndexSpec) -> anyhow::Result<IndexResult> {
    let wire = Wire::new(&spec.addr.to_string());
    create(spec.addr, &wire, &plain_table_body()).await?;
    create(spec.addr, &wire, &indexed_table_body()).await?;
    create(spec.addr, &wire, &propagation_table_body()).await?;

    let mut plain = Vec::new();
    let mut indexed = Vec::new();
    for round in 0..spec.rounds {
        for table in [PLAIN, INDEXED] {
            let feed = |tag: &str| Feed::IndexedPuts {
                table: table.to_string(),
                phase: format!("{tag}{round}"),
            };
            run_phase(
                spec.addr,
                &wire,
                Op::PutItem,
                feed("w"),
                spec.connections,
                spec.warmup,
            )
            .await?;
            let r = run_phase(
                spec.addr,
                &wire,
                Op::PutItem,
                feed("t"),
                spec.connections,
                spec.duration,
            )
            .await?;
            eprintln!(
                "  PutItem on {table} round {}: {:.0} req/s (p50 {:.2} ms, p99 {:.2} ms, {} errors)",
                round + 1,
                r.throughput,
                r.p50_ms,
                r.p99_ms,
                r.errors
            );
            if table == PLAIN {
                plain.push(r);
            } else {
                indexed.push(r);
            }
        }
    }
    let plain_median = median(&plain.iter().map(|r| r.throughput).collect::<Vec<_>>());
    let indexed_median = median(&indexed.iter().map(|r| r.throughput).collect::<Vec<_>>());
    let ratio = if plain_median > 0.0 {
        indexed_median / plain_median
    } else {
        0.0
    };
    let propagation = propagation(spec, &wire).await?;
    Ok(IndexResult {
        plain,
        indexed,
        plain_median,
        indexed_median,
        ratio,
        propagation,
    })
}

/// Renders the result for a terminal.
pub fn render(r: &IndexResult, spec: &IndexSpec) -> String {
    let p = &r.propagation;
    format!(
        "== PutItem with indexes ({} rounds x {:?}, {} connections) ==\n\
         no indexes:             {:>8.0} req/s (median)\n\
         2 GSIs + 1 LSI:         {:>8.0} req/s (median)\n\
         indexed / plain:        {:>8.2}x\n\
         == GSI propagation ({} writes/s target, {} writers, {} pollers, {:?}) ==\n\
         writes: {} ok, {} errors, {:.0}/s achieved; observed in the GSI: {}, not seen within 10 s: {}; {} polls\n\
         delay from the write's ack:  p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms\n\
         delay from the write's send: p50 {:.2} ms  p99 {:.2} ms\n",
        spec.rounds,
        spec.duration,
        spec.connections,
        r.plain_median,
        r.indexed_median,
        r.ratio,
        p.rate_target,
        spec.writers,
        spec.pollers,
        spec.duration,
        p.writes_ok,
        p.write_errors,
        p.achieved_rate,
        p.observed,
        p.not_seen,
        p.polls,
        p.from_ack_p50_ms,
        p.from_ack_p99_ms,
        p.from_ack_max_ms,
        p.from_send_p50_ms,
        p.from_send_p99_ms,
    )
}

fn key_schema_and_attrs(attrs: &[&str]) -> String {
    let defs: Vec<String> = ["pk", "sk"]
        .iter()
        .chain(attrs)
        .map(|a| format!(r#"{{"AttributeName":"{a}","AttributeType":"S"}}"#))
        .collect();
    format!(
        r#""AttributeDefinitions":[{}],"KeySchema":[{{"AttributeName":"pk","KeyType":"HASH"}},{{"AttributeName":"sk","KeyType":"RANGE"}}],"BillingMode":"PAY_PER_REQUEST""#,
        defs.join(",")
    )
}

fn plain_table_body() -> String {
    format!(r#"{{"TableName":"{PLAIN}",{}}}"#, key_schema_and_attrs(&[]))
}

/// The indexed table: GSI gsi1 (g1, sk) ALL, GSI gsi2 (g2) KEYS_ONLY, LSI lsi1
/// (pk, l1) KEYS_ONLY.
fn indexed_table_body() -> String {
    format!(
        concat!(
            r#"{{"TableName":"{t}",{k},"GlobalSecondaryIndexes":["#,
            r#"{{"IndexName":"gsi1","KeySchema":[{{"AttributeName":"g1","KeyType":"HASH"}},{{"AttributeName":"sk","KeyType":"RANGE"}}],"Projection":{{"ProjectionType":"ALL"}}}},"#,
            r#"{{"IndexName":"gsi2","KeySchema":[{{"AttributeName":"g2","KeyType":"HASH"}}],"Projection":{{"ProjectionType":"KEYS_ONLY"}}}}],"#,
            r#""LocalSecondaryIndexes":[{{"IndexName":"lsi1","KeySchema":[{{"AttributeName":"pk","KeyType":"HASH"}},{{"AttributeName":"l1","KeyType":"RANGE"}}],"Projection":{{"ProjectionType":"KEYS_ONLY"}}}}]}}"#
        ),
        t = INDEXED,
        k = key_schema_and_attrs(&["g1", "g2", "l1"])
    )
}

/// The propagation table: GSI by_w on (w, n), both unique per item.
fn propagation_table_body() -> String {
    let defs = r#"{"AttributeName":"pk","AttributeType":"S"},{"AttributeName":"w","AttributeType":"S"},{"AttributeName":"n","AttributeType":"S"}"#;
    format!(
        concat!(
            r#"{{"TableName":"{t}","AttributeDefinitions":[{d}],"#,
            r#""KeySchema":[{{"AttributeName":"pk","KeyType":"HASH"}}],"BillingMode":"PAY_PER_REQUEST","#,
            r#""GlobalSecondaryIndexes":[{{"IndexName":"by_w","KeySchema":[{{"AttributeName":"w","KeyType":"HASH"}},{{"AttributeName":"n","KeyType":"RANGE"}}],"Projection":{{"ProjectionType":"KEYS_ONLY"}}}}]}}"#
        ),
        t = PROPAGATION,
        d = defs
    )
}

/// Creates a table (an existing one is reused) and waits until it and its
/// indexes are ACTIVE.
async fn create(addr: SocketAddr, wire: &Wire, body: &str) -> anyhow::Result<()> {
    let name: Value = serde_json::from_str(body).context("table body")?;
    let name = name["TableName"].as_str().unwrap_or_default().to_string();
    let mut c = Conn::open(addr).await?;
    let status = c
        .call(&wire.request(Op::CreateTable, body.as_bytes()))
        .await?;
    let text = String::from_utf8_lossy(c.body()).to_string();
    if status != 200 && !text.contains("ResourceInUseException") {
        bail!("CreateTable {name}: HTTP {status}: {text}");
    }
    let describe = format!(r#"{{"TableName":"{name}"}}"#);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = c
            .call(&wire.request(Op::DescribeTable, describe.as_bytes()))
            .await?;
        if status == 200 {
            let v: Value = serde_json::from_slice(c.body()).context("DescribeTable")?;
            let gsis_active = v["Table"]["GlobalSecondaryIndexes"]
                .as_array()
                .map(|a| a.iter().all(|g| g["IndexStatus"] == "ACTIVE"))
                .unwrap_or(true);
            if v["Table"]["TableStatus"] == "ACTIVE" && gsis_active {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            bail!("{name} not ACTIVE after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Appends the PutItem body of one item of the index write-cost phases: the
/// same attributes for both tables (keys, the three index keys, a payload).
pub fn write_indexed_put_body(out: &mut String, table: &str, pk: &dyn std::fmt::Display, n: u64) {
    use std::fmt::Write as _;
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        concat!(
            r#"{{"TableName":"{t}","Item":{{"pk":{{"S":"{pk}"}},"sk":{{"S":"s"}},"#,
            r#""g1":{{"S":"g{g1}"}},"g2":{{"S":"{pk}"}},"l1":{{"S":"l{n}"}},"#,
            r#""payload":{{"S":"benchmark-payload-0123456789abcdefghijklmnopqrstuvwxyz-0123456789"}}}}}}"#
        ),
        t = table,
        pk = pk,
        g1 = n % 1000,
        n = n
    );
}

/// One write waiting to be seen in the GSI.
struct Pending {
    w: usize,
    n: u64,
    sent: Instant,
    acked: Instant,
}

async fn propagation(spec: &IndexSpec, wire: &Wire) -> anyhow::Result<Propagation> {
    let queue: Arc<Mutex<VecDeque<Pending>>> = Arc::new(Mutex::new(VecDeque::new()));
    let writers_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let start = Instant::now();
    let end = start + spec.duration;
    let per_writer = Duration::from_secs_f64(spec.writers as f64 / f64::from(spec.rate.max(1)));

    let mut writers = Vec::new();
    for w in 0..spec.writers {
        let (wire, queue) = (wire.clone(), queue.clone());
        let mut conn = Conn::open(spec.addr).await?;
        writers.push(tokio::spawn(async move {
            let (mut ok, mut errors) = (0u64, 0u64);
            let mut tick = tokio::time::interval(per_writer);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n = 0u64;
            while Instant::now() < end {
                tick.tick().await;
                let sent = Instant::now();
                let body = format!(
                    r#"{{"TableName":"{PROPAGATION}","Item":{{"pk":{{"S":"w{w}-{n}"}},"w":{{"S":"w{w}"}},"n":{{"S":"{n:012}"}},"ts":{{"N":"{}"}}}}}}"#,
                    sent.duration_since(start).as_micros()
                );
                match conn.call(&wire.request(Op::PutItem, body.as_bytes())).await {
                    Ok(200) => {
                        ok += 1;
                        let acked = Instant::now();
                        queue.lock().await.push_back(Pending { w, n, sent, acked });
                    }
                    _ => errors += 1,
                }
                n += 1;
            }
            (ok, errors)
        }));
    }

    let mut pollers = Vec::new();
    for _ in 0..spec.pollers {
        let (wire, queue, done) = (wire.clone(), queue.clone(), writers_done.clone());
        let mut conn = Conn::open(spec.addr).await?;
        pollers.push(tokio::spawn(async move {
            let mut from_ack = Vec::new();
            let mut from_send = Vec::new();
            let (mut polls, mut not_seen) = (0u64, 0u64);
            loop {
                let next = queue.lock().await.pop_front();
                let Some(p) = next else {
                    if done.load(std::sync::atomic::Ordering::Acquire) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_micros(200)).await;
                    continue;
                };
                let body = format!(
                    r#"{{"TableName":"{PROPAGATION}","IndexName":"by_w","KeyConditionExpression":"w = :w AND n = :n","ExpressionAttributeValues":{{":w":{{"S":"w{}"}},":n":{{"S":"{:012}"}}}},"Select":"COUNT"}}"#,
                    p.w, p.n
                );
                let request = wire.request(Op::Query, body.as_bytes());
                let give_up = p.acked + Duration::from_secs(10);
                loop {
                    polls += 1;
                    let found = match conn.call(&request).await {
                        Ok(200) => serde_json::from_slice::<Value>(conn.body())
                            .map(|v| v["Count"] == 1)
                            .unwrap_or(false),
                        _ => false,
                    };
                    let now = Instant::now();
                    if found {
                        from_ack.push(now.duration_since(p.acked));
                        from_send.push(now.duration_since(p.sent));
                        break;
                    }
                    if now > give_up {
                        not_seen += 1;
                        break;
                    }
                }
            }
            (from_ack, from_send, polls, not_seen)
        }));
    }

    let mut out = Propagation {
        rate_target: spec.rate,
        ..Propagation::default()
    };
    for w in writers {
        let (ok, errors) = w.await?;
        out.writes_ok += ok;
        out.write_errors += errors;
    }
    out.achieved_rate = out.writes_ok as f64 / start.elapsed().as_secs_f64();
    writers_done.store(true, std::sync::atomic::Ordering::Release);
    let mut from_ack = Vec::new();
    let mut from_send = Vec::new();
    for p in pollers {
        let (a, s, polls, not_seen) = p.await?;
        from_ack.extend(a);
        from_send.extend(s);
        out.polls += polls;
        out.not_seen += not_seen;
    }
    out.observed = from_ack.len() as u64;
    from_ack.sort();
    from_send.sort();
    let ms = |v: &[Duration], q: f64| -> f64 {
        if v.is_empty() {
            return 0.0;
        }
        // Nearest rank.
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1].as_secs_f64() * 1000.0
    };
    out.from_ack_p50_ms = ms(&from_ack, 0.50);
    out.from_ack_p99_ms = ms(&from_ack, 0.99);
    out.from_ack_max_ms = ms(&from_ack, 1.0);
    out.from_send_p50_ms = ms(&from_send, 0.50);
    out.from_send_p99_ms = ms(&from_send, 0.99);
    Ok(out)
}
