//! `tidings-bench echo`: C WebSocket connections each keep `window` messages in flight to an
//! echo endpoint; echoes per second (counted by the clients), the server's CPU time per echo
//! and its RSS, for tidings' `/echo` and for node `ws` (`bench/peers/ws-echo.js`), at each
//! message size, in the same run. Compression is not offered, so both servers echo the same
//! bytes. The connections are few, so they live in this process (no workers).

use crate::client;
use crate::peer::{self, Peer};
use crate::report::{BarChart, Output, Table};
use crate::stats::median;
use crate::target::Common;
use futures::{SinkExt, StreamExt};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use yawc::{Frame, OpCode, Options, WebSocket};

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) common: Common,
    /// Connections.
    #[arg(long, default_value_t = 100)]
    pub(crate) connections: usize,
    /// Message sizes in bytes.
    #[arg(long, value_delimiter = ',', default_value = "20,16384")]
    pub(crate) sizes: Vec<usize>,
    /// Messages in flight per connection.
    #[arg(long, default_value_t = 8)]
    pub(crate) window: usize,
    /// Seconds measured per run (after one second of warm-up).
    #[arg(long, default_value_t = 5)]
    pub(crate) seconds: u64,
    /// Runs per server and size; the table shows the median.
    #[arg(long, default_value_t = 3)]
    pub(crate) runs: usize,
    /// Load-generator threads (all on the load generator's CPU).
    #[arg(long, default_value_t = 2)]
    pub(crate) threads: usize,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    echoes_per_sec: f64,
    server_cpu_us_per_echo: f64,
    /// Share of its core the load generator used (near 100 %: it may be the limit).
    client_cpu: f64,
    rss_mib: f64,
}

/// The servers, in the table's order; node `ws` (index 1) is the ratio's base. The last is
/// tidings' `/echo` over TLS (`wss://`, the HTTPS listener): what TLS costs, in the same run.
const SERVERS: [&str; 3] = ["tidings /echo", "node ws", "tidings /echo over TLS"];

pub(crate) fn run(args: Args) -> Result<(), String> {
    args.common.pin_load_generator()?;
    let load = crate::stats::load_average();
    let tidings = peer::tidings_binary(args.common.tidings.as_deref())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let cpu = Some(args.common.server_cpu);
    // results[size][server]
    let mut results = vec![[Vec::new(), Vec::new(), Vec::new()]; args.sizes.len()];
    for (zi, &size) in args.sizes.iter().enumerate() {
        for run in 1..=args.runs {
            // Alternate the servers so drift in machine load hits both alike.
            for (si, name) in SERVERS.iter().enumerate() {
                let (server, path) = if si == 0 {
                    (peer::start_tidings(&tidings, cpu)?, "/echo")
                } else if si == 2 {
                    (peer::start_tidings_tls(&tidings, cpu)?, "/echo")
                } else {
                    let script = args.common.peers.join("ws-echo.js");
                    (
                        peer::start_node(&script, "ws-echo: listening on ", cpu)?,
                        "/",
                    )
                };
                let s = rt.block_on(measure(&server, path, size, si == 2, &args))?;
                eprintln!(
                    "echo run {run} {size:>6} B {name:14} {:>9.0} echoes/s  {:.2} µs server CPU each",
                    s.echoes_per_sec, s.server_cpu_us_per_echo
                );
                results[zi][si].push(s);
            }
        }
    }
    report(&args, &results, load)
}

/// Opens the connections, runs one second of warm-up, then counts echoes for `seconds`.
async fn measure(
    server: &Peer,
    path: &str,
    size: usize,
    tls: bool,
    args: &Args,
) -> Result<Sample, String> {
    let addr: SocketAddr = server.addr.parse().map_err(|e| format!("{e}"))?;
    let counted = Arc::new(AtomicU64::new(0));
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let payload = "x".repeat(size);
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let url: url::Url = format!("ws://{addr}{path}")
            .parse()
            .map_err(|e| format!("{e}"))?;
        let tcp = client::tcp_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let stream: client::Stream = if tls {
            tokio_util::either::Either::Right(
                crate::tls::connect(tcp, addr)
                    .await
                    .map_err(|e| format!("tls: {e}"))?,
            )
        } else {
            tokio_util::either::Either::Left(tcp)
        };
        let ws = WebSocket::handshake(url, stream, Options::default().without_compression())
            .await
            .map_err(|e| format!("handshake: {e}"))?;
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
    let own_cpu = || crate::stats::cpu_secs(std::process::id()).unwrap_or(0.0);
    let (cpu0, own0) = (server.cpu_secs(), own_cpu());
    counting.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let total = counted.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let (cpu1, own1) = (server.cpu_secs(), own_cpu());
    let rss_mib = server.rss_mib();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
    Ok(Sample {
        echoes_per_sec: total as f64 / elapsed,
        server_cpu_us_per_echo: (cpu1 - cpu0) * 1e6 / total.max(1) as f64,
        client_cpu: (own1 - own0) / elapsed,
        rss_mib,
    })
}

fn report(args: &Args, results: &[[Vec<Sample>; 3]], load: f64) -> Result<(), String> {
    let mut out = Output::new(args.common.out.as_deref())?;
    out.note(&crate::stats::load_note(load));
    out.note(&format!(
        "{} connections, each keeping {} messages in flight (text frames, no compression offered); server on CPU {}, load generator ({} tokio threads) on CPU {}; servers alternating, median of {} runs of {} s after 1 s of warm-up.",
        args.connections, args.window, args.common.server_cpu, args.threads, args.common.client_cpu, args.runs, args.seconds
    ));
    let mut table = Table::new(&[
        "message size",
        "server",
        "echoes/s",
        "vs node ws",
        "server CPU µs per echo",
        "echoes per server CPU-second",
        "server RSS MiB",
        "client CPU",
    ]);
    let mut series: Vec<(String, Vec<f64>)> = SERVERS
        .iter()
        .map(|s| ((*s).to_owned(), Vec::new()))
        .collect();
    for (zi, &size) in args.sizes.iter().enumerate() {
        let rate = |si: usize| median(results[zi][si].iter().map(|s| s.echoes_per_sec));
        let node = rate(1);
        for (si, name) in SERVERS.iter().enumerate() {
            let samples = &results[zi][si];
            let cpu_us = median(samples.iter().map(|s| s.server_cpu_us_per_echo));
            table.row(vec![
                format!("{size} B"),
                (*name).into(),
                format!("{:.0}", rate(si)),
                format!("{:.2}x", rate(si) / node.max(1e-9)),
                format!("{cpu_us:.2}"),
                format!("{:.0}", 1e6 / cpu_us.max(1e-9)),
                format!("{:.1}", median(samples.iter().map(|s| s.rss_mib))),
                format!(
                    "{:.0} %",
                    median(samples.iter().map(|s| s.client_cpu)) * 100.0
                ),
            ]);
            series[si].1.push(rate(si));
        }
    }
    out.table(&table);
    out.bar_chart(
        "echo",
        &BarChart {
            title: format!(
                "WebSocket echo, {} connections: echoes per second",
                args.connections
            ),
            y_label: "echoes/s".into(),
            categories: args
                .sizes
                .iter()
                .map(|s| format!("{s} B messages"))
                .collect(),
            series,
        },
    )?;
    out.finish("WebSocket echo")
}
