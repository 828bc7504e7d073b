//! `partita serve`: configuration, wiring and graceful shutdown of the
//! standalone server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};
use partita_api::auth::config::spawn_reloader;
use partita_api::auth::{AuthConfig, Authenticator};
use partita_api::{Api, ApiConfig};
use partita_storage::{Store, StoreOptions};
use tokio::net::TcpListener;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Flags of `partita serve`; each also reads an environment variable.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "PARTITA_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on.
    #[arg(long, env = "PARTITA_PORT", default_value_t = 8000)]
    pub port: u16,
    /// Directory holding the data; created if missing.
    #[arg(long, env = "PARTITA_DATA_DIR", default_value = "./partita-data")]
    pub data_dir: PathBuf,
    /// Region named in ARNs.
    #[arg(long, env = "PARTITA_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Account id named in ARNs.
    #[arg(long, env = "PARTITA_ACCOUNT_ID", default_value = "123456789012")]
    pub account_id: String,
    /// Log output format.
    #[arg(long, env = "PARTITA_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Credentials and IAM policies (YAML or JSON); reloaded when it
    /// changes. Without it any credentials are accepted.
    #[arg(long, env = "PARTITA_AUTH")]
    pub auth: Option<PathBuf>,
    /// PEM certificate chain for the HTTPS listener (with --tls-key).
    #[arg(long, env = "PARTITA_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for the HTTPS listener (with --tls-cert).
    #[arg(long, env = "PARTITA_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Port of the HTTPS listener.
    #[arg(long, env = "PARTITA_TLS_PORT", default_value_t = 8443)]
    pub tls_port: u16,
    /// How often the TTL sweeper deletes expired items (e.g. 60s, 500ms, 5m).
    #[arg(long, env = "PARTITA_TTL_SWEEP_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub ttl_sweep_interval: std::time::Duration,
    /// Port of the admin listener (GET /metrics, /healthz, /readyz) on the
    /// same host. A port that cannot be bound is logged, not fatal.
    #[arg(long, env = "PARTITA_ADMIN_PORT", default_value_t = 8001)]
    pub admin_port: u16,
    /// Control-plane operations per second the server admits (10 s burst);
    /// beyond, ThrottlingException.
    #[arg(long, env = "PARTITA_CONTROL_PLANE_RATE", default_value_t = 100.0)]
    pub control_plane_rate: f64,
    /// TESTS ONLY: runs the capacity clock this many times faster, so a
    /// test sees seconds of provisioned throughput and burst credit in
    /// fractions of a second.
    #[arg(long, hide = true, default_value_t = 1.0)]
    pub capacity_clock_scale: f64,
    /// How long DynamoDB Streams records are kept (24h like DynamoDB; tests
    /// use seconds).
    #[arg(long, env = "PARTITA_STREAM_RETENTION", default_value = "24h", value_parser = parse_duration)]
    pub stream_retention: std::time::Duration,
    /// The replication file of global tables (peer regions, inbound
    /// credentials, declared replica sets; YAML or JSON); reloaded on
    /// change. Without it, ReplicaUpdates are refused.
    #[arg(long, env = "PARTITA_REPLICATION")]
    pub replication: Option<PathBuf>,
    /// TESTS ONLY: shifts the clock of global-table item versions by this
    /// many milliseconds (a region with a skewed clock).
    #[arg(long, hide = true, default_value_t = 0, allow_hyphen_values = true)]
    pub replication_clock_offset_ms: i64,
    /// TESTS ONLY: pause before each page of a global-table full copy.
    #[arg(long, hide = true, default_value_t = 0)]
    pub replication_copy_delay_ms: u64,
}

/// Parses a duration: a whole number with a unit (ms, s, m, h); a bare
/// number is seconds.
pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    use std::time::Duration;
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 500ms, 30s, 5m, 24h"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("invalid duration unit in {s:?}: use ms, s, m or h")),
    };
    if d.is_zero() {
        return Err(format!("duration {s:?} must be positive"));
    }
    Ok(d)
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args))
}

/// What is logged when neither `PARTITA_LOG` nor `RUST_LOG` says: Partita
/// at info, the Raft library and the storage engine at warn (their info
/// lines are internals nobody operating a cluster needs).
const DEFAULT_LOG_FILTER: &str = "info,openraft=warn,lsm_tree=warn,fjall=warn";

/// Starts logging to stderr; the filter comes from `PARTITA_LOG`, else
/// `RUST_LOG`, else [`DEFAULT_LOG_FILTER`].
pub(crate) fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("PARTITA_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Refuse a bad auth file or TLS material before touching the data.
    let auth = load_auth(args.auth.as_deref())?;
    let replication_file = match &args.replication {
        Some(path) => {
            let file = partita_api::replication::load_file(path, &args.region)
                .map_err(|e| anyhow::anyhow!("replication file refused: {e}"))?;
            tracing::info!(path = %path.display(), peers = file.peers.len(), tables = file.tables.len(), region = %args.region, "replication file loaded: global tables enabled");
            Some(file)
        }
        None => None,
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(load_tls(cert, key)?),
        _ => None,
    };
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
    let options = StoreOptions {
        ttl_sweep_interval: args.ttl_sweep_interval,
        stream_retention: args.stream_retention,
        ..StoreOptions::default()
    };
    let store = Store::open(&args.data_dir, options)
        .with_context(|| format!("opening data dir {}", args.data_dir.display()))?;
    let store = Arc::new(store);
    store.set_clock_offset_us(args.replication_clock_offset_ms.saturating_mul(1000));
    let replication = replication_file.map(|file| {
        partita_api::replication::Replication::with_copy_delay(
            store.clone(),
            args.region.clone(),
            file,
            std::time::Duration::from_millis(args.replication_copy_delay_ms),
        )
    });
    let mut api = Api::new(
        store.clone(),
        ApiConfig {
            region: args.region.clone(),
            account_id: args.account_id.clone(),
        },
    )
    .with_auth(auth.clone())
    .with_capacity(partita_api::capacity::CapacityConfig {
        clock_scale: args.capacity_clock_scale,
        control_plane_rate: args.control_plane_rate,
    });
    let mut replication_tasks = Vec::new();
    if let (Some(replication), Some(path)) = (&replication, &args.replication) {
        api = api.with_replication(replication.clone());
        replication_tasks.push(replication.start());
        replication_tasks.push(partita_api::replication::spawn_reloader(
            path.clone(),
            replication.clone(),
        ));
    }
    let api = Arc::new(api);
    let reloader = args
        .auth
        .clone()
        .map(|path| spawn_reloader(path, auth.clone()));
    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .with_context(|| format!("invalid listen address {}:{}", args.host, args.port))?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(address = %addr, data_dir = %args.data_dir.display(), "partita serve listening");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let https = match tls {
        Some(tls) => {
            let tls_addr: SocketAddr = format!("{}:{}", args.host, args.tls_port)
                .parse()
                .with_context(|| {
                    format!("invalid listen address {}:{}", args.host, args.tls_port)
                })?;
            let tls_listener = TcpListener::bind(tls_addr)
                .await
                .with_context(|| format!("binding {tls_addr}"))?;
            tracing::info!(address = %tls_addr, "partita serve listening (HTTPS)");
            Some(tokio::spawn(partita_api::http::serve_tls(
                api.clone(),
                tls_listener,
                Arc::new(tls),
                stopped(stop_rx.clone()),
            )))
        }
        None => None,
    };
    let admin = spawn_admin(&args, &api, &store, stopped(stop_rx.clone())).await;
    let http = tokio::spawn(partita_api::http::serve(api, listener, stopped(stop_rx)));
    shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    if let Some(r) = reloader {
        r.abort();
    }
    for task in replication_tasks {
        task.abort();
    }
    http.await.context("HTTP listener task")??;
    if let Some(https) = https {
        https.await.context("HTTPS listener task")??;
    }
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    drop(store);
    Ok(())
}

/// Starts the admin listener (metrics, health, readiness); a port that
/// cannot be bound is logged and the server runs without it.
async fn spawn_admin(
    args: &ServeArgs,
    api: &Arc<Api>,
    store: &Arc<Store>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Option<tokio::task::JoinHandle<std::io::Result<()>>> {
    let addr = format!("{}:{}", args.host, args.admin_port);
    let listener = match TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(address = %addr, error = %e, "admin listener (metrics, health) not started");
            return None;
        }
    };
    let bound = listener
        .local_addr()
        .map_or_else(|_| addr.clone(), |a| a.to_string());
    tracing::info!(address = %bound, "admin listener: /metrics /healthz /readyz");
    let state = partita_api::admin::AdminState {
        api: api.clone(),
        store: Some(store.clone()),
        data_dir: Some(args.data_dir.clone()),
    };
    Some(tokio::spawn(partita_api::admin::serve(
        state, listener, shutdown,
    )))
}

/// Loads the auth file (refusing a bad one), or warns that any credentials
/// will be accepted.
pub(crate) fn load_auth(path: Option<&std::path::Path>) -> anyhow::Result<Arc<Authenticator>> {
    let Some(path) = path else {
        tracing::warn!("no --auth file: any credentials are accepted and no policies are enforced");
        return Ok(Arc::new(Authenticator::open()));
    };
    let config = AuthConfig::load(path)
        .map_err(|e| anyhow::anyhow!("auth file {} refused: {e}", path.display()))?;
    let (users, keys, policies) = config.counts();
    tracing::info!(path = %path.display(), users, keys, policies, "auth file loaded: SigV4 and policies enforced");
    Ok(Arc::new(Authenticator::enforcing(config)))
}

fn load_tls(cert: &std::path::Path, key: &std::path::Path) -> anyhow::Result<rustls::ServerConfig> {
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

pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
