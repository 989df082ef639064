//! The sender: drains the outbox of each woken subscriber address and sends every message
//! as one `MESSAGE` datagram.
//!
//! A message's datagram is encoded once (cached in the message) and sent as is to every UDP
//! subscriber. A message whose datagram would exceed `datagram.max_payload` is skipped and
//! counted. Sending awaits the socket, so when the kernel's send buffer is full the outboxes
//! fill up and the hub's slow-consumer policy applies (an overflowing address is dropped; its
//! client finds out on its next renewal and subscribes again).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tidings_core::{CloseReason, Delivery, EncodingSlot, Message};
use tidings_proto::udp::{self, Reply};

use super::stats::UdpStats;
use super::Endpoint;

pub(super) async fn run(endpoint: Arc<Endpoint>) {
    let shutdown = endpoint.ctx.shutdown.clone();
    let mut batch = Vec::new();
    loop {
        match endpoint.ready.pop() {
            Some(addr) => flush(&endpoint, addr, &mut batch).await,
            None => tokio::select! {
                _ = endpoint.ready.notify.notified() => {}
                _ = shutdown.cancelled() => break,
            },
        }
    }
    // Shutdown: the hub closed every outbox; send what they still hold, then stop.
    let addrs = endpoint.peers().addrs();
    for addr in addrs {
        flush(&endpoint, addr, &mut batch).await;
    }
}

async fn flush(endpoint: &Endpoint, addr: SocketAddr, batch: &mut Vec<Delivery>) {
    let Some(outbox) = endpoint.peers().outbox(addr) else {
        return; // expired or unsubscribed since it was woken
    };
    let closed = outbox.drain_into(batch);
    let max = endpoint.limits.max_datagram;
    let stats = endpoint.stats();
    // The same message reaches an address once per matching subscription (`chat.*` and
    // `chat.lobby`); send it once when the copies are adjacent, as they nearly always are.
    let mut last: Option<Arc<Message>> = None;
    for delivery in batch.drain(..) {
        let Delivery::Message { msg, .. } = delivery else {
            continue; // UDP subscriptions ask for no presence and get no queued replies
        };
        if last.as_ref().is_some_and(|l| Arc::ptr_eq(l, &msg)) {
            continue;
        }
        if udp::message_len(&msg.topic, &msg.epoch, &msg.payload) > max {
            UdpStats::bump(&stats.oversize);
            last = Some(msg);
            continue;
        }
        let datagram = msg.encoded(EncodingSlot::Udp, encode);
        last = Some(msg);
        match endpoint.socket.send_to(&datagram, addr).await {
            Ok(_) => UdpStats::bump(&stats.messages_sent),
            Err(_) => UdpStats::bump(&stats.send_errors),
        }
    }
    if closed == Some(CloseReason::SlowConsumer) && endpoint.peers().remove(addr) {
        UdpStats::bump(&stats.slow_dropped);
    }
}

/// The `MESSAGE` datagram of `m`.
fn encode(m: &Message) -> Bytes {
    let kind = crate::drivers::wire_kind(m.kind);
    let mut out = Vec::with_capacity(udp::message_len(&m.topic, &m.epoch, &m.payload));
    udp::encode_reply(
        &Reply::Message {
            kind,
            offset: m.offset,
            epoch: &m.epoch,
            topic: &m.topic,
            payload: &m.payload,
        },
        &mut out,
    );
    Bytes::from(out)
}
