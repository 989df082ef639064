//! STOMP 1.0, 1.1 and 1.2 (<https://stomp.github.io/>): frames in, frames out.
//!
//! ```text
//! COMMAND\n            e.g. SEND, MESSAGE
//! name:value\n         headers, escaped per version (see below), first occurrence wins
//! \n
//! body\0               content-length bytes if given (may hold NUL), else up to the first NUL
//! ```
//!
//! Lines end in `\n` or `\r\n`; `\n`/`\r\n` between frames are heart-beats. 1.1 escapes
//! `\\`, `\c` (`:`) and `\n` in headers, 1.2 also `\r`; 1.0 and the `CONNECT`/`STOMP`/
//! `CONNECTED` frames of every version escape nothing.
//!
//! | side | decode | encode |
//! |---|---|---|
//! | server | [`Decoder`] -> [`Frame`] -> [`ClientFrame`] | [`FrameWriter`] (MESSAGE), [`encode_connected`], [`encode_receipt`], [`encode_error`] |
//! | client | [`Decoder`] -> [`Frame`] | [`encode_frame`], [`FrameWriter`] |
//!
//! Every [`DecodeError`] and [`FrameError`] is fatal in STOMP: the server answers with an
//! ERROR frame whose `message` is the error's text (and `receipt-id` if the frame had a
//! `receipt`), then closes. What the broker does with the frames is `docs/stomp.md`.

mod client;
mod command;
mod decode;
mod encode;
mod escape;
mod frame;
mod version;

pub use client::{AckMode, ClientFrame, ClientOp, FrameError, SEND_CONTROL_HEADERS};
pub use command::Command;
pub use decode::{
    DecodeError, DecodeErrorKind, Decoder, Limits, DEFAULT_MAX_FRAME_SIZE, DEFAULT_MAX_HEADERS,
    DEFAULT_MAX_HEADER_LENGTH,
};
pub use encode::{
    encode_connected, encode_error, encode_frame, encode_receipt, needs_escape, write_headers,
    FrameWriter,
};
pub use frame::Frame;
pub use version::{HeartBeat, Version};
