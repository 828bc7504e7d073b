//! Reconcile tests on kube-fake-client for the internal RPC's mutual TLS:
//! the per-Table certificate Secret is issued once, left alone on the next
//! reconcile, re-issued when the CA changes; the StatefulSets mount it and
//! pass the `--rpc-tls-*` flags; the gateway's Secret likewise, with a
//! restart of its Deployment on re-issue.

use std::path::Path;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use partita_operator::config::OperatorConfig;
use partita_operator::controller::access_policy::GatewayTarget;
use partita_operator::controller::rpc_tls::ensure_gateway_certificate;
use partita_operator::controller::table::reconcile_table;
use partita_operator::controller::Context;
use partita_operator::crd::table::Table;
use partita_operator::metrics::Metrics;
use partita_operator::tls::{
    cert_fingerprint, RpcCa, CA_FINGERPRINT_ANNOTATION, CERT_FINGERPRINT_ANNOTATION,
    NAMES_ANNOTATION, ROLLED_ANNOTATION,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

const NS: &str = "shop";

const ORDERS: &str = r#"
apiVersion: partita.dev/v1alpha1
kind: Table
metadata:
  name: orders
  namespace: shop
spec:
  tableName: Orders
  attributeDefinitions:
    - {attributeName: pk, attributeType: S}
  keySchema:
    - {attributeName: pk, keyType: HASH}
  billingMode: PAY_PER_REQUEST
  placement:
    zones: [zone-a, zone-b, zone-c]
"#;

/// Writes a fresh self-signed CA as `dir/tls.crt` and `dir/tls.key` (the
/// layout of the chart's `partita-rpc-ca` mount); returns its fingerprint.
fn write_ca(dir: &Path) -> String {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "partita-rpc-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("tls.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("tls.key"), key.serialize_pem()).unwrap();
    RpcCa::from_dir(dir).unwrap().fingerprint().to_string()
}

async fn setup(ca_dir: Option<&Path>) -> (Client, std::sync::Arc<Context>) {
    let client = kube_fake_client::ClientBuilder::new()
        .with_resource::<Table>()
        .with_status_subresource::<Table>()
        .with_status_subresource::<StatefulSet>()
        .build()
        .await
        .unwrap();
    let config = OperatorConfig {
        rpc_ca_dir: ca_dir.map(Path::to_path_buf),
        ..OperatorConfig::default()
    };
    let ctx = Context::new(client.clone(), config, Metrics::new().unwrap());
    (client, ctx)
}

async fn reconcile(client: &Client, ctx: &Context) {
    let tables: Api<Table> = Api::namespaced(client.clone(), NS);
    let table = tables.get("orders").await.unwrap();
    reconcile_table(&table, ctx).await.unwrap();
}

async fn create_table(client: &Client) {
    let table: Table = serde_yaml::from_str(ORDERS).unwrap();
    Api::<Table>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &table)
        .await
        .unwrap();
}

async fn secret(client: &Client, ns: &str, name: &str) -> Option<Secret> {
    Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()
}

fn data(secret: &Secret, key: &str) -> Vec<u8> {
    secret.data.as_ref().unwrap()[key].0.clone()
}

fn annotation<'a>(secret: &'a Secret, key: &str) -> &'a str {
    &secret.metadata.annotations.as_ref().unwrap()[key]
}

async fn statefulsets(client: &Client) -> Vec<StatefulSet> {
    Api::<StatefulSet>::namespaced(client.clone(), NS)
        .list(&ListParams::default().labels("partita.dev/table=orders"))
        .await
        .unwrap()
        .items
}

/// How many times a `CertificateIssued` Event was published (the recorder
/// folds repeats into one Event's series count).
async fn issued_events(client: &Client) -> i32 {
    Api::<Event>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("CertificateIssued"))
        .map(|e| e.series.as_ref().map_or(1, |s| s.count))
        .sum()
}

/// Checks every StatefulSet mounts `orders-rpc-tls`, passes the three
/// flags, and carries `fingerprint` in its pod template.
fn assert_mounted(statefulsets: &[StatefulSet], fingerprint: &str) {
    assert_eq!(statefulsets.len(), 3);
    for sts in statefulsets {
        let template = &sts.spec.as_ref().unwrap().template;
        let pod = template.spec.as_ref().unwrap();
        let container = &pod.containers[0];
        let args = container.args.as_ref().unwrap().join(" ");
        assert!(
            args.ends_with(
                "--rpc-tls-ca /etc/partita/rpc-tls/ca.crt \
                 --rpc-tls-cert /etc/partita/rpc-tls/tls.crt \
                 --rpc-tls-key /etc/partita/rpc-tls/tls.key"
            ),
            "{args}"
        );
        let mount = container
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.name == "rpc-tls")
            .expect("rpc-tls mount");
        assert_eq!(mount.mount_path, "/etc/partita/rpc-tls");
        assert_eq!(mount.read_only, Some(true));
        let volume = pod
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .find(|v| v.name == "rpc-tls")
            .expect("rpc-tls volume");
        let source = volume.secret.as_ref().unwrap();
        assert_eq!(source.secret_name.as_deref(), Some("orders-rpc-tls"));
        assert_eq!(source.optional, None, "the certificate is required");
        let annotations = template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .unwrap();
        assert_eq!(annotations[CERT_FINGERPRINT_ANNOTATION], fingerprint);
    }
}

#[tokio::test]
async fn the_table_certificate_is_issued_once_and_reissued_when_the_ca_changes() {
    let dir = tempfile::tempdir().unwrap();
    let first_ca = write_ca(dir.path());
    let (client, ctx) = setup(Some(dir.path())).await;
    create_table(&client).await;

    // First reconcile: issued, mounted, flags rendered.
    reconcile(&client, &ctx).await;
    let issued = secret(&client, NS, "orders-rpc-tls").await.expect("issued");
    assert_eq!(issued.type_.as_deref(), Some("kubernetes.io/tls"));
    assert_eq!(annotation(&issued, CA_FINGERPRINT_ANNOTATION), first_ca);
    assert_eq!(
        annotation(&issued, NAMES_ANNOTATION),
        "*.orders-nodes.shop.svc"
    );
    assert_eq!(
        data(&issued, "ca.crt"),
        std::fs::read(dir.path().join("tls.crt")).unwrap()
    );
    let owner = &issued.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Table", "orders")
    );
    let fingerprint = cert_fingerprint(&issued).unwrap();
    assert_mounted(&statefulsets(&client).await, &fingerprint);
    assert_eq!(issued_events(&client).await, 1);

    // Second reconcile: nothing rewritten, same key, same pods.
    let sts_versions: Vec<_> = statefulsets(&client)
        .await
        .iter()
        .map(|s| s.metadata.resource_version.clone())
        .collect();
    reconcile(&client, &ctx).await;
    let again = secret(&client, NS, "orders-rpc-tls").await.unwrap();
    assert_eq!(
        again.metadata.resource_version,
        issued.metadata.resource_version
    );
    assert_eq!(data(&again, "tls.key"), data(&issued, "tls.key"));
    assert_eq!(data(&again, "tls.crt"), data(&issued, "tls.crt"));
    let after: Vec<_> = statefulsets(&client)
        .await
        .iter()
        .map(|s| s.metadata.resource_version.clone())
        .collect();
    assert_eq!(after, sts_versions, "no StatefulSet rewrite");
    assert_eq!(issued_events(&client).await, 1);

    // The CA is rotated (the kubelet refreshes the mount). Step 1: the new
    // CA joins the trust bundle; the certificate and key stay; the pods
    // roll onto the bundle.
    let old_bundle = data(&issued, "ca.crt");
    let second_ca = write_ca(dir.path());
    let new_ca_pem = std::fs::read(dir.path().join("tls.crt")).unwrap();
    assert_ne!(first_ca, second_ca);
    reconcile(&client, &ctx).await;
    let trusting = secret(&client, NS, "orders-rpc-tls").await.unwrap();
    assert_eq!(annotation(&trusting, CA_FINGERPRINT_ANNOTATION), first_ca);
    assert_eq!(data(&trusting, "tls.key"), data(&issued, "tls.key"));
    assert_eq!(data(&trusting, "tls.crt"), data(&issued, "tls.crt"));
    assert_eq!(
        data(&trusting, "ca.crt"),
        [new_ca_pem.clone(), old_bundle.clone()].concat()
    );
    let trusting_fingerprint = cert_fingerprint(&trusting).unwrap();
    assert_ne!(trusting_fingerprint, fingerprint);
    assert_mounted(&statefulsets(&client).await, &trusting_fingerprint);
    // Until its pods run the bundle, the certificate is not re-issued.
    reconcile(&client, &ctx).await;
    let unchanged = secret(&client, NS, "orders-rpc-tls").await.unwrap();
    assert_eq!(annotation(&unchanged, CA_FINGERPRINT_ANNOTATION), first_ca);
    assert!(!unchanged
        .metadata
        .annotations
        .as_ref()
        .unwrap()
        .contains_key(ROLLED_ANNOTATION));

    // Step 2, once the pods rolled: issued by the new CA, still trusting
    // both.
    settle_statefulsets(&client).await;
    reconcile(&client, &ctx).await;
    let rolled = secret(&client, NS, "orders-rpc-tls").await.unwrap();
    assert_eq!(annotation(&rolled, ROLLED_ANNOTATION), trusting_fingerprint);
    reconcile(&client, &ctx).await;
    let reissued = secret(&client, NS, "orders-rpc-tls").await.unwrap();
    assert_eq!(annotation(&reissued, CA_FINGERPRINT_ANNOTATION), second_ca);
    assert_ne!(data(&reissued, "tls.key"), data(&issued, "tls.key"));
    assert_eq!(data(&reissued, "ca.crt"), data(&trusting, "ca.crt"));
    let reissued_fingerprint = cert_fingerprint(&reissued).unwrap();
    assert_mounted(&statefulsets(&client).await, &reissued_fingerprint);

    // Step 3, once rolled again: the old CA leaves the bundle.
    settle_statefulsets(&client).await;
    reconcile(&client, &ctx).await;
    reconcile(&client, &ctx).await;
    let done = secret(&client, NS, "orders-rpc-tls").await.unwrap();
    assert_eq!(data(&done, "ca.crt"), new_ca_pem);
    assert_eq!(data(&done, "tls.key"), data(&reissued, "tls.key"));
    assert_eq!(annotation(&done, CA_FINGERPRINT_ANNOTATION), second_ca);
    assert_mounted(
        &statefulsets(&client).await,
        &cert_fingerprint(&done).unwrap(),
    );
    // Settled on the new CA: nothing more is written.
    settle_statefulsets(&client).await;
    reconcile(&client, &ctx).await;
    reconcile(&client, &ctx).await;
    let after = secret(&client, NS, "orders-rpc-tls").await.unwrap();
    assert_eq!(data(&after, "ca.crt"), new_ca_pem);
    assert_eq!(data(&after, "tls.key"), data(&reissued, "tls.key"));
    assert_eq!(issued_events(&client).await, 4);
}

/// What the StatefulSet controller reports once every pod runs the
/// current template.
async fn settle_statefulsets(client: &Client) {
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    for sts in statefulsets(client).await {
        let replicas = sts.spec.as_ref().unwrap().replicas.unwrap_or(0);
        let status = serde_json::json!({"status": {
            "observedGeneration": sts.metadata.generation,
            "replicas": replicas,
            "readyReplicas": replicas,
            "updatedReplicas": replicas,
        }});
        api.patch_status(
            sts.metadata.name.as_deref().unwrap(),
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn an_unreadable_ca_fails_the_reconcile_instead_of_falling_back_to_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let (client, ctx) = setup(Some(dir.path())).await;
    create_table(&client).await;
    let table = Api::<Table>::namespaced(client.clone(), NS)
        .get("orders")
        .await
        .unwrap();
    let error = reconcile_table(&table, &ctx).await.unwrap_err();
    assert_eq!(error.category(), "RpcCaUnavailable");
    assert!(secret(&client, NS, "orders-rpc-tls").await.is_none());
    assert!(statefulsets(&client).await.is_empty());
}

#[tokio::test]
async fn without_a_ca_nothing_is_issued_and_no_flags_are_rendered() {
    let (client, ctx) = setup(None).await;
    create_table(&client).await;
    reconcile(&client, &ctx).await;
    assert!(secret(&client, NS, "orders-rpc-tls").await.is_none());
    for sts in statefulsets(&client).await {
        let pod = sts.spec.unwrap().template.spec.unwrap();
        let args = pod.containers[0].args.clone().unwrap().join(" ");
        assert!(!args.contains("--rpc-tls"), "{args}");
        assert!(pod.volumes.unwrap().iter().all(|v| v.name != "rpc-tls"));
    }
}

#[tokio::test]
async fn the_gateway_certificate_is_kept_and_its_deployment_restarted_on_reissue() {
    let dir = tempfile::tempdir().unwrap();
    let first_ca = write_ca(dir.path());
    let (client, _ctx) = setup(Some(dir.path())).await;
    let target = GatewayTarget {
        namespace: "partita-system".into(),
        name: "partita-gateway".into(),
    };

    // No Deployment yet (the operator may start first): issued anyway.
    let first = ensure_gateway_certificate(&client, dir.path(), &target)
        .await
        .unwrap();
    assert_eq!(first.issued, Some("Missing"));
    let issued = secret(&client, "partita-system", "partita-gateway-rpc-tls")
        .await
        .unwrap();
    assert_eq!(annotation(&issued, CA_FINGERPRINT_ANNOTATION), first_ca);
    assert_eq!(
        annotation(&issued, NAMES_ANNOTATION),
        "partita-gateway.partita-system.svc"
    );

    // Stable.
    let deployment: Deployment = serde_yaml::from_str(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: partita-gateway, namespace: partita-system}
spec:
  selector: {matchLabels: {app: gw}}
  template:
    metadata: {labels: {app: gw}}
    spec: {containers: [{name: gateway, image: partita}]}
"#,
    )
    .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "partita-system");
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    let second = ensure_gateway_certificate(&client, dir.path(), &target)
        .await
        .unwrap();
    assert_eq!(second.issued, None);
    assert_eq!(second.fingerprint, first.fingerprint);
    let template_annotations = |d: Deployment| {
        d.spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap_or_default()
    };
    assert!(template_annotations(deployments.get("partita-gateway").await.unwrap()).is_empty());

    // New CA: first trusted (the Deployment's pods roll onto the bundle),
    // then, once they run it, the certificate is issued by it.
    let new_ca = write_ca(dir.path());
    let third = ensure_gateway_certificate(&client, dir.path(), &target)
        .await
        .unwrap();
    assert_eq!(third.issued, Some("CATrusted"));
    assert!(third.rotating);
    assert_ne!(third.fingerprint, first.fingerprint);
    assert_eq!(
        template_annotations(deployments.get("partita-gateway").await.unwrap())
            [CERT_FINGERPRINT_ANNOTATION],
        third.fingerprint
    );
    let waiting = ensure_gateway_certificate(&client, dir.path(), &target)
        .await
        .unwrap();
    assert_eq!(waiting.issued, None, "its pods do not run the bundle yet");
    // The Deployment controller reports every pod on the new template.
    let generation = deployments
        .get("partita-gateway")
        .await
        .unwrap()
        .metadata
        .generation;
    deployments
        .patch_status(
            "partita-gateway",
            &PatchParams::default(),
            &Patch::Merge(
                serde_json::json!({"status": {"observedGeneration": generation,
                "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1}}),
            ),
        )
        .await
        .unwrap();
    let marked = ensure_gateway_certificate(&client, dir.path(), &target)
        .await
        .unwrap();
    assert_eq!(marked.issued, None);
    let fourth = ensure_gateway_certificate(&client, dir.path(), &target)
        .await
        .unwrap();
    assert_eq!(fourth.issued, Some("CAChanged"));
    let reissued = secret(&client, "partita-system", "partita-gateway-rpc-tls")
        .await
        .unwrap();
    assert_eq!(annotation(&reissued, CA_FINGERPRINT_ANNOTATION), new_ca);
}
