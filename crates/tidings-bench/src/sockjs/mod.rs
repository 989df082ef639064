//! `tidings-bench sockjs`: C SockJS clients on one transport (websocket, xhr-streaming,
//! xhr-polling) receive every message one publisher sends; deliveries per second (counted by
//! the clients), publish-to-receive latency, the server's RSS and CPU, and the load
//! generator's own CPU share, for tidings' `/sockjs` and for sockjs-node
//! (`bench/peers/sockjs-node-server.js`), alternating in the same run.
//!
//! The clients are this crate's own SockJS client (`session`, framing in `frame`; checked
//! against the real `sockjs-client` by tests/sockjs_client.rs) in worker processes
//! (`worker`, started through `fleet` and speaking `protocol`), all pinned to the load
//! generator's CPU; the server gets the other CPU. A node `sockjs-client` per connection costs
//! more than the servers it measures (issue 19): the load generator's CPU share is printed so
//! a reader sees which side limits.

mod frame;
mod http;
mod probe;
mod publish;
mod session;
mod strings;
mod worker;

pub(crate) use probe::{run as probe, Args as ProbeArgs};
pub(crate) use worker::{run as worker, Args as WorkerArgs};

use crate::fleet::Fleet;
use crate::peer::{median, start_node, start_tidings, tidings_binary, Peer};
use crate::protocol::Command;
use crate::stats::{self, Percentiles};
use crate::target::Common;
use publish::{Form, Pace, Publisher};
use session::Transport;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// SockJS clients (sessions) per run.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Transports, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "websocket,xhr-streaming,xhr-polling"
    )]
    transports: Vec<Transport>,
    /// Servers, in order: `tidings`, `sockjs-node`.
    #[arg(long, value_delimiter = ',', default_value = "tidings,sockjs-node")]
    servers: Vec<String>,
    /// Messages per second the publisher sends; 0 saturates (as fast as the slowest client
    /// takes them, see `--window`).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// At saturation: messages the publisher may be ahead of the slowest client.
    #[arg(long, default_value_t = 128)]
    window: u64,
    /// At saturation: messages per SockJS send of the publisher.
    #[arg(long, default_value_t = 8)]
    batch: u64,
    /// Seconds measured per run (after the warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds of publishing before measuring.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Rounds; each measures every transport on every server; the table shows medians.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Payload bytes per message (its text; the send time first).
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Worker processes holding the sessions.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Sessions per source address 127.0.0.x: tidings' `sockjs.max_sessions_per_ip` (100).
    #[arg(long, default_value_t = 100)]
    per_source: usize,
    #[command(flatten)]
    common: Common,
}

const TOPIC: &str = "bench.sockjs";
const PREFIX: &str = "/sockjs";

/// One run of one transport on one server.
#[derive(Debug, Clone, Default)]
struct Sample {
    deliveries_per_sec: f64,
    latency: Percentiles,
    /// CPU share of one core over the measured seconds.
    server_cpu: f64,
    load_cpu: f64,
    rss_idle_mib: f64,
    rss_peak_mib: f64,
    missed: u64,
    duplicates: u64,
    /// Sessions the server ended.
    lost: u64,
}

pub(crate) fn run(args: Args) -> Result<(), String> {
    args.common.pin_load_generator()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let load_at_start = stats::load_average();
    let pace = match args.rate {
        0 => format!("saturating (window {}, batch {})", args.window, args.batch),
        r => format!("{r} msg/s"),
    };
    println!(
        "sockjs broadcast: {} clients in {} worker processes, publisher {pace}, {}-byte payloads, {} s measured after {} s warm-up, {} rounds; servers on CPU {}, load generator on CPU {}",
        args.clients, args.workers, args.payload, args.seconds, args.warmup, args.rounds,
        args.common.server_cpu, args.common.client_cpu
    );
    let mut results: Vec<((Transport, String), Vec<Sample>)> = Vec::new();
    for t in &args.transports {
        for s in &args.servers {
            results.push(((*t, s.clone()), Vec::new()));
        }
    }
    for round in 1..=args.rounds {
        for ((transport, server), samples) in results.iter_mut() {
            let peer = start(&args, server)?;
            let sample = measure(&args, &runtime, &peer, *transport, server)?;
            println!(
                "round {round} {:13} {server:11} {:>9.0} deliveries/s  p50 {:>7.1} ms  p99 {:>7.1} ms  server CPU {:>3.0}%  load generator CPU {:>3.0}%  RSS {:>6.1} MiB idle {:>6.1} MiB peak  missed {} dup {} lost {}",
                transport.name(), sample.deliveries_per_sec, sample.latency.p50_ms,
                sample.latency.p99_ms, sample.server_cpu * 100.0, sample.load_cpu * 100.0,
                sample.rss_idle_mib, sample.rss_peak_mib, sample.missed, sample.duplicates,
                sample.lost
            );
            samples.push(sample);
            drop(peer);
        }
    }
    let table = report(&results, &args.servers, &args.transports);
    let note = stats::load_note(load_at_start);
    println!("\n{table}\n{note}");
    if let Some(out) = &args.common.out {
        std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
        let text = format!("{table}\n{note}\n");
        std::fs::write(out.join("results.md"), text).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn start(args: &Args, server: &str) -> Result<Peer, String> {
    let cpu = Some(args.common.server_cpu);
    match server {
        "tidings" => start_tidings(&tidings_binary(args.common.tidings.as_deref())?, cpu),
        "sockjs-node" => start_node(
            &args.common.peers.join("sockjs-node-server.js"),
            "listening on ",
            cpu,
        ),
        other => Err(format!("unknown server {other:?} (tidings, sockjs-node)")),
    }
}

fn load_generator_cpu(fleet: &Fleet) -> f64 {
    fleet.cpu_secs() + stats::cpu_secs(std::process::id()).unwrap_or(0.0)
}

fn measure(
    args: &Args,
    runtime: &tokio::runtime::Runtime,
    peer: &Peer,
    transport: Transport,
    server: &str,
) -> Result<Sample, String> {
    let addr: SocketAddr = peer
        .addr
        .parse()
        .map_err(|e| format!("server address {:?}: {e}", peer.addr))?;
    let tidings = server == "tidings";
    let workers = args.workers.clamp(1, args.clients.max(1));
    let specs: Vec<String> = (0..workers)
        .map(|w| {
            let share = args.clients / workers + usize::from(w < args.clients % workers);
            let first = (0..w)
                .map(|v| args.clients / workers + usize::from(v < args.clients % workers))
                .sum();
            crate::protocol::line(&worker::Spec {
                server: addr,
                prefix: PREFIX.into(),
                transport,
                sessions: share,
                first_index: first,
                per_source: args.per_source,
                subscribe: tidings.then(|| TOPIC.to_owned()),
                concurrency: 64,
                // The publisher paces itself on the slowest client as these ticks report
                // it: at 20 ms they were stale by more than a window's worth of messages,
                // and the pacing, not the server, set the rate.
                tick_ms: 5,
            })
        })
        .collect();
    let mut fleet = Fleet::spawn_as("sockjs-worker", &specs)?;
    fleet.wait_ready(transport.name(), args.clients, Duration::from_secs(90))?;
    std::thread::sleep(Duration::from_millis(500));
    let rss_idle = peer.rss_mib();

    let stop = Arc::new(AtomicBool::new(false));
    let publisher = Publisher {
        server: addr,
        prefix: PREFIX.into(),
        topic: TOPIC.into(),
        form: if tidings { Form::Native } else { Form::Relayed },
        payload: args.payload,
        pace: match args.rate {
            0 => Pace::Saturate {
                window: args.window,
                // A batch over the window would never be sent.
                batch: args.batch.clamp(1, args.window.max(1)),
            },
            r => Pace::Rate(r),
        },
    };
    let totals = fleet.totals_handle();
    let publishing = runtime.spawn(publisher.run(stop.clone(), move || totals().slowest));
    std::thread::sleep(Duration::from_secs(args.warmup));

    fleet.send(Command::Record)?;
    let (t0, d0) = (Instant::now(), fleet.totals().delivered);
    let (server_cpu0, load_cpu0) = (peer.cpu_secs(), load_generator_cpu(&fleet));
    let mut rss_peak = rss_idle;
    let end = t0 + Duration::from_secs(args.seconds);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(250));
        rss_peak = rss_peak.max(peer.rss_mib());
        if publishing.is_finished() {
            break;
        }
    }
    let (elapsed, d1) = (t0.elapsed().as_secs_f64(), fleet.totals().delivered);
    let (server_cpu1, load_cpu1) = (peer.cpu_secs(), load_generator_cpu(&fleet));
    stop.store(true, Ordering::Relaxed);
    let published = runtime.block_on(publishing).map_err(|e| e.to_string())??;
    if published == 0 {
        return Err("the publisher sent nothing".into());
    }
    let (latency, _) = fleet.histograms()?;
    let finals = fleet.stop()?;
    Ok(Sample {
        deliveries_per_sec: (d1 - d0) as f64 / elapsed,
        latency: Percentiles::of(&latency),
        server_cpu: (server_cpu1 - server_cpu0) / elapsed,
        load_cpu: (load_cpu1 - load_cpu0) / elapsed,
        rss_idle_mib: rss_idle,
        rss_peak_mib: rss_peak,
        missed: finals.iter().map(|f| f.missed).sum(),
        duplicates: finals.iter().map(|f| f.duplicates).sum(),
        lost: finals.iter().map(|f| f.closed as u64).sum(),
    })
}

/// Server CPU time per delivery: what the server does with a core, whatever share of it the
/// shared machine gave it.
fn micros_per_delivery(s: &Sample) -> f64 {
    s.server_cpu / s.deliveries_per_sec.max(f64::MIN_POSITIVE) * 1e6
}

/// The markdown table of medians, then per transport how tidings compares (median of the
/// per-round ratios: each round measures both servers back to back).
fn report(
    results: &[((Transport, String), Vec<Sample>)],
    servers: &[String],
    transports: &[Transport],
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| transport | server | deliveries/s | p50 ms | p99 ms | server CPU | server CPU µs per delivery | load generator CPU | RSS idle MiB | RSS peak MiB | missed / dup / lost |");
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for ((transport, server), samples) in results {
        let m = |f: fn(&Sample) -> f64| median(samples.iter().map(f));
        let _ = writeln!(
            out,
            "| {} | {server} | {:.0} | {:.1} | {:.1} | {:.0}% | {:.2} | {:.0}% | {:.1} | {:.1} | {} / {} / {} |",
            transport.name(),
            m(|s| s.deliveries_per_sec),
            m(|s| s.latency.p50_ms),
            m(|s| s.latency.p99_ms),
            m(|s| s.server_cpu) * 100.0,
            m(micros_per_delivery),
            m(|s| s.load_cpu) * 100.0,
            m(|s| s.rss_idle_mib),
            m(|s| s.rss_peak_mib),
            samples.iter().map(|s| s.missed).sum::<u64>(),
            samples.iter().map(|s| s.duplicates).sum::<u64>(),
            samples.iter().map(|s| s.lost).sum::<u64>(),
        );
    }
    let [a, b] = servers else { return out };
    let _ = writeln!(out);
    for t in transports {
        let find = |s: &String| {
            results
                .iter()
                .find(|((rt, rs), _)| rt == t && rs == s)
                .map(|(_, v)| v.as_slice())
                .unwrap_or(&[])
        };
        let (sa, sb) = (find(a), find(b));
        let ratio = |f: fn(&Sample) -> f64| {
            median(
                sa.iter()
                    .zip(sb)
                    .map(|(x, y)| f(x) / f(y).max(f64::MIN_POSITIVE)),
            )
        };
        let _ = writeln!(
            out,
            "{}: {a} vs {b}, median of per-round ratios: {:.2}x the deliveries/s, {:.2}x the deliveries per server CPU-second, {:.2}x the p99, {:.2}x the peak RSS",
            t.name(),
            ratio(|s| s.deliveries_per_sec),
            ratio(|s| 1.0 / micros_per_delivery(s).max(f64::MIN_POSITIVE)),
            ratio(|s| s.latency.p99_ms),
            ratio(|s| s.rss_peak_mib),
        );
    }
    out
}
