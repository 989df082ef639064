//! The TCP line protocol: commands out, `+OK`/`-ERR` replies in order, `MSG`/`BMSG`/`JOIN`/
//! `LEAVE` pushed in between.
//!
//! Every command gets exactly one `+OK` or `-ERR` line, in the order the commands were sent,
//! so pending requests are a FIFO. The one unsolicited status line is the server's goodbye,
//! `-ERR <why>; closing` (slow consumer, shutdown), after which it closes the socket.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};
use tidings_proto::line::{encode_command, Command, Limits, Reply, ReplyDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::{
    payload_bytes, ErrReply, Incoming, Lost, OkReply, Op, Writer, MAX_MESSAGE, WRITE_BATCH,
};
use crate::config::Target;
use crate::error::ClientError;
use crate::types::{Event, Message, Payload};

/// Text payloads longer than this go as `BPUB` even when they fit on one line: the server
/// refuses lines longer than its `line.max_line` (4096 bytes by default) and closes.
const MAX_PUB_PAYLOAD: usize = 512;

/// Keep at least this much room in the read buffer before reading.
const READ_CHUNK: usize = 8 * 1024;

pub(crate) struct LineConn<T> {
    pub(super) reader: Reader<T>,
    pub(super) writer: Writer<Bytes>,
}

/// The reading side, with the requests waiting for their reply (in order).
pub(crate) struct Reader<T> {
    rd: OwnedReadHalf,
    rbuf: BytesMut,
    decoder: ReplyDecoder,
    pub(super) pending: VecDeque<T>,
}

impl<T> LineConn<T> {
    pub(super) async fn open(target: &Target) -> Result<Self, ClientError> {
        let stream = match target.host_port() {
            (url::Host::Domain(d), port) => TcpStream::connect((d.as_str(), port)).await?,
            (url::Host::Ipv4(a), port) => TcpStream::connect((*a, port)).await?,
            (url::Host::Ipv6(a), port) => TcpStream::connect((*a, port)).await?,
        };
        stream.set_nodelay(true)?;
        let (rd, wr) = stream.into_split();
        let mut conn = LineConn {
            reader: Reader {
                rd,
                rbuf: BytesMut::with_capacity(READ_CHUNK),
                decoder: ReplyDecoder::new(Limits {
                    max_line: MAX_MESSAGE,
                    max_payload: MAX_MESSAGE,
                }),
                pending: VecDeque::new(),
            },
            writer: Writer::spawn(|rx, failed| write_loop(wr, rx, failed)),
        };
        // The greeting: `+OK tidings line protocol 1; ...`, or `-ERR` when the server
        // cannot take the session.
        match conn.reader.next_reply().await {
            Ok(Reply::Ok(_)) => Ok(conn),
            Ok(Reply::Err(text)) => Err(ClientError::Server {
                code: code_of(&text).into(),
                message: text,
            }),
            Ok(other) => Err(ClientError::Protocol(format!(
                "expected the server's greeting, got {other:?}"
            ))),
            Err(Lost(why)) => Err(ClientError::Protocol(why)),
        }
    }

    pub(super) fn send(&mut self, op: &Op, tag: T) -> Result<(), (T, ClientError)> {
        let mut out = BytesMut::new();
        if let Err(e) = encode(op, &mut out) {
            return Err((tag, e));
        }
        match self.writer.send(out.freeze()) {
            Ok(()) => {
                self.reader.pending.push_back(tag);
                Ok(())
            }
            Err(e) => Err((tag, e)),
        }
    }

    pub(super) async fn close(mut self) {
        let mut quit = BytesMut::new();
        if encode_command(&Command::Quit, &mut quit).is_ok() {
            let _ = self.writer.send(quit.freeze());
        }
        self.writer.finish().await;
        // Read to the end (the server answers `+OK BYE` and closes) so that closing our
        // side does not reset the connection under bytes the server has not read yet.
        while self.reader.next_reply().await.is_ok() {}
    }
}

impl<T> Reader<T> {
    pub(super) async fn recv(&mut self) -> Result<Incoming<T>, Lost> {
        loop {
            let reply = self.next_reply().await?;
            let (ok, text) = match reply {
                Reply::Msg {
                    topic,
                    offset,
                    payload,
                } => {
                    return Ok(Incoming::Event(Event::Message(Message {
                        topic,
                        offset,
                        epoch: None,
                        payload: Payload::text_or_binary(payload),
                    })))
                }
                Reply::Join {
                    topic,
                    client,
                    user,
                } => {
                    return Ok(Incoming::Event(Event::Presence {
                        topic,
                        joined: true,
                        client,
                        user,
                    }))
                }
                Reply::Leave {
                    topic,
                    client,
                    user,
                } => {
                    return Ok(Incoming::Event(Event::Presence {
                        topic,
                        joined: false,
                        client,
                        user,
                    }))
                }
                // HELP text and pongs: this client asks for neither.
                Reply::Info(_) | Reply::Pong(_) => continue,
                Reply::Ok(text) => (true, text),
                Reply::Err(text) if text.ends_with("; closing") => return Err(Lost(text)),
                Reply::Err(text) => (false, text),
            };
            let Some(tag) = self.pending.pop_front() else {
                tracing::warn!("line protocol: reply without a request: {text:?}");
                continue;
            };
            let outcome = if ok {
                Ok(parse_ok(&text))
            } else {
                Err(parse_err(text))
            };
            return Ok(Incoming::Reply(tag, outcome));
        }
    }

    /// The next reply line, reading as needed. Cancel-safe: bytes read stay in `rbuf`.
    async fn next_reply(&mut self) -> Result<Reply, Lost> {
        loop {
            match self.decoder.decode(&mut self.rbuf) {
                Ok(Some(reply)) => return Ok(reply),
                Ok(None) => {}
                Err(e) if e.is_fatal() => return Err(Lost(format!("protocol error: {e}"))),
                Err(e) => {
                    tracing::warn!("line protocol: {e}");
                    continue;
                }
            }
            if self.rbuf.is_empty() && self.rbuf.capacity() > 4 * READ_CHUNK {
                // Give back what a big BMSG made the buffer grow to.
                self.rbuf = BytesMut::with_capacity(READ_CHUNK);
            }
            self.rbuf.reserve(READ_CHUNK);
            match self.rd.read_buf(&mut self.rbuf).await {
                Ok(0) => return Err(Lost("connection closed by the server".into())),
                Ok(_) => {}
                Err(e) => return Err(Lost(format!("read failed: {e}"))),
            }
        }
    }
}

/// Writes every queued frame, gathering what is ready into one write.
async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Bytes>,
    failed: oneshot::Sender<String>,
) {
    let mut buf = BytesMut::new();
    while let Some(first) = rx.recv().await {
        buf.extend_from_slice(&first);
        while buf.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(more) => buf.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if let Err(e) = wr.write_all(&buf).await {
            let _ = failed.send(format!("write failed: {e}"));
            return;
        }
        buf.clear();
        if buf.capacity() > 4 * WRITE_BATCH {
            buf = BytesMut::new();
        }
    }
    let _ = wr.shutdown().await;
}

/// Writes `op` as a command line (or a `BPUB` block).
fn encode(op: &Op, out: &mut BytesMut) -> Result<(), ClientError> {
    let command = match op {
        Op::Auth { user, password } => Command::Auth {
            user: user.clone(),
            password: password.clone(),
        },
        // `SUB` has no per-topic positions: patterns start live over the line protocol.
        Op::Subscribe {
            pattern,
            since,
            epoch,
            positions: _,
        } => Command::Sub {
            pattern: pattern.clone(),
            since: *since,
            epoch: epoch.clone(),
        },
        Op::Unsubscribe { pattern } => Command::Unsub {
            pattern: pattern.clone(),
        },
        Op::Publish { topic, payload } => {
            let payload = payload_bytes(payload);
            if payload.len() > MAX_PUB_PAYLOAD {
                put_bpub(topic, &payload, out);
                return Ok(());
            }
            Command::Pub {
                topic: topic.clone(),
                payload,
            }
        }
    };
    encode_command(&command, out).map_err(|e| ClientError::InvalidInput(e.to_string()))
}

/// `BPUB <topic> <len>\r\n<payload>\r\n` (the topic was checked by the client).
fn put_bpub(topic: &str, payload: &[u8], out: &mut BytesMut) {
    out.reserve(topic.len() + payload.len() + 32);
    out.put_slice(b"BPUB ");
    out.put_slice(topic.as_bytes());
    out.put_slice(format!(" {}\r\n", payload.len()).as_bytes());
    out.put_slice(payload);
    out.put_slice(b"\r\n");
}

/// Reads `SUB <pattern> epoch=<e> last=<n> replayed=<n>`, `PUB <topic> <offset>` and the
/// plain `UNSUB <pattern>`/`AUTH <user>`.
fn parse_ok(text: &str) -> OkReply {
    let mut reply = OkReply::default();
    let mut tokens = text.split(' ').filter(|t| !t.is_empty());
    let verb = tokens.next().unwrap_or_default();
    if verb == "PUB" {
        reply.offset = tokens.nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
        return reply;
    }
    for token in tokens {
        match token.split_once('=') {
            Some(("epoch", "-")) => {}
            Some(("epoch", e)) => reply.epoch = Some(e.to_owned()),
            Some(("last", n)) => reply.offset = n.parse().unwrap_or(0),
            Some(("replayed", n)) => reply.replayed = n.parse().unwrap_or(0),
            _ => {}
        }
    }
    reply
}

/// Reads a `-ERR` line. The line protocol has no error codes, so the code is inferred from
/// the server's wording; a failed resume also says what history holds:
/// `SUB t: cannot resume t after offset 3: <why> (epoch 1f3a, history holds 6..=8)`.
fn parse_err(message: String) -> ErrReply {
    let mut reply = ErrReply {
        code: code_of(&message).into(),
        ..ErrReply::default()
    };
    if reply.is_resume_unavailable() {
        if let Some(start) = message.rfind("(epoch ") {
            let detail = message[start + "(epoch ".len()..].trim_end_matches(')');
            if let Some((epoch, holds)) = detail.split_once(", history holds ") {
                let epoch = epoch.trim();
                reply.epoch = (!epoch.is_empty() && epoch != "-").then(|| epoch.to_owned());
                if let Some((a, b)) = holds.split_once("..=") {
                    reply.earliest = a.trim().parse().ok();
                    reply.last = b.trim().parse().ok();
                }
            }
        }
    }
    reply.message = message;
    reply
}

/// The native protocol's error code for a `-ERR` text.
fn code_of(text: &str) -> &'static str {
    if text.contains("cannot resume ") {
        ErrReply::RESUME_UNAVAILABLE
    } else if text.contains("unknown user or wrong password") {
        "unauthorized"
    } else if text.contains(" may not ") {
        "forbidden"
    } else if text.contains("not subscribed to ") {
        "not_found"
    } else if text.contains("shutting down") {
        "shutting_down"
    } else {
        "bad_request"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_replies() {
        assert_eq!(
            parse_ok("SUB chat.lobby epoch=1f3a last=12 replayed=3"),
            OkReply {
                epoch: Some("1f3a".into()),
                offset: 12,
                replayed: 3
            }
        );
        assert_eq!(
            parse_ok("SUB a.* epoch=- last=0 replayed=0"),
            OkReply::default()
        );
        assert_eq!(parse_ok("PUB chat.lobby 13").offset, 13);
        assert_eq!(parse_ok("UNSUB x"), OkReply::default());
    }

    #[test]
    fn err_replies() {
        let e = parse_err(
            "SUB t: cannot resume t after offset 3: messages after it are no longer in history \
             (epoch 1f3a, history holds 6..=8)"
                .into(),
        );
        assert!(e.is_resume_unavailable());
        assert_eq!(e.epoch.as_deref(), Some("1f3a"));
        assert_eq!((e.earliest, e.last), (Some(6), Some(8)));
        let e = parse_err(
            "SUB t: cannot resume t after offset 3: x (epoch , history holds 1..=0)".into(),
        );
        assert_eq!((e.epoch, e.earliest, e.last), (None, Some(1), Some(0)));
        assert_eq!(
            parse_err("AUTH: unknown user or wrong password".into()).code,
            "unauthorized"
        );
        assert_eq!(
            parse_err("PUB x: alice may not publish to x".into()).code,
            "forbidden"
        );
        assert_eq!(
            parse_err("PUB a..b: topic has an empty token".into()).code,
            "bad_request"
        );
    }

    #[test]
    fn commands() {
        let text = |op: Op| {
            let mut out = BytesMut::new();
            encode(&op, &mut out).unwrap();
            out.to_vec()
        };
        assert_eq!(
            text(Op::Subscribe {
                pattern: "t".into(),
                since: Some(3),
                epoch: Some("e1".into()),
                positions: Vec::new(),
            }),
            b"SUB t 3 e1\r\n"
        );
        assert_eq!(
            text(Op::Publish {
                topic: "t".into(),
                payload: "hi there".into()
            }),
            b"PUB t hi there\r\n"
        );
        assert_eq!(
            text(Op::Publish {
                topic: "t".into(),
                payload: vec![0xff, b'\n'].into()
            }),
            b"BPUB t 2\r\n\xff\n\r\n"
        );
        let long = "x".repeat(MAX_PUB_PAYLOAD + 1);
        assert!(text(Op::Publish {
            topic: "t".into(),
            payload: long.clone().into()
        })
        .starts_with(format!("BPUB t {}\r\n", long.len()).as_bytes()));
    }
}
