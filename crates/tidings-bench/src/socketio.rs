//! `tidings-bench socketio`: N Socket.IO clients in one room, one publisher broadcasting to
//! it; deliveries per second (counted by the clients) and the server's memory (RSS), for
//! tidings and for the official Node socket.io server, in the same run.
//!
//! The clients speak Engine.IO 4 / Socket.IO 5 over WebSocket directly (a minimal client
//! written here on yawc: a full client per connection would cost the load generator more
//! than the servers it measures). Both servers get the same events: `subscribe(room)` with
//! an ack, then `publish(room, payload)` broadcasts `message` to the room. The publisher is
//! flow-controlled: it stays at most `window` messages ahead of the slowest client, so a
//! server is measured at the rate it really delivers, not at the rate it can buffer.

use futures::{SinkExt, StreamExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use yawc::{Frame, OpCode, Options, WebSocket};

use crate::peer::{median, start_node, start_tidings, tidings_binary, Peer};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Clients in the room.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Seconds measured per run (after the warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds of broadcasting before measuring.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Runs per server; the table shows the median.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Payload bytes per message (a JSON string).
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Messages the publisher may be ahead of the slowest client (flow control).
    #[arg(long, default_value_t = 64)]
    window: u64,
    /// Publishes sent per batch (one flush).
    #[arg(long, default_value_t = 8)]
    batch: u64,
    /// The tidings binary. Default: `tidings` next to this program.
    #[arg(long)]
    tidings: Option<PathBuf>,
    /// The peer server script (run with `node`).
    #[arg(long, default_value = "bench/peers/socketio-server.js")]
    peer: PathBuf,
    /// Servers to measure, in order: `tidings`, `node`.
    #[arg(long, value_delimiter = ',', default_value = "tidings,node")]
    servers: Vec<String>,
    /// Load-generator worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

const ROOM: &str = "bench.room";

/// One measurement.
#[derive(Debug, Clone)]
struct Sample {
    deliveries_per_sec: f64,
    /// Peak RSS (MiB) while broadcasting to the room.
    rss_mib: f64,
    /// RSS (MiB) with every client connected and subscribed, before broadcasting.
    rss_idle_mib: f64,
    lost_clients: usize,
}

pub(crate) fn run(args: Args) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let tidings = tidings_binary(args.tidings.as_deref())?;
    println!(
        "socketio broadcast: {} clients in one room, {}-byte payloads, window {} per client, {} s measured after {} s warm-up, {} runs",
        args.clients, args.payload, args.window, args.seconds, args.warmup, args.runs
    );
    let mut results: Vec<(String, Vec<Sample>)> = args
        .servers
        .iter()
        .map(|s| (s.clone(), Vec::new()))
        .collect();
    for run in 1..=args.runs {
        for (name, samples) in results.iter_mut() {
            let server = match name.as_str() {
                "tidings" => start_tidings(&tidings, None)?,
                "node" => start_node(&args.peer, "socketio-server: listening on ", None)?,
                other => return Err(format!("unknown server {other:?} (tidings, node)")),
            };
            let sample = runtime.block_on(measure(&args, &server))?;
            println!(
                "run {run} {name:8} {:>12.0} deliveries/s   RSS {:>7.1} MiB broadcasting, {:>7.1} MiB idle   lost clients {}",
                sample.deliveries_per_sec, sample.rss_mib, sample.rss_idle_mib, sample.lost_clients
            );
            samples.push(sample);
            drop(server);
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    println!();
    println!("| server | deliveries/s (median) | RSS broadcasting (median) | RSS idle, clients connected |");
    println!("|---|---:|---:|---:|");
    let mut medians = Vec::new();
    for (name, samples) in &results {
        let d = median(samples.iter().map(|s| s.deliveries_per_sec));
        let r = median(samples.iter().map(|s| s.rss_mib));
        let i = median(samples.iter().map(|s| s.rss_idle_mib));
        println!("| {name} | {d:.0} | {r:.1} MiB | {i:.1} MiB |");
        medians.push((name.clone(), d, r));
    }
    if let ([(a, da, ra), (b, db, rb)], [(_, sa), (_, sb)]) =
        (medians.as_slice(), results.as_slice())
    {
        println!();
        println!(
            "{a} vs {b}, medians: {:.2}x the deliveries/s, {:.2}x the memory (RSS while broadcasting)",
            da / db,
            ra / rb
        );
        // Each run measures both servers back to back: the per-run ratio is the fairest on a
        // machine whose load changes.
        let per_run = |f: fn(&Sample) -> f64| -> Vec<f64> {
            sa.iter().zip(sb).map(|(x, y)| f(x) / f(y)).collect()
        };
        let speed = per_run(|s| s.deliveries_per_sec);
        let memory = per_run(|s| s.rss_mib);
        let show = |v: &[f64]| {
            v.iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "{a} vs {b}, per run: deliveries/s {} (median {:.2}x); RSS {} (median {:.2}x)",
            show(&speed),
            median(speed.iter().copied()),
            show(&memory),
            median(memory.iter().copied())
        );
    }
    Ok(())
}

type Ws = WebSocket<TcpStream>;

/// Opens an Engine.IO WebSocket and connects to the main namespace.
async fn sio_connect(addr: &str) -> Result<Ws, String> {
    let url: url::Url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let options = Options::default()
        .with_read_buffer_capacity(4096)
        .with_write_buffer_capacity(4096);
    let mut ws = WebSocket::handshake(url, stream, options)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    expect_text(&mut ws, "0").await?;
    ws.send(Frame::text("40"))
        .await
        .map_err(|e| e.to_string())?;
    expect_text(&mut ws, "40").await?;
    Ok(ws)
}

/// Reads until a text frame starting with `prefix` (answering pings).
async fn expect_text(ws: &mut Ws, prefix: &str) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| format!("no {prefix:?} in time"))?
            .ok_or("connection closed")?;
        if frame.opcode() != OpCode::Text {
            continue;
        }
        let p = frame.payload();
        if p.as_ref() == b"2" {
            ws.send(Frame::text("3")).await.map_err(|e| e.to_string())?;
        } else if p.starts_with(prefix.as_bytes()) {
            return Ok(());
        }
    }
}

async fn measure(args: &Args, server: &Peer) -> Result<Sample, String> {
    let counters: Arc<Vec<AtomicU64>> =
        Arc::new((0..args.clients).map(|_| AtomicU64::new(0)).collect());
    let lost = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let gate = Arc::new(Semaphore::new(64));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<Result<(), String>>(args.clients);
    let mut tasks = Vec::new();
    for i in 0..args.clients {
        let (addr, counters, lost, stop, gate, ready) = (
            server.addr.clone(),
            counters.clone(),
            lost.clone(),
            stop.clone(),
            gate.clone(),
            ready_tx.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let ws = {
                let _permit = gate.acquire().await;
                let mut ws = match sio_connect(&addr).await {
                    Ok(ws) => ws,
                    Err(e) => return drop(ready.send(Err(e)).await),
                };
                let sub = format!("420[\"subscribe\",\"{ROOM}\"]");
                if let Err(e) = ws.send(Frame::text(sub)).await {
                    return drop(ready.send(Err(e.to_string())).await);
                }
                if let Err(e) = expect_text(&mut ws, "430").await {
                    return drop(ready.send(Err(e)).await);
                }
                ws
            };
            let _ = ready.send(Ok(())).await;
            subscriber(ws, &counters[i], &stop).await;
            if !stop.load(Ordering::Relaxed) {
                lost.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    drop(ready_tx);
    for _ in 0..args.clients {
        match ready_rx.recv().await {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(format!("a client could not subscribe: {e}")),
            None => return Err("clients ended early".into()),
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = server.rss_mib();

    let delivered = {
        let counters = counters.clone();
        move || {
            counters
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .sum::<u64>()
        }
    };
    let slowest = {
        let counters = counters.clone();
        move || {
            counters
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .min()
                .unwrap_or(0)
        }
    };
    let publisher = {
        let addr = server.addr.clone();
        let stop = stop.clone();
        let slowest = slowest.clone();
        let (window, batch) = (args.window, args.batch);
        let payload = format!(
            "42[\"publish\",\"{ROOM}\",\"{}\"]",
            "x".repeat(args.payload)
        );
        tokio::spawn(async move { publish(&addr, payload, window, batch, &stop, slowest).await })
    };
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let (t0, d0) = (Instant::now(), delivered());
    let mut rss = server.rss_mib();
    let end = t0 + Duration::from_secs(args.seconds);
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(250)).await;
        rss = rss.max(server.rss_mib());
    }
    let (elapsed, d1) = (t0.elapsed(), delivered());
    stop.store(true, Ordering::Relaxed);
    let published = publisher.await.map_err(|e| e.to_string())??;
    for t in tasks {
        t.abort();
    }
    if published == 0 {
        return Err("the publisher sent nothing".into());
    }
    Ok(Sample {
        deliveries_per_sec: (d1 - d0) as f64 / elapsed.as_secs_f64(),
        rss_mib: rss,
        rss_idle_mib: rss_idle,
        lost_clients: lost.load(Ordering::Relaxed) as usize,
    })
}

/// Counts `message` events until stopped or closed; answers pings.
async fn subscriber(mut ws: Ws, count: &AtomicU64, stop: &AtomicBool) {
    while let Some(frame) = ws.next().await {
        if frame.opcode() != OpCode::Text {
            continue;
        }
        let p = frame.payload();
        if p.starts_with(b"42[\"message\"") {
            count.fetch_add(1, Ordering::Relaxed);
        } else if p.as_ref() == b"2" && ws.send(Frame::text("3")).await.is_err() {
            return;
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
    }
}

/// Publishes in batches while at most `window` messages ahead of the slowest client.
async fn publish(
    addr: &str,
    payload: String,
    window: u64,
    batch: u64,
    stop: &AtomicBool,
    slowest: impl Fn() -> u64,
) -> Result<u64, String> {
    let ws = sio_connect(addr).await?;
    let (mut sink, mut stream) = ws.split();
    let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel::<()>(4);
    let reader = tokio::spawn(async move {
        while let Some(f) = stream.next().await {
            if f.opcode() == OpCode::Text && f.payload().as_ref() == b"2" {
                let _ = pong_tx.send(()).await;
            }
        }
    });
    let mut published: u64 = 0;
    let base = slowest();
    while !stop.load(Ordering::Relaxed) {
        while pong_rx.try_recv().is_ok() {
            sink.feed(Frame::text("3"))
                .await
                .map_err(|e| e.to_string())?;
        }
        let behind = (slowest() - base).min(published);
        if published + batch - behind > window {
            tokio::time::sleep(Duration::from_micros(200)).await;
            continue;
        }
        for _ in 0..batch {
            sink.feed(Frame::text(payload.clone()))
                .await
                .map_err(|e| e.to_string())?;
        }
        sink.flush().await.map_err(|e| e.to_string())?;
        published += batch;
    }
    reader.abort();
    Ok(published)
}
