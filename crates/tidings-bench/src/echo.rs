//! `tidings-bench echo`: C WebSocket connections each keep `window` messages in flight to an
//! echo endpoint; echoes per second (counted by the clients) and the server's RSS, for
//! tidings' `/echo` and for node `ws` (`bench/peers/ws-echo.js`), at each message size, in
//! the same run. Compression is not offered, so both servers echo the same bytes.

use crate::peer::{median, Peer};
use futures::{SinkExt, StreamExt};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use yawc::{Frame, OpCode, Options, WebSocket};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Connections.
    #[arg(long, default_value_t = 100)]
    connections: usize,
    /// Message sizes in bytes.
    #[arg(long, value_delimiter = ',', default_value = "20,16384")]
    sizes: Vec<usize>,
    /// Messages in flight per connection.
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// Seconds measured per run (after one second of warm-up).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Runs per server and size; the table shows the median.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The tidings binary. Default: `tidings` next to this program.
    #[arg(long)]
    tidings: Option<PathBuf>,
    /// The peer echo server script (run with `node`).
    #[arg(long, default_value = "bench/peers/ws-echo.js")]
    peer: PathBuf,
    /// Pin servers to this CPU with `taskset` (the load generator should run on another).
    #[arg(long)]
    server_cpu: Option<usize>,
}

struct Sample {
    echoes_per_sec: f64,
    rss_mib: f64,
}

pub(crate) fn run(args: Args) -> Result<(), String> {
    let tidings = match &args.tidings {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("tidings"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    println!(
        "| message size | server | echoes/s (median of {}) | server RSS MiB | vs node ws |",
        args.runs
    );
    println!("|---:|---|---:|---:|---:|");
    for &size in &args.sizes {
        let mut results: Vec<(&str, Vec<Sample>)> =
            vec![("tidings", Vec::new()), ("node ws", Vec::new())];
        for _ in 0..args.runs {
            // Alternate the servers so drift in machine load hits both alike.
            for (name, samples) in results.iter_mut() {
                let pin = |cmd: &mut Command| -> Command {
                    match args.server_cpu {
                        Some(cpu) => {
                            let mut t = Command::new("taskset");
                            t.arg("-c")
                                .arg(cpu.to_string())
                                .arg(cmd.get_program())
                                .args(cmd.get_args());
                            t
                        }
                        None => std::mem::replace(cmd, Command::new("true")),
                    }
                };
                let peer = if *name == "tidings" {
                    let mut cmd = Command::new(&tidings);
                    cmd.args([
                        "serve",
                        "--http",
                        "127.0.0.1:0",
                        "--tcp",
                        "off",
                        "--udp",
                        "off",
                        "--stomp",
                        "off",
                    ]);
                    Peer::start(&mut pin(&mut cmd), "tidings: http listening on ")?
                } else {
                    let mut cmd = Command::new("node");
                    cmd.arg(&args.peer).arg("0");
                    Peer::start(&mut pin(&mut cmd), "ws-echo: listening on ")?
                };
                let path = if *name == "tidings" { "/echo" } else { "/" };
                let url = format!("ws://{}{path}", peer.addr);
                let echoes = rt.block_on(measure(&url, size, &args))?;
                samples.push(Sample {
                    echoes_per_sec: echoes,
                    rss_mib: peer.rss_mib(),
                });
            }
        }
        let node = median(results[1].1.iter().map(|s| s.echoes_per_sec));
        for (name, samples) in &results {
            let rate = median(samples.iter().map(|s| s.echoes_per_sec));
            let rss = median(samples.iter().map(|s| s.rss_mib));
            let ratio = if node > 0.0 { rate / node } else { 0.0 };
            println!("| {size} B | {name} | {rate:.0} | {rss:.1} | {ratio:.2}x |");
        }
    }
    Ok(())
}

/// Opens the connections, runs one second of warm-up, then counts echoes for `seconds`.
async fn measure(url: &str, size: usize, args: &Args) -> Result<f64, String> {
    let counted = Arc::new(AtomicU64::new(0));
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let payload = "x".repeat(size);
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let url: url::Url = url.parse().map_err(|e| format!("{url}: {e}"))?;
        let ws = WebSocket::connect(url)
            .with_options(Options::default().without_compression().with_no_delay())
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (counted, counting, stop, payload) = (
            counted.clone(),
            counting.clone(),
            stop.clone(),
            payload.clone(),
        );
        let window = args.window;
        tasks.push(tokio::spawn(async move {
            let (mut tx, mut rx) = ws.split();
            for _ in 0..window {
                if tx.feed(Frame::text(payload.clone())).await.is_err() {
                    return;
                }
            }
            if tx.flush().await.is_err() {
                return;
            }
            while let Some(frame) = rx.next().await {
                if frame.opcode() != OpCode::Text {
                    continue;
                }
                if counting.load(Ordering::Relaxed) {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
                if stop.load(Ordering::Relaxed)
                    || tx.send(Frame::text(payload.clone())).await.is_err()
                {
                    return;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    counting.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let total = counted.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
    Ok(total as f64 / elapsed)
}
