//! PutItem, GetItem, UpdateItem, DeleteItem.

use std::sync::Arc;

use partita_expr::{Path, ProjectionExpression, UpdateExpression};
use partita_model::value::item_size;
use partita_model::{Item, TableDefinition};
use partita_storage::{StorageError, WriteCommand, WriteOutcome};
use serde_json::{Map as JsonMap, Value};

use super::common::{
    check_common, check_item_size, check_not_mixed, consumed_capacity, item_collection_metrics,
    key_member, load_table, path_root, projection, put_opt, read_units, validate_item_key,
    validate_key, write_condition, write_units, ExprParams, INVALID, RETURN_VALUES,
};
use crate::codec;
use crate::error::ApiError;
use crate::request::{Request, Violations};
use crate::Api;

/// Maps a storage failure of a conditional write, attaching the current item
/// when ReturnValuesOnConditionCheckFailure=ALL_OLD.
fn write_error(err: StorageError, return_old_on_failure: bool) -> ApiError {
    match err {
        StorageError::ConditionalCheckFailed { old } => {
            let item = if return_old_on_failure {
                old.as_deref()
            } else {
                None
            };
            ApiError::conditional_check_failed(item)
        }
        other => other.into(),
    }
}

fn return_old_on_failure(req: &Request) -> Result<bool, ApiError> {
    Ok(req.str("ReturnValuesOnConditionCheckFailure")? == Some("ALL_OLD"))
}

/// Returns the table's definition as this request's capacity plan loaded
/// it, else loads it.
fn planned_or_load(api: &Api, table: &str) -> Result<Arc<TableDefinition>, ApiError> {
    match crate::capacity::planned_def(table) {
        Some(def) => Ok(def),
        None => Ok(Arc::new(load_table(api, table)?)),
    }
}

fn require(req: &Request, member: &str, path: &str) -> Result<(), ApiError> {
    if !req.has(member) {
        let mut v = Violations::new();
        v.push_null(path);
        v.into_result()?;
    }
    Ok(())
}

fn write_capacity(outcome: &WriteOutcome) -> f64 {
    let old = outcome.old.as_ref().map(item_size).unwrap_or(0);
    let new = outcome.new.as_ref().map(item_size).unwrap_or(0);
    write_units(old.max(new))
}

pub async fn put_item(api: &Api, req: Request) -> Result<Value, ApiError> {
    let (table, capacity, return_values) = check_common(api, &req, Some(RETURN_VALUES))?;
    require(&req, "Item", "item")?;
    check_not_mixed(&req, &["Expected"], &["ConditionExpression"])?;
    let params = ExprParams::from_request(&req)?;
    params.check_used_with_expressions(&req, &["ConditionExpression"])?;
    let item = match crate::capacity::take_planned_item() {
        Some(item) => item,
        None => codec::item_from_json(req.get("Item").unwrap_or(&Value::Null))?,
    };
    if !matches!(return_values, None | Some("NONE") | Some("ALL_OLD")) {
        return Err(ApiError::validation("Return values set to invalid value"));
    }
    let mut attrs = params.attributes();
    let condition = write_condition(&req, &mut attrs)?;
    attrs.check_all_used()?;
    let def = planned_or_load(api, table)?;
    validate_item_key(&def.key_schema, &item)?;
    check_item_size(&item)?;
    let metrics_key = (!def.local_indexes.is_empty())
        .then(|| def.key_schema.extract_key(&item))
        .flatten();
    let on_failure = return_old_on_failure(&req)?;
    let outcome = api
        .store
        .write(table, WriteCommand::Put { item, condition })
        .await
        .map_err(|e| write_error(e, on_failure))?;
    let mut out = JsonMap::new();
    if return_values == Some("ALL_OLD") {
        put_opt(
            &mut out,
            "Attributes",
            outcome.old.as_ref().map(codec::item_to_json),
        );
    }
    let units = write_capacity(&outcome);
    crate::capacity::report_units(table, units, true);
    put_opt(
        &mut out,
        "ConsumedCapacity",
        consumed_capacity(table, units, capacity, true),
    );
    put_opt(
        &mut out,
        "ItemCollectionMetrics",
        item_collection_metrics(
            &req,
            &def.key_schema,
            metrics_key.as_ref(),
            outcome.item_collection_size,
        )?,
    );
    Ok(Value::Object(out))
}

pub async fn get_item(api: &Api, req: Request) -> Result<Value, ApiError> {
    let (table, capacity, _) = check_common(api, &req, None)?;
    require(&req, "Key", "key")?;
    check_not_mixed(&req, &["AttributesToGet"], &["ProjectionExpression"])?;
    let params = ExprParams::from_request(&req)?;
    params.check_used_with_expressions(&req, &["ProjectionExpression"])?;
    let key = key_member(&req)?.unwrap_or_default();
    let consistent = req.bool("ConsistentRead")?.unwrap_or(false);
    let mut attrs = params.attributes();
    let projection = projection(&req, &mut attrs)?;
    attrs.check_all_used()?;
    let def = planned_or_load(api, table)?;
    validate_key(&def.key_schema, &key)?;
    let found = api.store.get_with(table, &key, consistent)?;
    let size = found.as_ref().map(item_size).unwrap_or(0);
    let mut out = JsonMap::new();
    if let Some(item) = found {
        let item = match &projection {
            Some(p) => p.apply(&item),
            None => item,
        };
        out.insert("Item".to_string(), codec::item_to_json(&item));
    }
    let units = read_units(size, consistent);
    crate::capacity::report_units(table, units, false);
    put_opt(
        &mut out,
        "ConsumedCapacity",
        consumed_capacity(table, units, capacity, false),
    );
    Ok(Value::Object(out))
}

pub async fn delete_item(api: &Api, req: Request) -> Result<Value, ApiError> {
    let (table, capacity, return_values) = check_common(api, &req, Some(RETURN_VALUES))?;
    require(&req, "Key", "key")?;
    check_not_mixed(&req, &["Expected"], &["ConditionExpression"])?;
    let params = ExprParams::from_request(&req)?;
    params.check_used_with_expressions(&req, &["ConditionExpression"])?;
    let key = key_member(&req)?.unwrap_or_default();
    if !matches!(return_values, None | Some("NONE") | Some("ALL_OLD")) {
        return Err(ApiError::validation("Return values set to invalid value"));
    }
    let mut attrs = params.attributes();
    let condition = write_condition(&req, &mut attrs)?;
    attrs.check_all_used()?;
    let def = planned_or_load(api, table)?;
    validate_key(&def.key_schema, &key)?;
    let metrics_key = (!def.local_indexes.is_empty()).then(|| key.clone());
    let on_failure = return_old_on_failure(&req)?;
    let outcome = api
        .store
        .write(table, WriteCommand::Delete { key, condition })
        .await
        .map_err(|e| write_error(e, on_failure))?;
    let mut out = JsonMap::new();
    if return_values == Some("ALL_OLD") {
        put_opt(
            &mut out,
            "Attributes",
            outcome.old.as_ref().map(codec::item_to_json),
        );
    }
    let units = write_capacity(&outcome);
    crate::capacity::report_units(table, units, true);
    put_opt(
        &mut out,
        "ConsumedCapacity",
        consumed_capacity(table, units, capacity, true),
    );
    put_opt(
        &mut out,
        "ItemCollectionMetrics",
        item_collection_metrics(
            &req,
            &def.key_schema,
            metrics_key.as_ref(),
            outcome.item_collection_size,
        )?,
    );
    Ok(Value::Object(out))
}

pub async fn update_item(api: &Api, req: Request) -> Result<Value, ApiError> {
    let (table, capacity, return_values) = check_common(api, &req, Some(RETURN_VALUES))?;
    require(&req, "Key", "key")?;
    check_not_mixed(
        &req,
        &["AttributeUpdates", "Expected"],
        &["UpdateExpression", "ConditionExpression"],
    )?;
    let params = ExprParams::from_request(&req)?;
    params.check_used_with_expressions(&req, &["UpdateExpression", "ConditionExpression"])?;
    let key = key_member(&req)?.unwrap_or_default();
    let mut attrs = params.attributes();
    let update = if let Some(expr) = req.str("UpdateExpression")? {
        partita_expr::parse_update(expr, &mut attrs)?
    } else if let Some(updates) = req.object("AttributeUpdates")? {
        super::legacy::attribute_updates(updates)?
    } else {
        UpdateExpression::default()
    };
    let condition = write_condition(&req, &mut attrs)?;
    attrs.check_all_used()?;
    let def = planned_or_load(api, table)?;
    validate_key(&def.key_schema, &key)?;
    let metrics_key = (!def.local_indexes.is_empty()).then(|| key.clone());
    let paths = updated_paths(&update);
    for path in &paths {
        if let Some(root) = path_root(path) {
            if def.key_schema.is_key_attribute(root) {
                return Err(ApiError::validation(format!(
                    "{INVALID}Cannot update attribute {root}. This attribute is part of the key"
                )));
            }
        }
    }
    let on_failure = return_old_on_failure(&req)?;
    let legacy_updates = req.has("AttributeUpdates");
    let outcome = api
        .store
        .write(
            table,
            WriteCommand::Update {
                key,
                update,
                condition,
            },
        )
        .await
        .map_err(|e| write_error(e, on_failure))
        .map_err(|e| {
            // The legacy API words an operand type error differently.
            if legacy_updates
                && e.message == "An operand in the update expression has an incorrect data type"
            {
                ApiError::validation("Type mismatch for attribute to update")
            } else {
                e
            }
        })?;
    let mut out = JsonMap::new();
    let attributes = match return_values {
        Some("ALL_OLD") => outcome.old.clone(),
        Some("ALL_NEW") => outcome.new.clone(),
        Some("UPDATED_OLD") => outcome.old.as_ref().map(|i| project_paths(&paths, i)),
        Some("UPDATED_NEW") => outcome.new.as_ref().map(|i| project_paths(&paths, i)),
        _ => None,
    };
    if let Some(item) = attributes.filter(|i| !i.is_empty()) {
        out.insert("Attributes".to_string(), codec::item_to_json(&item));
    }
    let units = write_capacity(&outcome);
    crate::capacity::report_units(table, units, true);
    put_opt(
        &mut out,
        "ConsumedCapacity",
        consumed_capacity(table, units, capacity, true),
    );
    put_opt(
        &mut out,
        "ItemCollectionMetrics",
        item_collection_metrics(
            &req,
            &def.key_schema,
            metrics_key.as_ref(),
            outcome.item_collection_size,
        )?,
    );
    Ok(Value::Object(out))
}

/// Returns every path an update writes or removes.
fn updated_paths(update: &UpdateExpression) -> Vec<Path> {
    update
        .set
        .iter()
        .map(|(p, _)| p.clone())
        .chain(update.remove.iter().cloned())
        .chain(update.add.iter().map(|(p, _)| p.clone()))
        .chain(update.delete.iter().map(|(p, _)| p.clone()))
        .collect()
}

fn project_paths(paths: &[Path], item: &Item) -> Item {
    ProjectionExpression(paths.to_vec()).apply(item)
}
