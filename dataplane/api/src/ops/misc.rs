//! DescribeLimits, DescribeEndpoints.

use serde_json::{json, Value};

use crate::error::ApiError;
use crate::request::Request;
use crate::Api;

/// Provisioned capacity limits of an account.
const ACCOUNT_MAX_CAPACITY_UNITS: u64 = 80_000;
/// Provisioned capacity limits of one table or global secondary index.
const TABLE_MAX_CAPACITY_UNITS: u64 = 40_000;
/// How long clients may cache the endpoint list.
const ENDPOINT_CACHE_MINUTES: u64 = 1440;

pub async fn describe_limits(_api: &Api, _req: Request) -> Result<Value, ApiError> {
    Ok(json!({
        "AccountMaxReadCapacityUnits": ACCOUNT_MAX_CAPACITY_UNITS,
        "AccountMaxWriteCapacityUnits": ACCOUNT_MAX_CAPACITY_UNITS,
        "TableMaxReadCapacityUnits": TABLE_MAX_CAPACITY_UNITS,
        "TableMaxWriteCapacityUnits": TABLE_MAX_CAPACITY_UNITS,
    }))
}

pub async fn describe_endpoints(api: &Api, _req: Request) -> Result<Value, ApiError> {
    Ok(json!({
        "Endpoints": [{
            "Address": format!("dynamodb.{}.amazonaws.com", api.config.region),
            "CachePeriodInMinutes": ENDPOINT_CACHE_MINUTES,
        }]
    }))
}
