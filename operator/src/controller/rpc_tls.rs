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
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::Client;
use serde_json::json;

use super::access_policy::GatewayTarget;
use super::Context;
use crate::apply::{apply_object, ApplyError};
use crate::build::{common_labels, headless_service_name, rpc_tls_secret_name, FIELD_MANAGER};
use crate::crd::table::Table;
use crate::tls::{self, build_tls_secret, renewal_reason, RpcCa, TlsError};
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
    /// Fingerprint of the certificate now in the Secret.
    pub fingerprint: String,
    /// `Some(reason)` when it was (re-)issued now.
    pub issued: Option<&'static str>,
}

/// Keeps Secret `name` in `namespace` holding a certificate for `names`
/// signed by the CA in `ca_dir`: written only when [`renewal_reason`] says
/// so, otherwise left untouched.
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
    match renewal_reason(existing.as_ref(), &ca, names, now) {
        None => {
            let fingerprint = existing
                .as_ref()
                .and_then(tls::cert_fingerprint)
                .unwrap_or_default();
            Ok(Ensured {
                fingerprint,
                issued: None,
            })
        }
        Some(reason) => {
            let issued = ca
                .issue(common_name, names, now)
                .map_err(|source| CertError::Issue {
                    name: name.to_string(),
                    source,
                })?;
            let secret = build_tls_secret(name, namespace, labels, owner, &ca, names, &issued);
            apply_object(client, &secret).await?;
            tracing::info!(secret = name, namespace, reason, not_after = %issued.not_after, "issued internal RPC certificate");
            Ok(Ensured {
                fingerprint: tls::cert_fingerprint(&secret).unwrap_or_default(),
                issued: Some(reason),
            })
        }
    }
}

/// Keeps `<table>-rpc-tls` (owned by the Table, SAN
/// `*.<table>-nodes.<ns>.svc`); publishes a `CertificateIssued` Event when
/// it was (re-)issued. Returns the certificate's fingerprint.
pub async fn ensure_table_certificate(
    table: &Table,
    ctx: &Context,
    validated: &ValidatedTable,
    owner: &OwnerReference,
    ca_dir: &Path,
) -> Result<String, CertError> {
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
                "issued internal RPC certificate {} for {} ({reason})",
                rpc_tls_secret_name(validated),
                names.join(",")
            ),
        )
        .await;
    }
    Ok(ensured.fingerprint)
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
    if ensured.issued.is_some() {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &target.namespace);
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
    }
    Ok(ensured)
}

/// Keeps the gateway's certificate: at start, then every 10 minutes (the
/// renewal window is 30 days; a CA change is picked up within one period).
pub async fn run_gateway(ctx: Arc<Context>, target: GatewayTarget, ca_dir: std::path::PathBuf) {
    loop {
        let start = std::time::Instant::now();
        let result = ensure_gateway_certificate(&ctx.client, &ca_dir, &target).await;
        let category = result.as_ref().err().map(CertError::category);
        ctx.metrics
            .observe("gateway-certificate", start.elapsed(), category);
        let wait = match result {
            Ok(_) => Duration::from_secs(600),
            Err(error) => {
                tracing::warn!(category = error.category(), %error, "gateway certificate");
                Duration::from_secs(15)
            }
        };
        tokio::time::sleep(wait).await;
    }
}
