//! Invariant: with `--rpc-tls-*`, the internal RPC is mutual TLS — the
//! cluster works (gateway → node calls and node ↔ node Raft replication
//! both need it: a write needs a quorum), and a node refuses every client
//! that does not present a certificate from the cluster's CA: plaintext,
//! TLS without a client certificate, and a certificate from another CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use partita_cluster::rpc::{Client, Request, Response, Target};
use partita_cluster::tls::RpcTls;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::json;

use crate::harness::{key, Cluster, TABLE};

struct Material {
    ca: String,
    cert: String,
    key: String,
}

/// A CA and one leaf certificate (serverAuth + clientAuth, SANs for
/// loopback) signed by it.
fn pki(name: &str) -> Material {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} CA"));
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let mut leaf =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    leaf.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &ca).unwrap();
    Material {
        ca: ca.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

fn write(dir: &Path, name: &str, m: &Material) -> [PathBuf; 3] {
    let paths = [
        dir.join(format!("{name}-ca.pem")),
        dir.join(format!("{name}-cert.pem")),
        dir.join(format!("{name}-key.pem")),
    ];
    for (path, pem) in paths.iter().zip([&m.ca, &m.cert, &m.key]) {
        std::fs::write(path, pem).unwrap();
    }
    paths
}

/// Calls Status on `address` with `tls` (plaintext when `None`).
fn status(address: &str, tls: Option<Arc<rustls::ClientConfig>>) -> Result<Response, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = Client::with_tls(address.to_string(), tls);
        let target = Target {
            table: TABLE.into(),
            partition: 0,
            epoch: 1,
        };
        client
            .call(&Request::Status(target), Duration::from_secs(3))
            .await
            .map_err(|e| e.to_string())
    })
}

#[test]
fn mutual_tls_rpc_works_and_refuses_clients_without_a_valid_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let good = pki("cluster");
    let rogue = pki("rogue");
    let [ca, cert, key_file] = write(dir.path(), "cluster", &good);
    let flags: Vec<String> = vec![
        "--rpc-tls-ca".into(),
        ca.display().to_string(),
        "--rpc-tls-cert".into(),
        cert.display().to_string(),
        "--rpc-tls-key".into(),
        key_file.display().to_string(),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    // start waits for consistent reads through the gateway on every
    // partition: gateway → node TLS works and the group elected a leader
    // over node ↔ node TLS.
    let cluster = Cluster::start_with_args(1, &flags, &flags);
    let (status_code, body) = cluster.call(
        "PutItem",
        &json!({"TableName": TABLE, "Item": {"pk": {"S": "tls"}, "sk": {"S": "1"}}}),
    );
    assert_eq!(
        status_code, 200,
        "a replicated write over mutual TLS: {body}"
    );
    let (status_code, body) = cluster.call(
        "GetItem",
        &json!({"TableName": TABLE, "Key": key("tls", "1"), "ConsistentRead": true}),
    );
    assert_eq!(status_code, 200, "{body}");
    assert!(body.get("Item").is_some(), "{body}");

    let address = cluster.node_address(0);
    // Positive control: the cluster's own certificate is accepted.
    let own = RpcTls::from_pem(
        good.ca.as_bytes(),
        good.cert.as_bytes(),
        good.key.as_bytes(),
    )
    .unwrap();
    assert!(
        matches!(
            status(&address, Some(own.client.clone())),
            Ok(Response::Status(Ok(_)))
        ),
        "a client with the cluster's certificate is served"
    );

    // Plaintext.
    let plain = status(&address, None);
    assert!(plain.is_err(), "plaintext client served: {plain:?}");

    // TLS trusting the node, but without a client certificate.
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(good.ca.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let anonymous = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let anonymous = status(&address, Some(Arc::new(anonymous)));
    assert!(
        anonymous.is_err(),
        "client without certificate served: {anonymous:?}"
    );

    // TLS trusting the node, with a certificate from another CA.
    let impostor = RpcTls::from_pem(
        good.ca.as_bytes(),
        rogue.cert.as_bytes(),
        rogue.key.as_bytes(),
    )
    .unwrap();
    let impostor = status(&address, Some(impostor.client));
    assert!(
        impostor.is_err(),
        "client of another CA served: {impostor:?}"
    );

    // The node logged the refusals; the cluster still works.
    let log = cluster.node_log(0);
    assert!(
        log.matches("rpc TLS handshake refused").count() >= 2,
        "node log:\n{log}"
    );
    assert!(
        matches!(
            status(&address, Some(own.client)),
            Ok(Response::Status(Ok(_)))
        ),
        "still serving its own"
    );
}
