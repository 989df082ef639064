//! The WebSocket seam: the only module that knows which WebSocket crate we use (yawc, chosen
//! because it passes Autobahn including permessage-deflate and lets us size its buffers).
//!
//! Drivers see [`WsConn`]: `recv` yields whole text/binary messages (pings are answered and
//! fragments reassembled underneath), `send_all` queues frames and writes them with one flush,
//! `close` says goodbye with a close code.

mod deflate_offer;
pub(crate) mod echo;
mod strict_frames;

use crate::config::WebSocketConfig;
use bytes::Bytes;
use futures::SinkExt;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use strict_frames::StrictFrames;
use yawc::{Frame, OpCode, Options, WebSocket};

/// The byte stream under an accepted WebSocket.
type Stream = StrictFrames<TokioIo<hyper::upgrade::Upgraded>>;

/// Close codes we send (RFC 6455 section 7.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Close {
    /// 1000: done.
    Normal,
    /// 1001: server shutting down, or the peer went idle.
    GoingAway,
    /// 1008: refused by policy (e.g. slow consumer).
    Policy,
    /// 3000-4999: defined by the application (SockJS uses 3000 "Go away!").
    Application(u16),
}

impl Close {
    fn code(self) -> yawc::close::CloseCode {
        use yawc::close::CloseCode;
        match self {
            Close::Normal => CloseCode::Normal,
            Close::GoingAway => CloseCode::Away,
            Close::Policy => CloseCode::Policy,
            Close::Application(code) => CloseCode::from(code),
        }
    }
}

/// A whole message from the peer.
#[derive(Debug)]
pub(crate) enum WsMessage {
    Text(Bytes),
    Binary(Bytes),
    /// Pings and pongs, already answered: they only prove the peer is alive.
    Control,
}

/// The connection ended (closed by the peer, a protocol error already answered with its
/// close code, or I/O failure).
#[derive(Debug, thiserror::Error)]
#[error("the websocket connection ended")]
pub(crate) struct WsClosed;

/// Checks the `Origin` against the allow-list. Requests without an Origin are not from a
/// browser and are allowed.
pub(crate) fn origin_allowed<B>(req: &Request<B>, cfg: &WebSocketConfig) -> bool {
    use crate::transports::http::origin;
    origin::of(req).is_none_or(|o| origin::allowed(o, &cfg.allowed_origins))
}

fn options(cfg: &WebSocketConfig) -> Options {
    let mut opts = Options::default()
        .with_max_payload_read(cfg.max_message + 1)
        .with_max_read_buffer(cfg.max_message + 1)
        .with_read_buffer_capacity(cfg.buffer_size)
        .with_write_buffer_capacity(cfg.buffer_size)
        .with_utf8()
        .with_fragment_timeout(std::time::Duration::from_secs(
            cfg.message_timeout_secs.max(1),
        ))
        .with_no_delay();
    if cfg.compression {
        opts = opts.with_balanced_compression();
    } else {
        opts = opts.without_compression();
    }
    opts
}

/// An HTTP response refusing an upgrade (boxed: responses are large and this is the rare path).
pub(crate) type Refusal = Box<Response<Full<Bytes>>>;

/// An accepted upgrade whose socket hyper has not handed over yet.
pub(crate) struct PendingConn {
    upgrade: hyper::upgrade::OnUpgrade,
    /// The `Sec-WebSocket-Extensions` value we answered with (permessage-deflate), if any.
    extensions: Option<String>,
    options: Options,
}

impl PendingConn {
    /// Waits for hyper to hand over the socket once the 101 response is written.
    pub(crate) async fn accept(self) -> Option<WsConn> {
        let io = StrictFrames::new(TokioIo::new(self.upgrade.await.ok()?));
        let inner = WebSocket::from_stream_with_extensions(
            io,
            yawc::Role::Server,
            self.extensions.as_deref(),
            self.options,
        )
        .ok()?;
        Some(WsConn {
            inner: Box::new(inner),
            held: None,
        })
    }
}

/// Answers an upgrade request: the 101 response and the connection to come, or a plain
/// HTTP error (403 for a foreign origin, 400 for a broken handshake).
///
/// yawc checks the handshake and negotiates permessage-deflate; we take hyper's upgrade
/// handle first and build the connection over our own stream (see `strict_frames`).
pub(crate) fn upgrade(
    req: &mut Request<Incoming>,
    cfg: &WebSocketConfig,
) -> Result<(Response<Full<Bytes>>, PendingConn), Refusal> {
    if !origin_allowed(req, cfg) {
        return Err(Box::new(plain(
            StatusCode::FORBIDDEN,
            "origin not allowed\n",
        )));
    }
    keep_one_deflate_offer(req);
    let Some(upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return Err(Box::new(plain(
            StatusCode::BAD_REQUEST,
            "this connection cannot be upgraded\n",
        )));
    };
    let options = options(cfg);
    match WebSocket::upgrade_with_options(&mut *req, options.clone()) {
        Ok((resp, _)) => {
            let (parts, _) = resp.into_parts();
            let extensions = parts
                .headers
                .get(hyper::header::SEC_WEBSOCKET_EXTENSIONS)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            Ok((
                Response::from_parts(parts, Full::new(Bytes::new())),
                PendingConn {
                    upgrade,
                    extensions,
                    options,
                },
            ))
        }
        Err(e) => Err(Box::new(plain(
            StatusCode::BAD_REQUEST,
            &format!("not a valid WebSocket upgrade: {e}\n"),
        ))),
    }
}

/// An accepted upgrade and the subprotocol chosen, if any.
pub(crate) type Negotiated = (Response<Full<Bytes>>, PendingConn, Option<&'static str>);

/// [`upgrade`] with subprotocol negotiation (`Sec-WebSocket-Protocol`): the first of
/// `supported` (our order of preference) that the client offered is echoed in the response and
/// returned. A client that offered none of them gets no header (RFC 6455 section 4.2.2), so
/// it may go on without a subprotocol or close.
pub(crate) fn upgrade_with_subprotocol(
    req: &mut Request<Incoming>,
    cfg: &WebSocketConfig,
    supported: &[&'static str],
) -> Result<Negotiated, Refusal> {
    use hyper::header::{HeaderValue, SEC_WEBSOCKET_PROTOCOL};
    let offered: Vec<String> = req
        .headers()
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .collect();
    let chosen = supported
        .iter()
        .copied()
        .find(|p| offered.iter().any(|o| o == p));
    let (mut resp, pending) = upgrade(req, cfg)?;
    if let Some(p) = chosen {
        resp.headers_mut()
            .insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p));
    }
    Ok((resp, pending, chosen))
}

/// Leaves only the permessage-deflate offer we accept in the request (see `deflate_offer`).
fn keep_one_deflate_offer<B>(req: &mut Request<B>) {
    use hyper::header::{HeaderValue, SEC_WEBSOCKET_EXTENSIONS};
    let joined: Vec<String> = req
        .headers()
        .get_all(SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    if joined.is_empty() {
        return;
    }
    let chosen = deflate_offer::first_acceptable(&joined.join(","))
        .and_then(|o| HeaderValue::from_str(o).ok());
    req.headers_mut().remove(SEC_WEBSOCKET_EXTENSIONS);
    if let Some(offer) = chosen {
        req.headers_mut().insert(SEC_WEBSOCKET_EXTENSIONS, offer);
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(text.to_owned())));
    *resp.status_mut() = status;
    resp
}

/// True for an HTTP request asking to become a WebSocket: an HTTP/1.1 `Upgrade: websocket`,
/// or an HTTP/2 extended CONNECT with `:protocol websocket` (RFC 8441; hyper hands it to us
/// with its upgrade handle, and yawc answers it with 200 instead of 101).
pub(crate) fn is_upgrade<B>(req: &Request<B>) -> bool {
    if req.method() == hyper::Method::CONNECT {
        return req
            .extensions()
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"));
    }
    req.headers()
        .get(hyper::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// An accepted WebSocket connection.
pub(crate) struct WsConn {
    /// Boxed: yawc's connection is about 900 bytes, and a driver's state machine keeps a
    /// slot for every value it holds across an await, so inline it would be paid for more
    /// than once per connection (see docs/performance.md).
    inner: Box<WebSocket<Stream>>,
    /// A close or error met by [`WsConn::recv_ready`], answered by the next `recv`.
    held: Option<Box<Result<Frame, yawc::WebSocketError>>>,
}

impl WsConn {
    /// The next whole message. Cancel-safe: partial frames stay buffered inside.
    pub(crate) async fn recv(&mut self) -> Result<WsMessage, WsClosed> {
        let frame = match self.held.take() {
            Some(frame) => *frame,
            None => self.inner.next_frame().await,
        };
        self.message_of(frame).await
    }

    /// The next message if one can be had without waiting (already read into the buffer,
    /// or in the socket), so a driver can answer everything one read brought with one
    /// write. A close or an error is not returned here but kept for the next
    /// [`WsConn::recv`]. yawc queues its reply to a close (or to a framing error) as soon as
    /// it reads it, and writes that queue before any frame fed later: so a driver must
    /// [`WsConn::feed`] its answer to each message before asking for the next one, and
    /// flush at the end, for its answers to leave before the close.
    pub(crate) fn recv_ready(&mut self) -> Option<WsMessage> {
        if self.held.is_some() {
            return None;
        }
        let frame = futures::FutureExt::now_or_never(self.inner.next_frame())?;
        match &frame {
            Ok(f) if f.opcode() == OpCode::Text || f.opcode() == OpCode::Binary => {
                let text = f.opcode() == OpCode::Text;
                let payload = frame.ok()?.into_payload();
                Some(if text {
                    WsMessage::Text(payload)
                } else {
                    WsMessage::Binary(payload)
                })
            }
            Ok(f) if f.opcode() != OpCode::Close => Some(WsMessage::Control),
            _ => {
                self.held = Some(Box::new(frame));
                None
            }
        }
    }

    async fn message_of(
        &mut self,
        frame: Result<Frame, yawc::WebSocketError>,
    ) -> Result<WsMessage, WsClosed> {
        match frame {
            Ok(frame) => match frame.opcode() {
                OpCode::Text => Ok(WsMessage::Text(frame.into_payload())),
                OpCode::Binary => Ok(WsMessage::Binary(frame.into_payload())),
                OpCode::Close => {
                    // yawc queued the echoing close frame; push it out. Boxed, like every
                    // rare path here, so waiting for a message stays a small future.
                    Box::pin(self.flush_queued_control()).await;
                    Err(WsClosed)
                }
                _ => Ok(WsMessage::Control),
            },
            // The socket failed (a reset, as when a client's network drops): nothing more
            // can be written to it, so the close frame yawc queued is not tried. In a
            // reconnect storm that write (failing with EPIPE) was one syscall per dropped
            // connection.
            Err(e) if e.is_io_error() => Err(WsClosed),
            Err(e) => {
                Box::pin(self.fail(&e)).await;
                Err(WsClosed)
            }
        }
    }

    /// Answers bad input with the right close code. yawc's frame layer already queued a
    /// close frame for framing errors (its read side is then closed); its message layer
    /// (UTF-8, fragments) did not, so we send one.
    async fn fail(&mut self, e: &yawc::WebSocketError) {
        use yawc::close::CloseCode;
        use yawc::WebSocketError as E;
        let already_closed = matches!(
            futures::FutureExt::now_or_never(self.inner.next_frame()),
            Some(Err(E::ConnectionClosed))
        );
        if already_closed {
            return self.flush_queued_control().await;
        }
        let code = match e {
            E::InvalidUTF8 => CloseCode::Invalid,
            E::FrameTooLarge => CloseCode::Size,
            E::ConnectionClosed => return,
            e if e.is_io_error() => return,
            _ => CloseCode::Protocol,
        };
        let send = self.inner.send(Frame::close(code, e.to_string()));
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), send).await;
    }

    /// yawc queues the frames it owes the peer (pongs, close replies) and writes them when
    /// the sink is next polled for readiness; do that now, bounded in time.
    async fn flush_queued_control(&mut self) {
        let flush = async {
            if futures::future::poll_fn(|cx| self.inner.poll_ready_unpin(cx))
                .await
                .is_ok()
            {
                let _ = self.inner.flush().await;
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), flush).await;
    }

    /// Queues every frame and writes them with as few syscalls as the buffer allows.
    pub(crate) async fn send_all(
        &mut self,
        frames: impl IntoIterator<Item = OutFrame>,
    ) -> Result<(), WsClosed> {
        for f in frames {
            self.feed(f).await?;
        }
        self.flush().await
    }

    /// Queues a frame in yawc's write buffer without writing it (yawc writes when the buffer
    /// passes its backpressure boundary); [`WsConn::flush`] writes what is queued.
    pub(crate) async fn feed(&mut self, frame: OutFrame) -> Result<(), WsClosed> {
        let frame = match frame {
            OutFrame::Text(b) => Frame::text(b),
            OutFrame::Binary(b) => Frame::binary(b),
        };
        self.inner.feed(frame).await.map_err(|_| WsClosed)
    }

    pub(crate) async fn flush(&mut self) -> Result<(), WsClosed> {
        self.inner.flush().await.map_err(|_| WsClosed)
    }

    pub(crate) async fn ping(&mut self) -> Result<(), WsClosed> {
        self.inner
            .send(Frame::ping(Bytes::new()))
            .await
            .map_err(|_| WsClosed)
    }

    /// Sends a close frame with `code` and `reason`, then waits briefly for the peer's.
    ///
    /// The returned future is boxed: closing happens once, and callers hold this future
    /// in their state machine, which every idle connection pays for.
    pub(crate) fn close(
        mut self,
        code: Close,
        reason: &str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let frame = Frame::close(code.code(), &reason[..reason.len().min(120)]);
        Box::pin(async move {
            if self.inner.send(frame).await.is_err() {
                return;
            }
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
                while self.inner.next_frame().await.is_ok() {}
            })
            .await;
        })
    }
}

/// A frame a driver wants to send.
#[derive(Debug, Clone)]
pub(crate) enum OutFrame {
    Text(Bytes),
    Binary(Bytes),
}
