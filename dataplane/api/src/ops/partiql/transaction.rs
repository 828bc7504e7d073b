//! ExecuteTransaction: up to 100 statements, all reads (single-item
//! SELECTs, read as one consistent snapshot) or all writes (INSERT, UPDATE,
//! DELETE and EXISTS condition checks), applied all-or-nothing by the
//! transaction executor.

use serde_json::Value;

use crate::error::ApiError;
use crate::request::Request;
use crate::Api;

pub async fn execute_transaction(_api: &Api, _req: Request) -> Result<Value, ApiError> {
    Err(ApiError::validation(
        "ExecuteTransaction is not supported yet",
    ))
}
