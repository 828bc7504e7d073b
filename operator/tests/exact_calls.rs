//! Exact-call tests with tower-test: the HTTP requests the operator sends
//! for server-side apply carry the one field manager, force, the apply
//! content type, and exactly the built object as the body.

use http::{Request, Response};
use kube::client::Body;
use kube::Client;
use partita_operator::apply::apply_object;
use partita_operator::build::build_table_objects;
use partita_operator::config::OperatorConfig;
use partita_operator::controller::owner_reference;
use partita_operator::controller::table::patch_status;
use partita_operator::crd::table::{Table, TableStatus};
use partita_operator::validate::{validate_table, Existing};
use serde_json::{json, Value};

const ORDERS: &str = r#"
apiVersion: partita.dev/v1alpha1
kind: Table
metadata: {name: orders, namespace: shop, uid: 0000-1111}
spec:
  attributeDefinitions: [{attributeName: pk, attributeType: S}]
  keySchema: [{attributeName: pk, keyType: HASH}]
  billingMode: PAY_PER_REQUEST
  placement: {zones: [zone-a]}
"#;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

fn mock_client() -> (Client, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

/// Takes the next request, checks method/path/query/content type, returns
/// its JSON body, and answers with `reply`.
async fn expect_patch(
    handle: &mut Handle,
    path_and_query: &str,
    content_type: &str,
    reply: Value,
) -> Value {
    let (request, send) = handle.next_request().await.expect("a request");
    assert_eq!(request.method(), http::Method::PATCH);
    assert_eq!(
        request.uri().path_and_query().unwrap().as_str(),
        path_and_query
    );
    assert_eq!(request.headers()["content-type"], content_type);
    let bytes = request.into_body().collect_bytes().await.unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    send.send_response(
        Response::builder()
            .body(Body::from(serde_json::to_vec(&reply).unwrap()))
            .unwrap(),
    );
    body
}

#[tokio::test]
async fn configmap_apply_uses_the_field_manager_and_the_built_body() {
    let table: Table = serde_yaml::from_str(ORDERS).unwrap();
    let config = OperatorConfig::default();
    let validated = validate_table(&table, &Existing::default(), &config).unwrap();
    let objects = build_table_objects(&validated, &owner_reference(&table).unwrap(), &config);
    let expected = serde_json::to_value(&objects.topology).unwrap();

    let (client, mut handle) = mock_client();
    let cm = objects.topology.clone();
    let task = tokio::spawn(async move { apply_object(&client, &cm).await.map(|_| ()) });
    let body = expect_patch(
        &mut handle,
        "/api/v1/namespaces/shop/configmaps/orders-topology?&force=true&fieldManager=partita-operator",
        "application/apply-patch+yaml",
        expected.clone(),
    )
    .await;
    assert_eq!(body, expected);
    assert_eq!(body["apiVersion"], "v1");
    assert_eq!(body["kind"], "ConfigMap");
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn statefulset_apply_is_forced_with_one_field_manager() {
    let table: Table = serde_yaml::from_str(ORDERS).unwrap();
    let config = OperatorConfig::default();
    let validated = validate_table(&table, &Existing::default(), &config).unwrap();
    let objects = build_table_objects(&validated, &owner_reference(&table).unwrap(), &config);
    let sts = objects.statefulsets[0].clone();
    let expected = serde_json::to_value(&sts).unwrap();

    let (client, mut handle) = mock_client();
    let task = tokio::spawn(async move { apply_object(&client, &sts).await.map(|_| ()) });
    let body = expect_patch(
        &mut handle,
        "/apis/apps/v1/namespaces/shop/statefulsets/orders-zone-a?&force=true&fieldManager=partita-operator",
        "application/apply-patch+yaml",
        expected.clone(),
    )
    .await;
    assert_eq!(body, expected);
    assert_eq!(body["spec"]["replicas"], 1);
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn status_is_applied_to_the_status_subresource() {
    let (client, mut handle) = mock_client();
    let status = TableStatus {
        table_status: Some("CREATING".into()),
        observed_generation: Some(3),
        partition_count: Some(1),
        ..TableStatus::default()
    };
    let api: kube::Api<Table> = kube::Api::namespaced(client, "shop");
    let s = status.clone();
    let task = tokio::spawn(async move { patch_status(&api, "orders", &s).await });
    let mut reply: Table = serde_yaml::from_str(ORDERS).unwrap();
    reply.status = Some(status);
    let body = expect_patch(
        &mut handle,
        "/apis/partita.dev/v1alpha1/namespaces/shop/tables/orders/status?&force=true&fieldManager=partita-operator",
        "application/apply-patch+yaml",
        serde_json::to_value(&reply).unwrap(),
    )
    .await;
    assert_eq!(
        body,
        json!({
            "apiVersion": "partita.dev/v1alpha1",
            "kind": "Table",
            "status": {"tableStatus": "CREATING", "observedGeneration": 3, "partitionCount": 1},
        })
    );
    task.await.unwrap().unwrap();
}

/// Takes the next request, checks method and path+query, returns its body
/// (Null when empty) and answers with `reply`.
async fn expect_call(
    handle: &mut Handle,
    method: http::Method,
    path_and_query: &str,
    reply: Value,
) -> Value {
    let (request, send) = handle.next_request().await.expect("a request");
    assert_eq!(
        (
            request.method().clone(),
            request.uri().path_and_query().unwrap().as_str().to_string()
        ),
        (method, path_and_query.to_string())
    );
    let bytes = request.into_body().collect_bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    send.send_response(
        Response::builder()
            .body(Body::from(serde_json::to_vec(&reply).unwrap()))
            .unwrap(),
    );
    body
}

mod global_table {
    use super::*;
    use partita_operator::controller::access_policy::GatewayTarget;
    use partita_operator::controller::global_table::reconcile_global_tables;
    use partita_operator::controller::Context;
    use partita_operator::global::source::{ReplicationStatusSource, StatusFuture};
    use partita_operator::metrics::Metrics;
    use partita_topology::replication::{
        ReplicaState, ReplicationFile, ReplicationStatus, TableReplication,
    };

    struct Active;

    impl ReplicationStatusSource for Active {
        fn fetch_status(&self) -> StatusFuture<'_> {
            Box::pin(async {
                Ok(ReplicationStatus {
                    region: "us-east-1".into(),
                    tables: vec![TableReplication {
                        table_name: "Orders".into(),
                        replicas: vec![ReplicaState {
                            region_name: "eu-west-1".into(),
                            replica_status: "ACTIVE".into(),
                            reachable: true,
                            lag_seconds: 0.0,
                            pending_changes: 0,
                            last_error: None,
                        }],
                    }],
                })
            })
        }
    }

    fn list(kind: &str, items: Vec<Value>) -> Value {
        json!({"apiVersion": "partita.dev/v1alpha1", "kind": format!("{kind}List"), "metadata": {"resourceVersion": "1"}, "items": items})
    }

    /// One render with one GlobalTable: list GlobalTables, list Tables, get
    /// the credentials Secret, apply the replication Secret, the Configured
    /// Event, apply the status. Nothing else.
    #[tokio::test]
    async fn one_render_makes_exactly_these_calls() {
        let (client, mut handle) = mock_client();
        let ctx = Context::new(client, OperatorConfig::default(), Metrics::new().unwrap());
        let task = tokio::spawn(async move {
            let target = GatewayTarget {
                namespace: "partita-system".into(),
                name: "partita-gateway".into(),
            };
            reconcile_global_tables(&ctx, &target, &Active)
                .await
                .map(|r| r.requeue)
        });

        let gt = json!({
            "apiVersion": "partita.dev/v1alpha1", "kind": "GlobalTable",
            "metadata": {"name": "orders", "namespace": "shop", "uid": "gt-1", "generation": 2},
            "spec": {"tableRef": {"name": "orders"}, "replicas": [
                {"regionName": "eu-west-1", "endpoint": "https://eu.example", "credentialsSecretRef": {"name": "eu-creds"}}
            ]},
        });
        let mut table: Value = serde_yaml::from_str(ORDERS).unwrap();
        table["spec"]["tableName"] = json!("Orders");
        expect_call(
            &mut handle,
            http::Method::GET,
            "/apis/partita.dev/v1alpha1/globaltables?",
            list("GlobalTable", vec![gt.clone()]),
        )
        .await;
        expect_call(
            &mut handle,
            http::Method::GET,
            "/apis/partita.dev/v1alpha1/tables?",
            list("Table", vec![table]),
        )
        .await;
        expect_call(
            &mut handle,
            http::Method::GET,
            "/api/v1/namespaces/shop/secrets/eu-creds",
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "eu-creds", "namespace": "shop"},
                   // base64 of AKIAEU0001 / eu-secret
                   "data": {"accessKeyId": "QUtJQUVVMDAwMQ==", "secretAccessKey": "ZXUtc2VjcmV0"}}),
        )
        .await;
        let secret = expect_call(
            &mut handle,
            http::Method::PATCH,
            "/api/v1/namespaces/partita-system/secrets/partita-gateway-replication?&force=true&fieldManager=partita-operator",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "partita-gateway-replication", "namespace": "partita-system"}}),
        )
        .await;
        let mut file = ReplicationFile::new();
        file.peers.push(partita_topology::replication::PeerRegion {
            region: "eu-west-1".into(),
            endpoint: "https://eu.example".into(),
            credentials: partita_topology::replication::Credentials {
                access_key_id: "AKIAEU0001".into(),
                secret_access_key: "eu-secret".into(),
            },
        });
        file.tables
            .insert("Orders".into(), vec!["eu-west-1".into()]);
        let encoded =
            serde_json::to_value(k8s_openapi::ByteString(file.to_json().into_bytes())).unwrap();
        assert_eq!(
            secret,
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": "partita-gateway-replication",
                    "namespace": "partita-system",
                    "labels": {
                        "app.kubernetes.io/component": "gateway",
                        "app.kubernetes.io/managed-by": "partita-operator",
                        "app.kubernetes.io/name": "partita",
                    },
                },
                "type": "Opaque",
                "data": {"replication.json": encoded},
            })
        );
        let event = expect_call(
            &mut handle,
            http::Method::POST,
            "/apis/events.k8s.io/v1/namespaces/shop/events?",
            json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}, "eventTime": "2026-01-01T00:00:00.000000Z"}),
        )
        .await;
        assert_eq!(event["reason"], "Configured");
        assert_eq!(event["type"], "Normal");
        assert_eq!(event["regarding"]["name"], "orders");
        let status = expect_call(
            &mut handle,
            http::Method::PATCH,
            "/apis/partita.dev/v1alpha1/namespaces/shop/globaltables/orders/status?&force=true&fieldManager=partita-operator",
            gt,
        )
        .await;
        assert_eq!(status["apiVersion"], "partita.dev/v1alpha1");
        assert_eq!(status["kind"], "GlobalTable");
        assert_eq!(status.as_object().unwrap().len(), 3, "{status}");
        let s = &status["status"];
        assert_eq!(s["globalTableStatus"], "ACTIVE");
        assert_eq!(s["tableName"], "Orders");
        assert_eq!(s["observedGeneration"], 2);
        assert_eq!(
            s["replicas"],
            json!([{"regionName": "eu-west-1", "replicaStatus": "ACTIVE", "reachable": true, "lagSeconds": 0.0, "pendingChanges": 0}])
        );
        let types: Vec<(&str, &str, &str)> = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["type"].as_str().unwrap(),
                    c["status"].as_str().unwrap(),
                    c["reason"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            types,
            [
                ("Ready", "True", "Replicating"),
                ("Degraded", "False", "AsExpected")
            ]
        );

        let requeue = task.await.unwrap().unwrap();
        assert_eq!(requeue, std::time::Duration::from_secs(60));
        // No further call: the client is gone with the task.
        assert!(handle.next_request().await.is_none());
    }
}

mod rpc_certificate {
    use super::*;
    use partita_operator::controller::rpc_tls::ensure_secret;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

    fn write_ca(dir: &std::path::Path) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "ca");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join("tls.crt"), cert.pem()).unwrap();
        std::fs::write(dir.join("tls.key"), key.serialize_pem()).unwrap();
    }

    /// A missing Secret: one GET (404), the LIST of the other certificate
    /// Secrets, one server-side apply of the issued Secret. An up-to-date
    /// Secret: the GET only — nothing is listed or rewritten.
    #[tokio::test]
    async fn issuing_is_a_get_a_list_and_one_apply_and_keeping_is_one_get() {
        let dir = tempfile::tempdir().unwrap();
        write_ca(dir.path());
        let names = vec!["*.orders-nodes.shop.svc".to_string()];

        let (client, mut handle) = mock_client();
        let (d, n) = (dir.path().to_path_buf(), names.clone());
        let task = tokio::spawn(async move {
            ensure_secret(
                &client,
                &d,
                "orders-rpc-tls",
                "shop",
                "orders",
                &n,
                Default::default(),
                None,
            )
            .await
            .map(|e| e.issued)
        });
        let (request, send) = handle.next_request().await.expect("a request");
        assert_eq!(request.method(), http::Method::GET);
        assert_eq!(
            request.uri().path_and_query().unwrap().as_str(),
            "/api/v1/namespaces/shop/secrets/orders-rpc-tls"
        );
        send.send_response(
            Response::builder()
                .status(404)
                .body(Body::from(
                    serde_json::to_vec(&json!({"kind": "Status", "apiVersion": "v1",
                        "status": "Failure", "reason": "NotFound", "code": 404,
                        "message": "secrets \"orders-rpc-tls\" not found"}))
                    .unwrap(),
                ))
                .unwrap(),
        );
        // The other certificate Secrets: the CAs a new one must trust.
        expect_call(
            &mut handle,
            http::Method::GET,
            "/api/v1/secrets?&labelSelector=app.kubernetes.io%2Fmanaged-by%3Dpartita-operator",
            json!({"kind": "SecretList", "apiVersion": "v1", "metadata": {}, "items": []}),
        )
        .await;
        let applied = expect_patch(
            &mut handle,
            "/api/v1/namespaces/shop/secrets/orders-rpc-tls?&force=true&fieldManager=partita-operator",
            "application/apply-patch+yaml",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "orders-rpc-tls", "namespace": "shop"}}),
        )
        .await;
        assert_eq!(task.await.unwrap().unwrap(), Some("Missing"));
        assert!(handle.next_request().await.is_none());
        assert_eq!(applied["type"], "kubernetes.io/tls");
        let mut keys: Vec<&String> = applied["data"].as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["ca.crt", "tls.crt", "tls.key"]);

        // The same Secret read back: no write.
        let (client, mut handle) = mock_client();
        let (d, n) = (dir.path().to_path_buf(), names.clone());
        let task = tokio::spawn(async move {
            ensure_secret(
                &client,
                &d,
                "orders-rpc-tls",
                "shop",
                "orders",
                &n,
                Default::default(),
                None,
            )
            .await
            .map(|e| e.issued)
        });
        expect_call(
            &mut handle,
            http::Method::GET,
            "/api/v1/namespaces/shop/secrets/orders-rpc-tls",
            applied,
        )
        .await;
        assert_eq!(task.await.unwrap().unwrap(), None);
        assert!(handle.next_request().await.is_none());
    }
}
