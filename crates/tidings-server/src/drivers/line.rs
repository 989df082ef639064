//! The TCP line protocol driver: the classic socket/bind/listen/accept server.
//!
//! One task per connection selects between reading commands and writing the outbox.
//! Replies go through the outbox too, so a subscribe's `+OK` always precedes the messages it
//! replays. A bad line gets `-ERR` and the connection stays; a fatal one (too long) gets
//! `-ERR` and a close.

use super::{Context, Ended};
use crate::config::LineConfig;
use crate::listen::{ByteStream, Peer};
use bytes::{Bytes, BytesMut};
use std::time::Duration;
use tidings_core::{
    CloseReason, Delivery, EncodingSlot, Identity, PayloadKind, Resume, Session, SubscribeOptions,
};
use tidings_proto::line::{self, Command, Decoder, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// What to do after a command.
enum Flow {
    Continue,
    /// Flush what is queued, then close, for this reason.
    Close(Ended),
}

/// Serves one connection until it ends, the peer is too slow, or shutdown.
/// What a connection the listener refuses is told (`-ERR too many connections`).
pub(crate) fn refusal(reason: &str) -> Vec<u8> {
    let mut out = Vec::new();
    line::encode_err(reason, &mut out);
    out
}

pub(crate) async fn serve(stream: impl ByteStream, peer: Peer, ctx: Context, cfg: LineConfig) {
    run(stream, peer, ctx, cfg).await.log();
}

async fn run(mut stream: impl ByteStream, peer: Peer, ctx: Context, cfg: LineConfig) -> Ended {
    let (session, wake) = match super::open_session(&ctx.hub, "line", Some(peer)) {
        Ok(pair) => pair,
        Err(e) => {
            let mut out = BytesMut::new();
            line::encode_err(&e, &mut out);
            let _ = stream.write_all(&out).await;
            return Ended::Refused(e);
        }
    };
    let mut conn = Conn {
        session,
        identity: ctx.auth.anonymous(),
        decoder: Decoder::new(Limits {
            max_line: cfg.max_line,
            max_payload: cfg.max_payload,
        }),
        hub: ctx.hub.clone(),
        remote: ctx.remote.clone(),
        auth: ctx.auth.clone(),
        peer: peer.addr.ip(),
        login_failures: 0,
    };
    if let Err(e) = stream.write_all(line::GREETING.as_bytes()).await {
        return Ended::WriteFailed(e.to_string());
    }
    let mut rbuf = BytesMut::with_capacity(1024);
    let mut wbuf = BytesMut::new();
    let mut batch = Vec::new();
    let idle_after =
        (cfg.idle_timeout_secs > 0).then(|| Duration::from_secs(cfg.idle_timeout_secs));
    let mut last_read = Instant::now();
    let ended = loop {
        let idle = async {
            match idle_after {
                Some(after) => tokio::time::sleep_until(last_read + after).await,
                None => std::future::pending().await,
            }
        };
        // Only a token's identity expires; others wait on nothing here.
        let expiry = conn.identity.expires_at;
        let expired = async {
            match expiry {
                Some(at) => {
                    let left = at.saturating_sub(crate::clock::now_ms());
                    tokio::time::sleep(Duration::from_millis(left)).await
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = wake.notified() => {
                let closed = conn.session.outbox().drain_into(&mut batch);
                encode_batch(&mut batch, &mut wbuf);
                if let Some(reason) = &closed {
                    goodbye(reason, &mut wbuf);
                }
                if let Err(e) = stream.write_all(&wbuf).await {
                    break Ended::WriteFailed(e.to_string());
                }
                if let Some(reason) = &closed {
                    break Ended::closed(reason);
                }
                wbuf.clear();
                if wbuf.capacity() > 64 * 1024 {
                    wbuf = BytesMut::new(); // give back what a burst made it grow to
                }
            }
            r = read_more(&mut stream, &mut rbuf) => {
                if !matches!(r, Ok(n) if n > 0) {
                    break Ended::PeerClosed; // EOF or reset: the session is dropped below
                }
                last_read = Instant::now();
                if let Flow::Close(why) = conn.handle_input(&mut rbuf) {
                    conn.session.outbox().drain_into(&mut batch);
                    encode_batch(&mut batch, &mut wbuf);
                    let _ = stream.write_all(&wbuf).await;
                    break why;
                }
            }
            _ = expired => {
                // `AUTH TOKEN` with a fresh token before this moves the deadline.
                if conn.identity.check_expiry(crate::clock::now_ms()).is_err() {
                    conn.session.outbox().drain_into(&mut batch);
                    encode_batch(&mut batch, &mut wbuf);
                    line::encode_err("token expired; closing (send AUTH TOKEN with a fresh one before it expires)", &mut wbuf);
                    let _ = stream.write_all(&wbuf).await;
                    break Ended::Expired;
                }
            }
            _ = idle => {
                // A subscriber waiting for messages is not idle; a connection that holds
                // nothing and says nothing only holds a file descriptor.
                if conn.session.is_listening() {
                    last_read = Instant::now();
                    continue;
                }
                let secs = cfg.idle_timeout_secs;
                wbuf.clear();
                line::encode_err(format_args!("idle for {secs} s with no subscription; closing"), &mut wbuf);
                let _ = stream.write_all(&wbuf).await;
                break Ended::Idle;
            }
        }
    };
    let _ = stream.shutdown().await;
    ended
}

async fn read_more(
    rd: &mut (impl AsyncReadExt + Unpin),
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < 512 {
        buf.reserve(4096);
    }
    rd.read_buf(buf).await
}

fn goodbye(reason: &CloseReason, out: &mut BytesMut) {
    match reason {
        CloseReason::SlowConsumer => {
            line::encode_err("slow consumer: too many messages queued; closing", out)
        }
        _ => line::encode_err("server shutting down; closing", out),
    }
}

/// Encodes every delivery into one buffer; a message's encoding is shared by all sessions.
fn encode_batch(batch: &mut Vec<Delivery>, out: &mut BytesMut) {
    for d in batch.drain(..) {
        match d {
            Delivery::Message { msg, .. } => {
                let bytes = msg.encoded(EncodingSlot::Line, |m| {
                    let mut b = BytesMut::with_capacity(m.payload.len() + m.topic.len() + 32);
                    line::encode_message(&m.topic, m.offset, &m.payload, &mut b);
                    b.freeze()
                });
                out.extend_from_slice(&bytes);
            }
            Delivery::Presence(p) => {
                let client = p.client.to_string();
                if p.joined {
                    line::encode_join(&p.topic, &client, p.user.as_deref(), out);
                } else {
                    line::encode_leave(&p.topic, &client, p.user.as_deref(), out);
                }
            }
            Delivery::Reply(bytes) => out.extend_from_slice(&bytes),
            // The line protocol resumes exact topics only (a refused resume is an `-ERR`
            // reply), so the hub queues no gaps for it; say so plainly if one comes.
            Delivery::Gap(g) => line::encode_err(
                format_args!(
                    "gap in {} after offset {}: {}",
                    g.topic,
                    g.since,
                    g.reason.as_str()
                ),
                out,
            ),
        }
    }
}

struct Conn {
    session: Session,
    identity: Identity,
    decoder: Decoder,
    hub: std::sync::Arc<tidings_core::Hub>,
    /// The Redis engine, when topics are shared with other nodes.
    remote: crate::engine::Remote,
    auth: std::sync::Arc<dyn crate::auth::Authenticator>,
    peer: std::net::IpAddr,
    /// Failed `AUTH`s on this connection (closed at `auth::FAILURES_PER_CONNECTION`).
    login_failures: u32,
}

impl Conn {
    fn reply(&self, f: impl FnOnce(&mut BytesMut)) {
        let mut b = BytesMut::new();
        f(&mut b);
        self.session.outbox().push_reply(b.freeze());
    }

    fn err(&self, e: impl std::fmt::Display) {
        self.reply(|b| line::encode_err(e, b));
    }

    /// Takes the identity of an `AUTH` (`+OK AUTH <user>`, and `<expires>` in Unix seconds for
    /// a token), or counts its failure.
    fn logged_in(&mut self, who: Result<Identity, tidings_core::HubError>) -> Flow {
        match who {
            Ok(id) => {
                if id.method == tidings_core::AuthMethod::Token {
                    // A token again (a refresh) may narrow the rights: what they no longer
                    // allow ends, each with its `-ERR SUB`.
                    for key in super::reattach_identity(&self.session, &id) {
                        self.err(format_args!("SUB {key}: {}", super::ENDED_BY_REFRESH));
                    }
                } else {
                    // A password login keeps what the connection subscribed before it, as
                    // it always has.
                    super::attach_identity(&self.session, &id);
                }
                let user = id.name().to_owned();
                match id.expires_at {
                    Some(at) => self
                        .reply(|b| line::encode_ok(format_args!("AUTH {user} {}", at / 1000), b)),
                    None => self.reply(|b| line::encode_ok(format_args!("AUTH {user}"), b)),
                }
                self.identity = id;
            }
            Err(e) => {
                self.err(format_args!("AUTH: {e}"));
                self.login_failures += 1;
                if self.login_failures >= crate::auth::FAILURES_PER_CONNECTION {
                    self.err("too many failed logins; closing");
                    return Flow::Close(Ended::LoginFailures);
                }
            }
        }
        Flow::Continue
    }

    /// Decodes and runs every whole command in `buf`.
    fn handle_input(&mut self, buf: &mut BytesMut) -> Flow {
        loop {
            match self.decoder.decode(buf) {
                Ok(Some(cmd)) => {
                    if let Flow::Close(why) = self.handle(cmd) {
                        return Flow::Close(why);
                    }
                }
                Ok(None) => return Flow::Continue,
                Err(e) if e.is_fatal() => {
                    self.err(format_args!("{e}; closing"));
                    return Flow::Close(Ended::BadInput(e.to_string()));
                }
                Err(e) => self.err(e),
            }
        }
    }

    fn handle(&mut self, cmd: Command) -> Flow {
        let hub = self.hub.clone();
        let now = crate::clock::now_ms();
        match cmd {
            Command::Sub {
                pattern,
                since,
                epoch,
            } => {
                let opts = SubscribeOptions {
                    resume: since.map(|since| Resume { since, epoch }),
                    presence: true,
                    ..SubscribeOptions::default()
                };
                let name = pattern.clone();
                let ack = move |info: &tidings_core::Subscribed| {
                    let mut b = BytesMut::new();
                    let epoch = info.epoch.as_deref().unwrap_or("-");
                    line::encode_ok(
                        format_args!(
                            "SUB {name} epoch={epoch} last={} replayed={}",
                            info.last_offset, info.replayed
                        ),
                        &mut b,
                    );
                    Some(b.freeze())
                };
                let res = match &self.remote {
                    Some(remote) => {
                        let name = pattern.clone();
                        let refused = move |e: &tidings_core::HubError| {
                            let mut b = BytesMut::new();
                            line::encode_err(format_args!("SUB {name}: {e}"), &mut b);
                            Some(b.freeze())
                        };
                        remote.subscribe(
                            &self.session,
                            &self.identity,
                            &pattern,
                            &pattern,
                            opts,
                            Box::new(ack),
                            Box::new(refused),
                        )
                    }
                    None => hub
                        .subscribe(&self.session, &self.identity, &pattern, &pattern, opts, ack)
                        .map(|_| ()),
                };
                if let Err(e) = res {
                    self.err(format_args!("SUB {pattern}: {e}"));
                }
            }
            Command::Unsub { pattern } => match hub.unsubscribe(&self.session, &pattern) {
                Ok(()) => self.reply(|b| line::encode_ok(format_args!("UNSUB {pattern}"), b)),
                Err(e) => self.err(format_args!("UNSUB {pattern}: {e}")),
            },
            Command::Pub { topic, payload } => {
                let kind = kind_of(&payload);
                if let Some(remote) = &self.remote {
                    let outbox = self.session.outbox().clone();
                    let name = topic.clone();
                    let done = move |r: Result<tidings_core::Published, tidings_core::HubError>| {
                        let mut b = BytesMut::new();
                        match r {
                            Ok(p) => {
                                line::encode_ok(format_args!("PUB {name} {}", p.offset), &mut b)
                            }
                            Err(e) => line::encode_err(format_args!("PUB {name}: {e}"), &mut b),
                        }
                        outbox.push_reply(b.freeze());
                    };
                    remote.publish(
                        &self.identity,
                        &topic,
                        kind,
                        payload,
                        Vec::new(),
                        now,
                        Box::new(done),
                    );
                    return Flow::Continue;
                }
                match hub.publish(&self.identity, &topic, kind, payload, Vec::new(), now) {
                    Ok(p) => {
                        self.reply(|b| line::encode_ok(format_args!("PUB {topic} {}", p.offset), b))
                    }
                    Err(e) => self.err(format_args!("PUB {topic}: {e}")),
                }
            }
            Command::Hist { topic, since } => {
                let name = topic.clone();
                let encode = move |r: Result<tidings_core::HistoryPage, tidings_core::HubError>| {
                    let mut b = BytesMut::new();
                    match r {
                        Ok(page) => {
                            let epoch = page.epoch.as_deref().unwrap_or("-");
                            line::encode_ok(
                                format_args!(
                                    "HIST {name} epoch={epoch} earliest={} last={} count={}",
                                    page.earliest,
                                    page.last_offset,
                                    page.messages.len()
                                ),
                                &mut b,
                            );
                            for m in &page.messages {
                                line::encode_message(&m.topic, m.offset, &m.payload, &mut b);
                            }
                        }
                        Err(e) => line::encode_err(format_args!("HIST {name}: {e}"), &mut b),
                    }
                    b.freeze()
                };
                match &self.remote {
                    Some(remote) => {
                        let outbox = self.session.outbox().clone();
                        let done = move |r| {
                            outbox.push_reply(encode(r));
                        };
                        remote.history_then(
                            &self.identity,
                            &topic,
                            since,
                            usize::MAX,
                            Box::new(done),
                        );
                    }
                    None => {
                        let bytes = encode(hub.history(&self.identity, &topic, since, usize::MAX));
                        self.session.outbox().push_reply(bytes);
                    }
                }
            }
            Command::Who { topic } => match hub.presence(&self.identity, &topic) {
                Ok(members) => {
                    let list: Vec<String> = members
                        .iter()
                        .map(|m| format!("{}={}", m.client, m.user.as_deref().unwrap_or("-")))
                        .collect();
                    let text = format!("WHO {topic} {} {}", list.len(), list.join(" "));
                    self.reply(|b| line::encode_ok(text.trim_end(), b));
                }
                Err(e) => self.err(format_args!("WHO {topic}: {e}")),
            },
            Command::Auth { user, password } => {
                let who = self.auth.password(&user, &password, Some(self.peer));
                return self.logged_in(who);
            }
            Command::AuthToken { token } => {
                let who = self.auth.token(&token, Some(self.peer));
                return self.logged_in(who);
            }
            Command::Ping { token } => self.reply(|b| line::encode_pong(token.as_deref(), b)),
            Command::Help => self.reply(|b| b.extend_from_slice(line::HELP.as_bytes())),
            Command::Quit => {
                self.reply(|b| line::encode_ok("BYE", b));
                return Flow::Close(Ended::Goodbye);
            }
        }
        Flow::Continue
    }
}

fn kind_of(payload: &Bytes) -> PayloadKind {
    if std::str::from_utf8(payload).is_ok() {
        PayloadKind::Text
    } else {
        PayloadKind::Binary
    }
}
