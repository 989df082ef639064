//! The client side of the RFC 6455 opening handshake over plain TCP, without an HTTP client:
//! one write of the request, the `101` head read with `peek` (so the frames the server sent
//! in the same segment stay in the socket for the WebSocket), its `Sec-WebSocket-Accept`
//! checked, and the socket handed to yawc as an already-upgraded stream.
//!
//! Why not yawc's `WebSocket::handshake`: it drives hyper's HTTP/1.1 client, which spawns a
//! connection task and builds request and response types per connection. In the reconnect
//! storm (15,000 handshakes at once) that made the load generator, not the server, the limit
//! (issue 19: 95–98 % of its core). TLS connections keep yawc's handshake.

use base64::Engine as _;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest `101` head read: a server's is a few hundred bytes.
const MAX_HEAD: usize = 4096;

/// RFC 6455 1.3: the GUID appended to the key before hashing.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Sends the upgrade request for `path` (with its query) and reads the `101`; the socket then
/// carries WebSocket frames. `nonce` makes the key (any 16 bytes, unique per connection).
pub(crate) async fn handshake(
    tcp: &mut TcpStream,
    host: &str,
    path: &str,
    nonce: u128,
) -> Result<(), String> {
    let key = base64::engine::general_purpose::STANDARD.encode(nonce.to_le_bytes());
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut head = [0u8; MAX_HEAD];
    let len = loop {
        let seen = match tcp.peek(&mut head).await {
            Ok(0) => return Err("closed before the 101".into()),
            Ok(n) => n,
            Err(e) => return Err(format!("read: {e}")),
        };
        if let Some(end) = head[..seen].windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if seen == MAX_HEAD {
            return Err(format!("no end of the response head in {MAX_HEAD} bytes"));
        }
        // Part of the head came: wait for more without spinning on what is already there.
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    };
    let mut consumed = vec![0u8; len];
    tcp.read_exact(&mut consumed)
        .await
        .map_err(|e| format!("read: {e}"))?;
    check_response(&consumed, &key)
}

/// The `Sec-WebSocket-Accept` value a `Sec-WebSocket-Key` asks for (RFC 6455 4.2.2).
pub(crate) fn accept_key(key: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(Sha1::new().chain_update(key).chain_update(GUID).finalize())
}

/// A client WebSocket over `tcp` to `path` on `server`: [`handshake`], then yawc over the
/// upgraded socket (as `wrap` makes it the caller's stream type), with the small buffers a
/// load generator holding thousands wants.
pub(crate) async fn connect<S>(
    mut tcp: TcpStream,
    server: std::net::SocketAddr,
    path: &str,
    wrap: impl FnOnce(TcpStream) -> S,
) -> Result<yawc::WebSocket<S>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    static NONCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NONCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nonce = (u128::from(crate::client::now_ns()) << 64) | u128::from(n);
    handshake(&mut tcp, &server.to_string(), path, nonce)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    yawc::WebSocket::from_stream(wrap(tcp), yawc::Role::Client, small_options())
        .map_err(|e| format!("handshake: {e}"))
}

/// No compression, 4 KiB buffers: what every load-generator WebSocket uses.
pub(crate) fn small_options() -> yawc::Options {
    yawc::Options::default()
        .without_compression()
        .with_read_buffer_capacity(4096)
        .with_write_buffer_capacity(4096)
}

/// Checks a response head: status 101 and the accept value the key asks for.
fn check_response(head: &[u8], key: &str) -> Result<(), String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let shown = || String::from_utf8_lossy(head).into_owned();
    match response.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(format!("not an HTTP response head: {:?}", shown())),
    }
    if response.code != Some(101) {
        return Err(format!("no upgrade: {:?}", shown()));
    }
    let wanted = accept_key(key.as_bytes());
    let accept = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
        .map(|h| h.value);
    if accept != Some(wanted.as_bytes()) {
        return Err(format!("wrong Sec-WebSocket-Accept: {:?}", shown()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_example_key_is_accepted_and_a_wrong_accept_is_not() {
        // RFC 6455 1.3's example.
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let ok = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        check_response(ok, key).unwrap();
        let wrong = b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n";
        assert!(check_response(wrong, key).unwrap_err().contains("Accept"));
        let refused = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        assert!(check_response(refused, key)
            .unwrap_err()
            .contains("no upgrade"));
    }
}
