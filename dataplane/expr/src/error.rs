//! Expression errors. `Display` is DynamoDB's full message text.

/// A problem found while parsing or resolving an expression.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExprError {
    pub message: String,
}

/// A problem found while evaluating an expression against an item.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EvalError {
    pub message: String,
}
