//! `/ws` upgrades answered without hyper: the connection's first read is looked at, and a
//! complete, plain `GET /ws` upgrade request is parsed (httparse, as hyper does), checked and
//! answered here, its driver run on this same task. Anything else (another path, a request
//! head not complete in the first read, a body, a refused origin or handshake, a connection
//! admitted on the HTTP reserve) goes to hyper with the bytes read, and hyper answers it as
//! before.
//!
//! Why (issue 19, the reconnect storm): hyper's HTTP/1.1 connection per socket (its buffers
//! and dispatcher), its upgrade hand-over (a oneshot and a boxed `Upgraded`) and a second task
//! for the upgraded socket were the largest user-space share of a reconnect after the kernel's
//! (`perf record --call-graph dwarf` over a storm: about 15 % of the server's time).
//!
//! What it decides is decided by the same code as the hyper route: `ws_route::native` (token
//! and URL topics) and `ws::negotiate` (origin, key, version, permessage-deflate).

use super::{ws_route, Shared};
use crate::drivers::json_ws;
use crate::listen::{ByteStream, Held, HoldReply, Peer, Rewind};
use crate::transports::ws::{self, WsConn};
use bytes::{Bytes, BytesMut};
use hyper::{Method, Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The first read's room: a browser's upgrade request is well under 1 KiB; a longer head is
/// left to hyper.
const FIRST_READ: usize = 4096;

/// Most request headers looked at here (more: hyper's business).
const MAX_HEADERS: usize = 32;

/// What to do with a connection after its first read.
pub(super) enum Next<S> {
    /// Nothing: it closed, went silent, or was refused and answered.
    Done,
    /// A `/ws` connection, its 101 held to leave with the hello: run the driver.
    Native(WsConn, Box<json_ws::First>),
    /// Anything else: hyper's, with the bytes read.
    Hyper(Rewind<Held<S>>),
}

/// Reads the connection's first bytes and answers a plain `/ws` upgrade (see the module
/// docs). The caller runs what comes next, so none of this is kept while it runs: a
/// connection's task holds its state for the connection's life (docs/performance.md).
pub(super) async fn look<S: ByteStream>(
    mut stream: Held<S>,
    hold: &HoldReply,
    peer: Peer,
    shared: &Shared,
) -> Next<S> {
    let mut buf = BytesMut::with_capacity(FIRST_READ);
    // A client silent past the handshake timeout is dropped, as hyper's header timeout does.
    match tokio::time::timeout(shared.handshake_timeout, stream.read_buf(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => {}
        _ => return Next::Done,
    }
    let Some((mut req, head_len)) = plain_ws_request(&buf) else {
        return Next::Hyper(Rewind::new(buf.freeze(), stream));
    };
    if peer.on_reserve || !ws::is_upgrade(&req) {
        return Next::Hyper(Rewind::new(buf.freeze(), stream));
    }
    req.extensions_mut().insert(peer);
    // Refusals here have no side effects: hyper answers them, from the same bytes.
    let Ok((resp, agreed)) = ws::negotiate(&mut req, &shared.websocket) else {
        return Next::Hyper(Rewind::new(buf.freeze(), stream));
    };
    let (who, subscribe) = match ws_route::native(&req, shared) {
        Ok(asked) => asked,
        Err(refusal) => {
            // Answered here: a refused token counts once against its address.
            let _ = stream.write_all(&refusal_bytes(&refusal)).await;
            let _ = stream.shutdown().await;
            return Next::Done;
        }
    };
    // The 101 leaves in one write with the hello (`listen::held_reply`).
    hold.hold_next_write();
    if stream.write_all(&response_head(&resp)).await.is_err() {
        return Next::Done;
    }
    // Frames sent right behind the request: copied, so the first read's room is not kept.
    let early = Bytes::copy_from_slice(&buf[head_len..]);
    match agreed.accept(Rewind::new(early, stream)) {
        Some(conn) => Next::Native(conn, Box::new(json_ws::First { who, subscribe })),
        None => Next::Done,
    }
}

/// A complete `GET /ws` (or `/ws?...`) HTTP/1.1 request head without a body, as a request,
/// and its length; `None` for anything else.
fn plain_ws_request(head: &[u8]) -> Option<(Request<()>, usize)> {
    if !(head.starts_with(b"GET /ws ") || head.starts_with(b"GET /ws?")) {
        return None;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(len) = parsed.parse(head).ok()? else {
        return None;
    };
    if parsed.version != Some(1) {
        return None;
    }
    let mut req = Request::builder().method(Method::GET).uri(parsed.path?);
    for h in parsed.headers.iter() {
        let name = h.name.as_bytes();
        // A body on an upgrade request: whatever it means, hyper's rules decide it.
        if name.eq_ignore_ascii_case(b"content-length")
            || name.eq_ignore_ascii_case(b"transfer-encoding")
        {
            return None;
        }
        req = req.header(h.name, h.value);
    }
    Some((req.body(()).ok()?, len))
}

/// The response head as written on the wire.
fn response_head<B>(resp: &Response<B>) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {}\r\n", resp.status()).into_bytes();
    for (name, value) in resp.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// A refusal (a plain-text `ws_route` answer) as a whole response; the connection closes after.
fn refusal_bytes(refusal: &ws_route::Refusal) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        refusal.status,
        refusal.text.len()
    )
    .into_bytes();
    out.extend_from_slice(refusal.text.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPGRADE: &[u8] = b"GET /ws?topic=a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";

    #[test]
    fn only_a_complete_plain_ws_upgrade_is_taken() {
        let (req, len) = plain_ws_request(UPGRADE).unwrap();
        assert_eq!(len, UPGRADE.len());
        assert_eq!(req.uri().query(), Some("topic=a"));
        assert!(ws::is_upgrade(&req));
        // Incomplete, another path, another method, a body, HTTP/1.0: hyper's.
        assert!(plain_ws_request(&UPGRADE[..40]).is_none());
        assert!(plain_ws_request(b"GET /wsx HTTP/1.1\r\nHost: x\r\n\r\n").is_none());
        assert!(plain_ws_request(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n").is_none());
        assert!(plain_ws_request(b"POST /ws HTTP/1.1\r\nHost: x\r\n\r\n").is_none());
        assert!(
            plain_ws_request(b"GET /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
                .is_none()
        );
        assert!(plain_ws_request(b"GET /ws HTTP/1.0\r\nHost: x\r\n\r\n").is_none());
    }

    #[test]
    fn the_101_head_is_written_as_hyper_would() {
        let resp = Response::builder()
            .status(101)
            .header("upgrade", "websocket")
            .header("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
            .body(())
            .unwrap();
        assert_eq!(
            response_head(&resp),
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\
              sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
    }
}
