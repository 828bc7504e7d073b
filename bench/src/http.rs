//! A minimal HTTP/1.1 keep-alive client connection: writes a prepared request,
//! reads one response (Content-Length or chunked), one request in flight.
//!
//! Hand-rolled rather than a general client because the generator shares two
//! cores with the server it measures: the hot path writes prepared bytes and
//! reads into buffers reused across requests, so a steady-state request
//! allocates nothing.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one request may take before it fails and the connection is
/// replaced. Keeps every phase bounded even against a hung server.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest response body accepted (a Query page is at most 1 MB of items).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// One keep-alive connection.
pub struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    /// Bytes read from the socket not yet consumed.
    buf: Vec<u8>,
    /// The body of the last response (de-chunked).
    body: Vec<u8>,
}

/// Where a response's body ends.
enum Framing {
    Length(usize),
    Chunked,
}

impl Conn {
    /// Opens a connection to `addr`.
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Conn> {
        let mut c = Conn {
            addr,
            stream: None,
            buf: Vec::with_capacity(16 * 1024),
            body: Vec::with_capacity(16 * 1024),
        };
        c.connect().await?;
        Ok(c)
    }

    async fn connect(&mut self) -> anyhow::Result<()> {
        self.stream = None;
        self.buf.clear();
        let stream = tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(self.addr))
            .await
            .with_context(|| format!("connecting to {}: timed out", self.addr))?
            .with_context(|| format!("connecting to {}", self.addr))?;
        stream.set_nodelay(true)?;
        self.stream = Some(stream);
        Ok(())
    }

    /// Sends `request` (a complete HTTP/1.1 message) and returns the status;
    /// the body is then in [`Conn::body`]. On any failure the connection is
    /// dropped and reopened on the next call.
    pub async fn call(&mut self, request: &[u8]) -> anyhow::Result<u16> {
        if self.stream.is_none() {
            self.connect().await?;
        }
        match tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(request)).await {
            Ok(Ok((status, keep_alive))) => {
                if !keep_alive {
                    self.stream = None;
                }
                Ok(status)
            }
            Ok(Err(e)) => {
                self.stream = None;
                Err(e)
            }
            Err(_) => {
                self.stream = None;
                bail!("no response within {REQUEST_TIMEOUT:?}")
            }
        }
    }

    /// The body of the last successful response.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    async fn exchange(&mut self, request: &[u8]) -> anyhow::Result<(u16, bool)> {
        let Some(stream) = self.stream.as_mut() else {
            bail!("not connected");
        };
        stream.write_all(request).await?;
        self.buf.clear();
        self.body.clear();
        // Head.
        let (status, head_len, framing, keep_alive) = loop {
            if let Some(head) = parse_head(&self.buf)? {
                break head;
            }
            if self.buf.len() > MAX_HEAD {
                bail!("response head over {MAX_HEAD} bytes");
            }
            read_more(stream, &mut self.buf).await?;
        };
        let mut pos = head_len;
        match framing {
            Framing::Length(n) => {
                if n > MAX_BODY {
                    bail!("response body of {n} bytes");
                }
                while self.buf.len() < pos + n {
                    read_more(stream, &mut self.buf).await?;
                }
                self.body.extend_from_slice(&self.buf[pos..pos + n]);
            }
            Framing::Chunked => loop {
                // Chunk size line.
                let (size, line_len) = loop {
                    match httparse::parse_chunk_size(&self.buf[pos..]) {
                        Ok(httparse::Status::Complete((used, size))) => break (size, used),
                        Ok(httparse::Status::Partial) => read_more(stream, &mut self.buf).await?,
                        Err(_) => bail!("malformed chunk size"),
                    }
                };
                pos += line_len;
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                if size > MAX_BODY || self.body.len() + size > MAX_BODY {
                    bail!("chunked body over {MAX_BODY} bytes");
                }
                if size == 0 {
                    // Trailers (none expected) end with an empty line.
                    loop {
                        if let Some(end) = find(&self.buf[pos..], b"\r\n") {
                            if end == 0 {
                                break;
                            }
                            pos += end + 2;
                        } else {
                            read_more(stream, &mut self.buf).await?;
                        }
                    }
                    break;
                }
                while self.buf.len() < pos + size + 2 {
                    read_more(stream, &mut self.buf).await?;
                }
                self.body.extend_from_slice(&self.buf[pos..pos + size]);
                pos += size + 2;
            },
        }
        Ok((status, keep_alive))
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<()> {
    buf.reserve(8 * 1024);
    let n = stream.read_buf(buf).await?;
    if n == 0 {
        bail!("connection closed by server");
    }
    Ok(())
}

/// Parses a complete response head: status, head length, framing, keep-alive.
fn parse_head(buf: &[u8]) -> anyhow::Result<Option<(u16, usize, Framing, bool)>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf).context("malformed response head")? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let status = resp.code.unwrap_or(0);
    let mut framing = Framing::Length(0);
    let mut keep_alive = resp.version == Some(1);
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .context("bad Content-Length")?;
            framing = Framing::Length(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding")
            && contains_ignore_case(h.value, b"chunked")
        {
            framing = Framing::Chunked;
        } else if h.name.eq_ignore_ascii_case("connection") {
            if contains_ignore_case(h.value, b"close") {
                keep_alive = false;
            } else if contains_ignore_case(h.value, b"keep-alive") {
                keep_alive = true;
            }
        }
    }
    Ok(Some((status, head_len, framing, keep_alive)))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// Serves `responses` in order on one connection, then closes it.
    async fn serve(responses: Vec<&'static [u8]>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            for r in responses {
                let _ = s.read(&mut buf).await.unwrap();
                // Split the response to exercise partial reads.
                let mid = r.len() / 2;
                s.write_all(&r[..mid]).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
                s.write_all(&r[mid..]).await.unwrap();
            }
        });
        addr
    }

    #[tokio::test]
    async fn reads_length_and_chunked_bodies_on_one_connection() {
        let addr = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
            b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
        ])
        .await;
        let mut c = Conn::open(addr).await.unwrap();
        assert_eq!(c.call(b"x").await.unwrap(), 200);
        assert_eq!(c.body(), b"{}");
        assert_eq!(c.call(b"x").await.unwrap(), 400);
        assert_eq!(c.body(), b"{\"a\":1}");
        assert_eq!(c.call(b"x").await.unwrap(), 200);
        assert_eq!(c.body(), b"");
        // The server closed: the next call fails, and the one after reconnects
        // (and fails again, since nothing listens any more).
        assert!(c.call(b"x").await.is_err());
    }

    #[test]
    fn connection_close_is_honoured() {
        let (_, _, _, keep) = parse_head(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!keep);
        let (_, _, _, keep) = parse_head(b"HTTP/1.0 200 OK\r\n\r\n").unwrap().unwrap();
        assert!(!keep);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-")
            .unwrap()
            .is_none());
    }
}
