//! The DynamoDB JSON 1.0 protocol.
//!
//! Owns: the HTTP endpoint (`POST /` with `X-Amz-Target`), request decoding
//! and validation in DynamoDB's order with DynamoDB's messages, one module per
//! operation family under `ops/`, and the mapping of every typed error onto
//! the wire (`__type`, `message`, status). This is the only crate that knows
//! the JSON shape of requests and the `__type` names of errors.
//!
//! Must not know: how items are stored (it speaks typed commands to
//! `partita-storage`) or how expressions are evaluated (`partita-expr`).

pub mod codec;
pub mod error;
pub mod http;
mod ops;
pub mod request;

use std::sync::Arc;

use partita_storage::Store;
use serde_json::Value;

pub use error::{ApiError, ErrorKind};
pub use request::Request;

/// Settings of the API layer.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Region named in ARNs and DescribeEndpoints.
    pub region: String,
    /// Account id named in ARNs.
    pub account_id: String,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            region: "us-east-1".to_string(),
            account_id: "123456789012".to_string(),
        }
    }
}

/// The DynamoDB API over a store.
pub struct Api {
    pub store: Arc<Store>,
    pub config: ApiConfig,
    /// ClientRequestToken records of write transactions.
    pub(crate) transaction_tokens: ops::transact::TokenCache,
}

impl Api {
    pub fn new(store: Arc<Store>, config: ApiConfig) -> Api {
        Api {
            store,
            config,
            transaction_tokens: Default::default(),
        }
    }

    /// Runs one operation (`op` is the part of `X-Amz-Target` after the dot).
    pub async fn call(&self, op: &str, body: &[u8]) -> Result<Value, ApiError> {
        let request = Request::parse(body)?;
        ops::dispatch(self, op, request).await
    }

    /// Returns the ARN of a table.
    pub fn table_arn(&self, table: &str) -> String {
        format!(
            "arn:aws:dynamodb:{}:{}:table/{}",
            self.config.region, self.config.account_id, table
        )
    }
}
