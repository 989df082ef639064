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
use super::pump::Format;
use bytes::{BufMut, Bytes, BytesMut};
use std::sync::Arc;
use tidings_core::Message;

pub(super) struct Sse;

impl Format for Sse {
    fn head(&self, feed: &Feed) -> Bytes {
        let mut head = BytesMut::from(&b"retry: 1000\n\n"[..]);
        for gap in &feed.gaps {
            let data = serde_json::json!({"type": "gap", "gap": gap}).to_string();
            head.put_slice(format!("event: gap\ndata: {data}\n\n").as_bytes());
        }
        let cursor = feed.cursor.encode();
        let hello = subscribed(&cursor, &feed.gaps);
        head.put_slice(format!("id: {cursor}\nevent: subscribed\ndata: {hello}\n\n").as_bytes());
        head.freeze()
    }

    fn batch(&self, out: &mut BytesMut, messages: &[Arc<Message>], cursor: &str) {
        for (i, msg) in messages.iter().enumerate() {
            out.put_slice(b"event: message\ndata: ");
            out.put_slice(&message_json(msg));
            // Only the last event of a batch carries the id: the browser resumes after it.
            if i + 1 == messages.len() {
                out.put_slice(b"\nid: ");
                out.put_slice(cursor.as_bytes());
            }
            out.put_slice(b"\n\n");
        }
    }

    fn slow_consumer(&self) -> &'static [u8] {
        b"event: error\ndata: {\"type\":\"error\",\"code\":\"slow_consumer\",\"message\":\"too many messages queued; reconnect to resume\"}\n\n"
    }

    fn expired(&self) -> &'static [u8] {
        b"event: error\ndata: {\"type\":\"error\",\"code\":\"token_expired\",\"message\":\"token expired; reconnect with a fresh token\"}\n\n"
    }

    fn keepalive(&self) -> &'static [u8] {
        b": keep-alive\n\n"
    }
}
