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
use crate::protocol::{Command, Event, Final, Tick};
use crate::stats;
use crate::worker::{emit, lock, stdin_commands};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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
    ready: AtomicUsize,
    failed: AtomicU64,
    closed: AtomicUsize,
    missed: AtomicU64,
    duplicates: AtomicU64,
    delivered: Vec<AtomicU64>,
    last_offset: Vec<AtomicU64>,
    recording: AtomicBool,
    /// Uncontended: the runtime has one thread.
    latency: Mutex<Histogram<u64>>,
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
    runtime.block_on(work(spec))
}

async fn work(spec: Spec) -> Result<(), String> {
    let n = spec.sessions;
    let shared = Arc::new(Shared {
        gate: Semaphore::new(spec.concurrency.max(1)),
        spec,
        ready: AtomicUsize::new(0),
        failed: AtomicU64::new(0),
        closed: AtomicUsize::new(0),
        missed: AtomicU64::new(0),
        duplicates: AtomicU64::new(0),
        delivered: (0..n).map(|_| AtomicU64::new(0)).collect(),
        last_offset: (0..n).map(|_| AtomicU64::new(0)).collect(),
        recording: AtomicBool::new(false),
        latency: Mutex::new(stats::micros_histogram()),
        errors_shown: AtomicU64::new(0),
    });
    for i in 0..n {
        tokio::spawn(session(shared.clone(), i));
    }
    let mut commands = stdin_commands();
    let mut ticker = tokio::time::interval(Duration::from_millis(shared.spec.tick_ms.max(1)));
    loop {
        tokio::select! {
            _ = ticker.tick() => emit(&Event::Tick(tick(&shared))),
            command = commands.recv() => match command {
                Some(Command::Record) => {
                    *lock(&shared.latency) = stats::micros_histogram();
                    shared.recording.store(true, Ordering::Relaxed);
                }
                Some(Command::Report) => {
                    shared.recording.store(false, Ordering::Relaxed);
                    emit(&Event::Histograms {
                        latency: stats::to_pairs(&lock(&shared.latency)),
                        back: Vec::new(),
                    });
                }
                // Reconnect storms are the WebSocket workers' business.
                Some(Command::Drop) => {}
                Some(Command::Stop) | None => {
                    emit(&Event::Final(final_counts(&shared)));
                    return Ok(());
                }
            }
        }
    }
}

fn tick(shared: &Shared) -> Tick {
    let counts = shared.delivered.iter().map(|c| c.load(Ordering::Relaxed));
    Tick {
        ready: shared.ready.load(Ordering::Relaxed),
        delivered: counts.clone().sum(),
        slowest: counts.min().unwrap_or(0),
        failed: shared.failed.load(Ordering::Relaxed),
        closed: shared.closed.load(Ordering::Relaxed),
        reconnected: 0,
    }
}

fn final_counts(shared: &Shared) -> Final {
    let t = tick(shared);
    let lasts = shared.last_offset.iter().map(|o| o.load(Ordering::Relaxed));
    Final {
        delivered: t.delivered,
        missed: shared.missed.load(Ordering::Relaxed),
        duplicates: shared.duplicates.load(Ordering::Relaxed),
        failed: t.failed,
        closed: t.closed,
        last_min: lasts.clone().min().unwrap_or(0),
        last_max: lasts.max().unwrap_or(0),
    }
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
                shared.failed.fetch_add(1, Ordering::Relaxed);
                show_error(&shared, &format!("opening from {source} failed: {e}"));
                tokio::time::sleep(Duration::from_millis(100 + (index % 100) as u64)).await;
            }
        }
    }
    let Some((mut session, first_offset, early)) = opened else {
        return;
    };
    let mut last = first_offset;
    shared.ready.fetch_add(1, Ordering::Relaxed);
    for m in early {
        received(&shared, i, m.as_bytes(), &mut last);
    }
    loop {
        match session.next().await {
            Ok(messages) => {
                for m in messages {
                    received(&shared, i, m.as_bytes(), &mut last);
                }
            }
            Err(e) => {
                show_error(&shared, &format!("session {index}: {e}"));
                shared.ready.fetch_sub(1, Ordering::Relaxed);
                shared.closed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }
}

/// Opens the session and, on tidings, subscribes; returns it with the topic's last offset.
/// The messages after the subscribe reply come along: they are deliveries.
async fn open(
    spec: &Spec,
    source: std::net::IpAddr,
    index: usize,
) -> Result<(Session, u64, Vec<String>), String> {
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
/// the `ok` reply and the messages that came after the reply in the same frame.
pub(crate) async fn subscribe(
    session: &mut Session,
    topic: &str,
) -> Result<(u64, Vec<String>), String> {
    let request = format!(r#"{{"op":"subscribe","id":1,"topic":"{topic}"}}"#);
    session.send(&[&request]).await?;
    loop {
        let mut messages = session.next().await?.into_iter();
        while let Some(m) = messages.next() {
            let reply: serde_json::Value =
                serde_json::from_str(&m).map_err(|e| format!("not JSON: {m:?}: {e}"))?;
            match reply["type"].as_str() {
                Some("ok") if reply["id"] == 1 => {
                    return Ok((reply["offset"].as_u64().unwrap_or(0), messages.collect()))
                }
                Some("error") => return Err(format!("subscribe refused: {m}")),
                _ => {}
            }
        }
    }
}

/// Counts one message if it is a delivery, checking its offset follows the last.
fn received(shared: &Shared, i: usize, message: &[u8], last: &mut u64) {
    // Both servers deliver the native protocol's `message` object (the peer relays the one
    // the publisher wrote), so one reader serves both.
    let Some(d) = client::delivery(Dialect::Native, message) else {
        return;
    };
    if let Some(offset) = d.offset {
        if offset <= *last {
            shared.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if offset > *last + 1 {
            shared
                .missed
                .fetch_add(offset - *last - 1, Ordering::Relaxed);
        }
        *last = offset;
        shared.last_offset[i].store(offset, Ordering::Relaxed);
    }
    shared.delivered[i].fetch_add(1, Ordering::Relaxed);
    if shared.recording.load(Ordering::Relaxed) {
        if let Some(sent) = d.sent_ns {
            let us = client::now_ns().saturating_sub(sent) / 1000;
            lock(&shared.latency).saturating_record(us.max(1));
        }
    }
}
