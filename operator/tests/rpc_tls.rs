//! Certificates issued by the operator ([`partita_operator::tls`]) against
//! the data plane's own mutual-TLS configuration
//! (`partita_cluster::tls::RpcTls`, what `--rpc-tls-*` loads): a handshake
//! over an in-memory stream, the client naming the host of a topology
//! address built by the operator, exactly as the RPC client does.

use std::time::SystemTime;

use partita_cluster::tls::{server_name, RpcTls};
use partita_operator::build::replica_address;
use partita_operator::config::OperatorConfig;
use partita_operator::crd::table::Table;
use partita_operator::tls::{gateway_names, table_names, IssuedCert, RpcCa};
use partita_operator::validate::{validate_table, Existing};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ORDERS: &str = r#"
apiVersion: partita.dev/v1alpha1
kind: Table
metadata: {name: orders, namespace: shop, uid: 0000-1111}
spec:
  attributeDefinitions: [{attributeName: pk, attributeType: S}]
  keySchema: [{attributeName: pk, keyType: HASH}]
  billingMode: PAY_PER_REQUEST
  placement: {zones: [zone-a, zone-b, zone-c]}
"#;

/// A self-signed CA like the chart's (PEM certificate and PKCS#8 key).
pub fn test_ca(cn: &str) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn rpc_tls(issued: &IssuedCert) -> RpcTls {
    RpcTls::from_pem(
        issued.ca_pem.as_bytes(),
        issued.cert_pem.as_bytes(),
        issued.key_pem.as_bytes(),
    )
    .unwrap()
}

/// Runs one handshake (and one echoed byte) between `client` dialling
/// `address` and `server`; returns the client's error, if any.
async fn handshake(client: &RpcTls, server: &RpcTls, address: &str) -> Result<(), String> {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let acceptor = tokio_rustls::TlsAcceptor::from(server.server.clone());
    let server_task = tokio::spawn(async move {
        let mut stream = acceptor.accept(b).await.map_err(|e| e.to_string())?;
        let mut byte = [0u8; 1];
        stream
            .read_exact(&mut byte)
            .await
            .map_err(|e| e.to_string())?;
        stream.write_all(&byte).await.map_err(|e| e.to_string())?;
        stream.flush().await.map_err(|e| e.to_string())
    });
    let connector = tokio_rustls::TlsConnector::from(client.client.clone());
    let name = server_name(address).map_err(|e| e.to_string())?;
    let result = async {
        let mut stream = connector
            .connect(name, a)
            .await
            .map_err(|e| e.to_string())?;
        stream.write_all(b"x").await.map_err(|e| e.to_string())?;
        stream.flush().await.map_err(|e| e.to_string())?;
        let mut byte = [0u8; 1];
        stream
            .read_exact(&mut byte)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    }
    .await;
    let server_result = server_task.await.unwrap();
    result.and(server_result)
}

#[tokio::test]
async fn a_table_certificate_is_accepted_for_every_pod_name_and_refused_for_others() {
    let (cert, key) = test_ca("partita-rpc-ca");
    let ca = RpcCa::from_pem(&cert, &key).unwrap();
    let table: Table = serde_yaml::from_str(ORDERS).unwrap();
    let config = OperatorConfig::default();
    let validated = validate_table(&table, &Existing::default(), &config).unwrap();
    let now = SystemTime::now();
    let node = rpc_tls(
        &ca.issue("orders", &table_names("orders-nodes", "shop"), now)
            .unwrap(),
    );
    let gateway = rpc_tls(
        &ca.issue(
            "partita-gateway",
            &gateway_names("partita-gateway", "partita-system"),
            now,
        )
        .unwrap(),
    );

    // Every replica address the operator puts in the topology: the gateway
    // and the other nodes (Raft peers) accept the node's certificate.
    for zone in &validated.zones {
        for ordinal in [0, 7] {
            let address = replica_address(&validated, zone, ordinal);
            assert!(
                address.ends_with(".orders-nodes.shop.svc:7000"),
                "{address}"
            );
            handshake(&gateway, &node, &address)
                .await
                .unwrap_or_else(|e| panic!("gateway → {address}: {e}"));
            handshake(&node, &node, &address)
                .await
                .unwrap_or_else(|e| panic!("node → {address}: {e}"));
        }
    }

    // Names the wildcard does not cover: another table's pods, another
    // namespace, the Service itself, a deeper name.
    for address in [
        "orders-zone-a-0.payments-nodes.shop.svc:7000",
        "orders-zone-a-0.orders-nodes.other.svc:7000",
        "orders-nodes.shop.svc:7000",
        "x.orders-zone-a-0.orders-nodes.shop.svc:7000",
        "127.0.0.1:7000",
    ] {
        let error = handshake(&gateway, &node, address)
            .await
            .expect_err(address);
        assert!(
            error.contains("NotValidForName") || error.contains("not valid for name"),
            "{address}: {error}"
        );
    }
}

#[tokio::test]
async fn a_peer_with_a_certificate_from_another_ca_is_refused() {
    let (cert, key) = test_ca("partita-rpc-ca");
    let ca = RpcCa::from_pem(&cert, &key).unwrap();
    let (other_cert, other_key) = test_ca("partita-rpc-ca");
    let other = RpcCa::from_pem(&other_cert, &other_key).unwrap();
    let now = SystemTime::now();
    let names = table_names("orders-nodes", "shop");
    let node = rpc_tls(&ca.issue("orders", &names, now).unwrap());
    let intruder = rpc_tls(&other.issue("orders", &names, now).unwrap());
    let address = "orders-zone-a-0.orders-nodes.shop.svc:7000";
    assert!(handshake(&node, &node, address).await.is_ok());
    // The intruder's client certificate is refused by the node...
    assert!(handshake(&intruder, &node, address).await.is_err());
    // ... and the node's server certificate by the intruder's client.
    assert!(handshake(&node, &intruder, address).await.is_err());
}

/// The CA the chart generates (`genCA`: an RSA key in PKCS#1) signs, through
/// the operator, certificates the data plane accepts.
#[tokio::test]
async fn the_chart_generated_ca_issues_certificates_the_data_plane_accepts() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let tools = root.join("target/tools/helm/helm");
    let helm = if tools.exists() { tools } else { "helm".into() };
    let out = std::process::Command::new(&helm)
        .current_dir(&root)
        .args([
            "template",
            "partita",
            "charts/partita",
            "--namespace",
            "partita-system",
            "--show-only",
            "templates/rpc-ca.yaml",
        ])
        .output()
        .unwrap_or_else(|e| panic!("running {} (scripts/test's helm step): {e}", helm.display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret: k8s_openapi::api::core::v1::Secret = serde_yaml::from_slice(&out.stdout).unwrap();
    let data = secret.data.unwrap();
    let pem = |k: &str| String::from_utf8(data[k].0.clone()).unwrap();
    assert!(pem("tls.key").starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let ca = RpcCa::from_pem(&pem("tls.crt"), &pem("tls.key")).unwrap();

    let now = SystemTime::now();
    let node = rpc_tls(
        &ca.issue("orders", &table_names("orders-nodes", "shop"), now)
            .unwrap(),
    );
    let gateway = rpc_tls(
        &ca.issue(
            "partita-gateway",
            &gateway_names("partita-gateway", "partita-system"),
            now,
        )
        .unwrap(),
    );
    handshake(
        &gateway,
        &node,
        "orders-zone-b-3.orders-nodes.shop.svc:7000",
    )
    .await
    .unwrap();
    assert!(
        handshake(&gateway, &node, "orders-zone-b-3.other-nodes.shop.svc:7000")
            .await
            .is_err()
    );
}
