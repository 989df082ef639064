//! `GET /stream`: chunked HTTP streaming of newline-delimited JSON.
//!
//! ```text
//! {"type":"subscribed","cursor":"...","gaps":[...]}
//! {"type":"message","topic":"chat.lobby","offset":7,"epoch":"...","text":"hi"}
//! {"type":"cursor","cursor":"..."}          after each batch: pass it back as ?cursor= to resume
//! {"type":"ping"}                          every keepalive_secs
//! ```

use super::encode::{message_json, subscribed};
use super::feed::Feed;
use crate::http::streamed::Streamed;
use bytes::{BufMut, Bytes, BytesMut};
use tidings_core::CloseReason;

pub(super) async fn run(mut feed: Feed, out: Streamed, limit: usize) {
    let mut sent = 0usize;
    let first = format!("{}\n", subscribed(&feed.cursor.encode(), &feed.gaps));
    if !out.send(Bytes::from(first)).await {
        return;
    }
    loop {
        tokio::select! {
            biased;
            _ = feed.wake.notified() => {
                let batch = feed.drain();
                let mut chunk = BytesMut::new();
                for msg in &batch.messages {
                    chunk.put_slice(&message_json(msg));
                    chunk.put_u8(b'\n');
                }
                if !batch.messages.is_empty() {
                    chunk.put_slice(format!("{{\"type\":\"cursor\",\"cursor\":\"{}\"}}\n", feed.cursor.encode()).as_bytes());
                }
                if let Some(CloseReason::SlowConsumer) = batch.closed {
                    chunk.put_slice(b"{\"type\":\"error\",\"code\":\"slow_consumer\",\"message\":\"too many messages queued; reconnect with the cursor to resume\"}\n");
                }
                sent += chunk.len();
                // Past the response limit the response ends; the client reconnects with its
                // cursor and resumes (proxies that buffer whole responses need this).
                if !chunk.is_empty() && !out.send(chunk.freeze()).await || batch.closed.is_some() || sent >= limit {
                    return;
                }
            }
            _ = out.keepalive() => {
                if !out.send(Bytes::from_static(b"{\"type\":\"ping\"}\n")).await {
                    return;
                }
            }
            _ = out.gone() => return,
        }
    }
}
