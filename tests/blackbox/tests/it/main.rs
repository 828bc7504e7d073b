//! Black-box tests for the DynamoDB API, one module per operation family.
//!
//! Each test starts its own server (or uses `DYNAMODB_ENDPOINT`; see the
//! harness in `src/lib.rs`) and only speaks the wire protocol.

mod auth;
mod background;
mod batch;
mod capacity;
mod capacity_limits;
mod cluster_admin;
mod durability;
mod global_tables;
mod index_limits;
mod indexes;
mod items;
mod legacy;
mod partiql;
mod power_loss;
mod protocol;
mod query_scan;
mod streams;
mod tables;
mod transactions;
mod types;
mod update_expr;
mod validation;
