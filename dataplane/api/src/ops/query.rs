//! (in progress)

use serde_json::Value;

use crate::error::{ApiError, ErrorKind};
use crate::request::Request;
use crate::Api;

pub async fn query(_api: &Api, _req: Request) -> Result<Value, ApiError> {
    Err(ApiError::new(
        ErrorKind::UnknownOperation,
        "query is not implemented yet",
    ))
}
pub async fn scan(_api: &Api, _req: Request) -> Result<Value, ApiError> {
    Err(ApiError::new(
        ErrorKind::UnknownOperation,
        "scan is not implemented yet",
    ))
}
