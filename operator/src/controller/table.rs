//! The Table controller: validate → build → apply → status, plus the
//! finalizer that honours deletionProtectionEnabled and the volume policy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::ResourceExt;
use serde_json::json;

use super::rollout::{self, Step};
use super::rpc_tls::{ensure_table_certificate, mark_rolled, CertError};
use super::storage::{self, Resize};
use super::{owner_reference, Context};
use crate::apply::{apply_object, apply_params, delete_orphans, ApplyError};
use crate::build::{
    build_table_objects, rpc_tls_secret_name, with_cert_fingerprint, EPOCH_ANNOTATION,
    PARTITIONS_ANNOTATION, TABLE_LABEL, ZONE_ANNOTATION,
};
use crate::crd::table::{Table, TableStatus, VolumeRetentionPolicy};
use crate::definition::{apply_outcome, Outcome, DEFINITION_REFUSED};
use crate::status::{self, build_status, invalid_spec_status, Observed, DEGRADED, SPLIT_REQUIRED};
use crate::validate::{validate_table, Existing, ValidatedTable};

/// Finalizer the operator puts on every Table.
pub const FINALIZER: &str = "partita.dev/table";
/// Controller name in metrics and logs.
pub const CONTROLLER: &str = "table";

/// Why a Table reconcile failed (the spec being invalid is not an error: it
/// is reported in status and Events).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the Table has no name, namespace or uid")]
    MissingMetadata,
    #[error("fetching {kind} of table {table}: {source}")]
    Fetch {
        kind: &'static str,
        table: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("patching status of table {table}: {source}")]
    Status {
        table: String,
        #[source]
        source: kube::Error,
    },
    #[error("updating finalizers of table {table}: {source}")]
    Finalizer {
        table: String,
        #[source]
        source: kube::Error,
    },
    #[error("internal RPC certificate of table {table}: {source}")]
    Certificate {
        table: String,
        #[source]
        source: CertError,
    },
    #[error("deleting volumes of table {table}: {source}")]
    DeleteVolumes {
        table: String,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// Bounded category for metrics and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Error::MissingMetadata => "MissingMetadata",
            Error::Fetch { .. } => "FetchFailed",
            Error::Apply(_) => "ApplyFailed",
            Error::Status { .. } => "StatusFailed",
            Error::Finalizer { .. } => "FinalizerFailed",
            Error::Certificate { source, .. } => source.category(),
            Error::DeleteVolumes { .. } => "VolumeCleanupFailed",
        }
    }
}

/// Reconciles one Table; records metrics around [`reconcile_table`].
pub async fn reconcile(table: Arc<Table>, ctx: Arc<Context>) -> Result<Action, Error> {
    let start = Instant::now();
    let result = reconcile_table(&table, &ctx).await;
    let category = result.as_ref().err().map(Error::category);
    ctx.metrics.observe(CONTROLLER, start.elapsed(), category);
    if let Err(error) = &result {
        tracing::warn!(table = %table.name_any(), category = error.category(), %error, "reconcile failed");
    }
    result
}

/// Requeue policy after an error: retry with a short delay.
pub fn error_policy(_table: Arc<Table>, _error: &Error, _ctx: Arc<Context>) -> Action {
    Action::requeue(Duration::from_secs(15))
}

/// The pipeline for one Table.
pub async fn reconcile_table(table: &Table, ctx: &Context) -> Result<Action, Error> {
    let name = table.metadata.name.clone().ok_or(Error::MissingMetadata)?;
    let ns = table
        .metadata
        .namespace
        .clone()
        .ok_or(Error::MissingMetadata)?;
    let client = &ctx.client;
    let tables: Api<Table> = Api::namespaced(client.clone(), &ns);

    if table.metadata.deletion_timestamp.is_some() {
        return finalize(table, ctx, &tables, &name, &ns).await;
    }
    if !table.finalizers().iter().any(|f| f == FINALIZER) {
        add_finalizer(table, &tables, &name).await?;
    }
    let paused = table
        .spec
        .cluster_operation
        .as_ref()
        .and_then(|o| o.reconciliation_paused)
        .unwrap_or(false);
    if paused {
        tracing::info!(table = %name, "reconciliation paused");
        return Ok(Action::await_change());
    }

    // A DynamoDB table name is one table in the cluster: the earliest
    // Table resource holds it; a later one gets nothing built or routed.
    let all = Api::<Table>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|source| Error::Fetch {
            kind: "Table",
            table: name.clone(),
            source,
        })?;
    if let Some(owner) = name_holder(&all.items, table) {
        return refuse_taken_name(table, ctx, &tables, &name, &owner).await;
    }

    // Fetch what exists.
    let selector = format!("{TABLE_LABEL}={name}");
    let existing_sts = list::<StatefulSet>(ctx, &ns, &selector, &name).await?;
    let topology = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get_opt(&format!("{name}-topology"))
        .await
        .map_err(|source| Error::Fetch {
            kind: "ConfigMap",
            table: name.clone(),
            source,
        })?;
    let existing = existing_state(&existing_sts, topology.as_ref());
    let previous = table.status.clone().unwrap_or_default();
    let generation = table.metadata.generation.unwrap_or(0);

    // Validate.
    let validated = match validate_table(table, &existing, &ctx.config) {
        Ok(v) => v,
        Err(err) => {
            let reason = err.reason();
            let already_reported = previous.observed_generation == Some(generation)
                && previous
                    .conditions
                    .iter()
                    .any(|c| c.type_ == DEGRADED && c.status == "True" && c.reason == reason);
            if !already_reported {
                ctx.event(
                    table,
                    EventType::Warning,
                    reason,
                    "Validate",
                    err.to_string(),
                )
                .await;
            }
            let status = invalid_spec_status(
                &previous,
                generation,
                reason,
                err.to_string(),
                Timestamp::now(),
            );
            patch_status(&tables, &name, &status).await?;
            return Ok(Action::await_change());
        }
    };

    // Build and apply.
    let owner = owner_reference(table).ok_or(Error::MissingMetadata)?;
    let desired = build_table_objects(&validated, &owner, &ctx.config);
    apply_object(client, &desired.topology).await?;
    for svc in &desired.services {
        apply_object(client, svc).await?;
    }
    let service_names: Vec<String> = desired.services.iter().map(|s| s.name_any()).collect();
    delete_orphans::<Service>(client, &ns, &selector, &service_names).await?;
    apply_object(client, &desired.pdb).await?;
    delete_orphans::<PodDisruptionBudget>(client, &ns, &selector, &[desired.pdb.name_any()])
        .await?;
    // The certificate Secret before the pods that mount it.
    let certificate = match &ctx.config.rpc_ca_dir {
        Some(dir) => Some(
            ensure_table_certificate(table, ctx, &validated, &owner, dir)
                .await
                .map_err(|source| Error::Certificate {
                    table: name.clone(),
                    source,
                })?,
        ),
        None => None,
    };
    let cert_fingerprint = certificate.as_ref().map(|c| c.fingerprint.clone());
    let mut applied = Vec::with_capacity(desired.statefulsets.len());
    let mut storage_refused = None;
    let mut recreating = false;
    for sts in &desired.statefulsets {
        let mut sts = match &cert_fingerprint {
            Some(fingerprint) => with_cert_fingerprint(sts, fingerprint),
            None => sts.clone(),
        };
        let current = existing_sts.iter().find(|e| e.name_any() == sts.name_any());
        if let Some(current) = current {
            if current.metadata.deletion_timestamp.is_some() {
                // Deleted around its pods for a resize: created again once gone.
                recreating = true;
                continue;
            }
            match resize(table, ctx, &validated, &ns, current, &mut sts).await? {
                Some(Resize::Expand { .. }) => {
                    recreating = true;
                    continue;
                }
                Some(Resize::Refuse { reason, message }) => {
                    storage_refused = Some((reason, message));
                }
                None => {}
            }
        }
        let sts = with_spec_hash(&sts);
        match current {
            // Unchanged since the last apply: skip the write (no needless
            // rollouts or generation churn on every requeue).
            Some(current) if spec_hash(current) == spec_hash(&sts) => applied.push(current.clone()),
            _ => applied.push(apply_object(client, &sts).await?),
        }
    }
    publish_change_events(table, ctx, &validated, &existing_sts, &previous).await;

    // Status.
    let pods = list::<Pod>(ctx, &ns, &selector, &name).await?;
    let stream_label = stream_label(table);
    let mut status = build_status(
        &validated,
        &previous,
        &Observed {
            statefulsets: &applied,
            pods: &pods,
        },
        &ctx.config,
        stream_label,
        Timestamp::now(),
    );
    let rolling = roll_out(table, ctx, &ns, &applied, &pods, &mut status, generation).await?;
    if let Some(certificate) = certificate.as_ref().filter(|c| !c.rolled) {
        if !rolling && rollout::rolled_out(&applied) {
            mark_rolled(
                client,
                &ns,
                &rpc_tls_secret_name(&validated),
                &certificate.fingerprint,
            )
            .await
            .map_err(|source| Error::Certificate {
                table: name.clone(),
                source,
            })?;
        }
    }
    let rotating = certificate.as_ref().is_some_and(|c| c.rotating);
    // Once the pods serve it, the live table is brought to the spec.
    let mut definition = Outcome::InSync;
    if status.table_status.as_deref() == Some("ACTIVE") {
        if let Some(data_plane) = ctx.data_plane.get() {
            let synced = data_plane
                .sync(
                    client,
                    &validated.create_table,
                    validated.time_to_live.as_ref(),
                )
                .await;
            if let Some((items, bytes)) = synced.stats {
                status.item_count = Some(items);
                status.table_size_bytes = Some(bytes);
            }
            definition = synced.outcome;
            tracing::debug!(table = %name, outcome = ?definition, "definition synced");
            report_definition(table, ctx, &previous, &definition).await;
            apply_outcome(&mut status, &definition, generation, Timestamp::now());
        }
    }
    if let Some((reason, message)) = storage_refused {
        let degraded_otherwise = status
            .conditions
            .iter()
            .any(|c| c.type_ == DEGRADED && c.status == "True" && c.reason != reason);
        if !degraded_otherwise {
            status::set_condition(
                &mut status.conditions,
                DEGRADED,
                true,
                reason,
                message,
                generation,
                Timestamp::now(),
            );
        }
    }
    let active = status.table_status.as_deref() == Some("ACTIVE");
    patch_status(&tables, &name, &status).await?;
    Ok(match definition {
        _ if rolling || recreating => Action::requeue(Duration::from_secs(2)),
        // A CA rotation's next step may wait on other tables' pods.
        _ if rotating => Action::requeue(Duration::from_secs(5)),
        // Item count and size are read again every minute.
        Outcome::InSync if active => Action::requeue(Duration::from_secs(60)),
        Outcome::InSync => Action::requeue(Duration::from_secs(10)),
        Outcome::Refused(_) => Action::requeue(Duration::from_secs(30)),
        _ => Action::requeue(Duration::from_secs(2)),
    })
}

/// The Table (`namespace/name`) that holds `table`'s DynamoDB table name
/// when it is not `table` itself: the earliest created, then the first by
/// namespace and name.
pub fn name_holder(tables: &[Table], table: &Table) -> Option<String> {
    let id = |t: &Table| format!("{}/{}", t.namespace().unwrap_or_default(), t.name_any());
    let rank = |t: &Table| {
        let created = t
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|c| c.0.as_millisecond())
            .unwrap_or(i64::MAX);
        (created, id(t))
    };
    let name = table.dynamodb_name();
    tables
        .iter()
        .filter(|t| t.dynamodb_name() == name && t.metadata.deletion_timestamp.is_none())
        .min_by_key(|t| rank(t))
        .map(id)
        .filter(|holder| *holder != id(table))
}

/// Reports that `table`'s DynamoDB name is held by Table `holder`.
async fn refuse_taken_name(
    table: &Table,
    ctx: &Context,
    api: &Api<Table>,
    name: &str,
    holder: &str,
) -> Result<Action, Error> {
    const REASON: &str = "TableNameConflict";
    let previous = table.status.clone().unwrap_or_default();
    let generation = table.metadata.generation.unwrap_or(0);
    let message = format!(
        "tableName {} is already the table of Table {holder}; a DynamoDB table name names one table in the cluster",
        table.dynamodb_name()
    );
    let reported = previous
        .conditions
        .iter()
        .any(|c| c.type_ == DEGRADED && c.reason == REASON && c.message == message);
    if !reported {
        ctx.event(
            table,
            EventType::Warning,
            REASON,
            "Validate",
            message.clone(),
        )
        .await;
    }
    let status = invalid_spec_status(&previous, generation, REASON, message, Timestamp::now());
    patch_status(api, name, &status).await?;
    // The holder may go away: look again now and then.
    Ok(Action::requeue(Duration::from_secs(30)))
}

/// Events of a definition change: each change made, and a refusal the
/// status does not show yet.
async fn report_definition(
    table: &Table,
    ctx: &Context,
    previous: &TableStatus,
    outcome: &Outcome,
) {
    match outcome {
        Outcome::Changed(what) => {
            ctx.event(
                table,
                EventType::Normal,
                "DefinitionChanged",
                "UpdateTable",
                what.clone(),
            )
            .await;
        }
        Outcome::Refused(message) => {
            let shown = previous.conditions.iter().any(|c| {
                c.type_ == DEGRADED && c.reason == DEFINITION_REFUSED && c.message == *message
            });
            if !shown {
                ctx.event(
                    table,
                    EventType::Warning,
                    DEFINITION_REFUSED,
                    "UpdateTable",
                    message.clone(),
                )
                .await;
            }
        }
        _ => {}
    }
}

/// A change of the claim size of `current` to `desired`'s (see
/// [`storage`]): expands the claims and deletes the set around its pods,
/// or keeps the current size in `desired` and says why (with an Event the
/// first time). None when the size is unchanged.
async fn resize(
    table: &Table,
    ctx: &Context,
    validated: &ValidatedTable,
    ns: &str,
    current: &StatefulSet,
    desired: &mut StatefulSet,
) -> Result<Option<Resize>, Error> {
    let (Some(have), Some(want)) = (
        storage::template_size(current).cloned(),
        storage::template_size(desired).cloned(),
    ) else {
        return Ok(None);
    };
    let keep_current = |desired: &mut StatefulSet| {
        if let (Some(spec), Some(current)) = (desired.spec.as_mut(), current.spec.as_ref()) {
            spec.volume_claim_templates = current.volume_claim_templates.clone();
        }
    };
    let (class_now, class_wanted) = (
        storage::template_class(current),
        storage::template_class(desired),
    );
    if class_now != class_wanted {
        let decision = Resize::Refuse {
            reason: "StorageClassChangeRefused",
            message: format!(
                "placement.storage.storageClassName cannot change on a running table: its volumes keep {}",
                class_now.unwrap_or("the cluster's default class")
            ),
        };
        report_refusal(table, ctx, &decision).await;
        keep_current(desired);
        return Ok(Some(decision));
    }
    if storage::quantity_bytes(&have.0) == storage::quantity_bytes(&want.0) {
        // Kept as created (`1024Mi` and `1Gi` are one size).
        keep_current(desired);
        return Ok(None);
    }
    let name = table.name_any();
    let failed = |kind: &'static str| {
        let name = name.clone();
        move |source| Error::Fetch {
            kind,
            table: name,
            source,
        }
    };
    let (class, class_name) =
        storage::storage_class(&ctx.client, validated.storage_class.as_deref())
            .await
            .map_err(failed("StorageClass"))?;
    let decision = storage::decide(&have.0, &want.0, class.as_ref(), &class_name);
    match &decision {
        Resize::Expand { from, to } => {
            let claims = storage::expand(&ctx.client, ns, current, to)
                .await
                .map_err(failed("PersistentVolumeClaim"))?;
            let message = format!(
                "expanded {claims} volumes of StatefulSet {} from {from} to {to}; the StatefulSet is created again around its running pods",
                current.name_any()
            );
            tracing::info!(table = %name, statefulset = %current.name_any(), %from, %to, claims, "storage resize");
            ctx.event(
                table,
                EventType::Normal,
                "StorageResized",
                "Resize",
                message,
            )
            .await;
        }
        Resize::Refuse { .. } => {
            report_refusal(table, ctx, &decision).await;
            keep_current(desired);
        }
    }
    Ok(Some(decision))
}

/// A Warning Event for a refused storage change the status does not show
/// yet.
async fn report_refusal(table: &Table, ctx: &Context, decision: &Resize) {
    let Resize::Refuse { reason, message } = decision else {
        return;
    };
    let previous = table.status.clone().unwrap_or_default();
    let shown = previous
        .conditions
        .iter()
        .any(|c| c.type_ == DEGRADED && c.reason == *reason && c.message == *message);
    if !shown {
        ctx.event(table, EventType::Warning, reason, "Resize", message.clone())
            .await;
    }
}

/// Annotation holding the hash of the StatefulSet the operator last applied.
pub const SPEC_HASH_ANNOTATION: &str = "partita.dev/spec-hash";

/// Returns `sts` with [`SPEC_HASH_ANNOTATION`] set to the SHA-256 of its JSON.
pub fn with_spec_hash(sts: &StatefulSet) -> StatefulSet {
    use sha2::{Digest, Sha256};
    let json = serde_json::to_vec(sts).unwrap_or_default();
    let digest = Sha256::digest(&json);
    let hash: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    let mut out = sts.clone();
    out.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(SPEC_HASH_ANNOTATION.into(), hash);
    out
}

fn spec_hash(sts: &StatefulSet) -> Option<&String> {
    sts.metadata.annotations.as_ref()?.get(SPEC_HASH_ANNOTATION)
}

/// Reads the partition count, zones and epoch the table's objects were built with.
pub fn existing_state(statefulsets: &[StatefulSet], topology: Option<&ConfigMap>) -> Existing {
    let annotation = |s: &StatefulSet, key: &str| {
        s.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key).cloned())
    };
    let partitions = statefulsets
        .iter()
        .filter_map(|s| annotation(s, PARTITIONS_ANNOTATION)?.parse().ok())
        .max();
    let zones: Vec<String> = statefulsets
        .iter()
        .filter_map(|s| annotation(s, ZONE_ANNOTATION))
        .collect();
    let epoch = topology
        .and_then(|cm| cm.metadata.annotations.as_ref())
        .and_then(|a| a.get(EPOCH_ANNOTATION))
        .and_then(|e| e.parse().ok());
    Existing {
        partitions,
        zones: (!zones.is_empty()).then_some(zones),
        epoch,
    }
}

async fn list<K>(ctx: &Context, ns: &str, selector: &str, table: &str) -> Result<Vec<K>, Error>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + serde::de::DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    Api::<K>::namespaced(ctx.client.clone(), ns)
        .list(&ListParams::default().labels(selector))
        .await
        .map(|l| l.items)
        .map_err(|source| Error::Fetch {
            kind: match K::kind(&()).as_ref() {
                "StatefulSet" => "StatefulSet",
                "Pod" => "Pod",
                _ => "object",
            },
            table: table.to_string(),
            source,
        })
}

/// Events for the steps users care about: creation, scale, update, and a
/// throughput increase that needs a split.
async fn publish_change_events(
    table: &Table,
    ctx: &Context,
    validated: &ValidatedTable,
    existing: &[StatefulSet],
    previous: &TableStatus,
) {
    let desired_replicas = if validated.stopped {
        0
    } else {
        validated.partitions as i32
    };
    if existing.is_empty() {
        ctx.event(
            table,
            EventType::Normal,
            "Created",
            "Create",
            format!(
                "created {} StatefulSets with {} partitions x {} replicas",
                validated.zones.len(),
                validated.partitions,
                validated.replicas_per_partition()
            ),
        )
        .await;
    } else {
        let before = existing
            .iter()
            .filter_map(|s| s.spec.as_ref().and_then(|sp| sp.replicas))
            .max()
            .unwrap_or(0);
        if before != desired_replicas {
            ctx.event(
                table,
                EventType::Normal,
                "Scaled",
                "Scale",
                format!("scaled data pods per zone from {before} to {desired_replicas}"),
            )
            .await;
        } else if previous
            .observed_generation
            .is_some_and(|g| g != validated.generation)
        {
            ctx.event(
                table,
                EventType::Normal,
                "Updated",
                "Update",
                format!("applied generation {}", validated.generation),
            )
            .await;
        }
    }
    let newly_needed = validated.needed_partitions > validated.partitions
        && previous.desired_partition_count != Some(validated.needed_partitions as i32);
    if newly_needed {
        ctx.event(
            table,
            EventType::Warning,
            SPLIT_REQUIRED,
            "Scale",
            status::split_message(validated),
        )
        .await;
    }
}

fn stream_label(table: &Table) -> Option<String> {
    let enabled = table
        .spec
        .stream_specification
        .as_ref()
        .is_some_and(|s| s.stream_enabled);
    if !enabled {
        return None;
    }
    let created = table.metadata.creation_timestamp.as_ref()?;
    Some(created.0.strftime("%Y-%m-%dT%H:%M:%S%.3f").to_string())
}

/// The next step of a rolling update of the data pods (see
/// [`rollout`]): restarts one outdated pod when every pod is ready, and
/// says in the Progressing condition where the rollout stands. True while
/// a rollout is under way.
async fn roll_out(
    table: &Table,
    ctx: &Context,
    ns: &str,
    statefulsets: &[StatefulSet],
    pods: &[Pod],
    status: &mut TableStatus,
    generation: i64,
) -> Result<bool, Error> {
    let message = match rollout::next_step(statefulsets, pods) {
        Step::Done => return Ok(false),
        Step::Wait(why) => format!("rolling update: {why}"),
        Step::Restart { pod, outdated } => {
            let name = table.name_any();
            let deleted = Api::<Pod>::namespaced(ctx.client.clone(), ns)
                .delete(&pod, &DeleteParams::default())
                .await;
            match deleted {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(source) => {
                    return Err(Error::Fetch {
                        kind: "Pod",
                        table: name,
                        source,
                    })
                }
            }
            let message = format!(
                "rolling update: restarting data pod {pod} ({outdated} of the table's pods on an older revision)"
            );
            tracing::info!(table = %name, %pod, outdated, "rolling update: restarting a data pod");
            ctx.event(
                table,
                EventType::Normal,
                "RollingUpdate",
                "Restart",
                message.clone(),
            )
            .await;
            message
        }
    };
    status::set_condition(
        &mut status.conditions,
        status::PROGRESSING,
        true,
        "RollingUpdate",
        message,
        generation,
        Timestamp::now(),
    );
    Ok(true)
}

/// Server-side applies the status subresource with the operator's field manager.
pub async fn patch_status(api: &Api<Table>, name: &str, status: &TableStatus) -> Result<(), Error> {
    let body = json!({
        "apiVersion": "partita.dev/v1alpha1",
        "kind": "Table",
        "status": status,
    });
    api.patch_status(name, &apply_params(), &Patch::Apply(&body))
        .await
        .map(|_| ())
        .map_err(|source| Error::Status {
            table: name.to_string(),
            source,
        })
}

async fn add_finalizer(table: &Table, api: &Api<Table>, name: &str) -> Result<(), Error> {
    let patch = if table.metadata.finalizers.is_none() {
        json!([{"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]}])
    } else {
        json!([{"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER}])
    };
    json_patch(api, name, patch).await
}

async fn json_patch(api: &Api<Table>, name: &str, patch: serde_json::Value) -> Result<(), Error> {
    let patch: json_patch::Patch = serde_json::from_value(patch).map_err(|e| Error::Finalizer {
        table: name.to_string(),
        source: kube::Error::SerdeError(e),
    })?;
    api.patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
        .map(|_| ())
        .map_err(|source| Error::Finalizer {
            table: name.to_string(),
            source,
        })
}

/// Deletion: refused while deletion protection is on; otherwise volumes are
/// deleted or retained per policy and the finalizer is removed (owned objects
/// are garbage-collected by their owner references).
async fn finalize(
    table: &Table,
    ctx: &Context,
    api: &Api<Table>,
    name: &str,
    ns: &str,
) -> Result<Action, Error> {
    let Some(index) = table.finalizers().iter().position(|f| f == FINALIZER) else {
        return Ok(Action::await_change());
    };
    let mut previous = table.status.clone().unwrap_or_default();
    let generation = table.metadata.generation.unwrap_or(0);
    if table.spec.deletion_protection_enabled.unwrap_or(false) {
        let message = "deletion protection is enabled: set spec.deletionProtectionEnabled to false to delete this table".to_string();
        let already = previous
            .conditions
            .iter()
            .any(|c| c.type_ == DEGRADED && c.reason == "DeletionProtected");
        if !already {
            ctx.event(
                table,
                EventType::Warning,
                "DeletionProtected",
                "Delete",
                message.clone(),
            )
            .await;
        }
        status::set_condition(
            &mut previous.conditions,
            DEGRADED,
            true,
            "DeletionProtected",
            message,
            generation,
            Timestamp::now(),
        );
        patch_status(api, name, &previous).await?;
        return Ok(Action::await_change());
    }
    let policy = table
        .spec
        .placement
        .as_ref()
        .and_then(|p| p.storage.as_ref())
        .and_then(|s| s.volume_retention_policy)
        .unwrap_or_default();
    // DELETING: the gateways stop routing to the table (its topology goes)
    // and its data pods stop; the volumes go (or stay) once no pod uses
    // them.
    if previous.table_status.as_deref() != Some("DELETING") {
        ctx.event(
            table,
            EventType::Normal,
            "Deleting",
            "Delete",
            match policy {
                VolumeRetentionPolicy::Delete => "deleting data pods and their volumes".to_string(),
                VolumeRetentionPolicy::Retain => {
                    "deleting data pods; volumes are retained".to_string()
                }
            },
        )
        .await;
        previous.table_status = Some("DELETING".into());
        status::set_condition(
            &mut previous.conditions,
            status::PROGRESSING,
            true,
            "Deleting",
            "stopping the data pods".into(),
            generation,
            Timestamp::now(),
        );
        patch_status(api, name, &previous).await?;
    }
    let selector = format!("{TABLE_LABEL}={name}");
    let delete_failed = |kind: &'static str| {
        move |source| Error::Fetch {
            kind,
            table: name.to_string(),
            source,
        }
    };
    let configmaps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    if let Err(e) = configmaps
        .delete(&format!("{name}-topology"), &DeleteParams::default())
        .await
    {
        if !matches!(&e, kube::Error::Api(r) if r.code == 404) {
            return Err(delete_failed("ConfigMap")(e));
        }
    }
    // The StatefulSets scale to zero and go once their pods are gone (a
    // pod listed is still running or terminating).
    let statefulsets = list::<StatefulSet>(ctx, ns, &selector, name).await?;
    let sts_api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), ns);
    for sts in &statefulsets {
        if sts.spec.as_ref().and_then(|s| s.replicas) != Some(0) {
            sts_api
                .patch(
                    &sts.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"replicas": 0}})),
                )
                .await
                .map_err(delete_failed("StatefulSet"))?;
        }
    }
    let pods = list::<Pod>(ctx, ns, &selector, name).await?;
    let running = statefulsets
        .iter()
        .filter_map(|s| s.status.as_ref())
        .map(|s| s.replicas)
        .sum::<i32>();
    if !pods.is_empty() || running > 0 {
        tracing::info!(table = %name, pods = pods.len(), "deleting: waiting for the data pods to stop");
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    for sts in &statefulsets {
        sts_api
            .delete(&sts.name_any(), &DeleteParams::background())
            .await
            .map_err(delete_failed("StatefulSet"))?;
    }
    if policy == VolumeRetentionPolicy::Delete {
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
        let selector = format!("{TABLE_LABEL}={name}");
        pvcs.delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels(&selector),
        )
        .await
        .map_err(|source| Error::DeleteVolumes {
            table: name.to_string(),
            source,
        })?;
    }
    let patch = json!([
        {"op": "test", "path": format!("/metadata/finalizers/{index}"), "value": FINALIZER},
        {"op": "remove", "path": format!("/metadata/finalizers/{index}")},
    ]);
    json_patch(api, name, patch).await?;
    Ok(Action::await_change())
}
