//! `/echo`: sends every message back unchanged, for conformance suites such as Autobahn.

use super::{Close, OutFrame, WsConn, WsMessage};
use tokio_util::sync::CancellationToken;

pub(crate) async fn serve(mut conn: WsConn, shutdown: CancellationToken) {
    loop {
        let msg = tokio::select! {
            m = conn.recv() => m,
            _ = shutdown.cancelled() => {
                conn.close(Close::GoingAway, "server shutting down").await;
                return;
            }
        };
        let out = match msg {
            Ok(WsMessage::Text(b)) => OutFrame::Text(b),
            Ok(WsMessage::Binary(b)) => OutFrame::Binary(b),
            Ok(WsMessage::Control) => continue,
            Err(_) => return,
        };
        if conn.send_all([out]).await.is_err() {
            return;
        }
    }
}
