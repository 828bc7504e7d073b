//! `apply`: server-side apply of desired objects with one field manager
//! ([`FIELD_MANAGER`]), forced (the operator owns these fields), and orphan
//! cleanup by label. Every call names the object it failed on.

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::build::FIELD_MANAGER;

/// The patch parameters of every apply: field manager `partita-operator`, force.
pub fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Why applying an object failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("applying {kind} {name}: {source}")]
    Apply {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("listing {kind} for orphan cleanup: {source}")]
    List {
        kind: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("deleting orphaned {kind} {name}: {source}")]
    Delete {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// Server-side applies `obj` (namespaced) and returns the server's copy.
pub async fn apply_object<K>(client: &Client, obj: &K) -> Result<K, ApplyError>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Serialize
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let name = obj.name_any();
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), &ns);
    let mut body = serde_json::to_value(obj).unwrap_or_default();
    // SSA bodies must carry apiVersion and kind.
    body["apiVersion"] = K::api_version(&()).into();
    body["kind"] = K::kind(&()).into();
    api.patch(&name, &apply_params(), &Patch::Apply(&body))
        .await
        .map_err(|source| ApplyError::Apply {
            kind: kind_name::<K>(),
            name,
            source,
        })
}

/// Deletes objects of kind K in `ns` matching `selector` whose names are not
/// in `keep`. Returns the names deleted.
pub async fn delete_orphans<K>(
    client: &Client,
    ns: &str,
    selector: &str,
    keep: &[String],
) -> Result<Vec<String>, ApplyError>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let list = api
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|source| ApplyError::List {
            kind: kind_name::<K>(),
            source,
        })?;
    let mut deleted = Vec::new();
    for obj in list.items {
        let name = obj.name_any();
        if keep.contains(&name) {
            continue;
        }
        api.delete(&name, &DeleteParams::default())
            .await
            .map_err(|source| ApplyError::Delete {
                kind: kind_name::<K>(),
                name: name.clone(),
                source,
            })?;
        deleted.push(name);
    }
    Ok(deleted)
}

fn kind_name<K: Resource<DynamicType = ()>>() -> &'static str {
    // Kinds of the k8s-openapi types are 'static strings; map the ones we use.
    match K::kind(&()).as_ref() {
        "StatefulSet" => "StatefulSet",
        "Service" => "Service",
        "PodDisruptionBudget" => "PodDisruptionBudget",
        "ConfigMap" => "ConfigMap",
        "Secret" => "Secret",
        "PersistentVolumeClaim" => "PersistentVolumeClaim",
        _ => "object",
    }
}
