//! SockJS over WebSocket: `/<server>/<session>/websocket` frames every message the SockJS way
//! (`o`, `h`, `a[...]`, `c[...]`); the client sends JSON arrays of strings (or one string).
//! Broken JSON ends the connection, as SockJS specifies.

use super::frame;
use super::send::xhr_body;
use super::session::{Attach, SockSession};
use crate::ws::{Close, OutFrame, WsConn, WsMessage};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

pub(crate) async fn serve(mut conn: WsConn, session: Arc<SockSession>, heartbeat: Duration) {
    let _ = session.attach(); // opens it; a WebSocket session has no other receiver
    if conn
        .send_all([OutFrame::Text(Bytes::from_static(frame::OPEN))])
        .await
        .is_err()
    {
        return;
    }
    if let Attach::Closed(close) = session.attach() {
        let _ = conn.send_all([OutFrame::Text(close)]).await;
        return conn.close(Close::Normal, "").await;
    }
    loop {
        tokio::select! {
            biased;
            _ = session.wake.notified() => {
                let drained = session.drain();
                let frames = drained.messages.into_iter().chain(drained.close.clone()).map(OutFrame::Text);
                if conn.send_all(frames).await.is_err() {
                    break;
                }
                if drained.close.is_some() {
                    conn.close(Close::Normal, "").await;
                    break;
                }
            }
            msg = conn.recv() => match msg {
                Ok(WsMessage::Text(text)) => match xhr_body(&text) {
                    Ok(messages) => session.receive(&messages),
                    Err(super::send::SendError::PayloadExpected) => {}
                    Err(_) => break, // broken JSON: SockJS drops the connection
                },
                Ok(WsMessage::Binary(_)) => break,
                Ok(WsMessage::Control) => {}
                Err(_) => break,
            },
            _ = tokio::time::sleep(heartbeat) => {
                if conn.send_all([OutFrame::Text(Bytes::from_static(frame::HEARTBEAT))]).await.is_err() {
                    break;
                }
            }
        }
    }
    session.detach();
}
