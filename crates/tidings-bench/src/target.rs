//! The servers a scenario measures, and what every scenario's command line shares: where the
//! binaries and peer scripts are, which CPU the servers and the load generator get, where the
//! results go.

use crate::client::Dialect;
use crate::peer::{self, Peer};
use std::path::PathBuf;

/// A server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Target {
    /// tidings, native JSON protocol at /ws.
    Tidings,
    /// tidings' Socket.IO endpoint at /socket.io/.
    TidingsSocketio,
    /// tidings, native JSON protocol at /ws over TLS (the HTTPS listener, wss://).
    TidingsTls,
    /// node `ws` (bench/peers/ws-broadcast.js).
    NodeWs,
    /// the official Node socket.io server (bench/peers/socketio-server.js).
    Socketio,
}

impl Target {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Target::Tidings => "tidings /ws",
            Target::TidingsSocketio => "tidings /socket.io",
            Target::TidingsTls => "tidings /ws over TLS",
            Target::NodeWs => "node ws",
            Target::Socketio => "node socket.io",
        }
    }

    pub(crate) fn dialect(self) -> Dialect {
        match self {
            Target::Tidings | Target::NodeWs => Dialect::Native,
            Target::TidingsSocketio | Target::Socketio => Dialect::SocketIo,
            Target::TidingsTls => Dialect::NativeTls,
        }
    }

    pub(crate) fn start(self, common: &Common) -> Result<Peer, String> {
        let cpu = Some(common.server_cpu);
        match self {
            Target::Tidings | Target::TidingsSocketio => {
                peer::start_tidings(&peer::tidings_binary(common.tidings.as_deref())?, cpu)
            }
            Target::TidingsTls => {
                peer::start_tidings_tls(&peer::tidings_binary(common.tidings.as_deref())?, cpu)
            }
            Target::NodeWs => peer::start_node(
                &common.peers.join("ws-broadcast.js"),
                "ws-broadcast: listening on ",
                cpu,
            ),
            Target::Socketio => peer::start_node(
                &common.peers.join("socketio-server.js"),
                "socketio-server: listening on ",
                cpu,
            ),
        }
    }
}

/// Options every suite scenario takes.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct Common {
    /// The tidings binary. Default: `tidings` next to this program.
    #[arg(long)]
    pub(crate) tidings: Option<PathBuf>,
    /// The folder of the peer server scripts (`npm ci` there first).
    #[arg(long, default_value = "bench/peers")]
    pub(crate) peers: PathBuf,
    /// The CPU the servers are pinned to (`taskset`).
    #[arg(long, default_value_t = 0)]
    pub(crate) server_cpu: usize,
    /// The CPU the load generator (this process and its workers) is pinned to.
    #[arg(long, default_value_t = 1)]
    pub(crate) client_cpu: usize,
    /// Write results.md and the SVG charts into this folder.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
}

impl Common {
    /// Pins the load generator; called once before any runtime starts threads.
    pub(crate) fn pin_load_generator(&self) -> Result<(), String> {
        peer::pin_self(self.client_cpu)
    }
}
