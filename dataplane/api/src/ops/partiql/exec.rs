//! Running planned statements against the store: reads with Limit, the
//! 1 MB page rule and NextToken; writes as storage commands with DynamoDB's
//! PartiQL errors (DuplicateItemException for an INSERT of an existing key)
//! and RETURNING values.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use partita_expr::{Condition, Path, ProjectionExpression};
use partita_model::value::item_size;
use partita_model::{limits, AttributeValue, Item, TableDefinition};
use partita_storage::{StorageError, Visit, WriteCommand, WriteOutcome};
use serde_json::{json, Value};

use super::plan::{Access, ReadPlan, WritePlan};
use crate::codec;
use crate::error::{ApiError, ErrorKind};
use crate::Api;

/// One page of a SELECT.
pub struct ReadPage {
    pub items: Vec<Item>,
    /// The key to resume after, when the page stopped early.
    pub last_key: Option<Item>,
    /// Bytes read (for capacity).
    pub read_bytes: usize,
}

/// Runs a SELECT from `start` (exclusive), reading at most `limit` items.
pub fn run_read(
    api: &Api,
    def: &TableDefinition,
    plan: &ReadPlan,
    limit: Option<usize>,
    start: Option<&Item>,
) -> Result<ReadPage, ApiError> {
    let mut page = ReadPage {
        items: Vec::new(),
        last_key: None,
        read_bytes: 0,
    };
    if let Access::Get(key) = &plan.access {
        if start.is_some() {
            return Ok(page);
        }
        if let Some(item) = api.store.get(&plan.table, key)? {
            page.read_bytes = item_size(&item);
            if plan.matches(&item)? {
                page.items.push(plan.project(item));
            }
        }
        return Ok(page);
    }
    let mut scanned = 0usize;
    let mut failure: Option<ApiError> = None;
    let mut visit = |item: Item| -> Visit {
        scanned += 1;
        page.read_bytes += item_size(&item);
        let stop = limit.is_some_and(|l| scanned >= l) || page.read_bytes >= limits::MAX_PAGE_BYTES;
        if stop {
            page.last_key = page_key(def, plan.index.as_deref(), &item);
        }
        match plan.matches(&item) {
            Ok(true) => page.items.push(plan.project(item)),
            Ok(false) => {}
            Err(e) => {
                failure = Some(e);
                return Visit::Stop;
            }
        }
        if stop {
            Visit::Stop
        } else {
            Visit::Continue
        }
    };
    let index = plan.index.as_deref();
    match (&plan.access, index) {
        (
            Access::Query {
                hash,
                sort,
                forward,
            },
            None,
        ) => api.store.query(
            &plan.table,
            hash,
            sort.as_ref(),
            *forward,
            start,
            &mut visit,
        )?,
        (
            Access::Query {
                hash,
                sort,
                forward,
            },
            Some(index),
        ) => api.store.query_index(
            &plan.table,
            index,
            hash,
            sort.as_ref(),
            *forward,
            start,
            &mut visit,
        )?,
        (Access::Scan, None) => api.store.scan(&plan.table, 0, 1, start, &mut visit)?,
        (Access::Scan, Some(index)) => {
            api.store
                .scan_index(&plan.table, index, 0, 1, start, &mut visit)?
        }
        (Access::Get(_), _) => {}
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(page)
}

/// The key attributes that resume a read: the table's, plus the index's
/// when reading an index.
fn key_attributes<'d>(def: &'d TableDefinition, index: Option<&str>) -> Vec<&'d str> {
    let mut names: Vec<&str> = def
        .key_schema
        .attributes()
        .map(|a| a.name.as_str())
        .collect();
    let index_def = def
        .global_indexes
        .iter()
        .chain(&def.local_indexes)
        .find(|i| Some(i.name.as_str()) == index);
    if let Some(i) = index_def {
        for a in i.key_schema.attributes() {
            if !names.contains(&a.name.as_str()) {
                names.push(&a.name);
            }
        }
    }
    names
}

/// The pagination key of `item`.
fn page_key(def: &TableDefinition, index: Option<&str>, item: &Item) -> Option<Item> {
    let mut key = Item::new();
    for name in key_attributes(def, index) {
        key.insert(name.to_string(), item.get(name)?.clone());
    }
    Some(key)
}

/// The hash binding a NextToken to its statement and parameters.
fn request_hash(statement: &str, params: &[AttributeValue]) -> String {
    let mut h = DefaultHasher::new();
    statement.hash(&mut h);
    for p in params {
        codec::value_to_json(p).to_string().hash(&mut h);
    }
    format!("{:016x}", h.finish())
}

/// Encodes the NextToken resuming after `last_key`.
pub fn encode_token(statement: &str, params: &[AttributeValue], last_key: &Item) -> String {
    let body = json!({
        "v": 1,
        "h": request_hash(statement, params),
        "k": codec::item_to_json(last_key),
    });
    BASE64.encode(body.to_string())
}

/// Decodes a NextToken given with `statement` and `params`.
pub fn decode_token(
    token: &str,
    statement: &str,
    params: &[AttributeValue],
    def: &TableDefinition,
    index: Option<&str>,
) -> Result<Item, ApiError> {
    let invalid = || ApiError::validation("Invalid NextToken");
    let bytes = BASE64.decode(token.as_bytes()).map_err(|_| invalid())?;
    let body: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if body.get("v") != Some(&json!(1)) {
        return Err(invalid());
    }
    if body.get("h").and_then(Value::as_str) != Some(request_hash(statement, params).as_str()) {
        return Err(ApiError::validation("NextToken does not match request"));
    }
    let key =
        codec::item_from_json(body.get("k").unwrap_or(&Value::Null)).map_err(|_| invalid())?;
    let names = key_attributes(def, index);
    let well_formed = key.len() == names.len() && names.iter().all(|n| key.contains_key(*n));
    if !well_formed {
        return Err(invalid());
    }
    Ok(key)
}

/// The storage command of a planned write (EXISTS checks have none).
pub fn write_command(plan: &WritePlan, def: &TableDefinition) -> Option<(String, WriteCommand)> {
    let command = match plan {
        WritePlan::Insert { item, .. } => WriteCommand::Put {
            item: item.clone(),
            condition: Some(Condition::AttributeNotExists(Path::attribute(
                def.key_schema.hash.name.clone(),
            ))),
        },
        WritePlan::Update {
            key,
            update,
            condition,
            ..
        } => WriteCommand::Update {
            key: key.clone(),
            update: update.clone(),
            condition: Some(condition.clone()),
        },
        WritePlan::Delete { key, condition, .. } => WriteCommand::Delete {
            key: key.clone(),
            condition: condition.clone(),
        },
        WritePlan::Check { .. } => return None,
    };
    Some((plan.table().to_string(), command))
}

/// The DuplicateItemException of an INSERT whose key exists.
pub fn duplicate_item() -> ApiError {
    ApiError::new(
        ErrorKind::DuplicateItem,
        "Duplicate primary key exists in table",
    )
}

/// Maps the storage result of a planned write to the item RETURNING asks
/// for, or DynamoDB's error.
pub fn write_result(
    plan: &WritePlan,
    result: Result<WriteOutcome, StorageError>,
    return_old_on_failure: bool,
) -> Result<(Option<Item>, f64), ApiError> {
    let outcome = match result {
        Ok(o) => o,
        Err(StorageError::ConditionalCheckFailed { old }) => {
            if matches!(plan, WritePlan::Insert { .. }) {
                return Err(duplicate_item());
            }
            let item = if return_old_on_failure {
                old.as_deref()
            } else {
                None
            };
            return Err(ApiError::conditional_check_failed(item));
        }
        Err(other) => return Err(other.into()),
    };
    let size = outcome
        .old
        .as_ref()
        .map(item_size)
        .unwrap_or(0)
        .max(outcome.new.as_ref().map(item_size).unwrap_or(0));
    let units = crate::ops::common::write_units(size);
    let returned = match (plan, plan.returning()) {
        (_, None) => None,
        (WritePlan::Update { update, .. }, Some(r)) => {
            let image = if r.new { outcome.new } else { outcome.old };
            if r.all {
                image
            } else {
                let paths: Vec<Path> = update.target_paths().cloned().collect();
                image.map(|i| ProjectionExpression(paths).apply(&i))
            }
        }
        (_, Some(_)) => outcome.old,
    };
    Ok((returned.filter(|i| !i.is_empty()), units))
}
