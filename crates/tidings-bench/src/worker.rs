//! The hidden `worker` subcommand: one load-generator process holding its share of the
//! connections (one process here can hold about 20,000 sockets), on one single-threaded tokio
//! runtime (the parent pins every worker to the load generator's CPU). It reports counters on
//! stdout and obeys commands on stdin (see `protocol`).
//!
//! Each connection is one task: connect from its source address, greet, subscribe, then count
//! deliveries, check that offsets follow each other (gaps are missed messages, repeats are
//! duplicates) and record latency when asked. On `drop` every task closes its socket abruptly
//! (SO_LINGER 0: a reset) and reconnects at once, resuming after the last offset it got.

use crate::client::{self, Dialect};
use crate::counters::{lock, serve_commands, Counters};
use crate::protocol::WorkerSpec;
use futures::StreamExt;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use yawc::OpCode;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The worker's [`WorkerSpec`] as JSON.
    spec: String,
}

/// What the connection tasks of one worker share.
struct Shared {
    spec: WorkerSpec,
    counters: Counters,
    /// When the last `drop` came (the reconnect times count from it).
    dropped_at: Mutex<Option<Instant>>,
    /// Limits handshakes in flight, as a client fleet's connect gate would.
    gate: Semaphore,
}

pub(crate) fn run(args: Args) -> Result<(), String> {
    let spec: WorkerSpec =
        serde_json::from_str(&args.spec).map_err(|e| format!("bad worker spec: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(work(spec));
    Ok(())
}

async fn work(spec: WorkerSpec) {
    let n = spec.connections;
    let shared = Arc::new(Shared {
        gate: Semaphore::new(spec.concurrency.max(1)),
        counters: Counters::new(n),
        spec,
        dropped_at: Mutex::new(None),
    });
    let (drop_tx, drop_rx) = watch::channel(0u64);
    for i in 0..n {
        tokio::spawn(connection(shared.clone(), i, drop_rx.clone()));
    }
    serve_commands(&shared.counters, shared.spec.tick_ms, || {
        *lock(&shared.dropped_at) = Some(Instant::now());
        drop_tx.send_modify(|generation| *generation += 1);
    })
    .await;
}

/// Where a subscriber is in its topic: enough to resume.
#[derive(Default)]
struct Position {
    last: Option<u64>,
    epoch: Option<String>,
}

/// One connection, reconnected after every `drop`, until the server closes it.
async fn connection(shared: Arc<Shared>, i: usize, mut drops: watch::Receiver<u64>) {
    let spec = &shared.spec;
    let source = client::source_address(spec.first_index + i, spec.per_source);
    let mut position = Position::default();
    let mut reconnecting = false;
    loop {
        let mut ws = open(&shared, spec.server, source, &mut position).await;
        shared.counters.ready.fetch_add(1, Ordering::Relaxed);
        if reconnecting {
            let since = lock(&shared.dropped_at).map(|t| t.elapsed());
            if let Some(d) = since {
                lock(&shared.counters.back).saturating_record(d.as_micros() as u64);
            }
        }
        drops.borrow_and_update();
        loop {
            tokio::select! {
                frame = ws.next() => match frame {
                    Some(frame) => {
                        if frame.opcode() != OpCode::Text {
                            continue;
                        }
                        let payload = frame.payload();
                        if spec.dialect == Dialect::SocketIo && payload.as_ref() == b"2" {
                            // Engine.IO ping: an unanswered one closes the session.
                            let _ = client::send(&mut ws, "3".into()).await;
                            continue;
                        }
                        received(&shared, i, payload, &mut position);
                    }
                    None => {
                        shared.counters.ready.fetch_sub(1, Ordering::Relaxed);
                        shared.counters.closed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                },
                changed = drops.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    break;
                }
            }
        }
        // Dropping the socket with SO_LINGER 0 resets the connection.
        drop(ws);
        shared.counters.ready.fetch_sub(1, Ordering::Relaxed);
        reconnecting = true;
    }
}

/// Connects, greets and subscribes (resuming from `position`), retrying after failures until
/// it works; every failed attempt is counted.
async fn open(
    shared: &Shared,
    server: SocketAddr,
    source: std::net::IpAddr,
    position: &mut Position,
) -> client::Ws {
    let spec = &shared.spec;
    let mut attempt = 0u32;
    loop {
        let result = {
            let _permit = shared.gate.acquire().await;
            tokio::time::timeout(client::HANDSHAKE_TIMEOUT, async {
                let resume = match (spec.dialect, position.last, &position.epoch) {
                    (Dialect::Native | Dialect::NativeTls, Some(last), Some(epoch)) => {
                        Some((last, epoch.as_str()))
                    }
                    _ => None,
                };
                let on_url = spec.url_topic && spec.dialect != Dialect::SocketIo;
                let query = match &spec.topic {
                    Some(topic) if on_url => client::url_topic_query(topic, resume),
                    _ => String::new(),
                };
                let mut ws = client::connect_to(spec.dialect, server, source, &query).await?;
                if let Some(topic) = &spec.topic {
                    let reply = if on_url {
                        client::subscribe_reply(&mut ws).await?
                    } else {
                        client::subscribe(&mut ws, spec.dialect, topic, resume).await?
                    };
                    if spec.dialect != Dialect::SocketIo && position.last.is_none() {
                        position.last = Some(reply.offset);
                    }
                    position.epoch = reply.epoch.or(position.epoch.take());
                }
                Ok::<_, String>(ws)
            })
            .await
            .unwrap_or_else(|_| Err("timed out".into()))
        };
        match result {
            Ok(ws) => return ws,
            Err(e) => {
                let failed = shared.counters.failed.fetch_add(1, Ordering::Relaxed);
                if failed < 3 {
                    // A few reasons on stderr say why attempts fail; the count says how often.
                    eprintln!("tidings-bench worker: attempt from {source} failed: {e}");
                }
                attempt += 1;
                // Back off a little, spread by connection, as reconnecting clients do.
                let ms = 50 * u64::from(attempt.min(10)) + (source_jitter(source) % 50);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
        }
    }
}

fn source_jitter(source: std::net::IpAddr) -> u64 {
    match source {
        std::net::IpAddr::V4(v4) => u64::from(v4.octets()[3]) * 7,
        std::net::IpAddr::V6(_) => 0,
    }
}

/// Counts one text frame if it is a delivered message, checking its offset follows the last.
fn received(shared: &Shared, i: usize, payload: &[u8], position: &mut Position) {
    if let Some(d) = client::delivery(shared.spec.dialect, payload) {
        shared.counters.received(i, d, &mut position.last);
    }
}
