//! Operator-wide settings that shape every Table's objects (from flags and
//! the Helm values).

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Settings the builders need besides the Table itself.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorConfig {
    /// Data-plane image (runs `partita node` / `partita gateway`).
    pub image: String,
    pub image_pull_policy: String,
    /// Zones used when a Table names none (one per replica).
    pub default_zones: Vec<String>,
    /// Node label holding a node's zone.
    pub zone_label: String,
    /// Volume size when a Table names none.
    pub default_storage_size: String,
    /// Region reported in ARNs.
    pub region: String,
    /// Account id reported in ARNs.
    pub account_id: String,
    /// The gateway URL reported in Table status (`status.endpoint`).
    pub gateway_endpoint: String,
    /// Data-plane log format (text or json).
    pub log_format: String,
    /// Extra labels put on every object the operator creates.
    pub extra_labels: BTreeMap<String, String>,
    /// Directory holding the internal RPC's CA (`tls.crt`, `tls.key`; the
    /// chart mounts Secret `partita-rpc-ca` there). `Some`: mutual TLS — the
    /// operator issues each Table's certificate Secret and renders the
    /// `--rpc-tls-*` flags (see [`crate::tls`]); `None`: plaintext.
    pub rpc_ca_dir: Option<PathBuf>,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        OperatorConfig {
            image: "ghcr.io/partita-db/partita:0.1.0".into(),
            image_pull_policy: "IfNotPresent".into(),
            default_zones: vec!["zone-a".into(), "zone-b".into(), "zone-c".into()],
            zone_label: "topology.kubernetes.io/zone".into(),
            default_storage_size: "10Gi".into(),
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
            gateway_endpoint: "http://partita-gateway.partita-system.svc:8000".into(),
            log_format: "json".into(),
            extra_labels: BTreeMap::new(),
            rpc_ca_dir: None,
        }
    }
}
