//! The two ends of a tunnel: an in-memory pipe whose far side is another node.
//!
//! ```text
//! forwarding node                                       owning node
//! hyper client ─pipe─ pump ──Q (request bytes)──> Redis ──> pump ─pipe─ router (as a connection)
//!                      ^  <──R (response bytes)── Redis <──     │
//!                      └── F when the owner's side closed; C when the forwarder's did
//! ```
//!
//! Each pump moves bytes between its pipe and Redis until one side ends (or Redis fails,
//! or nothing moves for the idle deadline); its owner then tells the other node. Bytes from Redis arrive through a bounded channel (see `Forwarder`); the
//! channel closing (finished, cancelled, overflowed) ends the pump.

use bytes::Bytes;
use redis::aio::ConnectionManager;
use std::time::Duration;
use tidings_proto::tunnel::{encode, Kind};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;

/// Bytes read from a pipe per message: keeps each Redis message small while a burst still
/// goes in few messages.
pub(super) const CHUNK: usize = tidings_proto::tunnel::MAX_PAYLOAD;

/// Where a pump sends: the other node's channel, naming the tunnel as that node knows it.
pub(super) struct Far {
    pub(super) conn: ConnectionManager,
    pub(super) channel: String,
    /// This node's id (the sender).
    pub(super) me: String,
    pub(super) tunnel: u64,
}

impl Far {
    /// Publishes one message; the number of nodes that received it (0: the other side is
    /// gone), or `None` when Redis failed.
    pub(super) async fn send(&self, kind: Kind, payload: &[u8]) -> Option<i64> {
        let mut conn = self.conn.clone();
        redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(encode(kind, &self.me, self.tunnel, payload))
            .query_async(&mut conn)
            .await
            .ok()
    }
}

/// Moves bytes between `pipe` and the far node: what the local side writes into the pipe
/// goes out as `outgoing` messages; what `incoming` brings is written into the pipe. Reading
/// and writing go on together (a request body still arriving while the response starts
/// cannot wedge both directions).
pub(super) async fn pump(
    pipe: DuplexStream,
    mut incoming: mpsc::Receiver<Bytes>,
    far: &Far,
    outgoing: Kind,
    idle: Duration,
) {
    let (mut rd, mut wr) = tokio::io::split(pipe);
    let mut buf = vec![0u8; CHUNK];
    let mut pending = Bytes::new();
    loop {
        tokio::select! {
            read = rd.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => match far.send(outgoing, &buf[..n]).await {
                    Some(n) if n > 0 => {}
                    // Redis failed or the other node is gone.
                    _ => return,
                },
            },
            // One `write`, not `write_all`: a write that did not finish wrote nothing, so
            // the other branches may win without losing bytes.
            written = wr.write(&pending), if !pending.is_empty() => match written {
                Ok(n) if n > 0 => {
                    let _ = pending.split_to(n);
                }
                _ => return,
            },
            chunk = incoming.recv(), if pending.is_empty() => match chunk {
                Some(chunk) => pending = chunk,
                None => {
                    // What the local side has not read yet stays in the pipe; then it sees
                    // the end.
                    let _ = wr.shutdown().await;
                    return;
                }
            },
            () = tokio::time::sleep(idle) => return,
        }
    }
}
