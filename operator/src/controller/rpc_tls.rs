//! Issues and renews the internal RPC's certificate Secrets (policy and
//! reasons in [`crate::tls`]): one per Table, called from the Table
//! reconcile before its StatefulSets are applied, and the gateway's, kept
//! by [`run_gateway`].

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::Client;
use serde_json::json;

use super::access_policy::GatewayTarget;
use super::Context;
use crate::apply::{apply_object, ApplyError};
use crate::build::{common_labels, headless_service_name, rpc_tls_secret_name, FIELD_MANAGER};
use crate::crd::table::Table;
use crate::tls::{
    self, build_tls_secret, renewal_reason, IssuedCert, Rotation, RpcCa, TlsError, TlsState,
};
use crate::validate::ValidatedTable;

/// Why a certificate Secret could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("loading the internal RPC CA: {0}")]
    Ca(#[source] TlsError),
    #[error("issuing the RPC certificate {name}: {source}")]
    Issue {
        name: String,
        #[source]
        source: TlsError,
    },
    #[error("fetching Secret {name}: {source}")]
    Fetch {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("restarting Deployment {name} for its new certificate: {source}")]
    Restart {
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl CertError {
    /// Bounded category for metrics and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            CertError::Ca(_) => "RpcCaUnavailable",
            CertError::Issue { .. } => "CertificateIssueFailed",
            CertError::Fetch { .. } => "FetchFailed",
            CertError::Apply(_) => "ApplyFailed",
            CertError::Restart { .. } => "RestartFailed",
        }
    }
}

/// What [`ensure_secret`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ensured {
    /// Fingerprint of the trust bundle and certificate now in the Secret
    /// ([`tls::cert_fingerprint`]).
    pub fingerprint: String,
    /// `Some(reason)` when it was written now.
    pub issued: Option<&'static str>,
    /// A CA rotation is under way for this Secret (a step taken or waited
    /// for): look again soon.
    pub rotating: bool,
    /// Every pod mounting it runs its current content (as last recorded).
    pub rolled: bool,
}

/// Every certificate Secret of the internal RPC in the cluster (the
/// tables' and the gateway's): the operator's, with an issuer annotation.
async fn rpc_secrets(client: &Client) -> Result<Vec<Secret>, CertError> {
    let selector = format!("app.kubernetes.io/managed-by={FIELD_MANAGER}");
    let listed = Api::<Secret>::all(client.clone())
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| CertError::Fetch {
            name: selector.clone(),
            source,
        })?;
    Ok(listed
        .items
        .into_iter()
        .filter(|s| {
            s.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(tls::CA_FINGERPRINT_ANNOTATION))
        })
        .collect())
}

/// The PEM of `ca` followed by every other CA certificate of `bundles`
/// (each once).
fn trust_bundle<'a>(ca: &RpcCa, bundles: impl IntoIterator<Item = &'a str>) -> String {
    let mut seen = vec![ca.fingerprint().to_string()];
    let mut pem = ca.cert_pem().to_string();
    for bundle in bundles {
        for (fingerprint, block) in tls::bundle(bundle) {
            if !seen.contains(&fingerprint) {
                seen.push(fingerprint);
                pem.push_str(&block);
            }
        }
    }
    pem
}

fn text(secret: &Secret, key: &str) -> String {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        .unwrap_or_default()
}

/// `existing`'s certificate and key with the trust bundle `ca_pem`.
fn with_trust(existing: &Secret, ca_pem: String) -> IssuedCert {
    IssuedCert {
        ca_pem,
        cert_pem: text(existing, tls::SECRET_CERT),
        key_pem: text(existing, tls::SECRET_KEY),
        not_after: existing
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(tls::NOT_AFTER_ANNOTATION))
            .cloned()
            .unwrap_or_default(),
    }
}

/// Keeps Secret `name` in `namespace` holding a certificate for `names`:
/// written only when [`renewal_reason`] says so or a CA rotation takes its
/// next step ([`tls::rotation`], decided against every other certificate
/// Secret of the internal RPC), otherwise left untouched.
#[allow(clippy::too_many_arguments)]
pub async fn ensure_secret(
    client: &Client,
    ca_dir: &Path,
    name: &str,
    namespace: &str,
    common_name: &str,
    names: &[String],
    labels: std::collections::BTreeMap<String, String>,
    owner: Option<OwnerReference>,
) -> Result<Ensured, CertError> {
    let ca = RpcCa::from_dir(ca_dir).map_err(CertError::Ca)?;
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let existing = api.get_opt(name).await.map_err(|source| CertError::Fetch {
        name: name.to_string(),
        source,
    })?;
    let now = SystemTime::now();
    let issue = || -> Result<IssuedCert, Box<CertError>> {
        ca.issue(common_name, names, now).map_err(|source| {
            Box::new(CertError::Issue {
                name: name.to_string(),
                source,
            })
        })
    };
    let own = existing.as_ref().and_then(tls::tls_state);
    // The other Secrets matter only to a Secret not on the CA alone (a
    // rotation under way, or one to issue).
    let settled = own
        .as_ref()
        .is_some_and(|o| o.issuer == ca.fingerprint() && o.trust == [ca.fingerprint()]);
    let all = if settled {
        Vec::new()
    } else {
        rpc_secrets(client).await?
    };
    let states: Vec<TlsState> = all.iter().filter_map(tls::tls_state).collect();
    let renewal = renewal_reason(existing.as_ref(), names, now);
    let (step, written) = match (&existing, &own) {
        (Some(existing), Some(own)) if !matches!(renewal, Some("Incomplete")) => {
            let step = tls::rotation(own, &states, ca.fingerprint());
            let written = match &step {
                Rotation::Steady => match renewal {
                    Some(reason) => Some((
                        reason,
                        issue().map_err(|e| *e)?,
                        ca.fingerprint().to_string(),
                    )),
                    None => None,
                },
                Rotation::Trust => {
                    let bundle = trust_bundle(&ca, [text(existing, tls::SECRET_CA).as_str()]);
                    Some((
                        "CATrusted",
                        with_trust(existing, bundle),
                        own.issuer.clone(),
                    ))
                }
                Rotation::Issue => {
                    let mut issued = issue().map_err(|e| *e)?;
                    issued.ca_pem = text(existing, tls::SECRET_CA);
                    Some(("CAChanged", issued, ca.fingerprint().to_string()))
                }
                Rotation::DropOld => Some((
                    "OldCARemoved",
                    with_trust(existing, ca.cert_pem().to_string()),
                    ca.fingerprint().to_string(),
                )),
                Rotation::Wait(why) => {
                    tracing::debug!(secret = name, namespace, %why, "CA rotation: waiting");
                    None
                }
            };
            (step, written)
        }
        _ => {
            // Missing or incomplete: issued by the CA, trusting every CA a
            // certificate in use may come from.
            let mut issued = issue().map_err(|e| *e)?;
            let bundles: Vec<String> = all.iter().map(|s| text(s, tls::SECRET_CA)).collect();
            issued.ca_pem = trust_bundle(&ca, bundles.iter().map(String::as_str));
            let reason = renewal.unwrap_or("Incomplete");
            (
                Rotation::Steady,
                Some((reason, issued, ca.fingerprint().to_string())),
            )
        }
    };
    let rotating = !matches!(step, Rotation::Steady);
    match written {
        None => Ok(Ensured {
            fingerprint: existing
                .as_ref()
                .and_then(tls::cert_fingerprint)
                .unwrap_or_default(),
            issued: None,
            rotating,
            rolled: own.is_some_and(|o| o.rolled),
        }),
        Some((reason, issued, issuer)) => {
            let secret = build_tls_secret(name, namespace, labels, owner, &issuer, names, &issued);
            apply_object(client, &secret).await?;
            tracing::info!(secret = name, namespace, reason, not_after = %issued.not_after, "wrote internal RPC certificate");
            Ok(Ensured {
                fingerprint: tls::cert_fingerprint(&secret).unwrap_or_default(),
                issued: Some(reason),
                rotating,
                rolled: false,
            })
        }
    }
}

/// Records that every pod mounting Secret `name` runs the content with
/// `fingerprint` (what a CA rotation's next step waits for).
pub async fn mark_rolled(
    client: &Client,
    namespace: &str,
    name: &str,
    fingerprint: &str,
) -> Result<(), CertError> {
    let patch = json!({"metadata": {"annotations": {tls::ROLLED_ANNOTATION: fingerprint}}});
    Api::<Secret>::namespaced(client.clone(), namespace)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|source| CertError::Fetch {
            name: name.to_string(),
            source,
        })
}

/// Keeps `<table>-rpc-tls` (owned by the Table, SAN
/// `*.<table>-nodes.<ns>.svc`); publishes a `CertificateIssued` Event when
/// it was written.
pub async fn ensure_table_certificate(
    table: &Table,
    ctx: &Context,
    validated: &ValidatedTable,
    owner: &OwnerReference,
    ca_dir: &Path,
) -> Result<Ensured, CertError> {
    let names = tls::table_names(&headless_service_name(validated), &validated.namespace);
    let mut labels = common_labels(validated, &ctx.config);
    labels.insert("app.kubernetes.io/component".into(), "rpc-tls".into());
    let ensured = ensure_secret(
        &ctx.client,
        ca_dir,
        &rpc_tls_secret_name(validated),
        &validated.namespace,
        &validated.resource_name,
        &names,
        labels,
        Some(owner.clone()),
    )
    .await?;
    if let Some(reason) = ensured.issued {
        ctx.event(
            table,
            EventType::Normal,
            "CertificateIssued",
            "IssueCertificate",
            format!(
                "wrote internal RPC certificate {} for {} ({reason})",
                rpc_tls_secret_name(validated),
                names.join(",")
            ),
        )
        .await;
    }
    Ok(ensured)
}

/// Name of the gateway's certificate Secret: `<gateway>-rpc-tls`.
pub fn gateway_secret_name(target: &GatewayTarget) -> String {
    format!("{}-rpc-tls", target.name)
}

/// Keeps the gateway's certificate Secret; after a (re-)issue, patches the
/// gateway Deployment's pod template with the new fingerprint so its pods
/// restart onto it (a missing Deployment is fine: it mounts the Secret when
/// it is created).
pub async fn ensure_gateway_certificate(
    client: &Client,
    ca_dir: &Path,
    target: &GatewayTarget,
) -> Result<Ensured, CertError> {
    let labels = std::collections::BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "partita".to_string()),
        (
            "app.kubernetes.io/component".to_string(),
            "gateway".to_string(),
        ),
        (
            "app.kubernetes.io/managed-by".to_string(),
            FIELD_MANAGER.to_string(),
        ),
    ]);
    let ensured = ensure_secret(
        client,
        ca_dir,
        &gateway_secret_name(target),
        &target.namespace,
        &target.name,
        &tls::gateway_names(&target.name, &target.namespace),
        labels,
        None,
    )
    .await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &target.namespace);
    if ensured.issued.is_some() {
        let patch = json!({"spec": {"template": {"metadata": {"annotations": {
            tls::CERT_FINGERPRINT_ANNOTATION: ensured.fingerprint,
        }}}}});
        match deployments
            .patch(&target.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => {
                return Err(CertError::Restart {
                    name: target.name.clone(),
                    source,
                })
            }
        }
    } else if !ensured.rolled {
        let deployment =
            deployments
                .get_opt(&target.name)
                .await
                .map_err(|source| CertError::Fetch {
                    name: target.name.clone(),
                    source,
                })?;
        if deployment.is_some_and(|d| deployment_runs(&d, &ensured.fingerprint)) {
            mark_rolled(
                client,
                &target.namespace,
                &gateway_secret_name(target),
                &ensured.fingerprint,
            )
            .await?;
        }
    }
    Ok(ensured)
}

/// True when every pod of `deployment` runs the template carrying
/// certificate `fingerprint`, and is ready.
fn deployment_runs(deployment: &Deployment, fingerprint: &str) -> bool {
    let annotated = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(tls::CERT_FINGERPRINT_ANNOTATION))
        .is_some_and(|f| f == fingerprint);
    let want = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    annotated
        && deployment.status.as_ref().is_some_and(|s| {
            s.observed_generation >= deployment.metadata.generation
                && s.updated_replicas == Some(want)
                && s.ready_replicas == Some(want)
                && s.replicas == Some(want)
        })
}

/// Keeps the gateway's certificate: at start, then every 10 minutes (the
/// renewal window is 30 days), every 5 seconds while a CA rotation is under
/// way, and within 10 seconds of the CA changing on disk.
pub async fn run_gateway(ctx: Arc<Context>, target: GatewayTarget, ca_dir: std::path::PathBuf) {
    let ca_fingerprint = || {
        RpcCa::from_dir(&ca_dir)
            .ok()
            .map(|ca| ca.fingerprint().to_string())
    };
    loop {
        let start = std::time::Instant::now();
        let seen = ca_fingerprint();
        let result = ensure_gateway_certificate(&ctx.client, &ca_dir, &target).await;
        let category = result.as_ref().err().map(CertError::category);
        ctx.metrics
            .observe("gateway-certificate", start.elapsed(), category);
        let wait = match result {
            // A CA rotation moves on as the tables' pods and the gateway's
            // take each step.
            Ok(ensured) if ensured.rotating => Duration::from_secs(5),
            Ok(_) => Duration::from_secs(600),
            Err(error) => {
                tracing::warn!(category = error.category(), %error, "gateway certificate");
                Duration::from_secs(15)
            }
        };
        let until = std::time::Instant::now() + wait;
        while std::time::Instant::now() < until && ca_fingerprint() == seen {
            tokio::time::sleep(Duration::from_secs(5).min(wait)).await;
        }
    }
}
