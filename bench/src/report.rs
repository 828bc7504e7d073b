//! Aggregates the run files of one benchmark session: per operation and
//! target, the median over runs of throughput, p50 and p99, then the ratio of
//! the subject (`partita`) to the best peer. Prints a table and writes
//! `summary.json` next to the run files.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::run::{RunResult, TIMED_OPS};

/// The throughput goal from the issue, printed for orientation, not asserted.
const GOAL_RATIO: f64 = 2.0;
/// The p99 goal in milliseconds, printed for orientation, not asserted.
const GOAL_P99_MS: f64 = 2.0;

/// Median figures of one target for one operation.
#[derive(Clone, Debug, Serialize)]
pub struct TargetSummary {
    pub target: String,
    pub storage: String,
    /// Runs that produced a result for this operation.
    pub runs: usize,
    /// Runs attempted (including failed ones).
    pub attempted: usize,
    pub errors: u64,
    pub throughput: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub all_throughputs: Vec<f64>,
    /// Why runs failed, if any did.
    pub failures: Vec<String>,
}

/// Per-operation comparison.
#[derive(Clone, Debug, Serialize)]
pub struct OpSummary {
    pub op: String,
    pub targets: Vec<TargetSummary>,
    pub best_peer: Option<String>,
    /// Subject throughput / best peer throughput.
    pub ratio: Option<f64>,
}

/// Reads every `run-*.json` in `dir` (and `skip-*.json` records).
pub fn load_runs(dir: &Path) -> anyhow::Result<Vec<RunResult>> {
    let mut runs = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            (name.starts_with("run-") || name.starts_with("skip-")) && name.ends_with(".json")
        })
        .collect();
    paths.sort();
    for p in paths {
        let text = std::fs::read(&p)?;
        let r: RunResult =
            serde_json::from_slice(&text).with_context(|| format!("parsing {}", p.display()))?;
        runs.push(r);
    }
    runs.sort_by_key(|r| r.started_unix_s);
    Ok(runs)
}

/// Median of `v` (mean of the middle two for an even count); 0 when empty.
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Builds the per-operation summaries; targets keep their first-seen order.
pub fn summarize(runs: &[RunResult], subject: &str) -> Vec<OpSummary> {
    let mut order: Vec<String> = Vec::new();
    let mut by_target: BTreeMap<String, Vec<&RunResult>> = BTreeMap::new();
    for r in runs {
        if !order.contains(&r.target) {
            order.push(r.target.clone());
        }
        by_target.entry(r.target.clone()).or_default().push(r);
    }
    // The subject first, peers after it.
    order.sort_by_key(|t| t != subject);
    let mut out = Vec::new();
    for op in TIMED_OPS {
        let mut targets = Vec::new();
        for t in &order {
            let rs = &by_target[t];
            let phases: Vec<_> = rs
                .iter()
                .filter_map(|r| r.ops.iter().find(|p| p.op == op.name()))
                .collect();
            let tp: Vec<f64> = phases.iter().map(|p| p.throughput).collect();
            let p50: Vec<f64> = phases.iter().map(|p| p.p50_ms).collect();
            let p99: Vec<f64> = phases.iter().map(|p| p.p99_ms).collect();
            let mut failures: Vec<String> = rs.iter().filter_map(|r| r.failure.clone()).collect();
            failures.dedup();
            targets.push(TargetSummary {
                target: t.clone(),
                storage: rs.first().map(|r| r.storage.clone()).unwrap_or_default(),
                runs: phases.len(),
                attempted: rs.len(),
                errors: phases.iter().map(|p| p.errors).sum(),
                throughput: median(&tp),
                p50_ms: median(&p50),
                p99_ms: median(&p99),
                all_throughputs: tp,
                failures,
            });
        }
        let best = targets
            .iter()
            .filter(|t| t.target != subject && !is_variant(&t.target, subject) && t.runs > 0)
            .max_by(|a, b| a.throughput.total_cmp(&b.throughput));
        let subj = targets.iter().find(|t| t.target == subject && t.runs > 0);
        let ratio = match (subj, best) {
            (Some(s), Some(b)) if b.throughput > 0.0 => Some(s.throughput / b.throughput),
            _ => None,
        };
        out.push(OpSummary {
            op: op.name().to_string(),
            best_peer: best.map(|b| b.target.clone()),
            ratio,
            targets,
        });
    }
    out
}

/// True for a variant of the subject (`partita-cluster-2p` of `partita`):
/// compared with the subject, not counted as a peer.
fn is_variant(target: &str, subject: &str) -> bool {
    target
        .strip_prefix(subject)
        .is_some_and(|rest| rest.starts_with('-'))
}

/// Renders the summaries as plain-text tables.
pub fn render(summaries: &[OpSummary], subject: &str, header: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{header}");
    for op in summaries {
        let _ = writeln!(s);
        let _ = writeln!(s, "== {} ==", op.op);
        let _ = writeln!(
            s,
            "{:<16} {:<34} {:>10} {:>9} {:>9} {:>5} {:>7}",
            "target", "storage", "req/s", "p50 ms", "p99 ms", "runs", "errors"
        );
        for t in &op.targets {
            if t.runs == 0 {
                let why = t.failures.first().map_or("no result", String::as_str);
                let _ = writeln!(
                    s,
                    "{:<16} {:<34} not measured: {}",
                    t.target, t.storage, why
                );
                continue;
            }
            let flag = if t.errors > 0 {
                "  <- run had errors"
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "{:<16} {:<34} {:>10.0} {:>9.3} {:>9.3} {:>5} {:>7}{flag}",
                t.target,
                t.storage,
                t.throughput,
                t.p50_ms,
                t.p99_ms,
                format!("{}/{}", t.runs, t.attempted),
                t.errors
            );
        }
        match (&op.best_peer, op.ratio) {
            (Some(best), Some(ratio)) => {
                let p99 = op
                    .targets
                    .iter()
                    .find(|t| t.target == subject)
                    .map_or(0.0, |t| t.p99_ms);
                let _ = writeln!(
                    s,
                    "{subject} / best peer ({best}): {ratio:.2}x throughput \
                     (goal >= {GOAL_RATIO}x: {}), {subject} p99 {p99:.3} ms (goal < {GOAL_P99_MS} ms: {})",
                    if ratio >= GOAL_RATIO { "met" } else { "not met" },
                    if p99 < GOAL_P99_MS { "met" } else { "not met" },
                );
            }
            (Some(best), None) => {
                let _ = writeln!(
                    s,
                    "{subject} / best peer ({best}): n/a ({subject} not measured)"
                );
            }
            _ => {
                let _ = writeln!(s, "no peer measured");
            }
        }
        let base = op
            .targets
            .iter()
            .find(|t| t.target == subject && t.runs > 0);
        for v in op
            .targets
            .iter()
            .filter(|t| is_variant(&t.target, subject) && t.runs > 0)
        {
            match base {
                Some(b) if b.throughput > 0.0 => {
                    let _ = writeln!(
                        s,
                        "{} / {subject}: {:.2}x throughput, p50 {:.3} vs {:.3} ms, p99 {:.3} vs {:.3} ms",
                        v.target,
                        v.throughput / b.throughput,
                        v.p50_ms,
                        b.p50_ms,
                        v.p99_ms,
                        b.p99_ms
                    );
                }
                _ => {
                    let _ = writeln!(s, "{} / {subject}: n/a ({subject} not measured)", v.target);
                }
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::PhaseResult;

    fn run(target: &str, n: u32, tps: [f64; 3]) -> RunResult {
        RunResult {
            target: target.into(),
            storage: "mem".into(),
            run: n,
            connections: 16,
            duration_s: 1.0,
            warmup_s: 0.0,
            get_keys: 1,
            query_keys: 1,
            started_unix_s: u64::from(n),
            preload: None,
            ops: TIMED_OPS
                .iter()
                .zip(tps)
                .map(|(op, t)| PhaseResult {
                    op: op.name().into(),
                    ok: 1,
                    throughput: t,
                    p50_ms: 1.0,
                    p99_ms: 1.5,
                    ..PhaseResult::default()
                })
                .collect(),
            failure: None,
        }
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn ratio_is_subject_over_best_peer_median() {
        let runs = vec![
            run("a", 1, [10.0, 10.0, 10.0]),
            run("partita", 1, [40.0, 5.0, 1.0]),
            run("a", 2, [30.0, 30.0, 30.0]),
            run("b", 1, [20.0, 1.0, 1.0]),
            run("a", 3, [20.0, 20.0, 20.0]),
        ];
        let s = summarize(&runs, "partita");
        assert_eq!(s[0].targets[0].target, "partita");
        // GetItem: a's median is 20, b's 20 too; ratio 40/20.
        assert_eq!(s[0].ratio, Some(2.0));
        // Query: best peer a (20), partita 5.
        assert_eq!(s[1].best_peer.as_deref(), Some("a"));
        assert_eq!(s[1].ratio, Some(0.25));
        let text = render(&s, "partita", "h");
        assert!(text.contains("0.25x throughput"));
    }

    #[test]
    fn variants_are_compared_with_the_subject_not_counted_as_peers() {
        let runs = vec![
            run("partita", 1, [40.0, 10.0, 8.0]),
            run("partita-cluster-1p", 1, [20.0, 5.0, 2.0]),
            run("a", 1, [10.0, 2.0, 4.0]),
        ];
        let s = summarize(&runs, "partita");
        assert_eq!(s[0].best_peer.as_deref(), Some("a"));
        assert_eq!(s[0].ratio, Some(4.0));
        let text = render(&s, "partita", "h");
        assert!(
            text.contains("partita-cluster-1p / partita: 0.50x throughput"),
            "{text}"
        );
    }

    #[test]
    fn missing_subject_gives_no_ratio() {
        let mut skipped = run("partita", 1, [0.0; 3]);
        skipped.ops.clear();
        skipped.failure = Some("did not start".into());
        let runs = vec![skipped, run("a", 1, [1.0, 1.0, 1.0])];
        let s = summarize(&runs, "partita");
        assert_eq!(s[2].ratio, None);
        let text = render(&s, "partita", "h");
        assert!(text.contains("not measured: did not start"));
    }
}
