//! `partita serve`: configuration, wiring and graceful shutdown of the
//! standalone server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};
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
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args))
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("PARTITA_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,lsm_tree=warn,fjall=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
    let store = Store::open(&args.data_dir, StoreOptions::default())
        .with_context(|| format!("opening data dir {}", args.data_dir.display()))?;
    let store = Arc::new(store);
    let api = Arc::new(Api::new(
        store.clone(),
        ApiConfig {
            region: args.region.clone(),
            ..ApiConfig::default()
        },
    ));
    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .with_context(|| format!("invalid listen address {}:{}", args.host, args.port))?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(address = %addr, data_dir = %args.data_dir.display(), "partita serve listening");
    partita_api::http::serve(api, listener, shutdown_signal()).await?;
    tracing::info!("shutting down");
    drop(store);
    Ok(())
}

async fn shutdown_signal() {
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
