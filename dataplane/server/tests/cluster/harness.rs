//! A local cluster of real `partita node` processes and a `partita gateway`
//! on loopback, from a generated topology file. Every process is killed
//! when the `Cluster` is dropped (also when a test fails).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
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
    /// The network namespace the node runs in (netns clusters).
    pub netns: Option<String>,
    pub partition: u32,
    pub zone: String,
    pub port: u16,
    pub dir: PathBuf,
    pub child: Option<Child>,
    /// Environment variables of the node's next starts.
    pub env: Vec<(String, String)>,
}

pub struct Cluster {
    /// Holds the data dirs until the cluster is dropped.
    _dir: tempfile::TempDir,
    pub topology: PathBuf,
    pub nodes: Vec<Node>,
    pub gateway_port: u16,
    gateway: Option<Child>,
    gateway_args: Vec<String>,
    /// Extra flags of every node (e.g. TLS material).
    pub node_args: Vec<String>,
    pub snapshot_logs: u64,
    net: Option<Net>,
}

pub const TABLE: &str = "Items";

impl Cluster {
    /// Starts `partitions` × 3 nodes and a gateway; waits until the gateway
    /// answers a consistent read on every partition.
    pub fn start(partitions: u32, snapshot_logs: u64) -> Cluster {
        Cluster::start_on(partitions, snapshot_logs, None, &[])
    }

    /// Like [`Cluster::start`] with extra gateway flags.
    pub fn start_with_gateway(partitions: u32, gateway_args: &[&str]) -> Cluster {
        Cluster::start_on(partitions, 10_000, None, gateway_args)
    }

    /// Like [`Cluster::start`] with one partition whose three replicas each
    /// run in their own network namespace behind a bridge, so a test can
    /// cut a replica off the network ([`Cluster::cut`]) and heal it.
    pub fn start_netns(snapshot_logs: u64) -> Cluster {
        let net = Net::create(3);
        Cluster::start_on(1, snapshot_logs, Some(net), &[])
    }

    /// Like [`Cluster::start`] with extra flags for every node and the
    /// gateway.
    pub fn start_with_args(partitions: u32, node_args: &[&str], gateway_args: &[&str]) -> Cluster {
        Cluster::start_full(partitions, 10_000, None, node_args, gateway_args, true)
    }

    fn start_on(
        partitions: u32,
        snapshot_logs: u64,
        net: Option<Net>,
        gateway_args: &[&str],
    ) -> Cluster {
        Cluster::start_full(partitions, snapshot_logs, net, &[], gateway_args, true)
    }

    fn start_full(
        partitions: u32,
        snapshot_logs: u64,
        net: Option<Net>,
        node_args: &[&str],
        gateway_args: &[&str],
        start: bool,
    ) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut ports = free_ports(partitions as usize * 3 + 1);
        if net.is_some() {
            for p in ports.iter_mut().take(3) {
                *p = 7000;
            }
        }
        let ranges = split(partitions);
        let mut parts = Vec::new();
        let mut nodes = Vec::new();
        for p in 0..partitions {
            let mut replicas = Vec::new();
            for r in 0..3 {
                let port = ports[(p * 3 + r) as usize];
                let zone = format!("zone-{}", ["a", "b", "c"][r as usize]);
                let host = match &net {
                    Some(net) => net.address(r as usize),
                    None => "127.0.0.1".to_string(),
                };
                replicas.push(json!({"zone": zone, "address": format!("{host}:{port}")}));
                nodes.push(Node {
                    netns: net.as_ref().map(|n| n.namespace(r as usize)),
                    partition: p,
                    zone,
                    port,
                    dir: dir.path().join(format!("p{p}-r{r}")),
                    child: None,
                    env: Vec::new(),
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
                    "BillingMode": "PAY_PER_REQUEST",
                    "StreamSpecification": {"StreamEnabled": true, "StreamViewType": "NEW_AND_OLD_IMAGES"}
                },
                "createdAtMs": 1_800_000_000_000u64,
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
            gateway_args: gateway_args.iter().map(|a| a.to_string()).collect(),
            node_args: node_args.iter().map(|a| a.to_string()).collect(),
            snapshot_logs,
            net,
        };
        if !start {
            return cluster;
        }
        for i in 0..cluster.nodes.len() {
            cluster.start_node(i);
        }
        cluster.start_gateway();
        cluster.wait_ready(Duration::from_secs(30));
        cluster
    }

    /// Lays out `partitions` × 3 nodes (topology, data directories) and
    /// starts nothing: the test starts nodes ([`Cluster::start_node`]) and
    /// the gateway ([`Cluster::start_gateway`]) itself.
    pub fn prepare(partitions: u32) -> Cluster {
        Cluster::start_full(partitions, 10_000, None, &[], &[], false)
    }

    /// Starts the gateway (a fresh process: no cached state).
    pub fn start_gateway(&mut self) {
        let gateway = Command::new(BIN)
            .args(["gateway", "--topology-file"])
            .arg(&self.topology)
            .args(["--port", &self.gateway_port.to_string()])
            .args(["--admin-port", "0"])
            .args(&self.gateway_args)
            .env("PARTITA_LOG", "warn,partita_cluster=info")
            .stdin(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.topology.with_file_name("gateway.log"))
                    .unwrap(),
            )
            .spawn()
            .unwrap();
        self.gateway = Some(gateway);
    }

    /// Starts one more gateway on `port` with extra environment variables
    /// (e.g. a test hook), logging to `gateway-<port>.log`; returns when it
    /// accepts connections. The caller owns the process.
    pub fn spawn_gateway(&self, port: u16, envs: &[(&str, &str)]) -> Child {
        let child = Command::new(BIN)
            .args(["gateway", "--topology-file"])
            .arg(&self.topology)
            .args(["--port", &port.to_string()])
            .args(["--admin-port", "0"])
            .args(&self.gateway_args)
            .env("PARTITA_LOG", "warn,partita_cluster=info")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.topology.with_file_name(format!("gateway-{port}.log")))
                    .unwrap(),
            )
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "gateway did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    /// Kills the gateway and starts a new one on the same port.
    pub fn restart_gateway(&mut self) {
        if let Some(mut g) = self.gateway.take() {
            let _ = g.kill();
            let _ = g.wait();
        }
        self.start_gateway();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.gateway_port)).is_err() {
            assert!(Instant::now() < deadline, "gateway did not restart");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn start_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        // Appended: a restarted node's log follows its earlier runs'.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(format!("{}.log", node.dir.display()))
            .unwrap();
        let mut command = match &node.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, BIN]);
                c
            }
            None => Command::new(BIN),
        };
        let host = if node.netns.is_some() {
            "0.0.0.0"
        } else {
            "127.0.0.1"
        };
        let child = command
            .args(["node", "--topology-file"])
            .arg(&self.topology)
            .args(["--table", TABLE, "--partition", &node.partition.to_string()])
            .args(["--zone", &node.zone, "--rpc-host", host])
            .args(["--rpc-port", &node.port.to_string()])
            .arg("--data-dir")
            .arg(&node.dir)
            .args(["--snapshot-logs", &self.snapshot_logs.to_string()])
            .args(["--admin-port", "0"])
            .args(&self.node_args)
            .env("PARTITA_LOG", "warn,partita_cluster=info,openraft=error")
            .envs(node.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        node.child = Some(child);
    }

    /// Waits up to `timeout` for node `i` to exit by itself; returns its
    /// exit status, or None while it runs.
    pub fn wait_node_exit(&mut self, i: usize, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.nodes[i].child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.nodes[i].child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops node `i` as Kubernetes does (SIGTERM) and waits up to
    /// `timeout` for it to exit; its exit status (None: still running,
    /// then killed).
    pub fn terminate_node(&mut self, i: usize, timeout: Duration) -> Option<ExitStatus> {
        let pid = self.nodes[i].child.as_ref()?.id();
        let signalled = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(signalled, "kill -TERM {pid} failed");
        let status = self.wait_node_exit(i, timeout);
        if status.is_none() {
            self.kill_node(i);
        }
        status
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

    /// Returns the RPC address of node `i`.
    pub fn node_address(&self, i: usize) -> String {
        let node = &self.nodes[i];
        match &self.net {
            Some(net) => format!("{}:{}", net.address(i), node.port),
            None => format!("127.0.0.1:{}", node.port),
        }
    }

    /// Cuts node `i` off the network (netns clusters).
    pub fn cut(&self, i: usize) {
        if let Some(net) = &self.net {
            net.set_link(i, false);
        }
    }

    /// Reconnects node `i` (netns clusters).
    pub fn heal(&self, i: usize) {
        if let Some(net) = &self.net {
            net.set_link(i, true);
        }
    }

    pub fn gateway_log(&self) -> String {
        std::fs::read_to_string(self.topology.with_file_name("gateway.log")).unwrap_or_default()
    }

    /// Rewrites the topology file with every table's epoch set to `epoch`.
    pub fn set_epoch(&self, epoch: u64) {
        let mut topology: Value =
            serde_json::from_slice(&std::fs::read(&self.topology).unwrap()).unwrap();
        for t in topology["tables"].as_array_mut().unwrap() {
            t["epoch"] = json!(epoch);
        }
        std::fs::write(
            &self.topology,
            serde_json::to_vec_pretty(&topology).unwrap(),
        )
        .unwrap();
    }

    /// Lays out one more replica of `partition` in `zone`, which the
    /// topology does not list (a new member to add), and returns its index;
    /// starts nothing.
    pub fn add_node(&mut self, partition: u32, zone: &str) -> usize {
        let port = free_ports(1)[0];
        let i = self.nodes.len();
        let dir = self
            .topology
            .with_file_name(format!("p{partition}-{zone}-{i}"));
        self.nodes.push(Node {
            netns: None,
            partition,
            zone: zone.to_string(),
            port,
            dir,
            child: None,
            env: Vec::new(),
        });
        i
    }

    /// Runs `partita members` for `partition` with `args` (the subcommand
    /// and its flags), finding the group through the topology file and
    /// `nodes`; returns its JSON answer, or its stderr as the error.
    pub fn members(&self, partition: u32, nodes: &[usize], args: &[&str]) -> Result<Value, String> {
        let mut command = Command::new(BIN);
        command
            .args(["members", "--topology-file"])
            .arg(&self.topology)
            .args(["--table", TABLE, "--partition", &partition.to_string()])
            .args(["--timeout", "60s"]);
        for i in nodes {
            command.args(["--node", &self.node_address(*i)]);
        }
        let output = command
            .args(args)
            .args(&self.node_args)
            .env("PARTITA_LOG", "info")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        serde_json::from_slice(&output.stdout)
            .map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
    }

    /// Rewrites partition `partition`'s replicas in the topology file as
    /// nodes `nodes` with their member ids, and bumps the epoch (what the
    /// operator does after a membership change).
    pub fn set_replicas(&self, partition: u32, nodes: &[(usize, u64)]) {
        let mut topology: Value =
            serde_json::from_slice(&std::fs::read(&self.topology).unwrap()).unwrap();
        let table = &mut topology["tables"][0];
        let epoch = table["epoch"].as_u64().unwrap() + 1;
        table["epoch"] = json!(epoch);
        table["partitions"][partition as usize]["replicas"] = nodes
            .iter()
            .map(|(i, member)| {
                json!({"zone": self.nodes[*i].zone, "address": self.node_address(*i), "memberId": member})
            })
            .collect();
        std::fs::write(
            &self.topology,
            serde_json::to_vec_pretty(&topology).unwrap(),
        )
        .unwrap();
    }

    pub fn node_log(&self, i: usize) -> String {
        std::fs::read_to_string(format!("{}.log", self.nodes[i].dir.display())).unwrap_or_default()
    }

    /// The last lines of every node's log and the gateway's, for a failure
    /// message.
    pub fn logs_tail(&self, lines: usize) -> String {
        let tail = |text: String| {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        };
        let mut out = String::new();
        for i in 0..self.nodes.len() {
            out += &format!(
                "--- node {i} ({})\n{}\n",
                self.nodes[i].zone,
                tail(self.node_log(i))
            );
        }
        out + &format!("--- gateway\n{}\n", tail(self.gateway_log()))
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

/// A minimal HTTP/1.1 client: one request per connection. `op` is a
/// DynamoDB operation name, or a whole target (`DynamoDBStreams_20120810.X`).
pub fn http_call(port: u16, op: &str, body: &Value) -> (u16, Value) {
    let body = serde_json::to_vec(body).unwrap();
    let target = if op.contains('.') {
        op.to_string()
    } else {
        format!("DynamoDB_20120810.{op}")
    };
    let attempt = || -> std::io::Result<(u16, Value)> {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let head = format!(
            "POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: {target}\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
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

/// Network namespaces `<prefix>n<i>` joined by a bridge in the root
/// namespace; node `i` has address 10.<b>.0.<i+1>. Deleted on drop.
pub struct Net {
    prefix: String,
    subnet: u8,
    count: usize,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Net {
    /// Creates `count` namespaces on a bridge of their own. Names carry the
    /// process id and a per-process sequence number, and the subnet is one
    /// no interface of the machine uses yet, so tests running in parallel
    /// (in one process or several) never share a name or a subnet.
    pub fn create(count: usize) -> Net {
        static SEQUENCE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        static SUBNETS: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let seq = SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = std::process::id() % 1_000_000;
        // Interface names are at most 15 bytes: "pt" + 6 + "s" + 3 + "br".
        let prefix = format!("pt{id}s{}", seq % 1000);
        let _choosing = SUBNETS.lock().unwrap_or_else(|e| e.into_inner());
        let used = String::from_utf8_lossy(
            &Command::new("ip")
                .args(["-o", "-4", "addr", "show"])
                .output()
                .expect("run ip")
                .stdout,
        )
        .into_owned();
        let start = (id + seq) % 150;
        let subnet = (0..150)
            .map(|k| 100 + ((start + k) % 150) as u8)
            .find(|s| !used.contains(&format!(" 10.{s}.")))
            .expect("a free 10.x subnet");
        let net = Net {
            prefix,
            subnet,
            count,
        };
        let bridge = format!("{}br", net.prefix);
        ip(&["link", "add", &bridge, "type", "bridge"]);
        ip(&[
            "addr",
            "add",
            &format!("10.{}.0.254/24", net.subnet),
            "dev",
            &bridge,
        ]);
        ip(&["link", "set", &bridge, "up"]);
        for i in 0..count {
            let ns = net.namespace(i);
            let outer = net.link(i);
            ip(&["netns", "add", &ns]);
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ]);
            ip(&["link", "set", &outer, "master", &bridge]);
            ip(&["link", "set", &outer, "up"]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", net.address(i)),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        net
    }

    pub fn namespace(&self, i: usize) -> String {
        format!("{}n{i}", self.prefix)
    }

    fn link(&self, i: usize) -> String {
        format!("{}v{i}", self.prefix)
    }

    pub fn address(&self, i: usize) -> String {
        format!("10.{}.0.{}", self.subnet, i + 1)
    }

    pub fn set_link(&self, i: usize, up: bool) {
        ip(&["link", "set", &self.link(i), if up { "up" } else { "down" }]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for i in 0..self.count {
            let _ = Command::new("ip")
                .args(["link", "del", &self.link(i)])
                .output();
            let _ = Command::new("ip")
                .args(["netns", "del", &self.namespace(i)])
                .output();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &format!("{}br", self.prefix)])
            .output();
    }
}
