//! The line protocol: a text protocol for the TCP port that a person can drive with `nc`.
//!
//! Client to server, one command per line (`\n` or `\r\n`); verbs are case-insensitive and
//! tokens are separated by one or more spaces:
//!
//! ```text
//! SUB <pattern> [<since> [<epoch>]]    UNSUB <pattern>
//! PUB <topic> <text to end of line>    BPUB <topic> <len>\r\n<len bytes>\r\n
//! HIST <topic> [<since>]               WHO <topic>
//! AUTH <user> <password>               PING [<token>]      HELP      QUIT
//! ```
//!
//! Server to client, each line ending in `\r\n`:
//!
//! ```text
//! +OK <text>                  -ERR <text>                  # <text> (HELP lines)
//! MSG <topic> <offset> <text>            BMSG <topic> <offset> <len>\r\n<len bytes>\r\n
//! PONG [<token>]              JOIN <topic> <client> <user>   LEAVE <topic> <client> <user>
//! ```
//!
//! | side | decode | encode |
//! |---|---|---|
//! | server | [`Decoder`] -> [`Command`] | [`encode_message`], [`encode_ok`], [`encode_err`], [`encode_pong`], [`encode_join`], [`encode_leave`], [`GREETING`], [`HELP`] |
//! | client | [`ReplyDecoder`] -> [`Reply`] | [`encode_command`] |
//!
//! The full description, with limits and a sample session, is `docs/line-protocol.md`.

mod command;
mod decode;
mod encode;
mod frame;
mod reply;

pub use command::{encode_command, Command, EncodeError};
pub use decode::{Decoder, LineError};
pub use encode::{
    encode_err, encode_join, encode_leave, encode_message, encode_ok, encode_pong, GREETING, HELP,
};
pub use frame::{Limits, DEFAULT_MAX_LINE, DEFAULT_MAX_PAYLOAD};
pub use reply::{Reply, ReplyDecoder, ReplyError};
