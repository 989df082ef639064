//! Transports: bytes on a connection <-> messages, knowing nothing of drivers or the hub.
//!
//! - `http`: the response body type and helpers every HTTP answer uses; streamed bodies;
//! - `ws`: the one WebSocket seam (yawc behind it): upgrade, messages, close codes;
//! - `sockjs`: SockJS sessions and every SockJS transport, around an [`sockjs::App`];
//! - `socketio`: Engine.IO + Socket.IO sessions, around a [`socketio::App`].
//!
//! Layering inside: `http` < `ws` < `sockjs`, `socketio` (its Engine.IO runs on `http` and `ws`).

pub(crate) mod http;
pub mod socketio;
pub mod sockjs;
pub(crate) mod ws;
