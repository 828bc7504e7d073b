//! The admin listener (`--admin-port`: `/metrics`, `/healthz`, `/readyz`)
//! of `partita node` and `partita gateway`: the API's admin endpoints
//! (`partita_api::admin`) with the process's own series and readiness rule.
//! Port 0 disables the listener (dev-cluster and tests give every process
//! its own port or none); a port that cannot be bound is logged, not fatal,
//! as for `partita serve`.

use std::future::Future;

use partita_api::admin::{AdminHooks, AdminState};
use tokio::net::TcpListener;

/// Starts the admin listener on `host:port` unless `port` is 0.
pub(crate) async fn spawn(
    host: &str,
    port: u16,
    state: AdminState,
    hooks: AdminHooks,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Option<tokio::task::JoinHandle<std::io::Result<()>>> {
    if port == 0 {
        tracing::info!("admin listener disabled (--admin-port 0)");
        return None;
    }
    let addr = format!("{host}:{port}");
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
    Some(tokio::spawn(partita_api::admin::serve_with(
        state, hooks, listener, shutdown,
    )))
}
