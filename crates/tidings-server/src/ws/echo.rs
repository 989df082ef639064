//! `/echo`: sends every message back unchanged, for conformance suites such as Autobahn.
//!
//! Everything one read brought is echoed with one write (at most [`MAX_BATCH`] messages):
//! a client with several messages in flight gets them back together, not one syscall each.

use super::{Close, OutFrame, WsConn, WsMessage};
use tokio_util::sync::CancellationToken;

/// Most messages echoed with one flush; bounds the batch (each message is bounded by
/// `websocket.max_message`).
const MAX_BATCH: usize = 64;

pub(crate) async fn serve(mut conn: WsConn, shutdown: CancellationToken) {
    let mut batch = Vec::new();
    loop {
        let msg = tokio::select! {
            m = conn.recv() => m,
            _ = shutdown.cancelled() => {
                conn.close(Close::GoingAway, "server shutting down").await;
                return;
            }
        };
        if push(&mut batch, msg) {
            return;
        }
        while batch.len() < MAX_BATCH {
            match conn.recv_ready() {
                Some(msg) => _ = push(&mut batch, Ok(msg)),
                None => break,
            }
        }
        if conn.send_all(batch.drain(..)).await.is_err() {
            return;
        }
    }
}

/// Queues an echo of `msg`; true when the connection has ended.
fn push(batch: &mut Vec<OutFrame>, msg: Result<WsMessage, super::WsClosed>) -> bool {
    match msg {
        Ok(WsMessage::Text(b)) => batch.push(OutFrame::Text(b)),
        Ok(WsMessage::Binary(b)) => batch.push(OutFrame::Binary(b)),
        Ok(WsMessage::Control) => {}
        Err(_) => return true,
    }
    false
}
