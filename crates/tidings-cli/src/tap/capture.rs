//! The raw packet socket: Linux `AF_PACKET`, every protocol (`ETH_P_ALL`), one interface.
//!
//! Uses nix's safe wrappers, so this crate needs no `unsafe`. The socket is not bound to the
//! interface (nix has no safe constructor for a `sockaddr_ll`); packets of other interfaces
//! are dropped here by interface index. On loopback every packet passes the tap twice, once
//! outgoing and once incoming; like libpcap, the outgoing copy is dropped.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    recvfrom, setsockopt, socket, sockopt, AddressFamily, LinkAddr, SockFlag, SockProtocol,
    SockType,
};
use nix::sys::time::{TimeVal, TimeValLike};

/// `sll_pkttype` of a packet this host sent.
const PACKET_OUTGOING: u8 = 4;
/// `sll_hatype` of the loopback device.
const ARPHRD_LOOPBACK: u16 = 772;

/// Why capturing could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum CaptureError {
    #[error(
        "opening a raw packet socket was refused ({0}): `tidings tap` needs root or the \
         CAP_NET_RAW capability (e.g. `sudo setcap cap_net_raw+ep $(command -v tidings)`)"
    )]
    NotPermitted(Errno),
    #[error("no network interface named {0:?} (see `ip link`)")]
    NoInterface(String),
    #[error("cannot open a raw packet socket: {0}")]
    Io(Errno),
}

pub(crate) struct Capture {
    fd: OwnedFd,
    ifindex: usize,
}

/// One captured frame (Ethernet II; loopback uses it too, with zero addresses).
pub(crate) struct Frame<'a> {
    pub(crate) data: &'a [u8],
}

impl Capture {
    /// Opens the socket for `interface`. Reads wake at least every `tick` so the caller can
    /// check its deadline.
    pub(crate) fn open(interface: &str, tick: Duration) -> Result<Capture, CaptureError> {
        let ifindex = nix::net::if_::if_nametoindex(interface)
            .map_err(|_| CaptureError::NoInterface(interface.to_owned()))?
            as usize;
        let fd = socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::EthAll,
        )
        .map_err(|e| match e {
            Errno::EPERM | Errno::EACCES => CaptureError::NotPermitted(e),
            e => CaptureError::Io(e),
        })?;
        let timeout = TimeVal::milliseconds(tick.as_millis().clamp(1, 1000) as i64);
        setsockopt(&fd, sockopt::ReceiveTimeout, &timeout).map_err(CaptureError::Io)?;
        // A bigger buffer rides out bursts while the terminal is slow; best effort.
        let _ = setsockopt(&fd, sockopt::RcvBuf, &(8 << 20));
        Ok(Capture { fd, ifindex })
    }

    /// The next frame of the interface, or `None` when the tick passed without one.
    pub(crate) fn next<'a>(&mut self, buf: &'a mut [u8]) -> Result<Option<Frame<'a>>, Errno> {
        loop {
            let (n, from) = match recvfrom::<LinkAddr>(self.fd.as_raw_fd(), buf) {
                Ok(r) => r,
                Err(Errno::EAGAIN | Errno::EINTR) => return Ok(None),
                Err(e) => return Err(e),
            };
            let Some(from) = from else { continue };
            if from.ifindex() != self.ifindex {
                continue;
            }
            if from.hatype() == ARPHRD_LOOPBACK && from.pkttype() == PACKET_OUTGOING {
                continue;
            }
            return Ok(Some(Frame { data: &buf[..n] }));
        }
    }
}
