//! CreateTable, DescribeTable, ListTables, UpdateTable, DeleteTable.
//!
//! Validation lives in `table_spec` (CreateTable) and `table_update`
//! (UpdateTable), rendering in `describe`; this module wires them to the
//! store. Tables are ACTIVE as soon as CreateTable returns: the response
//! shows CREATING as DynamoDB's does, every later DescribeTable shows
//! ACTIVE. Likewise UpdateTable answers UPDATING for asynchronous changes
//! and DeleteTable answers DELETING, while the change is already complete.

use partita_model::TableDefinition;
use partita_storage::StorageError;
use serde_json::{json, Value};

use super::describe::{
    new_table_id, now_ms, storage_error, table_description, table_name_member, ArnContext,
    IndexStats, TableStats, TableStatus,
};
use super::table_spec::{build_definition, parse_create_table};
use super::table_update::{apply_update, parse_update_table, IndexAction};
use crate::error::{ApiError, ErrorKind};
use crate::request::{check_name, quoted, Request, Violations};
use crate::Api;

/// Largest ListTables page.
const MAX_LIST_LIMIT: i64 = 100;

fn stats(api: &Api, name: &str) -> TableStats {
    let (items, bytes) = match api.store.table_stats(name) {
        Ok(stats) => stats,
        Err(e) => {
            tracing::warn!(table = name, error = %e, "table statistics unavailable");
            return TableStats::default();
        }
    };
    let mut indexes = Vec::new();
    if let Ok(def) = api.store.table(name) {
        for index in def.local_indexes.iter().chain(&def.global_indexes) {
            let (Ok((items, bytes)), Ok(state)) = (
                api.store.index_stats(name, &index.name),
                api.store.index_state(name, &index.name),
            ) else {
                continue;
            };
            indexes.push(IndexStats {
                name: index.name.clone(),
                items,
                bytes,
                state,
            });
        }
    }
    TableStats {
        items,
        bytes,
        indexes,
    }
}

/// Builds and validates the definition CreateTable request `req`
/// describes, with the given table id and creation time.
pub fn definition_of(
    req: &Request,
    table_id: String,
    now_ms: u64,
) -> Result<TableDefinition, ApiError> {
    let parsed = parse_create_table(req)?;
    let mut def = build_definition(&parsed, table_id, now_ms)?;
    crate::capacity::apply_on_demand(&mut def, crate::capacity::parse_on_demand(req)?);
    Ok(def)
}

pub async fn create_table(api: &Api, req: Request) -> Result<Value, ApiError> {
    let def = definition_of(&req, new_table_id(), now_ms())?;
    api.store.create_table(def.clone())?;
    tracing::info!(
        table = %def.name,
        partitions = def.partitions,
        billing_mode = def.billing_mode.as_str(),
        "table created"
    );
    let description = table_description(
        &ArnContext::of(api),
        &def,
        TableStatus::Creating,
        TableStats::default(),
    );
    Ok(json!({ "TableDescription": description }))
}

pub async fn describe_table(api: &Api, req: Request) -> Result<Value, ApiError> {
    let name = table_name_member(api, &req)?;
    let def = api
        .store
        .table(&name)
        .map_err(|e| storage_error(&name, e))?;
    let mut description = table_description(
        &ArnContext::of(api),
        &def,
        TableStatus::Active,
        stats(api, &name),
    );
    crate::replication::manage::describe(api, &name, &mut description);
    Ok(json!({ "Table": description }))
}

pub async fn list_tables(api: &Api, req: Request) -> Result<Value, ApiError> {
    let start = req.str("ExclusiveStartTableName")?;
    let limit = req.i64("Limit")?;
    let mut v = Violations::new();
    if let Some(start) = start {
        check_name(&mut v, Some(start), "exclusiveStartTableName", 3, 255);
    }
    match limit {
        Some(n) if n < 1 => v.push(
            &quoted(&n.to_string()),
            "limit",
            "Member must have value greater than or equal to 1",
        ),
        Some(n) if n > MAX_LIST_LIMIT => v.push(
            &quoted(&n.to_string()),
            "limit",
            &format!("Member must have value less than or equal to {MAX_LIST_LIMIT}"),
        ),
        _ => {}
    }
    v.into_result()?;
    let limit = usize::try_from(limit.unwrap_or(MAX_LIST_LIMIT)).unwrap_or(100);
    let names = api.store.list_tables();
    let (page, more) = list_page(&names, start, limit);
    let mut out = json!({ "TableNames": page });
    if more {
        if let Some(last) = page.last() {
            out["LastEvaluatedTableName"] = Value::from(last.as_str());
        }
    }
    Ok(out)
}

/// Returns the names after `start` (exclusive), at most `limit` of them,
/// and whether more names follow.
fn list_page<'a>(names: &'a [String], start: Option<&str>, limit: usize) -> (&'a [String], bool) {
    let from = match start {
        Some(s) => names.partition_point(|n| n.as_str() <= s),
        None => 0,
    };
    let rest = names.get(from..).unwrap_or_default();
    let take = rest.len().min(limit);
    (rest.get(..take).unwrap_or_default(), rest.len() > take)
}

pub async fn update_table(api: &Api, req: Request) -> Result<Value, ApiError> {
    let name = table_name_member(api, &req)?;
    let update = parse_update_table(&req)?;
    if let Some(replica_updates) = &update.replica_updates {
        crate::replication::manage::update_replicas(api, &name, replica_updates)?;
        let def = api
            .store
            .table(&name)
            .map_err(|e| storage_error(&name, e))?;
        let mut description = table_description(
            &ArnContext::of(api),
            &def,
            TableStatus::Updating,
            stats(api, &name),
        );
        crate::replication::manage::describe(api, &name, &mut description);
        return Ok(json!({ "TableDescription": description }));
    }
    crate::replication::manage::check_stream_change(
        api,
        &name,
        update.stream.as_ref().is_some_and(|s| !s.enabled),
    )?;
    let on_demand = crate::capacity::parse_on_demand(&req)?;
    let now = now_ms();
    let mut rejection: Option<ApiError> = None;
    let mut status = TableStatus::Active;
    let mut index_action = None;
    let result = api
        .store
        .update_table(&name, |def| match apply_update(def, &update, now) {
            Ok((s, action)) => {
                status = s;
                index_action = action;
                crate::capacity::apply_on_demand(def, on_demand);
                Ok(())
            }
            Err(e) => {
                rejection = Some(e);
                Err(StorageError::InvalidTableDefinition(
                    "update rejected by validation".into(),
                ))
            }
        });
    if let Some(e) = rejection {
        return Err(e);
    }
    let mut def = result.map_err(|e| storage_error(&name, e))?;
    let mut created = None;
    match index_action {
        Some(IndexAction::Create(index)) => {
            created = Some(index.name.clone());
            def = api
                .store
                .create_global_index(&name, index)
                .map_err(|e| storage_error(&name, e))?;
        }
        Some(IndexAction::Delete(index)) => {
            // The description still shows the index, as DELETING.
            let shown = def.clone();
            api.store
                .delete_global_index(&name, &index)
                .map_err(|e| storage_error(&name, e))?;
            def = shown;
        }
        None => {}
    }
    let mut stats = stats(api, &name);
    // The answer shows a new index CREATING, as DynamoDB's does, even when
    // a small table's backfill already finished (later descriptions show
    // its real state).
    for index in stats.indexes.iter_mut() {
        if created.as_deref() == Some(index.name.as_str()) {
            index.state.status = partita_model::schema::IndexStatus::Creating;
            index.state.backfilling = true;
        }
    }
    let mut description = table_description(&ArnContext::of(api), &def, status, stats);
    crate::replication::manage::describe(api, &name, &mut description);
    crate::replication::manage::propagate(api, "UpdateTable", &name, &req);
    Ok(json!({ "TableDescription": description }))
}

pub async fn delete_table(api: &Api, req: Request) -> Result<Value, ApiError> {
    let name = table_name_member(api, &req)?;
    let def = api
        .store
        .table(&name)
        .map_err(|e| storage_error(&name, e))?;
    if def.deletion_protection {
        return Err(ApiError::new(
            ErrorKind::Validation,
            "Resource cannot be deleted as it is currently protected against deletion. Disable deletion protection first.",
        ));
    }
    let stats = stats(api, &name);
    let replicated = api
        .replication
        .as_ref()
        .and_then(|r| r.replicated(&name).map(|state| (r, state)));
    let def = api
        .store
        .delete_table(&name)
        .map_err(|e| storage_error(&name, e))?;
    tracing::info!(table = %name, "table deleted");
    if let Some((replication, state)) = replicated {
        crate::replication::manage::table_deleted(replication, &name, state);
    }
    let description = table_description(&ArnContext::of(api), &def, TableStatus::Deleting, stats);
    Ok(json!({ "TableDescription": description }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_pages_are_exclusive_and_bounded() {
        let names: Vec<String> = ["a1", "b2", "c3", "d4"].map(String::from).to_vec();
        assert_eq!(list_page(&names, None, 100), (&names[..], false));
        assert_eq!(list_page(&names, None, 2), (&names[..2], true));
        assert_eq!(list_page(&names, Some("b2"), 2), (&names[2..], false));
        assert_eq!(list_page(&names, Some("b"), 1), (&names[1..2], true));
        assert_eq!(list_page(&names, Some("zz"), 5), (&names[4..], false));
        assert_eq!(list_page(&[], None, 5), (&[][..], false));
    }
}
