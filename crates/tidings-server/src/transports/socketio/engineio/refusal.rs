//! The reference server's refusals (engine.io `Server.errors`): status 400 (403 for
//! FORBIDDEN) with `{"code":N,"message":".."}`, or for a WebSocket upgrade the message as
//! the body of a plain 400, as its `abortUpgrade` writes it.

use crate::transports::http::{self as http_util, Body};
use bytes::Bytes;
use hyper::{Response, StatusCode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// 0: `transport` missing, unknown or not enabled.
    UnknownTransport,
    /// 1: no session with that `sid`.
    UnknownSid,
    /// 2: a handshake that is not a GET.
    BadHandshakeMethod,
    /// 3: anything else wrong (transport mismatch, WebSocket without upgrade, ...).
    BadRequest,
    /// 5: `EIO` is not 4.
    UnsupportedProtocolVersion,
    /// Ours: `max_sessions` reached (503; the reference has no such bound).
    TooManySessions,
}

impl Refusal {
    fn code_and_message(self) -> (u8, &'static str) {
        match self {
            Refusal::UnknownTransport => (0, "Transport unknown"),
            Refusal::UnknownSid => (1, "Session ID unknown"),
            Refusal::BadHandshakeMethod => (2, "Bad handshake method"),
            Refusal::BadRequest => (3, "Bad request"),
            Refusal::UnsupportedProtocolVersion => (5, "Unsupported protocol version"),
            Refusal::TooManySessions => (3, "Too many sessions"),
        }
    }

    pub(super) fn response(self, upgrade: bool) -> Response<Body> {
        let (code, message) = self.code_and_message();
        let status = match self {
            Refusal::TooManySessions => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        if upgrade {
            return http_util::respond(status, "text/html", Bytes::from_static(message.as_bytes()));
        }
        http_util::json(
            status,
            format!("{{\"code\":{code},\"message\":\"{message}\"}}"),
        )
    }
}
