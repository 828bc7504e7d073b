//! What a request will consume, known before it runs: the tables, indexes
//! and partitions it touches, each with a small up-front estimate of its
//! units (reserved at admission, corrected to the actual units after).
//!
//! Planning never fails: a member it cannot read is simply not planned
//! (the operation rejects the request itself with DynamoDB's message).

use std::collections::HashMap;
use std::sync::Arc;

use partita_expr::ExpressionAttributes;
use partita_model::value::item_size;
use partita_model::{AttributeValue, Item, TableDefinition};
use partita_storage::keys::{partition_hash, range_index};
use serde_json::{Map as JsonMap, Value};

use super::buckets::Kind;
use crate::codec;
use crate::request::Request;
use crate::Api;

/// One thing a request touches.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub table: String,
    /// A global secondary index (local ones share the table's capacity).
    pub index: Option<String>,
    /// The partition of the key; `None` when unknown (a Scan).
    pub partition: Option<u32>,
    pub kind: Kind,
    /// Units reserved at admission.
    pub estimate: f64,
}

/// The plan of one request.
#[derive(Debug, Default)]
pub struct Plan {
    /// The tables named, first one first (the `table` metric label).
    pub tables: Vec<String>,
    pub targets: Vec<Target>,
    /// Definitions of the tables touched, loaded once.
    pub defs: HashMap<String, Arc<TableDefinition>>,
    /// PutItem's item, decoded for the estimate (handed to the operation,
    /// see `super::take_planned_item`).
    pub item: Option<Item>,
    /// A control-plane operation (rate-limited, not capacity-limited).
    pub control_plane: bool,
    /// (table, local secondary index) of a Query/Scan on a local index: its
    /// units are the table's, reported as the index's.
    pub local_reads: Vec<(String, String)>,
}

/// Operations charged per table/index (everything else carries no units).
pub fn is_control_plane(op: &str) -> bool {
    matches!(
        op,
        "CreateTable"
            | "UpdateTable"
            | "DeleteTable"
            | "DescribeTable"
            | "ListTables"
            | "TagResource"
            | "UntagResource"
            | "ListTagsOfResource"
            | "UpdateTimeToLive"
            | "DescribeTimeToLive"
            | "DescribeLimits"
    )
}

/// Plans `req` for operation `op`.
pub fn plan(api: &Api, op: &str, req: &Request) -> Plan {
    let mut planner = Planner {
        api,
        plan: Plan {
            control_plane: is_control_plane(op),
            ..Plan::default()
        },
    };
    let body = req.as_object();
    match op {
        "GetItem" => {
            let consistent = flag(body, "ConsistentRead");
            planner.item(body, "Key", Kind::Read, read_estimate(consistent));
        }
        "PutItem" => {
            let item = body.get("Item").and_then(|v| codec::item_from_json(v).ok());
            let estimate = item
                .as_ref()
                .map(|i| super::write_estimate(item_size(i)))
                .unwrap_or(1.0);
            planner.item(body, "Item", Kind::Write, estimate);
            planner.plan.item = item;
        }
        "UpdateItem" | "DeleteItem" => planner.item(body, "Key", Kind::Write, 1.0),
        "Query" | "Scan" => planner.query_scan(body, op == "Query"),
        "BatchGetItem" => {
            for (table, spec) in members(body.get("RequestItems")) {
                let Some(spec) = spec.as_object() else {
                    continue;
                };
                let estimate = read_estimate(flag(spec, "ConsistentRead"));
                for key in list(spec.get("Keys")) {
                    planner.key(table, key, Kind::Read, estimate);
                }
            }
        }
        "BatchWriteItem" => {
            for (table, requests) in members(body.get("RequestItems")) {
                for request in list(Some(requests)) {
                    let put = request.get("PutRequest").and_then(|p| p.get("Item"));
                    let delete = request.get("DeleteRequest").and_then(|d| d.get("Key"));
                    if let Some(key) = put.or(delete) {
                        planner.key(table, key, Kind::Write, 1.0);
                    }
                }
            }
        }
        "TransactWriteItems" | "TransactGetItems" => {
            for action in list(body.get("TransactItems")) {
                let Some(action) = action.as_object() else {
                    continue;
                };
                for (verb, spec) in action {
                    let kind = if verb == "Get" {
                        Kind::Read
                    } else {
                        Kind::Write
                    };
                    let Some(table) = spec.get("TableName").and_then(Value::as_str) else {
                        continue;
                    };
                    if let Some(key) = spec.get("Key").or_else(|| spec.get("Item")) {
                        planner.key(table, key, kind, 2.0);
                    }
                }
            }
        }
        "ExecuteStatement" => planner.statement(body, flag(body, "ConsistentRead")),
        "BatchExecuteStatement" => {
            for st in list(body.get("Statements")) {
                if let Some(st) = st.as_object() {
                    planner.statement(st, flag(st, "ConsistentRead"));
                }
            }
        }
        "ExecuteTransaction" => {
            for st in list(body.get("TransactStatements")) {
                if let Some(st) = st.as_object() {
                    planner.statement(st, true);
                }
            }
        }
        _ => {
            let name = body
                .get("TableName")
                .or_else(|| body.get("ResourceArn"))
                .and_then(Value::as_str);
            if let Some(name) = name {
                let name = name.rsplit("table/").next().unwrap_or(name);
                planner.name(name);
            }
        }
    }
    planner.plan
}

fn flag(body: &JsonMap<String, Value>, member: &str) -> bool {
    body.get(member).and_then(Value::as_bool).unwrap_or(false)
}

fn read_estimate(consistent: bool) -> f64 {
    if consistent {
        1.0
    } else {
        0.5
    }
}

fn members(v: Option<&Value>) -> impl Iterator<Item = (&str, &Value)> {
    v.and_then(Value::as_object)
        .into_iter()
        .flat_map(|m| m.iter().map(|(k, v)| (k.as_str(), v)))
}

fn list(v: Option<&Value>) -> impl Iterator<Item = &Value> {
    v.and_then(Value::as_array).into_iter().flatten()
}

struct Planner<'a> {
    api: &'a Api,
    plan: Plan,
}

impl Planner<'_> {
    /// Records a table name (resolving an ARN of this endpoint) and loads
    /// its definition; returns the name when the table exists.
    fn name(&mut self, raw: &str) -> Option<String> {
        let prefix = self.api.table_arn("");
        let name = raw
            .strip_prefix(prefix.as_str())
            .filter(|n| !n.is_empty())
            .unwrap_or(raw)
            .to_string();
        if !self.plan.tables.contains(&name) {
            self.plan.tables.push(name.clone());
        }
        if !self.plan.defs.contains_key(&name) {
            let def = self.api.store.table(&name).ok()?;
            self.plan.defs.insert(name.clone(), Arc::new(def));
        }
        Some(name)
    }

    fn item(&mut self, body: &JsonMap<String, Value>, member: &str, kind: Kind, estimate: f64) {
        let Some(table) = body.get("TableName").and_then(Value::as_str) else {
            return;
        };
        match body.get(member) {
            Some(key) => self.key(table, key, kind, estimate),
            None => {
                self.name(table);
            }
        }
    }

    /// A target for the partition of `key` (a JSON item holding the
    /// table's partition key).
    fn key(&mut self, table: &str, key: &Value, kind: Kind, estimate: f64) {
        let Some(name) = self.name(table) else {
            return;
        };
        let partition = self.plan.defs.get(&name).and_then(|def| {
            let value = key.get(&def.key_schema.hash.name)?;
            partition_of(def, &codec::value_from_json(value).ok()?)
        });
        self.plan.targets.push(Target {
            table: name,
            index: None,
            partition,
            kind,
            estimate,
        });
    }

    fn query_scan(&mut self, body: &JsonMap<String, Value>, query: bool) {
        let Some(table) = body.get("TableName").and_then(Value::as_str) else {
            return;
        };
        let Some(name) = self.name(table) else {
            return;
        };
        let Some(def) = self.plan.defs.get(&name) else {
            return;
        };
        let index_name = body.get("IndexName").and_then(Value::as_str);
        let gsi = index_name.and_then(|i| def.global_indexes.iter().find(|g| g.name == i));
        let lsi = index_name.and_then(|i| def.local_indexes.iter().find(|l| l.name == i));
        let schema = match (gsi, lsi) {
            (Some(g), _) => &g.key_schema,
            (None, Some(l)) => &l.key_schema,
            (None, None) => &def.key_schema,
        };
        let partition = if query {
            query_hash_value(body, schema).and_then(|v| partition_of(def, &v))
        } else {
            None
        };
        let estimate = read_estimate(flag(body, "ConsistentRead"));
        if let Some(l) = lsi {
            self.plan.local_reads.push((name.clone(), l.name.clone()));
        }
        self.plan.targets.push(Target {
            table: name,
            index: gsi.map(|g| g.name.clone()),
            partition,
            kind: Kind::Read,
            estimate,
        });
    }

    fn statement(&mut self, st: &JsonMap<String, Value>, consistent: bool) {
        let Some(text) = st.get("Statement").and_then(Value::as_str) else {
            return;
        };
        let (action, target) = crate::auth::enforce::partiql_target(text);
        let Some((table, index)) = target else {
            return;
        };
        let Some(name) = self.name(&table) else {
            return;
        };
        let kind = if action == "PartiQLSelect" {
            Kind::Read
        } else {
            Kind::Write
        };
        let params: Vec<AttributeValue> = list(st.get("Parameters"))
            .filter_map(|v| codec::value_from_json(v).ok())
            .collect();
        let partition = crate::ops::partiql::statement_partition_key(self.api, text, &params)
            .and_then(|v| partition_of(self.plan.defs.get(&name)?, &v));
        let gsi = index.filter(|i| {
            self.plan
                .defs
                .get(&name)
                .is_some_and(|d| d.global_indexes.iter().any(|g| &g.name == i))
        });
        let estimate = match kind {
            Kind::Read => read_estimate(consistent),
            Kind::Write => 1.0,
        };
        self.plan.targets.push(Target {
            table: name,
            index: gsi,
            partition,
            kind,
            estimate,
        });
    }
}

/// The partition of the table holding partition key value `value`.
pub fn partition_of(def: &TableDefinition, value: &AttributeValue) -> Option<u32> {
    let hash = partition_hash(value).ok()?;
    Some(range_index(hash, def.partitions.max(1)))
}

/// The partition key value a Query's key condition fixes.
fn query_hash_value(
    body: &JsonMap<String, Value>,
    schema: &partita_model::KeySchema,
) -> Option<AttributeValue> {
    let hash = schema.hash.name.as_str();
    let range = schema.range.as_ref().map(|r| r.name.as_str());
    if let Some(expr) = body.get("KeyConditionExpression").and_then(Value::as_str) {
        let names: Option<HashMap<String, String>> = body
            .get("ExpressionAttributeNames")
            .and_then(|v| serde_json::from_value(v.clone()).ok());
        let values = match body.get("ExpressionAttributeValues") {
            Some(v) => Some(codec::values_from_json(v).ok()?),
            None => None,
        };
        let mut attrs = ExpressionAttributes::new(names.as_ref(), values.as_ref());
        let cond = partita_expr::parse_key_condition(expr, &mut attrs, hash, range).ok()?;
        return Some(cond.hash_value);
    }
    let conditions = body.get("KeyConditions")?.as_object()?;
    let cond = crate::ops::legacy::key_conditions(conditions, hash, range).ok()?;
    Some(cond.hash_value)
}
