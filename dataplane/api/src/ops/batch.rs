//! BatchGetItem and BatchWriteItem, across several tables.

use partita_model::value::item_size;
use partita_model::{limits, Item};
use partita_storage::WriteCommand;
use serde_json::{json, Map as JsonMap, Value};

use super::common::{
    check_enum, check_item_size, consumed_capacity, load_table, read_units, validate_item_key,
    validate_key, write_units, CapacityMode, ExprParams, RETURN_CONSUMED_CAPACITY,
    RETURN_ITEM_COLLECTION_METRICS,
};
use crate::codec;
use crate::error::ApiError;
use crate::request::{check_name, wrong_type, Request, Violations};
use crate::Api;

fn duplicates() -> ApiError {
    ApiError::validation("Provided list of item keys contains duplicates")
}

fn has_duplicate(keys: &[Item]) -> bool {
    keys.iter().enumerate().any(|(i, k)| keys[..i].contains(k))
}

/// One table's part of a BatchGetItem.
struct GetTable {
    name: String,
    keys: Vec<Item>,
    projection: Option<partita_expr::ProjectionExpression>,
    consistent: bool,
}

pub async fn batch_get_item(api: &Api, req: Request) -> Result<Value, ApiError> {
    let mut violations = Violations::new();
    let rcc = check_enum(
        &mut violations,
        &req,
        "ReturnConsumedCapacity",
        "returnConsumedCapacity",
        RETURN_CONSUMED_CAPACITY,
    )?;
    let request_items = req.object("RequestItems")?;
    if let Some(items) = request_items {
        for (table, spec) in items {
            check_name(&mut violations, Some(table), "requestItems.key", 1, 1024);
            if let Some(Value::Array(keys)) = spec.get("Keys") {
                if keys.len() > limits::MAX_BATCH_GET_KEYS {
                    violations.push_without_value(
                        &format!("RequestItems.{table}.member.Keys"),
                        "Member must have length less than or equal to 100",
                    );
                }
            }
        }
    }
    violations.into_result()?;
    let capacity = CapacityMode::parse(rcc);
    let request_items = match request_items {
        Some(items) if !items.is_empty() => items,
        _ => {
            return Err(ApiError::validation(
                "The requestItems parameter is required for BatchGetItem",
            ))
        }
    };
    let mut tables = Vec::with_capacity(request_items.len());
    let mut total = 0;
    for (name, spec) in request_items {
        let spec = match spec {
            Value::Object(obj) => Request::from_object(obj.clone()),
            other => return Err(wrong_type(other, "KeysAndAttributes")),
        };
        let keys_json = spec.array("Keys")?.cloned().unwrap_or_default();
        if keys_json.is_empty() {
            let mut v = Violations::new();
            v.push_without_value(
                &format!("RequestItems.{name}.member.Keys"),
                "Member must have length greater than or equal to 1",
            );
            v.into_result()?;
        }
        total += keys_json.len();
        let mut keys = Vec::with_capacity(keys_json.len());
        for k in &keys_json {
            keys.push(codec::item_from_json(k)?);
        }
        super::common::check_not_mixed(&spec, &["AttributesToGet"], &["ProjectionExpression"])?;
        let params = ExprParams::from_request(&spec)?;
        params.check_used_with_expressions(&spec, &["ProjectionExpression"])?;
        let mut attrs = params.attributes();
        let projection = super::common::projection(&spec, &mut attrs)?;
        attrs.check_all_used()?;
        let consistent = spec.bool("ConsistentRead")?.unwrap_or(false);
        tables.push(GetTable {
            name: name.clone(),
            keys,
            projection,
            consistent,
        });
    }
    if total > limits::MAX_BATCH_GET_KEYS {
        return Err(ApiError::validation(
            "Too many items requested for the BatchGetItem call",
        ));
    }
    for table in &tables {
        let def = load_table(api, &table.name)?;
        for key in &table.keys {
            validate_key(&def.key_schema, key)?;
        }
        if has_duplicate(&table.keys) {
            return Err(duplicates());
        }
    }
    let mut responses = JsonMap::new();
    let mut consumed = Vec::new();
    for table in &tables {
        let mut found = Vec::new();
        let mut units = 0.0;
        for key in &table.keys {
            let item = api.store.get(&table.name, key)?;
            units += read_units(item.as_ref().map(item_size).unwrap_or(0), table.consistent);
            if let Some(item) = item {
                let item = match &table.projection {
                    Some(p) => p.apply(&item),
                    None => item,
                };
                found.push(codec::item_to_json(&item));
            }
        }
        responses.insert(table.name.clone(), Value::Array(found));
        if let Some(c) = consumed_capacity(&table.name, units, capacity, false) {
            consumed.push(c);
        }
    }
    let mut out = JsonMap::new();
    out.insert("Responses".to_string(), Value::Object(responses));
    out.insert("UnprocessedKeys".to_string(), json!({}));
    if capacity != CapacityMode::None {
        out.insert("ConsumedCapacity".to_string(), Value::Array(consumed));
    }
    Ok(Value::Object(out))
}

pub async fn batch_write_item(api: &Api, req: Request) -> Result<Value, ApiError> {
    let mut violations = Violations::new();
    let rcc = check_enum(
        &mut violations,
        &req,
        "ReturnConsumedCapacity",
        "returnConsumedCapacity",
        RETURN_CONSUMED_CAPACITY,
    )?;
    check_enum(
        &mut violations,
        &req,
        "ReturnItemCollectionMetrics",
        "returnItemCollectionMetrics",
        RETURN_ITEM_COLLECTION_METRICS,
    )?;
    let request_items = req.object("RequestItems")?;
    if let Some(items) = request_items {
        for (table, requests) in items {
            check_name(&mut violations, Some(table), "requestItems.key", 1, 1024);
            if let Value::Array(list) = requests {
                if list.is_empty() || list.len() > limits::MAX_BATCH_WRITE_REQUESTS {
                    let rendered = (0..list.len())
                        .map(|i| {
                            format!(
                                "com.amazonaws.dynamodb.v20120810.WriteRequest@{:08x}",
                                0x1f00_0000 + i
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", ");
                    violations.push(
                        &format!("'{{{table}=[{rendered}]}}'"),
                        "requestItems",
                        "Map value must satisfy constraint: [Member must have length less than or equal to 25, Member must have length greater than or equal to 1]",
                    );
                }
            }
        }
    }
    violations.into_result()?;
    let capacity = CapacityMode::parse(rcc);
    let request_items = match request_items {
        Some(items) if !items.is_empty() => items,
        _ => {
            return Err(ApiError::validation(
                "The requestItems parameter is required for BatchWriteItem",
            ))
        }
    };
    let total: usize = request_items
        .values()
        .map(|v| v.as_array().map(Vec::len).unwrap_or(0))
        .sum();
    if total > limits::MAX_BATCH_WRITE_REQUESTS {
        return Err(ApiError::validation(
            "Too many items requested for the BatchWriteItem call",
        ));
    }
    // Decode and validate everything before writing anything.
    let mut writes: Vec<(String, WriteCommand, Item)> = Vec::with_capacity(total);
    for (name, requests) in request_items {
        let list = match requests {
            Value::Array(list) => list,
            other => return Err(wrong_type(other, "List")),
        };
        let def = load_table(api, name)?;
        let mut keys = Vec::with_capacity(list.len());
        for request in list {
            let request = match request {
                Value::Object(obj) => Request::from_object(obj.clone()),
                other => return Err(wrong_type(other, "WriteRequest")),
            };
            let put = request.object("PutRequest")?;
            let delete = request.object("DeleteRequest")?;
            let (command, key) = match (put, delete) {
                (Some(put), None) => {
                    let item = codec::item_from_json(put.get("Item").unwrap_or(&Value::Null))?;
                    validate_item_key(&def.key_schema, &item)?;
                    check_item_size(&item)?;
                    // A wrong index key type fails the whole batch, before
                    // any of it is written.
                    for index in def.local_indexes.iter().chain(&def.global_indexes) {
                        partita_storage::index::check_index_keys(index, &item)?;
                    }
                    let key = def.key_schema.extract_key(&item).unwrap_or_default();
                    (WriteCommand::Put { item, condition: None }, key)
                }
                (None, Some(delete)) => {
                    let key = codec::item_from_json(delete.get("Key").unwrap_or(&Value::Null))?;
                    validate_key(&def.key_schema, &key)?;
                    (WriteCommand::Delete { key: key.clone(), condition: None }, key)
                }
                _ => {
                    return Err(ApiError::validation(
                        "One or more parameter values were invalid: A WriteRequest must contain exactly one of PutRequest or DeleteRequest",
                    ))
                }
            };
            keys.push(key.clone());
            writes.push((name.clone(), command, key));
        }
        if has_duplicate(&keys) {
            return Err(duplicates());
        }
    }
    let results = futures::future::join_all(
        writes
            .iter()
            .map(|(table, command, _)| api.store.write(table, command.clone())),
    )
    .await;
    let mut units: Vec<(String, f64)> = Vec::new();
    for ((table, _, _), result) in writes.iter().zip(results) {
        let outcome = result?;
        let old = outcome.old.as_ref().map(item_size).unwrap_or(0);
        let new = outcome.new.as_ref().map(item_size).unwrap_or(0);
        let u = write_units(old.max(new));
        match units.iter_mut().find(|(t, _)| t == table) {
            Some((_, total)) => *total += u,
            None => units.push((table.clone(), u)),
        }
    }
    let mut out = JsonMap::new();
    out.insert("UnprocessedItems".to_string(), json!({}));
    if capacity != CapacityMode::None {
        let consumed: Vec<Value> = units
            .iter()
            .filter_map(|(t, u)| consumed_capacity(t, *u, capacity, true))
            .collect();
        out.insert("ConsumedCapacity".to_string(), Value::Array(consumed));
    }
    Ok(Value::Object(out))
}
