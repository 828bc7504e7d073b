//! Internal RPC: gateway → node and node → node (Raft).
//!
//! One TCP connection per peer address carries many calls at once
//! (multiplexed, pipelined): each frame is
//! `[u32 length][u8 wire version][u64 call id][bincode payload]`, and
//! answers come back with the caller's call id in whatever order they
//! finish. Every call has a deadline; a call whose deadline passes fails
//! with [`RpcError::Timeout`] and its late answer is dropped. A broken
//! connection fails its pending calls with [`RpcError::Connection`] and the
//! next call reconnects. Readers accept wire versions `1..=WIRE_VERSION`.
//!
//! Transport: plain TCP by default; with [`crate::tls::RpcTls`] the
//! listener ([`serve_tls`]) and the dialer ([`Client::with_tls`]) speak
//! mutual TLS, and a peer without a certificate from the cluster's CA is
//! refused during the handshake, before any frame is read.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use partita_expr::SortKeyCondition;
use partita_model::schema::IndexState;
use partita_model::{AttributeValue, Item, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::types::{Command, Reply, TypeConfig, WireError};

/// Version of the frame layout and payload encoding this build writes.
pub const WIRE_VERSION: u8 = 1;
/// Largest frame accepted (snapshot chunks are far smaller).
const MAX_FRAME: usize = 64 * 1024 * 1024;

/// Which partition replica a request is for; checked by the node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Target {
    pub table: String,
    pub partition: u32,
    /// The sender's topology epoch of the table.
    pub epoch: u64,
}

/// A call.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    AppendEntries(Target, openraft::raft::AppendEntriesRequest<TypeConfig>),
    Vote(Target, openraft::raft::VoteRequest<u64>),
    InstallSnapshot(Target, openraft::raft::InstallSnapshotRequest<TypeConfig>),
    /// Replicate and apply a command (leader only).
    Write(Target, Command),
    Get {
        target: Target,
        table: String,
        key: Item,
        consistent: bool,
    },
    /// One page of a Query (on the table or a local index).
    Query {
        target: Target,
        table: String,
        index: Option<String>,
        hash_value: AttributeValue,
        sort: Option<SortKeyCondition>,
        forward: bool,
        exclusive_start: Option<Item>,
        limit: u32,
        consistent: bool,
    },
    /// One page of a Scan segment of this replica's data.
    Scan {
        target: Target,
        table: String,
        index: Option<String>,
        segment: u32,
        total_segments: u32,
        exclusive_start: Option<Item>,
        limit: u32,
        consistent: bool,
    },
    TransactGet {
        target: Target,
        gets: Vec<(String, Item)>,
    },
    /// The table's definition and this replica's statistics.
    Describe {
        target: Target,
        table: String,
    },
    /// Statistics and state of an index on this replica.
    IndexInfo {
        target: Target,
        table: String,
        index: String,
    },
    /// Raft status of this replica (for tests, dev-cluster and health).
    Status(Target),
    /// The tables this replica holds (dynamic tables; leader, linearizable).
    ListTables(Target),
    /// The table's incarnation id and streams (leader, linearizable).
    Streams {
        target: Target,
        table: String,
    },
    /// A page of the table's change log, from this replica's store (which
    /// holds the partition as its partition 0) without a read-index round:
    /// possibly behind, never different.
    ReadChanges {
        target: Target,
        table: String,
        from: u64,
        until: Option<u64>,
        limit: u32,
    },
    /// The table's replication state (leader, linearizable).
    Replication {
        target: Target,
        table: String,
    },
    /// A page of a full copy of this partition (leader, linearizable).
    CopyPage {
        target: Target,
        table: String,
        after: Option<Vec<u8>>,
        limit: u32,
    },
    /// This partition's replication cursor towards `region`.
    Cursor {
        target: Target,
        table: String,
        region: String,
    },
    /// Where this replica stands in founding its group (see
    /// `identity`): answered before the replica's Raft exists.
    Founding(Target),
    /// `request`, for member `.0` of the partition only: a replica whose
    /// member id differs refuses it (Raft peers and membership calls name
    /// the member they are for, so a rebuilt process never answers for an
    /// identity it no longer has).
    ForMember(u64, Box<Request>),
    /// The partition's membership as this replica sees it.
    Members(Target),
    /// A membership change (leader only; see [`MemberChange`]).
    ChangeMembers(Target, MemberChange),
    /// Which member this replica is and where it stands: answered before
    /// the replica's Raft exists (a blank member tells the id to add).
    Identity(Target),
}

/// A change of a partition's membership, made through Raft by its leader
/// (openraft's learner → voter path; every change is idempotent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberChange {
    /// Adds `member`, listening at `address`, as a learner and answers
    /// once it has caught up with the leader's log (a snapshot, then the
    /// log).
    AddLearner { member: u64, address: String },
    /// Makes the learner `member` a voter (joint consensus).
    Promote { member: u64 },
    /// Removes `member`, voter or learner, from the membership.
    Remove { member: u64 },
}

/// One member of a partition's group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub id: u64,
    pub address: String,
    pub voter: bool,
    /// The last log index the leader knows the member holds (answered by
    /// the leader only).
    pub matched: Option<u64>,
}

/// A partition's membership as one replica sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The member that answered.
    pub member: u64,
    pub leader: Option<u64>,
    pub term: u64,
    /// The log index of the membership entry in effect (`None`: the
    /// replica is not part of any membership yet, a blank member).
    pub log_index: Option<u64>,
    /// True while a change is in its joint phase (old and new voters).
    pub joint: bool,
    pub members: Vec<MemberInfo>,
    pub last_log: Option<u64>,
}

impl Membership {
    /// True when `member` is a voter or learner of this membership.
    pub fn contains(&self, member: u64) -> bool {
        self.members.iter().any(|m| m.id == member)
    }

    /// The voters' ids.
    pub fn voters(&self) -> Vec<u64> {
        self.members
            .iter()
            .filter(|m| m.voter)
            .map(|m| m.id)
            .collect()
    }
}

/// Where a replica stands in founding its group (`Request::Founding`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FoundingState {
    /// An empty data directory that has not decided yet.
    Undecided,
    /// A founding member that durably promised to found the group and
    /// waits until every founding member promised.
    Promised,
    /// A member of the group (it founded it, or was one before).
    Member,
    /// A new member on an empty data directory of a group that exists: it
    /// waits to be added and takes no part in the group meanwhile.
    Blank,
    /// A member that was removed from the group: it answers nothing and
    /// can only rejoin as a new member (an empty data directory).
    Removed,
}

/// A page of items; `more` when the replica stopped at `limit`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Page {
    pub items: Vec<Item>,
    pub more: bool,
    /// A transaction holding an item of the page's table on this replica
    /// when the page was read (two-phase commit, see `txn`): the page may
    /// show it applied in another group and not yet here, so the router
    /// waits for it (or recovers it) and reads the page again.
    pub lock: Option<crate::types::TxRef>,
}

/// A replica's Raft status.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    pub node_id: u64,
    pub term: u64,
    pub leader: Option<u64>,
    pub last_applied: Option<u64>,
    pub last_log: Option<u64>,
    pub snapshot: Option<u64>,
}

/// Why a node refused or failed a call. `NotLeader`, `StaleEpoch`,
/// `WrongPartition` and `Unavailable` are retryable by the gateway.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum NodeError {
    #[error("replica is not the leader of partition {partition}")]
    NotLeader {
        partition: u32,
        /// Address of the leader this replica knows of.
        leader_hint: Option<String>,
    },
    #[error("the caller's topology is stale: current epoch {current}")]
    StaleEpoch { current: u64 },
    #[error("this replica serves table {table:?} partition {partition}")]
    WrongPartition { table: String, partition: u32 },
    #[error("replica unavailable: {0}")]
    Unavailable(String),
    #[error("storage: {0:?}")]
    Storage(WireError),
    /// A membership change was refused (e.g. it would leave no voter) or
    /// failed; the message says why.
    #[error("membership change refused: {0}")]
    Membership(String),
}

/// An answer.
#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    AppendEntries(
        Result<openraft::raft::AppendEntriesResponse<u64>, openraft::error::RaftError<u64>>,
    ),
    Vote(Result<openraft::raft::VoteResponse<u64>, openraft::error::RaftError<u64>>),
    InstallSnapshot(
        Result<
            openraft::raft::InstallSnapshotResponse<u64>,
            openraft::error::RaftError<u64, openraft::error::InstallSnapshotError>,
        >,
    ),
    Write(Result<Reply, NodeError>),
    Item(Result<Option<Item>, NodeError>),
    Page(Result<Page, NodeError>),
    Items(Result<Vec<Option<Item>>, NodeError>),
    /// A table's definition, item count and size (boxed: the largest
    /// answer).
    Describe(Result<Box<(TableDefinition, u64, u64)>, NodeError>),
    IndexInfo(Result<(IndexState, u64, u64), NodeError>),
    Status(Result<Status, NodeError>),
    /// The node could not decode the call (e.g. a newer wire version).
    BadRequest(String),
    Names(Result<Vec<String>, NodeError>),
    Streams(Result<(String, Vec<partita_storage::StreamInfo>), NodeError>),
    Changes(Result<partita_storage::ChangePage, NodeError>),
    Replication(Result<Option<partita_storage::ReplicationState>, NodeError>),
    CopyPage(Result<partita_storage::CopyPage, NodeError>),
    Cursor(Result<Option<u64>, NodeError>),
    Founding(FoundingState),
    Members(Result<Membership, NodeError>),
    /// The answering replica's member id (`None`: not decided yet) and
    /// where it stands.
    Identity(Option<u64>, FoundingState),
}

/// Why a call failed before a node answered.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RpcError {
    /// Nothing was sent: the peer could not be reached (safe to retry).
    #[error("cannot connect to {address}: {message}")]
    Connect { address: String, message: String },
    #[error("connection to {address} failed: {message}")]
    Connection { address: String, message: String },
    #[error("call to {address} timed out")]
    Timeout { address: String },
    #[error("bad frame from {address}: {message}")]
    Decode { address: String, message: String },
}

fn encode_frame(id: u64, payload: &impl Serialize) -> Result<Vec<u8>, String> {
    let body = bincode::serialize(payload).map_err(|e| e.to_string())?;
    let len = 1 + 8 + body.len();
    if len > MAX_FRAME {
        return Err(format!("frame of {len} bytes exceeds the limit"));
    }
    let mut frame = Vec::with_capacity(4 + len);
    frame.extend_from_slice(&(len as u32).to_be_bytes());
    frame.push(WIRE_VERSION);
    frame.extend_from_slice(&id.to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Reads one frame: (call id, payload bytes).
async fn read_frame<R: AsyncReadExt + Unpin>(r: &mut R) -> std::io::Result<(u64, u8, Vec<u8>)> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if !(9..=MAX_FRAME).contains(&len) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame length {len}"),
        ));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    let version = buf[0];
    let mut id = [0u8; 8];
    id.copy_from_slice(&buf[1..9]);
    buf.drain(..9);
    Ok((u64::from_be_bytes(id), version, buf))
}

type Pending = Arc<Mutex<Option<HashMap<u64, oneshot::Sender<Vec<u8>>>>>>;

struct Connection {
    frames: mpsc::UnboundedSender<Vec<u8>>,
    pending: Pending,
}

/// How long a TLS handshake may take (either side).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A multiplexed client of one peer address.
pub struct Client {
    address: String,
    next_id: AtomicU64,
    conn: tokio::sync::Mutex<Option<Arc<Connection>>>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Client {
    /// A plaintext client.
    pub fn new(address: String) -> Client {
        Client::with_tls(address, None)
    }

    /// A client that speaks TLS with `tls` (mutual when the configuration
    /// carries a client certificate), or plaintext with `None`.
    pub fn with_tls(address: String, tls: Option<Arc<rustls::ClientConfig>>) -> Client {
        Client {
            address,
            next_id: AtomicU64::new(1),
            conn: tokio::sync::Mutex::new(None),
            tls,
        }
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    async fn connection(&self) -> Result<Arc<Connection>, RpcError> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            if c.pending.lock().is_some() {
                return Ok(c.clone());
            }
        }
        let stream = TcpStream::connect(&self.address)
            .await
            .map_err(|e| RpcError::Connect {
                address: self.address.clone(),
                message: e.to_string(),
            })?;
        let _ = stream.set_nodelay(true);
        let conn = match &self.tls {
            None => {
                let (reader, writer) = stream.into_split();
                start_connection(reader, writer)
            }
            Some(config) => {
                let connect_error = |message: String| RpcError::Connect {
                    address: self.address.clone(),
                    message,
                };
                let name = crate::tls::server_name(&self.address)
                    .map_err(|e| connect_error(e.to_string()))?;
                let connector = tokio_rustls::TlsConnector::from(config.clone());
                let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(name, stream))
                    .await
                    .map_err(|_| connect_error("TLS handshake timed out".into()))?
                    .map_err(|e| connect_error(format!("TLS handshake: {e}")))?;
                let (reader, writer) = tokio::io::split(tls);
                start_connection(reader, writer)
            }
        };
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// Sends `request` and waits for its answer until `timeout`.
    pub async fn call(&self, request: &Request, timeout: Duration) -> Result<Response, RpcError> {
        let fut = self.call_inner(request);
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(RpcError::Timeout {
                address: self.address.clone(),
            }),
        }
    }

    async fn call_inner(&self, request: &Request) -> Result<Response, RpcError> {
        let conn = self.connection().await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = encode_frame(id, request).map_err(|message| RpcError::Decode {
            address: self.address.clone(),
            message,
        })?;
        let (tx, rx) = oneshot::channel();
        let broken = || RpcError::Connection {
            address: self.address.clone(),
            message: "connection closed".into(),
        };
        match conn.pending.lock().as_mut() {
            Some(map) => {
                map.insert(id, tx);
            }
            None => return Err(broken()),
        }
        if conn.frames.send(frame).is_err() {
            return Err(broken());
        }
        let _cleanup = PendingGuard {
            pending: conn.pending.clone(),
            id,
        };
        let body = rx.await.map_err(|_| broken())?;
        bincode::deserialize(&body).map_err(|e| RpcError::Decode {
            address: self.address.clone(),
            message: e.to_string(),
        })
    }
}

/// Starts the writer and reader tasks of a client connection.
fn start_connection<R, W>(mut reader: R, mut writer: W) -> Arc<Connection>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
    let writer_pending = pending.clone();
    tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if writer.write_all(&frame).await.is_err() {
                break;
            }
        }
        writer_pending.lock().take();
    });
    let reader_pending = pending.clone();
    tokio::spawn(async move {
        while let Ok((id, _version, body)) = read_frame(&mut reader).await {
            let waiter = reader_pending.lock().as_mut().and_then(|m| m.remove(&id));
            if let Some(w) = waiter {
                let _ = w.send(body);
            }
        }
        // Dropping the senders fails every pending call.
        reader_pending.lock().take();
    });
    Arc::new(Connection {
        frames: tx,
        pending,
    })
}

/// Removes a call's waiter when the call ends (answered, timed out or dropped).
struct PendingGuard {
    pending: Pending,
    id: u64,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        if let Some(map) = self.pending.lock().as_mut() {
            map.remove(&self.id);
        }
    }
}

/// A pool of clients, one per address.
#[derive(Default)]
pub struct Clients {
    clients: Mutex<HashMap<String, Arc<Client>>>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Clients {
    /// A pool whose clients speak TLS with `tls` (plaintext with `None`).
    pub fn with_tls(tls: Option<Arc<rustls::ClientConfig>>) -> Clients {
        Clients {
            clients: Mutex::default(),
            tls,
        }
    }

    pub fn get(&self, address: &str) -> Arc<Client> {
        self.clients
            .lock()
            .entry(address.to_string())
            .or_insert_with(|| Arc::new(Client::with_tls(address.to_string(), self.tls.clone())))
            .clone()
    }
}

/// Serves calls on `listener` with `handler` in plaintext until the future
/// ends (never, unless accepting fails for good).
pub async fn serve<H, F>(listener: TcpListener, handler: H)
where
    H: Fn(Request) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    serve_tls(listener, None, handler).await
}

/// [`serve`] over TLS with `tls` (which decides whether client
/// certificates are required), or plaintext with `None`.
pub async fn serve_tls<H, F>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: H,
) where
    H: Fn(Request) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "rpc accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                None => {
                    let (reader, writer) = stream.into_split();
                    serve_connection(reader, writer, peer, handler).await;
                }
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let (reader, writer) = tokio::io::split(tls);
                            serve_connection(reader, writer, peer, handler).await;
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(%peer, error = %e, "rpc TLS handshake refused");
                        }
                        Err(_) => tracing::warn!(%peer, "rpc TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// Answers the calls of one accepted connection until it closes.
async fn serve_connection<R, W, H, F>(
    mut reader: R,
    mut writer: W,
    peer: std::net::SocketAddr,
    handler: H,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if writer.write_all(&frame).await.is_err() {
                break;
            }
        }
    });
    while let Ok((id, version, body)) = read_frame(&mut reader).await {
        let handler = handler.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let response = if version == 0 || version > WIRE_VERSION {
                Response::BadRequest(format!("unsupported wire version {version}"))
            } else {
                match bincode::deserialize::<Request>(&body) {
                    Ok(request) => handler(request).await,
                    Err(e) => Response::BadRequest(e.to_string()),
                }
            };
            match encode_frame(id, &response) {
                Ok(frame) => {
                    let _ = tx.send(frame);
                }
                Err(e) => tracing::warn!(%peer, error = %e, "rpc answer not sent"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_are_multiplexed_and_time_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(serve(listener, |req: Request| async move {
            match req {
                Request::Status(t) => {
                    // Later calls answer first: answers are matched by id.
                    tokio::time::sleep(Duration::from_millis(50 * (3 - t.partition as u64))).await;
                    Response::Status(Ok(Status {
                        node_id: t.partition as u64,
                        term: 0,
                        leader: None,
                        last_applied: None,
                        last_log: None,
                        snapshot: None,
                    }))
                }
                _ => {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Response::BadRequest("slow".into())
                }
            }
        }));
        let client = Arc::new(Client::new(address));
        let mut calls = Vec::new();
        for p in 0..3u32 {
            let client = client.clone();
            calls.push(tokio::spawn(async move {
                let target = Target {
                    table: "t".into(),
                    partition: p,
                    epoch: 1,
                };
                client
                    .call(&Request::Status(target), Duration::from_secs(2))
                    .await
            }));
        }
        for (p, call) in calls.into_iter().enumerate() {
            match call.await.unwrap().unwrap() {
                Response::Status(Ok(s)) => assert_eq!(s.node_id, p as u64),
                other => panic!("unexpected {other:?}"),
            }
        }
        let slow = client
            .call(
                &Request::Describe {
                    target: Target {
                        table: "t".into(),
                        partition: 0,
                        epoch: 1,
                    },
                    table: "t".into(),
                },
                Duration::from_millis(100),
            )
            .await;
        assert!(matches!(slow, Err(RpcError::Timeout { .. })));
    }
}
