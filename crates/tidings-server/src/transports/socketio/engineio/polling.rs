//! Long-polling: a GET waits for what the session has for the client (one GET at a time;
//! a second one at once closes the session, as the reference does), a POST brings the
//! client's packets. Both are plain request/response on our HTTP layer, like SockJS's
//! `xhr` and `xhr_send`; between requests a small task runs the session's heartbeat.

use super::socket::{Beat, CloseReason, Socket, Transport};
use super::{Handler, GOODBYE_GRACE};
use crate::transports::http::{self as http_util, Body};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use std::sync::Arc;
use tidings_proto::engineio;
use tokio::time::Instant;

/// `200` with a payload, as the reference writes it.
pub(super) fn payload_response(payload: Bytes) -> Response<Body> {
    let mut resp = http_util::respond(StatusCode::OK, "text/plain; charset=UTF-8", payload);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn empty(status: StatusCode) -> Response<Body> {
    http_util::respond(status, "text/html", Bytes::new())
}

/// Detaches the long-poll when its request ends. Dropped before it answered means the
/// client went away mid-poll: the reference closes the session ("transport error").
struct Attached<H: Handler> {
    socket: Arc<Socket<H>>,
    answered: bool,
}

impl<H: Handler> Drop for Attached<H> {
    fn drop(&mut self) {
        self.socket.detach_receiver();
        if !self.answered {
            self.socket.close(CloseReason::TransportError);
        }
    }
}

/// A long-poll GET: answers with everything the session has for the client, waiting until
/// there is something (at most until the next PING).
pub(super) async fn receive<H: Handler>(socket: Arc<Socket<H>>) -> Response<Body> {
    if !socket.attach_receiver() {
        socket.close(CloseReason::TransportError);
        return empty(StatusCode::BAD_REQUEST);
    }
    let mut attached = Attached {
        socket,
        answered: false,
    };
    let socket = attached.socket.clone();
    loop {
        if let Some(payload) = socket.drain_payload() {
            attached.answered = true;
            if socket.transport() == Transport::WebSocket {
                // Upgraded while this poll waited: the wake it took belongs to the WebSocket.
                socket.wake.notify_one();
            }
            if socket.is_closed() {
                socket.forget(); // the goodbye is delivered
            }
            return payload_response(Bytes::from(payload));
        }
        socket.wake.notified().await;
    }
}

/// A POST: the client's packets, handled in order; the first bad one closes the session.
pub(super) async fn send<H: Handler>(
    socket: Arc<Socket<H>>,
    req: Request<Incoming>,
) -> Response<Body> {
    let binary = req
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/octet-stream");
    if binary {
        // Protocol 4 sends binary as base64 text: a binary body is protocol 3.
        socket.close(CloseReason::TransportError);
        return empty(StatusCode::BAD_REQUEST);
    }
    if !socket.begin_post() {
        socket.close(CloseReason::TransportError);
        return empty(StatusCode::BAD_REQUEST);
    }
    let limit = usize::try_from(socket.server.options.max_payload).unwrap_or(usize::MAX);
    let body = Limited::new(req.into_body(), limit).collect().await;
    socket.end_post();
    let body = match body {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return empty(StatusCode::PAYLOAD_TOO_LARGE)
        }
        Err(_) => {
            socket.close(CloseReason::TransportError);
            return empty(StatusCode::BAD_REQUEST);
        }
    };
    match engineio::decode_payload(&body) {
        Err(_) => socket.close(CloseReason::ParseError),
        Ok(packets) => {
            for packet in packets {
                match packet {
                    Ok(p) => socket.receive(p),
                    Err(_) => {
                        socket.close(CloseReason::ParseError);
                        break;
                    }
                }
            }
        }
    }
    super::ok_response()
}

/// The heartbeat of a session on long-polling, between its requests. Ends when a WebSocket
/// takes the session over (its task runs the heartbeat from then on) or the session ends.
pub(super) async fn heartbeat<H: Handler>(socket: Arc<Socket<H>>) {
    loop {
        if socket.transport() == Transport::WebSocket {
            return;
        }
        match socket.beat(Instant::now()) {
            Beat::Wait(at) => tokio::time::sleep_until(at).await,
            Beat::Acted => {}
            Beat::Over => {
                // Closed by the server: the goodbye waits for the client's next poll, a
                // little while; then the session is forgotten anyway.
                tokio::time::sleep(GOODBYE_GRACE).await;
                if socket.transport() == Transport::Polling {
                    socket.forget();
                }
                return;
            }
        }
    }
}
