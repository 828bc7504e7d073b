//! Measures the load generator itself against a trivial HTTP server that
//! answers every request with `{}`. The server runs as a child process (this
//! binary's hidden `trivial-server` command) so the generator's own CPU use is
//! measured apart from the server's, and it is driven exactly like a GetItem
//! phase. Its throughput is the ceiling the generator can observe here.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::load::{self, Feed, PhaseResult};
use crate::protocol::{Op, Wire};
use crate::setup::DataSet;

/// Serves `{}` to every request on `127.0.0.1:port` until killed.
pub async fn serve_trivial(port: u16) -> anyhow::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let svc = service_fn(|_req: Request<hyper::body::Incoming>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{}"))))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Kills the child server when dropped, whatever happens to the measurement.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the trivial server as a child process and runs a GetItem-shaped
/// phase against it.
pub async fn run(
    connections: usize,
    duration: Duration,
    server_threads: usize,
) -> anyhow::Result<PhaseResult> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(std::env::current_exe()?)
        .args(["--client-threads", &server_threads.max(1).to_string()])
        .args(["trivial-server", "--port", &port.to_string()])
        .stdin(Stdio::null())
        .spawn()?;
    let _guard = ChildGuard(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let wire = Wire::new(&addr.to_string());
    // Wait (bounded) for the child to listen.
    let mut up = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::ensure!(up, "trivial server did not start on {addr}");
    let requests = DataSet {
        get_keys: 10_000,
        query_keys: 0,
    }
    .requests(&wire);
    load::run_phase(
        addr,
        &wire,
        Op::GetItem,
        Feed::Random(requests.get),
        connections,
        duration,
    )
    .await
}
