//! `GET /api/admin/live`: the dashboard's data pushed once a second over Server-Sent Events.
//!
//! ```text
//! retry: 2000
//! event: snapshot     data: {"at_ms", "node", "nodes", "topics", "connections", "queues", "events"}
//! event: snapshot     (one a second, while the stream is open)
//! event: signed_out   (the admin logged out, the session or token expired; the stream ends)
//! ```
//! The ticker (`nodes.rs`) builds one snapshot a second, only while a stream is open, and
//! every stream sends that same `Bytes`: the cost does not grow with the viewers. A stream
//! holds the newest snapshot only (a `watch` channel): a slow reader skips snapshots rather
//! than queueing them, and the listener's write deadline ends one that stops reading.

use super::super::Shared;
use super::views::{connections, events, node, topics, Query};
use super::Admitted;
use crate::drivers::api::error;
use crate::transports::http::Body;
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::{header, Response, StatusCode};
use serde_json::json as j;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// Live admin streams open at once on a node: a few people with a few tabs each.
pub(super) const MAX_LIVE_STREAMS: usize = 32;
/// Rows of topics and of connections a snapshot carries (the page's first rows; a search
/// asks the JSON API).
const SNAPSHOT_ROWS: usize = 200;

const SIGNED_OUT: &[u8] = b"event: signed_out\ndata: {\"type\":\"signed_out\",\"message\":\"the admin session ended; sign in again\"}\n\n";

/// The newest snapshot (one SSE event) and the streams' bound.
pub(super) struct Live {
    latest: watch::Sender<Bytes>,
    streams: Arc<Semaphore>,
}

impl Live {
    pub(super) fn new() -> Live {
        Live {
            latest: watch::Sender::new(Bytes::new()),
            streams: Arc::new(Semaphore::new(MAX_LIVE_STREAMS)),
        }
    }

    /// Whether any stream is open (else the ticker builds no snapshot).
    pub(super) fn watched(&self) -> bool {
        self.latest.receiver_count() > 0
    }

    pub(super) fn publish(&self, snapshot: Bytes) {
        self.latest.send_replace(snapshot);
    }
}

/// Everything the dashboard shows at once, as one `snapshot` event.
pub(super) async fn snapshot(shared: &Shared) -> Bytes {
    let first = Query {
        q: String::new(),
        offset: 0,
        limit: SNAPSHOT_ROWS,
    };
    let data = j!({
        "at_ms": crate::clock::now_ms(),
        "node": node(shared),
        "nodes": super::nodes::nodes(shared).await,
        "topics": topics(&shared.hub, &first),
        "connections": connections(&shared.hub, &first),
        "queues": super::cluster_queues::queues(shared).await,
        "events": events(shared),
    });
    Bytes::from(format!("event: snapshot\ndata: {data}\n\n"))
}

/// One stream's state: what it waits on and what keeps it admitted.
struct Stream {
    shared: Arc<Shared>,
    admitted: Admitted,
    rx: watch::Receiver<Bytes>,
    /// The first snapshot, built for this stream so it does not wait a second.
    first: Option<Bytes>,
    ended: bool,
    /// Returned to the bound when hyper drops the body (the client went away).
    _permit: OwnedSemaphorePermit,
}

/// Opens a live stream for an admitted admin; `503` past [`MAX_LIVE_STREAMS`].
pub(super) async fn stream(shared: &Arc<Shared>, admitted: Admitted) -> Response<Body> {
    let live = &shared.admin.live;
    let Ok(permit) = live.streams.clone().try_acquire_owned() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            &format!("too many live admin streams (at most {MAX_LIVE_STREAMS}); the JSON API still answers"),
        );
    };
    // Subscribed before the first snapshot is built, so no tick in between is missed.
    let rx = live.latest.subscribe();
    let mut first = bytes::BytesMut::from(&b"retry: 2000\n\n"[..]);
    first.extend_from_slice(&snapshot(shared).await);
    let state = Stream {
        shared: shared.clone(),
        admitted,
        rx,
        first: Some(first.freeze()),
        ended: false,
        _permit: permit,
    };
    let body = futures::stream::unfold(state, |mut s| async move {
        let chunk = next(&mut s).await?;
        Some((Ok::<_, Infallible>(Frame::data(chunk)), s))
    });
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(body)));
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    // Proxies such as nginx would otherwise buffer the stream.
    headers.insert("x-accel-buffering", header::HeaderValue::from_static("no"));
    resp
}

/// The stream's next chunk; `None` ends it (shutdown, or after `signed_out`).
async fn next(s: &mut Stream) -> Option<Bytes> {
    if s.ended {
        return None;
    }
    if let Some(first) = s.first.take() {
        return Some(first);
    }
    tokio::select! {
        changed = s.rx.changed() => changed.ok()?,
        _ = s.shared.shutdown.cancelled() => return None,
    }
    if !s
        .shared
        .admin
        .still_admitted(&s.admitted, s.shared.hub.clock())
    {
        s.ended = true;
        return Some(Bytes::from_static(SIGNED_OUT));
    }
    Some(s.rx.borrow_and_update().clone())
}
