//! Prometheus metrics of the API: requests, latency, consumed and
//! provisioned capacity, throttles, errors, tables, storage engine.
//!
//! Every series is prefixed `partita_` and every label set is bounded:
//! `operation` comes from the fixed list of operations this server knows
//! (anything else is `other`), `outcome` from [`Outcome`], `exception` from
//! [`ErrorKind`], `reason` from DynamoDB's fixed throttling reasons, `kind`
//! is `read` or `write`. Table names are user data: the first
//! [`MAX_TABLE_LABELS`] distinct names get their own `table` label value,
//! later ones are folded into `other` (index names likewise under a table).
//!
//! Recording never fails a request: a metric that cannot be recorded is
//! skipped.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use partita_model::BillingMode;
use partita_storage::Store;
use prometheus::{
    Counter, CounterVec, Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::capacity::{Consumed, Kind};
use crate::error::{ApiError, ErrorKind};
use crate::Api;

/// Most distinct `table` label values; further tables are `other`.
pub const MAX_TABLE_LABELS: usize = 100;
/// The label value that gathers everything past a cap or unknown.
pub const OTHER: &str = "other";
/// The `table` label of requests that name no table (ListTables, ...).
pub const NO_TABLE: &str = "";

/// Operations with their own `operation` label value.
const OPERATIONS: &[&str] = &[
    "CreateTable",
    "DescribeTable",
    "ListTables",
    "UpdateTable",
    "DeleteTable",
    "TagResource",
    "UntagResource",
    "ListTagsOfResource",
    "UpdateTimeToLive",
    "DescribeTimeToLive",
    "DescribeLimits",
    "DescribeEndpoints",
    "PutItem",
    "GetItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "BatchWriteItem",
    "TransactWriteItems",
    "TransactGetItems",
    "ExecuteStatement",
    "BatchExecuteStatement",
    "ExecuteTransaction",
    "ListStreams",
    "DescribeStream",
    "GetShardIterator",
    "GetRecords",
];

/// How a request ended (the `outcome` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Throttled,
    ClientError,
    ServerError,
}

impl Outcome {
    pub fn of(result: &Result<serde_json::Value, ApiError>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(e) => match e.kind {
                ErrorKind::ProvisionedThroughputExceeded | ErrorKind::Throttling => {
                    Outcome::Throttled
                }
                ErrorKind::InternalServerError => Outcome::ServerError,
                _ => Outcome::ClientError,
            },
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Throttled => "throttled",
            Outcome::ClientError => "client_error",
            Outcome::ServerError => "server_error",
        }
    }
}

/// A monotonic counter mirrored from a cumulative value read elsewhere.
struct Mirrored {
    counter: IntCounter,
    last: Mutex<u64>,
}

impl Mirrored {
    fn set(&self, value: u64) {
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        if value > *last {
            self.counter.inc_by(value - *last);
        }
        *last = value;
    }
}

/// The metrics of one API instance (its own registry).
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    consumed: CounterVec,
    provisioned: GaugeVec,
    throttled: IntCounterVec,
    errors: IntCounterVec,
    table_items: IntGaugeVec,
    table_bytes: IntGaugeVec,
    gsi_pending: IntGaugeVec,
    stream_age: GaugeVec,
    stream_records: IntCounterVec,
    /// Latest GetRecords age per (table label, partition).
    stream_ages: Mutex<HashMap<(String, u32), f64>>,
    tables: IntGauge,
    storage: IntGaugeVec,
    writer_groups: Mirrored,
    writer_commands: Mirrored,
    writer_commits: Mirrored,
    compactions: Mirrored,
    compaction_micros: Mirrored,
    data_dir_bytes: IntGauge,
    table_labels: Mutex<HashSet<String>>,
    /// Resolved series of [`Metrics::observe_request`] by table name (at
    /// most [`MAX_HOT_TABLES`] names; others take the label lookups).
    hot: RwLock<HashMap<String, Arc<HotTable>>>,
}

/// Most table names whose request series are kept resolved.
const MAX_HOT_TABLES: usize = 2 * MAX_TABLE_LABELS;

/// The series one table's requests touch, resolved once: per operation and
/// outcome the request counter and latency histogram, and the table's own
/// (index "") consumed read and write units.
struct HotTable {
    /// Index `operation * OUTCOMES + outcome` (see [`series_slot`]).
    series: Vec<OnceLock<(IntCounter, Histogram)>>,
    /// Read, write.
    consumed: [Counter; 2],
}

const OUTCOMES: usize = 4;

/// The slot of (operation, outcome) in [`HotTable::series`]; operations
/// outside [`OPERATIONS`] share the last one.
fn series_slot(op: &str, outcome: Outcome) -> usize {
    let op = OPERATIONS
        .iter()
        .position(|o| *o == op)
        .unwrap_or(OPERATIONS.len());
    op * OUTCOMES + outcome as usize
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let vec = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|_| unreachable_metric(name));
    let _ = registry.register(Box::new(vec.clone()));
    vec
}

/// Metric definitions are constants checked by the unit tests; a bad one
/// is a programming error caught there, never at request time.
fn unreachable_metric(name: &str) -> ! {
    unreachable!("invalid metric definition {name}")
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = counter_vec(
            &registry,
            "partita_requests_total",
            "API requests by operation, table and outcome.",
            &["operation", "table", "outcome"],
        );
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "partita_request_duration_seconds",
                "API request latency by operation, table and outcome.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["operation", "table", "outcome"],
        )
        .unwrap_or_else(|_| unreachable_metric("partita_request_duration_seconds"));
        let _ = registry.register(Box::new(latency.clone()));
        let consumed = CounterVec::new(
            Opts::new(
                "partita_consumed_capacity_units_total",
                "Consumed read/write capacity units by table and global index (index=\"\" for the table).",
            ),
            &["table", "index", "kind"],
        )
        .unwrap_or_else(|_| unreachable_metric("partita_consumed_capacity_units_total"));
        let _ = registry.register(Box::new(consumed.clone()));
        let provisioned = GaugeVec::new(
            Opts::new(
                "partita_provisioned_capacity_units",
                "Provisioned read/write capacity units per second by table and global index (provisioned tables only).",
            ),
            &["table", "index", "kind"],
        )
        .unwrap_or_else(|_| unreachable_metric("partita_provisioned_capacity_units"));
        let _ = registry.register(Box::new(provisioned.clone()));
        let throttled = counter_vec(
            &registry,
            "partita_throttled_requests_total",
            "Requests rejected for capacity, by operation, table and DynamoDB throttling reason.",
            &["operation", "table", "reason"],
        );
        let errors = counter_vec(
            &registry,
            "partita_errors_total",
            "Error responses by exception type.",
            &["exception"],
        );
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let vec = IntGaugeVec::new(Opts::new(name, help), labels)
                .unwrap_or_else(|_| unreachable_metric(name));
            let _ = registry.register(Box::new(vec.clone()));
            vec
        };
        let table_items = gauge_vec(
            "partita_table_items",
            "Items per table (as of the scrape).",
            &["table"],
        );
        let table_bytes = gauge_vec(
            "partita_table_size_bytes",
            "Table size in bytes (DynamoDB item sizes).",
            &["table"],
        );
        let gsi_pending = gauge_vec(
            "partita_gsi_pending_writes",
            "Base-table writes not yet applied to the table's global secondary indexes (GSI propagation lag).",
            &["table"],
        );
        let stream_age = GaugeVec::new(
            Opts::new(
                "partita_stream_iterator_age_seconds",
                "Stream lag: per partition, the age of the last record its latest GetRecords call returned (0 when caught up); the table's value is the largest, like Kinesis' IteratorAge.",
            ),
            &["table"],
        )
        .unwrap_or_else(|_| unreachable_metric("partita_stream_iterator_age_seconds"));
        let _ = registry.register(Box::new(stream_age.clone()));
        let stream_records = counter_vec(
            &registry,
            "partita_stream_records_read_total",
            "Stream records returned by GetRecords, by table.",
            &["table"],
        );
        let storage = gauge_vec(
            "partita_storage_engine",
            "Storage engine gauges: disk_bytes, journal_bytes, journal_count, write_buffer_bytes, outstanding_flushes (writes stall as these pile up), active_compactions.",
            &["stat"],
        );
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).unwrap_or_else(|_| unreachable_metric(name));
            let _ = registry.register(Box::new(g.clone()));
            g
        };
        let tables = gauge("partita_tables", "Tables on this server.");
        let data_dir_bytes = gauge(
            "partita_data_dir_bytes",
            "Bytes of every file under the data directory.",
        );
        let mirrored = |name: &str, help: &str| {
            let counter = IntCounter::new(name, help).unwrap_or_else(|_| unreachable_metric(name));
            let _ = registry.register(Box::new(counter.clone()));
            Mirrored {
                counter,
                last: Mutex::new(0),
            }
        };
        Metrics {
            writer_groups: mirrored(
                "partita_writer_groups_total",
                "Write groups applied by the group-commit writer.",
            ),
            writer_commands: mirrored(
                "partita_writer_commands_total",
                "Write commands applied by the group-commit writer.",
            ),
            writer_commits: mirrored(
                "partita_writer_commits_total",
                "Engine batches committed by the group-commit writer.",
            ),
            compactions: mirrored(
                "partita_storage_compactions_total",
                "Storage engine compactions completed.",
            ),
            compaction_micros: mirrored(
                "partita_storage_compaction_microseconds_total",
                "Time the storage engine spent compacting.",
            ),
            registry,
            requests,
            latency,
            consumed,
            provisioned,
            throttled,
            errors,
            table_items,
            table_bytes,
            gsi_pending,
            stream_age,
            stream_records,
            stream_ages: Mutex::new(HashMap::new()),
            tables,
            storage,
            data_dir_bytes,
            table_labels: Mutex::new(HashSet::new()),
            hot: RwLock::new(HashMap::new()),
        }
    }

    /// The `table` label for `name`: itself while under the cap, else
    /// `other`.
    pub fn table_label(&self, name: &str) -> String {
        let Ok(mut seen) = self.table_labels.lock() else {
            return OTHER.to_string();
        };
        if seen.contains(name) {
            return name.to_string();
        }
        if seen.len() < MAX_TABLE_LABELS {
            seen.insert(name.to_string());
            return name.to_string();
        }
        OTHER.to_string()
    }

    fn operation_label(op: &str) -> &str {
        OPERATIONS
            .iter()
            .copied()
            .find(|o| *o == op)
            .unwrap_or(OTHER)
    }

    /// Returns the resolved series of `table`, resolving them on first use
    /// (None once [`MAX_HOT_TABLES`] names are resolved).
    fn hot_table(&self, table: &str) -> Option<Arc<HotTable>> {
        if let Some(hot) = self.hot.read().ok()?.get(table) {
            return Some(hot.clone());
        }
        let label = self.table_label(table);
        let consumed = [Kind::Read, Kind::Write].map(|k| {
            self.consumed
                .with_label_values(&[label.as_str(), "", k.label()])
        });
        let mut hot = self.hot.write().ok()?;
        if hot.len() >= MAX_HOT_TABLES {
            return None;
        }
        let entry = hot.entry(table.to_string()).or_insert_with(|| {
            Arc::new(HotTable {
                series: (0..(OPERATIONS.len() + 1) * OUTCOMES)
                    .map(|_| OnceLock::new())
                    .collect(),
                consumed,
            })
        });
        Some(entry.clone())
    }

    /// Records one request: its count, latency, throttles and consumption.
    pub(crate) fn observe_request(
        &self,
        op: &str,
        table: Option<&str>,
        outcome: Outcome,
        elapsed: Duration,
        consumed: &[Consumed],
        throttled: &[&'static str],
    ) {
        // The common case (a request on one table that consumed only the
        // table's own units) without label lookups or allocations.
        if let (Some(name), true) = (
            table,
            throttled.is_empty()
                && consumed
                    .iter()
                    .all(|c| c.index.is_none() && Some(c.table.as_str()) == table),
        ) {
            if let Some(hot) = self.hot_table(name) {
                let (requests, latency) = hot.series[series_slot(op, outcome)].get_or_init(|| {
                    let label = self.table_label(name);
                    let labels = [Self::operation_label(op), label.as_str(), outcome.label()];
                    (
                        self.requests.with_label_values(&labels),
                        self.latency.with_label_values(&labels),
                    )
                });
                requests.inc();
                latency.observe(elapsed.as_secs_f64());
                for c in consumed {
                    if c.units.is_finite() && c.units > 0.0 {
                        hot.consumed[usize::from(c.kind == Kind::Write)].inc_by(c.units);
                    }
                }
                return;
            }
        }
        let op = Self::operation_label(op);
        let table = match table {
            Some(t) => self.table_label(t),
            None => NO_TABLE.to_string(),
        };
        let labels = [op, table.as_str(), outcome.label()];
        self.requests.with_label_values(&labels).inc();
        self.latency
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
        for reason in throttled {
            self.throttled
                .with_label_values(&[op, table.as_str(), reason])
                .inc();
        }
        for c in consumed {
            if !(c.units.is_finite() && c.units > 0.0) {
                continue;
            }
            let t = self.table_label(&c.table);
            let index = match &c.index {
                Some(i) if t != OTHER => i.as_str(),
                Some(_) => OTHER,
                None => "",
            };
            self.consumed
                .with_label_values(&[t.as_str(), index, c.kind.label()])
                .inc_by(c.units);
        }
    }

    /// Records one GetRecords call on the stream of `table`'s `partition`:
    /// how many records it returned and the age of the last one (zero when
    /// none: the reader is at the tip). The table's gauge is the largest
    /// latest age over its partitions.
    pub fn observe_stream_read(
        &self,
        table: &str,
        partition: u32,
        records: usize,
        last_age: Duration,
    ) {
        let label = self.table_label(table);
        if let Ok(mut ages) = self.stream_ages.lock() {
            ages.insert((label.clone(), partition), last_age.as_secs_f64());
            let max = ages
                .iter()
                .filter(|((t, _), _)| *t == label)
                .map(|(_, age)| *age)
                .fold(0.0, f64::max);
            self.stream_age
                .with_label_values(&[label.as_str()])
                .set(max);
        }
        self.stream_records
            .with_label_values(&[label.as_str()])
            .inc_by(records as u64);
    }

    /// Counts an error response by its exception type.
    pub fn record_error(&self, kind: ErrorKind) {
        self.errors.with_label_values(&[kind.short_name()]).inc();
    }

    /// Refreshes the gauges read at scrape time: tables (items, size,
    /// provisioned capacity, GSI lag) from `api`, and the engine, writer and
    /// data directory when a local `store` is given.
    pub fn refresh(&self, api: &Api, store: Option<&Store>, data_dir: Option<&Path>) {
        self.table_items.reset();
        self.table_bytes.reset();
        self.provisioned.reset();
        self.gsi_pending.reset();
        let names = api.store.list_tables();
        self.tables.set(names.len() as i64);
        for name in &names {
            let label = self.table_label(name);
            if label == OTHER {
                continue;
            }
            if let Ok((items, bytes)) = api.store.table_stats(name) {
                self.table_items
                    .with_label_values(&[label.as_str()])
                    .set(items as i64);
                self.table_bytes
                    .with_label_values(&[label.as_str()])
                    .set(bytes as i64);
            }
            if let Some(pending) = store.and_then(|s| s.gsi_pending(name).ok()) {
                self.gsi_pending
                    .with_label_values(&[label.as_str()])
                    .set(pending as i64);
            }
            let Ok(def) = api.store.table(name) else {
                continue;
            };
            if def.billing_mode != BillingMode::Provisioned {
                continue;
            }
            let set = |index: &str, t: &partita_model::ProvisionedThroughput| {
                for (kind, units) in [
                    (Kind::Read, t.read_capacity_units),
                    (Kind::Write, t.write_capacity_units),
                ] {
                    self.provisioned
                        .with_label_values(&[label.as_str(), index, kind.label()])
                        .set(units as f64);
                }
            };
            if let Some(t) = &def.throughput {
                set("", t);
            }
            for gsi in &def.global_indexes {
                if let Some(t) = &gsi.throughput {
                    set(&gsi.name, t);
                }
            }
        }
        if let Some(store) = store {
            let e = store.engine_stats();
            for (stat, value) in [
                ("disk_bytes", e.disk_bytes),
                ("journal_bytes", e.journal_bytes),
                ("journal_count", e.journal_count),
                ("write_buffer_bytes", e.write_buffer_bytes),
                ("outstanding_flushes", e.outstanding_flushes),
                ("active_compactions", e.active_compactions),
            ] {
                self.storage
                    .with_label_values(&[stat])
                    .set(i64::try_from(value).unwrap_or(i64::MAX));
            }
            self.compactions.set(e.compactions_completed);
            self.compaction_micros.set(e.compaction_micros);
            let w = store.writer_stats();
            self.writer_groups.set(w.groups);
            self.writer_commands.set(w.commands);
            self.writer_commits.set(w.commits);
        }
        if let Some(dir) = data_dir {
            self.data_dir_bytes
                .set(i64::try_from(dir_size(dir)).unwrap_or(i64::MAX));
        }
    }

    /// Renders every series in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Bytes of every file under `dir` (unreadable entries count 0).
fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_defined_and_prefixed() {
        let m = Metrics::new();
        m.observe_request(
            "PutItem",
            Some("t"),
            Outcome::Success,
            Duration::from_millis(3),
            &[Consumed {
                table: "t".into(),
                index: None,
                kind: Kind::Write,
                units: 2.0,
            }],
            &["TableWriteProvisionedThroughputExceeded"],
        );
        m.record_error(ErrorKind::Validation);
        let text = m.render();
        assert!(text.contains(
            "partita_requests_total{operation=\"PutItem\",outcome=\"success\",table=\"t\"} 1"
        ));
        assert!(text.contains(
            "partita_consumed_capacity_units_total{index=\"\",kind=\"write\",table=\"t\"} 2"
        ));
        assert!(text.contains("partita_errors_total{exception=\"ValidationException\"} 1"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("partita_"), "{line}");
        }
    }

    #[test]
    fn table_labels_are_capped_and_operations_bounded() {
        let m = Metrics::new();
        for i in 0..MAX_TABLE_LABELS {
            assert_eq!(m.table_label(&format!("t{i}")), format!("t{i}"));
        }
        assert_eq!(m.table_label("one_too_many"), OTHER);
        assert_eq!(m.table_label("t0"), "t0");
        assert_eq!(Metrics::operation_label("Bogus"), OTHER);
        assert_eq!(Metrics::operation_label("Query"), "Query");
    }
}
