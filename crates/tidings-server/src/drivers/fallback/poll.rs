//! `GET /poll`: long-polling. Answers at once when there is something newer than the request's
//! cursor (or `since`), otherwise holds the request until a message arrives or the timeout.
//!
//! ```text
//! {"messages":[{"type":"message",...},...],"cursor":"...","gaps":[...]}
//! ```
//! The next poll passes `cursor=` back; the cursor holds the whole position, so any server
//! can answer it.

use super::encode::{json_array, message_json};
use super::feed::Feed;
use crate::transports::http::{json_bytes, Body};
use bytes::{BufMut, BytesMut};
use hyper::{Response, StatusCode};
use std::time::Duration;

/// How long to wait for more messages after the first one arrives, so a burst is answered in
/// one response instead of one poll per message.
const LINGER: Duration = Duration::from_millis(5);

pub(super) async fn run(mut feed: Feed, hold: Duration) -> Response<Body> {
    let deadline = tokio::time::Instant::now() + hold;
    let mut batch = feed.drain();
    // A wake-up may be stale (its message was already drained), so wait until something is
    // really there or the hold time is over.
    while batch.messages.is_empty() && batch.closed.is_none() {
        if tokio::time::timeout_at(deadline, feed.wake.notified())
            .await
            .is_err()
        {
            break;
        }
        tokio::time::sleep(LINGER).await;
        batch = feed.drain();
    }
    let mut body = BytesMut::from(&b"{\"messages\":"[..]);
    json_array(&mut body, batch.messages.iter().map(message_json));
    body.put_slice(format!(",\"cursor\":\"{}\",\"gaps\":", feed.cursor.encode()).as_bytes());
    body.put_slice(
        serde_json::to_string(&feed.gaps)
            .unwrap_or_else(|_| "[]".into())
            .as_bytes(),
    );
    body.put_u8(b'}');
    json_bytes(StatusCode::OK, body.freeze())
}
