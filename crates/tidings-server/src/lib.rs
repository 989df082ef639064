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

mod clock;
pub mod config;
mod drivers;
mod http;
mod runtime;
pub mod socketio;
mod sockjs;
mod ws;

pub use config::StompConfig;
pub use config::{
    ConfigError, DatagramConfig, FallbackConfig, HttpConfig, LineConfig, Listen, ServerConfig,
    WebSocketConfig,
};
pub use runtime::{BoundAddrs, Server, StartError};
pub use socketio::SocketIoConfig;
pub use sockjs::SockJsConfig;
