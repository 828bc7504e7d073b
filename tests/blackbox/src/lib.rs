//! Shared harness for Partita's black-box tests.
//!
//! The tests in `tests/it/` talk to a DynamoDB endpoint only through the wire
//! protocol: with `aws-sdk-dynamodb`, and with raw HTTP where the SDK would
//! refuse to send what a test needs (malformed JSON, unknown operations,
//! oversize bodies). This crate knows nothing about Partita's internals.
//!
//! Which server a test talks to:
//! - default: the real `partita` binary (env `PARTITA_BIN`, else
//!   `<workspace>/target/debug/partita`), started per test as
//!   `partita serve --host 127.0.0.1 --port <P> --data-dir <D>` on a free
//!   loopback port with its own temporary data directory, killed on drop;
//! - env `PARTITA_BLACKBOX_CLUSTER=N`: the same binary as
//!   `partita dev-cluster --partitions N --replicas 3` (cluster mode: a
//!   gateway in front of N Raft groups of 3 node processes);
//! - env `DYNAMODB_ENDPOINT`: an already-running endpoint (used to validate the
//!   tests against DynamoDB Local). Tests that need to kill and restart the
//!   server skip themselves there with a printed note. Tests that assert real
//!   DynamoDB behaviour DynamoDB Local is known to get wrong skip themselves
//!   only when the endpoint is DynamoDB Local (detected from its `Server:
//!   Jetty` header, or forced with env `DYNAMODB_LOCAL=1`/`0`).
//!
//! Every test uses unique table names, so any number of tests can share one
//! external endpoint.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TableStatus,
};
use aws_sdk_dynamodb::Client;

pub use aws_sdk_dynamodb;

pub mod lazyfs;

/// The region every test client signs for.
pub const REGION: &str = "us-west-2";
/// The access key every test client uses (any credentials are accepted).
pub const ACCESS_KEY: &str = "AKIDPARTITATEST";

/// How long a started server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A `partita serve` process on a loopback port with its own data directory.
pub struct Server {
    child: Option<Child>,
    data_dir: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
    starts: u32,
    extra_args: Vec<String>,
    extra_env: Vec<(String, String)>,
    /// Listen on this port at every start instead of a new free one.
    fixed_port: Option<u16>,
}

impl Server {
    /// Starts the server binary on a free port with a fresh data directory and
    /// waits until it accepts connections.
    pub fn start() -> Server {
        Server::start_with(&[], &[])
    }

    /// Like [`Server::start`], with extra `partita serve` arguments (e.g.
    /// `--auth FILE`) and environment variables; restarts keep them.
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_on(None, args, env)
    }

    /// Like [`Server::start_with`], listening on `port` (when given) at
    /// this and every later start, so peers can keep its address across
    /// restarts (e.g. global-table regions).
    pub fn start_on(port: Option<u16>, args: &[&str], env: &[(&str, &str)]) -> Server {
        let data_dir = tempfile::Builder::new()
            .prefix("partita-blackbox-")
            .tempdir()
            .expect("create temp data dir");
        Server::start_with_dir(data_dir, port, args, env)
    }

    /// Like [`Server::start_with`], with the data directory (and the logs
    /// beside it) created inside `parent` (e.g. a [`lazyfs`] mount).
    pub fn start_in(parent: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let data_dir = tempfile::Builder::new()
            .prefix("partita-blackbox-")
            .tempdir_in(parent)
            .expect("create temp data dir");
        Server::start_with_dir(data_dir, None, args, env)
    }

    fn start_with_dir(
        data_dir: tempfile::TempDir,
        port: Option<u16>,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let mut server = Server {
            child: None,
            data_dir,
            port: 0,
            bin: partita_bin(),
            starts: 0,
            extra_args: args.iter().map(|a| a.to_string()).collect(),
            extra_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            fixed_port: port,
        };
        server.spawn();
        server
    }

    /// The HTTP port of the running server.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the server has logged so far (stdout and stderr).
    pub fn log_text(&self) -> String {
        let path = self
            .data_dir
            .path()
            .with_extension(format!("log{}", self.starts));
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// The HTTP endpoint of the running server.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self.data_dir.path()
    }

    /// Kills the process with SIGKILL (no graceful shutdown) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL on unix
            let _ = child.wait();
        }
    }

    /// Waits up to `timeout` for the server process to exit by itself;
    /// returns its exit status, or None while it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same data directory (on a new free
    /// port; see [`Server::endpoint`]) and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    fn spawn(&mut self) {
        assert!(
            self.bin.exists(),
            "partita binary not found at {} (build it with `cargo build -p partita`, \
             set PARTITA_BIN, or set DYNAMODB_ENDPOINT to test a running endpoint)",
            self.bin.display()
        );
        self.port = self.fixed_port.unwrap_or_else(free_port);
        self.starts += 1;
        let log_path = self
            .data_dir
            .path()
            .with_extension(format!("log{}", self.starts));
        let log = std::fs::File::create(&log_path).expect("create server log");
        let log_err = log.try_clone().expect("clone log handle");
        let mut cmd = Command::new(&self.bin);
        match cluster_partitions() {
            Some(partitions) => cmd
                .arg("dev-cluster")
                .arg("--partitions")
                .arg(partitions.to_string())
                .arg("--replicas")
                .arg("3")
                .arg("--port")
                .arg(self.port.to_string())
                .arg("--data-dir")
                .arg(self.data_dir.path())
                .args(node_args(&self.extra_args))
                .arg("--")
                .args(gateway_args(&self.extra_args)),
            None => cmd
                .arg("serve")
                .arg("--host")
                .arg("127.0.0.1")
                .arg("--port")
                .arg(self.port.to_string())
                .arg("--data-dir")
                .arg(self.data_dir.path())
                .args(&self.extra_args),
        };
        cmd.envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn().expect("spawn partita");
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let out = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!("partita exited before accepting connections ({status}):\n{out}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let out = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!("partita did not accept connections within {START_TIMEOUT:?}:\n{out}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        for i in 1..=self.starts {
            let path = self.data_dir.path().with_extension(format!("log{i}"));
            // A failing test shows the end of the server's log with its
            // own output (the log itself goes away with the data).
            if std::thread::panicking() {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
                eprintln!(
                    "--- last {} lines of the log of server :{} (start {i}) ---\n{}",
                    tail.len(),
                    self.port,
                    tail.join("\n")
                );
            }
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Lines of a server's log shown when a test using it fails.
const LOG_TAIL_LINES: usize = 60;

#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut Command) {}

/// With env `PARTITA_BLACKBOX_CLUSTER=N`, the harness starts `partita
/// dev-cluster --partitions N --replicas 3` (a gateway and N×3 Raft
/// replicas) instead of `partita serve`, so the same tests run through
/// cluster mode. Extra serve arguments go to the gateway (which has no
/// TLS listener or capacity flags yet).
pub fn cluster_partitions() -> Option<u32> {
    std::env::var("PARTITA_BLACKBOX_CLUSTER")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
}

/// `serve` flags (each with one value) that `dev-cluster` takes itself
/// and forwards to its nodes.
const NODE_FLAGS: [&str; 2] = ["--stream-retention", "--ttl-sweep-interval"];

/// The node-level flags of `serve` arguments `args`, with their values.
fn node_args(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if NODE_FLAGS.contains(&a.as_str()) {
            out.push(a.clone());
            out.extend(it.next().cloned());
        }
    }
    out
}

/// `args` without the node-level flags: what goes to the gateway.
fn gateway_args(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if NODE_FLAGS.contains(&a.as_str()) {
            it.next();
        } else {
            out.push(a.clone());
        }
    }
    out
}

/// A plain HTTP GET of `path` on 127.0.0.1:`port` (an admin listener):
/// (status code, body).
pub fn admin_get(port: u16, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the admin port");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    (status, body.to_string())
}

/// The path of the `partita` binary the harness starts.
pub fn partita_binary() -> PathBuf {
    partita_bin()
}

fn partita_bin() -> PathBuf {
    if let Ok(p) = std::env::var("PARTITA_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("debug").join("partita")
}

/// Returns a free loopback port.
pub fn free_loopback_port() -> u16 {
    free_port()
}

/// A free loopback port below the kernel's ephemeral range.
///
/// A test often picks ports a while before a server binds them (every
/// region's port before the first region starts). A port from the
/// ephemeral range could meanwhile be handed to any socket bound to port 0
/// — a dev-cluster node's admin listener, an outgoing connection — and the
/// test would then talk to that. Ports below the range are only ever taken
/// by someone who asked for them by number.
fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    if low > 12_000 {
        for _ in 0..64 {
            let random = std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish();
            let port = 10_000 + (random % u64::from(low - 10_000)) as u16;
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    let l = TcpListener::bind("127.0.0.1:0").expect("bind ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// The external endpoint from `DYNAMODB_ENDPOINT`, if set.
pub fn external_endpoint() -> Option<String> {
    std::env::var("DYNAMODB_ENDPOINT")
        .ok()
        .filter(|s| !s.is_empty())
}

/// True when the tests run against DynamoDB Local (AWS's emulator), whose
/// known differences from DynamoDB some tests skip.
pub fn is_dynamodb_local() -> bool {
    static DETECTED: OnceLock<bool> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        match std::env::var("DYNAMODB_LOCAL").as_deref() {
            Ok("1") | Ok("true") => return true,
            Ok("0") | Ok("false") => return false,
            _ => {}
        }
        let Some(endpoint) = external_endpoint() else {
            return false;
        };
        let resp = raw_post(
            &endpoint,
            Some("DynamoDB_20120810.ListTables"),
            b"{\"Limit\":1}",
        );
        resp.header("server").is_some_and(|s| s.contains("Jetty"))
    })
}

/// Returns true (after printing why) when the current target cannot run a
/// test that kills and restarts the server.
pub fn skip_without_own_server(test: &str) -> bool {
    if external_endpoint().is_some() {
        println!("SKIP {test}: needs to kill and restart its own server; DYNAMODB_ENDPOINT is set");
        return true;
    }
    false
}

/// Returns true (after printing why) when running against DynamoDB Local,
/// which is known to differ from DynamoDB in what `test` asserts.
pub fn skip_on_dynamodb_local(test: &str, reason: &str) -> bool {
    if is_dynamodb_local() {
        println!("SKIP {test} on DynamoDB Local: {reason}");
        return true;
    }
    false
}

/// A test's connection to the server under test.
pub struct TestEnv {
    /// The server this test started, or None for an external endpoint.
    pub server: Option<Server>,
    endpoint: String,
    /// An SDK client for [`TestEnv::endpoint`].
    pub client: Client,
}

impl TestEnv {
    /// Starts a server (or uses `DYNAMODB_ENDPOINT`) and builds a client.
    pub fn new() -> TestEnv {
        let (server, endpoint) = match external_endpoint() {
            Some(e) => (None, e),
            None => {
                let s = Server::start();
                let e = s.endpoint();
                (Some(s), e)
            }
        };
        let client = client_for(&endpoint);
        TestEnv {
            server,
            endpoint,
            client,
        }
    }

    /// The endpoint URL, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Kills the server with SIGKILL, starts it again on the same data
    /// directory and reconnects the client. Panics for external endpoints.
    pub fn kill9_and_restart(&mut self) {
        let server = self.server.as_mut().expect("restart needs an own server");
        server.restart();
        self.endpoint = server.endpoint();
        self.client = client_for(&self.endpoint);
    }

    /// Sends a raw JSON request for `op` (e.g. `"PutItem"`).
    pub fn raw(&self, op: &str, body: &serde_json::Value) -> RawResponse {
        let target = format!("DynamoDB_20120810.{op}");
        raw_post(&self.endpoint, Some(&target), body.to_string().as_bytes())
    }

    /// Sends raw bytes with the given `X-Amz-Target` header (None omits it).
    pub fn raw_bytes(&self, target: Option<&str>, body: &[u8]) -> RawResponse {
        raw_post(&self.endpoint, target, body)
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

/// Builds an `aws-sdk-dynamodb` client for `endpoint` with static
/// credentials, no retries (tests see the first answer) and plain HTTP.
pub fn client_for(endpoint: &str) -> Client {
    let http = aws_smithy_http_client::Builder::new().build_http();
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(
            ACCESS_KEY,
            "partita-test-secret",
            None,
            None,
            "partita-blackbox",
        ))
        .endpoint_url(endpoint)
        .http_client(http)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(120))
                .build(),
        )
        .build();
    Client::from_conf(config)
}

/// Builds a client like [`client_for`] with the given region and
/// credentials (and session token).
pub fn client_with_credentials(
    endpoint: &str,
    region: &str,
    access_key: &str,
    secret: &str,
    session_token: Option<&str>,
) -> Client {
    let http = aws_smithy_http_client::Builder::new().build_http();
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .credentials_provider(Credentials::new(
            access_key,
            secret,
            session_token.map(str::to_string),
            None,
            "partita-blackbox",
        ))
        .endpoint_url(endpoint)
        .http_client(http)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(120))
                .build(),
        )
        .build();
    Client::from_conf(config)
}

/// Sends one raw HTTP/1.1 request (`target` is the request target, e.g.
/// `/` or `/?X-Amz-Algorithm=...`) with exactly these headers (plus
/// Content-Length and Connection: close) and returns the response.
pub fn raw_http(
    endpoint: &str,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> RawResponse {
    let hostport = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut stream = TcpStream::connect(&hostport).expect("connect to endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("set read timeout");
    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes).expect("write request");
    let _ = stream.flush();
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    parse_response(&buf)
}

/// Parses a raw HTTP/1.1 response (head and body).
pub fn parse_raw_response(buf: &[u8]) -> RawResponse {
    parse_response(buf)
}

/// Returns a table name unique to this process and call.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("bb_{prefix}_{}_{nanos:x}_{n}", std::process::id())
}

/// An error as the client saw it: the `__type` without its namespace, and
/// the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

/// Unwraps a service error, panicking on success or on a non-service error.
pub fn api_err<T: std::fmt::Debug, E, R>(result: Result<T, SdkError<E, R>>) -> ApiError
where
    E: ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match result {
        Ok(v) => panic!("expected an error response, got success: {v:?}"),
        Err(SdkError::ServiceError(e)) => ApiError {
            code: e.err().code().unwrap_or_default().to_string(),
            message: e.err().message().unwrap_or_default().to_string(),
        },
        Err(other) => panic!("expected a service error, got {other:?}"),
    }
}

/// Asserts that `result` failed with exactly this error type and message.
pub fn assert_api_err<T: std::fmt::Debug, E, R>(
    result: Result<T, SdkError<E, R>>,
    code: &str,
    message: &str,
) where
    E: ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    let e = api_err(result);
    assert_eq!(
        (e.code.as_str(), e.message.as_str()),
        (code, message),
        "unexpected error"
    );
}

/// An item as the SDK represents it.
pub type Item = HashMap<String, AttributeValue>;

/// `{"S": v}`
pub fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

/// `{"N": v}`
pub fn n(v: &str) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Builds an item from name/value pairs.
pub fn item<const K: usize>(pairs: [(&str, AttributeValue); K]) -> Item {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// The `S` value of attribute `name`, panicking if absent or not a string.
pub fn get_s<'a>(item: &'a Item, name: &str) -> &'a str {
    match item.get(name) {
        Some(AttributeValue::S(v)) => v,
        other => panic!("attribute {name}: expected S, got {other:?} in {item:?}"),
    }
}

/// The `N` value of attribute `name`, panicking if absent or not a number.
pub fn get_n<'a>(item: &'a Item, name: &str) -> &'a str {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v,
        other => panic!("attribute {name}: expected N, got {other:?} in {item:?}"),
    }
}

/// Key attribute of a table: name and scalar type.
pub type KeyAttr<'a> = (&'a str, ScalarAttributeType);

/// Creates an on-demand table with the given hash (and optional range) key
/// and waits until it is ACTIVE. Returns the name.
pub async fn create_table(
    client: &Client,
    name: &str,
    hash: KeyAttr<'_>,
    range: Option<KeyAttr<'_>>,
) -> String {
    let mut req = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr_def(hash.0, hash.1.clone()))
        .key_schema(key_elem(hash.0, KeyType::Hash));
    if let Some((rname, rtype)) = range {
        req = req
            .attribute_definitions(attr_def(rname, rtype))
            .key_schema(key_elem(rname, KeyType::Range));
    }
    req.send().await.expect("create table");
    wait_active(client, name).await;
    name.to_string()
}

/// Creates a table keyed by `pk` (S) only.
pub async fn create_hash_table(client: &Client, prefix: &str) -> String {
    let name = unique_name(prefix);
    create_table(client, &name, ("pk", ScalarAttributeType::S), None).await
}

/// Creates a table keyed by `pk` (S) and `sk` (S).
pub async fn create_composite_table(client: &Client, prefix: &str) -> String {
    let name = unique_name(prefix);
    create_table(
        client,
        &name,
        ("pk", ScalarAttributeType::S),
        Some(("sk", ScalarAttributeType::S)),
    )
    .await
}

/// An attribute definition.
pub fn attr_def(name: &str, t: ScalarAttributeType) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(t)
        .build()
        .expect("attribute definition")
}

/// A key schema element.
pub fn key_elem(name: &str, t: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(t)
        .build()
        .expect("key schema element")
}

/// Polls DescribeTable until the table is ACTIVE (at most 60 s).
pub async fn wait_active(client: &Client, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .expect("describe table");
        if d.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "table {name} not ACTIVE within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deletes a table (turning deletion protection off is the caller's job).
pub async fn delete_table(client: &Client, name: &str) {
    client
        .delete_table()
        .table_name(name)
        .send()
        .await
        .expect("delete table");
}

/// A raw HTTP response.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Header names are lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first header with this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON (panics if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The error type from `__type`, without its namespace prefix.
    pub fn error_type(&self) -> String {
        let v = self.json();
        let t = v["__type"]
            .as_str()
            .unwrap_or_else(|| panic!("no __type in {v}"));
        t.rsplit('#').next().unwrap_or(t).to_string()
    }

    /// The error message (`message` or `Message`), if any.
    pub fn error_message(&self) -> Option<String> {
        let v = self.json();
        v.get("message")
            .or_else(|| v.get("Message"))
            .and_then(|m| m.as_str())
            .map(str::to_string)
    }
}

/// POSTs `body` to `/` of `endpoint` with the DynamoDB JSON 1.0 headers and a
/// syntactically valid (unverified) SigV4 Authorization header.
pub fn raw_post(endpoint: &str, target: Option<&str>, body: &[u8]) -> RawResponse {
    let hostport = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut stream = TcpStream::connect(&hostport).expect("connect to endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("set read timeout");
    let mut head = format!(
        "POST / HTTP/1.1\r\nHost: {hostport}\r\n\
         Content-Type: application/x-amz-json-1.0\r\n\
         X-Amz-Date: 20260101T000000Z\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20260101/{REGION}/dynamodb/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=00\r\n\
         Content-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(t) = target {
        head.push_str(&format!("X-Amz-Target: {t}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .expect("write request head");
    // A server may answer (and close) before it has read an oversize body.
    let _ = stream.write_all(body);
    let _ = stream.flush();
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    parse_response(&buf)
}

fn parse_response(buf: &[u8]) -> RawResponse {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no HTTP response head in {:?}",
                String::from_utf8_lossy(buf)
            )
        });
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &buf[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else if let Some(len) = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        rest[..len.min(rest.len())].to_vec()
    } else {
        rest.to_vec()
    };
    RawResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = data.windows(2).position(|w| w == b"\r\n") {
        let size_str = String::from_utf8_lossy(&data[..pos]).to_string();
        let size =
            usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        data = &data[pos + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[(size + 2).min(data.len())..];
    }
    out
}
