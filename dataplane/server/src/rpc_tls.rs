//! The mutual-TLS flags of the internal RPC, shared by `partita node` and
//! `partita gateway` (names and environment variables from
//! `partita_topology::flags`; semantics in `partita_cluster::tls`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use partita_cluster::tls::RpcTls;
use partita_topology::flags::{RPC_TLS_CA_ENV, RPC_TLS_CERT_ENV, RPC_TLS_KEY_ENV};

/// `--rpc-tls-ca`, `--rpc-tls-cert`, `--rpc-tls-key`: all three or none
/// (plaintext).
#[derive(Args, Debug, Clone)]
pub struct RpcTlsArgs {
    /// PEM CA bundle peers must chain to (mutual TLS on the internal RPC;
    /// with --rpc-tls-cert and --rpc-tls-key).
    #[arg(long, env = RPC_TLS_CA_ENV, requires_all = ["rpc_tls_cert", "rpc_tls_key"])]
    pub rpc_tls_ca: Option<PathBuf>,
    /// PEM certificate chain this process presents on the internal RPC.
    #[arg(long, env = RPC_TLS_CERT_ENV, requires_all = ["rpc_tls_ca", "rpc_tls_key"])]
    pub rpc_tls_cert: Option<PathBuf>,
    /// PEM private key of --rpc-tls-cert.
    #[arg(long, env = RPC_TLS_KEY_ENV, requires_all = ["rpc_tls_ca", "rpc_tls_cert"])]
    pub rpc_tls_key: Option<PathBuf>,
}

impl RpcTlsArgs {
    /// Loads the TLS material, or `None` for plaintext. Bad material is an
    /// error: the process refuses to start rather than fall back.
    pub fn load(&self) -> anyhow::Result<Option<RpcTls>> {
        match (&self.rpc_tls_ca, &self.rpc_tls_cert, &self.rpc_tls_key) {
            (Some(ca), Some(cert), Some(key)) => {
                let tls = RpcTls::from_files(ca, cert, key).context("internal RPC TLS")?;
                tracing::info!(ca = %ca.display(), cert = %cert.display(), "internal RPC: mutual TLS");
                Ok(Some(tls))
            }
            _ => {
                tracing::info!("internal RPC: plaintext (no --rpc-tls-* flags)");
                Ok(None)
            }
        }
    }
}

/// The client side of `tls`, for routers and Raft peers.
pub fn client_config(tls: &Option<RpcTls>) -> Option<Arc<rustls::ClientConfig>> {
    tls.as_ref().map(|t| t.client.clone())
}
