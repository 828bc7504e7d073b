//! The DynamoDB data model, shared by every layer of Partita.
//!
//! Owns: attribute values ([`AttributeValue`]), exact decimal numbers ([`Number`],
//! 38 significant digits, never `f64`), item size accounting, key schemas and table
//! definitions, and DynamoDB's fixed limits.
//!
//! Must not know: JSON, HTTP, error `__type` names, or how anything is stored. This
//! crate is pure and has no I/O; the API crate maps its typed errors onto the wire.

pub mod limits;
pub mod number;
pub mod schema;
pub mod value;

pub use number::{Number, NumberError};
pub use schema::{
    AttributeDefinition, BillingMode, IndexDefinition, KeyAttribute, KeySchema, Projection,
    ProvisionedThroughput, ScalarType, StreamSpecification, TableDefinition, TimeToLive,
};
pub use value::{AttributeValue, Item, Map};
