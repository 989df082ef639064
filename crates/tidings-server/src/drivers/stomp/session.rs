//! One STOMP connection's protocol state: frames in, hub operations, replies queued in the
//! session's outbox (so a RECEIPT is written only after what it confirms took effect, and
//! in order with the messages around it).
//!
//! ```text
//! AwaitingConnect ──CONNECT/STOMP ok──> Connected ──DISCONNECT──> (RECEIPT) close
//!        │                                  │
//!        └──any other frame, bad input──────┴──bad input, refused op──> ERROR, close
//! ```

use super::deliver::{self, SubInfo};
use super::destination::Dest;
use crate::config::StompConfig;
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::sync::Arc;
use tidings_core::{
    ConsumeOptions, HubError, Identity, PayloadKind, Resume, Session, Settle, Staged,
    SubscribeOptions, Target, Transaction,
};
use tidings_proto::stomp::{
    self, AckMode, ClientFrame, ClientOp, Command, Decoder, FrameWriter, HeartBeat, Limits, Version,
};

/// What the connection loop does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    Continue,
    /// Write what is queued (the last item is a RECEIPT or an ERROR), then close.
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitingConnect,
    Connected,
}

/// A refusal: the ERROR frame's `message`, and its body.
struct Refused {
    message: String,
    detail: String,
}

impl Refused {
    fn new(message: impl std::fmt::Display) -> Refused {
        Refused {
            message: message.to_string(),
            detail: String::new(),
        }
    }
}

impl From<HubError> for Refused {
    fn from(e: HubError) -> Refused {
        Refused::new(e)
    }
}

/// What answers a subscribe that Redis refuses after its frame was handled.
type LaterRefusal = Box<dyn FnOnce(&HubError) -> Option<Bytes> + Send>;

/// The server's name in CONNECTED.
const SERVER: &str = concat!("tidings/", env!("CARGO_PKG_VERSION"));

pub(super) struct StompSession {
    pub(super) session: Session,
    hub: Arc<tidings_core::Hub>,
    auth: Arc<dyn crate::auth::Authenticator>,
    /// The client's address, for the login guard (unknown over SockJS).
    peer: Option<std::net::IpAddr>,
    cfg: StompConfig,
    identity: Identity,
    phase: Phase,
    pub(super) version: Version,
    decoder: Decoder,
    /// By subscription id (also the hub key).
    pub(super) subs: HashMap<Arc<str>, SubInfo>,
    /// Open transactions by id, at most `hub.transactions.max_open`.
    txs: HashMap<String, Transaction>,
    /// Agreed heart-beat intervals in ms: (we send every, we expect every); 0 = never.
    pub(super) heart_beat: (u32, u32),
    /// The Redis engine: topic publishes and subscribes go through it (`None`: in memory).
    pub(super) remote: crate::engine::Remote,
    /// SENDs waiting for Redis, so a DISCONNECT's RECEIPT comes after theirs (STOMP: a
    /// DISCONNECT receipt confirms every frame before it).
    in_flight: Arc<std::sync::Mutex<InFlight>>,
    /// A DISCONNECT is waiting for `in_flight`: what the client sends after it is ignored.
    disconnecting: bool,
}

/// Publishes a STOMP connection has waiting for Redis, and the DISCONNECT waiting for them.
#[derive(Default)]
struct InFlight {
    count: usize,
    /// `Some` once a DISCONNECT came while publishes were waiting: its RECEIPT, if it had one.
    disconnect: Option<Option<Bytes>>,
}

impl StompSession {
    pub(super) fn new(
        session: Session,
        hub: Arc<tidings_core::Hub>,
        auth: Arc<dyn crate::auth::Authenticator>,
        cfg: StompConfig,
        peer: Option<std::net::IpAddr>,
    ) -> StompSession {
        let limits = Limits {
            max_frame_size: cfg.max_frame_size,
            max_headers: cfg.max_headers,
            max_header_length: cfg.max_header_length,
        };
        StompSession {
            session,
            hub,
            cfg,
            identity: auth.anonymous(),
            auth,
            peer,
            phase: Phase::AwaitingConnect,
            version: Version::V1_2,
            decoder: Decoder::new(limits, Version::V1_2),
            subs: HashMap::new(),
            txs: HashMap::new(),
            heart_beat: (0, 0),
            remote: None,
            in_flight: Arc::default(),
            disconnecting: false,
        }
    }

    /// When the CONNECT's token expires (`None`: never); STOMP has no refresh, so the
    /// connection then ends with an ERROR and the client reconnects with a fresh token.
    pub(super) fn expiry(&self) -> Option<tokio::time::Instant> {
        crate::drivers::expiry_instant(&self.identity)
    }

    pub(super) fn expired(&self) -> bool {
        crate::drivers::is_expired(&self.identity)
    }

    pub(super) fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    fn reply(&self, f: impl FnOnce(&mut BytesMut)) {
        let mut b = BytesMut::new();
        f(&mut b);
        self.session.outbox().push_reply(b.freeze());
    }

    fn receipt_bytes(&self, receipt: Option<&str>) -> Option<Bytes> {
        receipt.map(|id| {
            let mut b = BytesMut::new();
            stomp::encode_receipt(id, self.version, &mut b);
            b.freeze()
        })
    }

    /// Queues an ERROR frame; the caller closes after writing it.
    pub(super) fn error(&self, message: &str, receipt: Option<&str>, detail: &str) {
        tracing::debug!(session = %self.session.id(), "stomp ERROR: {message}");
        self.reply(|b| stomp::encode_error(message, receipt, detail, self.version, b));
    }

    /// Decodes and handles every whole frame in `buf`.
    pub(super) fn handle_input(&mut self, buf: &mut BytesMut) -> Flow {
        loop {
            if self.disconnecting {
                buf.clear();
                return Flow::Continue;
            }
            match self.decoder.decode(buf) {
                Ok(None) => return Flow::Continue,
                Ok(Some(frame)) => {
                    let command = frame.command;
                    let receipt = frame.header("receipt").map(str::to_owned);
                    let result = match ClientFrame::from_frame(frame, self.version) {
                        Ok(f) => self.handle(f),
                        Err(e) => Err(Refused::new(e)),
                    };
                    match result {
                        Ok(Flow::Continue) => {}
                        Ok(Flow::Close) => return Flow::Close,
                        Err(r) => {
                            let detail = match r.detail.is_empty() {
                                true => format!("in a {command} frame"),
                                false => r.detail,
                            };
                            self.error(&r.message, receipt.as_deref(), &detail);
                            return Flow::Close;
                        }
                    }
                }
                Err(e) => {
                    self.error(
                        &e.to_string(),
                        e.receipt.as_deref(),
                        "the connection cannot be read any further",
                    );
                    return Flow::Close;
                }
            }
        }
    }

    fn handle(&mut self, frame: ClientFrame) -> Result<Flow, Refused> {
        let receipt = frame.receipt;
        if self.phase == Phase::AwaitingConnect {
            return match frame.op {
                ClientOp::Connect {
                    accept_version,
                    login,
                    passcode,
                    bearer,
                    heart_beat,
                    ..
                } => {
                    // A token: the Bearer header, or a passcode with no login.
                    let (login, passcode, token) = match (bearer, login) {
                        (Some(token), _) => (None, None, Some(token)),
                        (None, None) => (None, None, passcode),
                        (None, login) => (login, passcode, None),
                    };
                    let creds = Credentials {
                        login,
                        passcode,
                        token,
                    };
                    self.connect(accept_version.as_deref(), creds, heart_beat)
                }
                _ => Err(Refused::new("expected CONNECT or STOMP first")),
            };
        }
        let hub = self.hub.clone();
        let now = crate::clock::now_ms();
        match frame.op {
            ClientOp::Connect { .. } => return Err(Refused::new("already connected")),
            ClientOp::Send {
                destination,
                transaction,
                headers,
                body,
            } => {
                let dest = Dest::parse(&destination).map_err(Refused::new)?;
                let kind = kind_of(&headers, &body);
                let headers: Vec<(Arc<str>, Arc<str>)> = headers
                    .into_iter()
                    .map(|(n, v)| (Arc::from(n), Arc::from(v)))
                    .collect();
                match transaction {
                    Some(tx) => {
                        let (target, name) = match dest {
                            Dest::Topic(n) => (Target::Topic, n),
                            Dest::Queue(n) => (Target::Queue, n),
                        };
                        // Refuse what the commit would refuse now, at the offending SEND.
                        tidings_core::validate_topic(&name).map_err(HubError::from)?;
                        hub.access()
                            .can_publish(&self.identity, &name)
                            .map_err(HubError::from)?;
                        self.tx(&tx)?.stage(Staged::Publish {
                            target,
                            name,
                            kind,
                            payload: body,
                            headers,
                        })?;
                    }
                    None => match dest {
                        Dest::Topic(name) => match &self.remote {
                            Some(remote) => {
                                self.publish_remote(remote, &name, kind, body, headers, receipt);
                                return Ok(Flow::Continue);
                            }
                            None => {
                                hub.publish(&self.identity, &name, kind, body, headers, now)?;
                            }
                        },
                        Dest::Queue(name) => match &self.remote {
                            Some(remote) => {
                                self.publish_queue_remote(
                                    remote, &name, kind, body, headers, receipt,
                                );
                                return Ok(Flow::Continue);
                            }
                            None => {
                                hub.publish_queue(&self.identity, &name, kind, body, headers, now)?;
                            }
                        },
                    },
                }
            }
            ClientOp::Subscribe {
                destination,
                id,
                ack,
                prefetch,
                since,
                epoch,
            } => {
                let key: Arc<str> = Arc::from(id.as_str());
                if self.subs.contains_key(&key) {
                    return Err(Refused::new(format!(
                        "subscription id {id:?} is already in use on this connection"
                    )));
                }
                let dest = Dest::parse(&destination).map_err(Refused::new)?;
                let receipt = self.receipt_bytes(receipt.as_deref());
                let queue = matches!(dest, Dest::Queue(_));
                // Known before the hub queues anything for it (the encoder looks it up).
                self.subs
                    .insert(key.clone(), SubInfo::new(&id, ack, queue, self.version));
                let result = match dest {
                    Dest::Topic(pattern) => {
                        let opts = SubscribeOptions {
                            resume: since.map(|since| Resume { since, epoch }),
                            ..SubscribeOptions::default()
                        };
                        match &self.remote {
                            Some(remote) => remote.subscribe(
                                &self.session,
                                &self.identity,
                                &id,
                                &pattern,
                                opts,
                                Box::new(move |_| receipt),
                                self.refused_later(format!(
                                    "in a SUBSCRIBE frame to {destination}"
                                )),
                            ),
                            None => hub
                                .subscribe(
                                    &self.session,
                                    &self.identity,
                                    &id,
                                    &pattern,
                                    opts,
                                    |_| receipt,
                                )
                                .map(|_| ()),
                        }
                    }
                    Dest::Queue(name) => {
                        let opts = ConsumeOptions {
                            prefetch: prefetch.map(|p| p as usize),
                        };
                        hub.consume(&self.session, &self.identity, &id, &name, opts, |_| receipt)
                    }
                };
                if let Err(e) = result {
                    self.subs.remove(&key);
                    return Err(e.into());
                }
                return Ok(Flow::Continue);
            }
            ClientOp::Unsubscribe { id } => {
                // An id that is not subscribed is a client bug worth saying (RabbitMQ and
                // ActiveMQ answer it with an ERROR too), not a silent RECEIPT.
                if self.subs.remove(id.as_str()).is_none() {
                    return Err(Refused::new(format!(
                        "no subscription with id {id:?} on this connection"
                    )));
                }
                let _ = hub.unsubscribe(&self.session, &id);
            }
            ClientOp::Ack {
                id, transaction, ..
            } => self.settle(&id, transaction.as_deref(), Settle::Ack)?,
            ClientOp::Nack {
                id, transaction, ..
            } => self.settle(&id, transaction.as_deref(), Settle::Requeue)?,
            ClientOp::Begin { transaction } => {
                let max = hub.config().transactions.max_open;
                if self.txs.contains_key(&transaction) {
                    return Err(Refused::new(format!(
                        "transaction {transaction:?} is already open"
                    )));
                }
                if self.txs.len() >= max {
                    return Err(Refused::new(format!(
                        "too many open transactions (at most {max})"
                    )));
                }
                self.txs
                    .insert(transaction, Transaction::new(hub.config().transactions));
            }
            ClientOp::Commit { transaction } => {
                let tx = self
                    .txs
                    .remove(&transaction)
                    .ok_or_else(|| unknown_tx(&transaction))?;
                if let Some(remote) = self.remote.clone() {
                    return self.commit_remote(&remote, tx, receipt, now);
                }
                hub.commit(&self.session, &self.identity, tx, now)?;
            }
            ClientOp::Abort { transaction } => {
                self.txs
                    .remove(&transaction)
                    .ok_or_else(|| unknown_tx(&transaction))?;
            }
            ClientOp::Disconnect => {
                let bytes = self.receipt_bytes(receipt.as_deref());
                let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
                if in_flight.count > 0 {
                    // The last SEND's answer from Redis queues the RECEIPT and closes.
                    in_flight.disconnect = Some(bytes);
                    self.disconnecting = true;
                    return Ok(Flow::Continue);
                }
                drop(in_flight);
                if let Some(b) = bytes {
                    self.session.outbox().push_reply(b);
                }
                return Ok(Flow::Close);
            }
            _ => return Err(Refused::new("unsupported frame")),
        }
        if let Some(b) = self.receipt_bytes(receipt.as_deref()) {
            self.session.outbox().push_reply(b);
        }
        Ok(Flow::Continue)
    }

    fn connect(
        &mut self,
        accept_version: Option<&str>,
        creds: Credentials,
        client_hb: HeartBeat,
    ) -> Result<Flow, Refused> {
        let Credentials {
            login,
            passcode,
            token,
        } = creds;
        let Some(version) = Version::negotiate(accept_version) else {
            // STOMP 1.2, Protocol Negotiation: an ERROR whose `version` header lists the
            // versions we speak, then close.
            let supported = Version::ALL.map(Version::as_str).join(",");
            let detail = format!(
                "the client accepts {}; this server speaks {supported}",
                accept_version.unwrap_or("")
            );
            self.reply(|b| {
                FrameWriter::new(b, Command::Error, Version::V1_0)
                    .header("version", &supported)
                    .header("message", "unsupported protocol version")
                    .header("content-type", "text/plain")
                    .finish_with_length(detail.as_bytes())
            });
            return Ok(Flow::Close);
        };
        self.version = version;
        self.decoder.set_version(version);
        self.identity = match (login, token) {
            (_, Some(token)) => self.auth.token(&token, self.peer).map_err(|e| Refused {
                message: "access refused: token refused".into(),
                detail: e.to_string(),
            })?,
            (Some(user), None) => self
                .auth
                .password(&user, passcode.as_deref().unwrap_or(""), self.peer)
                .map_err(|_| Refused {
                    message: "access refused: unknown login or wrong passcode".into(),
                    detail: format!("login {user:?}"),
                })?,
            (None, None) => self.auth.anonymous(),
        };
        crate::drivers::attach_identity(&self.session, &self.identity);
        let cfg = self.cfg;
        let ours = HeartBeat {
            send: cfg.heart_beat_send_ms,
            receive: cfg.heart_beat_receive_ms,
        };
        self.heart_beat = HeartBeat::negotiate(client_hb, ours);
        let agreed = HeartBeat {
            send: self.heart_beat.0,
            receive: self.heart_beat.1,
        };
        self.phase = Phase::Connected;
        let session = self.session.id().to_string();
        self.reply(|b| stomp::encode_connected(version, agreed, &session, SERVER, b));
        Ok(Flow::Continue)
    }

    /// A SEND to a topic through Redis: the RECEIPT is queued once Redis numbered the
    /// message; a refusal (Redis unavailable, rights) is an ERROR, then the connection closes,
    /// as a refused frame does.
    fn publish_remote(
        &self,
        remote: &crate::engine::RedisEngine,
        topic: &str,
        kind: PayloadKind,
        body: Bytes,
        headers: Vec<(Arc<str>, Arc<str>)>,
        receipt: Option<String>,
    ) {
        let answer = self.answer_when_stored(receipt, "in a SEND frame");
        let done = move |r: Result<tidings_core::Published, HubError>| answer(r.map(drop));
        let now = crate::clock::now_ms();
        remote.publish(
            &self.identity,
            topic,
            kind,
            body,
            headers,
            now,
            Box::new(done),
        );
    }

    /// A SEND to a queue through Redis: stored there for exactly one consumer of the cluster
    /// (or refused: the queue is full), RECEIPT once Redis answered.
    fn publish_queue_remote(
        &self,
        remote: &crate::engine::RedisEngine,
        queue: &str,
        kind: PayloadKind,
        body: Bytes,
        headers: Vec<(Arc<str>, Arc<str>)>,
        receipt: Option<String>,
    ) {
        let answer = self.answer_when_stored(receipt, "in a SEND frame");
        let done = move |r: Result<u64, HubError>| answer(r.map(drop));
        let now = crate::clock::now_ms();
        remote.queues().publish(
            &self.identity,
            queue,
            kind,
            body,
            headers,
            now,
            Box::new(done),
        );
    }

    /// The answer to a frame Redis must store first: its RECEIPT, or an ERROR then close; and
    /// a DISCONNECT waiting for it goes out after it.
    fn answer_when_stored(
        &self,
        receipt: Option<String>,
        context: &'static str,
    ) -> impl FnOnce(Result<(), HubError>) + Send + 'static {
        let outbox = self.session.outbox().clone();
        let version = self.version;
        let in_flight = self.in_flight.clone();
        in_flight.lock().unwrap_or_else(|e| e.into_inner()).count += 1;
        move |r: Result<(), HubError>| {
            let mut state = in_flight.lock().unwrap_or_else(|e| e.into_inner());
            state.count -= 1;
            let mut b = BytesMut::new();
            match r {
                Ok(()) => {
                    if let Some(id) = receipt {
                        stomp::encode_receipt(&id, version, &mut b);
                        outbox.push_reply(b.freeze());
                    }
                }
                Err(e) => {
                    tracing::debug!("stomp ERROR: {e}");
                    stomp::encode_error(
                        &e.to_string(),
                        receipt.as_deref(),
                        context,
                        version,
                        &mut b,
                    );
                    outbox.push_reply(b.freeze());
                    outbox.close(tidings_core::CloseReason::Finished);
                    return;
                }
            }
            if state.count == 0 {
                if let Some(disconnect) = state.disconnect.take() {
                    if let Some(b) = disconnect {
                        outbox.push_reply(b);
                    }
                    outbox.close(tidings_core::CloseReason::Finished);
                }
            }
        }
    }

    /// A COMMIT with the Redis engine. Its SENDs to topics, or its SENDs to queues, are
    /// published all or none (one `MULTI`/`EXEC`, or one script, in Redis), RECEIPT once
    /// Redis answered. ACK/NACKs settle on this node. A transaction mixing those three kinds
    /// is refused plainly: one side could commit without the other.
    fn commit_remote(
        &mut self,
        remote: &crate::engine::RedisEngine,
        tx: Transaction,
        receipt: Option<String>,
        now: u64,
    ) -> Result<Flow, Refused> {
        let limits = self.hub.config().transactions;
        let ops = tx.into_ops();
        let count = |target: Target| {
            ops.iter()
                .filter(|op| matches!(op, Staged::Publish { target: t, .. } if *t == target))
                .count()
        };
        let (topics, queues) = (count(Target::Topic), count(Target::Queue));
        if topics == 0 && queues == 0 {
            let mut tx = Transaction::new(limits);
            for op in ops {
                tx.stage(op)?;
            }
            self.hub.commit(&self.session, &self.identity, tx, now)?;
            if let Some(b) = self.receipt_bytes(receipt.as_deref()) {
                self.session.outbox().push_reply(b);
            }
            return Ok(Flow::Continue);
        }
        if topics != ops.len() && queues != ops.len() {
            return Err(Refused {
                message: "with the redis engine a transaction cannot mix SENDs to /topic, SENDs to /queue and ACK/NACK".into(),
                detail: "each kind is committed on its own (topics in one MULTI/EXEC, queues in one script, acks on this node); commit them in separate transactions".into(),
            });
        }
        let messages = ops
            .into_iter()
            .filter_map(|op| match op {
                Staged::Publish {
                    name,
                    kind,
                    payload,
                    headers,
                    ..
                } => Some((name, kind, payload, headers)),
                _ => None,
            })
            .collect();
        let answer = self.answer_when_stored(receipt, "in a COMMIT frame");
        match topics {
            0 => remote.queues().publish_all(
                &self.identity,
                messages,
                now,
                Box::new(move |r| answer(r.map(drop))),
            ),
            _ => remote.publish_all(
                &self.identity,
                messages,
                now,
                Box::new(move |r| answer(r.map(drop))),
            ),
        }
        Ok(Flow::Continue)
    }

    /// What a subscribe Redis refuses after the frame was handled answers: an ERROR, then
    /// the connection closes.
    fn refused_later(&self, detail: String) -> LaterRefusal {
        let outbox = self.session.outbox().clone();
        let version = self.version;
        Box::new(move |e| {
            let mut b = BytesMut::new();
            stomp::encode_error(&e.to_string(), None, &detail, version, &mut b);
            outbox.push_reply(b.freeze());
            outbox.close(tidings_core::CloseReason::Finished);
            None
        })
    }

    fn tx(&mut self, id: &str) -> Result<&mut Transaction, Refused> {
        self.txs.get_mut(id).ok_or_else(|| unknown_tx(id))
    }

    /// ACK/NACK of a queue message, now or staged in a transaction. Ids of topic messages,
    /// of auto-acknowledged subscriptions and of messages already settled are accepted and
    /// change nothing.
    fn settle(&mut self, id: &str, transaction: Option<&str>, how: Settle) -> Result<(), Refused> {
        let Some((seq, sub)) = deliver::parse_queue_ack(id) else {
            return match transaction {
                Some(tx) => self.tx(tx).map(|_| ()),
                None => Ok(()),
            };
        };
        let Some(info) = self
            .subs
            .get(sub)
            .filter(|s| s.queue && s.ack != AckMode::Auto)
        else {
            return Ok(());
        };
        let key: Arc<str> = Arc::from(sub);
        let cumulative = info.ack == AckMode::Client;
        match transaction {
            Some(tx) => {
                let op = match how {
                    Settle::Ack => Staged::Ack {
                        key,
                        seq,
                        cumulative,
                    },
                    Settle::Requeue => Staged::Nack {
                        key,
                        seq,
                        cumulative,
                    },
                };
                self.tx(tx)?.stage(op)?;
            }
            None => {
                self.hub.settle(&self.session, &key, seq, cumulative, how);
            }
        }
        Ok(())
    }
}

fn unknown_tx(id: &str) -> Refused {
    Refused::new(format!("unknown transaction {id:?} (BEGIN it first)"))
}

/// The payload kind of a SEND: JSON when it says so and is, else text when UTF-8, else binary.
fn kind_of(headers: &[(String, String)], body: &Bytes) -> PayloadKind {
    let json = headers
        .iter()
        .any(|(n, v)| n == "content-type" && v.starts_with("application/json"));
    if json && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
        return PayloadKind::Json;
    }
    match std::str::from_utf8(body) {
        Ok(_) => PayloadKind::Text,
        Err(_) => PayloadKind::Binary,
    }
}

/// What a CONNECT presented: a login and passcode, or a token.
struct Credentials {
    login: Option<String>,
    passcode: Option<String>,
    token: Option<String>,
}
