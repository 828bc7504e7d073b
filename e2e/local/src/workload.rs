//! A writer and a reader using the Orders table through the gateway pods
//! while a scenario changes the cluster under them, and the
//! acknowledged-writes checker run on what they saw.
//!
//! - The writer puts items `pk = W#<i mod 16>`, `sk = <i>` one after
//!   another; a PutItem answered 200 is acknowledged (its time is kept),
//!   any other outcome is unknown (it may or may not have been applied).
//! - The reader reads the latest acknowledged item with a strongly
//!   consistent GetItem; an answer without the item is a lost write.
//! - [`Report::check`] reads every acknowledged item back (strongly
//!   consistent Queries) and fails when one is missing or when the writer
//!   made no progress for longer than allowed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use parking_lot::Mutex;
use partita_operator::definition::{CallError, Credentials, DataPlane};
use serde_json::{json, Value};

/// The table the workload uses (the sample Orders table's key schema).
const TABLE: &str = "Orders";
/// Partition keys the writes spread over.
const SPREAD: u64 = 16;
/// Pause between two writes (and two reads): about 40 of each a second.
const PACE: Duration = Duration::from_millis(25);

/// What the writer and reader saw.
#[derive(Debug, Default)]
pub struct Report {
    /// Acknowledged writes: (index, milliseconds since the workload began).
    pub acknowledged: Vec<(u64, u64)>,
    pub failed_writes: u64,
    pub reads: u64,
    pub failed_reads: u64,
    /// Reads that did not find an acknowledged write.
    pub lost: Vec<String>,
    /// How long the workload ran, in milliseconds.
    pub ran_ms: u64,
}

/// A running writer and reader.
pub struct Workload {
    stop: Arc<AtomicBool>,
    report: Arc<Mutex<Report>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    client: DataPlane,
    credentials: Credentials,
    started: Instant,
}

fn sk(index: u64) -> String {
    format!("{index:010}")
}

fn pk(index: u64) -> String {
    format!("W#{}", index % SPREAD)
}

impl Workload {
    /// Starts writing and reading through `client` as `credentials`.
    pub fn start(client: DataPlane, credentials: Credentials) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let report = Arc::new(Mutex::new(Report::default()));
        let started = Instant::now();
        // The latest acknowledged index + 1 (0: none yet).
        let latest = Arc::new(AtomicU64::new(0));
        let writer = {
            let (stop, report, latest) = (stop.clone(), report.clone(), latest.clone());
            let (client, credentials) = (client.clone(), credentials.clone());
            tokio::spawn(async move {
                let mut index = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let item = json!({"TableName": TABLE, "Item": {
                        "pk": {"S": pk(index)}, "sk": {"S": sk(index)},
                        "n": {"N": index.to_string()}}});
                    let answer = client.call(&credentials, "PutItem", &item).await;
                    let at = started.elapsed().as_millis() as u64;
                    match answer {
                        Ok(_) => {
                            report.lock().acknowledged.push((index, at));
                            latest.store(index + 1, Ordering::Release);
                        }
                        Err(e) => {
                            tracing::debug!(index, error = %e, "write not acknowledged");
                            report.lock().failed_writes += 1;
                        }
                    }
                    index += 1;
                    tokio::time::sleep(PACE).await;
                }
            })
        };
        let reader = {
            let (stop, report) = (stop.clone(), report.clone());
            let (client, credentials) = (client.clone(), credentials.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(PACE).await;
                    let Some(index) = latest.load(Ordering::Acquire).checked_sub(1) else {
                        continue;
                    };
                    let get = json!({"TableName": TABLE, "ConsistentRead": true,
                        "Key": {"pk": {"S": pk(index)}, "sk": {"S": sk(index)}}});
                    match client.call(&credentials, "GetItem", &get).await {
                        Ok(answer) => {
                            let mut report = report.lock();
                            report.reads += 1;
                            if answer["Item"]["n"]["N"].as_str() != Some(index.to_string().as_str())
                            {
                                report.lost.push(format!(
                                    "a consistent read of acknowledged write {index} answered {answer}"
                                ));
                            }
                        }
                        Err(_) => report.lock().failed_reads += 1,
                    }
                }
            })
        };
        Workload {
            stop,
            report,
            tasks: vec![writer, reader],
            client,
            credentials,
            started,
        }
    }

    /// Milliseconds since the workload began (to mark when a change began).
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Waits until at least `count` writes were acknowledged after
    /// `since_ms`, or fails after `timeout`.
    pub async fn wait_progress(
        &self,
        since_ms: u64,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let done = {
                let report = self.report.lock();
                report
                    .acknowledged
                    .iter()
                    .filter(|(_, at)| *at >= since_ms)
                    .count()
            };
            if done >= count {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("only {done} writes acknowledged in {timeout:?} (wanted {count})");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the writer and reader and checks what they saw: every
    /// acknowledged write is read back, no read missed one, and between
    /// `window` (milliseconds since the start) no gap between acknowledged
    /// writes was longer than `max_gap`. Returns the report.
    pub async fn stop_and_check(
        self,
        window: (u64, u64),
        max_gap: Duration,
    ) -> anyhow::Result<Report> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let _ = task.await;
        }
        let mut report = std::mem::take(&mut *self.report.lock());
        report.ran_ms = self.started.elapsed().as_millis() as u64;
        if report.acknowledged.is_empty() {
            bail!("no write was acknowledged: {report:?}");
        }
        if let Some(lost) = report.lost.first() {
            bail!(
                "{} reads missed acknowledged writes; first: {lost}",
                report.lost.len()
            );
        }
        let found = read_back(&self.client, &self.credentials).await?;
        let missing: Vec<u64> = report
            .acknowledged
            .iter()
            .map(|(i, _)| *i)
            .filter(|i| !found.contains(i))
            .collect();
        if !missing.is_empty() {
            bail!(
                "{} of {} acknowledged writes are gone: {:?}",
                missing.len(),
                report.acknowledged.len(),
                &missing[..missing.len().min(20)]
            );
        }
        let gap = longest_gap(&report.acknowledged, window);
        if gap > max_gap.as_millis() as u64 {
            bail!(
                "no write was acknowledged for {gap} ms between {} and {} ms (at most {max_gap:?} allowed); {} acknowledged, {} failed",
                window.0,
                window.1,
                report.acknowledged.len(),
                report.failed_writes
            );
        }
        Ok(report)
    }
}

/// The longest time in `window` (ms) with no acknowledged write: between
/// two consecutive acknowledgements, or from the window's start to the
/// first and from the last to its end.
pub fn longest_gap(acknowledged: &[(u64, u64)], window: (u64, u64)) -> u64 {
    let mut times: Vec<u64> = acknowledged
        .iter()
        .map(|(_, at)| *at)
        .filter(|at| *at >= window.0 && *at <= window.1)
        .collect();
    times.sort_unstable();
    let mut previous = window.0;
    let mut longest = 0;
    for at in times.into_iter().chain(std::iter::once(window.1)) {
        longest = longest.max(at - previous);
        previous = at;
    }
    longest
}

/// Every written index the table holds (strongly consistent Queries of
/// each partition key, every page).
async fn read_back(
    client: &DataPlane,
    credentials: &Credentials,
) -> anyhow::Result<std::collections::BTreeSet<u64>> {
    let mut found = std::collections::BTreeSet::new();
    for key in 0..SPREAD {
        let mut start: Option<Value> = None;
        loop {
            let mut query = json!({"TableName": TABLE, "ConsistentRead": true,
                "KeyConditionExpression": "pk = :pk",
                "ExpressionAttributeValues": {":pk": {"S": pk(key)}}});
            if let Some(start) = &start {
                query["ExclusiveStartKey"] = start.clone();
            }
            let page = call_retrying(client, credentials, "Query", &query).await?;
            for item in page["Items"].as_array().into_iter().flatten() {
                if let Some(n) = item["n"]["N"].as_str().and_then(|n| n.parse().ok()) {
                    found.insert(n);
                }
            }
            match page.get("LastEvaluatedKey") {
                Some(next) if !next.is_null() => start = Some(next.clone()),
                _ => break,
            }
        }
    }
    Ok(found)
}

/// A call retried for up to 30 s while the gateway is unreachable or
/// answers a retryable error.
async fn call_retrying(
    client: &DataPlane,
    credentials: &Credentials,
    operation: &str,
    body: &Value,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.call(credentials, operation, body).await {
            Ok(answer) => return Ok(answer),
            Err(e @ CallError::Refused { .. }) if !retryable(&e) => {
                bail!("{operation}: {e}")
            }
            Err(e) if Instant::now() > deadline => bail!("{operation}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

fn retryable(error: &CallError) -> bool {
    match error {
        CallError::Unreachable(_) => true,
        CallError::Refused { kind, .. } => {
            kind.starts_with("HTTP 5")
                || kind.contains("Throttl")
                || kind == "InternalServerError"
                || kind == "ServiceUnavailable"
                || kind == "ProvisionedThroughputExceededException"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::longest_gap;

    #[test]
    fn the_longest_gap_counts_the_window_edges() {
        let acked = [(0, 100), (1, 150), (2, 900), (3, 1000)];
        assert_eq!(longest_gap(&acked, (0, 1000)), 750);
        assert_eq!(longest_gap(&acked, (0, 3000)), 2000);
        assert_eq!(longest_gap(&acked, (950, 1000)), 50);
        assert_eq!(longest_gap(&[], (10, 30)), 20);
    }
}
