//! The receiving side of replication: `X-Amz-Target`
//! `PartitaReplication_20261122.<Op>` on the normal listener.
//!
//! Every call is SigV4-authenticated, whatever `--auth` says: against the
//! replication file's `inbound` credentials, or (with `--auth`) a user
//! whose policies allow the action `partita:Replicate` on the table. A
//! missing, malformed or unknown signature gets the DynamoDB-style error
//! (`MissingAuthenticationTokenException`,
//! `UnrecognizedClientException`, `InvalidSignatureException`, ...) and
//! changes nothing. A replicated change is never a user write: no capacity
//! is consumed and no condition applies (last writer wins decides).

use partita_storage::{ReplicaApply, ReplicaInfo, ReplicaStatus, ReplicationState, StorageError};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::wire::{
    Applied, ApplyChanges, CreateReplica, DeleteReplica, UpdateReplicaSet, WireReplica,
};
use super::Replication;
use crate::auth::policy::{evaluate, ContextKeys, Decision, RequestContext};
use crate::auth::sigv4::{self, HttpParts, SigError};
use crate::error::{ApiError, ErrorKind};
use crate::Api;

/// The `X-Amz-Target` prefix of replication calls.
pub const TARGET_PREFIX: &str = "PartitaReplication_20261122.";

/// The IAM action a user needs to call the replication endpoint.
pub const REPLICATE_ACTION: &str = "partita:Replicate";

/// Handles one replication call.
pub(crate) async fn handle(
    api: &Api,
    parts: &hyper::http::request::Parts,
    body: &[u8],
    op: &str,
) -> Result<Vec<u8>, ApiError> {
    tracing::Span::current().record("operation", op);
    let Some(repl) = &api.replication else {
        return Err(ApiError::new(
            ErrorKind::UnknownOperation,
            "Replication is not configured on this server (partita serve --replication)",
        ));
    };
    let http = HttpParts {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect(),
    };
    authenticate(api, repl, &http, body)?;
    let answer = match op {
        "ApplyChanges" => apply_changes(repl, parse(body)?).await?,
        "FinishCopy" => finish_copy(repl, parse(body)?).await?,
        "UpdateSettings" => update_settings(api, repl, parse(body)?).await?,
        "CreateReplica" => create_replica(repl, parse(body)?)?,
        "UpdateReplicaSet" => update_replica_set(repl, parse(body)?)?,
        "DeleteReplica" => delete_replica(repl, parse(body)?)?,
        "Ping" => json!({ "Region": repl.region }),
        _ => {
            return Err(ApiError::new(
                ErrorKind::UnknownOperation,
                format!("The replication operation {op} is not supported by this server"),
            ))
        }
    };
    serde_json::to_vec(&answer).map_err(|_| ApiError::internal())
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::serialization(format!("Invalid replication request: {e}")))
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Accepts the file's inbound credentials, or an `--auth` user allowed
/// `partita:Replicate`; refuses everything else as DynamoDB would.
fn authenticate(
    api: &Api,
    repl: &Replication,
    http: &HttpParts<'_>,
    body: &[u8],
) -> Result<(), ApiError> {
    let req = sigv4::parse_request(http)?;
    sigv4::check_scope(&req, &api.config.region, crate::auth::SERVICE)?;
    let file = repl.file();
    if let Some(cred) = file
        .inbound
        .iter()
        .find(|c| c.access_key_id == req.credential.access_key)
    {
        sigv4::check_time(&req, now_secs())?;
        sigv4::verify_signature(&req, http, body, cred.secret_access_key.as_bytes())?;
        return Ok(());
    }
    if api.auth.is_enforcing() {
        let Some(principal) = api.auth.authenticate(http, body, &api.config.region)? else {
            return Err(SigError::UnknownKey.into());
        };
        let table = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["TableName"].as_str().map(str::to_string))
            .unwrap_or_default();
        let resource = api.table_arn(&table);
        let mut keys = ContextKeys::new();
        keys.set("aws:username", principal.user.name.clone());
        let ctx = RequestContext {
            action: REPLICATE_ACTION,
            resource: &resource,
            keys: &keys,
        };
        let policies = principal.user.policies.iter().map(|(_, p)| p.as_ref());
        let decision = evaluate(policies, &ctx);
        if decision == Decision::Allow {
            return Ok(());
        }
        let check = crate::auth::enforce::Check {
            action: REPLICATE_ACTION.to_string(),
            resource,
            keys,
        };
        return Err(crate::auth::enforce::access_denied(
            api, &principal, &check, decision,
        ));
    }
    Err(SigError::UnknownKey.into())
}

fn not_a_replica(table: &str, region: &str) -> ApiError {
    ApiError::new(
        ErrorKind::ResourceNotFound,
        format!("Requested resource not found: Table: {table} has no replica in region {region}"),
    )
}

fn storage(table: &str, e: StorageError) -> ApiError {
    match e {
        StorageError::TableNotFound(_) => crate::ops::describe::table_not_found(table),
        other => {
            tracing::error!(table, error = %other, "replication call failed in the storage");
            ApiError::internal()
        }
    }
}

async fn apply_changes(repl: &Replication, req: ApplyChanges) -> Result<Value, ApiError> {
    let table = &req.table_name;
    let state = repl
        .store
        .replication(table)
        .map_err(|e| storage(table, e))?
        .ok_or_else(|| not_a_replica(table, &repl.region))?;
    if !state.replicas.iter().any(|r| r.region == req.source_region) {
        return Err(ApiError::validation(format!(
            "Region {} is not a replica of table {table} in region {}",
            req.source_region, repl.region
        )));
    }
    let changes = req
        .changes
        .iter()
        .map(|c| c.decode())
        .collect::<Result<Vec<_>, _>>()?;
    let fingerprints: Vec<u64> = match req.copy_session {
        Some(_) => changes
            .iter()
            .map(|c| super::wire::key_fingerprint(&c.keys))
            .collect(),
        None => Vec::new(),
    };
    let outcomes = repl
        .store
        .apply_replicated(table, changes)
        .await
        .map_err(|e| storage(table, e))?;
    if let Some(session) = req.copy_session {
        repl.copy_sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((table.clone(), req.source_region.clone(), session))
            .or_default()
            .extend(fingerprints);
    }
    let mut answer = Applied::default();
    for outcome in outcomes {
        match outcome {
            ReplicaApply::Applied => answer.applied += 1,
            ReplicaApply::Superseded => answer.superseded += 1,
        }
    }
    repl.metrics
        .applied(table, &req.source_region, answer.applied, answer.superseded);
    serde_json::to_value(answer).map_err(|_| ApiError::internal())
}

/// Applies an UpdateTable or UpdateTimeToLive another replica made.
async fn update_settings(
    api: &Api,
    repl: &Replication,
    req: super::wire::UpdateSettings,
) -> Result<Value, ApiError> {
    let table = &req.table_name;
    let state = repl
        .store
        .replication(table)
        .map_err(|e| storage(table, e))?
        .ok_or_else(|| not_a_replica(table, &repl.region))?;
    if !state.replicas.iter().any(|r| r.region == req.source_region) {
        return Err(not_a_replica(table, &req.source_region));
    }
    let op = super::manage::ALIGNED_OPERATIONS
        .iter()
        .find(|o| **o == req.operation)
        .ok_or_else(|| {
            ApiError::validation(format!("{} cannot be applied to a replica", req.operation))
        })?;
    let serde_json::Value::Object(body) = req.request else {
        return Err(ApiError::serialization(
            "UpdateSettings Request must be an object",
        ));
    };
    if body.get("TableName").and_then(Value::as_str) != Some(table.as_str()) {
        return Err(ApiError::validation(
            "UpdateSettings names two different tables",
        ));
    }
    tracing::info!(table = %table, source = %req.source_region, operation = op, "applying a replica's settings change");
    super::manage::apply_settings(api, op, crate::request::Request::from_object(body)).await
}

/// Ends a full copy: deletes the items that originated in the source
/// before the copy started and were not in it (see `wire::FinishCopy`),
/// each with the smallest version that beats the item's, so any later
/// write still wins. Without the session (this process restarted during
/// the copy) nothing is deleted.
async fn finish_copy(repl: &Replication, req: super::wire::FinishCopy) -> Result<Value, ApiError> {
    let table = &req.table_name;
    let seen = repl
        .copy_sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&(table.clone(), req.source_region.clone(), req.copy_session));
    let Some(seen) = seen else {
        return Ok(json!({ "Pruned": 0 }));
    };
    let schema = repl
        .store
        .table(table)
        .map_err(|e| storage(table, e))?
        .key_schema;
    let partitions = repl
        .store
        .partition_count(table)
        .map_err(|e| storage(table, e))?;
    let mut deletes = Vec::new();
    for p in 0..partitions {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = repl
                .store
                .copy_page(table, p, after.as_deref(), 1000)
                .map_err(|e| storage(table, e))?;
            for (item, version) in &page.items {
                if version.region != req.source_region || version.ts_us >= req.started_at {
                    continue;
                }
                let Some(keys) = schema.extract_key(item) else {
                    continue;
                };
                if seen.contains(&super::wire::key_fingerprint(&keys)) {
                    continue;
                }
                deletes.push(partita_storage::ReplicatedChange {
                    keys,
                    new: None,
                    version: partita_storage::Version {
                        ts_us: version.ts_us + 1,
                        region: version.region.clone(),
                    },
                });
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    let mut pruned = 0u64;
    while !deletes.is_empty() {
        let rest = deletes.split_off(deletes.len().min(500));
        let chunk = std::mem::replace(&mut deletes, rest);
        let outcomes = repl
            .store
            .apply_replicated(table, chunk)
            .await
            .map_err(|e| storage(table, e))?;
        pruned += outcomes
            .iter()
            .filter(|o| **o == ReplicaApply::Applied)
            .count() as u64;
    }
    if pruned > 0 {
        tracing::info!(table = %table, source = %req.source_region, pruned, "full copy: deleted items the source no longer has");
        repl.metrics.applied(table, &req.source_region, pruned, 0);
    }
    Ok(json!({ "Pruned": pruned }))
}

/// Returns the next change-log number of every partition of `table`.
pub(crate) fn log_heads(repl: &Replication, table: &str) -> Result<Vec<u64>, StorageError> {
    let partitions = repl.store.partition_count(table)?;
    (0..partitions)
        .map(|p| {
            repl.store
                .read_changes(table, p, u64::MAX, None, 0)
                .map(|page| page.next_seq)
        })
        .collect()
}

fn create_replica(repl: &Replication, req: CreateReplica) -> Result<Value, ApiError> {
    let _guard = repl.set_lock();
    let table = &req.table_name;
    let store = &repl.store;
    match store.table(table) {
        Ok(existing) => {
            let ours = store
                .replication(table)
                .map_err(|e| storage(table, e))?
                .is_some_and(|s| s.replicas.iter().any(|r| r.region == req.source_region));
            if !ours {
                let (items, _) = store.table_stats(table).map_err(|e| storage(table, e))?;
                if existing.key_schema != req.definition.key_schema || items > 0 {
                    return Err(ApiError::validation(format!(
                        "Table {table} already exists in region {} with data or a different key schema; a replica must be new or empty with the same key schema",
                        repl.region
                    )));
                }
                let view = existing
                    .stream
                    .as_ref()
                    .filter(|s| s.enabled)
                    .and_then(|s| s.view_type.clone());
                match view.as_deref() {
                    Some("NEW_AND_OLD_IMAGES") => {}
                    Some(_) => {
                        return Err(ApiError::validation(format!(
                            "Table {table} in region {} has a stream whose view type is not NEW_AND_OLD_IMAGES",
                            repl.region
                        )))
                    }
                    None => {
                        let now = crate::ops::describe::now_ms();
                        let backend: &dyn crate::backend::Backend = store.as_ref();
                        backend
                            .update_table(table, |def| {
                                def.stream = req.definition.stream.clone();
                                def.stream_label =
                                    Some(crate::ops::describe::iso_timestamp(now));
                                Ok(())
                            })
                            .map_err(|e| storage(table, e))?;
                    }
                }
                tracing::info!(table = %table, source = %req.source_region, "adopting an empty table as a replica");
            }
        }
        Err(StorageError::TableNotFound(_)) => {
            let now = crate::ops::describe::now_ms();
            let mut def = req.definition.clone();
            def.name = table.clone();
            def.table_id = crate::ops::describe::new_table_id();
            def.created_at_ms = now;
            def.stream_label = Some(crate::ops::describe::iso_timestamp(now));
            // Replicated from its first write on (no peers yet, being
            // filled): a client write that lands before the replica set is
            // installed still gets a version and is shipped from the start
            // of the log.
            let state = ReplicationState {
                region: repl.region.clone(),
                replicas: Vec::new(),
                creating: true,
            };
            store
                .create_replicated_table(def, state)
                .map_err(|e| storage(table, e))?;
            tracing::info!(table = %table, source = %req.source_region, "replica table created");
            install_set(repl, table, &req.source_region, &req.replicas, true)?;
            return Ok(json!({}));
        }
        Err(e) => return Err(storage(table, e)),
    }
    install_set(repl, table, &req.source_region, &req.replicas, false)?;
    Ok(json!({}))
}

fn update_replica_set(repl: &Replication, req: UpdateReplicaSet) -> Result<Value, ApiError> {
    let _guard = repl.set_lock();
    let table = &req.table_name;
    if repl
        .store
        .replication(table)
        .map_err(|e| storage(table, e))?
        .is_none()
    {
        return Err(not_a_replica(table, &repl.region));
    }
    install_set(repl, table, &req.source_region, &req.replicas, false)?;
    Ok(json!({}))
}

/// Installs the replica set `members` (as `source` knows it) for `table`:
/// members this region drives keep their local state; a new member's
/// cursors start at this region's cursors towards `source` (changes `source`
/// has not acknowledged may not be in the copy `source` makes), or at the
/// log heads; a member that left loses its cursors. Callers hold the set
/// lock.
pub(crate) fn install_set(
    repl: &Replication,
    table: &str,
    source: &str,
    members: &[WireReplica],
    fresh: bool,
) -> Result<(), ApiError> {
    let store = &repl.store;
    let existing_state = store.replication(table).map_err(|e| storage(table, e))?;
    let known = existing_state.is_some();
    let current = existing_state.unwrap_or(ReplicationState {
        region: repl.region.clone(),
        replicas: Vec::new(),
        creating: false,
    });
    let heads = log_heads(repl, table).map_err(|e| storage(table, e))?;
    let mut next: Vec<ReplicaInfo> = Vec::new();
    for member in members {
        if member.region_name == repl.region {
            continue;
        }
        let existing = current
            .replicas
            .iter()
            .find(|r| r.region == member.region_name);
        match existing {
            Some(r) if r.adding => next.push(r.clone()),
            // Statuses only move forward (CREATING to ACTIVE): an
            // announcement sent before another one may arrive after it.
            Some(r) => next.push(ReplicaInfo {
                status: match ReplicaStatus::parse(&member.replica_status) {
                    Some(ReplicaStatus::Creating) if r.status == ReplicaStatus::Active => {
                        ReplicaStatus::Active
                    }
                    Some(status) => status,
                    None => r.status,
                },
                ..r.clone()
            }),
            None => {
                let cursors: Vec<(u32, Option<u64>)> = heads
                    .iter()
                    .enumerate()
                    .map(|(p, head)| {
                        let p = p as u32;
                        let from = store
                            .replication_cursor(table, source, p)
                            .ok()
                            .flatten()
                            // A table created as a replica ships its whole log.
                            .unwrap_or(if fresh { 0 } else { *head });
                        (p, Some(from))
                    })
                    .collect();
                store
                    .set_replication_cursors(table, &member.region_name, &cursors)
                    .map_err(|e| storage(table, e))?;
                next.push(ReplicaInfo {
                    region: member.region_name.clone(),
                    status: ReplicaStatus::parse(&member.replica_status)
                        .unwrap_or(ReplicaStatus::Active),
                    adding: false,
                });
            }
        }
    }
    // Replicas this region is adding or deleting stay until it is done.
    for r in &current.replicas {
        if r.adding && !next.iter().any(|n| n.region == r.region) {
            next.push(r.clone());
        }
    }
    for gone in current
        .replicas
        .iter()
        .filter(|r| !next.iter().any(|n| n.region == r.region))
    {
        let cursors: Vec<(u32, Option<u64>)> = (0..heads.len() as u32).map(|p| (p, None)).collect();
        store
            .set_replication_cursors(table, &gone.region, &cursors)
            .map_err(|e| storage(table, e))?;
    }
    next.sort_by(|a, b| a.region.cmp(&b.region));
    store
        .set_replication(
            table,
            Some(ReplicationState {
                region: repl.region.clone(),
                replicas: next,
                // Once filled, a replica stays filled.
                creating: (!known || current.creating)
                    && members.iter().any(|m| {
                        m.region_name == repl.region
                            && m.replica_status == ReplicaStatus::Creating.as_str()
                    }),
            }),
        )
        .map_err(|e| storage(table, e))?;
    repl.poke();
    Ok(())
}

fn delete_replica(repl: &Replication, req: DeleteReplica) -> Result<Value, ApiError> {
    let _guard = repl.set_lock();
    let table = &req.table_name;
    let ours = match repl.store.replication(table) {
        Ok(state) => {
            state.is_some_and(|s| s.replicas.iter().any(|r| r.region == req.source_region))
        }
        Err(StorageError::TableNotFound(_)) => return Ok(json!({})),
        Err(e) => return Err(storage(table, e)),
    };
    if !ours {
        return Err(not_a_replica(table, &req.source_region));
    }
    match repl.store.delete_table(table) {
        Ok(_) | Err(StorageError::TableNotFound(_)) => {}
        Err(e) => return Err(storage(table, e)),
    }
    tracing::info!(table = %table, source = %req.source_region, "replica table deleted");
    repl.poke();
    Ok(json!({}))
}
