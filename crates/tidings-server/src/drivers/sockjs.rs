//! The product's SockJS applications: the native JSON protocol at `/sockjs` (each SockJS
//! message is one request or one server message, as on `/ws`) and STOMP at `/sockjs-stomp`
//! (each SockJS message carries STOMP frames, the way Spring does STOMP over SockJS).

use super::json_ws::{self, Driver};
use super::stomp::carrier::{Carrier, Ending};
use super::stomp::Broker;
use crate::transports::sockjs::{quote, App, Closed, Handler, Refused};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use tidings_core::{CloseReason, Delivery, EncodingSlot};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

/// The native protocol in SockJS sessions.
pub(crate) struct NativeApp {
    pub(crate) native: Arc<json_ws::Native>,
}

impl App for NativeApp {
    fn open(
        &self,
        wake: Arc<Notify>,
        peer: Option<SocketAddr>,
    ) -> Result<Box<dyn Handler>, Refused> {
        // The session knows its client's address, so logins in it meet the login guard.
        let peer = peer.map(|addr| crate::listen::Peer {
            addr,
            on_reserve: false,
        });
        let session = super::open_session_waking(&self.native.hub, "sockjs", peer, wake.clone())
            .map_err(|_| Refused)?;
        // The same greeting as `/ws`, first in the session's stream.
        let hello = tidings_proto::json::encode_hello(
            &session.id().to_string(),
            tidings_proto::json::SERVER,
        );
        session.outbox().push_reply(Bytes::from(hello));
        Ok(Box::new(NativeSession {
            driver: Driver::new(session, self.native.clone()),
            batch: Vec::new(),
            wake,
            expiry_wake: None,
        }))
    }
}

struct NativeSession {
    driver: Driver,
    /// Reused between drains.
    batch: Vec<Delivery>,
    /// Wakes the session's writer, also when its token expires.
    wake: Arc<Notify>,
    /// When a task will wake the session for its token's expiry: one task per expiry
    /// moved earlier, not per request.
    expiry_wake: Option<tokio::time::Instant>,
}

impl NativeSession {
    /// Makes sure the session is woken when its token expires (it has no timer of its own).
    fn schedule_expiry(&mut self) {
        let Some(at) = self.driver.expiry() else {
            return;
        };
        if self.expiry_wake.is_some_and(|w| w <= at) {
            return; // an earlier wake comes first; `drain` schedules the next from there
        }
        self.expiry_wake = Some(at);
        let wake = Arc::downgrade(&self.wake);
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            if let Some(w) = wake.upgrade() {
                w.notify_one();
            }
        });
    }
}

impl Handler for NativeSession {
    fn on_messages(&mut self, messages: &[String]) {
        for m in messages {
            // As on `/ws`: after too many failed logins the session ends, and nothing more
            // it sent is read (one `xhr_send` may carry thousands of guesses).
            if self.driver.too_many_login_failures() || self.driver.expired() {
                break;
            }
            self.driver.handle(m.as_bytes(), false);
        }
        self.schedule_expiry();
    }

    fn drain(&mut self, out: &mut Vec<Bytes>) -> Option<Closed> {
        let closed = self.driver.session().outbox().drain_into(&mut self.batch);
        out.extend(self.batch.drain(..).map(delivery_quoted));
        if self.driver.too_many_login_failures() {
            return Some(TOO_MANY_LOGIN_FAILURES);
        }
        if self
            .expiry_wake
            .is_some_and(|at| at <= tokio::time::Instant::now())
        {
            self.expiry_wake = None;
            if self.driver.expired() {
                out.push(quote(json_ws::expired_reply().as_bytes()));
                return Some(TOKEN_EXPIRED);
            }
            self.schedule_expiry(); // refreshed since: wake at the new expiry
        }
        closed.map(|reason| match reason {
            CloseReason::SlowConsumer => Closed {
                code: 3008,
                reason: "Slow consumer: too many messages queued",
            },
            CloseReason::Finished => GO_AWAY,
            _ => SHUTTING_DOWN,
        })
    }
}

const TOO_MANY_LOGIN_FAILURES: Closed = Closed {
    code: 4008,
    reason: "Too many failed logins",
};
/// As `/ws`'s close code 4401 (docs/security.md).
const TOKEN_EXPIRED: Closed = Closed {
    code: json_ws::TOKEN_EXPIRED,
    reason: "Token expired",
};
const GO_AWAY: Closed = Closed {
    code: 3000,
    reason: "Go away!",
};
const SHUTTING_DOWN: Closed = Closed {
    code: 1001,
    reason: "Server shutting down",
};

/// A delivery as one quoted SockJS message (the `/ws` JSON; binary as base64). A published
/// message is quoted once and shared by every SockJS session that receives it.
fn delivery_quoted(d: Delivery) -> Bytes {
    match d {
        Delivery::Message { msg, .. } => msg.encoded(EncodingSlot::SockJs, |_| {
            quote(&super::fallback::message_json(&msg))
        }),
        Delivery::Presence(p) => {
            let event = if p.joined {
                tidings_proto::json::PresenceEvent::Join
            } else {
                tidings_proto::json::PresenceEvent::Leave
            };
            quote(
                tidings_proto::json::encode_presence_info(
                    &p.topic,
                    event,
                    &p.client.to_string(),
                    p.user.as_deref(),
                    p.info.as_deref(),
                )
                .as_bytes(),
            )
        }
        Delivery::Reply(b) => quote(&b),
        Delivery::Gap(g) => quote(super::gap_json(&g).as_bytes()),
    }
}

/// Client messages queued for a STOMP connection over SockJS; more means the client sends
/// faster than the broker reads, and the session is closed.
const STOMP_INBOX: usize = 64;

/// STOMP in SockJS sessions: each session runs a broker connection in its own task, fed
/// through a bounded channel, writing frames into a bounded [`Carrier`].
pub(crate) struct StompApp {
    pub(crate) broker: Arc<Broker>,
    pub(crate) shutdown: CancellationToken,
}

impl App for StompApp {
    fn open(
        &self,
        wake: Arc<Notify>,
        peer: Option<SocketAddr>,
    ) -> Result<Box<dyn Handler>, Refused> {
        if self.shutdown.is_cancelled() {
            return Err(Refused);
        }
        let carrier = Arc::new(Carrier::new(self.broker.hub.config().outbox, wake));
        let to_broker = self
            .broker
            .spawn_over_messages(carrier.clone(), STOMP_INBOX, peer);
        Ok(Box::new(Stomp {
            to_broker,
            carrier,
            shutdown: self.shutdown.clone(),
        }))
    }
}

struct Stomp {
    /// Dropped with the session, which ends the broker's connection.
    to_broker: mpsc::Sender<Bytes>,
    carrier: Arc<Carrier>,
    shutdown: CancellationToken,
}

impl Handler for Stomp {
    fn on_messages(&mut self, messages: &[String]) {
        for m in messages {
            if self
                .to_broker
                .try_send(Bytes::copy_from_slice(m.as_bytes()))
                .is_err()
            {
                self.carrier.end(Ending::Overflowed);
                return;
            }
        }
    }

    fn drain(&mut self, out: &mut Vec<Bytes>) -> Option<Closed> {
        let mut frames = Vec::new();
        let ended = self.carrier.drain(&mut frames);
        out.extend(frames.iter().map(|f| quote(f)));
        ended.map(|how| match how {
            Ending::Overflowed => Closed {
                code: 3008,
                reason: "Slow consumer: too many messages queued",
            },
            // The broker says goodbye with an ERROR frame on shutdown, then ends.
            Ending::Finished if self.shutdown.is_cancelled() => SHUTTING_DOWN,
            Ending::Finished => GO_AWAY,
        })
    }
}
