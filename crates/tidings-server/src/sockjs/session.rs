//! SockJS sessions: what lives between the requests of one client.
//!
//! A session is created by its first receiving request, holds a hub session (whose bounded
//! outbox queues what the client has not received yet) and the application behind it, and
//! is reclaimed when no request has touched it for the disconnect delay. At most one
//! receiving request is attached at a time; a second one is told "Another connection still
//! open" (code 2010).

use super::frame;
use crate::drivers::json_ws::Driver;
use crate::runtime::Shared;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tidings_core::{CloseReason, Delivery, EncodingSlot, HubError, Session};
use tokio::sync::{mpsc, Notify};

/// What runs inside a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AppKind {
    /// The native JSON protocol: each SockJS message is one request or one server message.
    Native,
    /// Conformance: every message is sent back.
    Echo,
    /// Conformance: closes with 3000 "Go away!" as soon as it opens.
    Close,
    /// STOMP: each SockJS message carries STOMP frames (the way Spring does STOMP over SockJS).
    Stomp,
}

enum App {
    Native(Box<Driver>),
    Echo(Session),
    Close(Session),
    /// The session's own hub session is the bounded queue of frames for the client; the STOMP
    /// connection (with its own hub session) runs in a task fed through `to_broker`.
    Stomp {
        session: Session,
        to_broker: mpsc::Sender<Bytes>,
    },
}

/// Client messages queued for a STOMP connection over SockJS; more means the client sends
/// faster than the broker reads, and the session is closed.
const STOMP_INBOX: usize = 64;

impl App {
    fn session(&self) -> &Session {
        match self {
            App::Native(d) => d.session(),
            App::Echo(s) | App::Close(s) | App::Stomp { session: s, .. } => s,
        }
    }
}

/// What a receiving request found when it came.
pub(crate) enum Attach {
    /// The session is new: send the open frame (`o`).
    Opened,
    /// Another receiving request is attached (answer with `c[2010,...]`).
    Busy,
    /// The session is closed; here is its close frame.
    Closed(Bytes),
    /// Attached: drain, wait, and detach when done.
    Attached,
}

struct State {
    opened: bool,
    receiving: bool,
    closed: Option<Bytes>,
    last_seen: Instant,
}

pub(crate) struct SockSession {
    app: Mutex<App>,
    /// Woken by the hub when the outbox has something to send.
    pub(crate) wake: Arc<Notify>,
    state: Mutex<State>,
}

/// What a drain produced: messages to send as one `a[...]` frame, and a close frame when the
/// session just ended.
pub(crate) struct Drained {
    pub(crate) messages: Option<Bytes>,
    pub(crate) close: Option<Bytes>,
}

impl SockSession {
    pub(crate) fn new(shared: &Arc<Shared>, kind: AppKind) -> Result<SockSession, HubError> {
        let (session, wake) = crate::drivers::open_session(&shared.hub)?;
        let app = match kind {
            AppKind::Native => {
                // The same greeting as `/ws`, first in the session's stream.
                let hello = tidings_proto::json::encode_hello(
                    &session.id().to_string(),
                    tidings_proto::json::SERVER,
                );
                session.outbox().push_reply(Bytes::from(hello));
                App::Native(Box::new(Driver::new(session, shared.clone())))
            }
            AppKind::Echo => App::Echo(session),
            AppKind::Close => App::Close(session),
            AppKind::Stomp => {
                let (to_broker, incoming) = mpsc::channel(STOMP_INBOX);
                let outgoing = session.outbox().clone();
                shared.tasks.spawn(crate::drivers::stomp::run_over_messages(
                    incoming,
                    outgoing,
                    shared.clone(),
                ));
                App::Stomp { session, to_broker }
            }
        };
        let state = State {
            opened: false,
            receiving: false,
            closed: None,
            last_seen: Instant::now(),
        };
        Ok(SockSession {
            app: Mutex::new(app),
            wake,
            state: Mutex::new(state),
        })
    }

    fn app(&self) -> MutexGuard<'_, App> {
        self.app.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A receiving request arrives.
    pub(crate) fn attach(&self) -> Attach {
        let is_close_app = matches!(*self.app(), App::Close(_));
        let mut st = self.state();
        st.last_seen = Instant::now();
        if !st.opened {
            st.opened = true;
            if is_close_app {
                st.closed = Some(frame::close(3000, "Go away!"));
            }
            return Attach::Opened;
        }
        if let Some(close) = &st.closed {
            return Attach::Closed(close.clone());
        }
        if st.receiving {
            return Attach::Busy;
        }
        st.receiving = true;
        Attach::Attached
    }

    /// The receiving request is done (answered, hit its response limit, or went away).
    pub(crate) fn detach(&self) {
        let mut st = self.state();
        st.receiving = false;
        st.last_seen = Instant::now();
    }

    /// Messages the client sent (one decoded `xhr_send` body or WebSocket frame).
    pub(crate) fn receive(&self, messages: &[String]) {
        self.state().last_seen = Instant::now();
        let mut app = self.app();
        for m in messages {
            match &mut *app {
                App::Native(driver) => driver.handle(m.as_bytes(), false),
                App::Echo(s) => {
                    s.outbox().push_reply(Bytes::copy_from_slice(m.as_bytes()));
                }
                App::Close(_) => {}
                App::Stomp { session, to_broker } => {
                    if to_broker
                        .try_send(Bytes::copy_from_slice(m.as_bytes()))
                        .is_err()
                    {
                        session.outbox().close(CloseReason::SlowConsumer);
                    }
                }
            }
        }
    }

    /// Takes everything queued for the client.
    pub(crate) fn drain(&self) -> Drained {
        let mut batch = Vec::new();
        let closed = self.app().session().outbox().drain_into(&mut batch);
        let quoted: Vec<Bytes> = batch.into_iter().map(delivery_quoted).collect();
        let messages = (!quoted.is_empty()).then(|| frame::messages(&quoted));
        let close = closed.map(|reason| {
            let frame = match reason {
                CloseReason::SlowConsumer => {
                    frame::close(3008, "Slow consumer: too many messages queued")
                }
                // The application (STOMP after DISCONNECT or ERROR) ended the session.
                CloseReason::Finished => frame::close(3000, "Go away!"),
                _ => frame::close(1001, "Server shutting down"),
            };
            self.state().closed = Some(frame.clone());
            frame
        });
        Drained { messages, close }
    }

    fn idle_for(&self) -> Option<Duration> {
        let st = self.state();
        (!st.receiving).then(|| st.last_seen.elapsed())
    }
}

/// A delivery as one quoted SockJS message (the `/ws` JSON; binary as base64). A published
/// message is quoted once and shared by every SockJS session that receives it.
fn delivery_quoted(d: Delivery) -> Bytes {
    match d {
        Delivery::Message { msg, .. } => msg.encoded(EncodingSlot::SockJs, |_| {
            frame::quoted(&crate::http::message_json(&msg))
        }),
        Delivery::Presence(p) => {
            let event = if p.joined {
                tidings_proto::json::PresenceEvent::Join
            } else {
                tidings_proto::json::PresenceEvent::Leave
            };
            frame::quoted(
                tidings_proto::json::encode_presence(
                    &p.topic,
                    event,
                    &p.client.to_string(),
                    p.user.as_deref(),
                )
                .as_bytes(),
            )
        }
        Delivery::Reply(b) => frame::quoted(&b),
    }
}

/// The sessions of one SockJS endpoint.
pub(crate) struct Registry {
    sessions: Mutex<HashMap<String, Arc<SockSession>>>,
    max: usize,
}

/// Why a session could not be created.
pub(crate) enum CreateError {
    Full,
    /// The hub refused a new session (it is shutting down).
    ShuttingDown,
}

impl Registry {
    pub(crate) fn new(max: usize) -> Registry {
        Registry {
            sessions: Mutex::new(HashMap::new()),
            max,
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<SockSession>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<SockSession>> {
        self.map().get(id).cloned()
    }

    pub(crate) fn get_or_create(
        &self,
        id: &str,
        shared: &Arc<Shared>,
        kind: AppKind,
    ) -> Result<Arc<SockSession>, CreateError> {
        let mut map = self.map();
        if let Some(s) = map.get(id) {
            return Ok(s.clone());
        }
        if map.len() >= self.max {
            return Err(CreateError::Full);
        }
        let session =
            Arc::new(SockSession::new(shared, kind).map_err(|_| CreateError::ShuttingDown)?);
        map.insert(id.to_owned(), session.clone());
        Ok(session)
    }

    /// Forgets sessions no request has touched for `delay`; their hub sessions end with them.
    pub(crate) fn reap(&self, delay: Duration) -> usize {
        let mut map = self.map();
        let before = map.len();
        map.retain(|_, s| s.idle_for().is_none_or(|idle| idle < delay));
        before - map.len()
    }

    pub(crate) fn len(&self) -> usize {
        self.map().len()
    }
}
