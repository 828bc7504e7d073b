//! Calls to a peer region's replication endpoint: HTTP/1.1 POSTs signed
//! with SigV4 (service `dynamodb`, the peer's region) using the peer's
//! credentials from the replication file, over one kept-alive connection.
//! `https://` endpoints use TLS (rustls, ring) and trust the PEM bundle
//! named by `SSL_CERT_FILE`, else the system bundle at the usual paths.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use partita_topology::replication::PeerRegion;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpStream;

use crate::auth::sigv4::{format_amz_date, HttpParts, Signer};

/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a call to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The peer could not be reached or did not answer in time.
    #[error("peer unreachable: {0}")]
    Unreachable(String),
    /// The peer answered with an error.
    #[error("peer refused {op}: {kind}: {message}")]
    Refused {
        op: String,
        kind: String,
        message: String,
    },
    #[error("peer endpoint {0:?} is not supported (use http://host:port or https://host:port)")]
    Endpoint(String),
    #[error("TLS to the peer: {0}")]
    Tls(String),
}

impl CallError {
    /// Returns the error type the peer named, if it answered.
    pub fn kind(&self) -> Option<&str> {
        match self {
            CallError::Refused { kind, .. } => Some(kind),
            _ => None,
        }
    }
}

/// A connection to one peer region.
#[derive(Default)]
pub struct PeerClient {
    /// (host:port, open connection).
    conn: Option<(String, SendRequest<Full<Bytes>>)>,
}

/// Where a peer endpoint points: `host:port`, the host name alone, and
/// whether it is TLS.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    authority: String,
    host: String,
    tls: bool,
}

fn target(endpoint: &str) -> Result<Target, CallError> {
    let (rest, tls, port) = if let Some(rest) = endpoint.strip_prefix("http://") {
        (rest, false, 80)
    } else if let Some(rest) = endpoint.strip_prefix("https://") {
        (rest, true, 443)
    } else {
        return Err(CallError::Endpoint(endpoint.to_string()));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(CallError::Endpoint(endpoint.to_string()));
    }
    let (host, authority) = match authority.rsplit_once(':') {
        Some((host, _)) if !authority.ends_with(']') => (host, authority.to_string()),
        _ => (authority, format!("{authority}:{port}")),
    };
    Ok(Target {
        authority,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        tls,
    })
}

#[cfg(test)]
fn authority(endpoint: &str) -> Result<String, CallError> {
    target(endpoint).map(|t| t.authority)
}

/// The TLS client configuration of peer calls, built once.
fn tls_config() -> Result<std::sync::Arc<rustls::ClientConfig>, CallError> {
    type Built = Result<std::sync::Arc<rustls::ClientConfig>, String>;
    static CONFIG: std::sync::OnceLock<Built> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            use rustls::pki_types::pem::PemObject;
            use rustls::pki_types::CertificateDer;
            let candidates = [
                std::env::var("SSL_CERT_FILE").unwrap_or_default(),
                "/etc/ssl/certs/ca-certificates.crt".to_string(),
                "/etc/pki/tls/certs/ca-bundle.crt".to_string(),
                "/etc/ssl/cert.pem".to_string(),
            ];
            let path = candidates
                .iter()
                .find(|p| !p.is_empty() && std::path::Path::new(p).exists())
                .ok_or("no CA bundle (set SSL_CERT_FILE)")?;
            let pem = std::fs::read(path).map_err(|e| format!("reading {path}: {e}"))?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| format!("reading {path}: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("a certificate of {path}: {e}"))?;
            }
            let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS versions: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(std::sync::Arc::new(config))
        })
        .clone()
        .map_err(CallError::Tls)
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl PeerClient {
    /// Calls `op` on `peer` with `request` and decodes the answer.
    pub async fn call<Q: Serialize, A: DeserializeOwned>(
        &mut self,
        peer: &PeerRegion,
        op: &str,
        request: &Q,
    ) -> Result<A, CallError> {
        let body = serde_json::to_vec(request).map_err(|e| CallError::Refused {
            op: op.to_string(),
            kind: "SerializationException".into(),
            message: e.to_string(),
        })?;
        let answer = tokio::time::timeout(CALL_TIMEOUT, self.send(peer, op, body)).await;
        let (status, bytes) = match answer {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                self.conn = None;
                return Err(e);
            }
            Err(_) => {
                self.conn = None;
                return Err(CallError::Unreachable(format!("{op} timed out")));
            }
        };
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        if status != 200 {
            let kind = value["__type"]
                .as_str()
                .map(|t| t.rsplit('#').next().unwrap_or(t).to_string())
                .unwrap_or_else(|| format!("HTTP {status}"));
            let message = value["message"]
                .as_str()
                .or_else(|| value["Message"].as_str())
                .unwrap_or_default()
                .to_string();
            return Err(CallError::Refused {
                op: op.to_string(),
                kind,
                message,
            });
        }
        serde_json::from_value(value).map_err(|e| CallError::Refused {
            op: op.to_string(),
            kind: "SerializationException".into(),
            message: e.to_string(),
        })
    }

    async fn send(
        &mut self,
        peer: &PeerRegion,
        op: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Bytes), CallError> {
        let dest = target(&peer.endpoint)?;
        let host = dest.authority.clone();
        let target = format!("{}{op}", super::TARGET_PREFIX);
        let amz_date = format_amz_date(now_secs());
        let signed = "content-type;host;x-amz-date;x-amz-target";
        let content_type = "application/x-amz-json-1.0";
        let parts = HttpParts {
            method: "POST",
            path: "/",
            query: "",
            headers: vec![
                ("content-type", content_type.as_bytes()),
                ("host", host.as_bytes()),
                ("x-amz-date", amz_date.as_bytes()),
                ("x-amz-target", target.as_bytes()),
            ],
        };
        let signer = Signer {
            access_key: &peer.credentials.access_key_id,
            secret: &peer.credentials.secret_access_key,
            region: &peer.region,
            service: crate::auth::SERVICE,
            amz_date: &amz_date,
        };
        let authorization = signer.authorization(&parts, &body, signed);
        let request = hyper::Request::builder()
            .method("POST")
            .uri("/")
            .header("host", &host)
            .header("content-type", content_type)
            .header("x-amz-date", &amz_date)
            .header("x-amz-target", &target)
            .header("authorization", authorization)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| CallError::Unreachable(e.to_string()))?;
        let sender = self.connection(&dest).await?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| CallError::Unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| CallError::Unreachable(e.to_string()))?
            .to_bytes();
        Ok((status, bytes))
    }

    async fn connection(
        &mut self,
        target: &Target,
    ) -> Result<&mut SendRequest<Full<Bytes>>, CallError> {
        let scheme = if target.tls { "https://" } else { "http://" };
        let key = format!("{scheme}{}", target.authority);
        let reusable = matches!(&self.conn, Some((h, s)) if *h == key && !s.is_closed());
        if !reusable {
            let host = &target.authority;
            let stream = TcpStream::connect(host)
                .await
                .map_err(|e| CallError::Unreachable(format!("connecting to {host}: {e}")))?;
            let _ = stream.set_nodelay(true);
            let sender = if target.tls {
                let name = rustls::pki_types::ServerName::try_from(target.host.clone())
                    .map_err(|e| CallError::Tls(format!("server name {}: {e}", target.host)))?;
                let tls = tokio_rustls::TlsConnector::from(tls_config()?)
                    .connect(name, stream)
                    .await
                    .map_err(|e| CallError::Unreachable(format!("TLS with {host}: {e}")))?;
                handshake(tls).await?
            } else {
                handshake(stream).await?
            };
            self.conn = Some((key, sender));
        }
        match &mut self.conn {
            Some((_, sender)) => {
                sender
                    .ready()
                    .await
                    .map_err(|e| CallError::Unreachable(e.to_string()))?;
                Ok(sender)
            }
            None => Err(CallError::Unreachable("no connection".into())),
        }
    }
}

/// Starts HTTP/1.1 on `io`; the connection runs in its own task.
async fn handshake<IO>(io: IO) -> Result<SendRequest<Full<Bytes>>, CallError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| CallError::Unreachable(e.to_string()))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_name_host_and_port() {
        assert_eq!(
            authority("http://127.0.0.1:8001").unwrap(),
            "127.0.0.1:8001"
        );
        assert_eq!(
            authority("http://peer.example/").unwrap(),
            "peer.example:80"
        );
        assert_eq!(
            target("https://peer.example").unwrap(),
            Target {
                authority: "peer.example:443".into(),
                host: "peer.example".into(),
                tls: true
            }
        );
        assert_eq!(target("https://localhost:8443").unwrap().host, "localhost");
        assert!(matches!(
            authority("ftp://peer.example"),
            Err(CallError::Endpoint(_))
        ));
        assert!(authority("http://").is_err());
    }
}
