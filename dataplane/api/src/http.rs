//! The HTTP endpoint: one generic server that owns request ids, size limits,
//! headers, tracing and error rendering for every operation.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request as HttpRequest, Response, StatusCode};
use hyper_util::rt::TokioIo;
use partita_model::limits::MAX_REQUEST_BYTES;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::auth::sigv4::HttpParts;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorKind};
use crate::Api;

const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.0";
const DYNAMODB_PREFIX: &str = "DynamoDB_20120810.";
const STREAMS_PREFIX: &str = "DynamoDBStreams_20120810.";

/// Serves the API over plain HTTP on `listener` until `shutdown` completes,
/// then stops accepting and lets in-flight requests finish.
pub async fn serve<F>(api: Arc<Api>, listener: TcpListener, shutdown: F) -> std::io::Result<()>
where
    F: Future<Output = ()>,
{
    serve_with(api, listener, None, shutdown).await
}

/// Serves the API over HTTPS (TLS with `tls`) on `listener`, like [`serve`].
pub async fn serve_tls<F>(
    api: Arc<Api>,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()>,
{
    serve_with(
        api,
        listener,
        Some(tokio_rustls::TlsAcceptor::from(tls)),
        shutdown,
    )
    .await
}

/// Builds a TLS server configuration from PEM files: a certificate chain
/// and its private key (PKCS#8, PKCS#1 or SEC1). rustls's default cipher
/// suites and protocol versions (TLS 1.3 and 1.2, AEAD suites with forward
/// secrecy only) on the ring provider; ALPN http/1.1.
pub fn tls_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<rustls::ServerConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("reading the certificate PEM: {e}"))?;
    if certs.is_empty() {
        return Err("the certificate file holds no CERTIFICATE block".to_string());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| format!("reading the private key PEM: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

async fn serve_with<F>(
    api: Arc<Api>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()>,
{
    let ids = Arc::new(RequestIds::new());
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let api = api.clone();
                let ids = ids.clone();
                let tls = tls.clone();
                connections.spawn(async move {
                    match tls {
                        None => serve_connection(api, ids, stream, false).await,
                        Some(acceptor) => {
                            let handshake = tokio::time::timeout(
                                std::time::Duration::from_secs(10),
                                acceptor.accept(stream),
                            );
                            match handshake.await {
                                Ok(Ok(tls_stream)) => serve_connection(api, ids, tls_stream, true).await,
                                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                                Err(_) => tracing::debug!("TLS handshake timed out"),
                            }
                        }
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Let in-flight requests finish, but don't wait forever on idle keep-alive
    // connections.
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(std::time::Duration::from_secs(5), drain)
        .await
        .is_err()
    {
        connections.abort_all();
    }
    Ok(())
}

async fn serve_connection<IO>(api: Arc<Api>, ids: Arc<RequestIds>, io: IO, secure: bool)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let api = api.clone();
        let ids = ids.clone();
        async move { Ok::<_, Infallible>(handle(&api, &ids, req, secure).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service);
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

async fn handle(
    api: &Api,
    ids: &RequestIds,
    req: HttpRequest<Incoming>,
    secure: bool,
) -> Response<Full<Bytes>> {
    let request_id = ids.next();
    // Every log line of the request carries its id (and operation).
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        operation = tracing::field::Empty
    );
    let result = tracing::Instrument::instrument(route(api, req, secure), span.clone()).await;
    let _in_request = span.enter();
    let (status, body) = match result {
        Ok(body) => (StatusCode::OK, body),
        Err(err) => {
            api.metrics.record_error(err.kind);
            if err.kind == ErrorKind::InternalServerError {
                tracing::error!(request_id = %request_id, message = %err.message, "internal error");
            } else {
                tracing::debug!(request_id = %request_id, error = err.kind.short_name(), "request failed");
            }
            let status = StatusCode::from_u16(err.kind.status()).unwrap_or(StatusCode::BAD_REQUEST);
            (
                status,
                serde_json::to_vec(&err.to_body()).unwrap_or_default(),
            )
        }
    };
    let crc = crc32fast::hash(&body);
    let len = body.len();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert("x-amz-crc32", HeaderValue::from(crc));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("x-amzn-requestid", v);
    }
    response
}

async fn route(api: &Api, req: HttpRequest<Incoming>, secure: bool) -> Result<Vec<u8>, ApiError> {
    if req.method() == Method::GET && req.uri().path() == "/" {
        return Ok(format!("healthy: dynamodb.{}.amazonaws.com ", api.config.region).into_bytes());
    }
    if req.method() != Method::POST {
        return Err(ApiError::new(
            ErrorKind::UnknownOperation,
            "Only POST is supported",
        ));
    }
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(len) = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
    {
        if len
            .parse::<usize>()
            .map(|n| n > MAX_REQUEST_BYTES)
            .unwrap_or(false)
        {
            return Err(too_large());
        }
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_REQUEST_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return Err(too_large());
            }
            return Err(ApiError::serialization("Failed to read the request body"));
        }
    };
    // Replication calls from other regions authenticate on their own.
    if let Some(op) = target
        .as_deref()
        .and_then(|t| t.strip_prefix(crate::replication::TARGET_PREFIX))
    {
        return crate::replication::endpoint::handle(api, &parts, &body, op).await;
    }
    let caller = authenticate(api, &parts, &body, secure)?;
    // DynamoDB and DynamoDB Streams share the endpoint; the target's
    // prefix names the service.
    let target = target.as_deref().unwrap_or_default();
    let (streams, op) = match target.strip_prefix(DYNAMODB_PREFIX) {
        Some(op) => (false, op),
        None => (
            true,
            target.strip_prefix(STREAMS_PREFIX).unwrap_or_default(),
        ),
    };
    tracing::Span::current().record("operation", op);
    if op.is_empty() {
        return Err(ApiError::new(
            ErrorKind::UnknownOperation,
            "The requested operation is not supported or the X-Amz-Target header is missing",
        ));
    }
    let value = if streams {
        api.call_streams_as(&caller, op, &body).await?
    } else {
        api.call_as(&caller, op, &body).await?
    };
    serde_json::to_vec(&value).map_err(|_| ApiError::internal())
}

/// Verifies the request's signature (nothing in open mode).
fn authenticate(
    api: &Api,
    parts: &hyper::http::request::Parts,
    body: &[u8],
    secure: bool,
) -> Result<Caller, ApiError> {
    let http = HttpParts {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect(),
    };
    let principal = api.auth.authenticate(&http, body, &api.config.region)?;
    Ok(Caller { principal, secure })
}

fn too_large() -> ApiError {
    ApiError::new(
        ErrorKind::RequestEntityTooLarge,
        format!("Request must be smaller than {MAX_REQUEST_BYTES} bytes for the operation"),
    )
}

/// Generates unique 52-character request ids, like DynamoDB's.
struct RequestIds {
    seed: u64,
    counter: AtomicU64,
}

impl RequestIds {
    fn new() -> RequestIds {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        RequestIds {
            seed: nanos ^ (u64::from(std::process::id()) << 32),
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self) -> String {
        const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut state = self
            .seed
            .wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut out = String::with_capacity(52);
        while out.len() < 52 {
            state = splitmix(state);
            let mut bits = state;
            for _ in 0..12 {
                if out.len() == 52 {
                    break;
                }
                out.push(ALPHABET[(bits & 31) as usize] as char);
                bits >>= 5;
            }
        }
        out
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_unique_and_shaped() {
        let ids = RequestIds::new();
        let a = ids.next();
        let b = ids.next();
        assert_eq!(a.len(), 52);
        assert_ne!(a, b);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
    }
}
