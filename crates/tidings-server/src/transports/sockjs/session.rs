//! SockJS sessions: what lives between the requests of one client.
//!
//! A session is created by its first receiving request, holds the application's handler
//! (whose own bounded queue holds what the client has not received yet), and
//! is reclaimed when no request has touched it for the disconnect delay. At most one
//! receiving request is attached at a time; a second one is told "Another connection still
//! open" (code 2010). A receiving request the client abandons (a closed tab, an aborted
//! `xhr`) interrupts the session, as sockjs-node does: its handler (and hub session) is
//! dropped at once and later requests get `c[1002,"Connection interrupted"]` until the
//! session is reaped.

use super::app::{App, Closed, Handler, Refused};
use super::frame;
use bytes::Bytes;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

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
    /// `None` once the session was interrupted: nothing more to send or receive.
    handler: Mutex<Option<Box<dyn Handler>>>,
    /// Notified by the handler when it has something to send.
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
    pub(crate) fn new(app: &dyn App, peer: Option<SocketAddr>) -> Result<SockSession, Refused> {
        let wake = Arc::new(Notify::new());
        let handler = app.open(wake.clone(), peer)?;
        // The first receiver drains at once: the application may have queued something (a
        // greeting) or ended already (the close fixture) without notifying.
        wake.notify_one();
        let state = State {
            opened: false,
            receiving: false,
            closed: None,
            last_seen: Instant::now(),
        };
        Ok(SockSession {
            handler: Mutex::new(Some(handler)),
            wake,
            state: Mutex::new(state),
        })
    }

    fn handler(&self) -> MutexGuard<'_, Option<Box<dyn Handler>>> {
        self.handler.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A receiving request arrives.
    pub(crate) fn attach(&self) -> Attach {
        let mut st = self.state();
        st.last_seen = Instant::now();
        if !st.opened {
            st.opened = true;
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

    /// The attached receiving request went away before it was answered (the client aborted
    /// it): the session ends with `c[1002,"Connection interrupted"]` and its handler goes now
    /// (with its hub session: presence says so), not at the disconnect delay.
    pub(crate) fn interrupt(&self) {
        {
            let mut st = self.state();
            st.receiving = false;
            st.last_seen = Instant::now();
            st.closed
                .get_or_insert_with(|| frame::close(1002, "Connection interrupted"));
        }
        let handler = self.handler().take();
        drop(handler); // outside the lock: a handler's drop may do real work
    }

    /// Messages the client sent (one decoded `xhr_send` body or WebSocket frame).
    pub(crate) fn receive(&self, messages: &[String]) {
        self.state().last_seen = Instant::now();
        if let Some(handler) = self.handler().as_mut() {
            handler.on_messages(messages);
        }
    }

    /// Takes everything queued for the client, quoted message by message (for a raw
    /// WebSocket, which frames each on its own).
    pub(crate) fn drain_quoted(&self, out: &mut Vec<Bytes>) -> Option<Closed> {
        let closed = self.handler().as_mut()?.drain(out);
        if let Some(Closed { code, reason }) = closed {
            self.state().closed = Some(frame::close(code, reason));
        }
        closed
    }

    /// Takes everything queued for the client.
    pub(crate) fn drain(&self) -> Drained {
        let mut quoted = Vec::new();
        let closed = match self.handler().as_mut() {
            Some(handler) => handler.drain(&mut quoted),
            None => None,
        };
        let messages = (!quoted.is_empty()).then(|| frame::messages(&quoted));
        let close = closed.map(|Closed { code, reason }| {
            let frame = frame::close(code, reason);
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

/// The sessions of one SockJS endpoint.
pub(crate) struct Registry {
    sessions: Mutex<Sessions>,
    max: usize,
    max_per_ip: usize,
}

#[derive(Default)]
struct Sessions {
    by_id: HashMap<String, (Arc<SockSession>, Option<IpAddr>)>,
    /// Sessions per client address (an entry goes at 0: at most one per session).
    per_ip: HashMap<IpAddr, usize>,
}

/// Why a session could not be created.
pub(crate) enum CreateError {
    Full,
    /// The client's address holds `max_sessions_per_ip`.
    FullForAddress,
    /// The application refused a new session (e.g. the server is shutting down).
    Refused,
}

impl Registry {
    pub(crate) fn new(max: usize, max_per_ip: usize) -> Registry {
        Registry {
            sessions: Mutex::new(Sessions::default()),
            max,
            max_per_ip,
        }
    }

    fn map(&self) -> MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<SockSession>> {
        self.map().by_id.get(id).map(|(s, _)| s.clone())
    }

    /// The session `id`, created for a client at `from` if it does not exist.
    pub(crate) fn get_or_create(
        &self,
        id: &str,
        app: &dyn App,
        peer: Option<SocketAddr>,
    ) -> Result<Arc<SockSession>, CreateError> {
        let mut map = self.map();
        if let Some((s, _)) = map.by_id.get(id) {
            return Ok(s.clone());
        }
        if map.by_id.len() >= self.max {
            return Err(CreateError::Full);
        }
        let from = peer.map(|p| crate::listen::address_key(p.ip()));
        if let Some(ip) = from {
            if map.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_per_ip {
                return Err(CreateError::FullForAddress);
            }
        }
        let session =
            Arc::new(SockSession::new(app, peer).map_err(|Refused| CreateError::Refused)?);
        map.by_id.insert(id.to_owned(), (session.clone(), from));
        if let Some(ip) = from {
            *map.per_ip.entry(ip).or_insert(0) += 1;
        }
        Ok(session)
    }

    /// Forgets sessions no request has touched for `delay`; their hub sessions end with them.
    pub(crate) fn reap(&self, delay: Duration) -> usize {
        let mut map = self.map();
        let Sessions { by_id, per_ip } = &mut *map;
        let before = by_id.len();
        by_id.retain(|_, (s, from)| {
            let keep = s.idle_for().is_none_or(|idle| idle < delay);
            if !keep {
                if let Some(n) = from.and_then(|ip| per_ip.get_mut(&ip)) {
                    *n -= 1;
                }
            }
            keep
        });
        per_ip.retain(|_, n| *n > 0);
        before - by_id.len()
    }

    pub(crate) fn len(&self) -> usize {
        self.map().by_id.len()
    }

    pub(crate) fn holds(&self, id: &str) -> bool {
        self.map().by_id.contains_key(id)
    }

    pub(crate) fn ids(&self) -> Vec<String> {
        self.map().by_id.keys().cloned().collect()
    }
}
