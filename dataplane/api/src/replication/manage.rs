//! Replica sets from the user's side: UpdateTable `ReplicaUpdates`
//! (global tables version 2019.11.21), the replica sets the replication
//! file declares, DeleteTable of a replica, and DescribeTable's `Replicas`.

use std::collections::BTreeSet;

use partita_storage::{ReplicaInfo, ReplicaStatus, ReplicationState, StorageError};
use serde_json::{json, Value};

use super::client::PeerClient;
use super::wire::{members, UpdateReplicaSet};
use super::Replication;
use crate::error::{ApiError, ErrorKind};
use crate::Api;

tokio::task_local! {
    /// Set while a settings change from another replica is applied, so it
    /// is not propagated back.
    static FROM_REPLICA: ();
}

/// Operations whose changes every replica of a table applies too (DynamoDB
/// keeps throughput, indexes and TTL aligned across replicas).
pub const ALIGNED_OPERATIONS: [&str; 2] = ["UpdateTable", "UpdateTimeToLive"];

/// After a successful `op` on a table with replicas in this region: sends
/// the same request to every replica (in the background, retried while a
/// replica is unreachable). Changes that came from a replica are not sent
/// on.
pub(crate) fn propagate(api: &Api, op: &'static str, table: &str, req: &crate::request::Request) {
    if FROM_REPLICA.try_with(|_| ()).is_ok() {
        return;
    }
    let Some(repl) = &api.replication else {
        return;
    };
    let Some(state) = repl.replicated(table) else {
        return;
    };
    // Deletion protection and table class are each replica's own.
    if req.has("DeletionProtectionEnabled") || req.has("TableClass") {
        return;
    }
    let request = super::wire::UpdateSettings {
        table_name: table.to_string(),
        source_region: repl.region.clone(),
        operation: op.to_string(),
        request: Value::Object(req.as_object().clone()),
    };
    let regions = state
        .replicas
        .iter()
        .filter(|r| r.status != ReplicaStatus::Deleting)
        .map(|r| r.region.clone())
        .collect();
    super::replicator::spawn_call(
        repl.clone(),
        table.to_string(),
        regions,
        "UpdateSettings",
        request,
    );
}

/// Applies a settings change another replica made (see [`propagate`]).
pub(crate) async fn apply_settings(
    api: &Api,
    op: &str,
    req: crate::request::Request,
) -> Result<Value, ApiError> {
    FROM_REPLICA
        .scope((), crate::ops::dispatch(api, op, req))
        .await
}

/// DescribeTable's GlobalTableVersion of a table with replicas.
pub const GLOBAL_TABLE_VERSION: &str = "2019.11.21";

/// One entry of `ReplicaUpdates`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ReplicaUpdate {
    Create(String),
    Delete(String),
}

impl ReplicaUpdate {
    pub fn region(&self) -> &str {
        match self {
            ReplicaUpdate::Create(r) | ReplicaUpdate::Delete(r) => r,
        }
    }
}

/// The message of ReplicaUpdates on a server without replication.
pub const NOT_CONFIGURED: &str = "ReplicaUpdates are not supported by this server without a replication configuration (partita serve --replication FILE); in Kubernetes, global tables are configured with the GlobalTable resource";

fn stream_error(table: &str) -> ApiError {
    ApiError::validation(format!(
        "Table: {table} must have DynamoDB Streams enabled with StreamViewType NEW_AND_OLD_IMAGES to add a replica"
    ))
}

/// Checks that `table` can be replicated: a stream with new and old images.
fn check_stream(def: &partita_model::TableDefinition) -> Result<(), ApiError> {
    let ok = def
        .stream
        .as_ref()
        .is_some_and(|s| s.enabled && s.view_type.as_deref() == Some("NEW_AND_OLD_IMAGES"));
    if ok {
        Ok(())
    } else {
        Err(stream_error(&def.name))
    }
}

/// Validates `updates` against the table and the replication file and
/// records them: a Create adds the region as CREATING (this region's
/// replicator creates the peer table, copies the items, then marks it
/// ACTIVE), a Delete marks it DELETING (the replicator deletes the peer
/// table, then drops it from the set).
pub(crate) fn update_replicas(
    api: &Api,
    table: &str,
    updates: &[ReplicaUpdate],
) -> Result<(), ApiError> {
    let Some(repl) = &api.replication else {
        return Err(ApiError::validation(NOT_CONFIGURED));
    };
    let def = api
        .store
        .table(table)
        .map_err(|e| crate::ops::describe::storage_error(table, e))?;
    let file = repl.file();
    let mut seen = BTreeSet::new();
    for update in updates {
        let region = update.region();
        if !seen.insert(region.to_string()) {
            return Err(ApiError::validation(format!(
                "Only one replica update per region is allowed in a single request: {region}"
            )));
        }
        if region == repl.region {
            return Err(ApiError::validation(format!(
                "Cannot add or delete a replica in the table's own region: {region}"
            )));
        }
    }
    let _guard = repl.set_lock();
    let mut state = repl
        .store
        .replication(table)
        .map_err(|e| crate::ops::describe::storage_error(table, e))?
        .unwrap_or(ReplicationState {
            region: repl.region.clone(),
            replicas: Vec::new(),
            creating: false,
        });
    for update in updates {
        let region = update.region();
        let existing = state.replicas.iter().position(|r| r.region == region);
        match (update, existing) {
            (ReplicaUpdate::Create(_), Some(_)) => {
                return Err(ApiError::validation(format!(
                    "Failed to create a replica in region {region} because it already exists"
                )));
            }
            (ReplicaUpdate::Create(_), None) => {
                check_stream(&def)?;
                if file.peer(region).is_none() {
                    return Err(ApiError::validation(format!(
                        "Region {region} is not a peer region of this Partita installation; add it to the peers of the replication file"
                    )));
                }
                state.replicas.push(ReplicaInfo {
                    region: region.to_string(),
                    status: ReplicaStatus::Creating,
                    adding: true,
                });
            }
            (ReplicaUpdate::Delete(_), None) => {
                return Err(ApiError::new(
                    ErrorKind::ResourceNotFound,
                    format!("Requested resource not found: Replica of table {table} in region {region} not found"),
                ));
            }
            (ReplicaUpdate::Delete(_), Some(i)) => {
                if file.peer(region).is_none() {
                    return Err(ApiError::validation(format!(
                        "Region {region} is not a peer region of this Partita installation; add it to the peers of the replication file"
                    )));
                }
                state.replicas[i].status = ReplicaStatus::Deleting;
                state.replicas[i].adding = true;
            }
        }
    }
    state.replicas.sort_by(|a, b| a.region.cmp(&b.region));
    repl.store
        .set_replication(table, Some(state))
        .map_err(|e| crate::ops::describe::storage_error(table, e))?;
    tracing::info!(table = %table, updates = ?updates, "replica updates accepted");
    repl.poke();
    Ok(())
}

/// Adds the replicas the replication file declares (`tables`) and that
/// the local tables lack, as a ReplicaUpdates Create would. Problems are
/// reported in the status document.
pub(crate) async fn apply_declared(repl: &Replication) {
    let file = repl.file();
    let mut errors = std::collections::BTreeMap::new();
    for (table, regions) in &file.tables {
        let def = match repl.store.table(table) {
            Ok(def) => def,
            Err(StorageError::TableNotFound(_)) => continue,
            Err(e) => {
                errors.insert(table.clone(), e.to_string());
                continue;
            }
        };
        let current = repl.store.replication(table).ok().flatten();
        let missing: Vec<&String> = regions
            .iter()
            .filter(|r| **r != repl.region)
            .filter(|r| {
                !current
                    .as_ref()
                    .is_some_and(|s| s.replicas.iter().any(|x| &x.region == *r))
            })
            .collect();
        if missing.is_empty() {
            continue;
        }
        if let Err(e) = check_stream(&def) {
            errors.insert(table.clone(), e.message.clone());
            continue;
        }
        let _guard = repl.set_lock();
        let mut state = repl
            .store
            .replication(table)
            .ok()
            .flatten()
            .unwrap_or(ReplicationState {
                region: repl.region.clone(),
                replicas: Vec::new(),
                creating: false,
            });
        for region in missing {
            if state.replicas.iter().any(|r| &r.region == region) {
                continue;
            }
            state.replicas.push(ReplicaInfo {
                region: region.clone(),
                status: ReplicaStatus::Creating,
                adding: true,
            });
            tracing::info!(table = %table, region = %region, "adding a replica declared in the replication file");
        }
        state.replicas.sort_by(|a, b| a.region.cmp(&b.region));
        if let Err(e) = repl.store.set_replication(table, Some(state)) {
            errors.insert(table.clone(), e.to_string());
        }
    }
    *repl
        .declared_errors
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = errors;
}

/// After DeleteTable of a replicated table: tells the other members that
/// this region left (best effort, in the background), as deleting a
/// replica's table in its own region does in DynamoDB.
pub(crate) fn table_deleted(
    repl: &std::sync::Arc<Replication>,
    table: &str,
    state: ReplicationState,
) {
    let repl = repl.clone();
    let table = table.to_string();
    tokio::spawn(async move {
        let file = repl.file();
        let rest: Vec<ReplicaInfo> = state.replicas.clone();
        for member in &state.replicas {
            let Some(peer) = file.peer(&member.region) else {
                continue;
            };
            // The set without this region.
            let mut set = members(&repl.region, &rest);
            set.retain(|m| m.region_name != repl.region);
            let request = UpdateReplicaSet {
                table_name: table.clone(),
                source_region: repl.region.clone(),
                replicas: set,
            };
            if let Err(e) = PeerClient::default()
                .call::<_, Value>(peer, "UpdateReplicaSet", &request)
                .await
            {
                tracing::warn!(table = %table, region = %member.region, error = %e, "telling a replica that this region left failed");
            }
        }
    });
}

/// Adds `Replicas` and `GlobalTableVersion` to a TableDescription of a
/// table with replicas (the other regions, as this region knows them), and
/// shows the table UPDATING while a replica is being created or deleted.
pub(crate) fn describe(api: &Api, table: &str, description: &mut Value) {
    let Some(state) = api.replication.as_ref().and_then(|r| r.replicated(table)) else {
        return;
    };
    let Some(out) = description.as_object_mut() else {
        return;
    };
    let replicas: Vec<Value> = state
        .replicas
        .iter()
        .map(|r| json!({ "RegionName": r.region, "ReplicaStatus": r.status.as_str() }))
        .collect();
    let changing = state
        .replicas
        .iter()
        .any(|r| r.status != ReplicaStatus::Active);
    out.insert(
        "GlobalTableVersion".into(),
        Value::from(GLOBAL_TABLE_VERSION),
    );
    out.insert("Replicas".into(), Value::Array(replicas));
    let active = out.get("TableStatus").and_then(Value::as_str) == Some("ACTIVE");
    if state.creating && active {
        out.insert("TableStatus".into(), Value::from("CREATING"));
    } else if changing && active {
        out.insert("TableStatus".into(), Value::from("UPDATING"));
    }
}

/// Refuses to disable the stream of a table with replicas.
pub(crate) fn check_stream_change(api: &Api, table: &str, disabling: bool) -> Result<(), ApiError> {
    if !disabling {
        return Ok(());
    }
    if api
        .replication
        .as_ref()
        .and_then(|r| r.replicated(table))
        .is_some()
    {
        return Err(ApiError::validation(format!(
            "Table: {table} has replicas (global table version {GLOBAL_TABLE_VERSION}); its stream cannot be disabled while it has replicas"
        )));
    }
    Ok(())
}
