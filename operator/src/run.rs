//! The operator's controllers, wired as in production: the Table
//! controller (owning StatefulSets, Services and ConfigMaps), the
//! gateway-config controller, the gateway certificate loop and the
//! GlobalTable controller. `partita-operator` runs them under its Lease;
//! tests run the same wiring in process against a simulated API.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::runtime::{watcher, Controller};
use kube::Api;

use crate::controller::{access_policy, global_table, rpc_tls, table, Context};
use crate::crd::Table;
use crate::definition::DataPlane;
use crate::global::source::HttpStatusSource;

/// What the controllers need besides the context.
#[derive(Clone, Debug)]
pub struct Controllers {
    /// Where the gateway's ConfigMap and Secrets live.
    pub gateway: access_policy::GatewayTarget,
    /// The internal RPC's CA directory (mutual TLS), if any.
    pub rpc_tls_ca_dir: Option<std::path::PathBuf>,
    /// The gateway's admin endpoint (`http://host:port`) for GlobalTable
    /// status.
    pub gateway_admin_endpoint: Option<String>,
    /// The gateway's DynamoDB endpoint for the operator's own calls that
    /// bring tables to their specs (None: the gateway Service's).
    pub data_plane: Option<crate::definition::DataPlane>,
}

/// Runs every controller until one stops; returns which.
pub async fn run(ctx: Arc<Context>, controllers: Controllers) -> &'static str {
    let data_plane = controllers.data_plane.clone().unwrap_or_else(|| {
        DataPlane::in_cluster(controllers.gateway.clone(), ctx.config.region.clone())
    });
    let _ = ctx.data_plane.set(data_plane);
    let client = ctx.client.clone();
    let tables = Controller::new(
        Api::<Table>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(
        Api::<StatefulSet>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(
        Api::<ConfigMap>::all(client.clone()),
        watcher::Config::default(),
    )
    .shutdown_on_signal()
    .run(table::reconcile, table::error_policy, ctx.clone())
    .for_each(|_| futures::future::ready(()));
    let target = controllers.gateway.clone();
    let gateway = access_policy::run(ctx.clone(), target.clone());
    let gateway_certificate = {
        let (ctx, target) = (ctx.clone(), target.clone());
        async move {
            match controllers.rpc_tls_ca_dir {
                Some(dir) => rpc_tls::run_gateway(ctx, target, dir).await,
                None => futures::future::pending::<()>().await,
            }
        }
    };
    let global_tables = global_table::run(
        ctx.clone(),
        target,
        Arc::new(HttpStatusSource::new(controllers.gateway_admin_endpoint)),
    );
    tokio::select! {
        _ = tables => "table controller",
        _ = gateway => "gateway config controller",
        _ = global_tables => "global table controller",
        _ = gateway_certificate => "gateway certificate loop",
    }
}
