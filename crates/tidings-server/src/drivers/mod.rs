//! Protocol drivers: each joins one transport's decoded frames to the hub and writes the
//! session's outbox back in its protocol, coalescing everything queued into one write.

pub(crate) mod api;
pub(crate) mod credentials;
pub(crate) mod fallback;
pub(crate) mod json_ws;
pub(crate) mod line;
pub(crate) mod socketio;
pub(crate) mod sockjs;
pub(crate) mod stomp;
pub(crate) mod udp;
pub(crate) mod url_subscribe;

use crate::auth::Authenticator;
use crate::listen::Peer;
use std::sync::Arc;
use tidings_core::{Hub, HubError, Session, SessionMeta};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What every driver needs of the running server, and nothing more: each driver gets this
/// plus its own slice of the config, never the whole server.
#[derive(Clone)]
pub(crate) struct Context {
    pub(crate) hub: Arc<Hub>,
    /// Who clients are (the configured users; tokens later).
    pub(crate) auth: Arc<dyn Authenticator>,
    /// Cancelled when shutdown begins: drivers flush and say their protocol's goodbye.
    pub(crate) shutdown: CancellationToken,
    /// Tasks a driver spawns besides its connection's own (writers, brokers), so shutdown
    /// waits for them too.
    pub(crate) tasks: TaskTracker,
    /// The Redis engine, when topics are shared with other nodes (`None`: in memory).
    pub(crate) remote: crate::engine::Remote,
}

/// Opens a hub session whose outbox wakes the returned `Notify` when it has something to
/// write; the driver's task waits on it.
pub(crate) fn open_session(
    hub: &Arc<Hub>,
    protocol: &'static str,
    peer: Option<Peer>,
) -> Result<(Session, Arc<Notify>), HubError> {
    let wake = Arc::new(Notify::new());
    let session = open_session_waking(hub, protocol, peer, wake.clone())?;
    Ok((session, wake))
}

/// Opens a hub session whose outbox wakes `wake` (a transport's own, e.g. SockJS's).
pub(crate) fn open_session_waking(
    hub: &Arc<Hub>,
    protocol: &'static str,
    peer: Option<Peer>,
    wake: Arc<Notify>,
) -> Result<Session, HubError> {
    let meta = SessionMeta::new(protocol, peer.map(|p| p.addr));
    let session = hub.open_session(Box::new(move || wake.notify_one()), meta)?;
    let span = tracing::Span::current();
    span.record("protocol", protocol);
    span.record("session", session.id().0);
    Ok(session)
}

/// Why a connection ended: the last event of its span (`TIDINGS_LOG=debug`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Ended {
    #[error("the peer closed the connection (or it broke)")]
    PeerClosed,
    #[error("the peer sent nothing for too long (idle timeout)")]
    Idle,
    #[error("writing to the peer failed: {0}")]
    WriteFailed(String),
    #[error("the peer sent what cannot be read: {0}")]
    BadInput(String),
    #[error("slow consumer: too many messages queued")]
    SlowConsumer,
    #[error("the server is shutting down")]
    Shutdown,
    #[error("the client said goodbye")]
    Goodbye,
    /// The protocol's own end of a conversation that may be either side's doing.
    #[error("the conversation ended: {0}")]
    Concluded(&'static str),
    #[error("no session: {0}")]
    Refused(HubError),
    #[error("too many failed logins on this connection")]
    LoginFailures,
    #[error("the connection's token expired")]
    Expired,
}

impl Ended {
    /// The end of a session the hub closed.
    pub(crate) fn closed(reason: &tidings_core::CloseReason) -> Ended {
        match reason {
            tidings_core::CloseReason::SlowConsumer => Ended::SlowConsumer,
            tidings_core::CloseReason::Finished => Ended::Goodbye,
            _ => Ended::Shutdown,
        }
    }

    pub(crate) fn log(&self) {
        tracing::debug!(reason = %self, "connection ended");
    }
}

/// Records who a session is, on the hub session (presence, admin view) and on the
/// connection's span (logs).
pub(crate) fn attach_identity(session: &Session, who: &tidings_core::Identity) {
    session.set_identity(who.clone());
    if let Some(user) = who.user.as_deref() {
        tracing::Span::current().record("user", user);
    }
}

/// Like [`attach_identity`] for a new token on a live connection (a refresh): the
/// subscriptions the new rights no longer allow are ended; returns their keys, so the
/// driver tells the client of each in its protocol.
pub(crate) fn reattach_identity(session: &Session, who: &tidings_core::Identity) -> Vec<Arc<str>> {
    let ended = session.reauthorize(who.clone());
    if let Some(user) = who.user.as_deref() {
        tracing::Span::current().record("user", user);
    }
    ended
}

/// When `who` expires on the runtime's clock (`None`: never), for a connection's timer.
pub(crate) fn expiry_instant(who: &tidings_core::Identity) -> Option<tokio::time::Instant> {
    let at = who.expires_at?;
    let left = at.saturating_sub(crate::clock::now_ms());
    Some(tokio::time::Instant::now() + std::time::Duration::from_millis(left))
}

/// Whether `who` has expired (a token's `exp`, plus the leeway, has passed).
pub(crate) fn is_expired(who: &tidings_core::Identity) -> bool {
    who.check_expiry(crate::clock::now_ms()).is_err()
}

/// The message telling a client that a refresh ended one of its subscriptions.
pub(crate) const ENDED_BY_REFRESH: &str = "subscription ended: the new token does not allow it";

/// A gap in the native JSON protocol: `{"type":"gap","topic","since","epoch","next","reason"}`
/// — what a resumed topic missed that history no longer holds (docs/native-protocol.md).
pub(crate) fn gap_json(g: &tidings_core::Gap) -> String {
    let mut gap = gap_fields(g, &g.topic);
    gap["type"] = "gap".into();
    gap.to_string()
}

/// A gap's fields, the topic as the client named it (Socket.IO's `gap` event carries these).
pub(crate) fn gap_fields(g: &tidings_core::Gap, topic: &str) -> serde_json::Value {
    serde_json::json!({
        "topic": topic,
        "since": g.since,
        "epoch": g.epoch.as_deref(),
        "next": g.next,
        "reason": g.reason.as_str(),
    })
}

/// The native protocol's error code for a hub error; the JSON drivers (`/ws`, SockJS,
/// Socket.IO) all answer with it.
pub(crate) fn error_code(e: &HubError) -> tidings_proto::json::ErrorCode {
    use tidings_proto::json::ErrorCode;
    match e {
        HubError::Denied(
            tidings_core::AuthError::BadCredentials | tidings_core::AuthError::BadToken(_),
        ) => ErrorCode::Unauthorized,
        HubError::Denied(_) => ErrorCode::Forbidden,
        HubError::ResumeUnavailable { .. } => ErrorCode::ResumeUnavailable,
        HubError::NotSubscribed(_) => ErrorCode::NotFound,
        HubError::ShuttingDown => ErrorCode::ShuttingDown,
        HubError::EngineUnavailable(_) => ErrorCode::Unavailable,
        _ => ErrorCode::BadRequest,
    }
}

/// The wire's name for a payload kind (proto and core each define their own, on purpose).
pub(crate) fn wire_kind(k: tidings_core::PayloadKind) -> tidings_proto::PayloadKind {
    use tidings_core::PayloadKind as Core;
    use tidings_proto::PayloadKind as Wire;
    match k {
        Core::Text => Wire::Text,
        Core::Json => Wire::Json,
        Core::Binary => Wire::Binary,
    }
}

/// The core's payload kind for what a decoder read.
pub(crate) fn core_kind(k: tidings_proto::PayloadKind) -> tidings_core::PayloadKind {
    use tidings_core::PayloadKind as Core;
    use tidings_proto::PayloadKind as Wire;
    match k {
        Wire::Text => Core::Text,
        Wire::Json => Core::Json,
        _ => Core::Binary,
    }
}
