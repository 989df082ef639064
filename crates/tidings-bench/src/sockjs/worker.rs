//! The hidden `sockjs-worker` subcommand: one load-generator process holding its share of the
//! SockJS sessions on one single-threaded tokio runtime, speaking the same stdin/stdout
//! protocol as the WebSocket workers (`protocol`: commands in, ticks, histograms and final
//! counts out).
//!
//! Each session is one task: open the session, greet and subscribe when the server is tidings
//! (sockjs-node's peer broadcasts to every session without asking), then count deliveries,
//! check that offsets follow each other (gaps are missed messages, repeats duplicates) and
//! record publish-to-receive latency while asked.

use super::session::{Session, Transport};
use crate::client::{self, Dialect};
use crate::counters::{serve_commands, Counters};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The sessions one worker opens and holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Spec {
    pub(crate) server: SocketAddr,
    /// The SockJS prefix (`/sockjs`).
    pub(crate) prefix: String,
    pub(crate) transport: Transport,
    pub(crate) sessions: usize,
    /// Suite-wide number of this worker's first session (it picks the source addresses).
    pub(crate) first_index: usize,
    /// Sessions per source address 127.0.0.x.
    pub(crate) per_source: usize,
    /// Subscribe to this topic with the native protocol (tidings); `None` only listens.
    pub(crate) subscribe: Option<String>,
    /// Session opens in flight at once.
    pub(crate) concurrency: usize,
    pub(crate) tick_ms: u64,
}

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The worker's [`Spec`] as JSON.
    spec: String,
}

/// How long opening one session (and subscribing) may take before the attempt counts as
/// failed.
const OPEN_TIMEOUT: Duration = Duration::from_secs(20);

/// Attempts per session before the worker gives it up (counted in `failed`).
const ATTEMPTS: u32 = 5;

struct Shared {
    spec: Spec,
    counters: Counters,
    gate: Semaphore,
    /// How many session errors were printed (a few say why; the counts say how often).
    errors_shown: AtomicU64,
}

pub(crate) fn run(args: Args) -> Result<(), String> {
    let spec: Spec =
        serde_json::from_str(&args.spec).map_err(|e| format!("bad worker spec: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(work(spec));
    Ok(())
}

async fn work(spec: Spec) {
    let n = spec.sessions;
    let shared = Arc::new(Shared {
        gate: Semaphore::new(spec.concurrency.max(1)),
        counters: Counters::new(n),
        spec,
        errors_shown: AtomicU64::new(0),
    });
    for i in 0..n {
        tokio::spawn(session(shared.clone(), i));
    }
    // Reconnect storms are the WebSocket workers' business: `drop` does nothing here.
    serve_commands(&shared.counters, shared.spec.tick_ms, || {}).await;
}

fn show_error(shared: &Shared, what: &str) {
    if shared.errors_shown.fetch_add(1, Ordering::Relaxed) < 3 {
        eprintln!("tidings-bench sockjs-worker: {what}");
    }
}

/// One session: opened (retrying a few times), then read until the server ends it.
async fn session(shared: Arc<Shared>, i: usize) {
    let spec = &shared.spec;
    let index = spec.first_index + i;
    let source = client::source_address(index, spec.per_source);
    let mut opened = None;
    for _ in 0..ATTEMPTS {
        let attempt = {
            let _permit = shared.gate.acquire().await;
            tokio::time::timeout(OPEN_TIMEOUT, open(spec, source, index))
                .await
                .unwrap_or_else(|_| Err("timed out".into()))
        };
        match attempt {
            Ok(ok) => {
                opened = Some(ok);
                break;
            }
            Err(e) => {
                shared.counters.failed.fetch_add(1, Ordering::Relaxed);
                show_error(&shared, &format!("opening from {source} failed: {e}"));
                tokio::time::sleep(Duration::from_millis(100 + (index % 100) as u64)).await;
            }
        }
    }
    let Some((mut session, first_offset, early)) = opened else {
        return;
    };
    let mut last = Some(first_offset);
    shared.counters.ready.fetch_add(1, Ordering::Relaxed);
    for m in early {
        received(&shared, i, &m, &mut last);
    }
    let error = loop {
        if let Err(e) = session.next(|m| received(&shared, i, m, &mut last)).await {
            break e;
        }
    };
    show_error(&shared, &format!("session {index}: {error}"));
    shared.counters.ready.fetch_sub(1, Ordering::Relaxed);
    shared.counters.closed.fetch_add(1, Ordering::Relaxed);
}

/// Opens the session and, on tidings, subscribes; returns it with the topic's last offset.
/// The messages after the subscribe reply come along: they are deliveries.
async fn open(
    spec: &Spec,
    source: std::net::IpAddr,
    index: usize,
) -> Result<(Session, u64, Vec<Vec<u8>>), String> {
    let mut session =
        Session::open(spec.transport, spec.server, source, &spec.prefix, index).await?;
    let Some(topic) = &spec.subscribe else {
        return Ok((session, 0, Vec::new()));
    };
    let (offset, early) = subscribe(&mut session, topic).await?;
    session.end_sending();
    Ok((session, offset, early))
}

/// Subscribes with the native protocol over an open session; returns the topic's offset from
/// the `ok` reply and the messages that came after the reply in the same read.
pub(crate) async fn subscribe(
    session: &mut Session,
    topic: &str,
) -> Result<(u64, Vec<Vec<u8>>), String> {
    let request = format!(r#"{{"op":"subscribe","id":1,"topic":"{topic}"}}"#);
    session.send(&[&request]).await?;
    let mut reply: Option<Result<u64, String>> = None;
    let mut early = Vec::new();
    while reply.is_none() {
        session
            .next(|m| {
                if reply.is_some() {
                    early.push(m.to_vec());
                } else {
                    reply = subscribe_reply(m);
                }
            })
            .await?;
    }
    Ok((reply.unwrap_or(Ok(0))?, early))
}

/// The outcome `m` tells when it is the reply to the subscribe request (`id` 1).
fn subscribe_reply(m: &[u8]) -> Option<Result<u64, String>> {
    let text = String::from_utf8_lossy(m);
    let reply: serde_json::Value = match serde_json::from_slice(m) {
        Ok(v) => v,
        Err(e) => return Some(Err(format!("not JSON: {text:?}: {e}"))),
    };
    match reply["type"].as_str() {
        Some("ok") if reply["id"] == 1 => Some(Ok(reply["offset"].as_u64().unwrap_or(0))),
        Some("error") => Some(Err(format!("subscribe refused: {text}"))),
        _ => None,
    }
}

/// Counts one message if it is a delivery, checking its offset follows the last.
fn received(shared: &Shared, i: usize, message: &[u8], last: &mut Option<u64>) {
    // Both servers deliver the native protocol's `message` object (the peer relays the one
    // the publisher wrote), so one reader serves both.
    if let Some(d) = client::delivery(Dialect::Native, message) {
        shared.counters.received(i, d, last);
    }
}
