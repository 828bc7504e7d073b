//! The admin listener (`--admin-port`): `GET /metrics` (Prometheus text
//! format), `GET /healthz` (the process answers) and `GET /readyz` (no
//! background task keeps failing — see `partita_supervise` — and the store
//! answers a catalog read). Separate from the API port so metrics
//! scrapes and probes never compete with, or need the credentials of, API
//! traffic.
//!
//! Processes other than `partita serve` (cluster nodes and gateways) add
//! their own series and readiness rule through [`AdminHooks`].

use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use partita_storage::Store;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::Api;

/// What the admin endpoints report on.
#[derive(Clone)]
pub struct AdminState {
    pub api: Arc<Api>,
    /// The local store, for engine and writer statistics (None behind a
    /// cluster gateway).
    pub store: Option<Arc<Store>>,
    /// The data directory, whose size is reported.
    pub data_dir: Option<PathBuf>,
}

/// Extra series and a readiness rule of a process (see the module docs).
#[derive(Clone, Default)]
pub struct AdminHooks {
    /// Renders further series (Prometheus text format) appended to
    /// `/metrics`; their names must not clash with the API's.
    pub extra_metrics: Option<Arc<dyn Fn() -> String + Send + Sync>>,
    /// Decides `/readyz` instead of the catalog read.
    pub ready: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
}

/// Serves the admin endpoints on `listener` until `shutdown` completes.
pub async fn serve<F>(state: AdminState, listener: TcpListener, shutdown: F) -> std::io::Result<()>
where
    F: Future<Output = ()>,
{
    serve_with(state, AdminHooks::default(), listener, shutdown).await
}

/// [`serve`] with a process's own series and readiness rule.
pub async fn serve_with<F>(
    state: AdminState,
    hooks: AdminHooks,
    listener: TcpListener,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()>,
{
    let state = Arc::new((state, hooks));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let state = state.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(&state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
    Ok(())
}

async fn handle(
    state: &Arc<(AdminState, AdminHooks)>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    match req.uri().path() {
        "/metrics" => {
            let state = state.clone();
            // Scrape-time reads touch the disk (data dir size): keep them
            // off the async workers.
            let body = tokio::task::spawn_blocking(move || {
                let (state, hooks) = &*state;
                state.api.metrics.refresh(
                    &state.api,
                    state.store.as_deref(),
                    state.data_dir.as_deref(),
                );
                let mut body = state.api.metrics.render();
                if let Some(extra) = &hooks.extra_metrics {
                    body.push_str(&extra());
                }
                if let Some(replication) = &state.api.replication {
                    body.push_str(&replication.render_metrics());
                }
                body.push_str(&partita_supervise::render_metrics());
                body
            })
            .await
            .unwrap_or_default();
            let mut response = text(StatusCode::OK, body);
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        partita_topology::replication::STATUS_PATH => {
            let (state, _) = &**state;
            match &state.api.replication {
                Some(replication) => {
                    let status = replication.status();
                    let mut response = text(
                        StatusCode::OK,
                        serde_json::to_string_pretty(&status).unwrap_or_default(),
                    );
                    response
                        .headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                    response
                }
                None => text(
                    StatusCode::NOT_FOUND,
                    "replication is not configured (--replication)\n".into(),
                ),
            }
        }
        "/readyz" => {
            // A background task that keeps failing makes the process not
            // ready, whatever else holds.
            let failing = partita_supervise::failing();
            if !failing.is_empty() {
                let mut body = String::from("not ready\n");
                for f in failing {
                    body.push_str(&f.to_string());
                    body.push('\n');
                }
                return text(StatusCode::SERVICE_UNAVAILABLE, body);
            }
            let state = state.clone();
            let ready = tokio::task::spawn_blocking(move || {
                let (state, hooks) = &*state;
                if let Some(ready) = &hooks.ready {
                    return ready();
                }
                // A catalog read through the same backend the API uses.
                let _ = state.api.store.list_tables();
                true
            })
            .await
            .unwrap_or(false);
            if ready {
                text(StatusCode::OK, "ready\n".into())
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n".into())
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
