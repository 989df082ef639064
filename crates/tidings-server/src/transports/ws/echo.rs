//! `/echo`: sends every message back unchanged, for conformance suites such as Autobahn.
//!
//! Everything one read brought is echoed with one write (at most [`MAX_BATCH`] messages):
//! a client with several messages in flight gets them back together, not one syscall each.
//! Each echo is fed to yawc before the next message is read, so a close that came in the
//! same read is answered after the echoes (see `WsConn::recv_ready`).

use super::{Close, OutFrame, WsConn, WsMessage};
use tokio_util::sync::CancellationToken;

/// Most messages echoed with one flush.
const MAX_BATCH: usize = 64;

pub(crate) async fn serve(mut conn: WsConn, shutdown: CancellationToken) {
    loop {
        let msg = tokio::select! {
            m = conn.recv() => m,
            _ = shutdown.cancelled() => {
                conn.close(Close::GoingAway, "server shutting down").await;
                return;
            }
        };
        let Ok(mut msg) = msg else { return };
        let mut fed = 0;
        loop {
            let echo = match msg {
                WsMessage::Text(b) => Some(OutFrame::Text(b)),
                WsMessage::Binary(b) => Some(OutFrame::Binary(b)),
                WsMessage::Control => None,
            };
            if let Some(echo) = echo {
                if conn.feed(echo).await.is_err() {
                    return;
                }
                fed += 1;
            }
            if fed == MAX_BATCH {
                break;
            }
            match conn.recv_ready() {
                Some(next) => msg = next,
                None => break,
            }
        }
        if conn.flush().await.is_err() {
            return;
        }
    }
}
