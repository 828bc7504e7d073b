//! The operator's production controller wiring (`partita_operator::run`)
//! against the simulated API of `partita-kubesim`, whose watches deliver
//! changes: a Table created after the controllers started is reconciled
//! into its objects without any direct call, and a later edit of the
//! Table reaches them too.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use partita_kubesim::KubeSim;
use partita_operator::config::OperatorConfig;
use partita_operator::controller::access_policy::GatewayTarget;
use partita_operator::controller::Context;
use partita_operator::crd::access_policy::AccessPolicy;
use partita_operator::crd::global_table::GlobalTable;
use partita_operator::crd::table::Table;
use partita_operator::metrics::Metrics;
use partita_operator::run::{run, Controllers};
use serde_json::json;

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

async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what} did not happen in 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_controllers_reconcile_a_table_created_after_they_started() {
    let sim = KubeSim::new(
        kube_fake_client::ClientBuilder::new()
            .with_resource::<Table>()
            .with_status_subresource::<Table>()
            .with_resource::<GlobalTable>()
            .with_status_subresource::<GlobalTable>()
            .with_resource::<AccessPolicy>()
            .with_status_subresource::<StatefulSet>(),
    )
    .await
    .unwrap();
    let client = sim.client();
    let ctx = Context::new(
        client.clone(),
        OperatorConfig::default(),
        Metrics::new().unwrap(),
    );
    let controllers = tokio::spawn(run(
        ctx,
        Controllers {
            gateway: GatewayTarget {
                namespace: "partita-system".into(),
                name: "partita-gateway".into(),
            },
            rpc_tls_ca_dir: None,
            gateway_admin_endpoint: None,
        },
    ));
    // The gateway's topology is rendered at start, empty.
    let gateway_cms: Api<ConfigMap> = Api::namespaced(client.clone(), "partita-system");
    eventually("the gateway topology at start", || async {
        gateway_cms
            .get_opt("partita-gateway-topology")
            .await
            .unwrap()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let tables: Api<Table> = Api::namespaced(client.clone(), "shop");
    let table: Table = serde_yaml::from_str(ORDERS).unwrap();
    tables.create(&PostParams::default(), &table).await.unwrap();
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), "shop");
    let sets = eventually("the Table's StatefulSets", || async {
        let list = statefulsets.list(&ListParams::default()).await.unwrap();
        (list.items.len() == 3).then_some(list.items)
    })
    .await;
    let mut names: Vec<String> = sets
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["orders-zone-a", "orders-zone-b", "orders-zone-c"]);
    let status = eventually("the Table's status", || async {
        let t = tables.get("orders").await.unwrap();
        t.status.filter(|s| s.table_status.is_some())
    })
    .await;
    assert_eq!(status.table_status.as_deref(), Some("CREATING"));
    // The gateway's topology lists the table (the topology ConfigMap's watch
    // triggers the gateway-config controller).
    eventually("the table in the gateway topology", || async {
        let cm = gateway_cms.get("partita-gateway-topology").await.unwrap();
        cm.data
            .and_then(|d| d.get("topology.json").cloned())
            .filter(|t| t.contains("\"Orders\""))
    })
    .await;

    // An edit of the Table reaches its objects through the watch.
    tables
        .patch(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"placement": {"resources": {"requests": {"cpu": "250m"}}}}}),
            ),
        )
        .await
        .unwrap();
    eventually("the edit in the StatefulSets", || async {
        let list = statefulsets.list(&ListParams::default()).await.unwrap();
        list.items
            .iter()
            .all(|s| {
                s.spec
                    .as_ref()
                    .unwrap()
                    .template
                    .spec
                    .as_ref()
                    .unwrap()
                    .containers[0]
                    .resources
                    .as_ref()
                    .and_then(|r| r.requests.as_ref())
                    .is_some_and(|r| r.get("cpu").is_some_and(|q| q.0 == "250m"))
            })
            .then_some(())
    })
    .await;
    controllers.abort();
}
