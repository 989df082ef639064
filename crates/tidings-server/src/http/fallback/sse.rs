//! `GET /sse`: Server-Sent Events (the HTML EventSource format).
//!
//! ```text
//! retry: 1000
//! event: subscribed          (data: {"type":"subscribed","cursor":...,"gaps":[...]}, id: cursor)
//! event: gap                 (one per topic whose missed messages history no longer holds)
//! event: message             (data: the message object; the last of each batch carries id: cursor)
//! : keep-alive               (a comment every keepalive_secs)
//! ```
//! The event id is the cursor, so a browser's automatic reconnect sends it back as
//! `Last-Event-ID` and resumes exactly after the last message it got.

use super::encode::{message_json, subscribed};
use super::feed::Feed;
use crate::http::streamed::Streamed;
use bytes::{BufMut, Bytes, BytesMut};
use tidings_core::CloseReason;

pub(super) async fn run(mut feed: Feed, out: Streamed, limit: usize) {
    let mut sent = 0usize;
    let mut head = BytesMut::from(&b"retry: 1000\n\n"[..]);
    for gap in &feed.gaps {
        let data = serde_json::json!({"type": "gap", "gap": gap}).to_string();
        head.put_slice(format!("event: gap\ndata: {data}\n\n").as_bytes());
    }
    let cursor = feed.cursor.encode();
    head.put_slice(
        format!(
            "id: {cursor}\nevent: subscribed\ndata: {}\n\n",
            subscribed(&cursor, &feed.gaps)
        )
        .as_bytes(),
    );
    if !out.send(head.freeze()).await {
        return;
    }
    loop {
        tokio::select! {
            biased;
            _ = feed.wake.notified() => {
                let batch = feed.drain();
                let mut chunk = BytesMut::new();
                let n = batch.messages.len();
                for (i, msg) in batch.messages.iter().enumerate() {
                    chunk.put_slice(b"event: message\ndata: ");
                    chunk.put_slice(&message_json(msg));
                    if i + 1 == n {
                        chunk.put_slice(format!("\nid: {}", feed.cursor.encode()).as_bytes());
                    }
                    chunk.put_slice(b"\n\n");
                }
                if let Some(CloseReason::SlowConsumer) = batch.closed {
                    chunk.put_slice(b"event: error\ndata: {\"type\":\"error\",\"code\":\"slow_consumer\",\"message\":\"too many messages queued; reconnect to resume\"}\n\n");
                }
                sent += chunk.len();
                // Past the response limit the response ends; the client reconnects with its
                // cursor and resumes (proxies that buffer whole responses need this).
                if !chunk.is_empty() && !out.send(chunk.freeze()).await || batch.closed.is_some() || sent >= limit {
                    return;
                }
            }
            _ = out.keepalive() => {
                if !out.send(Bytes::from_static(b": keep-alive\n\n")).await {
                    return;
                }
            }
            _ = out.gone() => return,
        }
    }
}
