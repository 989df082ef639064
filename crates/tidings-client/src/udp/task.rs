//! The background task of a [`UdpClient`](super::UdpClient): owns the socket, answers the
//! server's challenges, retransmits unanswered requests, renews the lease and turns message
//! datagrams into events.
//!
//! ```text
//!   SUBSCRIBE (no cookie) ──> CHALLENGE(cookie) ──> SUBSCRIBE(cookie) ──> SUBSCRIBED(lease, cookie')
//!   every lease/3: RENEW(cookie') ──> RENEWED(n, cookie'') ── n < held ──> subscribe all again
//!   unanswered: resend after 300 ms, 600 ms, ... (5 tries), then fail (RENEW: try next period)
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tidings_proto::udp::{self, Cookie, Reply, Request, REPLY_ROOM};
use tidings_proto::PayloadKind;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::order::{Order, Verdict};
use crate::error::ClientError;
use crate::types::{Event, Message, Payload, Published, Subscribed};

type Answer<T> = oneshot::Sender<Result<T, ClientError>>;

/// A request from a handle.
pub(crate) enum Command {
    Subscribe {
        pattern: String,
        reply: Answer<Subscribed>,
    },
    Unsubscribe {
        pattern: String,
        reply: Answer<()>,
    },
    /// `reply: None`: fire and forget (id 0, no answer).
    Publish {
        topic: String,
        payload: Payload,
        reply: Option<Answer<Published>>,
    },
}

/// First retransmission delay; doubled after each.
const FIRST_RETRY: Duration = Duration::from_millis(300);
/// Tries of a subscribe, unsubscribe or renew before giving up.
const MAX_TRIES: u8 = 5;
/// How long an acknowledged publish waits. It is not resent: a publish whose answer was
/// lost may have happened, and sending it again could publish it twice.
const PUBLISH_WAIT: Duration = Duration::from_secs(2);
/// Requests waiting for an answer at once; more wait in the handles' channel.
const MAX_PENDING: usize = 256;

enum Waiting {
    /// `reply: None`: restoring a subscription the server forgot.
    Subscribe {
        pattern: String,
        reply: Option<Answer<Subscribed>>,
    },
    Unsubscribe {
        pattern: String,
        reply: Answer<()>,
    },
    Publish {
        reply: Answer<Published>,
    },
    Renew,
}

impl Waiting {
    fn fail(self, error: ClientError) {
        match self {
            Waiting::Subscribe {
                reply: Some(reply), ..
            } => {
                let _ = reply.send(Err(error));
            }
            Waiting::Unsubscribe { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Waiting::Publish { reply } => {
                let _ = reply.send(Err(error));
            }
            Waiting::Subscribe { reply: None, .. } | Waiting::Renew => {}
        }
    }
}

struct Pending {
    what: Waiting,
    datagram: Vec<u8>,
    tries: u8,
    due: Instant,
}

/// What the task shares with the handles.
pub(crate) struct Handles {
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) events: mpsc::Sender<Event>,
    pub(crate) closing: CancellationToken,
    pub(crate) finished: CancellationToken,
    /// Events dropped because the event buffer was full.
    pub(crate) dropped: Arc<AtomicU64>,
}

pub(crate) struct Task {
    socket: UdpSocket,
    server: SocketAddr,
    max_datagram: usize,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
    closing: CancellationToken,
    finished: CancellationToken,
    dropped: Arc<AtomicU64>,
    /// Requests waiting for an answer, by id; at most `MAX_PENDING`.
    pending: HashMap<u32, Pending>,
    next_id: u32,
    /// The latest cookie the server gave this address.
    cookie: Option<Cookie>,
    /// Patterns the server confirmed, to renew and to restore. Bounded by the server's
    /// per-address limit: only confirmed ones are kept.
    subs: Vec<String>,
    lease: Duration,
    next_renew: Option<Instant>,
    /// Restoring subscriptions after the server forgot them; `Reconnected` when all are back.
    restoring: usize,
    order: Order,
}

impl Task {
    pub(crate) fn new(
        socket: UdpSocket,
        server: SocketAddr,
        max_datagram: usize,
        h: Handles,
    ) -> Self {
        Task {
            socket,
            server,
            max_datagram,
            commands: h.commands,
            events: h.events,
            closing: h.closing,
            finished: h.finished,
            dropped: h.dropped,
            pending: HashMap::new(),
            next_id: 0,
            cookie: None,
            subs: Vec::new(),
            lease: Duration::from_secs(30),
            next_renew: None,
            restoring: 0,
            order: Order::default(),
        }
    }

    pub(crate) async fn run(mut self) {
        let _finished = self.finished.clone().drop_guard();
        let mut buf = vec![0u8; 65536];
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                biased;
                _ = self.closing.cancelled() => break,
                command = self.commands.recv(), if self.pending.len() < MAX_PENDING => match command {
                    Some(command) => self.command(command).await,
                    None => break,
                },
                received = self.socket.recv(&mut buf) => match received {
                    Ok(n) => self.datagram(&buf[..n]).await,
                    // ICMP "port unreachable" of an earlier send (no server yet): the
                    // retransmissions and renewals go on.
                    Err(e) => tracing::debug!("udp client: {e}"),
                },
                _ = tokio::time::sleep_until(deadline) => self.timers().await,
            }
        }
        // Goodbye: end every subscription now rather than when the lease runs out.
        if let (Some(cookie), false) = (self.cookie, self.subs.is_empty()) {
            let id = self.id();
            let request = Request::Unsubscribe {
                id,
                cookie: &cookie,
                pattern: "",
            };
            let mut out = Vec::new();
            udp::encode_request(&request, 0, &mut out);
            let _ = self.socket.send(&out).await;
        }
        for (_, p) in self.pending.drain() {
            p.what.fail(ClientError::Closed);
        }
    }

    fn id(&mut self) -> u32 {
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.next_id
    }

    fn next_deadline(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        self.pending
            .values()
            .map(|p| p.due)
            .chain(self.next_renew)
            .min()
            .unwrap_or(far)
    }

    async fn send(&self, datagram: &[u8]) {
        // An error (e.g. ICMP unreachable of an earlier send) loses the datagram, as the
        // network could: the retry timers cover requests.
        if let Err(e) = self.socket.send(datagram).await {
            tracing::debug!("udp client: send: {e}");
        }
    }

    /// Encodes the request that `what` waits for, with the current cookie.
    fn encode(&self, id: u32, what: &Waiting) -> Vec<u8> {
        let mut out = Vec::new();
        let cookie = self.cookie.as_ref();
        match (what, cookie) {
            (Waiting::Subscribe { pattern, .. }, _) => {
                let request = Request::Subscribe {
                    id,
                    cookie,
                    pattern,
                };
                // Without a cookie the answer is a CHALLENGE, which must fit in the request.
                let pad = if cookie.is_none() { REPLY_ROOM } else { 0 };
                udp::encode_request(&request, pad, &mut out);
            }
            (Waiting::Unsubscribe { pattern, .. }, Some(cookie)) => {
                let request = Request::Unsubscribe {
                    id,
                    cookie,
                    pattern,
                };
                udp::encode_request(&request, REPLY_ROOM, &mut out);
            }
            (Waiting::Renew, Some(cookie)) => {
                udp::encode_request(&Request::Renew { id, cookie }, REPLY_ROOM, &mut out);
            }
            // No cookie yet: subscribing gets one; these are answered without asking.
            (Waiting::Unsubscribe { .. } | Waiting::Renew | Waiting::Publish { .. }, _) => {}
        }
        out
    }

    async fn start(&mut self, what: Waiting, wait: Duration) {
        let id = self.id();
        let datagram = self.encode(id, &what);
        self.send(&datagram).await;
        self.pending.insert(
            id,
            Pending {
                what,
                datagram,
                tries: 1,
                due: Instant::now() + wait,
            },
        );
    }

    async fn command(&mut self, command: Command) {
        match command {
            Command::Subscribe { pattern, reply } => {
                self.start(
                    Waiting::Subscribe {
                        pattern,
                        reply: Some(reply),
                    },
                    FIRST_RETRY,
                )
                .await
            }
            Command::Unsubscribe { pattern, reply } => {
                if self.cookie.is_none() || !self.subs.contains(&pattern) {
                    let _ = reply.send(Err(ClientError::Server {
                        code: "not_found".into(),
                        message: format!("not subscribed to {pattern}"),
                    }));
                    return;
                }
                self.start(Waiting::Unsubscribe { pattern, reply }, FIRST_RETRY)
                    .await
            }
            Command::Publish {
                topic,
                payload,
                reply,
            } => {
                let kind = match &payload {
                    Payload::Text(_) => PayloadKind::Text,
                    Payload::Json(_) => PayloadKind::Json,
                    Payload::Binary(_) => PayloadKind::Binary,
                };
                let id = if reply.is_some() { self.id() } else { 0 };
                let request = Request::Publish {
                    id,
                    kind,
                    topic: &topic,
                    payload: payload.as_bytes(),
                };
                let mut out = Vec::new();
                // An acknowledged publish is padded so the answer fits in it even when this
                // address holds no subscription (the server's anti-amplification rule).
                let pad = if reply.is_some() { REPLY_ROOM } else { 0 };
                udp::encode_request(&request, pad, &mut out);
                if out.len() > self.max_datagram {
                    let error = ClientError::InvalidInput(format!(
                        "a {}-byte datagram is larger than the UDP limit of {} bytes",
                        out.len(),
                        self.max_datagram
                    ));
                    if let Some(reply) = reply {
                        let _ = reply.send(Err(error));
                    }
                    return;
                }
                self.send(&out).await;
                if let Some(reply) = reply {
                    self.pending.insert(
                        id,
                        Pending {
                            what: Waiting::Publish { reply },
                            datagram: out,
                            tries: MAX_TRIES,
                            due: Instant::now() + PUBLISH_WAIT,
                        },
                    );
                }
            }
        }
    }

    /// Retransmits what is due, gives up on what tried too often, renews the lease.
    async fn timers(&mut self) {
        let now = Instant::now();
        let due: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| p.due <= now)
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            let Some(mut p) = self.pending.remove(&id) else {
                continue;
            };
            if p.tries >= MAX_TRIES {
                if let Waiting::Subscribe { reply: None, .. } = &p.what {
                    // Restoring: try again at the next renewal.
                    self.restoring = self.restoring.saturating_sub(1);
                }
                p.what.fail(ClientError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer from the UDP server at {}", self.server),
                )));
                continue;
            }
            self.send(&p.datagram).await;
            // Backoff, but never slower than the renewal period, so a lost lease is
            // noticed soon after the network lets datagrams through again.
            p.due = now + (FIRST_RETRY * 2u32.pow(u32::from(p.tries))).min(self.lease / 3);
            p.tries += 1;
            self.pending.insert(id, p);
        }
        if self.next_renew.is_some_and(|at| at <= now) {
            self.next_renew = Some(now + self.lease / 3);
            let renewing = self
                .pending
                .values()
                .any(|p| matches!(p.what, Waiting::Renew));
            if !renewing && !self.subs.is_empty() && self.cookie.is_some() {
                self.start(Waiting::Renew, FIRST_RETRY).await;
            }
        }
    }

    async fn datagram(&mut self, datagram: &[u8]) {
        let limits = udp::Limits {
            max_datagram: self.max_datagram.max(udp::DEFAULT_MAX_DATAGRAM),
        };
        let reply = match udp::decode_reply(datagram, limits) {
            Ok(reply) => reply,
            Err(e) => {
                tracing::debug!("udp client: bad datagram from the server: {e}");
                return;
            }
        };
        match reply {
            Reply::Message {
                kind,
                offset,
                epoch,
                topic,
                payload,
            } => self.message(kind, offset, epoch, topic, payload),
            Reply::Challenge { id, cookie } => {
                self.cookie = Some(*cookie);
                // Ask again, now with the cookie.
                if let Some(mut p) = self.pending.remove(&id) {
                    p.datagram = self.encode(id, &p.what);
                    self.send(&p.datagram).await;
                    p.due = Instant::now() + FIRST_RETRY;
                    self.pending.insert(id, p);
                }
            }
            Reply::Subscribed {
                id,
                lease_ms,
                last_offset,
                epoch,
                cookie,
            } => {
                self.cookie = Some(*cookie);
                self.lease = Duration::from_millis(u64::from(lease_ms.max(300)));
                if self.next_renew.is_none() {
                    self.next_renew = Some(Instant::now() + self.lease / 3);
                }
                let Some(p) = self.pending.remove(&id) else {
                    return;
                };
                let Waiting::Subscribe { pattern, reply } = p.what else {
                    return;
                };
                if !epoch.is_empty() {
                    self.order.start(&pattern, epoch, last_offset);
                }
                if !self.subs.contains(&pattern) {
                    self.subs.push(pattern);
                }
                match reply {
                    Some(reply) => {
                        let _ = reply.send(Ok(Subscribed {
                            epoch: (!epoch.is_empty()).then(|| epoch.to_owned()),
                            last_offset,
                            replayed: 0,
                        }));
                    }
                    None => {
                        self.restoring = self.restoring.saturating_sub(1);
                        if self.restoring == 0 {
                            self.emit(Event::Reconnected);
                        }
                    }
                }
            }
            Reply::Renewed {
                id,
                lease_ms,
                subscriptions,
                cookie,
            } => {
                self.cookie = Some(*cookie);
                self.lease = Duration::from_millis(u64::from(lease_ms.max(300)));
                if self.pending.remove(&id).is_none() {
                    return;
                }
                if usize::from(subscriptions) < self.subs.len() && self.restoring == 0 {
                    self.emit(Event::Disconnected {
                        reason: "the server forgot this address's subscriptions (restart or \
                                 lease expiry); subscribing again"
                            .into(),
                    });
                    let patterns = self.subs.clone();
                    self.restoring = patterns.len();
                    for pattern in patterns {
                        let what = Waiting::Subscribe {
                            pattern,
                            reply: None,
                        };
                        self.start(what, FIRST_RETRY).await;
                    }
                }
            }
            Reply::Unsubscribed { id, .. } => {
                if let Some(Pending {
                    what: Waiting::Unsubscribe { pattern, reply },
                    ..
                }) = self.pending.remove(&id)
                {
                    self.subs.retain(|p| *p != pattern);
                    if self.subs.is_empty() {
                        self.next_renew = None;
                    }
                    let _ = reply.send(Ok(()));
                }
            }
            Reply::Published { id, offset, epoch } => {
                if let Some(Pending {
                    what: Waiting::Publish { reply },
                    ..
                }) = self.pending.remove(&id)
                {
                    let _ = reply.send(Ok(Published {
                        offset,
                        epoch: Some(epoch.to_owned()),
                    }));
                }
            }
            Reply::Error { id, code, message } => {
                if let Some(p) = self.pending.remove(&id) {
                    if let Waiting::Subscribe { reply: None, .. } = &p.what {
                        self.restoring = self.restoring.saturating_sub(1);
                    }
                    p.what.fail(ClientError::Server {
                        code: code.as_str().into(),
                        message: message.into(),
                    });
                }
            }
        }
    }

    fn message(
        &mut self,
        kind: PayloadKind,
        offset: u64,
        epoch: &str,
        topic: &str,
        payload: &[u8],
    ) {
        let gap = match self.order.observe(topic, epoch, offset) {
            Verdict::Duplicate => return,
            Verdict::Deliver { gap } => gap,
        };
        if let Some((since, earliest)) = gap {
            self.emit(Event::Gap {
                topic: topic.to_owned(),
                since,
                earliest,
                reason: "datagrams lost or reordered (late ones are still delivered)".into(),
            });
        }
        let payload = match kind {
            PayloadKind::Text => Payload::Text(String::from_utf8_lossy(payload).into_owned()),
            PayloadKind::Json => Payload::Json(String::from_utf8_lossy(payload).into_owned()),
            PayloadKind::Binary => Payload::Binary(Bytes::copy_from_slice(payload)),
        };
        self.emit(Event::Message(Message {
            topic: topic.to_owned(),
            offset,
            epoch: Some(epoch.to_owned()),
            payload,
        }));
    }

    /// Never waits: a full event buffer drops the event (UDP may lose it anyway), so that
    /// answers to requests keep flowing.
    fn emit(&self, event: Event) {
        if self.events.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}
