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
use tidings_core::{HubError, Session};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Opens a hub session whose outbox wakes the returned `Notify` when it has something to
/// write; the driver's task waits on it.
pub(crate) fn open_session(shared: &Shared) -> Result<(Session, Arc<Notify>), HubError> {
    let wake = Arc::new(Notify::new());
    let waker = wake.clone();
    let session = shared
        .hub
        .open_session(Box::new(move || waker.notify_one()))?;
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
