//! Operation dispatch: one module per operation family.

mod batch;
mod common;
pub(crate) mod describe;
mod item;
pub(crate) mod legacy;
mod misc;
pub(crate) mod partiql;
mod query;
pub(crate) mod streams;
mod table;

pub use table::definition_of;
mod table_spec;
mod table_update;
mod tags;
pub(crate) mod transact;
mod ttl;

use serde_json::Value;

use crate::error::{ApiError, ErrorKind};
use crate::request::Request;
use crate::Api;

/// Runs the operation named `op`.
pub async fn dispatch(api: &Api, op: &str, req: Request) -> Result<Value, ApiError> {
    match op {
        "CreateTable" => table::create_table(api, req).await,
        "DescribeTable" => table::describe_table(api, req).await,
        "ListTables" => table::list_tables(api, req).await,
        "UpdateTable" => table::update_table(api, req).await,
        "DeleteTable" => table::delete_table(api, req).await,
        "TagResource" => tags::tag_resource(api, req).await,
        "UntagResource" => tags::untag_resource(api, req).await,
        "ListTagsOfResource" => tags::list_tags_of_resource(api, req).await,
        "UpdateTimeToLive" => ttl::update_time_to_live(api, req).await,
        "DescribeTimeToLive" => ttl::describe_time_to_live(api, req).await,
        "DescribeLimits" => misc::describe_limits(api, req).await,
        "DescribeEndpoints" => misc::describe_endpoints(api, req).await,
        "PutItem" => item::put_item(api, req).await,
        "GetItem" => item::get_item(api, req).await,
        "UpdateItem" => item::update_item(api, req).await,
        "DeleteItem" => item::delete_item(api, req).await,
        "Query" => query::query(api, req).await,
        "Scan" => query::scan(api, req).await,
        "BatchGetItem" => batch::batch_get_item(api, req).await,
        "BatchWriteItem" => batch::batch_write_item(api, req).await,
        "TransactWriteItems" => transact::transact_write_items(api, req).await,
        "TransactGetItems" => transact::transact_get_items(api, req).await,
        "ExecuteStatement" => partiql::execute_statement(api, req).await,
        "BatchExecuteStatement" => partiql::batch_execute_statement(api, req).await,
        "ExecuteTransaction" => partiql::execute_transaction(api, req).await,
        _ => Err(ApiError::new(
            ErrorKind::UnknownOperation,
            format!("The operation {op} is not supported by this server"),
        )),
    }
}
