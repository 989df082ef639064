//! The lowest layer of the server: binds TCP listeners and accepts connections, handing each
//! one to a protocol's `serve` function as a plain byte stream with its peer address.
//!
//! Everything a connection's protocol does not care about happens here, once for every
//! listener: the listen backlog, backing off when accept fails (out of file descriptors),
//! tracking connection tasks so shutdown can wait for them, and one `tracing` span per
//! connection (listener kind and peer). `serve` functions take any [`ByteStream`], not a
//! `TcpStream`, so a TLS stream (or an in-memory pipe in a test) can stand in its place.
//!
//! What a client may hold is bounded here too: connections in all and per address
//! (`limits`, refused in the listener's protocol words) and how long a write may wait for a
//! client that reads nothing (`write_deadline`).

mod held_reply;
mod limits;
mod placed;
mod write_deadline;

pub(crate) use held_reply::{Held, HoldReply};
pub(crate) use limits::{address_key, ConnLimits};
pub(crate) use placed::Placed;
pub(crate) use write_deadline::WriteDeadline;

/// An accepted connection's socket: its place in the limits and its write deadline travel
/// with it (into an upgraded WebSocket too).
pub(crate) type Accepted = WriteDeadline<Placed<tokio::net::TcpStream>>;

pub(crate) mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// A connection's bytes: what every stream-based protocol reads and writes.
pub(crate) trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> ByteStream for T {}

/// Who is on the other end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Peer {
    pub(crate) addr: SocketAddr,
    /// Admitted past `max_connections` on the HTTP reserve: may only ask `/healthz` and
    /// `/metrics`.
    pub(crate) on_reserve: bool,
}

/// How a listener admits connections.
#[derive(Clone)]
pub(crate) struct Admission {
    pub(crate) limits: Arc<ConnLimits>,
    /// HTTP: connections past the total go on the reserve instead of being refused.
    pub(crate) may_use_reserve: bool,
    /// What a refused client is told, in its protocol (`reason` is a short phrase).
    pub(crate) refuse: fn(reason: &str) -> Vec<u8>,
    pub(crate) write_timeout: Duration,
}

/// Connections the kernel may hold for us before we accept them. tokio's default is 1024;
/// a reconnect storm of 15k clients overflows that, and an overflowed backlog drops SYNs,
/// which clients retry only after a second or more. The kernel caps it at `somaxconn`.
const LISTEN_BACKLOG: i32 = 4096;

/// How long to wait before accepting again after `accept` failed: out of file descriptors
/// is the usual cause, and retrying at once would spin on a full CPU.
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);

/// Raises this process's soft open-file limit to its hard limit, as Go's runtime does: the
/// soft limit is often 1024 (systemd's default) while the hard one allows far more, and
/// `limits.max_connections` is derived from the soft one.
pub(crate) fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::debug!(error = %e, "could not raise the open-file limit");
            }
        }
    }
}

/// The refusal of a listener whose clients cannot read one (TLS: nothing is readable before
/// the handshake): the connection is closed without a word.
pub(crate) fn silent_refusal(_reason: &str) -> Vec<u8> {
    Vec::new()
}

/// Binds a TCP listener with [`LISTEN_BACKLOG`].
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // As tokio's own bind does: a restarted server can listen while old connections linger.
    socket.set_reuse_address(true)?;
    // Messages are small and latency matters more than packet count; drivers coalesce their
    // own writes. Set once here: Linux gives an accepted socket its listener's TCP_NODELAY,
    // which saves a setsockopt per connection (a reconnect storm accepts thousands a second).
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// Accepts connections until `shutdown`, spawning `serve` for each on `tasks` (so shutdown
/// can wait for them), inside a span named after the listener with the peer's address.
/// A connection past the limits is told why and closed without reaching `serve`.
pub(crate) async fn accept_loop<F, Fut>(
    listener: TcpListener,
    kind: &'static str,
    admission: Admission,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    serve: F,
) where
    F: Fn(Accepted, Peer) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let (stream, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(listener = kind, error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let admitted = match admission.limits.admit(addr.ip(), admission.may_use_reserve) {
            Ok(admitted) => admitted,
            Err(refusal) => {
                tracing::debug!(listener = kind, peer = %addr, "refused: {}", refusal.reason());
                // Best effort and never waiting: the socket's buffer is empty, so the short
                // refusal fits; then it closes.
                let refusal = (admission.refuse)(refusal.reason());
                if !refusal.is_empty() {
                    let _ = stream.try_write(&refusal);
                }
                continue;
            }
        };
        // Elsewhere than Linux an accepted socket may not inherit the listener's TCP_NODELAY.
        #[cfg(not(target_os = "linux"))]
        let _ = stream.set_nodelay(true);
        // `session` and `user` are filled in by the driver once known (see `drivers::open_session`).
        let span = tracing::debug_span!(
            "conn",
            listener = kind,
            peer = %addr,
            protocol = tracing::field::Empty,
            session = tracing::field::Empty,
            user = tracing::field::Empty,
        );
        let peer = Peer {
            addr,
            on_reserve: admitted.on_reserve,
        };
        let stream = WriteDeadline::new(Placed::new(stream, admitted), admission.write_timeout);
        let conn = serve(stream, peer);
        tasks.spawn(
            async move {
                tracing::debug!("accepted");
                conn.await;
            }
            .instrument(span),
        );
    }
}

#[cfg(test)]
mod tests {
    /// An accepted socket has TCP_NODELAY without a setsockopt of its own (see `bind`).
    #[tokio::test]
    async fn accepted_sockets_inherit_no_delay_from_the_listener() {
        let listener = super::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(accepted.nodelay().unwrap());
        drop(client);
    }
}
