//! Helpers shared by the item, query and batch operations: request members
//! common to them, key validation against a table's schema, and consumed
//! capacity arithmetic.

use std::collections::HashMap;

use partita_expr::{ExpressionAttributes, ExpressionKind, Path, PathElement, ProjectionExpression};
use partita_model::{limits, AttributeValue, Item, KeySchema, TableDefinition};
use serde_json::{json, Map as JsonMap, Value};

use crate::codec;
use crate::error::ApiError;
use crate::request::{check_name, quoted, Request, Violations};
use crate::Api;

pub const INVALID: &str = "One or more parameter values were invalid: ";

pub const RETURN_VALUES: &[&str] = &["ALL_NEW", "UPDATED_OLD", "ALL_OLD", "NONE", "UPDATED_NEW"];
pub const RETURN_CONSUMED_CAPACITY: &[&str] = &["INDEXES", "TOTAL", "NONE"];
pub const RETURN_ITEM_COLLECTION_METRICS: &[&str] = &["SIZE", "NONE"];
pub const RETURN_VALUES_ON_CCF: &[&str] = &["ALL_OLD", "NONE"];
pub const CONDITIONAL_OPERATOR: &[&str] = &["AND", "OR"];
pub const SELECT: &[&str] = &[
    "SPECIFIC_ATTRIBUTES",
    "COUNT",
    "ALL_ATTRIBUTES",
    "ALL_PROJECTED_ATTRIBUTES",
];

/// Records a violation when string member `member` (reported at `path`) is
/// present but not one of `allowed`; returns its value when valid.
pub fn check_enum<'r>(
    violations: &mut Violations,
    req: &'r Request,
    member: &str,
    path: &str,
    allowed: &[&str],
) -> Result<Option<&'r str>, ApiError> {
    let value = req.str(member)?;
    if let Some(v) = value {
        if !allowed.contains(&v) {
            violations.push(
                &quoted(v),
                path,
                &format!(
                    "Member must satisfy enum value set: [{}]",
                    allowed.join(", ")
                ),
            );
            return Ok(None);
        }
    }
    Ok(value)
}

/// Records the table name violations of a data-plane request and returns the
/// table's name; a table ARN of this endpoint's region and account is
/// resolved to the name, as DynamoDB accepts ARNs in data-plane calls.
pub fn check_table_name<'r>(
    api: &Api,
    violations: &mut Violations,
    req: &'r Request,
) -> Result<Option<&'r str>, ApiError> {
    let name = req.str("TableName")?;
    if let Some(resolved) = name
        .and_then(|n| n.strip_prefix(api.table_arn("").as_str()))
        .filter(|n| !n.is_empty() && !n.contains('/'))
    {
        return Ok(Some(resolved));
    }
    check_name(violations, name, "tableName", 1, 255);
    Ok(name)
}

/// What ReturnConsumedCapacity asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapacityMode {
    None,
    Total,
    Indexes,
}

impl CapacityMode {
    pub fn parse(value: Option<&str>) -> CapacityMode {
        match value {
            Some("TOTAL") => CapacityMode::Total,
            Some("INDEXES") => CapacityMode::Indexes,
            _ => CapacityMode::None,
        }
    }
}

/// Read capacity units for reading `bytes` (4 KB units, at least one; half
/// for eventually consistent reads).
pub fn read_units(bytes: usize, consistent: bool) -> f64 {
    let units = bytes.div_ceil(4096).max(1) as f64;
    if consistent {
        units
    } else {
        units / 2.0
    }
}

/// Write capacity units for writing `bytes` (1 KB units, at least one).
pub fn write_units(bytes: usize) -> f64 {
    bytes.div_ceil(1024).max(1) as f64
}

/// Renders the ConsumedCapacity member for one table, or `None` when not
/// requested.
pub fn consumed_capacity(
    table: &str,
    units: f64,
    mode: CapacityMode,
    write: bool,
) -> Option<Value> {
    let split = if write {
        "WriteCapacityUnits"
    } else {
        "ReadCapacityUnits"
    };
    match mode {
        CapacityMode::None => None,
        CapacityMode::Total => {
            Some(json!({"TableName": table, "CapacityUnits": units, split: units}))
        }
        CapacityMode::Indexes => Some(json!({
            "TableName": table,
            "CapacityUnits": units,
            split: units,
            "Table": {"CapacityUnits": units, split: units},
        })),
    }
}

/// The ExpressionAttributeNames and ExpressionAttributeValues of a request.
#[derive(Debug, Default)]
pub struct ExprParams {
    pub names: Option<HashMap<String, String>>,
    pub values: Option<HashMap<String, AttributeValue>>,
}

impl ExprParams {
    pub fn from_request(req: &Request) -> Result<ExprParams, ApiError> {
        let names = match req.object("ExpressionAttributeNames")? {
            None => None,
            Some(obj) => {
                let mut names = HashMap::with_capacity(obj.len());
                for (k, v) in obj {
                    match v {
                        Value::String(s) => {
                            names.insert(k.clone(), s.clone());
                        }
                        other => return Err(crate::request::wrong_type(other, "String")),
                    }
                }
                Some(names)
            }
        };
        let values = match req.get("ExpressionAttributeValues") {
            None => None,
            Some(v) => Some(codec::values_from_json(v)?),
        };
        Ok(ExprParams { names, values })
    }

    pub fn attributes(&self) -> ExpressionAttributes<'_> {
        ExpressionAttributes::new(self.names.as_ref(), self.values.as_ref())
    }

    /// Fails when names or values are given but the request uses none of the
    /// expression parameters `expression_members` (DynamoDB's "can only be
    /// specified when using expressions" error).
    pub fn check_used_with_expressions(
        &self,
        req: &Request,
        expression_members: &[&str],
    ) -> Result<(), ApiError> {
        if expression_members.iter().any(|m| req.has(m)) {
            return Ok(());
        }
        let which = match expression_members {
            [one] => format!("{one} is null"),
            [init @ .., last] => format!("{} and {last} are null", init.join(", ")),
            [] => String::new(),
        };
        if self.names.is_some() {
            return Err(ApiError::validation(format!(
                "ExpressionAttributeNames can only be specified when using expressions: {which}"
            )));
        }
        if self.values.is_some() {
            return Err(ApiError::validation(format!(
                "ExpressionAttributeValues can only be specified when using expressions: {which}"
            )));
        }
        Ok(())
    }
}

/// Fails when a request mixes legacy and expression parameters.
pub fn check_not_mixed(
    req: &Request,
    legacy_members: &[&str],
    expression_members: &[&str],
) -> Result<(), ApiError> {
    let legacy: Vec<&str> = legacy_members
        .iter()
        .copied()
        .filter(|m| req.has(m))
        .collect();
    let expr: Vec<&str> = expression_members
        .iter()
        .copied()
        .filter(|m| req.has(m))
        .collect();
    if !legacy.is_empty() && !expr.is_empty() {
        return Err(ApiError::validation(format!(
            "Can not use both expression and non-expression parameters in the same request: Non-expression parameters: {{{}}} Expression parameters: {{{}}}",
            legacy.join(", "),
            expr.join(", ")
        )));
    }
    Ok(())
}

/// Returns a table's definition or ResourceNotFoundException.
pub fn load_table(api: &Api, name: &str) -> Result<TableDefinition, ApiError> {
    Ok(api.store.table(name)?)
}

/// Checks the `Key` member of Get/Update/DeleteItem against the schema.
pub fn validate_key(schema: &KeySchema, key: &Item) -> Result<(), ApiError> {
    let expected = 1 + usize::from(schema.range.is_some());
    let mismatch = || ApiError::validation("The provided key element does not match the schema");
    if key.len() != expected {
        return Err(mismatch());
    }
    for attr in schema.attributes() {
        let value = key.get(&attr.name).ok_or_else(mismatch)?;
        if !attr.scalar_type.matches(value) {
            return Err(mismatch());
        }
    }
    check_key_values(schema, key)
}

/// Checks the key attributes of a full item (PutItem) against the schema.
pub fn validate_item_key(schema: &KeySchema, item: &Item) -> Result<(), ApiError> {
    for attr in schema.attributes() {
        let Some(value) = item.get(&attr.name) else {
            return Err(ApiError::validation(format!(
                "{INVALID}Missing the key {} in the item",
                attr.name
            )));
        };
        if !attr.scalar_type.matches(value) {
            return Err(ApiError::validation(format!(
                "{INVALID}Type mismatch for key {} expected: {} actual: {}",
                attr.name,
                attr.scalar_type.as_str(),
                value.type_name()
            )));
        }
    }
    check_key_values(schema, item)
}

/// Checks key values for emptiness and size.
fn check_key_values(schema: &KeySchema, item: &Item) -> Result<(), ApiError> {
    for attr in schema.attributes() {
        let Some(value) = item.get(&attr.name) else {
            continue;
        };
        let empty = match value {
            AttributeValue::S(s) => s.is_empty(),
            AttributeValue::B(b) => b.is_empty(),
            _ => false,
        };
        if empty {
            return Err(ApiError::validation(format!(
                "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty {} value. Key: {}",
                if matches!(value, AttributeValue::S(_)) { "string" } else { "binary" },
                attr.name
            )));
        }
    }
    if let Some(hash) = item.get(&schema.hash.name) {
        if hash.size() > limits::MAX_HASH_KEY_SIZE {
            return Err(ApiError::validation(format!(
                "{INVALID}Size of hashkey has exceeded the maximum size limit of2048 bytes"
            )));
        }
    }
    if let Some(range) = schema.range.as_ref().and_then(|r| item.get(&r.name)) {
        if range.size() > limits::MAX_RANGE_KEY_SIZE {
            return Err(ApiError::validation(format!(
                "{INVALID}Aggregated size of all range keys has exceeded the size limit of 1024 bytes"
            )));
        }
    }
    Ok(())
}

/// Decodes the `Key` member of a request.
pub fn key_member(req: &Request) -> Result<Option<Item>, ApiError> {
    match req.get("Key") {
        None => Ok(None),
        Some(v) => Ok(Some(codec::item_from_json(v)?)),
    }
}

/// Parses the projection of a read: ProjectionExpression or the legacy
/// AttributesToGet.
pub fn projection(
    req: &Request,
    attrs: &mut ExpressionAttributes<'_>,
) -> Result<Option<ProjectionExpression>, ApiError> {
    if let Some(expr) = req.str("ProjectionExpression")? {
        return Ok(Some(partita_expr::parse_projection(expr, attrs)?));
    }
    if let Some(names) = req.array("AttributesToGet")? {
        return Ok(Some(super::legacy::attributes_to_get(names)?));
    }
    Ok(None)
}

/// Parses the write condition: ConditionExpression or the legacy Expected.
pub fn write_condition(
    req: &Request,
    attrs: &mut ExpressionAttributes<'_>,
) -> Result<Option<partita_expr::Condition>, ApiError> {
    if let Some(expr) = req.str("ConditionExpression")? {
        return Ok(Some(partita_expr::parse_condition(
            ExpressionKind::Condition,
            expr,
            attrs,
        )?));
    }
    if let Some(expected) = req.object("Expected")? {
        let op = req.str("ConditionalOperator")?;
        return Ok(Some(super::legacy::expected_condition(expected, op)?));
    }
    Ok(None)
}

/// Returns the top-level attribute a path starts at.
pub fn path_root(path: &Path) -> Option<&str> {
    match path.0.first() {
        Some(PathElement::Attribute(name)) => Some(name),
        _ => None,
    }
}

/// Inserts `member` into a JSON response object when present.
pub fn put_opt(obj: &mut JsonMap<String, Value>, member: &str, value: Option<Value>) {
    if let Some(v) = value {
        obj.insert(member.to_string(), v);
    }
}

/// Returns the item size rule's error when `item` exceeds 400 KB.
pub fn check_item_size(item: &Item) -> Result<(), ApiError> {
    if partita_model::value::item_size(item) > limits::MAX_ITEM_SIZE {
        return Err(ApiError::validation(
            "Item size has exceeded the maximum allowed size",
        ));
    }
    Ok(())
}

/// Runs the checks every item operation starts with (table name and the
/// Return* enums), reporting all violations together.
pub fn check_common<'r>(
    api: &Api,
    req: &'r Request,
    return_values: Option<&[&str]>,
) -> Result<(&'r str, CapacityMode, Option<&'r str>), ApiError> {
    let mut violations = Violations::new();
    let table = check_table_name(api, &mut violations, req)?;
    let rcc = check_enum(
        &mut violations,
        req,
        "ReturnConsumedCapacity",
        "returnConsumedCapacity",
        RETURN_CONSUMED_CAPACITY,
    )?;
    if req.has("ReturnItemCollectionMetrics") {
        check_enum(
            &mut violations,
            req,
            "ReturnItemCollectionMetrics",
            "returnItemCollectionMetrics",
            RETURN_ITEM_COLLECTION_METRICS,
        )?;
    }
    let rv = match return_values {
        Some(allowed) => check_enum(
            &mut violations,
            req,
            "ReturnValues",
            "returnValues",
            allowed,
        )?,
        None => None,
    };
    check_enum(
        &mut violations,
        req,
        "ReturnValuesOnConditionCheckFailure",
        "returnValuesOnConditionCheckFailure",
        RETURN_VALUES_ON_CCF,
    )?;
    violations.into_result()?;
    Ok((table.unwrap_or_default(), CapacityMode::parse(rcc), rv))
}

/// Renders ItemCollectionMetrics for a write to a table with local indexes
/// when the request asked for them (ReturnItemCollectionMetrics=SIZE).
pub fn item_collection_metrics(
    req: &Request,
    schema: &KeySchema,
    key: Option<&Item>,
    collection_size: Option<u64>,
) -> Result<Option<Value>, ApiError> {
    if req.str("ReturnItemCollectionMetrics")? != Some("SIZE") {
        return Ok(None);
    }
    let (Some(size), Some(hash)) = (collection_size, key.and_then(|k| k.get(&schema.hash.name)))
    else {
        return Ok(None);
    };
    const GB: f64 = 1024.0 * 1024.0 * 1024.0;
    let lower = (size as f64 / GB).floor();
    let mut collection_key = Item::new();
    collection_key.insert(schema.hash.name.clone(), hash.clone());
    Ok(Some(json!({
        "ItemCollectionKey": codec::item_to_json(&collection_key),
        "SizeEstimateRangeGB": [lower, lower + 1.0],
    })))
}
