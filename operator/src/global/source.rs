//! Where the replication status comes from: the gateway's admin port,
//! `GET /replication` ([`STATUS_PATH`]), behind a small trait so tests use
//! a fake.
//!
//! The chart's gateway Service exposes the admin port (8001, `metrics`), so
//! the operator asks `http://partita-gateway.<ns>.svc:8001/replication`
//! (`--gateway-admin-endpoint`). The Service picks one gateway pod; every
//! pod reads the same replication file, and the one that answers speaks for
//! the region.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use partita_topology::replication::{ReplicationStatus, STATUS_PATH};

/// Why the status document could not be read (its Display text goes into
/// condition messages).
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("no gateway admin endpoint is configured")]
    NotConfigured,
    #[error("gateway admin endpoint {0:?} is not an http://host:port URL")]
    BadEndpoint(String),
    #[error("connecting to {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    #[error("GET {url} timed out after {secs} s")]
    Timeout { url: String, secs: u64 },
    #[error("GET {url} answered HTTP {status}")]
    Http { url: String, status: u16 },
    #[error("GET {url}: {reason}")]
    Read { url: String, reason: String },
    #[error("GET {url}: the body is not a replication status document: {reason}")]
    Parse { url: String, reason: String },
}

/// A boxed future of one status read.
pub type StatusFuture<'a> =
    Pin<Box<dyn Future<Output = Result<ReplicationStatus, StatusError>> + Send + 'a>>;

/// Reads the region's replication status document.
pub trait ReplicationStatusSource: Send + Sync {
    /// Returns the document as the data plane serves it.
    fn fetch_status(&self) -> StatusFuture<'_>;
}

/// Reads `GET <endpoint>/replication` over plain HTTP/1.1.
#[derive(Debug, Clone)]
pub struct HttpStatusSource {
    /// `http://host:port` of the gateway's admin port; None when not configured.
    pub endpoint: Option<String>,
    pub timeout: Duration,
}

/// Largest status document read (a guard, not a limit anyone should reach).
const MAX_BODY: usize = 8 << 20;

impl HttpStatusSource {
    /// A source for `endpoint` with a 5 s timeout.
    pub fn new(endpoint: Option<String>) -> Self {
        HttpStatusSource {
            endpoint,
            timeout: Duration::from_secs(5),
        }
    }

    async fn fetch(&self) -> Result<ReplicationStatus, StatusError> {
        let endpoint = self.endpoint.as_deref().ok_or(StatusError::NotConfigured)?;
        let authority = endpoint
            .strip_prefix("http://")
            .map(|rest| rest.trim_end_matches('/'))
            .filter(|a| !a.is_empty() && !a.contains('/'))
            .ok_or_else(|| StatusError::BadEndpoint(endpoint.to_string()))?;
        let url = format!("http://{authority}{STATUS_PATH}");
        let work = async {
            let stream = tokio::net::TcpStream::connect(authority)
                .await
                .map_err(|e| StatusError::Connect {
                    endpoint: endpoint.to_string(),
                    reason: e.to_string(),
                })?;
            let io = hyper_util::rt::TokioIo::new(stream);
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(io)
                    .await
                    .map_err(|e| StatusError::Connect {
                        endpoint: endpoint.to_string(),
                        reason: e.to_string(),
                    })?;
            let driver = tokio::spawn(conn);
            let request = hyper::Request::get(STATUS_PATH)
                .header(hyper::header::HOST, authority)
                .header(hyper::header::ACCEPT, "application/json")
                .body(Empty::<Bytes>::new())
                .map_err(|e| StatusError::BadEndpoint(e.to_string()))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| StatusError::Read {
                    url: url.clone(),
                    reason: e.to_string(),
                })?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| StatusError::Read {
                    url: url.clone(),
                    reason: e.to_string(),
                })?
                .to_bytes();
            driver.abort();
            if status != 200 {
                return Err(StatusError::Http {
                    url: url.clone(),
                    status,
                });
            }
            serde_json::from_slice(&body).map_err(|e| StatusError::Parse {
                url: url.clone(),
                reason: e.to_string(),
            })
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(StatusError::Timeout {
                url,
                secs: self.timeout.as_secs(),
            }),
        }
    }
}

impl ReplicationStatusSource for HttpStatusSource {
    fn fetch_status(&self) -> StatusFuture<'_> {
        Box::pin(self.fetch())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Serves one canned HTTP response on a loopback port; returns the
    /// endpoint and a handle yielding the request head it received.
    async fn serve_once(response: String) -> (String, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = stream.read(&mut buf).await.unwrap();
            stream.write_all(response.as_bytes()).await.unwrap();
            stream.shutdown().await.ok();
            String::from_utf8_lossy(&buf[..n]).to_string()
        });
        (format!("http://{addr}"), task)
    }

    fn http(status: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    #[tokio::test]
    async fn reads_the_document_from_the_admin_port() {
        let body = r#"{"region":"us-east-1","tables":[{"tableName":"Orders","replicas":[{"regionName":"eu-west-1","replicaStatus":"ACTIVE","reachable":true,"lagSeconds":0.5,"pendingChanges":3}]}]}"#;
        let (endpoint, request) = serve_once(http("200 OK", body)).await;
        let doc = HttpStatusSource::new(Some(endpoint))
            .fetch_status()
            .await
            .unwrap();
        assert_eq!(doc.region, "us-east-1");
        assert_eq!(doc.tables[0].replicas[0].pending_changes, 3);
        assert!(request
            .await
            .unwrap()
            .starts_with("GET /replication HTTP/1.1\r\n"));
    }

    #[tokio::test]
    async fn errors_say_what_failed() {
        let (endpoint, _request) = serve_once(http("404 Not Found", "not found\n")).await;
        let err = HttpStatusSource::new(Some(endpoint.clone()))
            .fetch_status()
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("GET {endpoint}/replication answered HTTP 404")
        );
        let (endpoint, _request) = serve_once(http("200 OK", "[]")).await;
        let err = HttpStatusSource::new(Some(endpoint))
            .fetch_status()
            .await
            .unwrap_err();
        assert!(matches!(err, StatusError::Parse { .. }), "{err}");
        let err = HttpStatusSource::new(None)
            .fetch_status()
            .await
            .unwrap_err();
        assert!(matches!(err, StatusError::NotConfigured));
        let err = HttpStatusSource::new(Some("https://x:1".into()))
            .fetch_status()
            .await
            .unwrap_err();
        assert!(matches!(err, StatusError::BadEndpoint(_)));
    }
}
