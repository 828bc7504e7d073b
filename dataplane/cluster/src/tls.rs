//! Mutual TLS of the internal RPC (gateway → node, node → node), with
//! rustls on the ring provider like the API's HTTPS listener.
//!
//! Off by default (plaintext). With a CA bundle, a certificate chain and
//! its key (`--rpc-tls-ca`, `--rpc-tls-cert`, `--rpc-tls-key`, names in
//! `partita_topology::flags`) every process:
//!
//! - as a server (a node's RPC listener), presents its certificate and
//!   completes the handshake only with a client whose certificate chains to
//!   the CA — a client without a certificate, or with one from another CA,
//!   is refused before any frame is read;
//! - as a client (a gateway's router, a Raft peer), presents its
//!   certificate and accepts a node only when the node's certificate chains
//!   to the CA and names the host of the topology address it dialled (a
//!   DNS name or an IP address SAN).
//!
//! So the certificate of a node needs both the serverAuth and clientAuth
//! usages (or none) and SANs for its topology addresses; a gateway's needs
//! clientAuth. Certificates are read once at start (rotation = restart).

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Why TLS material was refused.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {what} PEM: {message}")]
    Pem { what: &'static str, message: String },
    #[error("{what} holds no certificate")]
    Empty { what: &'static str },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The client and server configurations of one process.
#[derive(Clone, Debug)]
pub struct RpcTls {
    pub client: Arc<ClientConfig>,
    pub server: Arc<ServerConfig>,
}

fn certs(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty { what });
    }
    Ok(certs)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl RpcTls {
    /// Builds both sides from PEM bytes: the CA bundle that peers must
    /// chain to, this process's certificate chain and its private key.
    pub fn from_pem(ca: &[u8], cert: &[u8], key: &[u8]) -> Result<RpcTls, TlsError> {
        let mut roots = RootCertStore::empty();
        for ca in certs(ca, "CA bundle")? {
            roots
                .add(ca)
                .map_err(|e| TlsError::Config(format!("CA certificate: {e}")))?;
        }
        let roots = Arc::new(roots);
        let chain = certs(cert, "certificate")?;
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsError::Pem {
            what: "private key",
            message: e.to_string(),
        })?;
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .map_err(|e| TlsError::Config(format!("client verifier: {e}")))?;
        let server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| TlsError::Config(format!("certificate and key: {e}")))?;
        let client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| TlsError::Config(format!("client certificate and key: {e}")))?;
        Ok(RpcTls {
            client: Arc::new(client),
            server: Arc::new(server),
        })
    }

    /// Reads the three PEM files.
    pub fn from_files(
        ca: &std::path::Path,
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> Result<RpcTls, TlsError> {
        let read = |path: &std::path::Path, what: &'static str| {
            std::fs::read(path).map_err(|e| TlsError::Pem {
                what,
                message: format!("{}: {e}", path.display()),
            })
        };
        RpcTls::from_pem(
            &read(ca, "CA bundle")?,
            &read(cert, "certificate")?,
            &read(key, "private key")?,
        )
    }
}

/// The name a client checks the node's certificate against: the host of
/// a `host:port` topology address (an IP address or a DNS name).
pub fn server_name(address: &str) -> Result<ServerName<'static>, TlsError> {
    let host = match address.rsplit_once(':') {
        Some((host, _)) => host,
        None => address,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|e| TlsError::Config(format!("server name of {address}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_come_from_topology_addresses() {
        assert!(matches!(
            server_name("127.0.0.1:7000").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[::1]:7000").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("t-a-0.t-a.ns.svc:7000").unwrap(),
            ServerName::DnsName(_)
        ));
    }

    #[test]
    fn bad_material_is_refused() {
        assert!(matches!(
            RpcTls::from_pem(b"", b"", b""),
            Err(TlsError::Empty { .. })
        ));
    }
}
