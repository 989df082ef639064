//! Protocol drivers: each joins one transport's decoded frames to the hub and writes the
//! session's outbox back in its protocol, coalescing everything queued into one write.

pub(crate) mod json_ws;
pub(crate) mod line;
pub(crate) mod socketio;
pub(crate) mod stomp;
pub(crate) mod udp;

use crate::runtime::Shared;
use std::sync::Arc;
use tidings_core::{HubError, Session};
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
