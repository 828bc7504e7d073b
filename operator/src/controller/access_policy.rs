//! The gateway-config controller: renders the gateway's two files.
//!
//! - `<gateway>-topology` (ConfigMap, gateway namespace): every table's
//!   partition map, merged from the per-table topology ConfigMaps (label
//!   `partita.dev/topology=true`).
//! - `<gateway>-auth` (Secret, gateway namespace): the auth file
//!   (`partita_topology::auth`) from every `AccessPolicy` and every user
//!   Secret (label `partita.dev/user=<name>`, keys `accessKeyId` and
//!   `secretAccessKey`) in the policy's namespace.
//!
//! Both are mounted into the gateway, which reloads them on change: a changed
//! policy or a rotated key takes effect without restarting it. The rendering
//! is pure ([`build_auth_file`], [`merge_topologies`]); [`run`] watches the
//! inputs and applies the outputs with the operator's field manager.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Api, ListParams, Patch};
use kube::runtime::{watcher, WatchStreamExt};
use kube::ResourceExt;
use partita_topology::auth::{AuthFile, AuthUser};
use partita_topology::{TableTopology, TopologyFile};
use serde_json::json;

use super::Context;
use crate::apply::{apply_object, apply_params};
use crate::build::{FIELD_MANAGER, TOPOLOGY_LABEL};
use crate::crd::access_policy::{
    AccessPolicy, AccessPolicyStatus, ACCESS_KEY_ID_KEY, SECRET_ACCESS_KEY_KEY, USER_LABEL,
};

/// Where the gateway's files go.
#[derive(Debug, Clone)]
pub struct GatewayTarget {
    pub namespace: String,
    pub name: String,
}

/// One policy's outcome, for its status.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyOutcome {
    pub namespace: String,
    pub name: String,
    /// None when valid; the reason otherwise.
    pub error: Option<String>,
    pub users_found: usize,
    pub users_wanted: usize,
}

/// Renders the auth file. Policy names are `<namespace>/<name>`; user names
/// are the `partita.dev/user` label values. An invalid policy document is
/// left out (and reported); a Secret without both keys is skipped.
pub fn build_auth_file(
    policies: &[AccessPolicy],
    secrets: &[Secret],
) -> (AuthFile, Vec<PolicyOutcome>) {
    let mut file = AuthFile::default();
    let mut outcomes = Vec::new();
    // (namespace, user) → credentials
    let mut credentials: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
    for secret in secrets {
        let Some(user) = secret.labels().get(USER_LABEL).cloned() else {
            continue;
        };
        let data = secret.data.clone().unwrap_or_default();
        let get = |k: &str| {
            data.get(k)
                .and_then(|b| String::from_utf8(b.0.clone()).ok())
                .map(|s| s.trim().to_string())
        };
        if let (Some(id), Some(key)) = (get(ACCESS_KEY_ID_KEY), get(SECRET_ACCESS_KEY_KEY)) {
            credentials
                .entry((secret.namespace().unwrap_or_default(), user))
                .or_default()
                .push((id, key));
        }
    }
    let mut bindings: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for policy in policies {
        let ns = policy.namespace().unwrap_or_default();
        let policy_name = format!("{ns}/{}", policy.name_any());
        let mut outcome = PolicyOutcome {
            namespace: ns.clone(),
            name: policy.name_any(),
            error: None,
            users_found: 0,
            users_wanted: policy.spec.users.len(),
        };
        match parse_policy(&policy.spec.policy_document) {
            Ok(doc) => {
                file.policies.insert(policy_name.clone(), doc);
                for user in &policy.spec.users {
                    let key = (ns.clone(), user.clone());
                    if credentials.contains_key(&key) {
                        outcome.users_found += 1;
                    }
                    bindings.entry(key).or_default().push(policy_name.clone());
                }
            }
            Err(reason) => outcome.error = Some(reason),
        }
        outcomes.push(outcome);
    }
    for ((ns, user), creds) in credentials {
        let policies = bindings
            .get(&(ns, user.clone()))
            .cloned()
            .unwrap_or_default();
        for (access_key_id, secret_access_key) in creds {
            file.users.push(AuthUser {
                name: user.clone(),
                access_key_id,
                secret_access_key,
                policies: policies.clone(),
            });
        }
    }
    (file, outcomes)
}

/// Adds the operator's own user (its calls that bring tables to their
/// specs) to the auth file.
pub fn add_operator(file: &mut AuthFile, credentials: &crate::definition::Credentials) {
    use crate::definition::{operator_policy, OPERATOR_POLICY, OPERATOR_USER};
    file.policies
        .insert(OPERATOR_POLICY.to_string(), operator_policy());
    file.users.push(AuthUser {
        name: OPERATOR_USER.to_string(),
        access_key_id: credentials.access_key_id.clone(),
        secret_access_key: credentials.secret_access_key.clone(),
        policies: vec![OPERATOR_POLICY.to_string()],
    });
}

/// Checks that a policy document is a JSON object with Version and Statement.
pub fn parse_policy(document: &str) -> Result<serde_json::Value, String> {
    let doc: serde_json::Value =
        serde_json::from_str(document).map_err(|e| format!("policyDocument is not JSON: {e}"))?;
    let obj = doc
        .as_object()
        .ok_or("policyDocument must be a JSON object")?;
    if !obj.contains_key("Statement") {
        return Err("policyDocument has no Statement".into());
    }
    match obj.get("Version").and_then(|v| v.as_str()) {
        Some("2012-10-17") | Some("2008-10-17") => Ok(doc),
        _ => Err("policyDocument Version must be \"2012-10-17\"".into()),
    }
}

/// Merges per-table topology ConfigMaps into one file; a table name claimed
/// by two ConfigMaps keeps the first (by namespace/name) and is reported.
pub fn merge_topologies(configmaps: &[ConfigMap]) -> (TopologyFile, Vec<String>) {
    let mut sorted: Vec<&ConfigMap> = configmaps.iter().collect();
    sorted.sort_by_key(|cm| (cm.namespace(), cm.name_any()));
    let mut tables: BTreeMap<String, TableTopology> = BTreeMap::new();
    let mut problems = Vec::new();
    for cm in sorted {
        let id = format!("{}/{}", cm.namespace().unwrap_or_default(), cm.name_any());
        let Some(text) = cm
            .data
            .as_ref()
            .and_then(|d| d.get(partita_topology::topology::FILE_NAME))
        else {
            problems.push(format!("{id}: no topology.json"));
            continue;
        };
        match TopologyFile::parse(text.as_bytes()) {
            Ok(file) => {
                for t in file.tables {
                    if tables.contains_key(&t.table_name) {
                        problems.push(format!(
                            "{id}: table {} is already served by another Table resource",
                            t.table_name
                        ));
                    } else {
                        tables.insert(t.table_name.clone(), t);
                    }
                }
            }
            Err(e) => problems.push(format!("{id}: {e}")),
        }
    }
    (TopologyFile::new(tables.into_values().collect()), problems)
}

fn gateway_meta(target: &GatewayTarget, suffix: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(format!("{}-{suffix}", target.name)),
        namespace: Some(target.namespace.clone()),
        labels: Some(BTreeMap::from([
            ("app.kubernetes.io/name".to_string(), "partita".to_string()),
            (
                "app.kubernetes.io/component".to_string(),
                "gateway".to_string(),
            ),
            (
                "app.kubernetes.io/managed-by".to_string(),
                FIELD_MANAGER.to_string(),
            ),
        ])),
        ..ObjectMeta::default()
    }
}

/// Builds the gateway's topology ConfigMap.
pub fn build_gateway_topology(target: &GatewayTarget, file: &TopologyFile) -> ConfigMap {
    ConfigMap {
        metadata: gateway_meta(target, "topology"),
        data: Some(BTreeMap::from([(
            partita_topology::topology::FILE_NAME.to_string(),
            file.to_json(),
        )])),
        ..ConfigMap::default()
    }
}

/// Builds the gateway's auth Secret.
pub fn build_gateway_auth(target: &GatewayTarget, file: &AuthFile) -> Secret {
    Secret {
        metadata: gateway_meta(target, "auth"),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            partita_topology::auth::FILE_NAME.to_string(),
            ByteString(file.to_json().into_bytes()),
        )])),
        ..Secret::default()
    }
}

/// Reads every input and applies both gateway files and policy statuses.
pub async fn reconcile_gateway(ctx: &Context, target: &GatewayTarget) -> Result<(), kube::Error> {
    let client = &ctx.client;
    let policies = Api::<AccessPolicy>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let secrets = Api::<Secret>::all(client.clone())
        .list(&ListParams::default().labels(USER_LABEL))
        .await?
        .items;
    let topologies = Api::<ConfigMap>::all(client.clone())
        .list(&ListParams::default().labels(&format!("{TOPOLOGY_LABEL}=true")))
        .await?
        .items;
    let (mut auth, outcomes) = build_auth_file(&policies, &secrets);
    let operator = crate::definition::ensure_credentials(client, target).await?;
    add_operator(&mut auth, &operator);
    let (topology, problems) = merge_topologies(&topologies);
    for problem in &problems {
        tracing::warn!(problem = %problem, "topology not merged");
    }
    let to_kube = |e: crate::apply::ApplyError| match e {
        crate::apply::ApplyError::Apply { source, .. }
        | crate::apply::ApplyError::List { source, .. }
        | crate::apply::ApplyError::Delete { source, .. } => source,
    };
    apply_object(client, &build_gateway_topology(target, &topology))
        .await
        .map_err(to_kube)?;
    apply_object(client, &build_gateway_auth(target, &auth))
        .await
        .map_err(to_kube)?;
    for (policy, outcome) in policies.iter().zip(outcomes) {
        let mut conditions = policy.status.clone().unwrap_or_default().conditions;
        let generation = policy.metadata.generation.unwrap_or(0);
        let (ok, reason, message) = match &outcome.error {
            None => (
                true,
                "Rendered",
                "policy rendered into the gateway auth file".to_string(),
            ),
            Some(e) => (false, "InvalidPolicyDocument", e.clone()),
        };
        crate::status::set_condition(
            &mut conditions,
            "Valid",
            ok,
            reason,
            message,
            generation,
            k8s_openapi::jiff::Timestamp::now(),
        );
        let status = AccessPolicyStatus {
            observed_generation: Some(generation),
            bound_users: Some(format!("{}/{}", outcome.users_found, outcome.users_wanted)),
            conditions,
        };
        let api: Api<AccessPolicy> = Api::namespaced(client.clone(), &outcome.namespace);
        let body =
            json!({"apiVersion": "partita.dev/v1alpha1", "kind": "AccessPolicy", "status": status});
        api.patch_status(&outcome.name, &apply_params(), &Patch::Apply(&body))
            .await?;
    }
    Ok(())
}

/// A watch event that triggers a render: an object changed. A failing
/// watch (it retries with backoff) triggers nothing; the periodic render
/// covers it.
fn changed<K>(event: Result<K, watcher::Error>) -> futures::future::Ready<Option<()>> {
    if let Err(error) = &event {
        tracing::debug!(%error, "gateway-config watch failed; retrying");
    }
    futures::future::ready(event.ok().map(|_| ()))
}

/// Renders the gateway's files at start, then watches AccessPolicies, user
/// Secrets and topology ConfigMaps and re-renders them on every change (and
/// every minute). The first render does not wait for a watch event: with
/// no Table or policy yet the watches yield nothing, and the gateway needs
/// its (empty) files right after an install.
pub async fn run(ctx: Arc<Context>, target: GatewayTarget) {
    let client = ctx.client.clone();
    let policies = watcher(
        Api::<AccessPolicy>::all(client.clone()),
        watcher::Config::default(),
    )
    .touched_objects()
    .filter_map(changed);
    let secrets = watcher(
        Api::<Secret>::all(client.clone()),
        watcher::Config::default().labels(USER_LABEL),
    )
    .touched_objects()
    .filter_map(changed);
    let topologies = watcher(
        Api::<ConfigMap>::all(client.clone()),
        watcher::Config::default().labels(&format!("{TOPOLOGY_LABEL}=true")),
    )
    .touched_objects()
    .filter_map(changed);
    let tick = futures::stream::unfold((), |_| async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Some(((), ()))
    });
    let start = futures::stream::once(async {});
    let mut triggers = futures::stream::select_all(vec![
        start.boxed(),
        policies.boxed(),
        secrets.boxed(),
        topologies.boxed(),
        tick.boxed(),
    ]);
    while triggers.next().await.is_some() {
        // Coalesce bursts of changes into one render.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let start = std::time::Instant::now();
        let result = reconcile_gateway(&ctx, &target).await;
        let category = result.as_ref().err().map(|_| "GatewayConfigFailed");
        ctx.metrics
            .observe("gateway-config", start.elapsed(), category);
        if let Err(error) = result {
            tracing::warn!(%error, "rendering gateway config failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::access_policy::AccessPolicySpec;

    fn secret(ns: &str, name: &str, user: &str, id: &str, key: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                labels: Some(BTreeMap::from([(USER_LABEL.to_string(), user.to_string())])),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([
                (
                    ACCESS_KEY_ID_KEY.to_string(),
                    ByteString(id.as_bytes().to_vec()),
                ),
                (
                    SECRET_ACCESS_KEY_KEY.to_string(),
                    ByteString(key.as_bytes().to_vec()),
                ),
            ])),
            ..Secret::default()
        }
    }

    fn policy(ns: &str, name: &str, doc: &str, users: &[&str]) -> AccessPolicy {
        let mut p = AccessPolicy::new(
            name,
            AccessPolicySpec {
                policy_document: doc.into(),
                users: users.iter().map(|u| u.to_string()).collect(),
            },
        );
        p.metadata.namespace = Some(ns.into());
        p
    }

    const TENANT: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["dynamodb:GetItem"],"Resource":"arn:aws:dynamodb:*:*:table/Tenants","Condition":{"ForAllValues:StringEquals":{"dynamodb:LeadingKeys":["${aws:username}"]}}}]}"#;

    #[test]
    fn renders_users_with_their_policies_and_rotated_keys() {
        let secrets = vec![
            secret("apps", "alice-1", "alice", "AKIAALICE1", "s1"),
            secret("apps", "alice-2", "alice", "AKIAALICE2", "s2"),
            secret("apps", "bob", "bob", "AKIABOB", "s3"),
            secret("other", "alice", "alice", "AKIAOTHER", "s4"),
        ];
        let policies = vec![
            policy("apps", "tenant-items", TENANT, &["alice", "carol"]),
            policy("apps", "broken", "{not json", &["bob"]),
        ];
        let (file, outcomes) = build_auth_file(&policies, &secrets);
        let v: serde_json::Value = serde_json::from_str(&file.to_json()).unwrap();
        assert_eq!(
            v,
            json!({
                "users": [
                    {"name": "alice", "accessKeyId": "AKIAALICE1", "secretAccessKey": "s1", "policies": ["apps/tenant-items"]},
                    {"name": "alice", "accessKeyId": "AKIAALICE2", "secretAccessKey": "s2", "policies": ["apps/tenant-items"]},
                    {"name": "alice", "accessKeyId": "AKIAOTHER", "secretAccessKey": "s4", "policies": []},
                    {"name": "bob", "accessKeyId": "AKIABOB", "secretAccessKey": "s3", "policies": []},
                ],
                "policies": {"apps/tenant-items": serde_json::from_str::<serde_json::Value>(TENANT).unwrap()},
            })
        );
        assert_eq!(outcomes[0].error, None);
        assert_eq!((outcomes[0].users_found, outcomes[0].users_wanted), (1, 2));
        assert!(outcomes[1]
            .error
            .as_deref()
            .unwrap()
            .starts_with("policyDocument is not JSON"));
    }

    #[test]
    fn policy_documents_need_version_and_statement() {
        assert!(parse_policy(r#"{"Version":"2012-10-17","Statement":[]}"#).is_ok());
        assert!(parse_policy(r#"{"Statement":[]}"#).is_err());
        assert!(parse_policy(r#"{"Version":"2012-10-17"}"#).is_err());
        assert!(parse_policy("[]").is_err());
    }
}
