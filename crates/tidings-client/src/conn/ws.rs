//! The native JSON protocol over WebSocket: requests carry an `id` that the `ok`/`error`
//! reply echoes, so replies are matched by id; `message` and `presence` frames come in
//! between. yawc answers the server's pings underneath.

use std::collections::HashMap;

use bytes::Bytes;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use tidings_proto::json::{encode_client, ClientOp, Op as WireOp, RequestId};
use tidings_proto::PayloadKind;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use url::Url;
use yawc::{Frame, OpCode, Options, WebSocket};

use super::{payload_bytes, ErrReply, GapNotice, Incoming, Lost, OkReply, Op, Writer, MAX_MESSAGE};
use crate::config::Target;
use crate::error::ClientError;
use crate::types::{Event, Message, Payload};

type Socket = WebSocket<TcpStream>;

pub(crate) struct WsConn<T> {
    pub(super) reader: Reader<T>,
    pub(super) writer: Writer<Frame>,
    next_id: u64,
}

/// The reading side, with the requests waiting for their reply (by id).
pub(crate) struct Reader<T> {
    rd: SplitStream<Socket>,
    pub(super) pending: HashMap<u64, T>,
    /// The server's last word before closing (`slow_consumer`, `shutting_down`), reported as
    /// the reason of the disconnection.
    notice: Option<String>,
}

impl<T> WsConn<T> {
    pub(super) async fn open(target: &Target, url: &Url) -> Result<Self, ClientError> {
        let stream = match target.host_port() {
            (url::Host::Domain(d), port) => TcpStream::connect((d.as_str(), port)).await?,
            (url::Host::Ipv4(a), port) => TcpStream::connect((*a, port)).await?,
            (url::Host::Ipv6(a), port) => TcpStream::connect((*a, port)).await?,
        };
        stream.set_nodelay(true)?;
        let options = Options::default()
            .with_max_payload_read(MAX_MESSAGE)
            .with_max_read_buffer(MAX_MESSAGE)
            .with_read_buffer_capacity(8 * 1024)
            .with_write_buffer_capacity(8 * 1024)
            .with_utf8();
        let socket = WebSocket::handshake(url.clone(), stream, options)
            .await
            .map_err(|e| ClientError::Protocol(format!("WebSocket handshake failed: {e}")))?;
        let (sink, rd) = socket.split();
        let mut conn = WsConn {
            reader: Reader {
                rd,
                pending: HashMap::new(),
                notice: None,
            },
            writer: Writer::spawn(|rx, failed| write_loop(sink, rx, failed)),
            next_id: 1,
        };
        // The first frame is `{"type":"hello","client":...,"server":...}`.
        match conn.reader.rd.next().await {
            Some(frame) if frame.opcode() == OpCode::Text => {
                match serde_json::from_slice::<ServerFrame>(frame.payload()) {
                    Ok(f) if f.kind == "hello" => Ok(conn),
                    _ => Err(ClientError::Protocol(format!(
                        "expected the server's hello, got {}",
                        String::from_utf8_lossy(frame.payload())
                    ))),
                }
            }
            Some(frame) if frame.opcode() == OpCode::Close => Err(ClientError::Protocol(format!(
                "the server closed the connection: {}",
                close_text(&frame)
            ))),
            _ => Err(ClientError::Protocol("the server sent no hello".to_owned())),
        }
    }

    pub(super) fn send(&mut self, op: &Op, tag: T) -> Result<(), (T, ClientError)> {
        let id = self.next_id;
        self.next_id += 1;
        let op = match op {
            Op::Auth { user, password } => WireOp::Auth {
                user: user.clone(),
                password: password.clone(),
            },
            Op::Subscribe {
                pattern,
                since,
                epoch,
                positions,
            } => WireOp::Subscribe {
                topic: pattern.clone(),
                since: *since,
                epoch: epoch.clone(),
                positions: positions.clone(),
                // Like the line protocol, which always reports joins and leaves.
                presence: true,
            },
            Op::Unsubscribe { pattern } => WireOp::Unsubscribe {
                topic: pattern.clone(),
            },
            Op::Publish { topic, payload } => WireOp::Publish {
                topic: topic.clone(),
                kind: match payload {
                    Payload::Text(_) => PayloadKind::Text,
                    Payload::Json(_) => PayloadKind::Json,
                    Payload::Binary(_) => PayloadKind::Binary,
                },
                payload: payload_bytes(payload),
                ack: true,
            },
        };
        let frame = encode_client(&ClientOp {
            id: Some(RequestId::from(id)),
            op,
        });
        let frame = if frame.binary {
            Frame::binary(frame.bytes)
        } else {
            Frame::text(frame.bytes)
        };
        match self.writer.send(frame) {
            Ok(()) => {
                self.reader.pending.insert(id, tag);
                Ok(())
            }
            Err(e) => Err((tag, e)),
        }
    }

    pub(super) async fn close(mut self) {
        // Ending the queue makes the writer send a close frame (1000).
        self.writer.finish().await;
        while let Some(frame) = self.reader.rd.next().await {
            if frame.opcode() == OpCode::Close {
                break;
            }
        }
    }
}

impl<T> Reader<T> {
    pub(super) async fn recv(&mut self) -> Result<Incoming<T>, Lost> {
        loop {
            let Some(frame) = self.rd.next().await else {
                let why = self.notice.take();
                return Err(Lost(why.unwrap_or_else(|| "connection closed".into())));
            };
            let incoming = match frame.opcode() {
                OpCode::Text => self.on_text(frame.payload()),
                OpCode::Binary => on_binary(frame.into_payload()),
                OpCode::Close => {
                    let why = self.notice.take();
                    return Err(Lost(why.unwrap_or_else(|| {
                        format!("closed by the server: {}", close_text(&frame))
                    })));
                }
                _ => continue,
            };
            match incoming {
                Ok(Some(incoming)) => return Ok(incoming),
                Ok(None) => {}
                Err(why) => tracing::warn!("WebSocket: {why}"),
            }
        }
    }

    fn on_text(&mut self, text: &[u8]) -> Result<Option<Incoming<T>>, String> {
        let f: ServerFrame = serde_json::from_slice(text)
            .map_err(|e| format!("unreadable frame ({e}): {}", String::from_utf8_lossy(text)))?;
        match f.kind.as_str() {
            "ok" | "error" => {
                let id = f.id.as_ref().and_then(serde_json::Value::as_u64);
                let tag = id.and_then(|id| self.pending.remove(&id));
                let ok = f.kind == "ok";
                let Some(tag) = tag else {
                    if !ok && f.id.is_none() {
                        // Without an id, an error is the server's notice before it closes
                        // (`slow_consumer`, `shutting_down`).
                        self.notice = f.message;
                        return Ok(None);
                    }
                    return Err(format!(
                        "reply without a request: {}",
                        String::from_utf8_lossy(text)
                    ));
                };
                let outcome = if ok {
                    Ok(OkReply {
                        epoch: f.epoch,
                        offset: f.offset.unwrap_or(0),
                        replayed: f.replayed.unwrap_or(0),
                    })
                } else {
                    Err(ErrReply {
                        code: f.code.unwrap_or_else(|| "error".into()),
                        message: f.message.unwrap_or_default(),
                        epoch: f.epoch.filter(|e| !e.is_empty()),
                        earliest: f.earliest,
                        last: f.last,
                    })
                };
                Ok(Some(Incoming::Reply(tag, outcome)))
            }
            "message" => {
                let payload = match (f.data, f.text) {
                    (Some(json), None) => Payload::Json(json.get().to_owned()),
                    (None, Some(text)) => Payload::Text(text),
                    _ => return Err("a message needs \"data\" or \"text\"".into()),
                };
                Ok(Some(message(f.topic, f.offset, f.epoch, payload)?))
            }
            "presence" => Ok(Some(Incoming::Event(Event::Presence {
                topic: f.topic.ok_or("presence without a topic")?,
                joined: f.event.as_deref() == Some("join"),
                client: f.client.unwrap_or_default(),
                user: f.user,
            }))),
            "gap" => Ok(Some(Incoming::Gap(GapNotice {
                topic: f.topic.ok_or("gap without a topic")?,
                since: f.since.unwrap_or(0),
                epoch: f.epoch,
                next: f.next,
                reason: f.reason.unwrap_or_default(),
            }))),
            // `hello` was read when connecting; pongs answer pings this client never sends.
            _ => Ok(None),
        }
    }
}

/// A binary frame: a `message` header, `\n`, then the raw payload.
fn on_binary<T>(frame: Bytes) -> Result<Option<Incoming<T>>, String> {
    let newline = frame
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("binary frame without a header line")?;
    let f: ServerFrame = serde_json::from_slice(&frame[..newline])
        .map_err(|e| format!("unreadable binary frame header: {e}"))?;
    if f.kind != "message" {
        return Err(format!("unexpected binary frame of type {:?}", f.kind));
    }
    let payload = Payload::Binary(frame.slice(newline + 1..));
    Ok(Some(message(f.topic, f.offset, f.epoch, payload)?))
}

fn message<T>(
    topic: Option<String>,
    offset: Option<u64>,
    epoch: Option<String>,
    payload: Payload,
) -> Result<Incoming<T>, String> {
    Ok(Incoming::Event(Event::Message(Message {
        topic: topic.ok_or("message without a topic")?,
        offset: offset.ok_or("message without an offset")?,
        epoch,
        payload,
    })))
}

fn close_text(frame: &Frame) -> String {
    let code = frame.close_code().map(u16::from);
    let reason = frame.close_reason().ok().flatten().unwrap_or_default();
    match code {
        Some(code) => format!("{code} {reason}").trim_end().to_owned(),
        None => "no close code".to_owned(),
    }
}

/// Feeds every queued frame and flushes once; at the end of the queue, closes with 1000.
async fn write_loop(
    mut sink: SplitSink<Socket, Frame>,
    mut rx: mpsc::Receiver<Frame>,
    failed: oneshot::Sender<String>,
) {
    let result = async {
        while let Some(first) = rx.recv().await {
            sink.feed(first).await?;
            while let Ok(more) = rx.try_recv() {
                sink.feed(more).await?;
            }
            sink.flush().await?;
        }
        sink.close().await
    }
    .await;
    if let Err(e) = result {
        let _ = failed.send(format!("write failed: {e}"));
    }
}

/// Every field a server frame may have; unknown fields are ignored.
#[derive(Deserialize)]
struct ServerFrame {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    topic: Option<String>,
    #[serde(default)]
    offset: Option<u64>,
    #[serde(default)]
    epoch: Option<String>,
    #[serde(default)]
    replayed: Option<u64>,
    #[serde(default)]
    since: Option<u64>,
    #[serde(default)]
    next: Option<u64>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    earliest: Option<u64>,
    #[serde(default)]
    last: Option<u64>,
    /// Kept as JSON text; `null` is a JSON value here, not an absent field.
    #[serde(default, deserialize_with = "present")]
    data: Option<Box<RawValue>>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    client: Option<String>,
    #[serde(default)]
    user: Option<String>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(text: &str) -> ServerFrame {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn frames() {
        let f = frame(r#"{"type":"message","topic":"t","offset":5,"epoch":"e","data":null}"#);
        assert_eq!(f.data.unwrap().get(), "null");
        let f = frame(r#"{"type":"message","topic":"t","offset":5,"epoch":"e","text":"hi"}"#);
        assert!(f.data.is_none());
        assert_eq!(f.text.as_deref(), Some("hi"));
        let f = frame(
            r#"{"type":"error","id":3,"code":"resume_unavailable","message":"m","epoch":"e","earliest":6,"last":8}"#,
        );
        assert_eq!((f.earliest, f.last), (Some(6), Some(8)));
        let f =
            frame(r#"{"type":"presence","topic":"t","event":"leave","client":"c2","user":null}"#);
        assert_eq!(f.user, None);
    }

    #[test]
    fn gaps() {
        let reader = |text: &str| match serde_json::from_str::<ServerFrame>(text) {
            Ok(f) if f.kind == "gap" => (f.topic, f.since, f.epoch, f.next, f.reason),
            _ => panic!("{text}"),
        };
        assert_eq!(
            reader(
                r#"{"type":"gap","topic":"w.a","since":3,"epoch":"e2","next":null,"reason":"r"}"#
            ),
            (
                Some("w.a".into()),
                Some(3),
                Some("e2".into()),
                None,
                Some("r".into())
            )
        );
        assert_eq!(
            reader(r#"{"type":"gap","topic":"w.a","since":3,"epoch":null,"next":9,"reason":"r"}"#)
                .3,
            Some(9)
        );
    }

    #[test]
    fn binary_messages() {
        let bytes = Bytes::from_static(
            b"{\"type\":\"message\",\"topic\":\"t\",\"offset\":7,\"epoch\":\"e\"}\n\xff\n\x00",
        );
        match on_binary::<()>(bytes) {
            Ok(Some(Incoming::Event(Event::Message(m)))) => {
                assert_eq!(m.offset, 7);
                assert_eq!(
                    m.payload,
                    Payload::Binary(Bytes::from_static(b"\xff\n\x00"))
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(on_binary::<()>(Bytes::from_static(b"no header")).is_err());
    }
}
