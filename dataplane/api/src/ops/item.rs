//! (in progress)

use serde_json::Value;

use crate::error::{ApiError, ErrorKind};
use crate::request::Request;
use crate::Api;

pub async fn put_item(_api: &Api, _req: Request) -> Result<Value, ApiError> {
    Err(ApiError::new(
        ErrorKind::UnknownOperation,
        "put_item is not implemented yet",
    ))
}
pub async fn get_item(_api: &Api, _req: Request) -> Result<Value, ApiError> {
    Err(ApiError::new(
        ErrorKind::UnknownOperation,
        "get_item is not implemented yet",
    ))
}
pub async fn update_item(_api: &Api, _req: Request) -> Result<Value, ApiError> {
    Err(ApiError::new(
        ErrorKind::UnknownOperation,
        "update_item is not implemented yet",
    ))
}
pub async fn delete_item(_api: &Api, _req: Request) -> Result<Value, ApiError> {
    Err(ApiError::new(
        ErrorKind::UnknownOperation,
        "delete_item is not implemented yet",
    ))
}
