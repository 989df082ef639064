//! Socket.IO joined to the hub: each namespace connection is a hub session.
//!
//! Client events (each may take an acknowledgement callback, which gets one object:
//! `{ok: true, ...}` or `{ok: false, error, message}`):
//! `subscribe(topic, {since?, epoch?, presence?}?)`, `unsubscribe(topic)`,
//! `publish(topic, data)` (ack has the offset), `history(topic, {since?, limit?}?)`,
//! `presence(topic)`. Server events: `message {topic, offset, epoch, data}` (plus the
//! recovery offset as last argument), `presence {topic, event, client, user}`, and
//! `error {event, error, message}` for a failed request that had no callback.
//! `data` is a string (text payloads), any other JSON value (JSON payloads) or binary (an
//! attachment). The namespace `/x` sees the topics under `x.`, named relative to it.
//!
//! No task per connection: the session's outbox wakes the Engine.IO transport, which pulls
//! ([`Handler::fill`]) as many packets as its bounded queue takes; a message's packet is
//! encoded once for every subscriber in the root namespace.

mod recovery;

use crate::transports::socketio::{
    packet, Accepted, App, ConnectRequest, Disconnect, Event, Handler, Outgoing, Refusal,
    SendError, SocketIoConfig, SocketRef,
};
use bytes::Bytes;
use recovery::{Record, Store, Tracker};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tidings_core::{
    CloseReason, Delivery, EncodingSlot, Hub, HubError, Identity, Message, PayloadKind, Resume,
    Session, SubscribeOptions,
};
use tidings_proto::json::ErrorCode;

/// Most messages one `history` request returns.
const MAX_HISTORY_PAGE: usize = 1000;

/// The hub bridge: the product's Socket.IO [`App`].
pub(crate) struct Bridge {
    shared: Arc<BridgeShared>,
}

struct BridgeShared {
    hub: Arc<Hub>,
    auth: Arc<dyn crate::auth::Authenticator>,
    config: SocketIoConfig,
    /// Disconnected sessions awaiting their client (connection state recovery).
    store: Store,
    /// The Redis engine: publishes, subscribes, history and recovery go through it
    /// (`None`: in memory).
    remote: crate::engine::Remote,
}

impl Bridge {
    pub(crate) fn new(ctx: &super::Context, config: SocketIoConfig) -> Self {
        let (hub, auth) = (ctx.hub.clone(), ctx.auth.clone());
        let store = Store::new(
            Duration::from_millis(config.recovery_ms),
            config.recovery_max_sessions,
        );
        Bridge {
            shared: Arc::new(BridgeShared {
                hub,
                auth,
                config,
                store,
                remote: ctx.remote.clone(),
            }),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Deserialize, Default)]
struct AuthFields {
    user: Option<String>,
    password: Option<String>,
    /// A signed token (`auth: {token}`); when given, user and password are not looked at.
    token: Option<String>,
}

impl App for Bridge {
    fn connect(&self, req: ConnectRequest<'_>) -> Result<Accepted, Refusal> {
        let shared = &self.shared;
        if !shared.config.allows_namespace(req.namespace) {
            return Err(Refusal::invalid_namespace());
        }
        // A handshake `auth` whose user or password is not a string is refused, not taken
        // as anonymous: a client that meant to log in should hear that it did not.
        let auth: AuthFields = match req.auth {
            None => AuthFields::default(),
            Some(raw) => serde_json::from_str(raw.get()).map_err(|_| Refusal {
                message: "invalid auth: \"user\", \"password\" and \"token\" must be strings"
                    .into(),
                data: None,
            })?,
        };
        let identity = match (auth.user, auth.token) {
            (_, Some(token)) => shared
                .auth
                .token(&token, req.peer)
                .map_err(|e| refusal(&e))?,
            (None, None) => shared.auth.anonymous(),
            (Some(user), None) => shared
                .auth
                .password(&user, auth.password.as_deref().unwrap_or(""), req.peer)
                .map_err(|e| refusal(&e))?,
        };
        let prefix: Option<Arc<str>> = match &req.namespace[1..] {
            "" => None,
            name => Some(format!("{name}.").into()),
        };
        let recovery = shared.config.recovery_ms > 0;
        let restored = match (&req.recover, recovery) {
            (Some((pid, offset)), true) => shared
                .store
                .take(pid)
                .filter(|r| *r.namespace == *req.namespace)
                .and_then(|r| self.restore(&req.socket, &identity, r, offset.as_deref()))
                .map(|(session, tracker, sid)| (session, tracker, sid, pid.clone())),
            _ => None,
        };
        let (session, tracker, sid, pid) = match restored {
            Some(r) => r,
            None => {
                // The outbox wakes the Engine.IO transport, which pulls (`fill`).
                let session = crate::drivers::open_session_waking(
                    &shared.hub,
                    "socketio",
                    None,
                    req.socket.waker(),
                )
                .map_err(|e| refusal(&e))?;
                crate::drivers::attach_identity(&session, &identity);
                (session, Tracker::default(), random_id(), random_id())
            }
        };
        let conn = Conn {
            shared: shared.clone(),
            socket: req.socket,
            session: Some(session),
            identity,
            prefix,
            tracker: Arc::new(Mutex::new(tracker)),
            pid: recovery.then(|| pid.clone()),
            sid: sid.clone(),
            peer: req.peer,
            backlog: Vec::new(),
            next: 0,
            ending: None,
            expiry_wake: None,
        };
        Ok(Accepted {
            handler: Box::new(conn),
            sid,
            pid: recovery.then_some(pid),
        })
    }
}

impl Bridge {
    /// Re-creates a disconnected session: every subscription resumed from history after
    /// what the client got. `None` (a fresh session) if any of it cannot be done exactly.
    fn restore(
        &self,
        socket: &SocketRef,
        identity: &Identity,
        record: Record,
        client_offset: Option<&str>,
    ) -> Option<(Session, Tracker, String)> {
        let points = record.tracker.resume_points(client_offset)?;
        let session =
            crate::drivers::open_session_waking(&self.shared.hub, "socketio", None, socket.waker())
                .ok()?;
        crate::drivers::attach_identity(&session, identity);
        let mut tracker = Tracker::default();
        for (sub, since) in points {
            let opts = SubscribeOptions {
                resume: Some(Resume {
                    since,
                    epoch: sub.epoch.as_ref().map(|e| e.to_string()),
                }),
                presence: sub.presence,
                ..SubscribeOptions::default()
            };
            if let Some(remote) = &self.shared.remote {
                // The history comes from Redis after the CONNECT is answered; the replay is
                // queued ahead of live messages. A resume Redis refuses is told as an
                // `error` event (the session is recovered otherwise).
                tracker.subscribed(&sub.pattern, sub.presence, true, sub.epoch.clone(), since);
                let nsp = socket.namespace().to_owned();
                let refused = move |e: &HubError| {
                    let f = Failure::from(e.clone());
                    let args = format!("[\"error\",{}", &failure_json(&f, Some("subscribe"))[1..]);
                    Some(reply_blob(&packet::event(&nsp, &args, Vec::new())))
                };
                remote
                    .subscribe(
                        &session,
                        identity,
                        &sub.pattern,
                        &sub.pattern,
                        opts,
                        Box::new(|_| None),
                        Box::new(refused),
                    )
                    .ok()?;
                continue;
            }
            let info = self
                .shared
                .hub
                .subscribe(&session, identity, &sub.pattern, &sub.pattern, opts, |_| {
                    None
                })
                .ok()?;
            tracker.subscribed(&sub.pattern, sub.presence, true, info.epoch, since);
        }
        Some((session, tracker, record.sid))
    }
}

fn refusal(e: &HubError) -> Refusal {
    let code = super::error_code(e);
    Refusal {
        message: e.to_string(),
        data: Some(format!(
            "{{\"code\":{}}}",
            packet::json_string(code.as_str())
        )),
    }
}

/// A random id (128 bits, hex) from the OS's CSPRNG: it works as a credential (whoever
/// holds a recovery id may take over the session's subscriptions), so it must not be
/// guessable from the time or from other ids.
fn random_id() -> String {
    let mut bytes = [0u8; 16];
    // getrandom fails only without any OS randomness, where nothing here could be secret.
    getrandom::getrandom(&mut bytes).expect("the OS's random number generator");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One namespace connection (see the module docs).
struct Conn {
    shared: Arc<BridgeShared>,
    socket: SocketRef,
    /// `None` once disconnected: dropping it leaves every subscription and presence room.
    session: Option<Session>,
    identity: Identity,
    /// `x.` in namespace `/x`: prepended to the topics the client names.
    prefix: Option<Arc<str>>,
    tracker: Arc<Mutex<Tracker>>,
    pid: Option<String>,
    sid: String,
    /// The client's address, for the login limits of a `refresh`.
    peer: Option<std::net::IpAddr>,
    /// Deliveries taken from the outbox that the Engine.IO queue had no room for yet, from
    /// `next` on. Taken only when empty, so it holds at most one outbox's worth (the
    /// outbox's bounds).
    backlog: Vec<Delivery>,
    next: usize,
    /// The outbox closed: after the backlog, say goodbye (once) and close the connection.
    ending: Option<CloseReason>,
    /// When a task will wake the transport for the token's expiry (see `schedule_expiry`).
    expiry_wake: Option<tokio::time::Instant>,
}

/// What a failed request answers.
struct Failure {
    code: ErrorCode,
    message: String,
    /// Extra raw JSON fields (`,"k":v`…).
    extra: String,
}

impl Failure {
    fn bad(message: impl Into<String>) -> Self {
        Failure {
            code: ErrorCode::BadRequest,
            message: message.into(),
            extra: String::new(),
        }
    }
}

impl From<HubError> for Failure {
    fn from(e: HubError) -> Self {
        let mut extra = String::new();
        if let HubError::ResumeUnavailable {
            epoch,
            earliest,
            last,
            ..
        } = &e
        {
            // The same fields as the native protocol's resume_unavailable error.
            if !epoch.is_empty() {
                extra = format!(",\"epoch\":{}", packet::json_string(epoch));
            }
            extra.push_str(&format!(",\"earliest\":{earliest},\"last\":{last}"));
        }
        Failure {
            code: super::error_code(&e),
            message: e.to_string(),
            extra,
        }
    }
}

/// A successful reply: the fields of the ack object (raw JSON, `"k":v,…`) and attachments.
type Reply = (String, Vec<Bytes>);

#[derive(Deserialize, Default)]
#[serde(default)]
struct SubscribeOpts {
    since: Option<u64>,
    epoch: Option<String>,
    presence: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct HistoryOpts {
    since: u64,
    limit: Option<usize>,
}

impl Handler for Conn {
    fn on_connected(&mut self) {
        // Replayed history (a recovered session) is already queued: make the transport pull.
        self.socket.waker().notify_one();
        self.schedule_expiry();
    }

    fn fill(&mut self) {
        if self
            .expiry_wake
            .is_some_and(|at| at <= tokio::time::Instant::now())
        {
            self.expiry_wake = None;
            if crate::drivers::is_expired(&self.identity) {
                return self.expire();
            }
            self.schedule_expiry(); // refreshed since: wake at the new expiry
        }
        self.fill_from_outbox();
    }

    fn on_event(&mut self, event: Event) {
        let result = self.handle(&event);
        let reply = answer(self.socket.namespace(), event.ack, &event.name, result);
        // Replies travel through the outbox like deliveries: one order, one writer, and
        // the outbox's bounds (a reply that cannot be queued closes the session).
        if let (Some(out), Some(session)) = (reply, &self.session) {
            session.outbox().push_reply(reply_blob(&out));
        }
    }

    fn on_disconnect(&mut self, reason: Disconnect) {
        self.session = None;
        self.backlog = Vec::new();
        if let (Disconnect::Transport(_), Some(pid)) = (&reason, &self.pid) {
            let tracker = std::mem::take(&mut *lock(&self.tracker));
            self.shared.store.put(
                pid.clone(),
                Record {
                    namespace: self.socket.namespace().into(),
                    sid: self.sid.clone(),
                    tracker,
                },
            );
        }
    }
}

/// The packet answering a request: its ack (when it asked for one), or an `error` event
/// for a failure without one.
fn answer(
    nsp: &str,
    ack: Option<i64>,
    name: &str,
    result: Result<Option<Reply>, Failure>,
) -> Option<Outgoing> {
    match (result, ack) {
        (Ok(None), _) | (Ok(Some(_)), None) => None,
        (Ok(Some((fields, bins))), Some(id)) => Some(packet::ack(
            nsp,
            id,
            &format!("[{{\"ok\":true{fields}}}]"),
            bins,
        )),
        (Err(f), Some(id)) => Some(packet::ack(nsp, id, &failure_json(&f, None), Vec::new())),
        (Err(f), None) => Some(packet::event(
            nsp,
            &format!("[\"error\",{}", &failure_json(&f, Some(name))[1..]),
            Vec::new(),
        )),
    }
}

/// An answer computed after `handle` returned (once Redis answered), queued in the outbox.
fn answer_later(
    session: &Session,
    nsp: &str,
    event: &Event,
) -> impl FnOnce(Result<Option<Reply>, Failure>) + Send + 'static {
    let outbox = session.outbox().clone();
    let (nsp, ack, name) = (nsp.to_owned(), event.ack, event.name.clone());
    move |result| {
        if let Some(out) = answer(&nsp, ack, &name, result) {
            outbox.push_reply(reply_blob(&out));
        }
    }
}

/// `[{"ok":false,"error":..,"message":..}]`, with `"event"` first when it is an error event.
fn failure_json(f: &Failure, event: Option<&str>) -> String {
    let event = event
        .map(|e| format!("\"event\":{},", packet::json_string(e)))
        .unwrap_or_else(|| "\"ok\":false,".into());
    format!(
        "[{{{event}\"error\":\"{}\",\"message\":{}{}}}]",
        f.code.as_str(),
        packet::json_string(&f.message),
        f.extra
    )
}

fn string_arg(event: &Event, i: usize, what: &str) -> Result<String, Failure> {
    event
        .args
        .get(i)
        .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
        .ok_or_else(|| {
            Failure::bad(format!(
                "{}: argument {} must be the {what}",
                event.name,
                i + 1
            ))
        })
}

fn opts_arg<T: for<'de> Deserialize<'de> + Default>(event: &Event, i: usize) -> Result<T, Failure> {
    match event.args.get(i) {
        None => Ok(T::default()),
        Some(raw) if raw.get() == "null" => Ok(T::default()),
        Some(raw) => serde_json::from_str(raw.get())
            .map_err(|e| Failure::bad(format!("{}: bad options: {e}", event.name))),
    }
}

impl Conn {
    fn full(&self, topic: &str) -> String {
        match &self.prefix {
            None => topic.to_owned(),
            Some(p) => format!("{p}{topic}"),
        }
    }

    fn shown<'a>(&self, topic: &'a str) -> &'a str {
        match &self.prefix {
            None => topic,
            Some(p) => topic.strip_prefix(&**p).unwrap_or(topic),
        }
    }

    fn handle(&mut self, event: &Event) -> Result<Option<Reply>, Failure> {
        let Some(session) = &self.session else {
            return Err(HubError::ShuttingDown.into());
        };
        let hub = &self.shared.hub;
        match event.name.as_str() {
            "subscribe" => {
                let topic = string_arg(event, 0, "topic")?;
                let opts: SubscribeOpts = opts_arg(event, 1)?;
                let full = self.full(&topic);
                let resume = opts.since.map(|since| Resume {
                    since,
                    epoch: opts.epoch.clone(),
                });
                let since = opts.since;
                let sub_opts = SubscribeOptions {
                    resume,
                    presence: opts.presence,
                    ..SubscribeOptions::default()
                };
                let nsp = self.socket.namespace().to_owned();
                let exact = !full.contains(['*', '>', '#']);
                if let Some(remote) = &self.shared.remote {
                    let tracker = self.tracker.clone();
                    let (pattern, presence, ack_id) = (full.clone(), opts.presence, event.ack);
                    let ack_nsp = nsp.clone();
                    let ack = move |info: &tidings_core::Subscribed| {
                        lock(&tracker).subscribed(
                            &pattern,
                            presence,
                            exact,
                            info.epoch.clone(),
                            since.unwrap_or(info.last_offset),
                        );
                        ack_id.map(|id| {
                            let args = subscribed_ack(&topic, info);
                            reply_blob(&packet::ack(&ack_nsp, id, &args, Vec::new()))
                        })
                    };
                    let (ack_id, name) = (event.ack, event.name.clone());
                    let refused = move |e: &HubError| {
                        answer(&nsp, ack_id, &name, Err(Failure::from(e.clone())))
                            .map(|out| reply_blob(&out))
                    };
                    remote.subscribe(
                        session,
                        &self.identity,
                        &full,
                        &full,
                        sub_opts,
                        Box::new(ack),
                        Box::new(refused),
                    )?;
                    return Ok(None); // answered once Redis did
                }
                let info =
                    hub.subscribe(session, &self.identity, &full, &full, sub_opts, |info| {
                        // Queued in the outbox ahead of any replayed or live message.
                        event.ack.map(|id| {
                            let args = subscribed_ack(&topic, info);
                            reply_blob(&packet::ack(&nsp, id, &args, Vec::new()))
                        })
                    })?;
                lock(&self.tracker).subscribed(
                    &full,
                    opts.presence,
                    exact,
                    info.epoch.clone(),
                    since.unwrap_or(info.last_offset),
                );
                Ok(None) // the ack, if any, is already queued
            }
            "unsubscribe" => {
                let topic = string_arg(event, 0, "topic")?;
                let full = self.full(&topic);
                hub.unsubscribe(session, &full)?;
                lock(&self.tracker).unsubscribed(&full);
                Ok(Some((
                    format!(",\"topic\":{}", packet::json_string(&topic)),
                    Vec::new(),
                )))
            }
            "publish" => {
                let topic = string_arg(event, 0, "topic")?;
                let data = event
                    .args
                    .get(1)
                    .ok_or_else(|| Failure::bad("publish: argument 2 must be the data"))?;
                let (kind, payload) = payload_of(data, &event.attachments)?;
                if let Some(remote) = &self.shared.remote {
                    let reply = answer_later(session, self.socket.namespace(), event);
                    let full = self.full(&topic);
                    let done = move |r: Result<tidings_core::Published, HubError>| {
                        reply(
                            r.map(|p| Some(published_fields(&topic, &p)))
                                .map_err(Failure::from),
                        );
                    };
                    remote.publish(
                        &self.identity,
                        &full,
                        kind,
                        payload,
                        Vec::new(),
                        crate::clock::now_ms(),
                        Box::new(done),
                    );
                    return Ok(None); // answered once Redis did
                }
                let p = hub.publish(
                    &self.identity,
                    &self.full(&topic),
                    kind,
                    payload,
                    Vec::new(),
                    crate::clock::now_ms(),
                )?;
                Ok(Some(published_fields(&topic, &p)))
            }
            "history" => {
                let topic = string_arg(event, 0, "topic")?;
                let opts: HistoryOpts = opts_arg(event, 1)?;
                let limit = opts.limit.unwrap_or(100).min(MAX_HISTORY_PAGE);
                if let Some(remote) = &self.shared.remote {
                    let reply = answer_later(session, self.socket.namespace(), event);
                    let prefix = self.prefix.clone();
                    let full = self.full(&topic);
                    let done = move |r: Result<tidings_core::HistoryPage, HubError>| {
                        let shown = |t: &str| match &prefix {
                            None => t.to_owned(),
                            Some(p) => t.strip_prefix(&**p).unwrap_or(t).to_owned(),
                        };
                        reply(
                            r.map(|page| Some(history_fields(&topic, &page, &shown)))
                                .map_err(Failure::from),
                        );
                    };
                    remote.history_then(&self.identity, &full, opts.since, limit, Box::new(done));
                    return Ok(None); // answered once Redis did
                }
                let page = hub.history(&self.identity, &self.full(&topic), opts.since, limit)?;
                let shown = |t: &str| self.shown(t).to_owned();
                Ok(Some(history_fields(&topic, &page, &shown)))
            }
            "presence" => {
                let topic = string_arg(event, 0, "topic")?;
                let members = hub.presence(&self.identity, &self.full(&topic))?;
                let list: Vec<String> = members
                    .iter()
                    .map(|m| {
                        let user = m
                            .user
                            .as_deref()
                            .map(packet::json_string)
                            .unwrap_or_else(|| "null".into());
                        let info = m
                            .info
                            .as_deref()
                            .map(|i| format!(",\"info\":{i}"))
                            .unwrap_or_default();
                        format!("{{\"client\":\"{}\",\"user\":{user}{info}}}", m.client)
                    })
                    .collect();
                Ok(Some((
                    format!(
                        ",\"topic\":{},\"members\":[{}]",
                        packet::json_string(&topic),
                        list.join(",")
                    ),
                    Vec::new(),
                )))
            }
            "refresh" => {
                let token = string_arg(event, 0, "token")?;
                self.refresh(&token)
            }
            other => Err(Failure {
                code: ErrorCode::BadRequest,
                message: format!("unknown event {other:?}"),
                extra: String::new(),
            }),
        }
    }
}

/// The ack fields of a `history` request; `shown` names a topic relative to the namespace.
fn history_fields(
    topic: &str,
    page: &tidings_core::HistoryPage,
    shown: &dyn Fn(&str) -> String,
) -> Reply {
    let mut fields = format!(",\"topic\":{}", packet::json_string(topic));
    if let Some(e) = &page.epoch {
        fields.push_str(&format!(",\"epoch\":{}", packet::json_string(e)));
    }
    fields.push_str(&format!(
        ",\"earliest\":{},\"offset\":{},\"messages\":[",
        page.earliest, page.last_offset
    ));
    let mut bins = Vec::new();
    for (i, m) in page.messages.iter().enumerate() {
        if i > 0 {
            fields.push(',');
        }
        fields.push_str(&message_json(m, &shown(&m.topic), bins.len()));
        if m.kind == PayloadKind::Binary {
            bins.push(m.payload.clone());
        }
    }
    fields.push(']');
    (fields, bins)
}

/// The ack fields of a `publish`: where the message went.
fn published_fields(topic: &str, p: &tidings_core::Published) -> Reply {
    (
        format!(
            ",\"topic\":{},\"offset\":{},\"epoch\":{}",
            packet::json_string(topic),
            p.offset,
            packet::json_string(&p.epoch)
        ),
        Vec::new(),
    )
}

/// The ack arguments of a `subscribe`: queued ahead of any replayed or live message.
fn subscribed_ack(topic: &str, info: &tidings_core::Subscribed) -> String {
    let mut fields = format!(",\"topic\":{}", packet::json_string(topic));
    if let Some(e) = &info.epoch {
        fields.push_str(&format!(",\"epoch\":{}", packet::json_string(e)));
    }
    fields.push_str(&format!(
        ",\"offset\":{},\"replayed\":{}",
        info.last_offset, info.replayed
    ));
    format!("[{{\"ok\":true{fields}}}]")
}

/// A `publish` data argument as a payload: a string is text, a binary placeholder is
/// binary, any other JSON value is JSON (kept as the client wrote it).
fn payload_of(data: &RawValue, attachments: &[Bytes]) -> Result<(PayloadKind, Bytes), Failure> {
    if let Some(n) = packet::placeholder(data) {
        let bin = attachments
            .get(n)
            .ok_or_else(|| Failure::bad("publish: missing binary attachment"))?;
        return Ok((PayloadKind::Binary, bin.clone()));
    }
    if data.get().contains("\"_placeholder\"") {
        return Err(Failure::bad(
            "publish: binary data must be the whole data argument",
        ));
    }
    // serde keeps `data` raw after checking only escape syntax: refuse what would travel on
    // as invalid JSON or text, as the native protocol does.
    if tidings_proto::json::has_lone_surrogate(data.get()) {
        return Err(Failure::bad("publish: data has a lone surrogate escape"));
    }
    match serde_json::from_str::<String>(data.get()) {
        Ok(text) => Ok((PayloadKind::Text, Bytes::from(text))),
        Err(_) => Ok((
            PayloadKind::Json,
            Bytes::copy_from_slice(data.get().as_bytes()),
        )),
    }
}

/// `{"topic":..,"offset":..,"epoch":..,"data":..}`; a binary payload is placeholder `bin`.
fn message_json(m: &Message, shown_topic: &str, bin: usize) -> String {
    let data = match m.kind {
        PayloadKind::Text => packet::json_string(&String::from_utf8_lossy(&m.payload)),
        PayloadKind::Json => match std::str::from_utf8(&m.payload) {
            Ok(json) => json.to_owned(),
            Err(_) => packet::json_string(&String::from_utf8_lossy(&m.payload)),
        },
        PayloadKind::Binary => packet::placeholder_json(bin),
    };
    format!(
        "{{\"topic\":{},\"offset\":{},\"epoch\":{},\"data\":{data}}}",
        packet::json_string(shown_topic),
        m.offset,
        packet::json_string(&m.epoch)
    )
}

/// The `message` event packet for `m` in namespace `nsp`.
fn message_packet(m: &Message, nsp: &str, shown_topic: &str, recovery: bool) -> String {
    let mut args = String::with_capacity(m.payload.len() + 96);
    args.push_str("[\"message\",");
    args.push_str(&message_json(m, shown_topic, 0));
    if recovery {
        args.push(',');
        args.push_str(&packet::json_string(&format!("{}:{}", m.offset, m.topic)));
    }
    args.push(']');
    let bins = match m.kind {
        PayloadKind::Binary => vec![m.payload.clone()],
        _ => Vec::new(),
    };
    packet::event(nsp, &args, bins).text
}

/// A reply packet as one outbox item: `T<text>`, or `M` then `<u32 len><text>` and
/// `<u32 len><bytes>` per attachment (big-endian lengths), so that a packet and its
/// attachments stay together.
fn reply_blob(out: &Outgoing) -> Bytes {
    if out.attachments.is_empty() {
        let mut b = Vec::with_capacity(out.text.len() + 1);
        b.push(b'T');
        b.extend_from_slice(out.text.as_bytes());
        return Bytes::from(b);
    }
    let parts = std::iter::once(out.text.as_bytes()).chain(out.attachments.iter().map(|a| &a[..]));
    let mut b = Vec::with_capacity(
        1 + out.text.len() + 4 + out.attachments.iter().map(|a| a.len() + 4).sum::<usize>(),
    );
    b.push(b'M');
    for part in parts {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        b.extend_from_slice(&len.to_be_bytes());
        b.extend_from_slice(part);
    }
    Bytes::from(b)
}

/// The packet text and attachments of a [`reply_blob`].
fn parse_blob(blob: &Bytes) -> Option<(&str, Vec<Bytes>)> {
    match blob.first()? {
        b'T' => Some((std::str::from_utf8(&blob[1..]).ok()?, Vec::new())),
        b'M' => {
            let mut parts = Vec::new();
            let mut at = 1;
            while at < blob.len() {
                let len = u32::from_be_bytes(blob.get(at..at + 4)?.try_into().ok()?) as usize;
                let end = at.checked_add(4 + len)?;
                parts.push(blob.get(at + 4..end)?);
                at = end;
            }
            let (text, bins) = parts.split_first()?;
            let bins = bins.iter().map(|b| blob.slice_ref(b)).collect();
            Some((std::str::from_utf8(text).ok()?, bins))
        }
        _ => None,
    }
}

impl Conn {
    /// Makes sure the transport is woken when the token expires (no task per connection
    /// otherwise): one sleeping task per expiry moved earlier.
    fn schedule_expiry(&mut self) {
        let Some(at) = crate::drivers::expiry_instant(&self.identity) else {
            return;
        };
        if self.expiry_wake.is_some_and(|w| w <= at) {
            return; // an earlier wake comes first; `fill` schedules the next from there
        }
        self.expiry_wake = Some(at);
        let wake = Arc::downgrade(&self.socket.waker());
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            if let Some(w) = wake.upgrade() {
                w.notify_one();
            }
        });
    }

    /// The token expired without a refresh: an `error` event saying so, then the server
    /// disconnects the namespace (the client's `disconnect` reason is
    /// `io server disconnect`; it reconnects with a fresh `auth.token`).
    fn expire(&mut self) {
        let args = "[\"error\",{\"error\":\"token_expired\",\"message\":\"token expired; connect again with a fresh token\"}]";
        let _ = self.socket.emit(args, Vec::new());
        self.session = None;
        self.backlog = Vec::new();
        self.socket.disconnect();
    }

    /// The `refresh` event: a fresh token for the same user replaces the identity; the
    /// subscriptions its rights no longer allow end, each with an `error` event.
    fn refresh(&mut self, token: &str) -> Result<Option<Reply>, Failure> {
        let who = self.shared.auth.token(token, self.peer)?;
        if who.user != self.identity.user {
            return Err(HubError::Denied(tidings_core::AuthError::BadToken(
                tidings_core::TokenRefusal::OtherUser,
            ))
            .into());
        }
        let Some(session) = &self.session else {
            return Err(HubError::ShuttingDown.into());
        };
        let nsp = self.socket.namespace().to_owned();
        for key in crate::drivers::reattach_identity(session, &who) {
            lock(&self.tracker).unsubscribed(&key);
            let args = format!(
                "[\"error\",{{\"event\":\"subscribe\",\"error\":\"forbidden\",\"message\":{},\"topic\":{}}}]",
                packet::json_string(crate::drivers::ENDED_BY_REFRESH),
                packet::json_string(self.shown(&key))
            );
            session
                .outbox()
                .push_reply(reply_blob(&packet::event(&nsp, &args, Vec::new())));
        }
        let mut fields = format!(",\"user\":{}", packet::json_string(who.name()));
        if let Some(at) = who.expires_at {
            fields.push_str(&format!(",\"expires\":{}", at / 1000));
        }
        self.identity = who;
        self.schedule_expiry();
        Ok(Some((fields, Vec::new())))
    }

    /// Moves what the outbox holds into the Engine.IO queue until it is full (the rest
    /// waits in `backlog`); when the outbox closed, says goodbye after the last of it.
    fn fill_from_outbox(&mut self) {
        loop {
            while self.next < self.backlog.len() {
                match self.send_delivery(self.next) {
                    Ok(()) => self.next += 1,
                    Err(SendError::Full) => return,
                    Err(SendError::Closed) => {
                        self.backlog.clear();
                        self.next = 0;
                        return;
                    }
                }
            }
            self.backlog.clear();
            self.next = 0;
            if let Some(reason) = &self.ending {
                return self.goodbye(reason.clone());
            }
            let Some(session) = &self.session else {
                return;
            };
            self.ending = session.outbox().drain_into(&mut self.backlog);
            if self.backlog.is_empty() && self.ending.is_none() {
                return;
            }
        }
    }

    /// The outbox closed: a slow consumer is told why; then the connection is closed after
    /// what is queued (Engine.IO's forced close delivers it first).
    fn goodbye(&mut self, reason: CloseReason) {
        if reason == CloseReason::SlowConsumer {
            let args = "[\"error\",{\"error\":\"slow_consumer\",\"message\":\"too many messages queued; closing\"}]";
            if let Err(SendError::Full) = self.socket.emit(args, Vec::new()) {
                return; // retried on the next fill, once the transport took some
            }
        }
        self.ending = None;
        self.session = None;
        self.socket.close_connection();
    }

    /// Queues `backlog[i]` in the Engine.IO queue.
    fn send_delivery(&self, i: usize) -> Result<(), SendError> {
        match &self.backlog[i] {
            Delivery::Message { msg, .. } => {
                self.send_message(msg)?;
                if self.pid.is_some() {
                    lock(&self.tracker).sent(&msg.topic, msg.offset);
                }
                Ok(())
            }
            Delivery::Presence(p) => {
                let user = p
                    .user
                    .as_deref()
                    .map(packet::json_string)
                    .unwrap_or_else(|| "null".into());
                let info = p
                    .info
                    .as_deref()
                    .map(|i| format!(",\"info\":{i}"))
                    .unwrap_or_default();
                let args = format!(
                    "[\"presence\",{{\"topic\":{},\"event\":\"{}\",\"client\":\"{}\",\"user\":{user}{info}}}]",
                    packet::json_string(self.shown(&p.topic)),
                    if p.joined { "join" } else { "leave" },
                    p.client
                );
                let out = packet::event(self.socket.namespace(), &args, Vec::new());
                self.socket.try_send_shared(&out.text, &[])
            }
            Delivery::Reply(blob) => match parse_blob(blob) {
                Some((text, bins)) => self.socket.try_send_shared(text, &bins),
                None => Ok(()),
            },
            // A refused resume is an error ack, so gaps come only from the engine: the
            // topic's history was lost (Redis came back empty). Told as a `gap` event with
            // the native protocol's fields, the topic as the client named it.
            Delivery::Gap(g) => {
                let gap = super::gap_fields(g, self.shown(&g.topic));
                let args = format!("[\"gap\",{gap}]");
                let out = packet::event(self.socket.namespace(), &args, Vec::new());
                self.socket.try_send_shared(&out.text, &[])
            }
        }
    }

    fn send_message(&self, msg: &Arc<Message>) -> Result<(), SendError> {
        let bins = match msg.kind {
            PayloadKind::Binary => std::slice::from_ref(&msg.payload),
            _ => &[],
        };
        let recovery = self.pid.is_some();
        if self.prefix.is_none() {
            // The root namespace's packet is the same for every subscriber: encode it once.
            let text = msg.encoded(EncodingSlot::SocketIo, |m| {
                Bytes::from(message_packet(m, "/", &m.topic, recovery))
            });
            match std::str::from_utf8(&text) {
                Ok(text) => self.socket.try_send_shared(text, bins),
                Err(_) => Ok(()),
            }
        } else {
            let text = message_packet(
                msg,
                self.socket.namespace(),
                self.shown(&msg.topic),
                recovery,
            );
            self.socket.try_send_shared(&text, bins)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_blobs_keep_a_packet_and_its_attachments_together() {
        let plain = packet::ack("/", 1, "[{}]", Vec::new());
        assert_eq!(
            parse_blob(&reply_blob(&plain)),
            Some(("31[{}]", Vec::new()))
        );
        let bins = vec![Bytes::from_static(b"\x00\x01"), Bytes::new()];
        let with = packet::ack("/c", 2, "[1]", bins.clone());
        assert_eq!(parse_blob(&reply_blob(&with)), Some(("62-/c,2[1]", bins)));
        assert_eq!(
            parse_blob(&Bytes::from_static(b"M\x00\x00\x00\x09ab")),
            None
        );
        assert_eq!(parse_blob(&Bytes::new()), None);
    }

    #[test]
    fn payloads_by_kind() {
        let raw = |s: &str| serde_json::from_str::<Box<RawValue>>(s).unwrap();
        let bin = [Bytes::from_static(b"\xff")];
        assert_eq!(
            payload_of(&raw(r#""hi""#), &[]).ok(),
            Some((PayloadKind::Text, Bytes::from("hi")))
        );
        assert_eq!(
            payload_of(&raw(r#"{"a": 1}"#), &[]).ok(),
            Some((PayloadKind::Json, Bytes::from(r#"{"a": 1}"#)))
        );
        assert_eq!(
            payload_of(&raw(r#"{"_placeholder":true,"num":0}"#), &bin).ok(),
            Some((PayloadKind::Binary, bin[0].clone()))
        );
        assert!(payload_of(&raw(r#"{"_placeholder":true,"num":1}"#), &bin).is_err());
        assert!(payload_of(&raw(r#"[{"_placeholder":true,"num":0}]"#), &bin).is_err());
    }
}
