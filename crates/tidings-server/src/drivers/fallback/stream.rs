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
use super::pump::Format;
use bytes::{BufMut, Bytes, BytesMut};
use std::sync::Arc;
use tidings_core::Message;

pub(super) struct Ndjson;

impl Format for Ndjson {
    fn head(&self, feed: &Feed) -> Bytes {
        Bytes::from(format!(
            "{}\n",
            subscribed(&feed.cursor.encode(), &feed.gaps)
        ))
    }

    fn batch(&self, out: &mut BytesMut, messages: &[Arc<Message>], cursor: &str) {
        for msg in messages {
            out.put_slice(&message_json(msg));
            out.put_u8(b'\n');
        }
        out.put_slice(format!("{{\"type\":\"cursor\",\"cursor\":\"{cursor}\"}}\n").as_bytes());
    }

    fn slow_consumer(&self) -> &'static [u8] {
        b"{\"type\":\"error\",\"code\":\"slow_consumer\",\"message\":\"too many messages queued; reconnect with the cursor to resume\"}\n"
    }

    fn expired(&self) -> &'static [u8] {
        b"{\"type\":\"error\",\"code\":\"token_expired\",\"message\":\"token expired; reconnect with a fresh token and the cursor\"}\n"
    }

    fn keepalive(&self) -> &'static [u8] {
        b"{\"type\":\"ping\"}\n"
    }
}
