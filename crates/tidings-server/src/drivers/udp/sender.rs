//! The sender: drains the outbox of each woken subscriber address and sends its messages,
//! one `MESSAGE` datagram each, several datagrams per system call where the kernel allows.
//!
//! A message's datagram is encoded once (cached in the message) and sent as is to every UDP
//! subscriber. A message whose datagram would exceed `datagram.max_payload` is skipped and
//! counted. Sending awaits the socket, so when the kernel's send buffer is full the outboxes
//! fill up and the hub's slow-consumer policy applies (an overflowing address is dropped; its
//! client finds out on its next renewal and subscribes again).
//!
//! Batching (GSO, UDP segmentation offload): what one drain of an address's outbox yields is
//! cut into runs (`run_len`) of datagrams of one size, the last of a run possibly shorter, at
//! most `MAX_SEGMENTS` datagrams and `MAX_GSO_BYTES` bytes each, and every run is handed to
//! the kernel as one `sendmsg` with `UDP_SEGMENT`; the kernel splits it back into the same
//! datagrams, so a receiver sees exactly what one `sendto` each would have sent. The batch is
//! bounded by what is queued: a sender that keeps up sends one datagram per call; one that
//! falls behind finds more queued and sends more per call. Fallback: with `datagram.gso =
//! false`, on kernels without GSO, for datagrams above `GSO_MAX_SEGMENT` bytes, and after the
//! kernel refuses a GSO send (EIO/EINVAL: the interface cannot; `quinn-udp` then turns GSO off
//! for good), datagrams go one `sendto` each, and a refused run is resent that way.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use quinn_udp::{Transmit, UdpSocketState};
use tidings_core::{CloseReason, Delivery, EncodingSlot, Message};
use tidings_proto::udp::{self, Reply};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use super::stats::UdpStats;
use super::Endpoint;

/// Most datagrams in one GSO send (the kernel's `UDP_MAX_SEGMENTS` is 64 on older kernels).
pub(super) const MAX_SEGMENTS: usize = 64;
/// Most bytes in one GSO send: one UDP payload can carry at most 65507 (IPv4) / 65487 (IPv6).
pub(super) const MAX_GSO_BYTES: usize = 65_000;
/// Largest datagram sent by GSO: a segment must fit the path MTU (the kernel refuses the send
/// otherwise), and 1200 fits every IPv6 path. Larger datagrams go one `sendto` each.
pub(super) const GSO_MAX_SEGMENT: usize = 1200;

/// GSO support, found out once at start. `None`: one `sendto` per datagram.
pub(super) fn gso_state(enabled: bool, local: SocketAddr) -> Option<UdpSocketState> {
    if !enabled {
        return None;
    }
    let state = probe_state(local)?;
    (state.max_gso_segments() > 1).then_some(state)
}

/// quinn-udp's state for a socket bound like `local`. Its set-up also sets options on the
/// socket it is given (no fragmentation, packet info): it gets a throwaway socket of the same
/// family, so the endpoint's stays as bound.
pub(super) fn probe_state(local: SocketAddr) -> Option<UdpSocketState> {
    let any: SocketAddr = match local {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let probe = std::net::UdpSocket::bind(any).ok()?;
    UdpSocketState::new((&probe).into()).ok()
}

pub(super) async fn run(endpoint: Arc<Endpoint>) {
    let shutdown = endpoint.ctx.shutdown.clone();
    let mut work = Work::default();
    loop {
        match endpoint.ready.pop() {
            Some(addr) => flush(&endpoint, addr, &mut work).await,
            None => tokio::select! {
                _ = endpoint.ready.notify.notified() => {}
                _ = shutdown.cancelled() => break,
            },
        }
    }
    // Shutdown: the hub closed every outbox; send what they still hold, then stop.
    let addrs = endpoint.peers().addrs();
    for addr in addrs {
        flush(&endpoint, addr, &mut work).await;
    }
}

/// Buffers reused across flushes.
#[derive(Default)]
struct Work {
    batch: Vec<Delivery>,
    datagrams: Vec<Bytes>,
    gso_buf: Vec<u8>,
}

async fn flush(endpoint: &Endpoint, addr: SocketAddr, work: &mut Work) {
    let Some(outbox) = endpoint.peers().outbox(addr) else {
        return; // expired or unsubscribed since it was woken
    };
    let closed = outbox.drain_into(&mut work.batch);
    let max = endpoint.limits.max_datagram;
    let stats = endpoint.stats();
    // The same message reaches an address once per matching subscription (`chat.*` and
    // `chat.lobby`); send it once when the copies are adjacent, as they nearly always are.
    let mut last: Option<Arc<Message>> = None;
    for delivery in work.batch.drain(..) {
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
        work.datagrams.push(msg.encoded(EncodingSlot::Udp, encode));
        last = Some(msg);
    }
    let mut start = 0;
    while start < work.datagrams.len() {
        let segments = endpoint
            .gso
            .as_ref()
            .map_or(1, |g| g.max_gso_segments().min(MAX_SEGMENTS));
        let n = run_len(&work.datagrams[start..], segments, MAX_GSO_BYTES);
        let run = &work.datagrams[start..start + n];
        let gso = endpoint.gso.as_ref();
        send_run(&endpoint.socket, gso, stats, addr, run, &mut work.gso_buf).await;
        start += n;
    }
    work.datagrams.clear();
    if closed == Some(CloseReason::SlowConsumer) && endpoint.peers().remove(addr) {
        UdpStats::bump(&stats.slow_dropped);
    }
}

/// How many datagrams from the front of `queue` (not empty) make one GSO send: every one of
/// the first one's size, then at most one shorter one, which ends the run (GSO's rule: equal
/// segments, the last may be shorter); at most `max_segments` datagrams and `max_bytes` bytes.
/// A first datagram above `GSO_MAX_SEGMENT` goes alone.
pub(super) fn run_len<B: AsRef<[u8]>>(queue: &[B], max_segments: usize, max_bytes: usize) -> usize {
    let Some(first) = queue.first().map(|d| d.as_ref().len()) else {
        return 0;
    };
    if first > GSO_MAX_SEGMENT {
        return 1;
    }
    let (mut n, mut bytes) = (1, first);
    while n < queue.len() && n < max_segments {
        let len = queue[n].as_ref().len();
        if len > first || len == 0 || bytes + len > max_bytes {
            break;
        }
        n += 1;
        bytes += len;
        if len < first {
            break;
        }
    }
    n
}

/// Sends one run to `addr`: one GSO send when it holds several datagrams and GSO is on,
/// else (or when the kernel refuses the GSO send) one `sendto` per datagram.
pub(super) async fn send_run(
    socket: &UdpSocket,
    gso: Option<&UdpSocketState>,
    stats: &UdpStats,
    addr: SocketAddr,
    run: &[Bytes],
    buf: &mut Vec<u8>,
) {
    if let (Some(gso), true) = (gso, run.len() > 1) {
        buf.clear();
        run.iter().for_each(|d| buf.extend_from_slice(d));
        let transmit = Transmit {
            destination: addr,
            ecn: None,
            contents: buf,
            segment_size: Some(run[0].len()),
            src_ip: None,
        };
        let sent = socket
            .async_io(Interest::WRITABLE, || {
                gso.try_send(socket.into(), &transmit)
            })
            .await;
        match sent {
            Ok(()) => {
                UdpStats::bump(&stats.gso_sends);
                UdpStats::add(&stats.messages_sent, run.len() as u64);
                return;
            }
            Err(e) => {
                // EIO/EINVAL: quinn-udp has now turned GSO off for later runs.
                UdpStats::bump(&stats.gso_fallbacks);
                tracing::debug!("udp: GSO send of {} datagrams refused: {e}", run.len());
            }
        }
    }
    for datagram in run {
        match socket.send_to(datagram, addr).await {
            Ok(_) => UdpStats::bump(&stats.messages_sent),
            Err(_) => UdpStats::bump(&stats.send_errors),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sizes(sizes: &[usize]) -> Vec<Vec<u8>> {
        sizes.iter().map(|&n| vec![0u8; n]).collect()
    }

    #[test]
    fn run_takes_equal_sizes_and_one_shorter_last() {
        assert_eq!(run_len(&sizes(&[100, 100, 100]), 64, MAX_GSO_BYTES), 3);
        assert_eq!(run_len(&sizes(&[100, 100, 80, 100]), 64, MAX_GSO_BYTES), 3);
        assert_eq!(run_len(&sizes(&[100, 80, 80]), 64, MAX_GSO_BYTES), 2);
        assert_eq!(run_len(&sizes(&[100, 120, 100]), 64, MAX_GSO_BYTES), 1);
        assert_eq!(run_len(&sizes(&[100]), 64, MAX_GSO_BYTES), 1);
        assert_eq!(run_len::<Vec<u8>>(&[], 64, MAX_GSO_BYTES), 0);
    }

    #[test]
    fn run_is_bounded_by_segments_bytes_and_segment_size() {
        assert_eq!(run_len(&sizes(&[100; 200]), 64, MAX_GSO_BYTES), 64);
        assert_eq!(run_len(&sizes(&[100; 200]), 1, MAX_GSO_BYTES), 1);
        assert_eq!(run_len(&sizes(&[1100; 200]), 64, MAX_GSO_BYTES), 59);
        assert_eq!(run_len(&sizes(&[1000; 200]), 64, 10_000), 10);
        assert_eq!(run_len(&sizes(&[1300; 4]), 64, MAX_GSO_BYTES), 1);
    }

    /// Sends `run` from a fresh socket (with SO_NO_CHECK if `refuse`: Linux then refuses GSO
    /// sends with EINVAL, as a device without offload does with EIO) to a receiver without
    /// GRO; returns what it received, datagram by datagram, and the counters.
    async fn send_and_receive(run: &[Bytes], refuse: bool) -> (Vec<Vec<u8>>, UdpStats, usize) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let receiver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        if refuse {
            nix::sys::socket::setsockopt(&socket, NoCheck, &true).unwrap();
        }
        let gso = gso_state(true, socket.local_addr().unwrap());
        let stats = UdpStats::default();
        let to = receiver.local_addr().unwrap();
        send_run(&socket, gso.as_ref(), &stats, to, run, &mut Vec::new()).await;
        // Later runs after a refusal: GSO stays off.
        let segments = gso.as_ref().map_or(1, |g| g.max_gso_segments());
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(300), receiver.recv(&mut buf)).await
        {
            got.push(buf[..n].to_vec());
        }
        (got, stats, segments)
    }

    use nix::{getsockopt_impl, libc, setsockopt_impl, sockopt_impl};
    sockopt_impl!(NoCheck, Both, libc::SOL_SOCKET, libc::SO_NO_CHECK, bool);

    fn run_of(sizes: &[usize]) -> Vec<Bytes> {
        let mut i = 0u8;
        sizes
            .iter()
            .map(|&n| {
                i += 1;
                Bytes::from(vec![i; n])
            })
            .collect()
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn one_gso_send_arrives_as_the_same_datagrams() {
        let run = run_of(&[60, 60, 60, 60, 60, 60, 60, 21]);
        let (got, stats, _) = send_and_receive(&run, false).await;
        assert_eq!(got, run.iter().map(|d| d.to_vec()).collect::<Vec<_>>());
        assert_eq!(UdpStats::get(&stats.gso_sends), 1);
        assert_eq!(UdpStats::get(&stats.messages_sent), 8);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_refused_gso_send_goes_again_one_datagram_at_a_time() {
        let run = run_of(&[60, 60, 60, 60, 33]);
        let (got, stats, segments) = send_and_receive(&run, true).await;
        assert_eq!(got, run.iter().map(|d| d.to_vec()).collect::<Vec<_>>());
        assert_eq!(UdpStats::get(&stats.gso_sends), 0);
        assert_eq!(UdpStats::get(&stats.gso_fallbacks), 1);
        assert_eq!(UdpStats::get(&stats.messages_sent), 5);
        assert_eq!(segments, 1, "GSO stays off after the kernel refused it");
    }
}
