//! DescribeLimits, DescribeEndpoints.
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

pub async fn describe_limits(_api: &Api, _req: Request) -> Result<Value, ApiError> {
    Err(pending("DescribeLimits"))
}
pub async fn describe_endpoints(_api: &Api, _req: Request) -> Result<Value, ApiError> {
    Err(pending("DescribeEndpoints"))
}
