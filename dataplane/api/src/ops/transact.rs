//! TransactWriteItems and TransactGetItems.
//!
//! This module decodes and validates the two requests in DynamoDB's order
//! and renders their responses; `executor` runs the decoded actions (and is
//! shared with PartiQL's ExecuteTransaction); `tokens` keeps
//! ClientRequestToken records.
//!
//! Order of checks of TransactWriteItems (each stage reports the first
//! failure, except the first, which reports all of them together):
//! 1. member constraints, in one "N validation errors detected" message, in
//!    member order: clientRequestToken (1..=36 characters),
//!    returnConsumedCapacity, returnItemCollectionMetrics, transactItems
//!    (1..=100 actions) and each action's required members, enum and table
//!    name (`transactItems.N.member.put.tableName`, ...);
//! 2. each action in request order: exactly one of ConditionCheck, Put,
//!    Delete, Update; its expression parameters, item or key, expressions
//!    (syntax, unused names and values) and item size — all before any
//!    table is looked up;
//! 3. the 4 MB limit on the transaction's items;
//! 4. the executor: tables, key checks, duplicates, token, the write.
//!
//! Atomicity, isolation and why TransactionConflictException never arises
//! in standalone mode: see `partita_storage::transact` — every write passes
//! one writer thread, a transaction is prepared and committed with nothing
//! in between and lands in one atomic engine batch, and reads read
//! snapshots. A conflicting write is simply ordered before or after it.
//! In cluster mode a transaction across Raft groups locks its items from
//! prepare to commit: a write meeting a lock fails with
//! TransactionConflictException, an action meeting one gets the
//! `TransactionConflict` cancellation reason (`StorageError::TransactionConflict`).
//!
//! Capacity: a transaction costs twice the plain operation — 2 write units
//! per KB (of the larger of the old and new item) per write action, and 2
//! read units per 4 KB per get. A replayed token reports read units.

mod executor;
mod tokens;

use partita_expr::ExpressionKind;
use partita_model::value::item_size;
use partita_model::Item;
use serde_json::{json, Map as JsonMap, Value};

use super::common::{
    check_enum, check_item_size, consumed_capacity, put_opt, CapacityMode, ExprParams,
    RETURN_CONSUMED_CAPACITY, RETURN_ITEM_COLLECTION_METRICS, RETURN_VALUES_ON_CCF,
};
use crate::codec;
use crate::error::ApiError;
use crate::request::{check_name, quoted, wrong_type, Request, Violations};
use crate::Api;

// The executor's interface, shared with PartiQL's ExecuteTransaction.
#[allow(unused_imports)]
pub(crate) use executor::{
    cancelled, duplicate_items, run_get_transaction, run_write_transaction, Reason, TxAction,
    TxCommitted, TxRead, TxWrite,
};
pub use tokens::TokenCache;

/// Most actions of one transaction.
pub(crate) const MAX_ACTIONS: usize = 100;

/// Most bytes of items one write transaction may carry.
pub(crate) const MAX_TRANSACTION_BYTES: usize = 4 * 1024 * 1024;

/// The action members of a TransactWriteItem, with their constraint paths,
/// in the order DynamoDB reports them.
const WRITE_ACTIONS: [(&str, &str); 4] = [
    ("ConditionCheck", "conditionCheck"),
    ("Delete", "delete"),
    ("Put", "put"),
    ("Update", "update"),
];

/// Returns a fingerprint of a request member, for ClientRequestToken
/// comparisons. serde_json objects iterate in key order, so equal requests
/// render equally. The hash (64-bit FNV-1a) is fixed by this code, not by
/// the standard library: in cluster mode fingerprints are replicated and
/// compared by other gateway processes, possibly of another build.
pub(crate) fn request_fingerprint(value: &Value) -> u64 {
    value
        .to_string()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

/// Renders a list the way DynamoDB echoes it in a length violation.
fn echo_list(list: &[Value], element: &str) -> String {
    let rendered: Vec<String> = (0..list.len())
        .map(|i| {
            format!(
                "com.amazonaws.dynamodb.v20120810.{element}@{:08x}",
                0x2a00_0000 + i
            )
        })
        .collect();
    quoted(&format!("[{}]", rendered.join(", ")))
}

/// Records the length violations of the `TransactItems` list.
fn check_items_length(
    violations: &mut Violations,
    items: Option<&Vec<Value>>,
    element: &str,
) -> Result<(), ApiError> {
    match items {
        None => violations.push_null("transactItems"),
        Some(list) if list.is_empty() => violations.push(
            &echo_list(list, element),
            "transactItems",
            "Member must have length greater than or equal to 1",
        ),
        Some(list) if list.len() > MAX_ACTIONS => violations.push(
            &echo_list(list, element),
            "transactItems",
            &format!("Member must have length less than or equal to {MAX_ACTIONS}"),
        ),
        Some(_) => {}
    }
    Ok(())
}

/// Records the violations of an action's table name and resolves an ARN of
/// this endpoint to the name.
fn check_action_table<'a>(
    api: &Api,
    violations: &mut Violations,
    name: Option<&'a str>,
    path: &str,
) -> Option<&'a str> {
    let prefix = api.table_arn("");
    if let Some(resolved) = name
        .and_then(|n| n.strip_prefix(prefix.as_str()))
        .filter(|n| !n.is_empty() && !n.contains('/'))
    {
        return Some(resolved);
    }
    check_name(violations, name, path, 1, 255);
    name
}

/// Records the constraint violations of one action object.
fn check_action_members(
    api: &Api,
    violations: &mut Violations,
    action: &Request,
    path: &str,
    required: &[(&str, &str)],
    with_return_values: bool,
) -> Result<(), ApiError> {
    for (member, member_path) in required {
        if !action.has(member) {
            violations.push_null(&format!("{path}.{member_path}"));
        }
    }
    if with_return_values {
        check_enum(
            violations,
            action,
            "ReturnValuesOnConditionCheckFailure",
            &format!("{path}.returnValuesOnConditionCheckFailure"),
            RETURN_VALUES_ON_CCF,
        )?;
    }
    let table = action.str("TableName")?;
    check_action_table(api, violations, table, &format!("{path}.tableName"));
    Ok(())
}

/// Decodes an action member as an object (SerializationException otherwise).
fn action_object(value: &Value, shape: &str) -> Result<Request, ApiError> {
    match value {
        Value::Object(obj) => Ok(Request::from_object(obj.clone())),
        other => Err(wrong_type(other, shape)),
    }
}

fn table_of(api: &Api, action: &Request) -> Result<String, ApiError> {
    let mut scratch = Violations::new();
    let name = check_action_table(api, &mut scratch, action.str("TableName")?, "tableName");
    Ok(name.unwrap_or_default().to_owned())
}

fn member_item(action: &Request, member: &str) -> Result<Item, ApiError> {
    codec::item_from_json(action.get(member).unwrap_or(&Value::Null))
}

/// Decodes one write action (stage 2 of the module docs).
fn decode_write_action(api: &Api, kind: &str, action: &Request) -> Result<TxAction, ApiError> {
    let table = table_of(api, action)?;
    let params = ExprParams::from_request(action)?;
    let write = match kind {
        "Put" => {
            params.check_used_with_expressions(action, &["ConditionExpression"])?;
            let item = member_item(action, "Item")?;
            let mut attrs = params.attributes();
            let condition = parse_condition(action, &mut attrs)?;
            attrs.check_all_used()?;
            check_item_size(&item)?;
            TxWrite::Put { item, condition }
        }
        "Update" => {
            params.check_used_with_expressions(
                action,
                &["UpdateExpression", "ConditionExpression"],
            )?;
            let key = member_item(action, "Key")?;
            let mut attrs = params.attributes();
            let update = partita_expr::parse_update(
                action.str("UpdateExpression")?.unwrap_or_default(),
                &mut attrs,
            )?;
            let condition = parse_condition(action, &mut attrs)?;
            attrs.check_all_used()?;
            TxWrite::Update {
                key,
                update,
                condition,
            }
        }
        "Delete" => {
            params.check_used_with_expressions(action, &["ConditionExpression"])?;
            let key = member_item(action, "Key")?;
            let mut attrs = params.attributes();
            let condition = parse_condition(action, &mut attrs)?;
            attrs.check_all_used()?;
            TxWrite::Delete { key, condition }
        }
        _ => {
            params.check_used_with_expressions(action, &["ConditionExpression"])?;
            let key = member_item(action, "Key")?;
            let mut attrs = params.attributes();
            let condition = parse_condition(action, &mut attrs)?;
            attrs.check_all_used()?;
            let Some(condition) = condition else {
                let mut v = Violations::new();
                v.push_null("conditionExpression");
                return Err(v.into_result().err().unwrap_or_else(ApiError::internal));
            };
            TxWrite::ConditionCheck { key, condition }
        }
    };
    Ok(TxAction {
        table,
        write,
        return_old_on_failure: action.str("ReturnValuesOnConditionCheckFailure")?
            == Some("ALL_OLD"),
    })
}

fn parse_condition(
    action: &Request,
    attrs: &mut partita_expr::ExpressionAttributes<'_>,
) -> Result<Option<partita_expr::Condition>, ApiError> {
    match action.str("ConditionExpression")? {
        Some(expr) => Ok(Some(partita_expr::parse_condition(
            ExpressionKind::Condition,
            expr,
            attrs,
        )?)),
        None => Ok(None),
    }
}

/// The bytes an action contributes to the 4 MB limit.
fn payload_size(write: &TxWrite) -> usize {
    match write {
        TxWrite::Put { item, .. } => item_size(item),
        TxWrite::Update { key, .. }
        | TxWrite::Delete { key, .. }
        | TxWrite::ConditionCheck { key, .. } => item_size(key),
    }
}

fn render_capacity(capacity: &[(String, f64)], mode: CapacityMode, write: bool) -> Option<Value> {
    if mode == CapacityMode::None {
        return None;
    }
    Some(Value::Array(
        capacity
            .iter()
            .filter_map(|(table, units)| consumed_capacity(table, *units, mode, write))
            .collect(),
    ))
}

/// Renders ItemCollectionMetrics for the writes that report a collection
/// size (tables with local indexes).
fn render_collection_metrics(api: &Api, actions: &[TxAction], committed: &TxCommitted) -> Value {
    let mut out = JsonMap::new();
    for (action, outcome) in actions.iter().zip(&committed.outcomes) {
        let Some(size) = outcome.item_collection_size else {
            continue;
        };
        let Ok(def) = api.store.table(&action.table) else {
            continue;
        };
        let item = match &action.write {
            TxWrite::Put { item, .. } => item,
            TxWrite::Update { key, .. }
            | TxWrite::Delete { key, .. }
            | TxWrite::ConditionCheck { key, .. } => key,
        };
        let Some(hash) = item.get(&def.key_schema.hash.name) else {
            continue;
        };
        let gb = size as f64 / (1024.0 * 1024.0 * 1024.0);
        let metrics = json!({
            "ItemCollectionKey": {def.key_schema.hash.name.clone(): codec::value_to_json(hash)},
            "SizeEstimateRangeGB": [gb.floor(), gb.floor() + 1.0],
        });
        if let Value::Array(list) = out
            .entry(action.table.clone())
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            list.push(metrics);
        }
    }
    Value::Object(out)
}

pub async fn transact_write_items(api: &Api, req: Request) -> Result<Value, ApiError> {
    // Stage 1: member constraints.
    let mut violations = Violations::new();
    let token = req.str("ClientRequestToken")?;
    if let Some(token) = token {
        if token.is_empty() {
            violations.push(
                &quoted(token),
                "clientRequestToken",
                "Member must have length greater than or equal to 1",
            );
        } else if token.chars().count() > 36 {
            violations.push(
                &quoted(token),
                "clientRequestToken",
                "Member must have length less than or equal to 36",
            );
        }
    }
    let rcc = check_enum(
        &mut violations,
        &req,
        "ReturnConsumedCapacity",
        "returnConsumedCapacity",
        RETURN_CONSUMED_CAPACITY,
    )?;
    let ricm = check_enum(
        &mut violations,
        &req,
        "ReturnItemCollectionMetrics",
        "returnItemCollectionMetrics",
        RETURN_ITEM_COLLECTION_METRICS,
    )?;
    let items = req.array("TransactItems")?;
    check_items_length(&mut violations, items, "TransactWriteItem")?;
    let items = items.map(Vec::as_slice).unwrap_or_default();
    for (i, element) in items.iter().enumerate() {
        let Value::Object(element) = element else {
            continue;
        };
        for (member, path_name) in WRITE_ACTIONS {
            let Some(Value::Object(obj)) = element.get(member) else {
                continue;
            };
            let action = Request::from_object(obj.clone());
            let path = format!("transactItems.{}.member.{path_name}", i + 1);
            let required: &[(&str, &str)] = match member {
                "ConditionCheck" => &[
                    ("ConditionExpression", "conditionExpression"),
                    ("Key", "key"),
                ],
                "Put" => &[("Item", "item")],
                "Update" => &[("Key", "key"), ("UpdateExpression", "updateExpression")],
                _ => &[("Key", "key")],
            };
            check_action_members(api, &mut violations, &action, &path, required, true)?;
        }
    }
    violations.into_result()?;
    // Stage 2: each action, in order.
    let mut actions = Vec::with_capacity(items.len());
    let mut payload = 0;
    for element in items {
        let element = action_object(element, "TransactWriteItem")?;
        let present: Vec<&str> = WRITE_ACTIONS
            .iter()
            .map(|(member, _)| *member)
            .filter(|member| element.has(member))
            .collect();
        let kind = match present.as_slice() {
            [one] => *one,
            [] => {
                return Err(ApiError::validation(
                    "Invalid Request: TransactWriteRequest should contain Delete or Put or Update request",
                ))
            }
            _ => {
                return Err(ApiError::validation(
                    "TransactItems can only contain one of Check, Put, Update or Delete",
                ))
            }
        };
        let action = action_object(element.get(kind).unwrap_or(&Value::Null), kind)?;
        let action = decode_write_action(api, kind, &action)?;
        payload += payload_size(&action.write);
        actions.push(action);
    }
    // Stage 3: the transaction's size.
    if payload > MAX_TRANSACTION_BYTES {
        return Err(ApiError::validation(format!(
            "Transaction payload size cannot exceed 4MB. Payload Size: {payload}"
        )));
    }
    // Stage 4: the executor.
    let token = token.map(|t| {
        (
            t.to_owned(),
            request_fingerprint(req.get("TransactItems").unwrap_or(&Value::Null)),
        )
    });
    let committed = run_write_transaction(api, actions.clone(), token).await?;
    let mode = CapacityMode::parse(rcc);
    let mut out = JsonMap::new();
    put_opt(
        &mut out,
        "ConsumedCapacity",
        render_capacity(&committed.capacity, mode, !committed.replayed),
    );
    if ricm == Some("SIZE") && !committed.replayed {
        let metrics = render_collection_metrics(api, &actions, &committed);
        if metrics.as_object().is_some_and(|m| !m.is_empty()) {
            out.insert("ItemCollectionMetrics".into(), metrics);
        }
    }
    Ok(Value::Object(out))
}

pub async fn transact_get_items(api: &Api, req: Request) -> Result<Value, ApiError> {
    let mut violations = Violations::new();
    let rcc = check_enum(
        &mut violations,
        &req,
        "ReturnConsumedCapacity",
        "returnConsumedCapacity",
        RETURN_CONSUMED_CAPACITY,
    )?;
    let items = req.array("TransactItems")?;
    check_items_length(&mut violations, items, "TransactGetItem")?;
    let items = items.map(Vec::as_slice).unwrap_or_default();
    for (i, element) in items.iter().enumerate() {
        let Value::Object(element) = element else {
            continue;
        };
        let path = format!("transactItems.{}.member.get", i + 1);
        match element.get("Get") {
            Some(Value::Object(obj)) => {
                let get = Request::from_object(obj.clone());
                check_action_members(api, &mut violations, &get, &path, &[("Key", "key")], false)?;
            }
            None | Some(Value::Null) => violations.push_null(&path),
            Some(_) => {}
        }
    }
    violations.into_result()?;
    let mut gets = Vec::with_capacity(items.len());
    for element in items {
        let element = action_object(element, "TransactGetItem")?;
        let get = action_object(element.get("Get").unwrap_or(&Value::Null), "Get")?;
        let table = table_of(api, &get)?;
        let params = ExprParams::from_request(&get)?;
        params.check_used_with_expressions(&get, &["ProjectionExpression"])?;
        let key = member_item(&get, "Key")?;
        let mut attrs = params.attributes();
        let projection = match get.str("ProjectionExpression")? {
            Some(expr) => Some(partita_expr::parse_projection(expr, &mut attrs)?),
            None => None,
        };
        attrs.check_all_used()?;
        gets.push((table, key, projection));
    }
    let read = run_get_transaction(api, gets).await?;
    let responses: Vec<Value> = read
        .items
        .iter()
        .map(|item| match item {
            Some(item) => json!({"Item": codec::item_to_json(item)}),
            None => json!({}),
        })
        .collect();
    let mut out = JsonMap::new();
    put_opt(
        &mut out,
        "ConsumedCapacity",
        render_capacity(&read.capacity, CapacityMode::parse(rcc), false),
    );
    out.insert("Responses".into(), Value::Array(responses));
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_fingerprints_are_stable_across_builds() {
        // Pinned: replicated token records compare fingerprints made by
        // other processes.
        assert_eq!(
            request_fingerprint(&serde_json::json!({"a": 1})),
            0x9c3e_82dd_6fca_e8b1
        );
        assert_ne!(
            request_fingerprint(&serde_json::json!({"a": 1})),
            request_fingerprint(&serde_json::json!({"a": 2}))
        );
    }
}
