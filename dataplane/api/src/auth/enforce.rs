//! From a decoded request to IAM checks: which action on which resource
//! with which condition keys, for every item a request touches.
//!
//! | operation | action | resource | per |
//! |---|---|---|---|
//! | GetItem, PutItem, UpdateItem, DeleteItem | same name | table | request |
//! | Query, Scan | same name | table, or `table/T/index/I` | request |
//! | BatchGetItem, BatchWriteItem | same name | each table | item |
//! | TransactGetItems | GetItem | each table | item |
//! | TransactWriteItems | PutItem, UpdateItem, DeleteItem, ConditionCheckItem | each table | item |
//! | ExecuteStatement, BatchExecuteStatement, ExecuteTransaction | PartiQLSelect/Insert/Update/Delete | table named in the statement | statement |
//! | control plane (CreateTable, ...) | same name | table ARN, the ResourceArn of tag calls, or `*` for ListTables, DescribeLimits, DescribeEndpoints | request |
//! | DescribeStream, GetShardIterator | same name | the StreamArn | request |
//! | GetRecords | same name | the ARN of the stream the iterator reads | request |
//! | ListStreams | same name | `*` | request |
//! | anything else | `dynamodb:<Op>` | table of TableName, else `*` | request |
//!
//! Condition keys, besides `aws:username`, `aws:userid`, `aws:PrincipalArn`,
//! `aws:PrincipalAccount`, `aws:PrincipalType`, `aws:SecureTransport` and
//! `aws:RequestedRegion`:
//! - `dynamodb:LeadingKeys`: the partition key value of the item (S and N
//!   as text, B as base64); for Query the partition key of the key
//!   condition (of the index when one is queried). Unknown (see
//!   [`super::policy`]) for Scan, for PartiQL, when the table or the key
//!   cannot be determined: a LeadingKeys condition then never allows and
//!   always denies.
//! - `dynamodb:Attributes`: top-level attribute names the request names:
//!   key attributes, item attributes written, UpdateExpression/
//!   AttributeUpdates targets, ProjectionExpression/AttributesToGet roots.
//!   Condition and filter expressions are not counted.
//! - `dynamodb:Select`: the Select parameter; for reads without it,
//!   SPECIFIC_ATTRIBUTES when a projection is given, else ALL_ATTRIBUTES
//!   (ALL_PROJECTED_ATTRIBUTES for an index).
//! - `dynamodb:ReturnValues`, `dynamodb:ReturnConsumedCapacity`: the
//!   parameters, when given.
//!
//! Requests whose shape is too broken to name a table (no TableName, no
//! RequestItems) are left to validation, which rejects them before any data
//! is touched.

use std::collections::{BTreeSet, HashMap};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use partita_expr::{ExpressionAttributes, Path, PathElement};
use partita_model::{AttributeValue, KeySchema, TableDefinition};
use serde_json::{Map as JsonMap, Value};

use super::policy::{evaluate, ContextKeys, Decision, RequestContext};
use super::{Caller, Principal};
use crate::codec;
use crate::error::{ApiError, ErrorKind};
use crate::request::Request;
use crate::Api;

const LEADING_KEYS: &str = "dynamodb:LeadingKeys";
const ATTRIBUTES: &str = "dynamodb:Attributes";
const SELECT: &str = "dynamodb:Select";
const RETURN_VALUES: &str = "dynamodb:ReturnValues";
const RETURN_CONSUMED_CAPACITY: &str = "dynamodb:ReturnConsumedCapacity";

/// One authorization question.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub action: String,
    pub resource: String,
    pub keys: ContextKeys,
}

/// Authorizes `op` with request `req` for `caller`; Ok in open mode.
pub fn authorize(api: &Api, caller: &Caller, op: &str, req: &Request) -> Result<(), ApiError> {
    let Some(principal) = &caller.principal else {
        return Ok(());
    };
    let base = base_keys(api, caller, principal);
    let checks = Planner::new(api, base).checks(op, req);
    let policies: Vec<_> = principal
        .user
        .policies
        .iter()
        .map(|(_, p)| p.as_ref())
        .collect();
    for check in &checks {
        let ctx = RequestContext {
            action: &check.action,
            resource: &check.resource,
            keys: &check.keys,
        };
        let decision = evaluate(policies.iter().copied(), &ctx);
        if decision != Decision::Allow {
            tracing::debug!(
                user = %principal.user.name,
                action = %check.action,
                resource = %check.resource,
                "access denied"
            );
            return Err(access_denied(api, principal, check, decision));
        }
    }
    Ok(())
}

/// The AccessDeniedException in AWS's wording.
pub fn access_denied(
    api: &Api,
    principal: &Principal,
    check: &Check,
    decision: Decision,
) -> ApiError {
    let reason = match decision {
        Decision::ExplicitDeny => "with an explicit deny in an identity-based policy".to_string(),
        _ => format!(
            "because no identity-based policy allows the {} action",
            check.action
        ),
    };
    ApiError::new(
        ErrorKind::AccessDenied,
        format!(
            "User: {} is not authorized to perform: {} on resource: {} {reason}",
            user_arn(api, principal),
            check.action,
            check.resource
        ),
    )
}

fn user_arn(api: &Api, principal: &Principal) -> String {
    format!(
        "arn:aws:iam::{}:user/{}",
        api.config.account_id, principal.user.name
    )
}

fn base_keys(api: &Api, caller: &Caller, principal: &Principal) -> ContextKeys {
    let mut keys = ContextKeys::new();
    keys.set("aws:username", principal.user.name.clone());
    keys.set("aws:userid", principal.user.user_id.clone());
    keys.set("aws:PrincipalArn", user_arn(api, principal));
    keys.set("aws:PrincipalAccount", api.config.account_id.clone());
    keys.set("aws:PrincipalType", "User");
    keys.set("aws:SecureTransport", caller.secure.to_string());
    keys.set("aws:RequestedRegion", api.config.region.clone());
    keys
}

/// A value that may be absent, known, or present but unknowable.
enum Known<T> {
    Absent,
    Value(T),
    Unknown,
}

/// Builds the checks of one request.
struct Planner<'a> {
    api: &'a Api,
    base: ContextKeys,
    tables: HashMap<String, Option<TableDefinition>>,
}

impl<'a> Planner<'a> {
    fn new(api: &'a Api, base: ContextKeys) -> Planner<'a> {
        Planner {
            api,
            base,
            tables: HashMap::new(),
        }
    }

    fn checks(&mut self, op: &str, req: &Request) -> Vec<Check> {
        let body = req_object(req);
        let rcc = body.get("ReturnConsumedCapacity").and_then(Value::as_str);
        match op {
            "GetItem" => self.item(op, body, ItemKind::Read, rcc),
            "PutItem" => self.item(op, body, ItemKind::Put, rcc),
            "UpdateItem" => self.item(op, body, ItemKind::Update, rcc),
            "DeleteItem" => self.item(op, body, ItemKind::Delete, rcc),
            "Query" => self.query_scan(op, body, true, rcc),
            "Scan" => self.query_scan(op, body, false, rcc),
            "BatchGetItem" => self.batch_get(body, rcc),
            "BatchWriteItem" => self.batch_write(body, rcc),
            "TransactGetItems" => self.transact(body, rcc, &[("Get", "GetItem", ItemKind::Read)]),
            "TransactWriteItems" => self.transact(
                body,
                rcc,
                &[
                    ("Put", "PutItem", ItemKind::Put),
                    ("Update", "UpdateItem", ItemKind::Update),
                    ("Delete", "DeleteItem", ItemKind::Delete),
                    ("ConditionCheck", "ConditionCheckItem", ItemKind::Check),
                ],
            ),
            "ExecuteStatement" => self.partiql(std::iter::once(body), rcc),
            "BatchExecuteStatement" => self.partiql(objects(body.get("Statements")).iter(), rcc),
            "ExecuteTransaction" => {
                self.partiql(objects(body.get("TransactStatements")).iter(), rcc)
            }
            "ListTables" | "DescribeLimits" | "DescribeEndpoints" | "ListStreams" => {
                vec![self.check(op, "*".to_string(), self.base.clone())]
            }
            // Streams calls act on the stream (`table/T/stream/LABEL`), as
            // in IAM: a grant on the table ARN alone does not cover them.
            "DescribeStream" | "GetShardIterator" | "GetRecords" => {
                let arn = match op {
                    "GetRecords" => body
                        .get("ShardIterator")
                        .and_then(Value::as_str)
                        .and_then(|it| crate::ops::streams::iterator_stream_arn(self.api, it)),
                    _ => body
                        .get("StreamArn")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                };
                let mut keys = self.base.clone();
                keys.set_unknown(LEADING_KEYS);
                keys.set_unknown(ATTRIBUTES);
                // Without a readable ARN the request fails validation.
                vec![self.check(op, arn.unwrap_or_else(|| "*".to_string()), keys)]
            }
            "TagResource" | "UntagResource" | "ListTagsOfResource" => {
                match body.get("ResourceArn").and_then(Value::as_str) {
                    Some(arn) => vec![self.check(op, arn.to_string(), self.base.clone())],
                    None => Vec::new(),
                }
            }
            _ => {
                // Control-plane calls and anything added later: the action
                // on the named table, else on "*"; item-level conditions
                // cannot be known.
                let resource = match body.get("TableName").and_then(Value::as_str) {
                    Some(t) => self.table_arn(t),
                    None => "*".to_string(),
                };
                let mut keys = self.base.clone();
                if !is_control_plane(op) {
                    keys.set_unknown(LEADING_KEYS);
                    keys.set_unknown(ATTRIBUTES);
                }
                vec![self.check(op, resource, keys)]
            }
        }
    }

    fn check(&self, op: &str, resource: String, keys: ContextKeys) -> Check {
        Check {
            action: format!("dynamodb:{op}"),
            resource,
            keys,
        }
    }

    /// Resolves a TableName (a name or this endpoint's table ARN) to the
    /// table name.
    fn table_name(&self, raw: &str) -> String {
        let prefix = self.api.table_arn("");
        match raw.strip_prefix(prefix.as_str()) {
            Some(n) if !n.is_empty() && !n.contains('/') => n.to_string(),
            _ => raw.to_string(),
        }
    }

    fn table_arn(&self, raw: &str) -> String {
        if raw.starts_with("arn:") {
            return raw.to_string();
        }
        self.api.table_arn(raw)
    }

    fn table_def(&mut self, raw: &str) -> Option<TableDefinition> {
        let name = self.table_name(raw);
        if let Some(def) = self.tables.get(&name) {
            return def.clone();
        }
        let def = self.api.store.table(&name).ok();
        self.tables.insert(name, def.clone());
        def
    }

    fn item(
        &mut self,
        op: &str,
        body: &JsonMap<String, Value>,
        kind: ItemKind,
        rcc: Option<&str>,
    ) -> Vec<Check> {
        let Some(table) = body.get("TableName").and_then(Value::as_str) else {
            return Vec::new();
        };
        let keys = self.item_keys(table, body, kind, rcc);
        vec![self.check(op, self.table_arn(table), keys)]
    }

    /// The condition keys of one item-level request (`body` is the request
    /// or one element of a batch/transaction).
    fn item_keys(
        &mut self,
        table: &str,
        body: &JsonMap<String, Value>,
        kind: ItemKind,
        rcc: Option<&str>,
    ) -> ContextKeys {
        let def = self.table_def(table);
        let schema = def.as_ref().map(|d| &d.key_schema);
        let mut keys = self.base.clone();
        let item_member = if kind == ItemKind::Put { "Item" } else { "Key" };
        let item = body.get(item_member).and_then(Value::as_object);
        match (schema, item) {
            (Some(schema), Some(item)) => match item.get(&schema.hash.name).and_then(key_text) {
                Some(v) => keys.set(LEADING_KEYS, v),
                None => keys.set_unknown(LEADING_KEYS),
            },
            _ => keys.set_unknown(LEADING_KEYS),
        }
        let mut attrs: Known<BTreeSet<String>> = Known::Value(BTreeSet::new());
        if let Some(item) = item {
            add_names(&mut attrs, item.keys().cloned());
        }
        let names = expr_names(body);
        match kind {
            ItemKind::Read => {
                let projection = projection_roots(body, names.as_ref());
                let has_projection = !matches!(projection, Known::Absent);
                merge(&mut attrs, projection);
                keys.set(
                    SELECT,
                    if has_projection {
                        "SPECIFIC_ATTRIBUTES"
                    } else {
                        "ALL_ATTRIBUTES"
                    },
                );
            }
            ItemKind::Update => merge(&mut attrs, update_roots(body, names.as_ref())),
            ItemKind::Put | ItemKind::Delete | ItemKind::Check => {}
        }
        set_attrs(&mut keys, attrs);
        if let Some(rv) = body.get("ReturnValues").and_then(Value::as_str) {
            keys.set(RETURN_VALUES, rv);
        }
        if let Some(rcc) = rcc {
            keys.set(RETURN_CONSUMED_CAPACITY, rcc);
        }
        keys
    }

    fn query_scan(
        &mut self,
        op: &str,
        body: &JsonMap<String, Value>,
        query: bool,
        rcc: Option<&str>,
    ) -> Vec<Check> {
        let Some(table) = body.get("TableName").and_then(Value::as_str) else {
            return Vec::new();
        };
        let index = body.get("IndexName").and_then(Value::as_str);
        let resource = match index {
            Some(i) => format!("{}/index/{i}", self.table_arn(table)),
            None => self.table_arn(table),
        };
        let def = self.table_def(table);
        let schema: Option<KeySchema> = def.as_ref().and_then(|d| match index {
            None => Some(d.key_schema.clone()),
            Some(i) => d
                .local_indexes
                .iter()
                .chain(d.global_indexes.iter())
                .find(|x| x.name == i)
                .map(|x| x.key_schema.clone()),
        });
        let mut keys = self.base.clone();
        if query {
            match schema.as_ref().and_then(|s| query_partition_key(body, s)) {
                Some(v) => keys.set(LEADING_KEYS, v),
                None => keys.set_unknown(LEADING_KEYS),
            }
        } else {
            keys.set_unknown(LEADING_KEYS);
        }
        let names = expr_names(body);
        let projection = projection_roots(body, names.as_ref());
        let has_projection = !matches!(projection, Known::Absent);
        let mut attrs: Known<BTreeSet<String>> = Known::Value(BTreeSet::new());
        if let Some(s) = &schema {
            add_names(&mut attrs, s.attributes().map(|a| a.name.clone()));
        }
        merge(&mut attrs, projection);
        set_attrs(&mut keys, attrs);
        let select = match body.get("Select").and_then(Value::as_str) {
            Some(s) => s.to_string(),
            None if has_projection => "SPECIFIC_ATTRIBUTES".to_string(),
            None if index.is_some() => "ALL_PROJECTED_ATTRIBUTES".to_string(),
            None => "ALL_ATTRIBUTES".to_string(),
        };
        keys.set(SELECT, select);
        if let Some(rcc) = rcc {
            keys.set(RETURN_CONSUMED_CAPACITY, rcc);
        }
        vec![self.check(op, resource, keys)]
    }

    fn batch_get(&mut self, body: &JsonMap<String, Value>, rcc: Option<&str>) -> Vec<Check> {
        let mut out = Vec::new();
        let Some(items) = body.get("RequestItems").and_then(Value::as_object) else {
            return out;
        };
        for (table, spec) in items {
            let Some(spec) = spec.as_object() else {
                out.push(self.unknown_item_check("BatchGetItem", table, rcc));
                continue;
            };
            let keys = objects(spec.get("Keys"));
            if keys.is_empty() {
                out.push(self.unknown_item_check("BatchGetItem", table, rcc));
            }
            for key in keys {
                // Each key is checked as its own GetItem-shaped request.
                let mut one = spec.clone();
                one.remove("Keys");
                one.insert("Key".to_string(), Value::Object(key));
                let ctx = self.item_keys(table, &one, ItemKind::Read, rcc);
                out.push(self.check("BatchGetItem", self.table_arn(table), ctx));
            }
        }
        out
    }

    fn batch_write(&mut self, body: &JsonMap<String, Value>, rcc: Option<&str>) -> Vec<Check> {
        let mut out = Vec::new();
        let Some(items) = body.get("RequestItems").and_then(Value::as_object) else {
            return out;
        };
        for (table, requests) in items {
            let requests = objects(Some(requests));
            if requests.is_empty() {
                out.push(self.unknown_item_check("BatchWriteItem", table, rcc));
            }
            for r in requests {
                let (one, kind) = if let Some(put) = r.get("PutRequest").and_then(Value::as_object)
                {
                    (put.clone(), ItemKind::Put)
                } else if let Some(del) = r.get("DeleteRequest").and_then(Value::as_object) {
                    (del.clone(), ItemKind::Delete)
                } else {
                    out.push(self.unknown_item_check("BatchWriteItem", table, rcc));
                    continue;
                };
                let ctx = self.item_keys(table, &one, kind, rcc);
                out.push(self.check("BatchWriteItem", self.table_arn(table), ctx));
            }
        }
        out
    }

    fn transact(
        &mut self,
        body: &JsonMap<String, Value>,
        rcc: Option<&str>,
        kinds: &[(&str, &str, ItemKind)],
    ) -> Vec<Check> {
        let mut out = Vec::new();
        for element in objects(body.get("TransactItems")) {
            let mut matched = false;
            for (member, action, kind) in kinds {
                let Some(one) = element.get(*member).and_then(Value::as_object) else {
                    continue;
                };
                matched = true;
                let Some(table) = one.get("TableName").and_then(Value::as_str) else {
                    continue;
                };
                let ctx = self.item_keys(table, one, *kind, rcc);
                out.push(self.check(action, self.table_arn(table), ctx));
            }
            if !matched {
                // Malformed element: validation rejects the transaction.
                continue;
            }
        }
        out
    }

    fn unknown_item_check(&self, op: &str, table: &str, rcc: Option<&str>) -> Check {
        let mut keys = self.base.clone();
        keys.set_unknown(LEADING_KEYS);
        keys.set_unknown(ATTRIBUTES);
        if let Some(rcc) = rcc {
            keys.set(RETURN_CONSUMED_CAPACITY, rcc);
        }
        self.check(op, self.table_arn(table), keys)
    }

    /// PartiQL statements: the action follows the verb, the resource is
    /// the table named after FROM/INTO/UPDATE; the leading key is the
    /// partition key the planned statement reads or writes (unknown for a
    /// scan); attributes are not extracted, so they are unknown.
    fn partiql<'b>(
        &mut self,
        statements: impl Iterator<Item = &'b JsonMap<String, Value>>,
        rcc: Option<&str>,
    ) -> Vec<Check> {
        let mut out = Vec::new();
        for st in statements {
            let Some(text) = st.get("Statement").and_then(Value::as_str) else {
                continue;
            };
            let (action, table) = partiql_target(text);
            let resource = match table {
                Some((t, Some(index))) => format!("{}/index/{index}", self.table_arn(&t)),
                Some((t, None)) => self.table_arn(&t),
                None => "*".to_string(),
            };
            let mut keys = self.base.clone();
            let params: Option<Vec<AttributeValue>> = match st.get("Parameters") {
                None | Some(Value::Null) => Some(Vec::new()),
                Some(Value::Array(list)) => list
                    .iter()
                    .map(|v| crate::codec::value_from_json(v).ok())
                    .collect(),
                Some(_) => None,
            };
            let leading = params.and_then(|params| {
                crate::ops::partiql::statement_partition_key(self.api, text, &params)
            });
            match leading.as_ref().and_then(attribute_text) {
                Some(v) => keys.set(LEADING_KEYS, v),
                None => keys.set_unknown(LEADING_KEYS),
            }
            keys.set_unknown(ATTRIBUTES);
            if let Some(rcc) = rcc {
                keys.set(RETURN_CONSUMED_CAPACITY, rcc);
            }
            out.push(self.check(action, resource, keys));
        }
        out
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ItemKind {
    Read,
    Put,
    Update,
    Delete,
    Check,
}

fn is_control_plane(op: &str) -> bool {
    matches!(
        op,
        "CreateTable"
            | "DescribeTable"
            | "UpdateTable"
            | "DeleteTable"
            | "UpdateTimeToLive"
            | "DescribeTimeToLive"
            | "DescribeContinuousBackups"
            | "UpdateContinuousBackups"
            | "CreateBackup"
            | "DescribeKinesisStreamingDestination"
            | "DescribeContributorInsights"
            | "UpdateContributorInsights"
            | "DescribeTableReplicaAutoScaling"
            | "UpdateTableReplicaAutoScaling"
    )
}

fn req_object(req: &Request) -> &JsonMap<String, Value> {
    req.as_object()
}

/// The JSON objects of an array member (non-objects are skipped).
fn objects(v: Option<&Value>) -> Vec<JsonMap<String, Value>> {
    match v {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_object().cloned())
            .collect(),
        _ => Vec::new(),
    }
}

/// The text of a key attribute value: S and N as written, B as base64.
fn key_text(v: &Value) -> Option<String> {
    let obj = v.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    let (t, inner) = obj.iter().next()?;
    match (t.as_str(), inner) {
        ("S", Value::String(s)) | ("N", Value::String(s)) | ("B", Value::String(s)) => {
            Some(s.clone())
        }
        _ => None,
    }
}

fn attribute_text(v: &AttributeValue) -> Option<String> {
    match v {
        AttributeValue::S(s) => Some(s.clone()),
        AttributeValue::N(n) => Some(n.to_string()),
        AttributeValue::B(b) => Some(BASE64.encode(b)),
        _ => None,
    }
}

fn expr_names(body: &JsonMap<String, Value>) -> Option<HashMap<String, String>> {
    let obj = body.get("ExpressionAttributeNames")?.as_object()?;
    Some(
        obj.iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect(),
    )
}

fn expr_values(
    body: &JsonMap<String, Value>,
) -> Result<Option<HashMap<String, AttributeValue>>, ()> {
    match body.get("ExpressionAttributeValues") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => codec::values_from_json(v).map(Some).map_err(|_| ()),
    }
}

fn root(path: &Path) -> Option<String> {
    match path.0.first() {
        Some(PathElement::Attribute(name)) => Some(name.clone()),
        _ => None,
    }
}

/// Roots of ProjectionExpression or AttributesToGet.
fn projection_roots(
    body: &JsonMap<String, Value>,
    names: Option<&HashMap<String, String>>,
) -> Known<BTreeSet<String>> {
    if let Some(expr) = body.get("ProjectionExpression") {
        let Some(expr) = expr.as_str() else {
            return Known::Unknown;
        };
        let mut attrs = ExpressionAttributes::new(names, None);
        return match partita_expr::parse_projection(expr, &mut attrs) {
            Ok(p) => match p.0.iter().map(root).collect::<Option<BTreeSet<_>>>() {
                Some(set) => Known::Value(set),
                None => Known::Unknown,
            },
            Err(_) => Known::Unknown,
        };
    }
    if let Some(list) = body.get("AttributesToGet") {
        let Some(list) = list.as_array() else {
            return Known::Unknown;
        };
        return match list
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect()
        {
            Some(set) => Known::Value(set),
            None => Known::Unknown,
        };
    }
    Known::Absent
}

/// Targets of UpdateExpression or AttributeUpdates.
fn update_roots(
    body: &JsonMap<String, Value>,
    names: Option<&HashMap<String, String>>,
) -> Known<BTreeSet<String>> {
    if let Some(expr) = body.get("UpdateExpression") {
        let Some(expr) = expr.as_str() else {
            return Known::Unknown;
        };
        let Ok(values) = expr_values(body) else {
            return Known::Unknown;
        };
        let mut attrs = ExpressionAttributes::new(names, values.as_ref());
        return match partita_expr::parse_update(expr, &mut attrs) {
            Ok(u) => {
                let paths = u
                    .set
                    .iter()
                    .map(|(p, _)| p)
                    .chain(u.remove.iter())
                    .chain(u.add.iter().map(|(p, _)| p))
                    .chain(u.delete.iter().map(|(p, _)| p));
                match paths.map(root).collect::<Option<BTreeSet<_>>>() {
                    Some(set) => Known::Value(set),
                    None => Known::Unknown,
                }
            }
            Err(_) => Known::Unknown,
        };
    }
    if let Some(updates) = body.get("AttributeUpdates") {
        return match updates.as_object() {
            Some(obj) => Known::Value(obj.keys().cloned().collect()),
            None => Known::Unknown,
        };
    }
    Known::Absent
}

/// The partition key value a Query's key condition fixes.
fn query_partition_key(body: &JsonMap<String, Value>, schema: &KeySchema) -> Option<String> {
    let hash = schema.hash.name.as_str();
    let range = schema.range.as_ref().map(|r| r.name.as_str());
    if let Some(expr) = body.get("KeyConditionExpression") {
        let expr = expr.as_str()?;
        let names = expr_names(body);
        let values = expr_values(body).ok()?;
        let mut attrs = ExpressionAttributes::new(names.as_ref(), values.as_ref());
        let cond = partita_expr::parse_key_condition(expr, &mut attrs, hash, range).ok()?;
        return attribute_text(&cond.hash_value);
    }
    let conditions = body.get("KeyConditions")?.as_object()?;
    let cond = crate::ops::legacy::key_conditions(conditions, hash, range).ok()?;
    attribute_text(&cond.hash_value)
}

fn add_names(attrs: &mut Known<BTreeSet<String>>, names: impl Iterator<Item = String>) {
    if let Known::Value(set) = attrs {
        set.extend(names);
    }
}

fn merge(attrs: &mut Known<BTreeSet<String>>, more: Known<BTreeSet<String>>) {
    match more {
        Known::Absent => {}
        Known::Unknown => *attrs = Known::Unknown,
        Known::Value(v) => add_names(attrs, v.into_iter()),
    }
}

fn set_attrs(keys: &mut ContextKeys, attrs: Known<BTreeSet<String>>) {
    match attrs {
        Known::Absent => {}
        Known::Unknown => keys.set_unknown(ATTRIBUTES),
        Known::Value(set) if set.is_empty() => {}
        Known::Value(set) => keys.set_many(ATTRIBUTES, set),
    }
}

/// The action and table (and index) a PartiQL statement names, found by
/// reading the words after SELECT ... FROM, INSERT INTO, UPDATE or DELETE
/// FROM. None when no table can be found.
pub fn partiql_target(text: &str) -> (&'static str, Option<(String, Option<String>)>) {
    let tokens = partiql_tokens(text);
    let upper = |i: usize| tokens.get(i).map(|t| t.0.to_ascii_uppercase());
    let verb = upper(0).unwrap_or_default();
    let action = match verb.as_str() {
        "INSERT" => "PartiQLInsert",
        "UPDATE" => "PartiQLUpdate",
        "DELETE" => "PartiQLDelete",
        _ => "PartiQLSelect",
    };
    let table_at = match verb.as_str() {
        "UPDATE" => Some(1),
        "INSERT" => (upper(1).as_deref() == Some("INTO")).then_some(2),
        "DELETE" => (upper(1).as_deref() == Some("FROM")).then_some(2),
        "SELECT" | "EXISTS" => tokens
            .iter()
            .position(|(t, quoted)| !quoted && t.eq_ignore_ascii_case("FROM"))
            .map(|i| i + 1),
        _ => None,
    };
    let table = table_at.and_then(|i| {
        let (name, _) = tokens.get(i)?;
        let index = match tokens.get(i + 1) {
            Some((dot, false)) if dot == "." => tokens.get(i + 2).map(|(n, _)| n.clone()),
            _ => None,
        };
        Some((name.clone(), index))
    });
    (action, table)
}

/// Splits PartiQL text into words, `"quoted identifiers"` (unquoted, with
/// a flag), and single punctuation characters; string literals are skipped.
fn partiql_tokens(text: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        if c == '"' || c == '\'' {
            let mut s = String::new();
            while let Some(n) = chars.next() {
                if n == c {
                    if chars.peek() == Some(&c) {
                        s.push(c);
                        chars.next();
                        continue;
                    }
                    break;
                }
                s.push(n);
            }
            if c == '"' {
                out.push((s, true));
            } else {
                out.push(("'".to_string(), false));
            }
            continue;
        }
        if c.is_alphanumeric() || c == '_' || c == '-' {
            let mut s = String::from(c);
            while let Some(&n) = chars.peek() {
                if n.is_alphanumeric() || n == '_' || n == '-' {
                    s.push(n);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push((s, false));
            continue;
        }
        out.push((c.to_string(), false));
    }
    out
}

#[cfg(test)]
#[path = "enforce_tests.rs"]
mod tests;
