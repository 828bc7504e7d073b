//! A change of `placement.storage.size` on a running table.
//!
//! A StatefulSet's `volumeClaimTemplates` cannot change, so a larger size
//! is applied the way Kubernetes allows: every existing claim of the set
//! is expanded in place (when its StorageClass has `allowVolumeExpansion`),
//! then the StatefulSet is deleted with the orphan policy — its pods keep
//! running — and created again with the new template, adopting them. A
//! size Kubernetes cannot give (smaller, or a class that does not expand)
//! is refused: the StatefulSets keep the size they have and the Table is
//! Degraded with a reason and an Event saying why.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PersistentVolumeClaimSpec};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PropagationPolicy};
use kube::ResourceExt;
use serde_json::json;

/// The annotation that marks a cluster's default StorageClass.
pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";

/// Bytes of a Kubernetes quantity (`10Gi`, `500M`, `1.5Ti`, `1e9`); None
/// when it does not parse.
pub fn quantity_bytes(quantity: &str) -> Option<u128> {
    let q = quantity.trim();
    let split = q
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let factor: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        _ => return None,
    };
    let value: f64 = number.parse().ok()?;
    (value.is_finite() && value >= 0.0).then(|| (value * factor).round() as u128)
}

/// The spec of a StatefulSet's `data` claim template.
fn data_claim(sts: &StatefulSet) -> Option<&PersistentVolumeClaimSpec> {
    sts.spec
        .as_ref()?
        .volume_claim_templates
        .as_ref()?
        .iter()
        .find(|t| t.metadata.name.as_deref() == Some("data"))?
        .spec
        .as_ref()
}

/// The storage request of a StatefulSet's `data` claim template.
pub fn template_size(sts: &StatefulSet) -> Option<&Quantity> {
    data_claim(sts)?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
}

/// The StorageClass named by a StatefulSet's `data` claim template (None:
/// the cluster's default).
pub fn template_class(sts: &StatefulSet) -> Option<&str> {
    data_claim(sts)?.storage_class_name.as_deref()
}

/// What to do about one StatefulSet whose claim size differs from the
/// spec's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resize {
    /// Expand its claims from `from` to `to`, then re-create the set.
    Expand { from: String, to: String },
    /// Keep the current size (a Degraded reason and why).
    Refuse {
        reason: &'static str,
        message: String,
    },
}

/// Decides about a size change from `from` to `to` of claims of `class`
/// (None: no such StorageClass, or no default one).
pub fn decide(from: &str, to: &str, class: Option<&StorageClass>, class_name: &str) -> Resize {
    let (Some(old), Some(new)) = (quantity_bytes(from), quantity_bytes(to)) else {
        return Resize::Refuse {
            reason: "StorageResizeRefused",
            message: format!("cannot compare storage sizes {from} and {to}"),
        };
    };
    if new < old {
        return Resize::Refuse {
            reason: "StorageShrinkRefused",
            message: format!(
                "placement.storage.size {to} is smaller than the volumes' {from}: Kubernetes cannot shrink a volume (the volumes keep {from})"
            ),
        };
    }
    match class {
        Some(c) if c.allow_volume_expansion == Some(true) => Resize::Expand {
            from: from.to_string(),
            to: to.to_string(),
        },
        Some(_) => Resize::Refuse {
            reason: "StorageResizeUnsupported",
            message: format!(
                "StorageClass {class_name} does not allow volume expansion (allowVolumeExpansion): the volumes keep {from}, not {to}"
            ),
        },
        None => Resize::Refuse {
            reason: "StorageResizeUnsupported",
            message: format!(
                "no StorageClass {class_name} to expand the volumes with: they keep {from}, not {to}"
            ),
        },
    }
}

/// The StorageClass claims of `class` (None: the default class) use, and
/// its name.
pub async fn storage_class(
    client: &kube::Client,
    class: Option<&str>,
) -> Result<(Option<StorageClass>, String), kube::Error> {
    let api: Api<StorageClass> = Api::all(client.clone());
    match class {
        Some(name) => Ok((api.get_opt(name).await?, name.to_string())),
        None => {
            let default = api
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .find(|c| {
                    c.annotations()
                        .get(DEFAULT_CLASS_ANNOTATION)
                        .is_some_and(|v| v == "true")
                });
            let name = default
                .as_ref()
                .map_or_else(|| "(default)".to_string(), |c| c.name_any());
            Ok((default, name))
        }
    }
}

/// Expands every claim of StatefulSet `sts` to `to`, then deletes the set
/// with the orphan policy (its pods keep running) for the caller to create
/// it again with the new template.
pub async fn expand(
    client: &kube::Client,
    namespace: &str,
    sts: &StatefulSet,
    to: &str,
) -> Result<usize, kube::Error> {
    let selector: BTreeMap<String, String> = sts
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default();
    let selector = selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let listed = claims
        .list(&ListParams::default().labels(&selector))
        .await?
        .items;
    let patch = json!({"spec": {"resources": {"requests": {"storage": to}}}});
    for claim in &listed {
        claims
            .patch(
                &claim.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
    }
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    let orphan = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..DeleteParams::default()
    };
    match sets.delete(&sts.name_any(), &orphan).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(e),
    }
    Ok(listed.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_to_bytes() {
        assert_eq!(quantity_bytes("1Gi"), Some(1 << 30));
        assert_eq!(quantity_bytes("10G"), Some(10_000_000_000));
        assert_eq!(quantity_bytes("1.5Ki"), Some(1536));
        assert_eq!(quantity_bytes("1e3"), Some(1000));
        assert_eq!(quantity_bytes("512"), Some(512));
        assert_eq!(quantity_bytes("2Xi"), None);
        assert_eq!(quantity_bytes("lots"), None);
    }

    fn class(expands: Option<bool>) -> StorageClass {
        StorageClass {
            allow_volume_expansion: expands,
            ..StorageClass::default()
        }
    }

    #[test]
    fn a_larger_size_expands_only_where_the_class_allows_it() {
        assert_eq!(
            decide("1Gi", "2Gi", Some(&class(Some(true))), "fast"),
            Resize::Expand {
                from: "1Gi".into(),
                to: "2Gi".into()
            }
        );
        let refused = |r: Resize| match r {
            Resize::Refuse { reason, message } => (reason, message),
            other => panic!("{other:?}"),
        };
        let (reason, message) = refused(decide("1Gi", "2Gi", Some(&class(None)), "fast"));
        assert_eq!(reason, "StorageResizeUnsupported");
        assert!(
            message.contains("StorageClass fast does not allow volume expansion"),
            "{message}"
        );
        let (reason, _) = refused(decide("1Gi", "2Gi", None, "(default)"));
        assert_eq!(reason, "StorageResizeUnsupported");
        let (reason, message) = refused(decide("2Gi", "1Gi", Some(&class(Some(true))), "fast"));
        assert_eq!(reason, "StorageShrinkRefused");
        assert!(message.contains("cannot shrink"), "{message}");
        // The same size written differently is no change to make.
        assert_eq!(quantity_bytes("1024Mi"), quantity_bytes("1Gi"));
    }
}
