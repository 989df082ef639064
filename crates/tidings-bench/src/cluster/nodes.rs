//! The clusters `tidings-bench cluster` measures: N server processes on one Redis, each on a
//! free port, its address read from its start line.

use crate::client::Dialect;
use crate::peer::{pinned, Peer};
use std::path::Path;
use std::process::Command;

/// A kind of cluster node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Node {
    /// `tidings serve --engine redis://…`, Socket.IO clients at /socket.io/ (the same wire as
    /// the socket.io peers).
    Tidings,
    /// `tidings serve --engine redis://…`, native JSON clients at /ws.
    TidingsWs,
    /// Node socket.io with `@socket.io/redis-streams-adapter`
    /// (bench/peers/socketio-cluster-server.js).
    SocketioStreams,
    /// Node socket.io with `@socket.io/redis-adapter` (Redis pub/sub).
    SocketioRedis,
}

impl Node {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Node::Tidings => "tidings /socket.io",
            Node::TidingsWs => "tidings /ws",
            Node::SocketioStreams => "socket.io + redis-streams-adapter",
            Node::SocketioRedis => "socket.io + redis-adapter",
        }
    }

    pub(crate) fn dialect(self) -> Dialect {
        match self {
            Node::TidingsWs => Dialect::Native,
            Node::Tidings | Node::SocketioStreams | Node::SocketioRedis => Dialect::SocketIo,
        }
    }

    pub(crate) fn is_tidings(self) -> bool {
        matches!(self, Node::Tidings | Node::TidingsWs)
    }

    /// Starts `count` nodes sharing the Redis at `redis_url`, each pinned to `cpu` if given.
    pub(crate) fn start(
        self,
        count: usize,
        redis_url: &str,
        tidings: &Path,
        peers: &Path,
        cpu: Option<usize>,
    ) -> Result<Vec<Peer>, String> {
        (0..count)
            .map(|_| {
                let (mut cmd, banner) = match self {
                    Node::Tidings | Node::TidingsWs => {
                        let mut cmd = Command::new(tidings);
                        cmd.args(["serve", "--engine", redis_url, "--http", "127.0.0.1:0"])
                            .args(["--tcp", "off", "--udp", "off", "--stomp", "off"]);
                        (cmd, "tidings: http listening on ")
                    }
                    Node::SocketioStreams | Node::SocketioRedis => {
                        let adapter = if self == Node::SocketioStreams {
                            "streams"
                        } else {
                            "redis"
                        };
                        let mut cmd = Command::new("node");
                        cmd.arg(peers.join("socketio-cluster-server.js"))
                            .args(["0", adapter, redis_url]);
                        (cmd, "socketio-cluster-server: listening on ")
                    }
                };
                cmd = pinned(cmd, cpu);
                Peer::start(&mut cmd, banner)
            })
            .collect()
    }
}
