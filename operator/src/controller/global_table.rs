//! The GlobalTable controller: renders every GlobalTable into the gateway's
//! replication Secret (`<gateway>-replication`, key `replication.json`) and
//! writes each GlobalTable's status from the gateway's `GET /replication`.
//!
//! One render reads everything (the file is one merged document, like the
//! gateway's auth file): list GlobalTables → list Tables → get each named
//! Secret → apply the replication Secret → read the status document → an
//! Event where a GlobalTable's state changed → apply each status. [`run`]
//! re-renders when a GlobalTable's or Table's spec changes, one is deleted,
//! or a named Secret changes (a metadata-only watch, filtered to the Secrets
//! GlobalTables name), and on a timer: every 15 s while some GlobalTable is
//! not ACTIVE and Ready, every 60 s otherwise.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch};
use kube::core::PartialObjectMeta;
use kube::runtime::events::EventType;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::access_policy::GatewayTarget;
use super::Context;
use crate::apply::{apply_object, apply_params, ApplyError};
use crate::crd::global_table::{GlobalTable, GlobalTableStatus};
use crate::crd::Table;
use crate::global::resolve::{
    build_replication_file, build_replication_secret, referenced_secrets, Inputs, Outcome,
    SecretKey,
};
use crate::global::source::ReplicationStatusSource;
use crate::global::status::{
    build_global_status, degraded_reason, needs_attention, Observed, DEGRADED, PEER_UNREACHABLE,
};

/// Controller name in metrics and logs.
pub const CONTROLLER: &str = "global-table";
/// Requeue while some GlobalTable is creating, degraded or unknown.
pub const REQUEUE_ATTENTION: Duration = Duration::from_secs(15);
/// Requeue when everything is ACTIVE and Ready.
pub const REQUEUE_SETTLED: Duration = Duration::from_secs(60);

/// Why a render failed (a GlobalTable's own problems are not errors: they
/// are reported in its status and Events).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("listing {kind}: {source}")]
    List {
        kind: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("reading Secret {namespace}/{name}: {source}")]
    FetchSecret {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("patching status of GlobalTable {namespace}/{name}: {source}")]
    Status {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// Bounded category for metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Error::List { .. } => "FetchFailed",
            Error::FetchSecret { .. } => "SecretFetchFailed",
            Error::Apply(_) => "ApplyFailed",
            Error::Status { .. } => "StatusFailed",
        }
    }
}

/// What a render leaves for the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// When to render again without a change.
    pub requeue: Duration,
    /// The Secrets the GlobalTables name (the Secret watch's filter).
    pub secrets: BTreeSet<SecretKey>,
    /// One outcome per GlobalTable rendered or refused.
    pub outcomes: Vec<Outcome>,
}

/// Renders the replication Secret and every GlobalTable's status.
pub async fn reconcile_global_tables(
    ctx: &Context,
    target: &GatewayTarget,
    source: &dyn ReplicationStatusSource,
) -> Result<Rendered, Error> {
    let client = &ctx.client;
    let global_tables = Api::<GlobalTable>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|source| Error::List {
            kind: "GlobalTable",
            source,
        })?
        .items;
    let tables = Api::<Table>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|source| Error::List {
            kind: "Table",
            source,
        })?
        .items;
    let wanted = referenced_secrets(&global_tables);
    let mut secrets = BTreeMap::new();
    for (ns, name) in &wanted {
        let found = Api::<Secret>::namespaced(client.clone(), ns)
            .get_opt(name)
            .await
            .map_err(|source| Error::FetchSecret {
                namespace: ns.clone(),
                name: name.clone(),
                source,
            })?;
        if let Some(secret) = found {
            secrets.insert((ns.clone(), name.clone()), secret);
        }
    }
    let (file, outcomes) = build_replication_file(&Inputs {
        global_tables: &global_tables,
        tables: &tables,
        secrets: &secrets,
        own_region: &ctx.config.region,
    });
    apply_object(
        client,
        &build_replication_secret(&target.namespace, &target.name, &file),
    )
    .await?;

    let mut requeue = REQUEUE_SETTLED;
    if !outcomes.is_empty() {
        let fetched = source.fetch_status().await.map_err(|e| e.to_string());
        let observed = match &fetched {
            Ok(doc) => Observed::Report(doc),
            Err(why) => {
                tracing::debug!(error = %why, "replication status unavailable");
                Observed::Unavailable(why)
            }
        };
        for outcome in &outcomes {
            let Some(gt) = global_tables.iter().find(|g| {
                g.namespace().as_deref() == Some(&outcome.namespace) && g.name_any() == outcome.name
            }) else {
                continue;
            };
            let previous = gt.status.clone().unwrap_or_default();
            let generation = gt.metadata.generation.unwrap_or(0);
            let status =
                build_global_status(outcome, &previous, observed, generation, Timestamp::now());
            publish_events(ctx, gt, outcome, &previous, &status).await;
            if needs_attention(&status) {
                requeue = REQUEUE_ATTENTION;
            }
            // Unchanged (same states, lag, messages): no write.
            if gt.status.as_ref() != Some(&status) {
                patch_global_status(client, &outcome.namespace, &outcome.name, &status).await?;
            }
        }
    }
    Ok(Rendered {
        requeue,
        secrets: wanted,
        outcomes,
    })
}

/// One render, recorded in the operator metrics (`controller="global-table"`,
/// errors by [`Error::category`]).
pub async fn render(
    ctx: &Context,
    target: &GatewayTarget,
    source: &dyn ReplicationStatusSource,
) -> Result<Rendered, Error> {
    let start = Instant::now();
    let result = reconcile_global_tables(ctx, target, source).await;
    let category = result.as_ref().err().map(Error::category);
    ctx.metrics.observe(CONTROLLER, start.elapsed(), category);
    result
}

/// Warning Events when a GlobalTable becomes degraded for a new reason; a
/// Normal Event when its regions are (re)configured in the file.
async fn publish_events(
    ctx: &Context,
    gt: &GlobalTable,
    outcome: &Outcome,
    previous: &GlobalTableStatus,
    status: &GlobalTableStatus,
) {
    let reason: Option<&'static str> = match &outcome.problem {
        Some(problem) => Some(problem.reason()),
        None if degraded_reason(status) == Some(PEER_UNREACHABLE) => Some(PEER_UNREACHABLE),
        None => None,
    };
    if let Some(reason) = reason {
        if degraded_reason(previous) != Some(reason) {
            let message = status
                .conditions
                .iter()
                .find(|c| c.type_ == DEGRADED)
                .map(|c| c.message.clone())
                .unwrap_or_default();
            ctx.event(gt, EventType::Warning, reason, "Replicate", message)
                .await;
        }
    }
    if outcome.problem.is_none() {
        let before: BTreeSet<&str> = if matches!(
            previous.global_table_status.as_deref(),
            None | Some("INACCESSIBLE") | Some("INVALID")
        ) {
            BTreeSet::new()
        } else {
            previous
                .replicas
                .iter()
                .map(|r| r.region_name.as_str())
                .collect()
        };
        let now: BTreeSet<&str> = outcome.regions.iter().map(String::as_str).collect();
        if before != now {
            ctx.event(
                gt,
                EventType::Normal,
                "Configured",
                "Replicate",
                format!(
                    "table {} is replicated to {}",
                    outcome.table_name.as_deref().unwrap_or_default(),
                    outcome.regions.join(", ")
                ),
            )
            .await;
        }
    }
}

/// Server-side applies a GlobalTable's status subresource.
pub async fn patch_global_status(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    status: &GlobalTableStatus,
) -> Result<(), Error> {
    let api: Api<GlobalTable> = Api::namespaced(client.clone(), namespace);
    let body = json!({
        "apiVersion": "partita.dev/v1alpha1",
        "kind": "GlobalTable",
        "status": status,
    });
    api.patch_status(name, &apply_params(), &Patch::Apply(&body))
        .await
        .map(|_| ())
        .map_err(|source| Error::Status {
            namespace: namespace.to_string(),
            name: name.to_string(),
            source,
        })
}

/// Turns watch events into change signals: an object seen for the first
/// time or with a new `version` (generation for specs, resourceVersion for
/// Secrets), a deletion, or a completed relist; only objects `wanted`
/// accepts count.
fn changes<K, S>(
    events: S,
    version: fn(&ObjectMeta) -> Option<String>,
    wanted: impl Fn(&ObjectMeta) -> bool + Send + 'static,
) -> impl Stream<Item = ()> + Send
where
    K: Resource + Send + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    let mut seen: HashMap<(Option<String>, String), Option<String>> = HashMap::new();
    events.filter_map(move |event| {
        let signal = match event {
            Ok(watcher::Event::Apply(obj)) | Ok(watcher::Event::InitApply(obj)) => {
                let meta = obj.meta();
                let key = (
                    meta.namespace.clone(),
                    meta.name.clone().unwrap_or_default(),
                );
                let v = version(meta);
                let changed = seen.get(&key) != Some(&v);
                seen.insert(key, v);
                changed && wanted(meta)
            }
            Ok(watcher::Event::Delete(obj)) => {
                let meta = obj.meta();
                seen.remove(&(
                    meta.namespace.clone(),
                    meta.name.clone().unwrap_or_default(),
                ));
                wanted(meta)
            }
            Ok(watcher::Event::InitDone) => true,
            Ok(watcher::Event::Init) => false,
            Err(error) => {
                tracing::warn!(%error, "global table watch failed; retrying");
                false
            }
        };
        futures::future::ready(signal.then_some(()))
    })
}

/// Watches GlobalTables, Tables and the Secrets they name, renders on every
/// change and on the requeue timer, and records metrics per render.
pub async fn run(
    ctx: Arc<Context>,
    target: GatewayTarget,
    source: Arc<dyn ReplicationStatusSource>,
) {
    let client = ctx.client.clone();
    let generation = |m: &ObjectMeta| m.generation.map(|g| g.to_string());
    let resource_version = |m: &ObjectMeta| m.resource_version.clone();
    let named: Arc<Mutex<BTreeSet<SecretKey>>> = Arc::default();
    let named_filter = named.clone();
    let global_tables = changes(
        watcher(
            Api::<GlobalTable>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff(),
        generation,
        |_| true,
    );
    let tables = changes(
        watcher(
            Api::<Table>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff(),
        generation,
        |_| true,
    );
    let secrets = changes(
        watcher(
            Api::<PartialObjectMeta<Secret>>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff(),
        resource_version,
        move |m| {
            let key = (
                m.namespace.clone().unwrap_or_default(),
                m.name.clone().unwrap_or_default(),
            );
            named_filter
                .lock()
                .map(|set| set.contains(&key))
                .unwrap_or(true)
        },
    );
    let mut triggers =
        futures::stream::select_all(vec![global_tables.boxed(), tables.boxed(), secrets.boxed()]);
    let mut requeue = Duration::ZERO;
    loop {
        tokio::select! {
            next = triggers.next() => if next.is_none() { break },
            _ = tokio::time::sleep(requeue) => {}
        }
        // Coalesce bursts of changes into one render.
        tokio::time::sleep(Duration::from_millis(500)).await;
        while let Some(Some(())) = triggers.next().now_or_never() {}
        match render(&ctx, &target, source.as_ref()).await {
            Ok(rendered) => {
                requeue = rendered.requeue;
                if let Ok(mut set) = named.lock() {
                    *set = rendered.secrets;
                }
            }
            Err(error) => {
                tracing::warn!(category = error.category(), %error, "rendering replication failed");
                requeue = REQUEUE_ATTENTION;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str, rv: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("shop".into()),
                resource_version: Some(rv.into()),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        }
    }

    fn global_table(generation: i64, rv: &str) -> GlobalTable {
        let mut gt = GlobalTable::new("orders", Default::default());
        gt.metadata.namespace = Some("shop".into());
        gt.metadata.generation = Some(generation);
        gt.metadata.resource_version = Some(rv.into());
        gt
    }

    async fn count<K: Resource + Send + 'static>(
        events: Vec<watcher::Event<K>>,
        version: fn(&ObjectMeta) -> Option<String>,
        wanted: impl Fn(&ObjectMeta) -> bool + Send + 'static,
    ) -> usize {
        let stream = futures::stream::iter(events.into_iter().map(Ok));
        changes(stream, version, wanted).count().await
    }

    #[tokio::test]
    async fn a_named_secret_changing_triggers_a_render_others_do_not() {
        use watcher::Event::*;
        let only_a = |m: &ObjectMeta| m.name.as_deref() == Some("a");
        let rv = |m: &ObjectMeta| m.resource_version.clone();
        let events = vec![
            Init,
            InitApply(secret("a", "1")),
            InitApply(secret("b", "1")),
            InitDone,
            Apply(secret("a", "2")), // rotated: render
            Apply(secret("a", "2")), // resync, unchanged: no render
            Apply(secret("b", "2")), // not named by a GlobalTable
            Delete(secret("b", "2")),
            Delete(secret("a", "2")), // deleted: render (now SecretMissing)
        ];
        // InitApply(a), InitDone, Apply(a 2), Delete(a).
        assert_eq!(count(events, rv, only_a).await, 4);
    }

    #[tokio::test]
    async fn status_writes_do_not_trigger_a_render() {
        use watcher::Event::*;
        let generation = |m: &ObjectMeta| m.generation.map(|g| g.to_string());
        let events = vec![
            Apply(global_table(1, "10")),
            Apply(global_table(1, "11")), // our own status patch
            Apply(global_table(1, "12")),
            Apply(global_table(2, "13")), // spec change
        ];
        assert_eq!(count(events, generation, |_| true).await, 2);
    }
}
