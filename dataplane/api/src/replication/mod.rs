//! Global tables: cross-region replication, last writer
//! wins (the storage's `replica` module keeps versions and decides).
//!
//! Owns: the replication file (`--replication`, [`ReplicationFile`]) and
//! its reloading, the per-(table, peer region) replicators, the internal
//! replication endpoint other regions call, UpdateTable `ReplicaUpdates`,
//! the replica part of DescribeTable, the `/replication` status document
//! and the `partita_replication_*` metrics.
//!
//! Map:
//! - `wire`: the JSON of the internal calls (target prefix
//!   [`TARGET_PREFIX`]: `ApplyChanges`, `FinishCopy`, `CreateReplica`,
//!   `UpdateReplicaSet`, `DeleteReplica`, `UpdateSettings`, `Ping`).
//! - `client`: SigV4-signed calls to a peer region (`http://` or
//!   `https://`).
//! - `endpoint`: the receiving side; always authenticated against the
//!   file's `inbound` credentials (or, with `--auth`, users allowed
//!   `partita:Replicate`).
//! - `replicator`: one task per (table, peer): creates the peer's replica
//!   and copies the items (full copy), then tails every partition's change
//!   log from a durable cursor, shipping only changes that originated here
//!   (so nothing echoes back), and advances the cursor once the peer
//!   acknowledged. At-least-once; the peer's last-writer-wins compare makes
//!   duplicates no-ops. A cursor below the log's trim horizon (a peer down
//!   longer than the retention) means a full copy again.
//! - `manage`: ReplicaUpdates (Create/Delete), declared replica sets of
//!   the file, DeleteTable of a replicated table, DescribeTable's replicas,
//!   and settings kept aligned: UpdateTable and UpdateTimeToLive in one
//!   region are applied by every replica (`UpdateSettings`, never sent back).
//!
//! A full copy (a new replica, or a peer that fell behind the change log's
//! retention) sends every live item with its version, then `FinishCopy`:
//! the receiver deletes the items that originated in the copying region
//! before the copy started and were not in it (their deletes and
//! tombstones expired while it was away).
//!
//! Replica sets: every member holds the full set (minus itself) in its
//! table's [`ReplicationState`]. The region that adds a replica (`adding`)
//! creates it at the peer with the full set, introduces it to the other
//! members (`UpdateReplicaSet`, before copying: each member then ships its
//! own changes to the new region starting from its cursor towards the
//! adding region, so nothing falls between the copy and the tail), copies,
//! marks it ACTIVE and announces the new state to every member.

pub(crate) mod client;
pub(crate) mod endpoint;
pub(crate) mod manage;
mod metrics;
pub(crate) mod replicator;
pub mod store;
pub(crate) mod wire;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use partita_storage::ReplicationState;
use partita_supervise::OnFailure;

use partita_topology::replication::{
    ReplicaState, ReplicationFile, ReplicationStatus, TableReplication,
};
pub use store::ReplicaStore;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

pub use endpoint::TARGET_PREFIX;

/// Why a replication file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("parsing {path}: {message}")]
    Parse { path: String, message: String },
    #[error("{0}")]
    Invalid(#[from] partita_topology::replication::ReplicationFileError),
}

/// Parses a replication file (YAML or JSON) and validates it for
/// `own_region`.
pub fn parse_file(text: &str, own_region: &str, path: &str) -> Result<ReplicationFile, LoadError> {
    let file: ReplicationFile = serde_yaml_ng::from_str(text).map_err(|e| LoadError::Parse {
        path: path.to_string(),
        message: e.to_string(),
    })?;
    file.validate(Some(own_region))?;
    Ok(file)
}

/// Reads and validates a replication file.
pub fn load_file(path: &Path, own_region: &str) -> Result<ReplicationFile, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_file(&text, own_region, &path.display().to_string())
}

/// What one replicator last saw of its peer.
#[derive(Clone, Debug, Default)]
pub(crate) struct PeerView {
    pub reachable: bool,
    pub last_error: Option<String>,
    pub lag_seconds: f64,
    pub pending: u64,
}

/// The replication of one region: a `partita serve` process or a cluster's
/// gateway.
pub struct Replication {
    pub(crate) store: Arc<dyn ReplicaStore>,
    pub(crate) region: String,
    file: RwLock<Arc<ReplicationFile>>,
    pub(crate) metrics: metrics::ReplicationMetrics,
    /// (table, peer region) → what its replicator last saw.
    views: Mutex<BTreeMap<(String, String), PeerView>>,
    /// (table, table id, peer region) → replicator task.
    tasks: Mutex<HashMap<(String, String, String), JoinHandle<()>>>,
    /// Wakes the supervisor (replica set or file changed).
    wake: Notify,
    /// Problems of declared replica sets: table → message.
    declared_errors: Mutex<BTreeMap<String, String>>,
    /// Serializes read-modify-writes of replica sets.
    set_lock: Mutex<()>,
    /// Keys received per full copy in progess: (table, source region,
    /// session) → key fingerprints (see `wire::FinishCopy`).
    pub(crate) copy_sessions: Mutex<HashMap<(String, String, u64), std::collections::HashSet<u64>>>,
    /// Pause before each full-copy page (tests only: makes CREATING
    /// observable).
    pub(crate) copy_delay: Duration,
}

impl Replication {
    /// Replication for `store` in `region` with `file`.
    pub fn new(
        store: Arc<dyn ReplicaStore>,
        region: String,
        file: ReplicationFile,
    ) -> Arc<Replication> {
        Arc::new(Replication {
            store,
            region,
            file: RwLock::new(Arc::new(file)),
            metrics: metrics::ReplicationMetrics::new(),
            views: Mutex::new(BTreeMap::new()),
            tasks: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            declared_errors: Mutex::new(BTreeMap::new()),
            set_lock: Mutex::new(()),
            copy_sessions: Mutex::new(HashMap::new()),
            copy_delay: Duration::ZERO,
        })
    }

    /// Like [`Replication::new`], pausing `delay` before each page of a
    /// full copy (tests only).
    pub fn with_copy_delay(
        store: Arc<dyn ReplicaStore>,
        region: String,
        file: ReplicationFile,
        delay: Duration,
    ) -> Arc<Replication> {
        let mut this = Replication::new(store, region, file);
        if let Some(r) = Arc::get_mut(&mut this) {
            r.copy_delay = delay;
        }
        this
    }

    /// Returns the current replication file.
    pub fn file(&self) -> Arc<ReplicationFile> {
        self.file.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Installs a new replication file and wakes the replicators.
    pub fn install(&self, file: ReplicationFile) {
        *self.file.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(file);
        self.wake.notify_one();
    }

    /// Locks replica-set changes (read, modify, write). The holder may
    /// make slow store calls (a cluster router's are remote), so waiting
    /// for the lock on a runtime worker would stall the tasks that drive
    /// those calls: the wait happens in `block_in_place` there.
    pub(crate) fn set_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        let lock = || self.set_lock.lock().unwrap_or_else(|e| e.into_inner());
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(lock)
            }
            _ => lock(),
        }
    }

    /// Wakes the supervisor (a replica set changed).
    pub(crate) fn poke(&self) {
        self.wake.notify_one();
    }

    pub(crate) fn set_view(&self, table: &str, region: &str, change: impl FnOnce(&mut PeerView)) {
        let mut views = self.views.lock().unwrap_or_else(|e| e.into_inner());
        change(
            views
                .entry((table.to_string(), region.to_string()))
                .or_default(),
        );
    }

    /// Returns the `/replication` status document.
    pub fn status(&self) -> ReplicationStatus {
        let views = self.views.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let declared = self
            .declared_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut tables = Vec::new();
        for name in self.store.list_tables() {
            let Ok(Some(state)) = self.store.replication(&name) else {
                continue;
            };
            let replicas = state
                .replicas
                .iter()
                .map(|r| {
                    let view = views
                        .get(&(name.clone(), r.region.clone()))
                        .cloned()
                        .unwrap_or_default();
                    ReplicaState {
                        region_name: r.region.clone(),
                        replica_status: r.status.as_str().to_string(),
                        reachable: view.reachable,
                        lag_seconds: view.lag_seconds,
                        pending_changes: view.pending,
                        last_error: view.last_error,
                    }
                })
                .collect();
            tables.push(TableReplication {
                table_name: name,
                replicas,
            });
        }
        // Declared replica sets that could not be set up (e.g. no stream
        // with new and old images) show as CREATION_FAILED with the reason.
        let file = self.file();
        for (name, message) in declared {
            if tables
                .iter()
                .any(|t: &TableReplication| t.table_name == name)
            {
                continue;
            }
            let replicas = file
                .tables
                .get(&name)
                .map(|regions| {
                    regions
                        .iter()
                        .map(|region| ReplicaState {
                            region_name: region.clone(),
                            replica_status: "CREATION_FAILED".to_string(),
                            reachable: false,
                            lag_seconds: 0.0,
                            pending_changes: 0,
                            last_error: Some(message.clone()),
                        })
                        .collect()
                })
                .unwrap_or_default();
            tables.push(TableReplication {
                table_name: name,
                replicas,
            });
        }
        ReplicationStatus {
            region: self.region.clone(),
            tables,
        }
    }

    /// Renders the `partita_replication_*` series (Prometheus text).
    pub fn render_metrics(&self) -> String {
        self.metrics.render()
    }

    /// Starts the supervisor: it keeps one replicator per (table, peer) of
    /// every replicated table, and adds the replicas the file declares.
    /// Supervised (`partita_supervise`, tasks `replication_reconcile` and
    /// one `replicator` per table and peer): a failure restarts the task.
    pub fn start(self: &Arc<Self>) -> JoinHandle<()> {
        let this = self.clone();
        partita_supervise::spawn_task(
            "replication_reconcile",
            "",
            OnFailure::Restart,
            move |task| {
                let this = this.clone();
                async move {
                    loop {
                        partita_supervise::failpoint("replication_reconcile");
                        this.reconcile().await;
                        task.progressed();
                        let _ =
                            tokio::time::timeout(Duration::from_millis(500), this.wake.notified())
                                .await;
                    }
                }
            },
        )
    }

    async fn reconcile(self: &Arc<Self>) {
        manage::apply_declared(self).await;
        let mut wanted: Vec<(String, String, String)> = Vec::new();
        for name in self.store.list_tables() {
            let (Ok(Some(state)), Ok(def)) =
                (self.store.replication(&name), self.store.table(&name))
            else {
                continue;
            };
            for replica in &state.replicas {
                wanted.push((name.clone(), def.table_id.clone(), replica.region.clone()));
            }
        }
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|key, task| {
            let keep = wanted.contains(key) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for key in wanted {
            if tasks.contains_key(&key) {
                continue;
            }
            let (table, table_id, region) = key.clone();
            let this = self.clone();
            let detail = format!("table {table} to region {region}");
            let task = partita_supervise::spawn_task(
                "replicator",
                detail,
                OnFailure::Restart,
                move |_| {
                    let run = replicator::run(
                        this.clone(),
                        table.clone(),
                        table_id.clone(),
                        region.clone(),
                    );
                    async move {
                        run.await;
                        Ok(())
                    }
                },
            );
            tasks.insert(key, task);
        }
        let live: Vec<(String, String)> = tasks
            .keys()
            .map(|(t, _, r)| (t.clone(), r.clone()))
            .collect();
        drop(tasks);
        let mut views = self.views.lock().unwrap_or_else(|e| e.into_inner());
        views.retain(|key, _| live.contains(key));
        self.metrics.retain(&live);
    }

    /// Returns the replication state of `table` when it has replicas.
    pub(crate) fn replicated(&self, table: &str) -> Option<ReplicationState> {
        self.store
            .replication(table)
            .ok()
            .flatten()
            .filter(|s| !s.replicas.is_empty())
    }
}

/// Polls `path` every second and installs a changed, valid replication
/// file into `replication`; an invalid one is logged and the previous one
/// kept (like the auth file's reloader).
///
/// Supervised (`partita_supervise`, task `replication_reload`): after a
/// failure it restarts and reloads the file at once.
pub fn spawn_reloader(path: PathBuf, replication: Arc<Replication>) -> JoinHandle<()> {
    let region = replication.region.clone();
    crate::reload::spawn_reloader(
        "replication_reload",
        "replication file",
        path.clone(),
        move |path: &Path| load_file(path, &region),
        move |file: ReplicationFile| {
            let (peers, tables) = (file.peers.len(), file.tables.len());
            replication.install(file);
            tracing::info!(path = %path.display(), peers, tables, "replication file reloaded");
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_parse_as_yaml_or_json_and_are_validated() {
        let yaml = "formatVersion: 1\npeers:\n  - region: eu-west-1\n    endpoint: http://127.0.0.1:9\n    accessKeyId: AK\n    secretAccessKey: S\ninbound:\n  - accessKeyId: IN\n    secretAccessKey: S2\ntables:\n  Orders: [eu-west-1]\n";
        let file = parse_file(yaml, "us-east-1", "f").unwrap();
        assert_eq!(file.peers[0].region, "eu-west-1");
        let json = file.to_json();
        assert_eq!(parse_file(&json, "us-east-1", "f").unwrap(), file);
        assert!(matches!(
            parse_file(yaml, "eu-west-1", "f"),
            Err(LoadError::Invalid(_))
        ));
        assert!(matches!(
            parse_file("formatVersion: [", "us-east-1", "f"),
            Err(LoadError::Parse { .. })
        ));
    }
}
