//! The HTTP/1.1 client of the SockJS xhr transports: one keep-alive connection, one POST at a
//! time, the request written in one piece and the response read into one buffer the
//! connection keeps (head parsed by `httparse`, body by `Content-Length`, chunked, or up to the
//! close). A poll costs a write and a read or two, nothing allocated: the load generator
//! spends its core on the messages, not on an HTTP stack's tasks and channels.
//!
//! Bounds: the buffer is [`BUFFER`] bytes; a response head must fit in it; a body (or one
//! chunk of a chunked body) is handed over whole when it fits, else in pieces as they come.

use httparse::Status;
use std::net::{IpAddr, SocketAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bytes of a response held at once.
pub(crate) const BUFFER: usize = 64 * 1024;

/// Headers a response may have.
const MAX_HEADERS: usize = 32;

/// How a request failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The connection, used before, was closed before any byte of the response came: the
    /// server ended an idle keep-alive connection (the request may go again on a new one).
    Closed,
    Bad(String),
}

impl Failure {
    fn bad(what: impl std::fmt::Display) -> Failure {
        Failure::Bad(what.to_string())
    }
}

/// Where the connection is in the response being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// None being read.
    Done,
    /// `Content-Length`: bytes left.
    Length(usize),
    /// Chunked: a size line comes next.
    ChunkSize,
    /// Chunked: bytes left of the current chunk.
    Chunk(usize),
    /// Chunked: the `\r\n` after a chunk.
    ChunkEnd,
    /// Chunked: the `\r\n` after the last (empty) chunk; trailers are not read.
    LastChunkEnd,
    /// Neither: the body ends when the server closes the connection.
    UntilClose,
}

pub(crate) struct Conn {
    tcp: TcpStream,
    /// `Host:` of every request.
    host: String,
    /// Bytes read; `buf[start..end]` not handed over yet.
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    body: Body,
    /// Whether another request may follow on this connection.
    reusable: bool,
    /// Responses read whole on this connection.
    responses: u64,
    request: Vec<u8>,
}

impl Conn {
    /// Connects from `source` (a TCP connection of [`crate::client::tcp_from`]).
    pub(crate) async fn open(server: SocketAddr, source: IpAddr) -> Result<Conn, String> {
        let tcp = crate::client::tcp_from(source, server)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        Ok(Conn {
            tcp,
            host: server.to_string(),
            buf: vec![0; BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            body: Body::Done,
            reusable: true,
            responses: 0,
            request: Vec::with_capacity(256),
        })
    }

    /// Whether a new request may go over this connection (the last response was read whole
    /// and did not close it).
    pub(crate) fn is_reusable(&self) -> bool {
        self.reusable && self.body == Body::Done
    }

    /// POSTs `body` (text/plain) to `path` and reads the response head; returns its status.
    /// Its body is then read with [`Conn::body_chunk`].
    pub(crate) async fn post(&mut self, path: &str, body: &[u8]) -> Result<u16, Failure> {
        if !self.is_reusable() {
            return Err(Failure::bad(
                "a request on a connection that cannot take one",
            ));
        }
        self.request.clear();
        for part in [
            "POST ",
            path,
            " HTTP/1.1\r\nHost: ",
            &self.host,
            "\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: ",
            &body.len().to_string(),
            "\r\n\r\n",
        ] {
            self.request.extend_from_slice(part.as_bytes());
        }
        self.request.extend_from_slice(body);
        let used_before = self.responses > 0;
        if let Err(e) = self.tcp.write_all(&self.request).await {
            self.reusable = false;
            return Err(match e.kind() {
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                    if used_before =>
                {
                    Failure::Closed
                }
                _ => Failure::bad(format!("writing the request: {e}")),
            });
        }
        let status = self.read_head(used_before).await;
        if status.is_err() {
            self.reusable = false;
        }
        status
    }

    async fn read_head(&mut self, used_before: bool) -> Result<u16, Failure> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut headers);
            let parsed = response
                .parse(&self.buf[self.start..self.end])
                .map_err(|e| Failure::bad(format!("a bad response head: {e}")))?;
            let Status::Complete(head_len) = parsed else {
                if self.start == 0 && self.end == BUFFER {
                    return Err(Failure::bad(format!(
                        "a response head longer than {BUFFER} bytes"
                    )));
                }
                match self.fill().await {
                    Ok(()) => continue,
                    Err(_) if used_before && self.start == self.end => return Err(Failure::Closed),
                    Err(e) => return Err(Failure::Bad(e)),
                }
            };
            let status = response.code.unwrap_or(0);
            let mut length = None;
            let mut chunked = false;
            let mut close = response.version != Some(1);
            for h in response.headers.iter() {
                if h.name.eq_ignore_ascii_case("content-length") {
                    let n = std::str::from_utf8(h.value)
                        .ok()
                        .and_then(|v| v.trim().parse().ok())
                        .ok_or_else(|| Failure::bad("a bad Content-Length"))?;
                    length = Some(n);
                } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = h.value.eq_ignore_ascii_case(b"chunked");
                    if !chunked {
                        return Err(Failure::bad("a transfer encoding other than chunked"));
                    }
                } else if h.name.eq_ignore_ascii_case("connection") {
                    close = h.value.eq_ignore_ascii_case(b"close");
                }
            }
            self.start += head_len;
            self.body = match (status, chunked, length) {
                (100..=199 | 204 | 304, _, _) => Body::Done,
                (_, true, _) => Body::ChunkSize,
                (_, false, Some(n)) => Body::Length(n),
                (_, false, None) => {
                    close = true;
                    Body::UntilClose
                }
            };
            self.reusable = !close;
            if self.body == Body::Done {
                self.responses += 1;
            }
            return Ok(status);
        }
    }

    /// The next piece of the response body (a whole body or chunk when it fits in the
    /// buffer); `None` once the body has been read whole.
    pub(crate) async fn body_chunk(&mut self) -> Result<Option<&[u8]>, String> {
        let piece = self.next_piece().await;
        if piece.is_err() {
            self.reusable = false;
        }
        Ok(piece?.map(|(from, to)| &self.buf[from..to]))
    }

    /// [`Conn::body_chunk`], as the range of `buf` it hands over.
    async fn next_piece(&mut self) -> Result<Option<(usize, usize)>, String> {
        loop {
            let have = self.end - self.start;
            let full = self.start == 0 && self.end == BUFFER;
            match self.body {
                Body::Done => return Ok(None),
                Body::Length(0) => {
                    self.finish();
                    return Ok(None);
                }
                Body::Length(left) | Body::Chunk(left) if have >= left || (full && have > 0) => {
                    let n = have.min(left);
                    let from = self.start;
                    self.start += n;
                    self.body = match self.body {
                        Body::Length(_) => Body::Length(left - n),
                        _ if n == left => Body::ChunkEnd,
                        _ => Body::Chunk(left - n),
                    };
                    return Ok(Some((from, from + n)));
                }
                Body::Length(_) | Body::Chunk(_) => {}
                Body::ChunkEnd | Body::LastChunkEnd if have >= 2 => {
                    if &self.buf[self.start..self.start + 2] != b"\r\n" {
                        return Err("a chunk not ended by CRLF (or trailers, not read)".into());
                    }
                    self.start += 2;
                    if self.body == Body::LastChunkEnd {
                        self.finish();
                        return Ok(None);
                    }
                    self.body = Body::ChunkSize;
                    continue;
                }
                Body::ChunkEnd | Body::LastChunkEnd => {}
                Body::ChunkSize => {
                    match httparse::parse_chunk_size(&self.buf[self.start..self.end]) {
                        Ok(Status::Complete((used, size))) => {
                            self.start += used;
                            self.body = match usize::try_from(size) {
                                Ok(0) => Body::LastChunkEnd,
                                Ok(n) => Body::Chunk(n),
                                Err(_) => return Err("a chunk too large".into()),
                            };
                            continue;
                        }
                        Ok(Status::Partial) if full => {
                            return Err("a chunk size line that never ends".into())
                        }
                        Ok(Status::Partial) => {}
                        Err(_) => return Err("a bad chunk size line".into()),
                    }
                }
                Body::UntilClose if have > 0 => {
                    let from = self.start;
                    self.start = self.end;
                    return Ok(Some((from, self.end)));
                }
                Body::UntilClose => match self.fill().await {
                    Ok(()) => continue,
                    Err(_) => {
                        self.body = Body::Done;
                        self.reusable = false;
                        return Ok(None);
                    }
                },
            }
            self.fill()
                .await
                .map_err(|e| format!("{e} inside a response body"))?;
        }
    }

    fn finish(&mut self) {
        self.body = Body::Done;
        self.responses += 1;
    }

    /// Reads more (making room at the front first when the buffer's end is reached); an
    /// error when the server closed the connection.
    async fn fill(&mut self) -> Result<(), String> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.end == BUFFER {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        match self.tcp.read(&mut self.buf[self.end..]).await {
            Ok(0) => Err("the server closed the connection".into()),
            Ok(n) => {
                self.end += n;
                Ok(())
            }
            Err(e) => Err(format!("reading: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server on a loopback port answering each request on a connection with the next of
    /// `responses` (written a few bytes at a time, so a head, a chunk size line and a body
    /// all arrive in pieces); the connection is closed after the last.
    async fn serve(responses: Vec<Vec<u8>>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let mut request = vec![0; 4096];
            for response in responses {
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = tcp.read(&mut request).await.unwrap();
                    assert!(n > 0, "the client closed");
                    got.extend_from_slice(&request[..n]);
                }
                assert!(got.starts_with(b"POST /p HTTP/1.1\r\nHost: "), "{got:?}");
                for piece in response.chunks(3) {
                    tcp.write_all(piece).await.unwrap();
                    tokio::task::yield_now().await;
                }
            }
        });
        addr
    }

    /// A connection to a [`serve`] server answering with `responses`.
    async fn client(responses: Vec<Vec<u8>>) -> Conn {
        let addr = serve(responses).await;
        Conn::open(addr, "127.0.0.1".parse().unwrap())
            .await
            .unwrap()
    }

    async fn body(conn: &mut Conn) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        while let Some(piece) = conn.body_chunk().await? {
            body.extend_from_slice(piece);
        }
        Ok(body)
    }

    /// Runs `test` on a runtime of its own; a client that waits for bytes that never come
    /// fails instead of hanging.
    fn run(test: impl std::future::Future<Output = ()>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime
            .block_on(async {
                tokio::time::timeout(std::time::Duration::from_secs(10), test).await
            })
            .expect("the test timed out");
    }

    #[test]
    fn length_chunked_and_empty_bodies_on_one_keep_alive_connection() {
        run(async {
            let mut conn = client(vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\na[\"x\",\"y\"]\n".to_vec(),
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\no\n\r\n8;ext=1\r\na[\"hi\"]\n\r\n0\r\n\r\n".to_vec(),
                b"HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n".to_vec(),
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nh\n".to_vec(),
            ]).await;
            assert_eq!(conn.post("/p", b"").await.unwrap(), 200);
            assert_eq!(body(&mut conn).await.unwrap(), b"a[\"x\",\"y\"]\n");
            assert!(conn.is_reusable());
            assert_eq!(conn.post("/p", b"[\"m\"]").await.unwrap(), 200);
            assert_eq!(body(&mut conn).await.unwrap(), b"o\na[\"hi\"]\n");
            assert_eq!(conn.post("/p", b"").await.unwrap(), 204);
            assert_eq!(body(&mut conn).await.unwrap(), b"");
            assert_eq!(conn.post("/p", b"").await.unwrap(), 200);
            assert_eq!(body(&mut conn).await.unwrap(), b"h\n");
            assert!(!conn.is_reusable(), "the server said close");
        });
    }

    #[test]
    fn a_body_without_length_ends_with_the_connection() {
        run(async {
            let mut conn = client(vec![b"HTTP/1.1 200 OK\r\n\r\nh\na[]\n".to_vec()]).await;
            assert_eq!(conn.post("/p", b"").await.unwrap(), 200);
            assert_eq!(body(&mut conn).await.unwrap(), b"h\na[]\n");
            assert!(!conn.is_reusable());
        });
    }

    #[test]
    fn an_idle_connection_the_server_closed_says_so() {
        run(async {
            let mut conn = client(vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\no\n".to_vec()
            ])
            .await;
            assert_eq!(conn.post("/p", b"").await.unwrap(), 200);
            assert_eq!(body(&mut conn).await.unwrap(), b"o\n");
            assert!(matches!(conn.post("/p", b"").await, Err(Failure::Closed)));
            assert!(!conn.is_reusable());
        });
    }

    #[test]
    fn broken_responses_are_errors() {
        let broken: [&[u8]; 5] = [
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXX0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        ];
        for response in broken {
            run(async {
                let mut conn = client(vec![response.to_vec()]).await;
                let failed = match conn.post("/p", b"").await {
                    Err(Failure::Bad(_)) => true,
                    Err(Failure::Closed) => false,
                    Ok(_) => body(&mut conn).await.is_err(),
                };
                assert!(failed, "{:?}", String::from_utf8_lossy(response));
                assert!(!conn.is_reusable());
            });
        }
    }
}
