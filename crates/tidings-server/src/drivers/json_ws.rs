//! The native JSON protocol over WebSocket (`/ws`).
//!
//! One task per connection selects between the peer's messages, the outbox and a keepalive
//! timer. Replies are queued in the outbox like deliveries, so the session sees one order.
//! Everything queued is sent as frames fed into yawc's buffer and written with one flush.

use super::Ended;
use crate::auth::Authenticator;
use crate::config::WebSocketConfig;
use crate::transports::ws::{Close, OutFrame, WsConn, WsMessage};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tidings_core::{
    CloseReason, Delivery, EncodingSlot, Hub, HubError, Identity, Message, Pattern, PayloadKind,
    Resume, Session, SubscribeOptions, Subscribed,
};
use tidings_proto::json::{self, ErrorCode, MessageRef, Op, ReplyBuilder, RequestId};
use tokio::time::Instant;

/// Most messages one `history` request returns.
const MAX_HISTORY_PAGE: usize = 1000;

/// What every native-protocol connection (`/ws`, `/sockjs`) shares.
pub(crate) struct Native {
    pub(crate) hub: Arc<Hub>,
    pub(crate) auth: Arc<dyn Authenticator>,
    pub(crate) keepalive: Keepalive,
    /// The Redis engine, when topics are shared with other nodes.
    pub(crate) remote: crate::engine::Remote,
}

/// When to ping a quiet peer and when to give up on a silent one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keepalive {
    ping_every: Option<Duration>,
    idle_after: Option<Duration>,
}

impl Keepalive {
    pub(crate) fn of(cfg: &WebSocketConfig) -> Keepalive {
        let secs = |s: u64| (s > 0).then(|| Duration::from_secs(s));
        Keepalive {
            ping_every: secs(cfg.ping_interval_secs),
            idle_after: secs(cfg.idle_timeout_secs),
        }
    }
}

/// What the upgrade request already said, acted on before the peer's first frame is read.
pub(crate) struct First {
    /// The identity of a token on the URL.
    pub(crate) who: Option<Identity>,
    /// `subscribe` requests from the URL's topics (`url_subscribe`), answered right after
    /// `hello` and so in the same write as the `101`.
    pub(crate) subscribe: Vec<Bytes>,
}

/// Serves the native protocol on `/ws` until the peer closes, goes silent, is too slow, or
/// shutdown; says why (the caller logs it: no wrapper future here, which would keep a
/// second copy of the arguments in every idle connection's task).
pub(crate) async fn serve(
    mut conn: WsConn,
    native: Arc<Native>,
    peer: Option<std::net::SocketAddr>,
    first: Box<First>,
) -> Ended {
    let peer = peer.map(|addr| crate::listen::Peer {
        addr,
        on_reserve: false,
    });
    let (session, wake) = match super::open_session(&native.hub, "ws", peer) {
        Ok(pair) => pair,
        Err(e) => {
            conn.close(Close::GoingAway, "server shutting down").await;
            return Ended::Refused(e);
        }
    };
    let hello = json::encode_hello(&session.id().to_string(), json::SERVER);
    session.outbox().push_reply(Bytes::from(hello));
    let Keepalive {
        ping_every,
        idle_after,
    } = native.keepalive;
    let mut driver = Driver::new(session, native);
    // In a block of its own, so the requests are not kept in the task's state for the
    // connection's life (a local lives in it until its scope ends).
    {
        let First { who, subscribe } = *first;
        if let Some(who) = who {
            driver.set_identity(who);
        }
        for request in &subscribe {
            driver.handle(request, false);
        }
    }
    let mut last_heard = Instant::now();
    let mut next_ping = ping_every.map(|p| Instant::now() + p);
    let deadline = |next_ping: Option<Instant>, last_heard: Instant, driver: &Driver| {
        [
            next_ping,
            idle_after.map(|i| last_heard + i),
            driver.expiry(),
        ]
        .into_iter()
        .flatten()
        .min()
    };
    // One timer for the connection's life, moved only when it fires: re-arming it on every
    // message would cost a timer-wheel insert and remove per wake-up. When it fires early
    // (the peer was heard since), it is simply set to the new deadline.
    let first = deadline(next_ping, last_heard, &driver);
    let timer = tokio::time::sleep_until(first.unwrap_or_else(Instant::now));
    tokio::pin!(timer);
    let mut timed = first.is_some();
    let mut armed_expiry = driver.identity.expires_at;
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            biased;
            _ = wake.notified() => {
                let closed = driver.session.outbox().drain_into(&mut batch);
                let sent = conn.send_all(batch.drain(..).map(frame_of)).await;
                match closed {
                    Some(CloseReason::SlowConsumer) => {
                        let text = ReplyBuilder::error(None, ErrorCode::SlowConsumer, "too many messages queued; closing").finish();
                        let _ = conn.send_all([OutFrame::Text(Bytes::from(text))]).await;
                        conn.close(Close::Policy, "slow consumer").await;
                        return Ended::SlowConsumer;
                    }
                    Some(reason) => {
                        // Finished: the server ended this session (an admin's disconnect).
                        let why = match reason {
                            CloseReason::Shutdown => "server shutting down",
                            _ => "closed by the server",
                        };
                        conn.close(Close::GoingAway, why).await;
                        return Ended::closed(&reason);
                    }
                    None if sent.is_err() => return Ended::WriteFailed("websocket closed".into()),
                    None => {}
                }
            }
            msg = conn.recv() => {
                last_heard = Instant::now();
                let Ok(msg) = msg else { return Ended::PeerClosed };
                driver.handle_message(msg);
                if driver.too_many_login_failures() {
                    return Box::pin(close_after_login_failures(conn, &driver, &mut batch)).await;
                }
                // A token just given may expire before the timer's next deadline. Looked at
                // only when the identity's expiry changed: the instant computed from it moves
                // with the clocks, and re-arming per message is the timer cost avoided above.
                let expires_at = driver.identity.expires_at;
                if expires_at != armed_expiry {
                    armed_expiry = expires_at;
                    if let Some(at) = driver.expiry().filter(|&at| !timed || at < timer.deadline()) {
                        timer.as_mut().reset(at);
                        timed = true;
                    }
                }
            }
            _ = &mut timer, if timed => {
                let now = Instant::now();
                if driver.expired() {
                    return Box::pin(close_expired(conn, &driver, &mut batch)).await;
                }
                if idle_after.is_some_and(|i| now >= last_heard + i) {
                    conn.close(Close::GoingAway, "idle timeout").await;
                    return Ended::Idle;
                }
                if next_ping.is_some_and(|p| now >= p) {
                    next_ping = ping_every.map(|p| now + p);
                    if conn.ping().await.is_err() {
                        return Ended::WriteFailed("ping".into());
                    }
                }
                match deadline(next_ping, last_heard, &driver) {
                    Some(d) => timer.as_mut().reset(d),
                    None => timed = false,
                }
            }
        }
    }
}

/// Sends what is queued (the failed `auth`'s error reply last) and closes with 1008.
async fn close_after_login_failures(
    mut conn: WsConn,
    driver: &Driver,
    batch: &mut Vec<Delivery>,
) -> Ended {
    driver.session.outbox().drain_into(batch);
    let _ = conn.send_all(batch.drain(..).map(frame_of)).await;
    conn.close(Close::Policy, "too many failed logins").await;
    Ended::LoginFailures
}

/// Sends what is queued and an error saying the token expired, then closes with 4401
/// (docs/security.md): the client should come back with a fresh token.
async fn close_expired(mut conn: WsConn, driver: &Driver, batch: &mut Vec<Delivery>) -> Ended {
    driver.session.outbox().drain_into(batch);
    let _ = conn.send_all(batch.drain(..).map(frame_of)).await;
    let _ = conn
        .send_all([OutFrame::Text(Bytes::from(expired_reply()))])
        .await;
    conn.close(Close::Application(TOKEN_EXPIRED), "token expired")
        .await;
    Ended::Expired
}

/// The error sent just before closing a connection whose token expired.
pub(crate) fn expired_reply() -> String {
    ReplyBuilder::error(
        None,
        ErrorCode::Unauthorized,
        "token expired; reconnect with a fresh one (or refresh before it expires)",
    )
    .finish()
}

/// The close code of a connection whose token expired (private use range, RFC 6455 7.4.2).
pub(crate) const TOKEN_EXPIRED: u16 = 4401;

/// A delivery as a frame; a message's frame is encoded once and shared by all sessions.
fn frame_of(d: Delivery) -> OutFrame {
    match d {
        Delivery::Message { msg, .. } => {
            let bytes = msg.encoded(EncodingSlot::Json, |m| {
                json::encode_message(
                    &m.topic,
                    m.offset,
                    &m.epoch,
                    super::wire_kind(m.kind),
                    &m.payload,
                )
                .bytes
            });
            if msg.kind == PayloadKind::Binary {
                OutFrame::Binary(bytes)
            } else {
                OutFrame::Text(bytes)
            }
        }
        Delivery::Presence(p) => {
            let event = if p.joined {
                json::PresenceEvent::Join
            } else {
                json::PresenceEvent::Leave
            };
            OutFrame::Text(Bytes::from(json::encode_presence_info(
                &p.topic,
                event,
                &p.client.to_string(),
                p.user.as_deref(),
                p.info.as_deref(),
            )))
        }
        Delivery::Reply(b) => OutFrame::Text(b),
        Delivery::Gap(g) => OutFrame::Text(Bytes::from(super::gap_json(&g))),
    }
}

fn message_ref(m: &Message) -> MessageRef<'_> {
    MessageRef {
        topic: &m.topic,
        offset: m.offset,
        epoch: &m.epoch,
        kind: super::wire_kind(m.kind),
        payload: &m.payload,
    }
}

/// The reply to a token login: the user, and when the token expires (Unix seconds, so the
/// client knows when to refresh).
fn token_ok(id: Option<&RequestId>, who: &Identity) -> Option<String> {
    let mut r = ReplyBuilder::ok(id).string("user", who.name());
    if let Some(at) = who.expires_at {
        r = r.number("expires", at / 1000);
    }
    Some(r.finish())
}

/// The protocol's error reply for a hub error.
pub(crate) fn hub_error(id: Option<&RequestId>, e: &HubError) -> String {
    let code = super::error_code(e);
    let mut reply = ReplyBuilder::error(id, code, &e.to_string());
    if let HubError::ResumeUnavailable {
        epoch,
        earliest,
        last,
        ..
    } = e
    {
        if !epoch.is_empty() {
            reply = reply.string("epoch", epoch);
        }
        reply = reply.number("earliest", *earliest).number("last", *last);
    }
    reply.finish()
}

/// The native protocol's request handling, shared by `/ws` and SockJS sessions: runs one
/// request and queues its reply in the session's outbox.
pub(crate) struct Driver {
    session: Session,
    identity: Identity,
    /// Shared by every native-protocol connection: one pointer each.
    native: Arc<Native>,
    /// Failed `auth` requests on this connection.
    login_failures: u8,
}

impl Driver {
    pub(crate) fn new(session: Session, native: Arc<Native>) -> Driver {
        Driver {
            session,
            identity: native.auth.anonymous(),
            native,
            login_failures: 0,
        }
    }

    /// The connection failed `auth` too often and should be closed.
    pub(crate) fn too_many_login_failures(&self) -> bool {
        u32::from(self.login_failures) >= crate::auth::FAILURES_PER_CONNECTION
    }

    pub(crate) fn session(&self) -> &Session {
        &self.session
    }

    fn set_identity(&mut self, who: Identity) {
        super::attach_identity(&self.session, &who);
        self.identity = who;
    }

    /// When the identity expires, on the runtime's clock; `None` for identities that do not.
    pub(crate) fn expiry(&self) -> Option<Instant> {
        super::expiry_instant(&self.identity)
    }

    /// The identity has expired (the connection should close unless refreshed in time).
    pub(crate) fn expired(&self) -> bool {
        super::is_expired(&self.identity)
    }

    /// Logs in with a token; a refresh must keep the user. Failures count like passwords.
    fn token_login(&mut self, token: &str, refresh: bool) -> Result<Identity, HubError> {
        let from = self.session.peer().map(|p| p.ip());
        let result = self.native.auth.token(token, from).and_then(|who| {
            if refresh && who.user != self.identity.user {
                return Err(HubError::Denied(tidings_core::AuthError::BadToken(
                    tidings_core::TokenRefusal::OtherUser,
                )));
            }
            Ok(who)
        });
        match result {
            Ok(who) => {
                // Subscriptions the new rights do not allow end now, each with an error.
                for key in super::reattach_identity(&self.session, &who) {
                    let text =
                        ReplyBuilder::error(None, ErrorCode::Forbidden, super::ENDED_BY_REFRESH)
                            .string("topic", &key)
                            .finish();
                    self.reply(text);
                }
                self.identity = who.clone();
                Ok(who)
            }
            Err(e) => {
                self.login_failures = self.login_failures.saturating_add(1);
                Err(e)
            }
        }
    }

    fn reply(&self, text: String) {
        self.session.outbox().push_reply(Bytes::from(text));
    }

    fn handle_message(&mut self, msg: WsMessage) {
        match msg {
            WsMessage::Text(b) => self.handle(&b, false),
            WsMessage::Binary(b) => self.handle(&b, true),
            WsMessage::Control => {}
        }
    }

    /// Runs one request frame (a text frame, or a binary frame with a JSON header line).
    pub(crate) fn handle(&mut self, frame: &[u8], binary: bool) {
        let req = match json::decode_client(frame, binary) {
            Ok(r) => r,
            Err(e) => return self.reply(e.to_reply()),
        };
        let id = req.id.as_ref();
        let hub = self.native.hub.clone();
        let result = match req.op {
            Op::Subscribe {
                topic,
                since,
                epoch,
                positions,
                presence,
            } => {
                // Positions belong to patterns: an exact topic has `since`/`epoch`, which
                // fail plainly (`resume_unavailable`) rather than state a gap.
                let exact = Pattern::parse(&topic).is_ok_and(|p| p.is_exact());
                if !positions.is_empty() && exact {
                    let message = "\"positions\" resume a pattern's topics; an exact topic resumes with \"since\" and \"epoch\"";
                    return self
                        .reply(ReplyBuilder::error(id, ErrorCode::BadRequest, message).finish());
                }
                let opts = SubscribeOptions {
                    resume: since.map(|since| Resume { since, epoch }),
                    positions: positions
                        .into_iter()
                        .map(|p| {
                            let at = Resume {
                                since: p.since,
                                epoch: p.epoch,
                            };
                            (p.topic, at)
                        })
                        .collect(),
                    presence,
                };
                let owned = id.cloned();
                let ack_topic = topic.clone();
                let ack = move |info: &Subscribed| {
                    let mut r = ReplyBuilder::ok(owned.as_ref()).string("topic", &ack_topic);
                    if let Some(e) = &info.epoch {
                        r = r.string("epoch", e);
                    }
                    Some(Bytes::from(
                        r.number("offset", info.last_offset)
                            .number("replayed", info.replayed as u64)
                            .finish(),
                    ))
                };
                match &self.native.remote {
                    Some(remote) => {
                        let owned = id.cloned();
                        let refused =
                            move |e: &HubError| Some(Bytes::from(hub_error(owned.as_ref(), e)));
                        remote.subscribe(
                            &self.session,
                            &self.identity,
                            &topic,
                            &topic,
                            opts,
                            Box::new(ack),
                            Box::new(refused),
                        )
                    }
                    None => hub
                        .subscribe(&self.session, &self.identity, &topic, &topic, opts, ack)
                        .map(|_| ()),
                }
                .map(|()| None)
            }
            Op::Unsubscribe { topic } => hub
                .unsubscribe(&self.session, &topic)
                .map(|()| Some(ReplyBuilder::ok(id).string("topic", &topic).finish())),
            Op::Publish {
                topic,
                kind,
                payload,
                ack,
            } => {
                let now = crate::clock::now_ms();
                if let Some(remote) = &self.native.remote {
                    let outbox = self.session.outbox().clone();
                    let owned = id.cloned();
                    let topic_name = topic.clone();
                    let done = move |r: Result<tidings_core::Published, HubError>| {
                        let text = match r {
                            Ok(p) => ack.then(|| {
                                ReplyBuilder::ok(owned.as_ref())
                                    .string("topic", &topic)
                                    .number("offset", p.offset)
                                    .string("epoch", &p.epoch)
                                    .finish()
                            }),
                            Err(e) => Some(hub_error(owned.as_ref(), &e)),
                        };
                        if let Some(text) = text {
                            outbox.push_reply(Bytes::from(text));
                        }
                    };
                    let (kind, identity) = (super::core_kind(kind), &self.identity);
                    let name = topic_name;
                    remote.publish(
                        identity,
                        &name,
                        kind,
                        payload,
                        Vec::new(),
                        now,
                        Box::new(done),
                    );
                    return;
                }
                hub.publish(
                    &self.identity,
                    &topic,
                    super::core_kind(kind),
                    payload,
                    Vec::new(),
                    now,
                )
                .map(|p| {
                    ack.then(|| {
                        ReplyBuilder::ok(id)
                            .string("topic", &topic)
                            .number("offset", p.offset)
                            .string("epoch", &p.epoch)
                            .finish()
                    })
                })
            }
            Op::History {
                topic,
                since,
                limit,
            } => {
                let limit = limit.unwrap_or(100).min(MAX_HISTORY_PAGE);
                let topic_for_local = topic.clone();
                let owned = id.cloned();
                let reply = move |page: tidings_core::HistoryPage| {
                    let mut r = ReplyBuilder::ok(owned.as_ref()).string("topic", &topic);
                    if let Some(e) = &page.epoch {
                        r = r.string("epoch", e);
                    }
                    r.number("earliest", page.earliest)
                        .number("offset", page.last_offset)
                        .messages("messages", page.messages.iter().map(|m| message_ref(m)))
                        .finish()
                };
                match &self.native.remote {
                    Some(remote) => {
                        let outbox = self.session.outbox().clone();
                        let owned = id.cloned();
                        let done = move |r: Result<tidings_core::HistoryPage, HubError>| {
                            let text = match r {
                                Ok(page) => reply(page),
                                Err(e) => hub_error(owned.as_ref(), &e),
                            };
                            outbox.push_reply(Bytes::from(text));
                        };
                        remote.history_then(
                            &self.identity,
                            &topic_for_local,
                            since,
                            limit,
                            Box::new(done),
                        );
                        Ok(None)
                    }
                    None => hub
                        .history(&self.identity, &topic_for_local, since, limit)
                        .map(|page| Some(reply(page))),
                }
            }
            Op::Presence { topic } => hub.presence(&self.identity, &topic).map(|members| {
                let names: Vec<String> = members.iter().map(|m| m.client.to_string()).collect();
                let list = members.iter().zip(&names).map(|(m, client)| json::Member {
                    client,
                    user: m.user.as_deref(),
                    info: m.info.as_deref(),
                });
                Some(
                    ReplyBuilder::ok(id)
                        .string("topic", &topic)
                        .members("members", list)
                        .finish(),
                )
            }),
            Op::Ping => Ok(Some(json::encode_pong(id))),
            Op::Auth { user, password } => {
                // The address is asked of the hub only here: a login is rare, and every
                // idle connection would pay for keeping it in the driver.
                let from = self.session.peer().map(|p| p.ip());
                match self.native.auth.password(&user, &password, from) {
                    Ok(who) => {
                        super::attach_identity(&self.session, &who);
                        self.identity = who;
                        Ok(Some(ReplyBuilder::ok(id).string("user", &user).finish()))
                    }
                    Err(e) => {
                        self.login_failures = self.login_failures.saturating_add(1);
                        Err(e)
                    }
                }
            }
            Op::AuthToken { token } => self
                .token_login(&token, false)
                .map(|who| token_ok(id, &who)),
            Op::Refresh { token } => self.token_login(&token, true).map(|who| token_ok(id, &who)),
        };
        match result {
            Ok(Some(text)) => self.reply(text),
            Ok(None) => {}
            Err(e) => self.reply(hub_error(id, &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    /// The size of the future `F` a function returns, without calling it.
    fn future_size<A, B, C, D, F: std::future::Future>(_: fn(A, B, C, D) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every idle `/ws` connection is one of these futures: its size is most of what an idle
    /// connection costs besides yawc's buffers (docs/performance.md). 720 bytes in a debug
    /// build with rustc 1.95; the bound leaves room for compiler changes, not for new fields
    /// kept across the loop (share them behind `Native` instead).
    #[test]
    fn an_idle_connection_task_stays_small() {
        let size = future_size(super::serve);
        eprintln!(
            "driver future {size} bytes, Driver {} bytes",
            std::mem::size_of::<super::Driver>()
        );
        assert!(size <= 800, "the /ws driver future grew to {size} bytes");
        assert!(std::mem::size_of::<super::Driver>() <= 56);
    }
}
