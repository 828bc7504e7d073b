//! The load loop: N keep-alive HTTP/1.1 connections, one task each, issuing
//! requests back to back (no pipelining) and recording every latency.
//!
//! Lean on purpose: requests come prepared as complete HTTP messages (or, for
//! unique put keys, are formatted into buffers each task reuses), and
//! latencies go into a pre-sized `Vec<u32>` per task that is merged and
//! sorted once the phase is over.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::http::Conn;
use crate::protocol::{self, Op, Wire};

/// At most this many error responses are kept verbatim per phase.
const MAX_ERROR_SAMPLES: usize = 3;

/// Where the requests of a phase come from.
#[derive(Clone)]
pub enum Feed {
    /// Each prepared request is sent exactly once, shared out among the
    /// connections (preloading).
    Once(Arc<Vec<Bytes>>),
    /// Prepared requests picked uniformly at random, until the deadline.
    Random(Arc<Vec<Bytes>>),
    /// PutItem requests with keys never written before, until the deadline;
    /// `phase` keeps keys of different phases apart.
    FreshPuts { phase: String },
    /// Like `FreshPuts`, into `table`, with the index key attributes of the
    /// index benchmark (see `indexes.rs`).
    IndexedPuts { table: String, phase: String },
}

/// What one phase measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PhaseResult {
    pub op: String,
    /// Responses with status 200.
    pub ok: u64,
    /// Non-200 responses, transport errors and timeouts.
    pub errors: u64,
    /// From the common start until the last connection finished.
    pub elapsed_s: f64,
    /// `ok / elapsed_s`.
    pub throughput: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    /// CPU the load generator process used during the phase, in cores
    /// (1.0 = one core busy); near the machine's core count means the
    /// generator, not the target, may be the limit.
    #[serde(default)]
    pub client_cpu_cores: f64,
    /// A few error responses (status and start of body) for diagnosis.
    pub error_samples: Vec<String>,
}

struct TaskOutcome {
    latencies_ns: Vec<u32>,
    ok: u64,
    errors: u64,
    samples: Vec<String>,
    finished: Instant,
}

/// Runs one phase of `op` over `conns` connections until `feed` is exhausted
/// (`Feed::Once`) or `duration` has passed.
pub async fn run_phase(
    addr: SocketAddr,
    wire: &Wire,
    op: Op,
    feed: Feed,
    conns: usize,
    duration: Duration,
) -> anyhow::Result<PhaseResult> {
    // Open every connection before the clock starts.
    let mut opened = Vec::with_capacity(conns);
    for _ in 0..conns {
        opened.push(Conn::open(addr).await?);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let cpu_before = process_cpu_seconds();
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(conns);
    for (i, conn) in opened.into_iter().enumerate() {
        let wire = wire.clone();
        let feed = feed.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            drive(conn, wire, op, feed, i, next, deadline).await
        }));
    }
    let mut outcomes = Vec::with_capacity(conns);
    for t in tasks {
        outcomes.push(t.await?);
    }
    let mut result = summarize(op, start, outcomes);
    if let (Some(a), Some(b)) = (cpu_before, process_cpu_seconds()) {
        if result.elapsed_s > 0.0 {
            result.client_cpu_cores = (b - a) / result.elapsed_s;
        }
    }
    Ok(result)
}

/// User plus system CPU time of this process so far (Linux `/proc/self/stat`,
/// in clock ticks of 1/100 s); `None` where unavailable.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

async fn drive(
    mut conn: Conn,
    wire: Wire,
    op: Op,
    feed: Feed,
    index: usize,
    next: Arc<AtomicUsize>,
    deadline: Instant,
) -> TaskOutcome {
    let mut out = TaskOutcome {
        latencies_ns: Vec::with_capacity(1 << 16),
        ok: 0,
        errors: 0,
        samples: Vec::new(),
        finished: Instant::now(),
    };
    // xorshift64*: per-task, seeded by the task index, no shared state.
    let mut rng: u64 = 0x9E37_79B9_7F4A_7C15 ^ ((index as u64 + 1) << 17);
    let mut seq: u64 = 0;
    let mut put_body = String::with_capacity(512);
    let mut put_request = Vec::with_capacity(1024);
    loop {
        if Instant::now() >= deadline {
            break;
        }
        let request: &[u8] = match &feed {
            Feed::Once(requests) => match requests.get(next.fetch_add(1, Ordering::Relaxed)) {
                Some(r) => r,
                None => break,
            },
            Feed::Random(requests) => {
                rng ^= rng >> 12;
                rng ^= rng << 25;
                rng ^= rng >> 27;
                let r = rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
                &requests[(r % requests.len() as u64) as usize]
            }
            Feed::FreshPuts { phase } => {
                seq += 1;
                put_body.clear();
                let key = protocol::PutKey {
                    phase,
                    conn: index,
                    seq,
                };
                protocol::write_put_body(&mut put_body, &key, "0", seq);
                put_request.clear();
                wire.write_request(op, put_body.as_bytes(), &mut put_request);
                &put_request
            }
            Feed::IndexedPuts { table, phase } => {
                seq += 1;
                put_body.clear();
                let key = protocol::PutKey {
                    phase,
                    conn: index,
                    seq,
                };
                crate::indexes::write_indexed_put_body(&mut put_body, table, &key, seq);
                put_request.clear();
                wire.write_request(op, put_body.as_bytes(), &mut put_request);
                &put_request
            }
        };
        let t0 = Instant::now();
        match conn.call(request).await {
            Ok(200) => {
                let ns = t0.elapsed().as_nanos();
                out.latencies_ns.push(u32::try_from(ns).unwrap_or(u32::MAX));
                out.ok += 1;
            }
            Ok(status) => {
                out.errors += 1;
                if out.samples.len() < MAX_ERROR_SAMPLES {
                    let body = conn.body();
                    let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
                    out.samples.push(format!("HTTP {status}: {text}"));
                }
            }
            Err(e) => {
                out.errors += 1;
                if out.samples.len() < MAX_ERROR_SAMPLES {
                    out.samples.push(format!("transport: {e:#}"));
                }
            }
        }
    }
    out.finished = Instant::now();
    out
}

fn summarize(op: Op, start: Instant, outcomes: Vec<TaskOutcome>) -> PhaseResult {
    let total: usize = outcomes.iter().map(|o| o.latencies_ns.len()).sum();
    let mut lat = Vec::with_capacity(total);
    let mut result = PhaseResult {
        op: op.name().to_string(),
        ..PhaseResult::default()
    };
    let mut end = start;
    for o in outcomes {
        lat.extend_from_slice(&o.latencies_ns);
        result.ok += o.ok;
        result.errors += o.errors;
        end = end.max(o.finished);
        for s in o.samples {
            if result.error_samples.len() < MAX_ERROR_SAMPLES {
                result.error_samples.push(s);
            }
        }
    }
    lat.sort_unstable();
    result.elapsed_s = end.duration_since(start).as_secs_f64();
    if result.elapsed_s > 0.0 {
        result.throughput = result.ok as f64 / result.elapsed_s;
    }
    result.p50_ms = percentile_ms(&lat, 0.50);
    result.p99_ms = percentile_ms(&lat, 0.99);
    result.max_ms = lat.last().map_or(0.0, |&ns| ns as f64 / 1e6);
    if !lat.is_empty() {
        let sum: u64 = lat.iter().map(|&ns| u64::from(ns)).sum();
        result.mean_ms = sum as f64 / lat.len() as f64 / 1e6;
    }
    result
}

/// Nearest-rank percentile of sorted nanosecond samples, in milliseconds.
fn percentile_ms(sorted_ns: &[u32], q: f64) -> f64 {
    if sorted_ns.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted_ns.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted_ns.len()) - 1;
    sorted_ns[idx] as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).map(|i| i * 1_000_000).collect();
        assert_eq!(percentile_ms(&v, 0.50), 50.0);
        assert_eq!(percentile_ms(&v, 0.99), 99.0);
        assert_eq!(percentile_ms(&v[..1], 0.99), 1.0);
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
    }

    #[test]
    fn process_cpu_time_is_readable_and_grows() {
        let a = process_cpu_seconds().unwrap();
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        let b = process_cpu_seconds().unwrap();
        assert!(b >= a && b - a < 10.0);
    }
}
