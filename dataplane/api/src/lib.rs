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

pub mod admin;
pub mod auth;
pub mod backend;
pub mod capacity;
pub mod codec;
pub mod error;
pub mod http;
pub mod metrics;
mod ops;
mod reload;
pub mod replication;
pub mod request;

use std::sync::Arc;

use partita_storage::Store;
use serde_json::Value;

pub use error::{ApiError, ErrorKind};
pub use request::Request;

pub use ops::describe::table_id_of;

/// Builds the table definition a CreateTable request body describes,
/// validated as CreateTable validates it, with the given table id and
/// creation time, without creating anything (cluster nodes create the
/// tables of their topology file so, identically on every replica).
pub fn table_definition(
    body: &[u8],
    table_id: String,
    created_at_ms: u64,
) -> Result<partita_model::TableDefinition, ApiError> {
    ops::definition_of(&Request::parse(body)?, table_id, created_at_ms)
}

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

/// The DynamoDB API over a backend (a local store or a cluster router).
pub struct Api {
    pub store: Arc<dyn backend::Backend>,
    pub config: ApiConfig,
    /// Verifies signatures; open (any credentials) unless configured.
    pub auth: Arc<auth::Authenticator>,
    /// ClientRequestToken records of write transactions.
    pub(crate) transaction_tokens: ops::transact::TokenCache,
    /// Capacity buckets (provisioned and on-demand limits, throttling).
    pub capacity: Arc<capacity::Capacity>,
    /// Prometheus metrics of this API.
    pub metrics: Arc<metrics::Metrics>,
    /// Global tables (`partita serve --replication`); `None` elsewhere.
    pub replication: Option<Arc<replication::Replication>>,
}

impl Api {
    /// An API in open mode (no authentication or authorization).
    pub fn new(store: Arc<Store>, config: ApiConfig) -> Api {
        Api::with_backend(store, config)
    }

    /// An API in open mode over any backend (e.g. `partita gateway`'s
    /// cluster router).
    pub fn with_backend(store: Arc<dyn backend::Backend>, config: ApiConfig) -> Api {
        Api {
            // Observes every write's outcome for index write units.
            store: Arc::new(capacity::MeteredBackend::new(store)),
            config,
            auth: Arc::new(auth::Authenticator::open()),
            transaction_tokens: Default::default(),
            capacity: Default::default(),
            metrics: Default::default(),
            replication: None,
        }
    }

    /// Turns on global tables (cross-region replication).
    pub fn with_replication(mut self, replication: Arc<replication::Replication>) -> Api {
        self.replication = Some(replication);
        self
    }

    /// Replaces the capacity settings (clock scale, control-plane rate).
    pub fn with_capacity(mut self, config: capacity::CapacityConfig) -> Api {
        self.capacity = Arc::new(capacity::Capacity::new(config));
        self
    }

    /// Replaces the authenticator (e.g. one with an auth file installed).
    pub fn with_auth(mut self, auth: Arc<auth::Authenticator>) -> Api {
        self.auth = auth;
        self
    }

    /// Runs one operation (`op` is the part of `X-Amz-Target` after the
    /// dot) without authorization: for trusted in-process callers only.
    pub async fn call(&self, op: &str, body: &[u8]) -> Result<Value, ApiError> {
        self.call_as(&auth::Caller::default(), op, body).await
    }

    /// Runs one operation for `caller`: the request is decoded, authorized
    /// against the caller's policies (every item it touches), then
    /// dispatched.
    pub async fn call_as(
        &self,
        caller: &auth::Caller,
        op: &str,
        body: &[u8],
    ) -> Result<Value, ApiError> {
        let request = Request::parse(body)?;
        auth::enforce::authorize(self, caller, op, &request)?;
        let started = std::time::Instant::now();
        let metered = capacity::run(self, op, request).await;
        self.metrics.observe_request(
            op,
            metered.table.as_deref(),
            metrics::Outcome::of(&metered.result),
            started.elapsed(),
            &metered.consumed,
            &metered.throttled,
        );
        metered.result
    }

    /// Runs one DynamoDB Streams operation (`X-Amz-Target`
    /// `DynamoDBStreams_20120810.<op>`) for `caller`, authorized like any
    /// operation (IAM actions `dynamodb:<op>`).
    pub async fn call_streams_as(
        &self,
        caller: &auth::Caller,
        op: &str,
        body: &[u8],
    ) -> Result<Value, ApiError> {
        let request = Request::parse(body)?;
        auth::enforce::authorize(self, caller, op, &request)?;
        let started = std::time::Instant::now();
        let result = ops::streams::dispatch(self, op, request).await;
        let outcome = metrics::Outcome::of(&result);
        self.metrics
            .observe_request(op, None, outcome, started.elapsed(), &[], &[]);
        result
    }

    /// Returns the ARN of a table.
    pub fn table_arn(&self, table: &str) -> String {
        format!(
            "arn:aws:dynamodb:{}:{}:table/{}",
            self.config.region, self.config.account_id, table
        )
    }
}
