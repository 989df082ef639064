//! The WebSocket client every scenario shares: a TCP socket bound to a chosen source address
//! 127.0.0.x (so one address's ephemeral ports are not the limit), small buffers (the load
//! generator holds tens of thousands of these), no compression, and the two dialects the
//! servers speak: tidings' native JSON protocol (also spoken by `bench/peers/ws-broadcast.js`)
//! and Socket.IO 5 over Engine.IO 4 WebSocket.

use futures::{SinkExt, StreamExt};
use memchr::memmem::Finder;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::{TcpSocket, TcpStream};
use yawc::{Frame, OpCode, WebSocket};

pub(crate) type Ws = WebSocket<Stream>;

/// A connection's socket: plain TCP, or TLS over it (`Dialect::NativeTls`).
pub(crate) type Stream =
    tokio_util::either::Either<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>;

/// How long one handshake (TCP, HTTP upgrade, the dialect's greeting, the subscribe reply) may
/// take before it counts as failed.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Dialect {
    /// docs/native-protocol.md at `/ws`: `hello`, `subscribe` → `ok`, `message` frames.
    Native,
    /// Socket.IO at `/socket.io/`: `0` open, `40` connect, `subscribe` event with an ack,
    /// `message` events.
    SocketIo,
    /// The native protocol over TLS (`wss://`, HTTP/1.1 by ALPN; the server's certificate is
    /// not verified: a benchmark measures cost, not trust).
    NativeTls,
}

/// The source address of connection number `index` when each address carries
/// `per_source` connections: 127.0.0.2, 127.0.0.3, ... 127.0.0.254, then 127.0.0.2 again.
pub(crate) fn source_address(index: usize, per_source: usize) -> IpAddr {
    let n = 2 + (index / per_source.max(1)) % 253;
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n as u8))
}

/// Opens a TCP connection from `source` (port chosen by the kernel). SO_LINGER 0 makes every
/// close an abrupt reset, as when a network drops: no TIME_WAIT piles up on either side
/// between runs, and the reconnect storm drops connections the hard way.
pub(crate) async fn tcp_from(source: IpAddr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    // Linger 0 never blocks a close (tokio's caution is about a non-zero linger).
    socket.set_linger(Some(Duration::ZERO))?;
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::new(source, 0).into())?;
    let socket = TcpSocket::from_std_stream(std::net::TcpStream::from(socket));
    socket.connect(server).await
}

/// A WebSocket connection to `path` on `server`, greeted in `dialect`'s way (`hello` for the
/// native protocol, Engine.IO open and namespace connect for Socket.IO).
pub(crate) async fn connect(
    dialect: Dialect,
    server: SocketAddr,
    source: IpAddr,
) -> Result<Ws, String> {
    connect_to(dialect, server, source, "").await
}

/// [`connect`] with `query` (`?...`, or empty) after the native protocol's path.
pub(crate) async fn connect_to(
    dialect: Dialect,
    server: SocketAddr,
    source: IpAddr,
    query: &str,
) -> Result<Ws, String> {
    let path = match dialect {
        Dialect::Native | Dialect::NativeTls => format!("/ws{query}"),
        Dialect::SocketIo => "/socket.io/?EIO=4&transport=websocket".into(),
    };
    let tcp = tcp_from(source, server)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut ws = match dialect {
        Dialect::NativeTls => {
            let url: url::Url = format!("wss://{server}{path}")
                .parse()
                .map_err(|e| format!("{e}"))?;
            let tls = crate::tls::connect(tcp, server)
                .await
                .map_err(|e| format!("tls: {e}"))?;
            let options = crate::ws_handshake::small_options();
            WebSocket::handshake(url, tokio_util::either::Either::Right(tls), options)
                .await
                .map_err(|e| format!("handshake: {e}"))?
        }
        Dialect::Native | Dialect::SocketIo => {
            let wrap = tokio_util::either::Either::Left;
            crate::ws_handshake::connect(tcp, server, &path, wrap).await?
        }
    };
    match dialect {
        Dialect::Native | Dialect::NativeTls => {
            expect(&mut ws, |p| p.starts_with(b"{\"type\":\"hello\"")).await?;
        }
        Dialect::SocketIo => {
            expect(&mut ws, |p| p.starts_with(b"0")).await?;
            send(&mut ws, "40".into()).await?;
            expect(&mut ws, |p| p.starts_with(b"40")).await?;
        }
    }
    Ok(ws)
}

/// Subscribes to `topic`, resuming after `since` in `epoch` when given, and waits for the
/// reply.
pub(crate) async fn subscribe(
    ws: &mut Ws,
    dialect: Dialect,
    topic: &str,
    resume: Option<(u64, &str)>,
) -> Result<Subscribed, String> {
    match dialect {
        Dialect::Native | Dialect::NativeTls => {
            let request = match resume {
                Some((since, epoch)) => format!(
                    r#"{{"op":"subscribe","id":1,"topic":"{topic}","since":{since},"epoch":"{epoch}"}}"#
                ),
                None => format!(r#"{{"op":"subscribe","id":1,"topic":"{topic}"}}"#),
            };
            send(ws, request).await?;
            subscribe_reply(ws).await
        }
        Dialect::SocketIo => {
            send(ws, format!("420[\"subscribe\",\"{topic}\"]")).await?;
            expect(ws, |p| p.starts_with(b"430")).await?;
            Ok(Subscribed::default())
        }
    }
}

/// The query that names `topic` on the upgrade URL (tidings' `/ws?topic=`), resuming after
/// `since` in `epoch` when given; [`subscribe_reply`] then reads its `ok`. Topic and epoch are
/// the benchmark's own (letters, digits, dots), so they need no escaping.
pub(crate) fn url_topic_query(topic: &str, resume: Option<(u64, &str)>) -> String {
    match resume {
        Some((since, epoch)) => format!("?topic={topic}&since={since}&epoch={epoch}"),
        None => format!("?topic={topic}"),
    }
}

/// Waits for a native `subscribe`'s reply: `ok` gives the epoch and offset, `error` fails.
pub(crate) async fn subscribe_reply(ws: &mut Ws) -> Result<Subscribed, String> {
    let reply = expect(ws, |p| {
        p.starts_with(b"{\"type\":\"ok\"") || p.starts_with(b"{\"type\":\"error\"")
    })
    .await?;
    if reply.starts_with(b"{\"type\":\"error\"") {
        return Err(format!(
            "subscribe refused: {}",
            String::from_utf8_lossy(&reply)
        ));
    }
    Ok(Subscribed {
        epoch: string_field(&reply, &EPOCH_KEY).map(str::to_owned),
        offset: number_after(&reply, &OFFSET_KEY).unwrap_or(0),
    })
}

/// The subscribe reply: the topic's epoch and last offset (native protocol; defaults for
/// Socket.IO, whose peers do not all report them).
#[derive(Debug, Default)]
pub(crate) struct Subscribed {
    pub(crate) epoch: Option<String>,
    pub(crate) offset: u64,
}

/// The frame a publisher sends to publish `payload` (a JSON-string-safe text) to `topic`.
pub(crate) fn publish_frame(dialect: Dialect, topic: &str, payload: &str, ack: bool) -> String {
    match dialect {
        Dialect::Native | Dialect::NativeTls if ack => {
            format!(r#"{{"op":"publish","topic":"{topic}","text":"{payload}","ack":true}}"#)
        }
        Dialect::Native | Dialect::NativeTls => {
            format!(r#"{{"op":"publish","topic":"{topic}","text":"{payload}"}}"#)
        }
        Dialect::SocketIo => format!("42[\"publish\",\"{topic}\",\"{payload}\"]"),
    }
}

/// A delivered message as the benchmark sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Delivery {
    /// The topic offset, when the frame carries one.
    pub(crate) offset: Option<u64>,
    /// The publisher's send time (ns since the Unix epoch) at the start of the payload.
    pub(crate) sent_ns: Option<u64>,
}

/// Reads a delivered message out of a frame payload, or `None` when the frame is something
/// else (replies, pings). Only the few fields needed are looked for: the load generator must
/// stay cheaper than the servers it measures.
pub(crate) fn delivery(dialect: Dialect, payload: &[u8]) -> Option<Delivery> {
    let is_message = match dialect {
        Dialect::Native | Dialect::NativeTls => payload.starts_with(b"{\"type\":\"message\""),
        Dialect::SocketIo => payload.starts_with(b"42[\"message\""),
    };
    if !is_message {
        return None;
    }
    let text_key = match dialect {
        Dialect::Native | Dialect::NativeTls => &TEXT_KEY,
        Dialect::SocketIo => &DATA_KEY,
    };
    Some(Delivery {
        offset: number_after(payload, &OFFSET_KEY),
        sent_ns: number_after(payload, text_key),
    })
}

/// A payload of `size` bytes (at least the timestamp) starting with the current time in ns.
pub(crate) fn stamped_payload(size: usize) -> String {
    let mut p = now_ns().to_string();
    while p.len() < size {
        p.push('x');
    }
    p
}

/// Nanoseconds since the Unix epoch (the clock every process on the machine shares).
pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The keys read out of replies and deliveries, each searcher built once (every delivery is
/// searched twice: not a comparison at each position, not a searcher built each time).
type Key = LazyLock<Finder<'static>>;
static OFFSET_KEY: Key = LazyLock::new(|| Finder::new(b"\"offset\":"));
static TEXT_KEY: Key = LazyLock::new(|| Finder::new(b"\"text\":\""));
static DATA_KEY: Key = LazyLock::new(|| Finder::new(b"\"data\":\""));
static EPOCH_KEY: Key = LazyLock::new(|| Finder::new(b"\"epoch\":\""));

/// The decimal number right after the first `key` in `haystack` (`None` when it overflows a
/// u64 or has no digit).
fn number_after(haystack: &[u8], key: &Finder<'_>) -> Option<u64> {
    let at = key.find(haystack)? + key.needle().len();
    let digits = haystack[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .try_fold(None, |n: Option<u64>, &d| {
            n.unwrap_or(0)
                .checked_mul(10)?
                .checked_add(u64::from(d - b'0'))
                .map(Some)
        });
    digits.flatten()
}

/// The string value after `key` (which ends with the opening quote), up to the next quote.
fn string_field<'a>(haystack: &'a [u8], key: &Finder<'_>) -> Option<&'a str> {
    let at = key.find(haystack)? + key.needle().len();
    let len = memchr::memchr(b'"', &haystack[at..])?;
    std::str::from_utf8(&haystack[at..at + len]).ok()
}

pub(crate) async fn send(ws: &mut Ws, text: String) -> Result<(), String> {
    ws.send(Frame::text(text)).await.map_err(|e| e.to_string())
}

/// Reads text frames until one satisfies `wanted` (answering Engine.IO pings on the way).
async fn expect(ws: &mut Ws, wanted: impl Fn(&[u8]) -> bool) -> Result<bytes::Bytes, String> {
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| "no reply in time".to_owned())?
            .ok_or("connection closed")?;
        if frame.opcode() != OpCode::Text {
            continue;
        }
        let p = frame.payload();
        if wanted(p) {
            return Ok(p.clone());
        }
        if p.as_ref() == b"2" {
            send(ws, "3".into()).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_message_gives_offset_and_send_time() {
        let frame = br#"{"type":"message","topic":"bench.fanout","offset":42,"epoch":"1f3a","text":"1732200000123456789xxxx"}"#;
        assert_eq!(
            delivery(Dialect::Native, frame),
            Some(Delivery {
                offset: Some(42),
                sent_ns: Some(1732200000123456789)
            })
        );
    }

    #[test]
    fn socketio_message_gives_offset_and_send_time() {
        let frame = br#"42["message",{"topic":"bench.fanout","offset":7,"data":"123xx"}]"#;
        assert_eq!(
            delivery(Dialect::SocketIo, frame),
            Some(Delivery {
                offset: Some(7),
                sent_ns: Some(123)
            })
        );
    }

    #[test]
    fn replies_are_not_deliveries() {
        assert_eq!(
            delivery(Dialect::Native, br#"{"type":"ok","id":1,"offset":3}"#),
            None
        );
        assert_eq!(delivery(Dialect::SocketIo, b"430[{\"ok\":true}]"), None);
        assert_eq!(delivery(Dialect::SocketIo, b"2"), None);
    }

    #[test]
    fn numbers_are_read_up_to_the_first_non_digit_and_never_overflow() {
        assert_eq!(number_after(b"x\"offset\":42,", &OFFSET_KEY), Some(42));
        assert_eq!(number_after(b"\"offset\":0", &OFFSET_KEY), Some(0));
        assert_eq!(number_after(b"\"offset\":x", &OFFSET_KEY), None);
        assert_eq!(number_after(b"\"other\":1", &OFFSET_KEY), None);
        let max = format!("\"offset\":{}", u64::MAX);
        assert_eq!(number_after(max.as_bytes(), &OFFSET_KEY), Some(u64::MAX));
        let over = format!("\"offset\":{}0", u64::MAX);
        assert_eq!(number_after(over.as_bytes(), &OFFSET_KEY), None);
    }

    #[test]
    fn epoch_is_read_from_the_subscribe_reply() {
        let reply = br#"{"type":"ok","id":1,"topic":"t","epoch":"9c01","offset":12,"replayed":0}"#;
        assert_eq!(string_field(reply, &EPOCH_KEY), Some("9c01"));
    }

    #[test]
    fn source_addresses_step_after_per_source_connections() {
        assert_eq!(source_address(0, 100).to_string(), "127.0.0.2");
        assert_eq!(source_address(99, 100).to_string(), "127.0.0.2");
        assert_eq!(source_address(100, 100).to_string(), "127.0.0.3");
        assert_eq!(source_address(252 * 100, 100).to_string(), "127.0.0.254");
        assert_eq!(source_address(253 * 100, 100).to_string(), "127.0.0.2");
    }

    #[test]
    fn stamped_payload_has_the_size_and_a_readable_time() {
        let p = stamped_payload(64);
        assert_eq!(p.len(), 64);
        let frame = format!(r#"{{"type":"message","topic":"t","offset":1,"text":"{p}"}}"#);
        let d = delivery(Dialect::Native, frame.as_bytes()).unwrap();
        assert!(d.sent_ns.unwrap() > 1_600_000_000_000_000_000);
    }
}
