//! Sans-IO wire formats of tidings: bytes in, frames out; frames in, bytes out.
//!
//! # What this crate does
//!
//! - [`line`](mod@line): the text protocol of the TCP port (`SUB`, `PUB`, `BPUB`, ... one command per
//!   line, binary-safe through length prefixes). A server-side [`line::Decoder`] turns bytes
//!   into [`line::Command`]s, encoders write the server's replies, and the client side
//!   ([`line::encode_command`], [`line::ReplyDecoder`]) does the reverse.
//! - [`json`]: the native JSON protocol spoken over WebSocket and HTTP. [`json::decode_client`]
//!   turns a frame into a [`json::ClientOp`]; [`json::encode_message`] writes a delivered
//!   message once so that every subscriber can share the bytes; [`json::ReplyBuilder`] writes
//!   `ok` and `error` replies.
//! - [`stomp`]: STOMP 1.0/1.1/1.2 frames, both directions: a stream [`stomp::Decoder`] with
//!   version-specific header escaping, `content-length` bodies that may hold NUL, heart-beat
//!   EOLs and limits; [`stomp::ClientFrame`] checks a client's frame against its version;
//!   [`stomp::FrameWriter`] writes frames.
//! - [`udp`]: the datagram protocol of the UDP port (publish, subscribe with a cookie that
//!   proves the address, lease renewal, and one message per datagram). [`udp::decode_request`]
//!   and [`udp::decode_reply`] borrow from the datagram; encoders write into any `BufMut`.
//! - [`sockjs`]: SockJS frames (quoting as sockjs-node does) and `xhr_send`/`jsonp_send` bodies.
//! - [`engineio`]: Engine.IO 4 packets and long-polling payloads (`\x1e`-separated, binary as
//!   `b` + base64).
//! - [`socketio`]: Socket.IO 5 packets the server writes (events, acks, CONNECT replies) and
//!   the checks of what a client's event and CONNECT carry.
//! - [`PayloadKind`]: what a payload is (text, a JSON document, raw bytes), shared by all.
//!
//! # What it does not do
//!
//! No sockets, no tokio, no clocks, no threads: callers own the buffers and the I/O. It does not
//! route, store or authorize anything (that is `tidings-core` and `tidings-server`), and it does
//! not check topic names beyond what framing needs: whether `chat..x` is a valid topic is the
//! hub's decision.
//!
//! # Conventions
//!
//! Decoders *check, then parse*: an incomplete frame is `Ok(None)`, not an error, and nothing is
//! allocated until a whole frame is there. Every decoder is bounded by limits, and bad input is
//! an error value that names what was wrong: decoding never panics on network input.

pub mod bearer;
mod decimal;
pub mod engineio;
pub mod json;
pub mod line;
mod payload;
pub mod socketio;
pub mod sockjs;
pub mod stomp;
pub mod tunnel;
pub mod udp;

pub use payload::{PayloadKind, MAX_INLINE_PAYLOAD};
