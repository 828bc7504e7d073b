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
