//! The loop shared by the streamed transports (`/sse`, `/stream`): write the head, then every
//! batch the feed drains, keep-alives when quiet, and end at the response limit, when the
//! token expires, on a slow consumer, at shutdown, or when the client is gone. Only the
//! framing differs ([`Format`]).

use super::feed::Feed;
use crate::transports::http::streamed::Streamed;
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use tidings_core::{CloseReason, Message};

/// How one streamed transport frames what the feed produces.
pub(super) trait Format {
    /// What opens the response (subscribed event, gaps).
    fn head(&self, feed: &Feed) -> Bytes;
    /// Appends a batch of messages; `cursor` is the position after the last of them.
    fn batch(&self, out: &mut BytesMut, messages: &[Arc<Message>], cursor: &str);
    /// The last words to a slow consumer.
    fn slow_consumer(&self) -> &'static [u8];
    /// The last words when the token expires.
    fn expired(&self) -> &'static [u8];
    /// Sent after a quiet keep-alive period.
    fn keepalive(&self) -> &'static [u8];
}

pub(super) async fn run(mut feed: Feed, out: Streamed, limit: usize, format: impl Format) {
    if !out.send(format.head(&feed)).await {
        return;
    }
    let mut sent = 0usize;
    let expires = feed.expires;
    let expired = async {
        match expires {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expired);
    loop {
        tokio::select! {
            biased;
            _ = feed.wake.notified() => {
                let batch = feed.drain();
                let mut chunk = BytesMut::new();
                if !batch.messages.is_empty() {
                    format.batch(&mut chunk, &batch.messages, &feed.cursor.encode());
                }
                if let Some(CloseReason::SlowConsumer) = batch.closed {
                    chunk.extend_from_slice(format.slow_consumer());
                }
                sent += chunk.len();
                // Past the response limit the response ends; the client reconnects with its
                // cursor and resumes (proxies that buffer whole responses need this).
                if !chunk.is_empty() && !out.send(chunk.freeze()).await || batch.closed.is_some() || sent >= limit {
                    return;
                }
            }
            _ = out.keepalive() => {
                if !out.send(Bytes::from_static(format.keepalive())).await {
                    return;
                }
            }
            _ = &mut expired => {
                let _ = out.send(Bytes::from_static(format.expired())).await;
                return;
            }
            _ = out.gone() => return,
        }
    }
}
