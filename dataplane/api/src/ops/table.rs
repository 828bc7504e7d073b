//! CreateTable, DescribeTable, ListTables, UpdateTable, DeleteTable.
//! (Being written by the control-plane engineer.)

use serde_json::Value;

use crate::error::{ApiError, ErrorKind};
use crate::request::Request;
use crate::Api;

fn pending(op: &str) -> ApiError {
    ApiError::new(
        ErrorKind::UnknownOperation,
        format!("{op} is not implemented yet"),
    )
}

pub async fn create_table(_api: &Api, _req: Request) -> Result<Value, ApiError> {
    Err(pending("CreateTable"))
}
pub async fn describe_table(_api: &Api, _req: Request) -> Result<Value, ApiError> {
    Err(pending("DescribeTable"))
}
pub async fn list_tables(_api: &Api, _req: Request) -> Result<Value, ApiError> {
    Err(pending("ListTables"))
}
pub async fn update_table(_api: &Api, _req: Request) -> Result<Value, ApiError> {
    Err(pending("UpdateTable"))
}
pub async fn delete_table(_api: &Api, _req: Request) -> Result<Value, ApiError> {
    Err(pending("DeleteTable"))
}
