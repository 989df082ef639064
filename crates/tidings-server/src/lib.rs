//! # tidings-server
//!
//! The I/O runtime of tidings (tokio): the listeners (HTTP, TCP, UDP), the transports (WebSocket
//! via one internal seam, the HTTP API), and the protocol drivers that join a transport's
//! decoded frames to the hub in tidings-core and write the hub's deliveries back, coalesced.
//!
//! What it does not do: parse wire formats (tidings-proto does) or route messages
//! (tidings-core does); it never reads files or the environment (the binary does).
//!
//! ```no_run
//! # async fn run() {
//! let server = tidings_server::Server::start(tidings_server::ServerConfig::default()).await.unwrap();
//! println!("{:?}", server.addrs());
//! server.shutdown().await;
//! # }
//! ```

// The layers, bottom up (a module imports only modules below it; rustfmt sorts the lines
// below, so the order is written here; `../shared/tools/layers/cycles.py
// crates/tidings-server/src` checks there is no cycle):
//   clock, config  <  auth, listen  <  transports  <  drivers  <  runtime
mod auth;
mod clock;
pub mod config;
mod drivers;
mod engine;
mod listen;
mod node_id;
mod runtime;
pub mod transports;

pub use config::{
    ConfigError, DatagramConfig, EngineConfig, EngineKind, FallbackConfig, HttpConfig, JwtConfig,
    LineConfig, Listen, ServerAuthConfig, ServerConfig, SockJsConfig, SocketIoConfig, StompConfig,
    TlsConfig, WebSocketConfig,
};
pub use listen::tls::TlsError;
pub use runtime::{BoundAddrs, Server, StartError};
pub use transports::http::Body;
pub use transports::{socketio, sockjs};
