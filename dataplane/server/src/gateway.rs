//! `partita gateway`: the stateless DynamoDB endpoint of a cluster. The
//! same API code as `partita serve` (validation, SigV4, policies, error
//! mapping) over `partita_cluster::Router` instead of a local store. The
//! topology file is re-read every 5 s and whenever a node reports a newer
//! epoch; a missing file is an empty topology (no tables yet). Calls to nodes speak mutual TLS with the `--rpc-tls-*` flags.
//! `--tls-cert`/`--tls-key` add an HTTPS listener on `--tls-port`, as for
//! `partita serve`. `--replication` makes it a region of global tables
//! (see `partita_api::replication`; the router is its `ReplicaStore`), with
//! `/replication` on the admin port.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use partita_api::admin::{AdminHooks, AdminState};
use partita_api::{Api, ApiConfig};
use partita_cluster::{Router, RouterOptions};
use partita_topology::flags::{DEFAULT_ADMIN_PORT, DEFAULT_PORT};
use partita_topology::TopologyFile;
use tokio::net::TcpListener;

use crate::cluster_admin;
use crate::rpc_tls::{client_config, RpcTlsArgs};
use crate::serve::{init_logging, load_auth, shutdown_signal, LogFormat};

/// Flags of `partita gateway`.
#[derive(Args, Debug)]
pub struct GatewayArgs {
    /// The topology file.
    #[arg(long, env = "PARTITA_TOPOLOGY_FILE")]
    pub topology_file: PathBuf,
    /// Credentials and IAM policies; without it any credentials are accepted.
    #[arg(long, env = "PARTITA_AUTH")]
    pub auth: Option<PathBuf>,
    #[arg(long, env = "PARTITA_HOST", default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, env = "PARTITA_PORT", default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Admin port on --host: GET /metrics (request series), /healthz,
    /// /readyz (ready once listening, with or without tables: an empty
    /// topology is an account without tables); 0 disables it.
    #[arg(long, env = "PARTITA_ADMIN_PORT", default_value_t = DEFAULT_ADMIN_PORT)]
    pub admin_port: u16,
    #[arg(long, env = "PARTITA_REGION", default_value = "us-east-1")]
    pub region: String,
    #[arg(long, env = "PARTITA_ACCOUNT_ID", default_value = "123456789012")]
    pub account_id: String,
    #[arg(long, env = "PARTITA_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Serve eventually consistent GetItems from any replica (may be stale,
    /// as in DynamoDB); without it every read goes to the partition leader.
    #[arg(long, env = "PARTITA_FOLLOWER_READS")]
    pub follower_reads: bool,
    #[command(flatten)]
    pub rpc_tls: RpcTlsArgs,
    /// PEM certificate chain for the HTTPS listener (with --tls-key), as
    /// `partita serve`.
    #[arg(long, env = "PARTITA_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for the HTTPS listener (with --tls-cert).
    #[arg(long, env = "PARTITA_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Port of the HTTPS listener.
    #[arg(long, env = "PARTITA_TLS_PORT", default_value_t = 8443)]
    pub tls_port: u16,
    /// The replication file of global tables (rendered by the operator from
    /// GlobalTable resources; may not exist yet), as for `partita serve`:
    /// peer regions, inbound credentials, declared replica sets. Reloaded
    /// when it changes.
    #[arg(long, env = "PARTITA_REPLICATION")]
    pub replication: Option<PathBuf>,
    /// TESTS ONLY: shifts the clock this gateway stamps on commands (item
    /// versions of global tables, change-log times) by this many
    /// milliseconds (a region with a skewed clock).
    #[arg(long, hide = true, default_value_t = 0, allow_hyphen_values = true)]
    pub replication_clock_offset_ms: i64,
    /// TESTS ONLY: pause before each page of a global-table full copy.
    #[arg(long, hide = true, default_value_t = 0)]
    pub replication_copy_delay_ms: u64,
}

/// Loads the replication file a gateway was given: a missing file is an
/// empty one (the chart mounts the operator's Secret as optional; the
/// reloader picks it up once it exists), an invalid one is refused like
/// `partita serve` refuses it.
fn load_replication_file(
    path: &std::path::Path,
    region: &str,
) -> anyhow::Result<partita_topology::replication::ReplicationFile> {
    if !path.exists() {
        tracing::info!(path = %path.display(), "no replication file yet: no global tables until it appears");
        return Ok(partita_topology::replication::ReplicationFile {
            format_version: partita_topology::replication::FORMAT_VERSION,
            peers: Vec::new(),
            inbound: Vec::new(),
            tables: Default::default(),
        });
    }
    let file = partita_api::replication::load_file(path, region)
        .map_err(|e| anyhow::anyhow!("replication file refused: {e}"))?;
    tracing::info!(path = %path.display(), peers = file.peers.len(), tables = file.tables.len(), region = %region, "replication file loaded: global tables enabled");
    Ok(file)
}

/// Loads the topology file a gateway was given: a missing file is an
/// empty topology (the operator renders it once it runs, and the file
/// appears in the pod later still; the reloader picks it up, and until then
/// every table is unknown, as in an account without tables), an invalid one
/// is refused.
fn load_topology_file(path: &std::path::Path) -> anyhow::Result<TopologyFile> {
    match std::fs::read(path) {
        Ok(bytes) => TopologyFile::parse(&bytes)
            .map_err(|e| anyhow::anyhow!("topology {}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(path = %path.display(), "no topology file yet: no tables until it appears");
            Ok(TopologyFile::new(Vec::new()))
        }
        Err(e) => Err(anyhow::anyhow!("reading {}: {e}", path.display())),
    }
}

pub fn run(args: GatewayArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(gateway(args))
}

async fn gateway(args: GatewayArgs) -> anyhow::Result<()> {
    let auth = load_auth(args.auth.as_deref())?;
    let replication_file = match &args.replication {
        Some(path) => Some(load_replication_file(path, &args.region)?),
        None => None,
    };
    let tls = args.rpc_tls.load()?;
    let https = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(load_https(cert, key)?),
        _ => None,
    };
    let topology = load_topology_file(&args.topology_file)?;
    let router = Arc::new(
        Router::new(
            topology,
            RouterOptions {
                follower_reads: args.follower_reads,
                tls: client_config(&tls),
                clock_offset_ms: args.replication_clock_offset_ms,
                ..RouterOptions::default()
            },
        )
        .with_topology_file(args.topology_file.clone()),
    );

    let reloader = {
        let router = router.clone();
        partita_supervise::spawn_task(
            "topology_reload",
            "",
            partita_supervise::OnFailure::Restart,
            move |task| {
                let router = router.clone();
                async move {
                    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
                    loop {
                        tick.tick().await;
                        partita_supervise::failpoint("topology_reload");
                        let router = router.clone();
                        match tokio::task::spawn_blocking(move || router.reload()).await {
                            Ok(_) => task.progressed(),
                            Err(e) => task.failed(&format_args!("reloading the topology: {e}")),
                        }
                    }
                }
            },
        )
    };
    let mut api = Api::with_backend(
        router.clone(),
        ApiConfig {
            region: args.region.clone(),
            account_id: args.account_id.clone(),
        },
    )
    .with_auth(auth.clone());
    // Global tables: the replicators tail the groups' change logs through
    // the router; changes from other regions go through the groups' logs.
    let mut replication_tasks = Vec::new();
    if let (Some(file), Some(path)) = (replication_file, &args.replication) {
        let replication = partita_api::replication::Replication::with_copy_delay(
            router.clone(),
            args.region.clone(),
            file,
            std::time::Duration::from_millis(args.replication_copy_delay_ms),
        );
        api = api.with_replication(replication.clone());
        replication_tasks.push(replication.start());
        replication_tasks.push(partita_api::replication::spawn_reloader(
            path.clone(),
            replication,
        ));
    }
    let api = Arc::new(api);
    let auth_reloader = args
        .auth
        .clone()
        .map(|path| partita_api::auth::config::spawn_reloader(path, auth.clone()));
    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .with_context(|| format!("invalid listen address {}:{}", args.host, args.port))?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(address = %addr, "partita gateway listening");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let admin = cluster_admin::spawn(
        &args.host,
        args.admin_port,
        AdminState {
            api: api.clone(),
            store: None,
            data_dir: None,
        },
        AdminHooks {
            extra_metrics: None,
            ready: Some(Arc::new(|| true)),
        },
        stopped(stop_rx.clone()),
    )
    .await;
    let https = match https {
        Some(config) => {
            let tls_addr: SocketAddr = format!("{}:{}", args.host, args.tls_port)
                .parse()
                .with_context(|| {
                    format!("invalid listen address {}:{}", args.host, args.tls_port)
                })?;
            let tls_listener = TcpListener::bind(tls_addr)
                .await
                .with_context(|| format!("binding {tls_addr}"))?;
            tracing::info!(address = %tls_addr, "partita gateway listening (HTTPS)");
            Some(tokio::spawn(partita_api::http::serve_tls(
                api.clone(),
                tls_listener,
                Arc::new(config),
                stopped(stop_rx.clone()),
            )))
        }
        None => None,
    };
    let http = tokio::spawn(partita_api::http::serve(api, listener, stopped(stop_rx)));
    shutdown_signal().await;
    let _ = stop_tx.send(true);
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    reloader.abort();
    for task in replication_tasks {
        task.abort();
    }
    if let Some(r) = auth_reloader {
        r.abort();
    }
    http.await.context("HTTP listener task")??;
    if let Some(https) = https {
        https.await.context("HTTPS listener task")??;
    }
    Ok(())
}

/// Reads the HTTPS listener's certificate and key (refusing bad ones).
fn load_https(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<rustls::ServerConfig> {
    let cert_pem = std::fs::read(cert)
        .with_context(|| format!("reading TLS certificate {}", cert.display()))?;
    let key_pem =
        std::fs::read(key).with_context(|| format!("reading TLS key {}", key.display()))?;
    partita_api::http::tls_config(&cert_pem, &key_pem).map_err(|e| {
        anyhow::anyhow!(
            "TLS setup from {} and {}: {e}",
            cert.display(),
            key.display()
        )
    })
}
