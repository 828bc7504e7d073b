//! One replicator per (table, peer region): creates and fills the peer's
//! replica when this region adds it, tails the change log afterwards, and
//! deletes the peer's replica when this region removes it. See the module
//! docs of `replication` for the protocol.

use std::sync::Arc;
use std::time::{Duration, Instant};

use partita_model::Item;
use partita_storage::{ReplicaInfo, ReplicaStatus, ReplicationState, StorageError};
use partita_topology::replication::PeerRegion;
use serde_json::Value;

use super::client::{CallError, PeerClient};
use super::endpoint::log_heads;
use super::wire::{
    members, Applied, ApplyChanges, CreateReplica, DeleteReplica, FinishCopy, UpdateReplicaSet,
    WireChange,
};
use super::Replication;

/// Most change-log records read per partition and step.
const READ_BATCH: usize = 1000;
/// Most changes per ApplyChanges call.
const SEND_BATCH: usize = 250;
/// Most items per full-copy page.
const COPY_BATCH: usize = 250;
/// How long an idle replicator waits for a change-log notification
/// before looking anyway.
const POLL: Duration = Duration::from_millis(200);
/// How often an idle replicator checks that its peer answers.
const HEARTBEAT: Duration = Duration::from_secs(3);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Attempts to announce a replica set to one member (about 2 minutes).
const ANNOUNCE_ATTEMPTS: usize = 30;
const BACKOFF_MAX: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub(crate) enum StepError {
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Config(String),
}

enum Next {
    /// The replica is gone from the set or the table is gone: stop.
    Done,
    /// Nothing to do right now.
    Idle,
    /// More work is waiting.
    Busy,
}

/// Runs the replicator of (`table` incarnation `table_id`, `region`) until
/// the replica leaves the set or the table is gone.
pub(crate) async fn run(repl: Arc<Replication>, table: String, table_id: String, region: String) {
    let mut client = PeerClient::default();
    let mut backoff = BACKOFF_MIN;
    // Check the peer at once: the status shows it reachable or not early.
    let mut last_contact = Instant::now()
        .checked_sub(HEARTBEAT)
        .unwrap_or_else(Instant::now);
    tracing::info!(table = %table, region = %region, "replicator started");
    let changes = repl.store.change_notifier();
    loop {
        // Registered before the step looks, so a commit during the step
        // still wakes the wait below.
        let notified = changes.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        partita_supervise::failpoint("replicator");
        match step(&repl, &table, &table_id, &region, &mut client).await {
            Ok(Next::Done) => {
                tracing::info!(table = %table, region = %region, "replicator stopped");
                return;
            }
            Ok(next) => {
                backoff = BACKOFF_MIN;
                if matches!(next, Next::Busy) {
                    last_contact = Instant::now();
                    tokio::task::yield_now().await;
                    continue;
                }
                if last_contact.elapsed() >= HEARTBEAT {
                    last_contact = Instant::now();
                    if let Err(e) = heartbeat(&repl, &region, &mut client).await {
                        record_error(&repl, &table, &region, &StepError::Call(e));
                    } else {
                        mark_reachable(&repl, &table, &region);
                    }
                }
                let _ = tokio::time::timeout(POLL, notified).await;
            }
            Err(e) => {
                tracing::debug!(table = %table, region = %region, error = %e, "replication step failed");
                record_error(&repl, &table, &region, &e);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

fn record_error(repl: &Replication, table: &str, region: &str, e: &StepError) {
    let unreachable = matches!(
        e,
        StepError::Call(CallError::Unreachable(_)) | StepError::Call(CallError::Endpoint(_))
    );
    let message = e.to_string();
    repl.set_view(table, region, |v| {
        if unreachable {
            v.reachable = false;
        } else if matches!(e, StepError::Call(_)) {
            // It answered, with an error.
            v.reachable = true;
        }
        v.last_error = Some(message);
    });
}

fn mark_reachable(repl: &Replication, table: &str, region: &str) {
    repl.set_view(table, region, |v| {
        v.reachable = true;
        v.last_error = None;
    });
}

async fn heartbeat(
    repl: &Replication,
    region: &str,
    client: &mut PeerClient,
) -> Result<(), CallError> {
    let file = repl.file();
    let Some(peer) = file.peer(region) else {
        return Ok(());
    };
    client
        .call::<_, Value>(peer, "Ping", &serde_json::json!({}))
        .await
        .map(|_| ())
}

async fn step(
    repl: &Arc<Replication>,
    table: &str,
    table_id: &str,
    region: &str,
    client: &mut PeerClient,
) -> Result<Next, StepError> {
    let store = &repl.store;
    let def = match store.table(table) {
        Ok(def) if def.table_id == table_id => def,
        _ => return Ok(Next::Done),
    };
    let Some(state) = store.replication(table)? else {
        return Ok(Next::Done);
    };
    let Some(info) = state.replicas.iter().find(|r| r.region == region).cloned() else {
        return Ok(Next::Done);
    };
    let file = repl.file();
    let Some(peer) = file.peer(region).cloned() else {
        return Err(StepError::Config(format!(
            "region {region} is not a peer in the replication file"
        )));
    };
    match (info.status, info.adding) {
        (ReplicaStatus::Deleting, _) => {
            delete_replica(repl, table, &state, &peer, client).await?;
            Ok(Next::Done)
        }
        (ReplicaStatus::Creating, true) => {
            create_replica(repl, table, def, &state, &peer, client).await?;
            Ok(Next::Busy)
        }
        _ => tail(repl, table, &def.key_schema, &peer, client).await,
    }
}

/// Announces a replica set to every member of `state` (see
/// [`spawn_call`]).
fn spawn_announce(
    repl: Arc<Replication>,
    table: String,
    state: ReplicationState,
    announce: UpdateReplicaSet,
) {
    let regions = state.replicas.into_iter().map(|r| r.region).collect();
    spawn_call(repl, table, regions, "UpdateReplicaSet", announce);
}

/// Calls `op` with `request` on each of `regions` in the background,
/// retrying while a region is unreachable (about 2 minutes); a region
/// that answers with an error is not asked again.
pub(crate) fn spawn_call<Q>(
    repl: Arc<Replication>,
    table: String,
    regions: Vec<String>,
    op: &'static str,
    request: Q,
) where
    Q: serde::Serialize + Send + Sync + 'static,
{
    let request = Arc::new(request);
    for region in regions {
        let (repl, table, request) = (repl.clone(), table.clone(), request.clone());
        tokio::spawn(async move {
            let mut backoff = BACKOFF_MIN;
            for _ in 0..ANNOUNCE_ATTEMPTS {
                let file = repl.file();
                let Some(peer) = file.peer(&region) else {
                    return;
                };
                match PeerClient::default()
                    .call::<_, Value>(peer, op, &*request)
                    .await
                {
                    Ok(_) => return,
                    Err(e @ CallError::Refused { .. }) => {
                        tracing::warn!(table = %table, region = %region, op, error = %e, "a replica refused a call");
                        return;
                    }
                    Err(e) => {
                        tracing::debug!(table = %table, region = %region, op, error = %e, "calling a replica failed; retrying");
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            tracing::warn!(table = %table, region = %region, op, "gave up calling a replica");
        });
    }
}

/// Calls `op` on every member of `state` but `except`, each with its own
/// connection.
async fn tell_members<Q: serde::Serialize>(
    repl: &Replication,
    state: &ReplicationState,
    except: &str,
    op: &str,
    request: &Q,
) -> Result<(), StepError> {
    let file = repl.file();
    for member in state.replicas.iter().filter(|r| r.region != except) {
        let Some(peer) = file.peer(&member.region) else {
            return Err(StepError::Config(format!(
                "region {} is not a peer in the replication file",
                member.region
            )));
        };
        PeerClient::default()
            .call::<_, Value>(peer, op, request)
            .await?;
    }
    Ok(())
}

async fn create_replica(
    repl: &Arc<Replication>,
    table: &str,
    def: partita_model::TableDefinition,
    state: &ReplicationState,
    peer: &PeerRegion,
    client: &mut PeerClient,
) -> Result<(), StepError> {
    let set = members(&repl.region, &state.replicas);
    client
        .call::<_, Value>(
            peer,
            "CreateReplica",
            &CreateReplica {
                table_name: table.to_string(),
                source_region: repl.region.clone(),
                definition: def,
                replicas: set.clone(),
            },
        )
        .await?;
    mark_reachable(repl, table, &peer.region);
    // Introduce the new replica to the other members before copying: from
    // now on they ship their own changes to it.
    let introduce = UpdateReplicaSet {
        table_name: table.to_string(),
        source_region: repl.region.clone(),
        replicas: set,
    };
    tell_members(repl, state, &peer.region, "UpdateReplicaSet", &introduce).await?;
    full_copy(repl, table, peer, client, CopyKind::NewReplica).await?;
    let state = {
        let _guard = repl.set_lock();
        let Some(mut state) = repl.store.replication(table)? else {
            return Ok(());
        };
        for r in state
            .replicas
            .iter_mut()
            .filter(|r| r.region == peer.region)
        {
            r.status = ReplicaStatus::Active;
            r.adding = false;
        }
        repl.store.set_replication(table, Some(state.clone()))?;
        state
    };
    tracing::info!(table = %table, region = %peer.region, "replica active");
    let announce = UpdateReplicaSet {
        table_name: table.to_string(),
        source_region: repl.region.clone(),
        replicas: members(&repl.region, &state.replicas),
    };
    spawn_announce(repl.clone(), table.to_string(), state.clone(), announce);
    Ok(())
}

async fn delete_replica(
    repl: &Arc<Replication>,
    table: &str,
    state: &ReplicationState,
    peer: &PeerRegion,
    client: &mut PeerClient,
) -> Result<(), StepError> {
    let request = DeleteReplica {
        table_name: table.to_string(),
        source_region: repl.region.clone(),
    };
    match client
        .call::<_, Value>(peer, "DeleteReplica", &request)
        .await
    {
        Ok(_) => {}
        Err(e) if e.kind() == Some("ResourceNotFoundException") => {}
        Err(e) => return Err(e.into()),
    }
    let remaining: Vec<ReplicaInfo> = state
        .replicas
        .iter()
        .filter(|r| r.region != peer.region)
        .cloned()
        .collect();
    {
        let _guard = repl.set_lock();
        if let Some(mut current) = repl.store.replication(table)? {
            current.replicas.retain(|r| r.region != peer.region);
            repl.store.set_replication(table, Some(current))?;
        }
        let partitions = repl.store.partition_count(table)?;
        let cursors: Vec<(u32, Option<u64>)> = (0..partitions).map(|p| (p, None)).collect();
        repl.store
            .set_replication_cursors(table, &peer.region, &cursors)?;
    }
    tracing::info!(table = %table, region = %peer.region, "replica deleted");
    let rest = ReplicationState {
        region: repl.region.clone(),
        replicas: remaining,
        creating: false,
    };
    let announce = UpdateReplicaSet {
        table_name: table.to_string(),
        source_region: repl.region.clone(),
        replicas: members(&repl.region, &rest.replicas),
    };
    spawn_announce(repl.clone(), table.to_string(), rest, announce);
    repl.poke();
    Ok(())
}

/// Why a full copy runs, which decides what it sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CopyKind {
    /// The peer is a new replica: it gets every item.
    NewReplica,
    /// The peer fell behind this region's change-log retention: it gets
    /// what this region is the origin of, and items whose origin region is
    /// no longer a replica. Never an item another current replica (the
    /// peer included) originated: that region ships its own changes, and
    /// this region's copy of such an item may be older than a delete whose
    /// tombstone has expired — sending it would bring the item back.
    CatchUp,
}

/// Copies the items `kind` says with their versions to the peer, then sets
/// the cursors to the log heads read before the copy (later changes are
/// re-sent by the tail; duplicates are no-ops at the peer).
async fn full_copy(
    repl: &Replication,
    table: &str,
    peer: &PeerRegion,
    client: &mut PeerClient,
    kind: CopyKind,
) -> Result<(), StepError> {
    let store = &repl.store;
    let heads = log_heads(repl, table)?;
    let schema = store.table(table)?.key_schema;
    let others: Vec<String> = match kind {
        CopyKind::NewReplica => Vec::new(),
        CopyKind::CatchUp => store
            .replication(table)?
            .map(|state| {
                state
                    .replicas
                    .into_iter()
                    .map(|r| r.region)
                    .filter(|r| *r != repl.region)
                    .collect()
            })
            .unwrap_or_default(),
    };
    let started_at = crate::ops::describe::now_ms() * 1000;
    let session = started_at ^ u64::from(std::process::id()).rotate_left(32);
    tracing::info!(table = %table, region = %peer.region, "full copy started");
    let mut copied = 0u64;
    for p in 0..heads.len() as u32 {
        let mut after: Option<Vec<u8>> = None;
        loop {
            if !repl.copy_delay.is_zero() {
                tokio::time::sleep(repl.copy_delay).await;
            }
            let page = store.copy_page(table, p, after.as_deref(), COPY_BATCH)?;
            let changes: Vec<WireChange> = page
                .items
                .iter()
                .filter(|(_, version)| !others.contains(&version.region))
                .filter_map(|(item, version)| {
                    let keys = schema.extract_key(item)?;
                    Some(WireChange::of(&keys, Some(item), version))
                })
                .collect();
            if !changes.is_empty() {
                let n = changes.len() as u64;
                send(repl, table, peer, client, changes, Some(session)).await?;
                repl.metrics.sent(table, &peer.region, n);
                copied += n;
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    client
        .call::<_, Value>(
            peer,
            "FinishCopy",
            &FinishCopy {
                table_name: table.to_string(),
                source_region: repl.region.clone(),
                copy_session: session,
                started_at,
            },
        )
        .await?;
    let cursors: Vec<(u32, Option<u64>)> = heads
        .iter()
        .enumerate()
        .map(|(p, h)| (p as u32, Some(*h)))
        .collect();
    store.set_replication_cursors(table, &peer.region, &cursors)?;
    tracing::info!(table = %table, region = %peer.region, items = copied, "full copy done");
    Ok(())
}

async fn send(
    repl: &Replication,
    table: &str,
    peer: &PeerRegion,
    client: &mut PeerClient,
    changes: Vec<WireChange>,
    copy_session: Option<u64>,
) -> Result<(), StepError> {
    let request = ApplyChanges {
        table_name: table.to_string(),
        source_region: repl.region.clone(),
        changes,
        copy_session,
    };
    client
        .call::<_, Applied>(peer, "ApplyChanges", &request)
        .await?;
    mark_reachable(repl, table, &peer.region);
    Ok(())
}

/// Ships the changes that originated here, partition by partition, from
/// the durable cursors; each cursor advances once the peer acknowledged.
async fn tail(
    repl: &Replication,
    table: &str,
    schema: &partita_model::KeySchema,
    peer: &PeerRegion,
    client: &mut PeerClient,
) -> Result<Next, StepError> {
    let store = &repl.store;
    let region = &peer.region;
    let partitions = store.partition_count(table)?;
    let now_ms = crate::ops::describe::now_ms();
    let mut pending = 0u64;
    let mut oldest: Option<u64> = None;
    let mut pages = Vec::with_capacity(partitions as usize);
    for p in 0..partitions {
        let cursor = store.replication_cursor(table, region, p)?.unwrap_or(0);
        let page = store.read_changes(table, p, cursor, None, READ_BATCH)?;
        if cursor < page.horizon && cursor < page.next_seq {
            tracing::warn!(table = %table, region = %region, partition = p, cursor, horizon = page.horizon, "the peer fell behind the change log's retention: full copy");
            full_copy(repl, table, peer, client, CopyKind::CatchUp).await?;
            return Ok(Next::Busy);
        }
        pending += page.next_seq.saturating_sub(cursor);
        if let Some(first) = page.records.first() {
            oldest = Some(oldest.map_or(first.created_ms, |o| o.min(first.created_ms)));
        }
        pages.push((p, page));
    }
    let lag = oldest.map_or(0.0, |o| now_ms.saturating_sub(o) as f64 / 1000.0);
    repl.metrics.set_progress(table, region, lag, pending);
    repl.set_view(table, region, |v| {
        v.lag_seconds = lag;
        v.pending = pending;
    });
    let mut busy = false;
    for (p, page) in pages {
        let Some(last) = page.records.last() else {
            continue;
        };
        let next = last.seq + 1;
        busy |= page.records.len() >= READ_BATCH;
        let mut changes = Vec::new();
        for record in &page.records {
            let Some(origin) = &record.origin else {
                continue;
            };
            if origin.region != repl.region {
                continue;
            }
            let keys: Item = schema
                .extract_key(&record.keys)
                .unwrap_or_else(|| record.keys.clone());
            changes.push(WireChange::of(&keys, record.new.as_ref(), origin));
        }
        let mut rest = changes;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(SEND_BATCH));
            let chunk = std::mem::replace(&mut rest, tail);
            let n = chunk.len() as u64;
            send(repl, table, peer, client, chunk, None).await?;
            repl.metrics.sent(table, region, n);
        }
        store.set_replication_cursors(table, region, &[(p, Some(next))])?;
    }
    if busy {
        Ok(Next::Busy)
    } else {
        if pending > 0 {
            // What was pending is shipped now.
            repl.metrics.set_progress(table, region, 0.0, 0);
            repl.set_view(table, region, |v| {
                v.lag_seconds = 0.0;
                v.pending = 0;
            });
        }
        Ok(Next::Idle)
    }
}
