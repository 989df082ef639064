//! One SockJS client session, over the transport asked for, as `sockjs-client` would open it:
//! `/<prefix>/<server>/<session>/websocket` (SockJS frames in WebSocket text frames),
//! `…/xhr_streaming` (one long chunked POST response, reopened when the server ends it after
//! its response limit) or `…/xhr` (one POST per poll on a keep-alive connection); messages go
//! out as a JSON array in a WebSocket frame or an `xhr_send` POST. Each HTTP connection comes
//! from the session's own source address 127.0.0.x, so a server's per-address limits see a
//! spread of clients as they would from a real fleet.
//!
//! Bounds: one receiving connection (plus one for sending, opened on the first send and
//! dropped with [`Session::end_sending`]); a streaming line is bounded by [`frame::MAX_LINE`];
//! messages are handed to the reader straight from the bytes read (one reused buffer for the
//! escaped ones), but for those that came along with the open frame (kept until the first
//! [`Session::next`]).

use super::frame::{self, Frame, LineFrames};
use super::http::{Conn, Failure};
use crate::client::tcp_from;
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use tokio::net::TcpStream;
use yawc::{OpCode, WebSocket};

/// The transports the benchmark drives (the ones `sockjs-client` picks first in node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Transport {
    Websocket,
    XhrStreaming,
    XhrPolling,
}

impl Transport {
    /// `sockjs-client`'s name for it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Transport::Websocket => "websocket",
            Transport::XhrStreaming => "xhr-streaming",
            Transport::XhrPolling => "xhr-polling",
        }
    }

    /// The last segment of the session URL.
    fn path(self) -> &'static str {
        match self {
            Transport::Websocket => "websocket",
            Transport::XhrStreaming => "xhr_streaming",
            Transport::XhrPolling => "xhr",
        }
    }
}

enum Receiver {
    Ws(Box<WebSocket<TcpStream>>),
    Xhr(Xhr),
}

#[derive(Default)]
struct Xhr {
    /// The keep-alive connection the receiving POSTs go over (reopened when the server closed
    /// it).
    conn: Option<Conn>,
    /// Whether a response (a poll, or the streaming one) is being read on `conn`.
    reading: bool,
    lines: LineFrames,
}

/// What the session has read so far, and the buffer messages are unescaped into.
#[derive(Default)]
struct Reading {
    opened: bool,
    scratch: Vec<u8>,
}

impl Reading {
    /// Takes one frame in; returns whether it held messages (handed to `each`).
    fn frame(&mut self, frame: Frame<'_>, each: &mut impl FnMut(&[u8])) -> Result<bool, String> {
        match frame {
            Frame::Open if self.opened => Err("a second open frame".into()),
            Frame::Open => {
                self.opened = true;
                Ok(false)
            }
            Frame::Heartbeat => Ok(false),
            Frame::Messages(_) if !self.opened => Err("messages before the open frame".into()),
            Frame::Messages(m) => m.for_each(&mut self.scratch, each).map(|()| true),
            Frame::Close { code, reason } => {
                Err(format!("closed by the server: {code} {reason:?}"))
            }
        }
    }
}

pub(crate) struct Session {
    server: SocketAddr,
    source: IpAddr,
    /// `/<prefix>/<server id>/<session id>`.
    base: String,
    /// Where the xhr transports' receiving POSTs go (`…/xhr`, `…/xhr_streaming`).
    receive_path: String,
    receiver: Receiver,
    sender: Option<Conn>,
    reading: Reading,
    /// Messages read along with the open frame, not handed out yet.
    early: Vec<Vec<u8>>,
}

impl Session {
    /// Opens session number `n` under `prefix` (e.g. `/sockjs`) and reads its `o` frame.
    pub(crate) async fn open(
        transport: Transport,
        server: SocketAddr,
        source: IpAddr,
        prefix: &str,
        n: usize,
    ) -> Result<Session, String> {
        let base = format!(
            "{prefix}/{:03}/{n:x}x{:x}",
            n % 1000,
            crate::client::now_ns() % 1_000_000_007
        );
        let receiver = match transport {
            Transport::Websocket => {
                let tcp = tcp_from(source, server)
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                let path = format!("{base}/websocket");
                let ws = crate::ws_handshake::connect(tcp, server, &path, |tcp| tcp).await?;
                Receiver::Ws(Box::new(ws))
            }
            Transport::XhrStreaming | Transport::XhrPolling => Receiver::Xhr(Xhr::default()),
        };
        let mut session = Session {
            server,
            source,
            receive_path: format!("{base}/{}", transport.path()),
            base,
            receiver,
            sender: None,
            reading: Reading::default(),
            early: Vec::new(),
        };
        let mut early = Vec::new();
        while !session.reading.opened {
            session.read(&mut |m| early.push(m.to_vec())).await?;
        }
        session.early = early;
        Ok(session)
    }

    /// Waits for the next messages the server sends and calls `each` with every one
    /// (unescaped; heartbeats skipped); a close frame, a closed connection or a framing
    /// error is an error saying so.
    pub(crate) async fn next(&mut self, mut each: impl FnMut(&[u8])) -> Result<(), String> {
        if !self.early.is_empty() {
            std::mem::take(&mut self.early).iter().for_each(|m| each(m));
            return Ok(());
        }
        while !self.read(&mut each).await? {}
        Ok(())
    }

    /// Sends `messages` (one SockJS send: a JSON array).
    pub(crate) async fn send(&mut self, messages: &[&str]) -> Result<(), String> {
        let body = frame::send_body(messages);
        if let Receiver::Ws(ws) = &mut self.receiver {
            return ws
                .send(yawc::Frame::text(body))
                .await
                .map_err(|e| e.to_string());
        }
        let path = format!("{}/xhr_send", self.base);
        let status = post(
            &mut self.sender,
            self.server,
            self.source,
            &path,
            body.as_bytes(),
        )
        .await?;
        let conn = self.sender.as_mut().ok_or("no connection")?;
        while conn.body_chunk().await?.is_some() {}
        match status {
            200 | 204 => Ok(()),
            other => Err(format!("xhr_send answered {other}")),
        }
    }

    /// The WebSocket under a `websocket` session (after its `o`), for a caller that reads and
    /// writes at once (the publisher); `None` for the xhr transports.
    pub(crate) fn into_websocket(self) -> Option<WebSocket<TcpStream>> {
        match self.receiver {
            Receiver::Ws(ws) => Some(*ws),
            Receiver::Xhr(_) => None,
        }
    }

    /// Closes the sending connection (a subscriber that sends once should not hold one).
    pub(crate) fn end_sending(&mut self) {
        self.sender = None;
    }

    /// Reads what comes next (a WebSocket frame; a chunk of an xhr response, or a new
    /// request's first when none is open); returns whether it held messages.
    async fn read(&mut self, each: &mut impl FnMut(&[u8])) -> Result<bool, String> {
        let reading = &mut self.reading;
        match &mut self.receiver {
            Receiver::Ws(ws) => loop {
                let f = ws.next().await.ok_or("the WebSocket closed")?;
                if f.opcode() == OpCode::Text {
                    return reading.frame(frame::parse(f.payload())?, each);
                }
            },
            Receiver::Xhr(xhr) => {
                read_xhr(
                    xhr,
                    self.server,
                    self.source,
                    &self.receive_path,
                    reading,
                    each,
                )
                .await
            }
        }
    }
}

/// Reads the next chunk of a receiving xhr transport's response, starting a new request (a
/// poll, or a streaming response after the last one ended) when none is open; returns whether
/// it held messages.
async fn read_xhr(
    xhr: &mut Xhr,
    server: SocketAddr,
    source: IpAddr,
    path: &str,
    reading: &mut Reading,
    each: &mut impl FnMut(&[u8]),
) -> Result<bool, String> {
    if !xhr.reading {
        let status = post(&mut xhr.conn, server, source, path, b"").await?;
        if status != 200 {
            return Err(format!("{path} answered {status}"));
        }
        xhr.reading = true;
    }
    let conn = xhr.conn.as_mut().ok_or("no connection")?;
    match conn.body_chunk().await {
        Ok(Some(data)) => {
            let mut messages = false;
            xhr.lines.feed(data, |f| {
                messages |= reading.frame(f, each)?;
                Ok(())
            })?;
            Ok(messages)
        }
        Err(e) => Err(format!("reading {path}: {e}")),
        Ok(None) => {
            if !xhr.lines.is_clean() {
                return Err(format!("{path} ended inside a frame"));
            }
            xhr.reading = false;
            Ok(false)
        }
    }
}

/// POSTs `body` to `path` over `conn` (opening a connection from `source` when there is none
/// or the last one cannot take another request); returns the response's status, its body
/// to be read from `conn`.
async fn post(
    conn: &mut Option<Conn>,
    server: SocketAddr,
    source: IpAddr,
    path: &str,
    body: &[u8],
) -> Result<u16, String> {
    for attempt in 0..2 {
        if !conn.as_ref().is_some_and(Conn::is_reusable) {
            *conn = Some(Conn::open(server, source).await?);
        }
        let c = conn.as_mut().ok_or("no connection")?;
        match c.post(path, body).await {
            Ok(status) => return Ok(status),
            // A keep-alive connection the server closed between requests: once more, fresh.
            Err(Failure::Closed) if attempt == 0 => *conn = None,
            Err(Failure::Closed) => return Err(format!("POST {path}: the server closed it")),
            Err(Failure::Bad(e)) => return Err(format!("POST {path}: {e}")),
        }
    }
    Err(format!("POST {path}: the server closed every connection"))
}
