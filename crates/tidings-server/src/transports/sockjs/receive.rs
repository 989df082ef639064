//! The receiving transports: polling (`xhr`, `jsonp`) answers with one frame; streaming
//! (`xhr_streaming`, `eventsource`, `htmlfile`) keeps sending frames until the response limit,
//! then ends so the client reconnects (old proxies buffer long responses otherwise).

use super::frame;
use super::session::{Attach, SockSession};
use crate::transports::http::streamed::Streamed;
use bytes::{BufMut, Bytes, BytesMut};
use std::sync::Arc;
use std::time::Duration;

/// How frames are wrapped on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Style {
    Xhr,
    Jsonp(String),
    XhrStreaming,
    EventSource,
    HtmlFile(String),
}

impl Style {
    pub(crate) fn content_type(&self) -> &'static str {
        match self {
            Style::Xhr | Style::XhrStreaming | Style::Jsonp(_) => {
                "application/javascript; charset=UTF-8"
            }
            Style::EventSource => "text/event-stream",
            Style::HtmlFile(_) => "text/html; charset=UTF-8",
        }
    }

    pub(crate) fn is_streaming(&self) -> bool {
        matches!(
            self,
            Style::XhrStreaming | Style::EventSource | Style::HtmlFile(_)
        )
    }

    fn prelude(&self) -> Option<Bytes> {
        match self {
            // Some browsers show nothing of a streamed response before 2 KiB arrived.
            Style::XhrStreaming => {
                let mut b = BytesMut::from(&[b'h'; 2048][..]);
                b.put_u8(b'\n');
                Some(b.freeze())
            }
            Style::EventSource => Some(Bytes::from_static(b"\r\n")),
            Style::HtmlFile(callback) => Some(htmlfile_prelude(callback)),
            _ => None,
        }
    }

    /// One frame as this transport sends it.
    pub(crate) fn wrap(&self, f: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(f.len() + 32);
        match self {
            Style::Xhr | Style::XhrStreaming => {
                out.put_slice(f);
                out.put_u8(b'\n');
            }
            Style::EventSource => {
                out.put_slice(b"data: ");
                out.put_slice(f);
                out.put_slice(b"\r\n\r\n");
            }
            Style::HtmlFile(_) => {
                out.put_slice(b"<script>\np(");
                frame::quote(&mut out, &String::from_utf8_lossy(f));
                out.put_slice(b");\n</script>\r\n");
            }
            Style::Jsonp(callback) => {
                out.put_slice(b"/**/");
                out.put_slice(callback.as_bytes());
                out.put_u8(b'(');
                frame::quote(&mut out, &String::from_utf8_lossy(f));
                out.put_slice(b");\r\n");
            }
        }
        out.freeze()
    }
}

fn htmlfile_prelude(callback: &str) -> Bytes {
    let mut page = format!(
        "<!doctype html>\n<html><head>\n  <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n  \
         <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n</head><body><h2>Don't panic!</h2>\n  \
         <script>\n    document.domain = document.domain;\n    var c = parent.{callback};\n    c.start();\n    \
         function p(d) {{c.message(d);}};\n    window.onload = function() {{c.stop();}};\n  </script>"
    );
    // Old browsers render nothing before 1 KiB arrived.
    while page.len() < 1024 {
        page.push(' ');
    }
    page.push_str("\r\n");
    Bytes::from(page)
}

/// Holds a session's receiver slot for one request. Finished, it detaches; dropped unfinished
/// (hyper drops a request's future when its client goes away mid-poll) it interrupts the
/// session, as a receiver the client abandoned does.
struct Receiver<'a> {
    session: &'a SockSession,
    finished: bool,
}

impl Receiver<'_> {
    fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for Receiver<'_> {
    fn drop(&mut self) {
        if self.finished {
            self.session.detach();
        } else {
            self.session.interrupt();
        }
    }
}

/// A polling request: one frame, now or when something arrives, or `h` after `heartbeat`.
pub(crate) async fn poll(session: Arc<SockSession>, style: &Style, heartbeat: Duration) -> Bytes {
    match session.attach() {
        Attach::Opened => style.wrap(frame::OPEN),
        Attach::Busy => style.wrap(&frame::close(2010, "Another connection still open")),
        Attach::Closed(close) => style.wrap(&close),
        Attach::Attached => {
            let receiver = Receiver {
                session: &session,
                finished: false,
            };
            let deadline = tokio::time::Instant::now() + heartbeat;
            let mut drained = session.drain();
            // A wake-up may be stale (left by a push an earlier request already drained), so
            // wait again until something is really there or the heartbeat is due.
            while drained.messages.is_none() && drained.close.is_none() {
                if tokio::time::timeout_at(deadline, session.wake.notified())
                    .await
                    .is_err()
                {
                    break;
                }
                // Gather the rest of a burst into this one response.
                tokio::time::sleep(Duration::from_millis(5)).await;
                drained = session.drain();
            }
            receiver.finish();
            match (drained.messages, drained.close) {
                (Some(m), _) => style.wrap(&m),
                (None, Some(c)) => style.wrap(&c),
                (None, None) => style.wrap(frame::HEARTBEAT),
            }
        }
    }
}

/// A streaming request, fed into `out` until the response limit or the session's end.
pub(crate) async fn stream(session: Arc<SockSession>, style: Style, out: Streamed, limit: usize) {
    if let Some(prelude) = style.prelude() {
        if !out.send(prelude).await {
            return;
        }
    }
    let mut attach = session.attach();
    if let Attach::Opened = attach {
        if !out.send(style.wrap(frame::OPEN)).await {
            return;
        }
        attach = session.attach();
    }
    match attach {
        Attach::Attached => {}
        Attach::Busy => {
            out.send(style.wrap(&frame::close(2010, "Another connection still open")))
                .await;
            return;
        }
        Attach::Closed(close) => {
            out.send(style.wrap(&close)).await;
            return;
        }
        Attach::Opened => return, // a session opens once; the second attach never says so
    }
    let receiver = Receiver {
        session: &session,
        finished: false,
    };
    let mut sent = 0usize;
    loop {
        tokio::select! {
            biased;
            _ = session.wake.notified() => {
                let drained = session.drain();
                let mut chunk = BytesMut::new();
                if let Some(m) = drained.messages {
                    chunk.put_slice(&style.wrap(&m));
                }
                if let Some(c) = &drained.close {
                    chunk.put_slice(&style.wrap(c));
                }
                sent += chunk.len();
                if !chunk.is_empty() && !out.send(chunk.freeze()).await {
                    return; // the client went away: `receiver` interrupts the session
                }
                if drained.close.is_some() || sent >= limit {
                    break;
                }
            }
            _ = out.keepalive() => {
                if !out.send(style.wrap(frame::HEARTBEAT)).await {
                    return;
                }
            }
            _ = out.gone() => return,
        }
    }
    receiver.finish();
}
