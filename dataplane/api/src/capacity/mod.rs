//! Capacity: consumed units of every request, provisioned and on-demand
//! limits, throttling, and the per-request usage that metrics report.
//!
//! # How a request is metered
//!
//! 1. **Plan** ([`plan`]): before anything runs, the request is read for the
//!    tables, global indexes and partitions it touches (the partition of a
//!    key is `range_index(partition_hash(pk), partitions)`, as storage routes
//!    it; a Scan touches every partition).
//! 2. **Admit**: every limited resource the plan touches must have credit
//!    (see the rules below). If one has none, the request fails with
//!    ProvisionedThroughputExceededException (ThrottlingException for an
//!    on-demand maximum or the control-plane rate) carrying DynamoDB's
//!    `ThrottlingReasons`, and **nothing is applied**: the operation never
//!    runs. Admitted requests reserve a small estimate at once (so
//!    concurrent requests cannot all slip through on the same credit).
//! 3. **Run**: the operation computes its exact consumption with DynamoDB's
//!    arithmetic (1 write unit per started KB of the larger of the old and
//!    new item, 1 read unit per started 4 KB — half for eventually
//!    consistent reads —, Query/Scan rounded once over all items read,
//!    BatchGetItem rounded per item, transactions twice). The single-item
//!    operations ([`reports_directly`]) hand their units to
//!    [`report_units`]; every other operation runs with
//!    ReturnConsumedCapacity forced to INDEXES when the caller did not ask
//!    for it, and its units are read back from the response. Writes that
//!    change global index entries add index units ([`indexes`]), observed
//!    on the storage outcome.
//! 4. **Settle**: the reservation is replaced by the actual units, charged
//!    to the partitions the plan found; the response's ConsumedCapacity gets
//!    the index units (and is removed again when the caller did not ask).
//!    A failed conditional write or cancelled transaction keeps its
//!    reservation as its charge; any other failure is refunded.
//!
//! # The rules
//!
//! - **Provisioned** (table, and each global index with its own
//!   throughput): a resource of `U` units per second with `P` partitions
//!   (the table's partition count; a global index's own count, one per
//!   3000 RCU / 1000 WCU) gives each partition a bucket earning `U / P` per
//!   second. A bucket banks unused credit up to **300 seconds** of its
//!   share (burst) and starts full (a new table, or a table switched to
//!   provisioned mode, may burst at once). A request is admitted when its
//!   partition has positive credit; the actual charge may take the bucket
//!   below zero, a debt repaid before the partition admits again. A base
//!   table write also needs credit on every provisioned global index of the
//!   table (the partition of the index entry is unknown before the write).
//! - **Adaptive capacity**: a partition without credit may **borrow the
//!   unused credit of the other partitions** of the same table (or index):
//!   it is admitted while the sum of its siblings' positive credit is
//!   positive, and its charge is taken from its own credit first, then from
//!   the siblings' credit, largest first. So a hot key range can use the
//!   whole table's capacity, and the table as a whole never exceeds its
//!   provisioned rate plus its banked burst. Whatever it borrows, one
//!   partition never serves more than 3000 read units or 1000 write units
//!   per second (a one-second bucket); beyond that requests get the
//!   `KeyRangeThroughputExceeded` reason.
//! - **On-demand**: no limit, unless OnDemandThroughput sets
//!   MaxReadRequestUnits / MaxWriteRequestUnits: then the table admits while
//!   it has credit in a bucket earning that many units per second and
//!   holding at most one second (no burst); beyond, ThrottlingException
//!   with `Table{Read,Write}MaxOnDemandThroughputExceeded`.
//! - **Control plane** (CreateTable, UpdateTable, DescribeTable, ...): one
//!   token bucket for the whole server, `control_plane_rate` operations per
//!   second with 10 seconds of burst; beyond, ThrottlingException.
//! - **Live changes**: the limits are read from the table definition on
//!   every request, so UpdateTable's new throughput (or billing mode) applies
//!   to the next request; credit is kept, clamped to the new burst.
//!
//! Time is the server's monotonic clock multiplied by `clock_scale` (1 in
//! production; the hidden `--capacity-clock-scale` flag speeds it up for
//! tests).

mod buckets;
pub mod indexes;
mod plan;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use partita_model::{BillingMode, Item, TableDefinition};
use serde_json::{json, Map as JsonMap, Value};

pub use buckets::Kind;
use buckets::{Buckets, Denial, Limit, RateLimiter, ResourceKey};
pub use indexes::MeteredBackend;
use plan::{Plan, Target};

use crate::error::{ApiError, ErrorKind};
use crate::request::Request;
use crate::Api;

/// Settings of capacity enforcement.
#[derive(Clone, Copy, Debug)]
pub struct CapacityConfig {
    /// Multiplies the clock (tests only; 1 in production).
    pub clock_scale: f64,
    /// Control-plane operations per second (whole server).
    pub control_plane_rate: f64,
}

impl Default for CapacityConfig {
    fn default() -> Self {
        CapacityConfig {
            clock_scale: 1.0,
            control_plane_rate: 100.0,
        }
    }
}

/// Capacity state of one server: the buckets of every limited resource.
pub struct Capacity {
    config: CapacityConfig,
    started: Instant,
    buckets: Mutex<Buckets>,
    control: Mutex<RateLimiter>,
}

impl Default for Capacity {
    fn default() -> Self {
        Capacity::new(CapacityConfig::default())
    }
}

impl Capacity {
    pub fn new(config: CapacityConfig) -> Capacity {
        let rate = config.control_plane_rate.max(0.0);
        Capacity {
            config,
            started: Instant::now(),
            buckets: Mutex::new(Buckets::default()),
            control: Mutex::new(RateLimiter::new(rate, rate * 10.0, 0.0)),
        }
    }

    /// Seconds on the (scaled) capacity clock.
    fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * self.config.clock_scale.max(0.0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buckets> {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Write units for `bytes` (1 per started KB, at least 1).
pub(crate) fn write_estimate(bytes: usize) -> f64 {
    bytes.div_ceil(1024).max(1) as f64
}

/// What one request consumed, by resource.
#[derive(Clone, Debug, PartialEq)]
pub struct Consumed {
    pub table: String,
    /// A global secondary index, or None for the table (local secondary
    /// indexes use the table's units).
    pub index: Option<String>,
    pub kind: Kind,
    pub units: f64,
}

/// The usage of the request being run (a tokio task-local).
#[derive(Default)]
struct Usage {
    defs: HashMap<String, Arc<TableDefinition>>,
    /// PutItem's item as the plan decoded it (see [`take_planned_item`]).
    item: Option<Item>,
    index_writes: Vec<indexes::IndexCharge>,
    /// Units reported by an operation that [`reports_directly`]: (table,
    /// kind, units).
    reported: Vec<(String, Kind, f64)>,
}

tokio::task_local! {
    static USAGE: RefCell<Usage>;
}

/// Records the global index write charges of a write on `table` into the
/// current request's usage (nothing outside a metered request). `compute`
/// gets the table's definition; `load` fetches it when the plan did not.
pub(crate) fn record_index_writes<C, L>(table: &str, compute: C, load: L)
where
    C: Fn(&TableDefinition) -> Vec<indexes::IndexCharge>,
    L: FnOnce() -> Option<TableDefinition>,
{
    let known = USAGE.try_with(|u| {
        let mut u = u.borrow_mut();
        match u.defs.get(table) {
            Some(def) => {
                let charges = compute(def);
                u.index_writes.extend(charges);
                true
            }
            None => false,
        }
    });
    if known == Ok(false) {
        if let Some(def) = load() {
            let charges = compute(&def);
            let _ = USAGE.try_with(|u| {
                let mut u = u.borrow_mut();
                u.index_writes.extend(charges);
                u.defs.insert(table.to_string(), Arc::new(def));
            });
        }
    }
}

/// Returns the definition of `table` the current request's plan loaded
/// (None outside a metered request or for a table it did not load): the
/// operation need not load (and copy) it again.
pub(crate) fn planned_def(table: &str) -> Option<Arc<TableDefinition>> {
    USAGE
        .try_with(|u| u.borrow().defs.get(table).cloned())
        .ok()
        .flatten()
}

/// Takes PutItem's `Item` as the plan decoded it (None when it could not
/// be decoded, or outside a metered request): the operation need not
/// decode it again.
pub(crate) fn take_planned_item() -> Option<Item> {
    USAGE
        .try_with(|u| u.borrow_mut().item.take())
        .ok()
        .flatten()
}

/// Returns true for the operations that report their consumed units with
/// [`report_units`] (exactly once per successful request), so their
/// requests run as the caller sent them: no forced ReturnConsumedCapacity,
/// no ConsumedCapacity rendered only to be read back and removed.
fn reports_directly(op: &str) -> bool {
    matches!(op, "PutItem" | "GetItem" | "UpdateItem" | "DeleteItem")
}

/// Reports the table units a single-item operation consumed (see
/// [`reports_directly`]); nothing outside a metered request.
pub(crate) fn report_units(table: &str, units: f64, write: bool) {
    let kind = if write { Kind::Write } else { Kind::Read };
    let _ = USAGE.try_with(|u| {
        u.borrow_mut()
            .reported
            .push((table.to_string(), kind, units))
    });
}

/// The result of a metered operation: its response and what it consumed.
pub(crate) struct Metered {
    pub result: Result<Value, ApiError>,
    /// The first table the request names (for metrics labels).
    pub table: Option<String>,
    pub consumed: Vec<Consumed>,
    /// The throttling reasons when the request was throttled.
    pub throttled: Vec<&'static str>,
}

/// Runs operation `op` with capacity admission, accounting and settlement
/// (see the module docs).
pub(crate) async fn run(api: &Api, op: &str, mut req: Request) -> Metered {
    let mut plan = plan::plan(api, op, &req);
    let table = plan.tables.first().cloned();
    let capacity = &api.capacity;
    if plan.control_plane {
        let now = capacity.now();
        let allowed = capacity
            .control
            .lock()
            .map(|mut c| c.try_take(now))
            .unwrap_or(true);
        if !allowed {
            return Metered {
                result: Err(ApiError::new(
                    ErrorKind::Throttling,
                    "Rate of requests exceeds the allowed throughput.",
                )),
                table,
                consumed: Vec::new(),
                throttled: vec!["ControlPlaneRateExceeded"],
            };
        }
    }
    let reservation = match admit(api, &plan) {
        Ok(r) => r,
        Err((error, reasons)) => {
            return Metered {
                result: Err(error),
                table,
                consumed: Vec::new(),
                throttled: reasons,
            }
        }
    };
    let direct = reports_directly(op);
    let forced = !direct && force_consumed_capacity(&mut req);
    let usage = Usage {
        defs: std::mem::take(&mut plan.defs),
        item: plan.item.take(),
        index_writes: Vec::new(),
        reported: Vec::new(),
    };
    let (mut result, usage) = USAGE
        .scope(RefCell::new(usage), async {
            let result = crate::ops::dispatch(api, op, req).await;
            let usage = USAGE.with(|u| std::mem::take(&mut *u.borrow_mut()));
            (result, usage)
        })
        .await;
    plan.defs = usage.defs;
    let consumed = match &mut result {
        Ok(response) => {
            let consumed = if direct {
                consumed_from_reports(&usage.reported, &plan, &usage.index_writes)
            } else {
                consumed_from_response(response, &plan, &usage.index_writes)
            };
            complete_response(response, &consumed, &usage.index_writes, &plan, forced);
            consumed
        }
        Err(e)
            if matches!(
                e.kind,
                ErrorKind::ConditionalCheckFailed | ErrorKind::TransactionCanceled
            ) =>
        {
            // The reservation stands as the charge.
            reservation
                .iter()
                .map(|r| Consumed {
                    table: r.target.table.clone(),
                    index: r.target.index.clone(),
                    kind: r.target.kind,
                    units: r.target.estimate,
                })
                .collect()
        }
        Err(_) => Vec::new(),
    };
    settle(
        api,
        &plan,
        &reservation,
        &consumed,
        &usage.index_writes,
        &result,
    );
    if result.is_ok() {
        if let Some(t) = &table {
            match op {
                "DeleteTable" => capacity.lock().retain_table(t, None),
                // New limits apply from now on, not from the next request.
                "UpdateTable" => {
                    if let Ok(def) = api.store.table(t) {
                        apply_limits(capacity, &def);
                    }
                }
                _ => {}
            }
        }
    }
    Metered {
        result,
        table,
        consumed,
        throttled: Vec::new(),
    }
}

/// Applies the limits of `def` to the table's existing buckets at once
/// (credit earned so far is settled at the old rate).
fn apply_limits(capacity: &Capacity, def: &TableDefinition) {
    let now = capacity.now();
    let mut buckets = capacity.lock();
    for key in buckets.keys_of(&def.name) {
        match limit_of(def, key.index.as_deref(), key.kind) {
            Some(limit) if key.table_id == def.table_id => {
                buckets.resource(&key, limit, now);
            }
            _ => buckets.remove(&key),
        }
    }
}

/// Asks the operation for INDEXES consumed capacity when the caller asked
/// for none; returns true when it did (the member is removed again from
/// the response).
fn force_consumed_capacity(req: &mut Request) -> bool {
    let current = req.as_object().get("ReturnConsumedCapacity");
    let absent = match current {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s == "NONE",
        Some(_) => false,
    };
    if absent {
        req.set_member("ReturnConsumedCapacity", Value::String("INDEXES".into()));
    }
    absent
}

/// One reserved estimate.
struct Reserved {
    target: Target,
    key: Option<ResourceKey>,
}

/// The limits of a table's or index's `kind` capacity now (None: unlimited).
fn limit_of(def: &TableDefinition, index: Option<&str>, kind: Kind) -> Option<Limit> {
    let pick = |t: &partita_model::ProvisionedThroughput| match kind {
        Kind::Read => t.read_capacity_units,
        Kind::Write => t.write_capacity_units,
    };
    match def.billing_mode {
        BillingMode::Provisioned => match index {
            None => def.throughput.as_ref().map(|t| Limit::Provisioned {
                units: pick(t).max(0) as f64,
                partitions: def.partitions.max(1),
            }),
            Some(name) => {
                let gsi = def.global_indexes.iter().find(|g| g.name == name)?;
                gsi.throughput.as_ref().map(|t| Limit::Provisioned {
                    units: pick(t).max(0) as f64,
                    partitions: index_partitions(t),
                })
            }
        },
        BillingMode::PayPerRequest => {
            if index.is_some() {
                return None;
            }
            let od = def.on_demand?;
            let max = match kind {
                Kind::Read => od.max_read_request_units,
                Kind::Write => od.max_write_request_units,
            }?;
            (max > 0).then_some(Limit::OnDemandMax { units: max as f64 })
        }
    }
}

/// The partition count storage gives a global index of throughput `t`.
pub(crate) fn index_partitions(t: &partita_model::ProvisionedThroughput) -> u32 {
    let reads = (t.read_capacity_units.max(0) as u64).div_ceil(3000);
    let writes = (t.write_capacity_units.max(0) as u64).div_ceil(1000);
    u32::try_from(reads.max(writes).max(1)).unwrap_or(u32::MAX)
}

fn key_of(def: &TableDefinition, index: Option<&str>, kind: Kind) -> ResourceKey {
    ResourceKey {
        table: def.name.clone(),
        table_id: def.table_id.clone(),
        index: index.map(str::to_string),
        kind,
    }
}

type Refusal = (ApiError, Vec<&'static str>);

/// Checks every resource the plan touches, then reserves the estimates.
fn admit(api: &Api, plan: &Plan) -> Result<Vec<Reserved>, Refusal> {
    if plan.targets.is_empty() {
        return Ok(Vec::new());
    }
    let capacity = &api.capacity;
    let now = capacity.now();
    let mut buckets = capacity.lock();
    let mut denials: Vec<(String, Option<String>, Kind, Denial)> = Vec::new();
    let mut reserved = Vec::with_capacity(plan.targets.len());
    for target in &plan.targets {
        let Some(def) = plan.defs.get(&target.table) else {
            continue;
        };
        let index = target.index.as_deref();
        let key = match limit_of(def, index, target.kind) {
            Some(limit) => {
                let key = key_of(def, index, target.kind);
                let r = buckets.resource(&key, limit, now);
                let partition = match limit {
                    Limit::Provisioned { .. } if index.is_some() => None,
                    _ => target.partition,
                };
                if let Err(d) = r.admit(partition, now) {
                    denials.push((def.name.clone(), target.index.clone(), target.kind, d));
                }
                Some(key)
            }
            None => {
                buckets.remove(&key_of(def, index, target.kind));
                None
            }
        };
        // A table write also writes the table's provisioned global indexes.
        if target.kind == Kind::Write && index.is_none() {
            for gsi in &def.global_indexes {
                if let Some(limit) = limit_of(def, Some(&gsi.name), Kind::Write) {
                    let gkey = key_of(def, Some(&gsi.name), Kind::Write);
                    if let Err(d) = buckets.resource(&gkey, limit, now).admit(None, now) {
                        denials.push((def.name.clone(), Some(gsi.name.clone()), Kind::Write, d));
                    }
                }
            }
        }
        reserved.push(Reserved {
            target: target.clone(),
            key,
        });
    }
    if !denials.is_empty() {
        drop(buckets);
        return Err(throttled(api, &denials));
    }
    for r in &reserved {
        let partition = if r.target.index.is_some() {
            None
        } else {
            r.target.partition
        };
        if let Some(res) = r.key.as_ref().and_then(|k| buckets.get_mut(k)) {
            res.charge(partition, r.target.estimate, now);
        }
    }
    Ok(reserved)
}

/// The throttling error for `denials` (table, index, kind, denial).
fn throttled(api: &Api, denials: &[(String, Option<String>, Kind, Denial)]) -> Refusal {
    let mut reasons: Vec<Value> = Vec::new();
    let mut labels: Vec<&'static str> = Vec::new();
    let mut on_demand = false;
    let mut index_only = true;
    for (table, index, kind, denial) in denials {
        let resource = match index {
            Some(i) => format!("{}/index/{i}", api.table_arn(table)),
            None => api.table_arn(table),
        };
        let reason = reason_label(index.is_some(), *kind, *denial);
        on_demand |= *denial == Denial::OnDemandMax;
        index_only &= index.is_some();
        let entry = json!({"reason": reason, "resource": resource});
        if !reasons.contains(&entry) {
            reasons.push(entry);
            labels.push(reason);
        }
    }
    let (kind, message) = if on_demand {
        (
            ErrorKind::Throttling,
            "Throughput exceeds the maximum OnDemandThroughput configured on table or index",
        )
    } else if index_only {
        (
            ErrorKind::ProvisionedThroughputExceeded,
            "The level of configured provisioned throughput for one or more global secondary indexes of the table was exceeded. Consider increasing your provisioning level for the under-provisioned global secondary indexes with the UpdateTable API",
        )
    } else {
        (
            ErrorKind::ProvisionedThroughputExceeded,
            "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.",
        )
    };
    let mut error = ApiError::new(kind, message);
    let mut extra = JsonMap::new();
    extra.insert("ThrottlingReasons".to_string(), Value::Array(reasons));
    error.extra = Some(extra);
    (error, labels)
}

/// DynamoDB's throttling reason (`ResourceType + Operation + Limit`), from a
/// fixed set (also the metric label).
pub fn reason_label(index: bool, kind: Kind, denial: Denial) -> &'static str {
    use Denial::*;
    use Kind::*;
    match (index, kind, denial) {
        (false, Read, Provisioned) => "TableReadProvisionedThroughputExceeded",
        (false, Write, Provisioned) => "TableWriteProvisionedThroughputExceeded",
        (true, Read, Provisioned) => "IndexReadProvisionedThroughputExceeded",
        (true, Write, Provisioned) => "IndexWriteProvisionedThroughputExceeded",
        (false, Read, KeyRange) => "TableReadKeyRangeThroughputExceeded",
        (false, Write, KeyRange) => "TableWriteKeyRangeThroughputExceeded",
        (true, Read, KeyRange) => "IndexReadKeyRangeThroughputExceeded",
        (true, Write, KeyRange) => "IndexWriteKeyRangeThroughputExceeded",
        (false, Read, OnDemandMax) => "TableReadMaxOnDemandThroughputExceeded",
        (false, Write, OnDemandMax) => "TableWriteMaxOnDemandThroughputExceeded",
        (true, Read, OnDemandMax) => "IndexReadMaxOnDemandThroughputExceeded",
        (true, Write, OnDemandMax) => "IndexWriteMaxOnDemandThroughputExceeded",
    }
}

/// Reads the units an operation reported in its ConsumedCapacity (one
/// object or a list), attributing reads of a global index to the index, and
/// adds the index write charges.
fn consumed_from_response(
    response: &Value,
    plan: &Plan,
    index_writes: &[indexes::IndexCharge],
) -> Vec<Consumed> {
    let entries: Vec<&Value> = match response.get("ConsumedCapacity") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(v @ Value::Object(_)) => vec![v],
        _ => Vec::new(),
    };
    let reports = entries.into_iter().filter_map(|entry| {
        let table = entry.get("TableName").and_then(Value::as_str)?;
        let kind = if entry.get("WriteCapacityUnits").is_some() {
            Kind::Write
        } else {
            Kind::Read
        };
        let units = entry
            .get("CapacityUnits")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        Some((table, kind, units))
    });
    consumed_of(reports, plan, index_writes)
}

/// The units reported with [`report_units`], attributed like
/// [`consumed_from_response`] attributes a response's.
fn consumed_from_reports(
    reported: &[(String, Kind, f64)],
    plan: &Plan,
    index_writes: &[indexes::IndexCharge],
) -> Vec<Consumed> {
    let reports = reported
        .iter()
        .map(|(table, kind, units)| (table.as_str(), *kind, *units));
    consumed_of(reports, plan, index_writes)
}

/// Sums (table, kind, units) reports and the index write charges by
/// resource.
fn consumed_of<'a>(
    reports: impl Iterator<Item = (&'a str, Kind, f64)>,
    plan: &Plan,
    index_writes: &[indexes::IndexCharge],
) -> Vec<Consumed> {
    let mut out: Vec<Consumed> = Vec::new();
    for (table, kind, units) in reports {
        // A read of a global index is the index's (Query/Scan/PartiQL on
        // an index name exactly one target).
        let index = plan
            .targets
            .iter()
            .find(|t| t.table == table && t.kind == kind && t.index.is_some())
            .and_then(|t| t.index.clone());
        add(&mut out, table, index, kind, units);
    }
    for w in index_writes {
        let index = (!w.local).then(|| w.index.clone());
        add(&mut out, &w.table, index, Kind::Write, w.units);
    }
    out
}

fn add(out: &mut Vec<Consumed>, table: &str, index: Option<String>, kind: Kind, units: f64) {
    match out
        .iter_mut()
        .find(|c| c.table == table && c.index == index && c.kind == kind)
    {
        Some(c) => c.units += units,
        None => out.push(Consumed {
            table: table.to_string(),
            index,
            kind,
            units,
        }),
    }
}

/// Puts the secondary index units into the response's ConsumedCapacity (or
/// removes the member when the caller did not ask for it): global indexes
/// from `consumed`, local indexes from the `index_writes` (writes) or the
/// plan's local index reads (the reported units are then the index's and
/// the table's own part is zero, as DynamoDB reports them).
fn complete_response(
    response: &mut Value,
    consumed: &[Consumed],
    index_writes: &[indexes::IndexCharge],
    plan: &Plan,
    forced: bool,
) {
    let Some(obj) = response.as_object_mut() else {
        return;
    };
    if forced {
        obj.remove("ConsumedCapacity");
        return;
    }
    let entries: Vec<&mut Value> = match obj.get_mut("ConsumedCapacity") {
        Some(Value::Array(list)) => list.iter_mut().collect(),
        Some(v @ Value::Object(_)) => vec![v],
        _ => return,
    };
    for entry in entries {
        let Some(entry) = entry.as_object_mut() else {
            continue;
        };
        let Some(table) = entry
            .get("TableName")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            continue;
        };
        let write = entry.contains_key("WriteCapacityUnits");
        let (kind, split) = if write {
            (Kind::Write, "WriteCapacityUnits")
        } else {
            (Kind::Read, "ReadCapacityUnits")
        };
        let detailed = entry.contains_key("Table");
        let mut gsis = JsonMap::new();
        let mut index_total = 0.0;
        for c in consumed
            .iter()
            .filter(|c| c.table == table && c.kind == kind && c.index.is_some())
        {
            let name = c.index.clone().unwrap_or_default();
            gsis.insert(name, json!({"CapacityUnits": c.units, split: c.units}));
            index_total += c.units;
        }
        let reported = entry
            .get("CapacityUnits")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        // Local index units by index name.
        let mut local: BTreeMap<&str, f64> = BTreeMap::new();
        if kind == Kind::Write {
            for w in index_writes.iter().filter(|w| w.local && w.table == table) {
                *local.entry(w.index.as_str()).or_default() += w.units;
            }
        } else if let Some((_, index)) = plan.local_reads.iter().find(|(t, _)| *t == table) {
            local.insert(index.as_str(), reported);
        }
        let local_total: f64 = if kind == Kind::Write {
            local.values().sum()
        } else {
            0.0
        };
        let lsis: JsonMap<String, Value> = local
            .into_iter()
            .map(|(name, units)| {
                (
                    name.to_string(),
                    json!({"CapacityUnits": units, split: units}),
                )
            })
            .collect();
        if gsis.is_empty() && lsis.is_empty() {
            continue;
        }
        let (table_units, total) = if kind == Kind::Read {
            // A read of an index: the reported units are the index's.
            (0.0, reported)
        } else {
            // The op reported the table's own units.
            (reported, reported + local_total + index_total)
        };
        entry.insert("CapacityUnits".into(), json!(total));
        entry.insert(split.into(), json!(total));
        if detailed {
            entry.insert(
                "Table".into(),
                json!({"CapacityUnits": table_units, split: table_units}),
            );
            if !lsis.is_empty() {
                entry.insert("LocalSecondaryIndexes".into(), Value::Object(lsis));
            }
            if !gsis.is_empty() {
                entry.insert("GlobalSecondaryIndexes".into(), Value::Object(gsis));
            }
        }
    }
}

/// Replaces the reservation by the actual charges.
fn settle(
    api: &Api,
    plan: &Plan,
    reservation: &[Reserved],
    consumed: &[Consumed],
    index_writes: &[indexes::IndexCharge],
    result: &Result<Value, ApiError>,
) {
    if reservation.is_empty() && index_writes.is_empty() {
        return;
    }
    let capacity = &api.capacity;
    let now = capacity.now();
    let mut buckets = capacity.lock();
    let keeps_reservation = matches!(
        result,
        Err(e) if matches!(e.kind, ErrorKind::ConditionalCheckFailed | ErrorKind::TransactionCanceled)
    );
    if keeps_reservation {
        return;
    }
    for r in reservation {
        let partition = if r.target.index.is_some() {
            None
        } else {
            r.target.partition
        };
        if let Some(res) = r.key.as_ref().and_then(|k| buckets.get_mut(k)) {
            res.charge(partition, -r.target.estimate, now);
        }
    }
    if result.is_err() {
        return;
    }
    // Reads and table writes: split over the planned targets of the same
    // table, index and kind, in proportion to their estimates.
    for c in consumed {
        if c.kind == Kind::Write && c.index.is_some() {
            continue; // index writes: charged below with their partitions
        }
        let Some(def) = plan.defs.get(&c.table) else {
            continue;
        };
        let key = key_of(def, c.index.as_deref(), c.kind);
        let Some(res) = buckets.get_mut(&key) else {
            continue;
        };
        let targets: Vec<&Target> = plan
            .targets
            .iter()
            .filter(|t| t.table == c.table && t.index == c.index && t.kind == c.kind)
            .collect();
        let weight: f64 = targets.iter().map(|t| t.estimate).sum();
        if targets.is_empty() || weight <= 0.0 {
            res.charge(None, c.units, now);
            continue;
        }
        for t in targets {
            let partition = if c.index.is_some() { None } else { t.partition };
            res.charge(partition, c.units * t.estimate / weight, now);
        }
    }
    for w in index_writes.iter().filter(|w| !w.local) {
        let Some(def) = plan.defs.get(&w.table) else {
            continue;
        };
        let Some(limit) = limit_of(def, Some(&w.index), Kind::Write) else {
            continue;
        };
        let key = key_of(def, Some(&w.index), Kind::Write);
        buckets
            .resource(&key, limit, now)
            .charge(w.partition, w.units, now);
    }
}

/// Reads the OnDemandThroughput member of CreateTable/UpdateTable: `None`
/// when absent; each maximum must be -1 (no maximum) or at least 1.
pub(crate) fn parse_on_demand(
    req: &Request,
) -> Result<Option<partita_model::schema::OnDemandThroughput>, ApiError> {
    let Some(obj) = req.object("OnDemandThroughput")? else {
        return Ok(None);
    };
    let member = |name: &str| -> Result<Option<i64>, ApiError> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(-1) => Ok(Some(-1)),
                Some(v) if v >= 1 => Ok(Some(v)),
                _ => Err(ApiError::validation(format!(
                    "One or more parameter values were invalid: {name} must be -1 or at least 1"
                ))),
            },
            Some(other) => Err(crate::request::wrong_type(other, "Long")),
        }
    };
    Ok(Some(partita_model::schema::OnDemandThroughput {
        max_read_request_units: member("MaxReadRequestUnits")?,
        max_write_request_units: member("MaxWriteRequestUnits")?,
    }))
}

/// Applies a parsed OnDemandThroughput to a definition: a given maximum
/// replaces the current one (-1 removes it), an omitted one is kept.
pub(crate) fn apply_on_demand(
    def: &mut TableDefinition,
    update: Option<partita_model::schema::OnDemandThroughput>,
) {
    let Some(update) = update else {
        return;
    };
    let current = def.on_demand.unwrap_or_default();
    let pick = |new: Option<i64>, old: Option<i64>| match new {
        Some(-1) => None,
        Some(v) => Some(v),
        None => old,
    };
    let merged = partita_model::schema::OnDemandThroughput {
        max_read_request_units: pick(
            update.max_read_request_units,
            current.max_read_request_units,
        ),
        max_write_request_units: pick(
            update.max_write_request_units,
            current.max_write_request_units,
        ),
    };
    def.on_demand = (merged != Default::default()).then_some(merged);
}

/// Renders the table's OnDemandThroughput for DescribeTable (-1 for an
/// unset maximum, like DynamoDB), or `None` when no maximum was set.
pub(crate) fn render_on_demand(def: &TableDefinition) -> Option<Value> {
    let od = def.on_demand?;
    Some(json!({
        "MaxReadRequestUnits": od.max_read_request_units.unwrap_or(-1),
        "MaxWriteRequestUnits": od.max_write_request_units.unwrap_or(-1),
    }))
}
