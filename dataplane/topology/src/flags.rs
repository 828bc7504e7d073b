//! Command-line contract of `partita node` and `partita gateway`.
//!
//! The operator renders pod specs from [`NodeFlags`] and [`GatewayFlags`]; the
//! data plane's clap definitions must use the same long names (the constants
//! below) and environment variables, so a rename breaks both sides' tests
//! instead of breaking a cluster. Values that only the pod knows at run time
//! (its partition ordinal) come from environment variables filled by the
//! Kubernetes downward API.

/// Subcommand that runs one storage replica.
pub const NODE_SUBCOMMAND: &str = "node";
/// Subcommand that runs the stateless DynamoDB endpoint.
pub const GATEWAY_SUBCOMMAND: &str = "gateway";

/// `--topology-file PATH`: the topology file (see [`crate::topology`]); reloaded on change.
pub const TOPOLOGY_FILE: &str = "--topology-file";
/// `--table NAME`: the DynamoDB table this node serves.
pub const TABLE: &str = "--table";
/// `--partition N`: the partition this node serves (pod ordinal i = partition i).
pub const PARTITION: &str = "--partition";
/// Environment variable equivalent of [`PARTITION`].
pub const PARTITION_ENV: &str = "PARTITA_PARTITION";
/// `--zone NAME`: the zone this replica runs in (selects its entry in the topology).
pub const ZONE: &str = "--zone";
/// `--data-dir PATH`: where the node keeps its engine files.
pub const DATA_DIR: &str = "--data-dir";
/// `--rpc-port N`: internal RPC listener (Raft and gateway → node).
pub const RPC_PORT: &str = "--rpc-port";
/// `--host ADDR`: address the gateway's DynamoDB listener binds.
pub const HOST: &str = "--host";
/// `--port N`: the gateway's DynamoDB listener.
pub const PORT: &str = "--port";
/// `--admin-port N`: `/metrics`, `/healthz`, `/readyz`.
pub const ADMIN_PORT: &str = "--admin-port";
/// `--auth PATH`: the auth file (see [`crate::auth`]); reloaded on change.
pub const AUTH: &str = "--auth";
/// `--region NAME`: the region reported in ARNs and checked in SigV4 scopes.
pub const REGION: &str = "--region";
/// `--replication PATH`: the replication file (see [`crate::replication`]); reloaded on change.
pub const REPLICATION: &str = "--replication";
/// `--log-format text|json`.
pub const LOG_FORMAT: &str = "--log-format";
/// `--rpc-tls-ca PATH`: PEM CA bundle of the internal RPC. With
/// [`RPC_TLS_CERT`] and [`RPC_TLS_KEY`], node ↔ node and gateway → node
/// calls use mutual TLS (each side presents its certificate; peers must
/// chain to this CA; a node's certificate must name the host of its
/// topology address). Without the three: plaintext. Same flags on nodes and
/// gateways.
///
/// The operator renders them through [`RpcTlsFlags`] in [`NodeFlags`] and
/// [`GatewayFlags`] from the certificate Secrets it issues (the chart's
/// `rpc.tls.enabled`, on by default).
pub const RPC_TLS_CA: &str = "--rpc-tls-ca";
/// `--rpc-tls-cert PATH`: this process's PEM certificate chain (see [`RPC_TLS_CA`]).
pub const RPC_TLS_CERT: &str = "--rpc-tls-cert";
/// `--rpc-tls-key PATH`: the PEM private key of [`RPC_TLS_CERT`].
pub const RPC_TLS_KEY: &str = "--rpc-tls-key";
/// Environment variable equivalent of [`RPC_TLS_CA`].
pub const RPC_TLS_CA_ENV: &str = "PARTITA_RPC_TLS_CA";
/// Environment variable equivalent of [`RPC_TLS_CERT`].
pub const RPC_TLS_CERT_ENV: &str = "PARTITA_RPC_TLS_CERT";
/// Environment variable equivalent of [`RPC_TLS_KEY`].
pub const RPC_TLS_KEY_ENV: &str = "PARTITA_RPC_TLS_KEY";

/// Default internal RPC port of a node.
pub const DEFAULT_RPC_PORT: u16 = 7000;
/// Default DynamoDB port of the gateway (as `partita serve`).
pub const DEFAULT_PORT: u16 = 8000;
/// Default admin port (metrics and health) of every data-plane process.
pub const DEFAULT_ADMIN_PORT: u16 = 8001;
/// Liveness path on the admin port.
pub const HEALTHZ_PATH: &str = "/healthz";
/// Readiness path on the admin port.
pub const READYZ_PATH: &str = "/readyz";
/// Prometheus path on the admin port.
pub const METRICS_PATH: &str = "/metrics";

/// The three mutual-TLS flags of the internal RPC ([`RPC_TLS_CA`],
/// [`RPC_TLS_CERT`], [`RPC_TLS_KEY`]): all three or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcTlsFlags {
    pub ca_file: String,
    pub cert_file: String,
    pub key_file: String,
}

impl RpcTlsFlags {
    /// Returns `--rpc-tls-ca CA --rpc-tls-cert CERT --rpc-tls-key KEY`.
    pub fn to_args(&self) -> Vec<String> {
        vec![
            RPC_TLS_CA.into(),
            self.ca_file.clone(),
            RPC_TLS_CERT.into(),
            self.cert_file.clone(),
            RPC_TLS_KEY.into(),
            self.key_file.clone(),
        ]
    }
}

/// The flags of one `partita node` process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFlags {
    pub topology_file: String,
    pub table: String,
    /// `None` renders no `--partition` flag: the node reads [`PARTITION_ENV`].
    pub partition: Option<u32>,
    pub zone: String,
    pub data_dir: String,
    pub rpc_port: u16,
    pub admin_port: u16,
    pub log_format: String,
    /// `None`: plaintext internal RPC.
    pub rpc_tls: Option<RpcTlsFlags>,
}

impl NodeFlags {
    /// Returns the process arguments, subcommand first.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            NODE_SUBCOMMAND.to_string(),
            TOPOLOGY_FILE.into(),
            self.topology_file.clone(),
            TABLE.into(),
            self.table.clone(),
        ];
        if let Some(p) = self.partition {
            args.push(PARTITION.into());
            args.push(p.to_string());
        }
        args.extend([
            ZONE.into(),
            self.zone.clone(),
            DATA_DIR.into(),
            self.data_dir.clone(),
            RPC_PORT.into(),
            self.rpc_port.to_string(),
            ADMIN_PORT.into(),
            self.admin_port.to_string(),
            LOG_FORMAT.into(),
            self.log_format.clone(),
        ]);
        if let Some(tls) = &self.rpc_tls {
            args.extend(tls.to_args());
        }
        args
    }
}

/// The flags of one `partita gateway` process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayFlags {
    pub topology_file: String,
    /// `None`: no auth file, any credentials accepted (a warning is logged).
    pub auth_file: Option<String>,
    pub host: String,
    pub port: u16,
    pub admin_port: u16,
    pub region: String,
    pub log_format: String,
    /// `None`: plaintext internal RPC.
    pub rpc_tls: Option<RpcTlsFlags>,
}

impl GatewayFlags {
    /// Returns the process arguments, subcommand first.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            GATEWAY_SUBCOMMAND.to_string(),
            TOPOLOGY_FILE.into(),
            self.topology_file.clone(),
        ];
        if let Some(auth) = &self.auth_file {
            args.push(AUTH.into());
            args.push(auth.clone());
        }
        args.extend([
            HOST.into(),
            self.host.clone(),
            PORT.into(),
            self.port.to_string(),
            ADMIN_PORT.into(),
            self.admin_port.to_string(),
            REGION.into(),
            self.region.clone(),
            LOG_FORMAT.into(),
            self.log_format.clone(),
        ]);
        if let Some(tls) = &self.rpc_tls {
            args.extend(tls.to_args());
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls() -> RpcTlsFlags {
        RpcTlsFlags {
            ca_file: "/tls/ca.crt".into(),
            cert_file: "/tls/tls.crt".into(),
            key_file: "/tls/tls.key".into(),
        }
    }

    #[test]
    fn node_args_are_stable() {
        let flags = NodeFlags {
            topology_file: "/etc/partita/topology/topology.json".into(),
            table: "Orders".into(),
            partition: None,
            zone: "zone-a".into(),
            data_dir: "/var/lib/partita".into(),
            rpc_port: DEFAULT_RPC_PORT,
            admin_port: DEFAULT_ADMIN_PORT,
            log_format: "json".into(),
            rpc_tls: None,
        };
        assert_eq!(
            flags.to_args().join(" "),
            "node --topology-file /etc/partita/topology/topology.json --table Orders \
             --zone zone-a --data-dir /var/lib/partita --rpc-port 7000 --admin-port 8001 \
             --log-format json"
        );
        let with_partition = NodeFlags {
            partition: Some(2),
            ..flags.clone()
        };
        assert!(with_partition
            .to_args()
            .join(" ")
            .contains("--table Orders --partition 2 --zone"));
        let with_tls = NodeFlags {
            rpc_tls: Some(tls()),
            ..flags
        };
        assert!(with_tls.to_args().join(" ").ends_with(
            "--log-format json --rpc-tls-ca /tls/ca.crt --rpc-tls-cert /tls/tls.crt \
             --rpc-tls-key /tls/tls.key"
        ));
    }

    #[test]
    fn gateway_args_are_stable() {
        let flags = GatewayFlags {
            topology_file: "/etc/partita/topology/topology.json".into(),
            auth_file: Some("/etc/partita/auth/auth.json".into()),
            host: "0.0.0.0".into(),
            port: DEFAULT_PORT,
            admin_port: DEFAULT_ADMIN_PORT,
            region: "us-east-1".into(),
            log_format: "json".into(),
            rpc_tls: None,
        };
        assert_eq!(
            flags.to_args().join(" "),
            "gateway --topology-file /etc/partita/topology/topology.json \
             --auth /etc/partita/auth/auth.json --host 0.0.0.0 --port 8000 --admin-port 8001 \
             --region us-east-1 --log-format json"
        );
        let with_tls = GatewayFlags {
            rpc_tls: Some(tls()),
            ..flags
        };
        assert!(with_tls.to_args().join(" ").ends_with(
            "--log-format json --rpc-tls-ca /tls/ca.crt --rpc-tls-cert /tls/tls.crt \
             --rpc-tls-key /tls/tls.key"
        ));
    }
}
