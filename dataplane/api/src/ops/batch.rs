//! (in progress)

use serde_json::Value;

use crate::error::{ApiError, ErrorKind};
use crate::request::Request;
use crate::Api;

pub async fn batch_get_item(_api: &Api, _req: Request) -> Result<Value, ApiError> {
    Err(ApiError::new(
        ErrorKind::UnknownOperation,
        "batch_get_item is not implemented yet",
    ))
}
pub async fn batch_write_item(_api: &Api, _req: Request) -> Result<Value, ApiError> {
    Err(ApiError::new(
        ErrorKind::UnknownOperation,
        "batch_write_item is not implemented yet",
    ))
}
