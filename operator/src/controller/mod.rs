//! The controllers: they drive the pipeline for each resource kind and own
//! the I/O (fetch, apply, Events, status patches).

pub mod access_policy;
pub mod global_table;
pub mod rollout;
pub mod rpc_tls;
pub mod storage;
pub mod table;

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};

use crate::config::OperatorConfig;
use crate::metrics::Metrics;

/// Shared state of every reconcile.
pub struct Context {
    pub client: Client,
    pub config: OperatorConfig,
    pub metrics: Metrics,
    pub recorder: Recorder,
    /// The gateway the Table controller brings live tables to their specs
    /// through (unset: only the Kubernetes objects are reconciled).
    pub data_plane: std::sync::OnceLock<crate::definition::DataPlane>,
}

impl Context {
    /// Builds a context publishing Events as `partita-operator`.
    pub fn new(client: Client, config: OperatorConfig, metrics: Metrics) -> Arc<Self> {
        let reporter = Reporter {
            controller: crate::build::FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Arc::new(Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            config,
            metrics,
            data_plane: std::sync::OnceLock::new(),
        })
    }

    /// Publishes an Event about `obj`; failures are logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &'static str,
        action: &'static str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(%error, reason, "publishing event failed");
        }
    }
}

/// The controller owner reference to `obj` (None without name or uid).
/// blockOwnerDeletion is set so foreground deletion of a Table waits for its
/// data pods.
pub fn owner_reference<K: Resource<DynamicType = ()>>(obj: &K) -> Option<OwnerReference> {
    let mut owner = obj.controller_owner_ref(&())?;
    owner.block_owner_deletion = Some(true);
    Some(owner)
}
