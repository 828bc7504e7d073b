//! DynamoDB expressions: grammar, resolution of `#name`/`:value` placeholders,
//! and evaluation against items.
//!
//! Owns: parsing ConditionExpression, FilterExpression, KeyConditionExpression,
//! UpdateExpression and ProjectionExpression into resolved ASTs (placeholders
//! substituted, so evaluation needs nothing but the item), and evaluating them
//! with DynamoDB's semantics.
//!
//! Must not know: JSON, HTTP or storage. Errors carry DynamoDB's message text
//! (the API layer wraps them as ValidationException). Checks that need the
//! table's key schema types or the request (updating a key attribute, the type
//! of a key value) belong to the API layer; the ASTs expose what it needs.
//!
//! Pipeline: `lexer` → `parser` (unresolved `syntax` trees; every syntax
//! error is found here) → `resolve` (placeholders, reserved words, function
//! and operand rules, path overlaps) → resolved [`ast`]. Evaluation lives in
//! `eval`, `update` and `projection`; Query key conditions in `keycond`.
//!
//! Invariants: no input can panic or overflow the stack. Expressions longer
//! than [`MAX_EXPRESSION_BYTES`] are rejected before parsing, nesting of
//! parentheses/NOT/functions is bounded by [`MAX_NESTING`], and
//! document paths by [`MAX_PATH_DEPTH`].
//!
//! Error precedence: syntax errors first (wherever they are in the text),
//! then structural ones (redundant parentheses, a clause used twice),
//! reserved words, unknown function names, undefined placeholders, function
//! and operand rules, and last path overlaps/conflicts.
//!
//! Choices made where the conformance suite does not pin DynamoDB down
//! (revisit when a test or DynamoDB Local says otherwise): `a <> :v` is true
//! when `a` is missing; `size()` of a string counts UTF-8 bytes; a syntax
//! error's "near" text runs from the token before the offending one through
//! the token after it; REMOVE/ADD/DELETE through a missing parent are "invalid
//! for update"; expressions over [`MAX_EXPRESSION_BYTES`] or nested deeper
//! than [`MAX_NESTING`] get Partita's own wording.

pub mod ast;
mod error;
mod eval;
mod keycond;
mod lexer;
mod parser;
mod path;
mod projection;
pub mod reserved;
mod resolve;
mod syntax;
mod update;

pub use ast::*;
pub use error::{EvalError, ExprError};

use std::collections::{BTreeSet, HashMap};

use partita_model::AttributeValue;

/// The longest expression string DynamoDB accepts, in bytes.
pub const MAX_EXPRESSION_BYTES: usize = 4096;

/// The deepest nesting of parentheses, NOT and function calls accepted.
pub const MAX_NESTING: usize = 128;

/// The most elements a document path may have.
pub const MAX_PATH_DEPTH: usize = 32;

/// The most operands the right-hand side of IN may have.
pub const MAX_IN_OPERANDS: usize = 100;

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
        ExpressionAttributes {
            names,
            values,
            used_names: BTreeSet::new(),
            used_values: BTreeSet::new(),
        }
    }

    /// Fails with DynamoDB's "unused in expressions" message when a name or
    /// value was supplied but no expression of the request used it. Call after
    /// every expression of the request has been parsed.
    pub fn check_all_used(&self) -> Result<(), ExprError> {
        if let Some(names) = self.names {
            let unused: BTreeSet<&str> = names
                .keys()
                .filter(|k| !self.used_names.contains(*k))
                .map(String::as_str)
                .collect();
            if !unused.is_empty() {
                return Err(ExprError::new(format!(
                    "Value provided in ExpressionAttributeNames unused in expressions: keys: {{{}}}",
                    unused.into_iter().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        if let Some(values) = self.values {
            let unused: BTreeSet<&str> = values
                .keys()
                .filter(|k| !self.used_values.contains(*k))
                .map(String::as_str)
                .collect();
            if !unused.is_empty() {
                return Err(ExprError::new(format!(
                    "Value provided in ExpressionAttributeValues unused in expressions: keys: {{{}}}",
                    unused.into_iter().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        Ok(())
    }

    /// Returns the attribute name `#placeholder` stands for, marking it used.
    fn lookup_name(&mut self, placeholder: &str) -> Option<String> {
        let name = self.names?.get(placeholder)?.clone();
        self.used_names.insert(placeholder.to_string());
        Some(name)
    }

    /// Returns the value `:placeholder` stands for, marking it used.
    fn lookup_value(&mut self, placeholder: &str) -> Option<AttributeValue> {
        let value = self.values?.get(placeholder)?.clone();
        self.used_values.insert(placeholder.to_string());
        Some(value)
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

impl ExpressionKind {
    /// Returns the request parameter name ("ConditionExpression", ...).
    pub fn parameter_name(self) -> &'static str {
        match self {
            ExpressionKind::Condition => "ConditionExpression",
            ExpressionKind::Filter => "FilterExpression",
            ExpressionKind::KeyCondition => "KeyConditionExpression",
            ExpressionKind::Update => "UpdateExpression",
            ExpressionKind::Projection => "ProjectionExpression",
        }
    }

    /// Returns `message` with this kind's "Invalid XExpression: " prefix.
    pub(crate) fn error(self, message: &str) -> ExprError {
        ExprError::new(format!("Invalid {}: {}", self.parameter_name(), message))
    }

    /// Rejects empty and oversized expression strings.
    fn check_length(self, expr: &str) -> Result<(), ExprError> {
        if expr.trim().is_empty() {
            return Err(self.error("The expression can not be empty;"));
        }
        if expr.len() > MAX_EXPRESSION_BYTES {
            return Err(self.error(&format!(
                "Expression size has exceeded the maximum allowed size; expression size: {}",
                expr.len()
            )));
        }
        Ok(())
    }
}

/// Parses a ConditionExpression or FilterExpression. (Any other `kind` only
/// changes the error prefix.)
pub fn parse_condition(
    kind: ExpressionKind,
    expr: &str,
    attrs: &mut ExpressionAttributes<'_>,
) -> Result<Condition, ExprError> {
    kind.check_length(expr)?;
    let raw = parser::Parser::new(expr, kind).parse_condition()?;
    resolve::Resolver::new(attrs, kind).condition(&raw)
}

/// Parses an UpdateExpression.
pub fn parse_update(
    expr: &str,
    attrs: &mut ExpressionAttributes<'_>,
) -> Result<UpdateExpression, ExprError> {
    let kind = ExpressionKind::Update;
    kind.check_length(expr)?;
    let raw = parser::Parser::new(expr, kind).parse_update()?;
    resolve::Resolver::new(attrs, kind).update(&raw)
}

/// Parses a ProjectionExpression.
pub fn parse_projection(
    expr: &str,
    attrs: &mut ExpressionAttributes<'_>,
) -> Result<ProjectionExpression, ExprError> {
    let kind = ExpressionKind::Projection;
    kind.check_length(expr)?;
    let raw = parser::Parser::new(expr, kind).parse_projection()?;
    resolve::Resolver::new(attrs, kind).projection(&raw)
}

/// Parses a KeyConditionExpression and checks it against the key attribute
/// names of the table or index being queried.
pub fn parse_key_condition(
    expr: &str,
    attrs: &mut ExpressionAttributes<'_>,
    hash_key: &str,
    range_key: Option<&str>,
) -> Result<KeyCondition, ExprError> {
    let kind = ExpressionKind::KeyCondition;
    kind.check_length(expr)?;
    let raw = parser::Parser::new(expr, kind).parse_condition()?;
    let cond = resolve::Resolver::new(attrs, kind).condition(&raw)?;
    keycond::extract(&cond, hash_key, range_key)
}

#[cfg(test)]
mod tests;
