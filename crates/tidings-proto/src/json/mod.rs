//! The native JSON protocol, spoken over WebSocket (text and binary frames) and HTTP.
//!
//! Client to server, one request per frame (`id` optional, a number or a string, echoed back):
//!
//! ```text
//! {"op":"subscribe","id":1,"topic":"chat.*","since":12,"epoch":"1f3a","presence":true}
//! {"op":"subscribe","id":8,"topic":"chat.*","positions":[{"topic":"chat.a","since":12,"epoch":"1f3a"}]}
//! {"op":"unsubscribe","id":2,"topic":"chat.*"}
//! {"op":"publish","id":3,"topic":"chat.lobby","data":{"any":"json"},"ack":true}
//! {"op":"publish","topic":"chat.lobby","text":"a string"}
//! {"op":"history","id":4,"topic":"chat.lobby","since":0,"limit":100}
//! {"op":"presence","id":5,"topic":"chat.lobby"}
//! {"op":"ping","id":6}
//! {"op":"auth","id":7,"user":"alice","password":"secret"}
//! binary frame: {"op":"publish","topic":"cam.1"}\n<raw bytes>
//! ```
//!
//! Server to client, each frame an object with a `type`:
//!
//! ```text
//! {"type":"hello","client":"c17","server":"tidings/0.1.0"}
//! {"type":"ok","id":1,"epoch":"1f3a","offset":12,"replayed":3}
//! {"type":"error","id":1,"code":"resume_unavailable","message":"...","earliest":40}
//! {"type":"message","topic":"chat.lobby","offset":5,"epoch":"1f3a","data":{"any":"json"}}
//! {"type":"message","topic":"chat.lobby","offset":6,"epoch":"1f3a","text":"a string"}
//! binary frame: {"type":"message","topic":"cam.1","offset":7,"epoch":"1f3a"}\n<raw bytes>
//! {"type":"presence","topic":"chat.lobby","event":"join","client":"c2","user":"bob"}
//! {"type":"gap","topic":"chat.a","since":12,"epoch":"2b7c","next":null,"reason":"..."}
//! {"type":"pong","id":6}
//! ```
//!
//! | side | decode | encode |
//! |---|---|---|
//! | server | [`decode_client`] -> [`ClientOp`] | [`encode_message`], [`ReplyBuilder`], [`encode_hello`], [`encode_presence`], [`encode_pong`] |
//! | client | (serde_json) | [`encode_client`] |
//!
//! Payloads are never re-encoded: JSON `data` is kept as the publisher's JSON text and spliced
//! into every `message` frame. The full description is `docs/native-protocol.md`.

mod client;
mod server;
mod write;

pub use client::{
    decode_client, encode_client, has_lone_surrogate, ClientOp, JsonError, JsonErrorKind, Op,
    Position, RequestId, MAX_POSITIONS,
};
pub use server::{
    encode_hello, encode_message, encode_pong, encode_presence, encode_presence_info, ErrorCode,
    Member, MessageRef, PresenceEvent, ReplyBuilder, SERVER,
};
pub use write::EncodedFrame;
