//! One run against one target: setup, then for each timed operation a
//! warm-up and a measured phase. The result goes to one JSON file; the
//! report aggregates many of them.
//!
//! Reads are timed before puts so every target serves reads from the same
//! preloaded data set, whatever its write throughput.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::load::{self, Feed, PhaseResult};
use crate::protocol::{Op, Wire};
use crate::setup::{self, DataSet};

/// The operations timed, in the order they run.
pub const TIMED_OPS: [Op; 3] = [Op::GetItem, Op::Query, Op::PutItem];

/// Settings of one run.
#[derive(Clone, Debug)]
pub struct RunSpec {
    pub target: String,
    pub storage: String,
    pub addr: SocketAddr,
    pub run: u32,
    pub connections: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub data: DataSet,
    pub ready_timeout: Duration,
    /// The operations timed (a subset of [`TIMED_OPS`], in its order).
    pub ops: Vec<Op>,
}

/// Returns the timed operations named in `names` (all when empty), in
/// [`TIMED_OPS`] order.
pub fn timed_ops(names: &[String]) -> anyhow::Result<Vec<Op>> {
    for name in names {
        if !TIMED_OPS.iter().any(|op| op.name() == name) {
            anyhow::bail!("unknown operation {name:?} (GetItem, Query or PutItem)");
        }
    }
    Ok(TIMED_OPS
        .into_iter()
        .filter(|op| names.is_empty() || names.iter().any(|n| n == op.name()))
        .collect())
}

/// What one run measured; written as one JSON file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunResult {
    pub target: String,
    /// How the target keeps data ("in-memory", "disk, fsync per write", ...).
    pub storage: String,
    pub run: u32,
    pub connections: usize,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub get_keys: usize,
    pub query_keys: usize,
    pub started_unix_s: u64,
    pub preload: Option<PhaseResult>,
    pub ops: Vec<PhaseResult>,
    /// Set when setup failed; `ops` then holds what completed.
    pub failure: Option<String>,
}

/// Runs setup and the timed phases; a setup failure is recorded, not raised.
pub async fn execute(spec: &RunSpec) -> RunResult {
    let mut result = RunResult {
        target: spec.target.clone(),
        storage: spec.storage.clone(),
        run: spec.run,
        connections: spec.connections,
        duration_s: spec.duration.as_secs_f64(),
        warmup_s: spec.warmup.as_secs_f64(),
        get_keys: spec.data.get_keys,
        query_keys: spec.data.query_keys,
        started_unix_s: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        preload: None,
        ops: Vec::new(),
        failure: None,
    };
    if let Err(e) = phases(spec, &mut result).await {
        result.failure = Some(format!("{e:#}"));
    }
    result
}

async fn phases(spec: &RunSpec, result: &mut RunResult) -> anyhow::Result<()> {
    let wire = Wire::new(&spec.addr.to_string());
    let addr = spec.addr;
    setup::wait_ready(addr, &wire, spec.ready_timeout).await?;
    setup::create_table(addr, &wire).await?;
    let pre = setup::preload(addr, &wire, spec.data, spec.connections).await?;
    eprintln!(
        "  {} run {}: preloaded {} items in {:.1} s ({:.0}/s)",
        spec.target, spec.run, pre.ok, pre.elapsed_s, pre.throughput
    );
    result.preload = Some(pre);
    setup::validate(addr, &wire, spec.data).await?;
    let requests = spec.data.requests(&wire);
    for op in spec.ops.iter().copied() {
        let feed = |phase: &str| match op {
            Op::GetItem => Feed::Random(requests.get.clone()),
            Op::Query => Feed::Random(requests.query.clone()),
            _ => Feed::FreshPuts {
                phase: format!("r{}{phase}", spec.run),
            },
        };
        if !spec.warmup.is_zero() {
            load::run_phase(addr, &wire, op, feed("w"), spec.connections, spec.warmup).await?;
        }
        let r =
            load::run_phase(addr, &wire, op, feed("t"), spec.connections, spec.duration).await?;
        eprintln!(
            "  {} run {}: {:<8} {:>9.0} req/s  p50 {:.3} ms  p99 {:.3} ms  errors {}",
            spec.target, spec.run, r.op, r.throughput, r.p50_ms, r.p99_ms, r.errors
        );
        result.ops.push(r);
    }
    Ok(())
}

/// Writes `result` as pretty JSON to `path`, creating parent directories.
pub fn write(result: &RunResult, path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_vec_pretty(result)?)?;
    Ok(())
}
