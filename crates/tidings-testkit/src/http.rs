//! One raw HTTP request on a fresh connection, read until the server closes it.
//!
//! Raw on purpose: the tests check the server's HTTP (status lines, headers, framing of
//! streams), so the request is the test's own bytes and the response is what came back,
//! with nothing in between that could hide a mistake.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};

/// Reads everything ([`exchange`]'s `cap`).
pub const ALL: usize = usize::MAX;

/// A response as it came off the wire.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code of the status line.
    pub status: u16,
    /// The status line and headers, without the blank line.
    pub head: String,
    /// Everything after the blank line, as sent (a chunked body stays chunked).
    pub body: Vec<u8>,
    /// The server closed the connection cleanly (rather than the cap, the time limit or a
    /// reset ending the read).
    pub ended: bool,
}

impl Response {
    /// The first header called `name` (case-insensitive), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Every header as `(name, value)`, trimmed, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.head
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim(), v.trim()))
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `METHOD TARGET HTTP/1.0` with `Content-Length`, then `headers` (each ending in `\r\n`),
/// then `body`. HTTP/1.0 so the server closes after the response and never chunks it.
pub fn request_1_0(method: &str, target: &str, headers: &str, body: &str) -> String {
    format!(
        "{method} {target} HTTP/1.0\r\nContent-Length: {}\r\n{headers}\r\n{body}",
        body.len()
    )
}

/// Connects to `addr`, writes `request`, and reads until the server closes, `cap` bytes have
/// come (for endless streams), or `wait` has passed; then parses the status line.
/// Panics when nothing that looks like a response came.
pub async fn exchange(
    addr: impl ToSocketAddrs,
    request: impl AsRef<[u8]>,
    cap: usize,
    wait: Duration,
) -> Response {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request.as_ref())
        .await
        .expect("write the request");
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + wait;
    let mut ended = false;
    while raw.len() < cap {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => raw.extend_from_slice(&buf[..n]),
            Ok(Ok(_)) => {
                ended = true;
                break;
            }
            // A reset or the time limit: what came so far is the response; `ended` says
            // it may be cut short.
            Ok(Err(_)) | Err(_) => break,
        }
    }
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n");
    let head = String::from_utf8_lossy(&raw[..split.unwrap_or(raw.len())]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| {
            let request = String::from_utf8_lossy(request.as_ref());
            let first = request.lines().next().unwrap_or_default();
            panic!("no response to {first:?}: {head:?}")
        });
    Response {
        status,
        head,
        body: split.map(|i| raw[i + 4..].to_vec()).unwrap_or_default(),
        ended,
    }
}

/// [`exchange`] without a runtime: connects to `addr`, writes `request` (HTTP/1.0, so the
/// server closes after answering) and reads the whole response, at most 10 s.
pub fn blocking(addr: &str, request: impl AsRef<[u8]>) -> Response {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.write_all(request.as_ref()).expect("write the request");
    let mut raw = Vec::new();
    let ended = s.read_to_end(&mut raw).is_ok();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n");
    let head = String::from_utf8_lossy(&raw[..split.unwrap_or(raw.len())]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no response: {head:?}"));
    Response {
        status,
        head,
        body: split.map(|i| raw[i + 4..].to_vec()).unwrap_or_default(),
        ended,
    }
}

/// `GET path` with [`blocking`].
pub fn get(addr: &str, path: &str) -> Response {
    blocking(addr, request_1_0("GET", path, "", ""))
}
