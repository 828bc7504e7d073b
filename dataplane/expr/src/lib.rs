//! DynamoDB expressions: grammar, resolution of `#name`/`:value` placeholders,
//! and evaluation against items.
//!
//! Owns: parsing ConditionExpression, FilterExpression, KeyConditionExpression,
//! UpdateExpression and ProjectionExpression into resolved ASTs (placeholders
//! substituted, so evaluation needs nothing but the item), and evaluating them
//! with DynamoDB's semantics.
//!
//! Must not know: JSON, HTTP or storage. Errors carry DynamoDB's message text
//! (the API layer wraps them as ValidationException).
//!
//! SKELETON: the expression helper owns this crate and replaces every `todo!()`.

pub mod ast;
mod error;

pub use ast::*;
pub use error::{EvalError, ExprError};

use std::collections::{BTreeSet, HashMap};

use partita_model::{AttributeValue, Item};

/// The ExpressionAttributeNames and ExpressionAttributeValues of one request,
/// and which of them the request's expressions used.
#[derive(Debug, Default)]
pub struct ExpressionAttributes<'a> {
    pub names: Option<&'a HashMap<String, String>>,
    pub values: Option<&'a HashMap<String, AttributeValue>>,
    used_names: BTreeSet<String>,
    used_values: BTreeSet<String>,
}

impl<'a> ExpressionAttributes<'a> {
    pub fn new(
        names: Option<&'a HashMap<String, String>>,
        values: Option<&'a HashMap<String, AttributeValue>>,
    ) -> Self {
        ExpressionAttributes { names, values, used_names: BTreeSet::new(), used_values: BTreeSet::new() }
    }

    /// Fails with DynamoDB's "unused in expressions" message when a name or
    /// value was supplied but no expression of the request used it. Call after
    /// every expression of the request has been parsed.
    pub fn check_all_used(&self) -> Result<(), ExprError> {
        todo!()
    }
}

/// Which expression parameter a parse is for; selects the error message prefix
/// ("Invalid ConditionExpression: ...") and which functions are allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpressionKind {
    Condition,
    Filter,
    KeyCondition,
    Update,
    Projection,
}

/// Parses a ConditionExpression or FilterExpression.
pub fn parse_condition(
    _kind: ExpressionKind,
    _expr: &str,
    _attrs: &mut ExpressionAttributes<'_>,
) -> Result<Condition, ExprError> {
    todo!()
}

/// Parses an UpdateExpression.
pub fn parse_update(
    _expr: &str,
    _attrs: &mut ExpressionAttributes<'_>,
) -> Result<UpdateExpression, ExprError> {
    todo!()
}

/// Parses a ProjectionExpression.
pub fn parse_projection(
    _expr: &str,
    _attrs: &mut ExpressionAttributes<'_>,
) -> Result<ProjectionExpression, ExprError> {
    todo!()
}

/// Parses a KeyConditionExpression and checks it against the key attribute
/// names of the table or index being queried.
pub fn parse_key_condition(
    _expr: &str,
    _attrs: &mut ExpressionAttributes<'_>,
    _hash_key: &str,
    _range_key: Option<&str>,
) -> Result<KeyCondition, ExprError> {
    todo!()
}

impl Condition {
    /// Evaluates the condition against an item (`None`: the item does not exist).
    pub fn evaluate(&self, _item: Option<&Item>) -> Result<bool, EvalError> {
        todo!()
    }
}

impl UpdateExpression {
    /// Applies the update to `item` in place.
    pub fn apply(&self, _item: &mut Item) -> Result<(), EvalError> {
        todo!()
    }
}

impl ProjectionExpression {
    /// Returns the projected part of `item`.
    pub fn apply(&self, _item: &Item) -> Item {
        todo!()
    }
}
