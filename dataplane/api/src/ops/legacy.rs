//! DynamoDB's legacy (pre-expression) parameters translated into expression
//! ASTs: Expected + ConditionalOperator, AttributeUpdates, AttributesToGet,
//! KeyConditions, QueryFilter and ScanFilter.
//! (Being written by the legacy-API engineer.)

use partita_expr::{Condition, KeyCondition, ProjectionExpression, UpdateExpression};
use serde_json::{Map as JsonMap, Value};

use crate::error::ApiError;

fn pending(what: &str) -> ApiError {
    ApiError::validation(format!("{what} is not supported yet"))
}

/// Translates `Expected` (with `ConditionalOperator`) into a condition.
pub fn expected_condition(
    _expected: &JsonMap<String, Value>,
    _conditional_operator: Option<&str>,
) -> Result<Condition, ApiError> {
    Err(pending("Expected"))
}

/// Translates `QueryFilter` / `ScanFilter` (with `ConditionalOperator`) into a condition.
pub fn filter_condition(
    _filter: &JsonMap<String, Value>,
    _conditional_operator: Option<&str>,
) -> Result<Condition, ApiError> {
    Err(pending("QueryFilter/ScanFilter"))
}

/// Translates `AttributeUpdates` into an update expression.
pub fn attribute_updates(_updates: &JsonMap<String, Value>) -> Result<UpdateExpression, ApiError> {
    Err(pending("AttributeUpdates"))
}

/// Translates `AttributesToGet` into a projection.
pub fn attributes_to_get(_names: &[Value]) -> Result<ProjectionExpression, ApiError> {
    Err(pending("AttributesToGet"))
}

/// Translates `KeyConditions` into a key condition for the given key names.
pub fn key_conditions(
    _conditions: &JsonMap<String, Value>,
    _hash_key: &str,
    _range_key: Option<&str>,
) -> Result<KeyCondition, ApiError> {
    Err(pending("KeyConditions"))
}
