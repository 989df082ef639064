//! Protocol drivers: each joins one transport's decoded frames to the hub and writes the
//! session's outbox back in its protocol, coalescing everything queued into one write.

pub(crate) mod json_ws;
pub(crate) mod line;
pub(crate) mod socketio;
pub(crate) mod stomp;
pub(crate) mod udp;

use crate::runtime::Shared;
use std::future::Future;
use std::sync::Arc;
use tidings_core::{Hub, HubError, Session};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Opens a hub session whose outbox wakes the returned `Notify` when it has something to
/// write; the driver's task waits on it.
pub(crate) fn open_session(hub: &Arc<Hub>) -> Result<(Session, Arc<Notify>), HubError> {
    let wake = Arc::new(Notify::new());
    let waker = wake.clone();
    let session = hub.open_session(Box::new(move || waker.notify_one()))?;
    Ok((session, wake))
}

/// Accepts connections until shutdown, spawning `serve` for each (tracked, so shutdown waits
/// for them). A failed accept (e.g. out of file descriptors) backs off instead of spinning.
pub(crate) async fn accept_loop<F, Fut>(
    listener: TcpListener,
    shared: Arc<Shared>,
    kind: &'static str,
    serve: F,
) where
    F: Fn(TcpStream, Arc<Shared>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!("{kind} accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shared.shutdown.cancelled() => return,
        };
        let _ = stream.set_nodelay(true);
        shared.tasks.spawn(serve(stream, shared.clone()));
    }
}

/// The native protocol's error code for a hub error; the JSON drivers (`/ws`, SockJS,
/// Socket.IO) all answer with it.
pub(crate) fn error_code(e: &HubError) -> tidings_proto::json::ErrorCode {
    use tidings_proto::json::ErrorCode;
    match e {
        HubError::Denied(tidings_core::AuthError::BadCredentials) => ErrorCode::Unauthorized,
        HubError::Denied(_) => ErrorCode::Forbidden,
        HubError::ResumeUnavailable { .. } => ErrorCode::ResumeUnavailable,
        HubError::NotSubscribed(_) => ErrorCode::NotFound,
        HubError::ShuttingDown => ErrorCode::ShuttingDown,
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
