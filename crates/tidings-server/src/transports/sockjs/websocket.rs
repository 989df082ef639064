//! SockJS over WebSocket: `/<server>/<session>/websocket` frames every message the SockJS way
//! (`o`, `h`, `a[...]`, `c[...]`); the client sends JSON arrays of strings (or one string).
//! Broken JSON ends the connection, as SockJS specifies.

use super::frame;
use super::send::xhr_body;
use super::session::{Attach, SockSession};
use crate::transports::ws::{Close, OutFrame, WsConn, WsMessage};
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

/// `<prefix>/websocket`: the same application over a plain WebSocket, without SockJS framing:
/// each text message is one SockJS message each way.
pub(crate) async fn serve_raw(mut conn: WsConn, session: Arc<SockSession>) {
    let _ = session.attach();
    let _ = session.attach(); // a raw WebSocket is the session's only receiver
    let mut quoted = Vec::new();
    loop {
        tokio::select! {
            biased;
            _ = session.wake.notified() => {
                let closed = session.drain_quoted(&mut quoted);
                // Messages were quoted for SockJS framing; a raw WebSocket carries them bare.
                let frames = quoted
                    .drain(..)
                    .filter_map(|q| serde_json::from_slice::<String>(&q).ok())
                    .map(|text| OutFrame::Text(Bytes::from(text)));
                if conn.send_all(frames).await.is_err() {
                    break;
                }
                if let Some(c) = closed {
                    conn.close(Close::Application(c.code), c.reason).await;
                    break;
                }
            }
            msg = conn.recv() => match msg {
                Ok(WsMessage::Text(text)) => {
                    session.receive(&[String::from_utf8_lossy(&text).into_owned()])
                }
                Ok(WsMessage::Binary(_)) => break,
                Ok(WsMessage::Control) => {}
                Err(_) => break,
            },
        }
    }
    session.detach();
}
