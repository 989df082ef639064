//! Receiving in batches: many datagrams per system call (`recvmmsg`, through `quinn-udp`),
//! and with UDP GRO (generic receive offload, `datagram.gso`) several datagrams of one
//! sender in one buffer, cut back into the datagrams they were by their segment size.
//!
//! What the endpoint then does with each datagram is unchanged: every datagram is counted,
//! rate limited and decoded on its own, so a batch is only a cheaper way to fetch them.
//!
//! Bounded: `SLOTS` buffers, each as large as one datagram (`max_payload + 1`, so an
//! oversized datagram is seen as such rather than cut to a valid-looking one) or, with GRO,
//! as large as the largest coalesced buffer the kernel hands over (64 KiB): at most 2 MiB
//! for the endpoint, allocated once.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;

use quinn_udp::{RecvMeta, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Buffers handed to one `recvmmsg` (`quinn_udp::BATCH_SIZE` is 32 on Linux).
const SLOTS: usize = quinn_udp::BATCH_SIZE;
/// A GRO buffer holds up to 64 segments of one sender, at most one UDP payload (65 507
/// bytes) in all; smaller and the kernel would cut it.
const GRO_SLOT: usize = 1 << 16;

/// Reusable buffers for batched receives.
pub(super) struct Batch {
    /// `None` where `quinn-udp` cannot set up (then one `recv_from` per call).
    state: Option<UdpSocketState>,
    slot: usize,
    buf: Vec<u8>,
    meta: Vec<RecvMeta>,
}

impl Batch {
    /// Turns GRO on for `socket` when `gro` asks for it and the kernel has it.
    pub(super) fn new(socket: &UdpSocket, gro: bool, max_payload: usize) -> Batch {
        // As for GSO (`sender::gso_state`), quinn-udp's set-up sets options on the socket it
        // is given: give it a throwaway one, so the endpoint's stays as bound. Its `recv` only
        // needs the state for platforms without `recvmmsg`.
        let state = socket
            .local_addr()
            .ok()
            .and_then(super::sender::probe_state);
        let gro = gro && state.is_some() && enable_gro(socket);
        let slot = if gro { GRO_SLOT } else { max_payload + 1 };
        let slots = if state.is_some() { SLOTS } else { 1 };
        tracing::debug!("udp: receiving {slots} datagrams per call, GRO {gro}");
        Batch {
            state,
            slot,
            buf: vec![0; slot * slots],
            meta: vec![RecvMeta::default(); slots],
        }
    }

    /// Receives what the socket holds now (call after `socket.readable()`) and hands each
    /// datagram to `each`. Returns how many it handed over; `WouldBlock` when there was
    /// nothing (readiness was stale).
    pub(super) fn receive(
        &mut self,
        socket: &UdpSocket,
        mut each: impl FnMut(&[u8], SocketAddr),
    ) -> io::Result<usize> {
        let Some(state) = &self.state else {
            let (n, from) = socket.try_recv_from(&mut self.buf)?;
            each(&self.buf[..n], from);
            return Ok(1);
        };
        let slot = self.slot;
        let mut chunks = self.buf.chunks_mut(slot);
        let mut slices: [IoSliceMut<'_>; SLOTS] =
            std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
        let meta = &mut self.meta;
        let filled = socket.try_io(Interest::READABLE, || {
            state.recv(socket.into(), &mut slices, meta)
        })?;
        let mut datagrams = 0;
        for (meta, slice) in meta.iter().zip(slices.iter()).take(filled) {
            for datagram in segments(&slice[..meta.len.min(slot)], meta.stride) {
                each(datagram, meta.addr);
                datagrams += 1;
            }
        }
        Ok(datagrams)
    }
}

/// The datagrams of one received buffer: GRO joins datagrams of `stride` bytes each (the last
/// possibly shorter); without GRO `stride` is the whole length. An empty datagram is a
/// datagram too (to be refused as malformed), though `chunks` would yield nothing for it.
fn segments(buf: &[u8], stride: usize) -> impl Iterator<Item = &[u8]> {
    let stride = if stride == 0 { buf.len() } else { stride }.max(1);
    let empty = buf.is_empty().then_some(buf);
    empty.into_iter().chain(buf.chunks(stride))
}

#[cfg(target_os = "linux")]
fn enable_gro(socket: &UdpSocket) -> bool {
    nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::UdpGroSegment, &true).is_ok()
}

#[cfg(not(target_os = "linux"))]
fn enable_gro(_socket: &UdpSocket) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn segments_cut_at_the_stride_with_a_shorter_last() {
        let buf = [1u8, 1, 2, 2, 3];
        let got: Vec<&[u8]> = segments(&buf, 2).collect();
        assert_eq!(got, vec![&[1u8, 1][..], &[2, 2], &[3]]);
        let whole: Vec<&[u8]> = segments(&buf, 5).collect();
        assert_eq!(whole, vec![&buf[..]]);
        let empty: Vec<&[u8]> = segments(&[], 0).collect();
        assert_eq!(empty, vec![&[0u8; 0][..]]);
    }

    /// Receives until `n` datagrams arrived (or 2 s passed); returns them and the calls made.
    async fn receive_all(socket: &UdpSocket, batch: &mut Batch, n: usize) -> (Vec<Vec<u8>>, usize) {
        let mut got = Vec::new();
        let mut calls = 0;
        let until = tokio::time::Instant::now() + Duration::from_secs(2);
        while got.len() < n {
            tokio::time::timeout_at(until, socket.readable())
                .await
                .expect("the datagrams arrive")
                .unwrap();
            match batch.receive(socket, |d, _| got.push(d.to_vec())) {
                Ok(_) => calls += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("receive: {e}"),
            }
        }
        (got, calls)
    }

    #[tokio::test]
    async fn a_gso_send_arrives_as_the_datagrams_it_was() {
        let receiver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut batch = Batch::new(&receiver, true, 1200);
        let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let Some(gso) = super::super::sender::gso_state(true, sender.local_addr().unwrap()) else {
            eprintln!("SKIPPED: the kernel has no GSO");
            return;
        };
        let run: Vec<bytes::Bytes> = [b"aaaa".as_slice(), b"bbbb", b"cc"]
            .iter()
            .map(|d| bytes::Bytes::copy_from_slice(d))
            .collect();
        let stats = super::super::stats::UdpStats::default();
        let to = receiver.local_addr().unwrap();
        super::super::sender::send_run(&sender, Some(&gso), &stats, to, &run, &mut Vec::new())
            .await;
        let (got, calls) = receive_all(&receiver, &mut batch, 3).await;
        assert_eq!(
            got,
            vec![b"aaaa".to_vec(), b"bbbb".to_vec(), b"cc".to_vec()]
        );
        if batch.slot == GRO_SLOT {
            assert_eq!(calls, 1, "with GRO one GSO send is one buffer");
        }
    }

    #[tokio::test]
    async fn datagrams_of_several_senders_come_in_one_call_and_oversize_stays_visible() {
        let receiver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut batch = Batch::new(&receiver, false, 8);
        let to = receiver.local_addr().unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        a.send_to(b"one", to).await.unwrap();
        b.send_to(b"two", to).await.unwrap();
        a.send_to(b"far too long", to).await.unwrap();
        a.send_to(b"", to).await.unwrap();
        let (got, calls) = receive_all(&receiver, &mut batch, 4).await;
        // Cut to max_payload + 1: the endpoint sees it is too long and refuses it.
        assert_eq!(
            got,
            vec![
                b"one".to_vec(),
                b"two".to_vec(),
                b"far too l".to_vec(),
                vec![]
            ]
        );
        if batch.state.is_some() {
            assert!(
                calls < 4,
                "recvmmsg takes several datagrams per call ({calls} calls)"
            );
        }
    }
}
