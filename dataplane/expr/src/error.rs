//! Expression errors. `Display` is DynamoDB's full message text.

/// A problem found while parsing or resolving an expression.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExprError {
    pub message: String,
}

impl ExprError {
    pub fn new(message: impl Into<String>) -> ExprError {
        ExprError {
            message: message.into(),
        }
    }
}

/// A problem found while evaluating an expression against an item.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EvalError {
    pub message: String,
}

impl EvalError {
    pub fn new(message: impl Into<String>) -> EvalError {
        EvalError {
            message: message.into(),
        }
    }

    /// "The document path provided in the update expression is invalid for update"
    pub fn invalid_update_path() -> EvalError {
        EvalError::new("The document path provided in the update expression is invalid for update")
    }

    /// "An operand in the update expression has an incorrect data type"
    pub fn incorrect_data_type() -> EvalError {
        EvalError::new("An operand in the update expression has an incorrect data type")
    }

    /// "The provided expression refers to an attribute that does not exist in the item"
    pub fn missing_attribute() -> EvalError {
        EvalError::new(
            "The provided expression refers to an attribute that does not exist in the item",
        )
    }
}
