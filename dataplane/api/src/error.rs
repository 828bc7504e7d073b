//! DynamoDB-shaped errors: the one place where typed failures become
//! `__type` names, HTTP statuses and messages.

use partita_model::Item;
use partita_storage::StorageError;
use serde_json::{Map as JsonMap, Value};

use crate::codec;

/// The kinds of error DynamoDB returns, each with its wire `__type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    Validation,
    Serialization,
    UnknownOperation,
    ResourceNotFound,
    ResourceInUse,
    ConditionalCheckFailed,
    LimitExceeded,
    InternalServerError,
    RequestEntityTooLarge,
    TransactionCanceled,
    TransactionConflict,
    IdempotentParameterMismatch,
    ProvisionedThroughputExceeded,
    Throttling,
    AccessDenied,
    UnrecognizedClient,
    MissingAuthenticationToken,
    InvalidSignature,
    IncompleteSignature,
    ItemCollectionSizeLimitExceeded,
    DuplicateItem,
    /// DynamoDB Streams: a shard iterator older than 15 minutes.
    ExpiredIterator,
    /// DynamoDB Streams: a read below a shard's trim horizon.
    TrimmedDataAccess,
}

impl ErrorKind {
    /// Returns the `__type` DynamoDB puts in the error body.
    pub fn type_name(self) -> &'static str {
        match self {
            ErrorKind::Validation => "com.amazon.coral.validate#ValidationException",
            ErrorKind::Serialization => "com.amazon.coral.service#SerializationException",
            ErrorKind::UnknownOperation => "com.amazon.coral.service#UnknownOperationException",
            ErrorKind::ResourceNotFound => {
                "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException"
            }
            ErrorKind::ResourceInUse => "com.amazonaws.dynamodb.v20120810#ResourceInUseException",
            ErrorKind::ConditionalCheckFailed => {
                "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"
            }
            ErrorKind::LimitExceeded => "com.amazonaws.dynamodb.v20120810#LimitExceededException",
            ErrorKind::InternalServerError => {
                "com.amazonaws.dynamodb.v20120810#InternalServerError"
            }
            ErrorKind::RequestEntityTooLarge => "com.amazon.coral.service#RequestEntityTooLarge",
            ErrorKind::TransactionCanceled => {
                "com.amazonaws.dynamodb.v20120810#TransactionCanceledException"
            }
            ErrorKind::TransactionConflict => {
                "com.amazonaws.dynamodb.v20120810#TransactionConflictException"
            }
            ErrorKind::IdempotentParameterMismatch => {
                "com.amazonaws.dynamodb.v20120810#IdempotentParameterMismatchException"
            }
            ErrorKind::ProvisionedThroughputExceeded => {
                "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
            }
            ErrorKind::Throttling => "com.amazon.coral.availability#ThrottlingException",
            ErrorKind::AccessDenied => "com.amazon.coral.service#AccessDeniedException",
            ErrorKind::UnrecognizedClient => "com.amazon.coral.service#UnrecognizedClientException",
            ErrorKind::MissingAuthenticationToken => {
                "com.amazon.coral.service#MissingAuthenticationTokenException"
            }
            ErrorKind::InvalidSignature => "com.amazon.coral.service#InvalidSignatureException",
            ErrorKind::IncompleteSignature => {
                "com.amazon.coral.service#IncompleteSignatureException"
            }
            ErrorKind::ItemCollectionSizeLimitExceeded => {
                "com.amazonaws.dynamodb.v20120810#ItemCollectionSizeLimitExceededException"
            }
            ErrorKind::DuplicateItem => "com.amazonaws.dynamodb.v20120810#DuplicateItemException",
            ErrorKind::ExpiredIterator => {
                "com.amazonaws.dynamodb.v20120810#ExpiredIteratorException"
            }
            ErrorKind::TrimmedDataAccess => {
                "com.amazonaws.dynamodb.v20120810#TrimmedDataAccessException"
            }
        }
    }

    /// Returns the HTTP status of this kind of error.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::InternalServerError => 500,
            ErrorKind::RequestEntityTooLarge => 413,
            _ => 400,
        }
    }

    /// Returns a short, bounded name for metrics and logs.
    pub fn short_name(self) -> &'static str {
        let full = self.type_name();
        full.rsplit('#').next().unwrap_or(full)
    }
}

/// An error response: its kind, message, and extra body members (the item of
/// a failed condition, cancellation reasons).
#[derive(Clone, Debug)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    pub extra: Option<JsonMap<String, Value>>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            message: message.into(),
            extra: None,
        }
    }

    /// A ValidationException with the given message.
    pub fn validation(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::Validation, message)
    }

    /// A SerializationException with the given message.
    pub fn serialization(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::Serialization, message)
    }

    /// The ResourceNotFoundException DynamoDB returns for a missing table.
    pub fn table_not_found() -> ApiError {
        ApiError::new(ErrorKind::ResourceNotFound, "Requested resource not found")
    }

    /// An InternalServerError; details belong in the log, not the response.
    pub fn internal() -> ApiError {
        ApiError::new(ErrorKind::InternalServerError, "Internal server error")
    }

    /// The ConditionalCheckFailedException, with the current item when the
    /// request asked for it (ReturnValuesOnConditionCheckFailure=ALL_OLD).
    pub fn conditional_check_failed(item: Option<&Item>) -> ApiError {
        let mut err = ApiError::new(
            ErrorKind::ConditionalCheckFailed,
            "The conditional request failed",
        );
        if let Some(item) = item {
            let mut extra = JsonMap::new();
            extra.insert("Item".to_string(), codec::item_to_json(item));
            err.extra = Some(extra);
        }
        err
    }

    /// Renders the JSON body of this error.
    pub fn to_body(&self) -> Value {
        let mut body = JsonMap::new();
        body.insert(
            "__type".to_string(),
            Value::String(self.kind.type_name().to_string()),
        );
        body.insert("message".to_string(), Value::String(self.message.clone()));
        if let Some(extra) = &self.extra {
            for (k, v) in extra {
                body.insert(k.clone(), v.clone());
            }
        }
        Value::Object(body)
    }
}

impl From<partita_expr::ExprError> for ApiError {
    fn from(e: partita_expr::ExprError) -> ApiError {
        ApiError::validation(e.message)
    }
}

impl From<partita_expr::EvalError> for ApiError {
    fn from(e: partita_expr::EvalError) -> ApiError {
        ApiError::validation(e.message)
    }
}

/// DynamoDB's message for a write meeting an item held by a transaction.
pub(crate) const TRANSACTION_ONGOING: &str = "Transaction is ongoing for the item";

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> ApiError {
        match e {
            StorageError::TableNotFound(_) => ApiError::table_not_found(),
            StorageError::TableExists(name) => ApiError::new(
                ErrorKind::ResourceInUse,
                format!("Table already exists: {name}"),
            ),
            StorageError::ConditionalCheckFailed { .. } => ApiError::conditional_check_failed(None),
            StorageError::Eval(e) => ApiError::validation(e.message),
            StorageError::ItemTooLarge => {
                ApiError::validation("Item size to update has exceeded the maximum allowed size")
            }
            StorageError::InvalidKey(_) => {
                ApiError::validation("The provided key element does not match the schema")
            }
            StorageError::InvalidSegment { segment, total_segments } => ApiError::validation(format!(
                "The Segment parameter is zero-based and must be less than parameter TotalSegments: Segment: {segment} is not less than TotalSegments: {total_segments}"
            )),
            StorageError::IndexNotFound(index) => ApiError::validation(format!(
                "The table does not have the specified index: {index}"
            )),
            StorageError::IndexKeyInvalid { index, attribute, expected: Some(expected), actual } => {
                ApiError::validation(format!(
                    "One or more parameter values were invalid: Type mismatch for Index Key {attribute} Expected: {} Actual: {actual} IndexName: {index}",
                    expected.as_str()
                ))
            }
            StorageError::IndexKeyInvalid { index, attribute, expected: None, actual } => {
                let kind = if actual == "B" { "binary" } else { "string" };
                ApiError::validation(format!(
                    "One or more parameter values are not valid. A value specified for a secondary index key is not supported. The AttributeValue for a key attribute cannot contain an empty {kind} value. IndexName: {index}, IndexKey: {attribute}"
                ))
            }
            StorageError::IndexKeyTooLarge { index, attribute, size, max } => {
                ApiError::validation(format!(
                    "One or more parameter values were invalid: Size limit exceeded for Index Key {attribute} Actual Size: {size} bytes Max Size: {max} bytes IndexName: {index}"
                ))
            }
            StorageError::ItemCollectionSizeLimitExceeded => ApiError::new(
                ErrorKind::ItemCollectionSizeLimitExceeded,
                "Item collection size limit exceeded",
            ),
            StorageError::Unsupported(message) => ApiError::validation(message),
            StorageError::TransactionConflict => ApiError::new(
                ErrorKind::TransactionConflict,
                TRANSACTION_ONGOING,
            ),
            other => {
                tracing::error!(error = %other, "storage failure");
                ApiError::internal()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_renders_a_type_and_status() {
        let kinds = [
            ErrorKind::Validation,
            ErrorKind::Serialization,
            ErrorKind::UnknownOperation,
            ErrorKind::ResourceNotFound,
            ErrorKind::ResourceInUse,
            ErrorKind::ConditionalCheckFailed,
            ErrorKind::LimitExceeded,
            ErrorKind::InternalServerError,
            ErrorKind::RequestEntityTooLarge,
            ErrorKind::TransactionCanceled,
            ErrorKind::TransactionConflict,
            ErrorKind::IdempotentParameterMismatch,
            ErrorKind::ProvisionedThroughputExceeded,
            ErrorKind::Throttling,
            ErrorKind::AccessDenied,
            ErrorKind::UnrecognizedClient,
            ErrorKind::MissingAuthenticationToken,
            ErrorKind::InvalidSignature,
            ErrorKind::IncompleteSignature,
            ErrorKind::ItemCollectionSizeLimitExceeded,
            ErrorKind::DuplicateItem,
        ];
        for kind in kinds {
            let short = kind.short_name();
            assert!(kind.type_name().ends_with(&format!("#{short}")));
            assert!(!short.contains('#'));
            let status = kind.status();
            assert!(status == 400 || status == 413 || status == 500);
        }
        assert_eq!(ErrorKind::InternalServerError.status(), 500);
    }

    #[test]
    fn storage_errors_map_to_dynamodb_errors() {
        let e: ApiError = StorageError::TableNotFound("t".into()).into();
        assert_eq!(e.kind, ErrorKind::ResourceNotFound);
        assert_eq!(e.message, "Requested resource not found");
        let e: ApiError = StorageError::TableExists("t".into()).into();
        assert_eq!(e.kind, ErrorKind::ResourceInUse);
        let e: ApiError = StorageError::ConditionalCheckFailed { old: None }.into();
        assert_eq!(e.kind, ErrorKind::ConditionalCheckFailed);
        assert_eq!(e.message, "The conditional request failed");
        let e: ApiError = StorageError::ItemTooLarge.into();
        assert_eq!(e.kind, ErrorKind::Validation);
        let e: ApiError = StorageError::Engine {
            operation: "commit",
            message: "disk".into(),
        }
        .into();
        assert_eq!(e.kind, ErrorKind::InternalServerError);
        assert!(!e.message.contains("disk"));
        let e: ApiError = StorageError::IndexKeyTooLarge {
            index: "by_g".into(),
            attribute: "g".into(),
            size: 2049,
            max: 2048,
        }
        .into();
        assert_eq!(e.kind, ErrorKind::Validation);
        assert_eq!(
            e.message,
            "One or more parameter values were invalid: Size limit exceeded for Index Key g Actual Size: 2049 bytes Max Size: 2048 bytes IndexName: by_g"
        );
        let e: ApiError = StorageError::TransactionConflict.into();
        assert_eq!(e.kind, ErrorKind::TransactionConflict);
        assert_eq!(e.message, "Transaction is ongoing for the item");
    }
}
