//! A captured frame read into what the tap needs: addresses, TCP flags and sequence numbers,
//! payload. etherparse does the parsing; anything that is not TCP or UDP over IP is `None`.

use std::net::{IpAddr, SocketAddr};

use etherparse::{NetSlice, SlicedPacket, TransportSlice};

/// TCP flags the tap shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Flags {
    pub(crate) syn: bool,
    pub(crate) ack: bool,
    pub(crate) fin: bool,
    pub(crate) rst: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Transport<'a> {
    Tcp {
        seq: u32,
        flags: Flags,
        payload: &'a [u8],
    },
    Udp {
        payload: &'a [u8],
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Packet<'a> {
    pub(crate) src: SocketAddr,
    pub(crate) dst: SocketAddr,
    pub(crate) transport: Transport<'a>,
}

/// Reads an Ethernet II frame; `None` for anything but TCP/UDP over IPv4/IPv6 (and for
/// fragments, whose transport header etherparse cannot see).
pub(crate) fn parse(frame: &[u8]) -> Option<Packet<'_>> {
    let sliced = SlicedPacket::from_ethernet(frame).ok()?;
    let (src, dst): (IpAddr, IpAddr) = match sliced.net? {
        NetSlice::Ipv4(ip) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        NetSlice::Ipv6(ip) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        _ => return None,
    };
    let (sport, dport, transport) = match sliced.transport? {
        TransportSlice::Tcp(tcp) => (
            tcp.source_port(),
            tcp.destination_port(),
            Transport::Tcp {
                seq: tcp.sequence_number(),
                flags: Flags {
                    syn: tcp.syn(),
                    ack: tcp.ack(),
                    fin: tcp.fin(),
                    rst: tcp.rst(),
                },
                payload: tcp.payload(),
            },
        ),
        TransportSlice::Udp(udp) => (
            udp.source_port(),
            udp.destination_port(),
            Transport::Udp {
                payload: udp.payload(),
            },
        ),
        _ => return None,
    };
    Some(Packet {
        src: SocketAddr::new(src, sport),
        dst: SocketAddr::new(dst, dport),
        transport,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    /// An Ethernet/IPv4/TCP frame, as the loopback device carries it.
    pub(crate) fn tcp_frame(
        src: SocketAddr,
        dst: SocketAddr,
        seq: u32,
        flags: Flags,
        payload: &[u8],
    ) -> Vec<u8> {
        let ip = |a: SocketAddr| match a.ip() {
            IpAddr::V4(v4) => v4.octets(),
            IpAddr::V6(_) => unreachable!("tests use IPv4"),
        };
        let mut b = PacketBuilder::ethernet2([0; 6], [0; 6])
            .ipv4(ip(src), ip(dst), 64)
            .tcp(src.port(), dst.port(), seq, 65535);
        if flags.syn {
            b = b.syn();
        }
        if flags.ack {
            b = b.ack(1);
        }
        if flags.fin {
            b = b.fin();
        }
        if flags.rst {
            b = b.rst();
        }
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    #[test]
    fn tcp_and_udp_frames() {
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:7071".parse().unwrap();
        let syn = Flags {
            syn: true,
            ..Flags::default()
        };
        let frame = tcp_frame(a, b, 42, syn, b"hi");
        let p = parse(&frame).unwrap();
        assert_eq!((p.src, p.dst), (a, b));
        assert_eq!(
            p.transport,
            Transport::Tcp {
                seq: 42,
                flags: syn,
                payload: b"hi"
            }
        );
        let mut udp = Vec::new();
        PacketBuilder::ethernet2([0; 6], [0; 6])
            .ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
            .udp(5000, 7072)
            .write(&mut udp, b"TD")
            .unwrap();
        let p = parse(&udp).unwrap();
        assert_eq!(p.transport, Transport::Udp { payload: b"TD" });
        assert_eq!(parse(b"\x00\x01"), None);
    }
}
