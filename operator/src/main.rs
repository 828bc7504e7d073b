//! `partita-operator`: runs the Table, gateway-config and GlobalTable
//! controllers under a Lease, and serves `/metrics`, `/healthz`, `/readyz`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use kube::Client;

use partita_operator::config::OperatorConfig;
use partita_operator::controller::{access_policy, Context};
use partita_operator::leader::{self, LeaseConfig};
use partita_operator::metrics::{self, Metrics};
use partita_operator::run::Controllers;

#[derive(Parser, Debug)]
#[command(
    name = "partita-operator",
    about = "Reconciles Partita Table, GlobalTable and AccessPolicy resources"
)]
struct Args {
    /// Data-plane image run by data pods.
    #[arg(long, env = "PARTITA_IMAGE")]
    image: String,
    #[arg(
        long,
        env = "PARTITA_IMAGE_PULL_POLICY",
        default_value = "IfNotPresent"
    )]
    image_pull_policy: String,
    /// Zones used when a Table names none, comma-separated.
    #[arg(
        long,
        env = "PARTITA_DEFAULT_ZONES",
        value_delimiter = ',',
        default_value = "zone-a,zone-b,zone-c"
    )]
    default_zones: Vec<String>,
    #[arg(
        long,
        env = "PARTITA_ZONE_LABEL",
        default_value = "topology.kubernetes.io/zone"
    )]
    zone_label: String,
    #[arg(long, env = "PARTITA_DEFAULT_STORAGE_SIZE", default_value = "10Gi")]
    default_storage_size: String,
    #[arg(long, env = "PARTITA_REGION", default_value = "us-east-1")]
    region: String,
    #[arg(long, env = "PARTITA_ACCOUNT_ID", default_value = "123456789012")]
    account_id: String,
    /// Gateway URL reported in Table status.
    #[arg(long, env = "PARTITA_GATEWAY_ENDPOINT")]
    gateway_endpoint: String,
    /// The gateway's admin port (`http://host:port`), where the operator
    /// reads `GET /replication` for GlobalTable status.
    #[arg(long, env = "PARTITA_GATEWAY_ADMIN_ENDPOINT")]
    gateway_admin_endpoint: Option<String>,
    /// Namespace of the gateway (where its topology ConfigMap and auth Secret live).
    #[arg(long, env = "PARTITA_GATEWAY_NAMESPACE")]
    gateway_namespace: String,
    /// Name prefix of the gateway's ConfigMap/Secrets (`<prefix>-topology`,
    /// `<prefix>-auth`, `<prefix>-replication`).
    #[arg(long, env = "PARTITA_GATEWAY_NAME", default_value = "partita-gateway")]
    gateway_name: String,
    #[arg(long, env = "PARTITA_LOG_FORMAT", default_value = "json")]
    log_format: String,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "PARTITA_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    #[arg(long, env = "PARTITA_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    #[arg(long, env = "PARTITA_LEASE_NAME", default_value = "partita-operator")]
    lease_name: String,
    /// Directory with the internal RPC's CA (`tls.crt`, `tls.key`): with it,
    /// the operator issues certificate Secrets for every Table and the
    /// gateway and renders the `--rpc-tls-*` flags (mutual TLS); without,
    /// the internal RPC is plaintext.
    #[arg(long, env = "PARTITA_RPC_TLS_CA_DIR")]
    rpc_tls_ca_dir: Option<std::path::PathBuf>,
    /// Identity in the Lease (the pod name).
    #[arg(long, env = "POD_NAME", default_value = "partita-operator")]
    identity: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if args.log_format == "json" {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }

    let metrics = Metrics::new().context("registering metrics")?;
    let server = tokio::spawn(metrics::serve(args.metrics_addr, metrics.clone()));
    let client = Client::try_default()
        .await
        .context("connecting to Kubernetes")?;

    let lease = LeaseConfig {
        name: args.lease_name.clone(),
        namespace: args.gateway_namespace.clone(),
        identity: args.identity.clone(),
        duration: Duration::from_secs(15),
        renew: Duration::from_secs(5),
    };
    if args.leader_election {
        tracing::info!(identity = %lease.identity, "waiting for leadership");
        leader::acquire(&client, &lease).await;
        tracing::info!("leading");
    }

    let config = OperatorConfig {
        image: args.image,
        image_pull_policy: args.image_pull_policy,
        default_zones: args.default_zones,
        zone_label: args.zone_label,
        default_storage_size: args.default_storage_size,
        region: args.region,
        account_id: args.account_id,
        gateway_endpoint: args.gateway_endpoint,
        log_format: args.log_format,
        extra_labels: Default::default(),
        rpc_ca_dir: args.rpc_tls_ca_dir.clone(),
    };
    let ctx = Context::new(client.clone(), config, metrics);
    let controllers = partita_operator::run::run(
        ctx,
        Controllers {
            gateway: access_policy::GatewayTarget {
                namespace: args.gateway_namespace,
                name: args.gateway_name,
            },
            rpc_tls_ca_dir: args.rpc_tls_ca_dir,
            gateway_admin_endpoint: args.gateway_admin_endpoint,
            data_plane: None,
        },
    );

    let hold = async {
        if args.leader_election {
            leader::hold(client.clone(), lease).await;
            tracing::error!("lost leadership; exiting");
        } else {
            futures::future::pending::<()>().await;
        }
    };
    tokio::select! {
        stopped = controllers => tracing::info!("{stopped} stopped"),
        _ = hold => anyhow::bail!("lost the leader lease"),
        r = server => anyhow::bail!("metrics server stopped: {r:?}"),
    }
    Ok(())
}
