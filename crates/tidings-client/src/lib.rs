//! The Rust client of tidings, a real-time pub/sub server.
//!
//! # What it does
//!
//! - Connects over the **TCP line protocol** (`tcp://127.0.0.1:7071`) or **WebSocket** with the
//!   native JSON protocol (`ws://127.0.0.1:7070/ws`); the API is the same for both.
//! - [`Client`] (async, tokio): subscribe to topics and patterns (`chat.*`, `prices.>`), resume
//!   an exact topic after an offset, publish text, JSON or bytes and get each message's offset.
//!   Everything the server pushes (messages, presence, connection changes) arrives in order on
//!   [`Events`].
//! - Reconnects when the connection drops ([`ClientConfig::reconnect`], on by default):
//!   exponential backoff with jitter, logs in again, resubscribes, and resumes every exact
//!   topic after the last offset it delivered, so nothing is lost or repeated while the
//!   server's history still holds it. When it does not, an [`Event::Gap`] says which offsets
//!   were lost and delivery continues with what history still holds. Over WebSocket a
//!   pattern resumes too: per concrete topic it delivered (at most 1024 per pattern; past
//!   that the one delivered least recently is forgotten and comes back live only), the
//!   client sends the last offset and epoch, and gets what it missed or an [`Event::Gap`]
//!   for that topic. A message that several of the client's subscriptions match (`chat.*`
//!   and `chat.>`, or a pattern and an exact topic) is handed on once.
//! - [`UdpClient`]: publish with one datagram and subscribe with a lease over the UDP endpoint
//!   (`udp://127.0.0.1:7072`): unordered and lossy by design, with offsets that reveal gaps
//!   ([`Event::Gap`]) and duplicates dropped.
//! - [`BlockingClient`]: the same for programs without an async runtime; a reader thread
//!   receives while the caller's thread sends.
//! - Bounds everything: requests in flight, the event buffer (when it is full the client stops
//!   reading the socket and TCP pushes back on the server, whose slow-consumer policy then
//!   applies), message sizes (32 MiB).
//!
//! # What it does not do
//!
//! No TLS (`wss://`), no STOMP, SockJS or Socket.IO (use their own clients), no history
//! queries or presence lists. Over the TCP line protocol patterns resubscribe after a
//! reconnect but cannot resume (`SUB` carries no per-topic positions): what a pattern's
//! topics got while the client was away is not replayed; use WebSocket, or exact topics,
//! where that matters. Overlapping subscriptions each report their own gap, so the same
//! [`Event::Gap`] may come once per subscription. It does not persist
//! offsets: a new process starts over unless you call [`Client::subscribe_since`] with an
//! offset you saved. Requests made while reconnecting fail at once with
//! [`ClientError::NotConnected`] rather than being queued.
//!
//! The line protocol has no payload types, so over `tcp://` a [`Payload::Json`] is sent as
//! text and every payload arrives as [`Payload::Text`] (valid UTF-8) or [`Payload::Binary`];
//! its messages carry no epoch either, so [`Message::epoch`] is the one the subscribe reply
//! named (exact topics only).
//!
//! # Example
//!
//! ```no_run
//! use tidings_client::{Client, ClientConfig, Event};
//!
//! # async fn run() -> Result<(), tidings_client::ClientError> {
//! let (client, mut events) = Client::connect(ClientConfig::new("tcp://127.0.0.1:7071")).await?;
//! client.subscribe("chat.lobby").await?;
//! let published = client.publish("chat.lobby", "hello").await?;
//! println!("published at offset {}", published.offset);
//! while let Some(event) = events.next().await {
//!     match event {
//!         Event::Message(m) => println!("{} {} {:?}", m.topic, m.offset, m.payload),
//!         Event::Gap { topic, since, earliest, .. } => {
//!             eprintln!("{topic}: lost {}..{earliest}", since + 1)
//!         }
//!         other => eprintln!("{other:?}"),
//!     }
//! }
//! client.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! Blocking, with the reader thread:
//!
//! ```no_run
//! use std::time::Duration;
//! use tidings_client::{BlockingClient, ClientConfig};
//!
//! # fn run() -> Result<(), tidings_client::ClientError> {
//! let client = BlockingClient::connect(ClientConfig::new("ws://127.0.0.1:7070/ws"))?;
//! client.subscribe("prices.>")?;
//! client.publish("prices.NASDAQ.AAPL", "187.5")?;
//! while let Ok(Some(event)) = client.recv_timeout(Duration::from_secs(1)) {
//!     println!("{event:?}");
//! }
//! client.close();
//! # Ok(())
//! # }
//! ```

mod blocking;
mod client;
mod config;
mod conn;
mod error;
mod task;
mod types;
mod udp;

pub use blocking::{BlockingClient, RecvTimeoutError};
pub use client::{Client, Events};
pub use config::ClientConfig;
pub use error::ClientError;
pub use types::{Event, Message, Payload, Published, Subscribed};
pub use udp::UdpClient;
