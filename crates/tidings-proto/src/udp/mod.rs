//! The UDP datagram protocol: one request or one message per datagram, binary, big-endian.
//!
//! Every datagram starts with a 4-byte header: the magic `TD`, the version (1) and a type.
//! `str8`/`str16` are UTF-8 strings after a `u8`/`u16` length; a cookie is 24 opaque bytes.
//!
//! ```text
//! client -> server                                                        [pad] = zero bytes
//!   0x01 PUBLISH      id:u32 kind:u8 topic:str16 len:u16 payload           [pad]
//!   0x02 SUBSCRIBE    id:u32 cookie_len:u8 (0|24) cookie pattern:str16     [pad]
//!   0x03 RENEW        id:u32 cookie                                        [pad]
//!   0x04 UNSUBSCRIBE  id:u32 cookie pattern:str16 (empty: every pattern)   [pad]
//! server -> client
//!   0x81 CHALLENGE    id:u32 cookie
//!   0x82 SUBSCRIBED   id:u32 lease_ms:u32 last_offset:u64 epoch:str8 cookie
//!   0x83 RENEWED      id:u32 lease_ms:u32 subscriptions:u16 cookie
//!   0x84 UNSUBSCRIBED id:u32 removed:u16
//!   0x85 PUBLISHED    id:u32 offset:u64 epoch:str8
//!   0x86 MESSAGE      kind:u8 offset:u64 epoch:str8 topic:str16 payload (to the end)
//!   0x87 ERROR        id:u32 code:u8 message:str8
//! ```
//!
//! `kind` is 0 text (UTF-8), 1 JSON (one JSON value), 2 binary. A `PUBLISH` with id 0 asks for
//! no reply at all. Requests may end in zero padding: a server answers an address that has not
//! proved it receives there with at most as many bytes as the request had, so a client that
//! wants an answer pads its request to [`REPLY_ROOM`] bytes.
//!
//! | side | decode | encode |
//! |---|---|---|
//! | server | [`decode_request`] -> [`Request`] | [`encode_reply`] (and [`encode_error`], which fits a size budget) |
//! | client | [`decode_reply`] -> [`Reply`] | [`encode_request`] |
//!
//! Decoding borrows from the datagram and never allocates; it checks every length against
//! what is there, so a datagram either decodes whole or is an error naming the field. The
//! semantics (cookies, leases, rate limits, loss and order) are in `docs/udp.md`.

mod error;
mod reply;
mod request;
mod wire;

pub use error::DatagramError;
pub use reply::{decode_reply, encode_error, encode_reply, message_len, ErrorCode, Reply};
pub use request::{decode_request, encode_request, peek_request_id, Request};
pub use wire::{
    Cookie, Limits, COOKIE_LEN, DEFAULT_MAX_DATAGRAM, HEADER_LEN, MAGIC, REPLY_ROOM, VERSION,
};
