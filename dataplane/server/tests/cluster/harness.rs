//! A local cluster of real `partita node` processes and a `partita gateway`
//! on loopback, from a generated topology file. Every process is killed
//! when the `Cluster` is dropped (also when a test fails).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_partita");

/// Returns `n` distinct free loopback ports.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

pub struct Node {
    pub partition: u32,
    pub zone: String,
    pub port: u16,
    pub dir: PathBuf,
    pub child: Option<Child>,
}

pub struct Cluster {
    /// Holds the data dirs until the cluster is dropped.
    _dir: tempfile::TempDir,
    pub topology: PathBuf,
    pub nodes: Vec<Node>,
    pub gateway_port: u16,
    gateway: Option<Child>,
    pub snapshot_logs: u64,
}

pub const TABLE: &str = "Items";

impl Cluster {
    /// Starts `partitions` × 3 nodes and a gateway; waits until the gateway
    /// answers a consistent read on every partition.
    pub fn start(partitions: u32, snapshot_logs: u64) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let ports = free_ports(partitions as usize * 3 + 1);
        let ranges = split(partitions);
        let mut parts = Vec::new();
        let mut nodes = Vec::new();
        for p in 0..partitions {
            let mut replicas = Vec::new();
            for r in 0..3 {
                let port = ports[(p * 3 + r) as usize];
                let zone = format!("zone-{}", ["a", "b", "c"][r as usize]);
                replicas.push(json!({"zone": zone, "address": format!("127.0.0.1:{port}")}));
                nodes.push(Node {
                    partition: p,
                    zone,
                    port,
                    dir: dir.path().join(format!("p{p}-r{r}")),
                    child: None,
                });
            }
            parts.push(json!({"id": p, "hashRange": ranges[p as usize], "replicas": replicas}));
        }
        let topology = json!({
            "formatVersion": 1,
            "tables": [{
                "tableName": TABLE,
                "epoch": 1,
                "partitionKey": "pk",
                "createTable": {
                    "TableName": TABLE,
                    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                  {"AttributeName": "sk", "KeyType": "RANGE"}],
                    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                             {"AttributeName": "sk", "AttributeType": "S"}],
                    "BillingMode": "PAY_PER_REQUEST"
                },
                "partitions": parts,
            }]
        });
        let topology_path = dir.path().join("topology.json");
        std::fs::write(
            &topology_path,
            serde_json::to_vec_pretty(&topology).unwrap(),
        )
        .unwrap();
        let mut cluster = Cluster {
            _dir: dir,
            topology: topology_path,
            nodes,
            gateway_port: ports[ports.len() - 1],
            gateway: None,
            snapshot_logs,
        };
        for i in 0..cluster.nodes.len() {
            cluster.start_node(i);
        }
        let gateway = Command::new(BIN)
            .args(["gateway", "--topology-file"])
            .arg(&cluster.topology)
            .args(["--port", &cluster.gateway_port.to_string()])
            .env("PARTITA_LOG", "warn")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        cluster.gateway = Some(gateway);
        cluster.wait_ready(Duration::from_secs(30));
        cluster
    }

    pub fn start_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let log = std::fs::File::create(format!("{}.log", node.dir.display())).unwrap();
        let child = Command::new(BIN)
            .args(["node", "--topology-file"])
            .arg(&self.topology)
            .args(["--table", TABLE, "--partition", &node.partition.to_string()])
            .args(["--zone", &node.zone, "--rpc-host", "127.0.0.1"])
            .args(["--rpc-port", &node.port.to_string()])
            .arg("--data-dir")
            .arg(&node.dir)
            .args(["--snapshot-logs", &self.snapshot_logs.to_string()])
            .env("PARTITA_LOG", "warn,partita_cluster=info,openraft=error")
            .stdin(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        node.child = Some(child);
    }

    pub fn kill_node(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits until a consistent read succeeds on a key of every partition.
    pub fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let ok = (0..32).all(|i| {
                let (status, _) = self.call(
                    "GetItem",
                    &json!({"TableName": TABLE, "Key": key(&format!("ready{i}"), "x"), "ConsistentRead": true}),
                );
                status == 200
            });
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "cluster not ready in {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// One DynamoDB call through the gateway: (HTTP status, body).
    pub fn call(&self, op: &str, body: &Value) -> (u16, Value) {
        http_call(self.gateway_port, op, body)
    }

    pub fn node_log(&self, i: usize) -> String {
        std::fs::read_to_string(format!("{}.log", self.nodes[i].dir.display())).unwrap_or_default()
    }

    pub fn node_store_dir(&self, i: usize) -> PathBuf {
        self.nodes[i].dir.join("store")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut g) = self.gateway.take() {
            let _ = g.kill();
            let _ = g.wait();
        }
        for i in 0..self.nodes.len() {
            self.kill_node(i);
        }
    }
}

fn split(partitions: u32) -> Vec<Value> {
    let n = u128::from(partitions);
    let total: u128 = 1 << 64;
    let mut start: u128 = 0;
    (0..n)
        .map(|i| {
            let len = total / n + u128::from(i < total % n);
            let end = start + len - 1;
            let v = json!({"start": format!("0x{:016x}", start as u64), "end": format!("0x{:016x}", end as u64)});
            start = end + 1;
            v
        })
        .collect()
}

pub fn key(pk: &str, sk: &str) -> Value {
    json!({"pk": {"S": pk}, "sk": {"S": sk}})
}

/// A minimal HTTP/1.1 client: one request per connection.
pub fn http_call(port: u16, op: &str, body: &Value) -> (u16, Value) {
    let body = serde_json::to_vec(body).unwrap();
    let attempt = || -> std::io::Result<(u16, Value)> {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let head = format!(
            "POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: DynamoDB_20120810.{op}\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes())?;
        s.write_all(&body)?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)?;
        let text = String::from_utf8_lossy(&out);
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let json = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| serde_json::from_str(b).unwrap_or(Value::Null))
            .unwrap_or(Value::Null);
        Ok((status, json))
    };
    attempt().unwrap_or((0, Value::Null))
}
