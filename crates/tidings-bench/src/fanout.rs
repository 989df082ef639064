//! `tidings-bench fanout`: one publisher, S subscribers of one topic (spread over worker
//! processes). For each server and each S: deliveries per second at saturation (the publisher
//! never more than `window` messages ahead of the slowest subscriber), the server's CPU time
//! per delivery, then publish-to-receive latency percentiles at fixed broadcast rates (the
//! send time travels in the payload; all processes share the machine's clock).

use crate::fleet::{self, Fleet, Spread};
use crate::peer::Peer;
use crate::progress;
use crate::publisher::{Publisher, PublisherSpec};
use crate::report::{BarChart, Output, Table};
use crate::stats::{median, Percentiles};
use crate::target::{Common, Target};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const TOPIC: &str = "bench.fanout";

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) common: Common,
    /// Subscriber counts.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000,15000")]
    pub(crate) subscribers: Vec<usize>,
    /// Servers, in the order they run.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "tidings,node-ws,socketio"
    )]
    pub(crate) targets: Vec<Target>,
    /// Runs per server and subscriber count; tables show medians.
    #[arg(long, default_value_t = 3)]
    pub(crate) runs: usize,
    /// Seconds measured at saturation (after `--warmup`).
    #[arg(long, default_value_t = 5)]
    pub(crate) seconds: u64,
    /// Seconds of publishing before measuring.
    #[arg(long, default_value_t = 2)]
    pub(crate) warmup: u64,
    /// Broadcast rates (messages/s) at which latency is measured.
    #[arg(long, value_delimiter = ',', default_value = "10,100")]
    pub(crate) latency_rates: Vec<f64>,
    /// Seconds of latency recording per rate (after one second at that rate).
    #[arg(long, default_value_t = 4)]
    pub(crate) latency_seconds: u64,
    /// Payload bytes (the send time, padded).
    #[arg(long, default_value_t = 64)]
    pub(crate) payload: usize,
    /// Messages the publisher may be ahead of the slowest subscriber.
    #[arg(long, default_value_t = 64)]
    pub(crate) window: u64,
    /// Connections per worker process.
    #[arg(long, default_value_t = 5000)]
    pub(crate) per_worker: usize,
}

#[derive(Debug, Clone, Default)]
struct Sample {
    deliveries_per_sec: f64,
    server_cpu_us_per_delivery: f64,
    /// Share of one core the load generator (workers + publisher) used while saturated.
    client_cpu: f64,
    /// Per latency rate: (achieved broadcasts/s, percentiles).
    latency: Vec<(f64, Percentiles)>,
}

pub(crate) fn run(args: Args) -> Result<(), String> {
    args.common.pin_load_generator()?;
    let load = crate::stats::load_average();
    // results[s][t] = samples of subscriber count s on target t.
    let mut results: Vec<Vec<Vec<Sample>>> =
        vec![vec![Vec::new(); args.targets.len()]; args.subscribers.len()];
    for run in 1..=args.runs {
        for (si, &subs) in args.subscribers.iter().enumerate() {
            for (ti, &target) in args.targets.iter().enumerate() {
                let s = measure(&args, target, subs)?;
                eprintln!(
                    "fanout run {run} {subs:>6} subs {:18} {:>10.0} deliveries/s  {:.2} µs server CPU each  client CPU {:.0}%",
                    target.name(),
                    s.deliveries_per_sec,
                    s.server_cpu_us_per_delivery,
                    s.client_cpu * 100.0
                );
                results[si][ti].push(s);
            }
        }
    }
    report(&args, &results, load)
}

fn measure(args: &Args, target: Target, subs: usize) -> Result<Sample, String> {
    let server = target.start(&args.common)?;
    let addr: SocketAddr = server.addr.parse().map_err(|e| format!("{e}"))?;
    let specs = fleet::plan(
        addr,
        target.dialect(),
        subs,
        Some(TOPIC),
        Spread {
            per_worker: args.per_worker,
            ..Spread::default()
        },
    );
    let mut fleet = Fleet::spawn(&specs)?;
    fleet.wait_ready(
        &format!("{} {subs} subscribing", target.name()),
        subs,
        Duration::from_secs(180),
    )?;
    let mut published = 0u64;
    let mut sample = Sample::default();
    // Latency first, on a server with nothing queued; saturation last, since a server that
    // cannot keep up leaves a backlog behind.
    for &rate in &args.latency_rates {
        let r = latency(args, target, addr, &mut fleet, &mut published, rate)?;
        sample.latency.push(r);
    }
    saturate(
        args,
        target,
        &server,
        &mut fleet,
        &mut published,
        &mut sample,
    )?;
    let closed = fleet.totals().closed;
    fleet.stop()?;
    if closed > 0 {
        eprintln!(
            "fanout: {} closed {closed} of {subs} subscribers",
            target.name()
        );
    }
    Ok(sample)
}

fn spec(args: &Args, target: Target, addr: SocketAddr, rate: Option<f64>) -> PublisherSpec {
    PublisherSpec {
        server: addr,
        dialect: target.dialect(),
        topic: TOPIC.into(),
        payload: args.payload,
        rate,
        window: Some(args.window),
        batch: 8,
    }
}

fn saturate(
    args: &Args,
    target: Target,
    server: &Peer,
    fleet: &mut Fleet,
    published: &mut u64,
    sample: &mut Sample,
) -> Result<(), String> {
    let addr: SocketAddr = server.addr.parse().map_err(|e| format!("{e}"))?;
    let totals = fleet.totals_handle();
    let publisher = Publisher::start(spec(args, target, addr, None), *published, move || {
        totals().slowest
    });
    std::thread::sleep(Duration::from_secs(args.warmup));
    let client_cpu =
        || fleet.cpu_secs() + crate::stats::cpu_secs(std::process::id()).unwrap_or(0.0);
    let (t0, d0, s0, c0) = (
        Instant::now(),
        fleet.totals().delivered,
        server.cpu_secs(),
        client_cpu(),
    );
    let span = Duration::from_secs(args.seconds);
    let bar = progress::phase_bar(&format!("{} saturated", target.name()), span);
    while t0.elapsed() < span {
        std::thread::sleep(Duration::from_millis(250));
        let rate = (fleet.totals().delivered - d0) as f64 / t0.elapsed().as_secs_f64();
        bar.set_position(t0.elapsed().as_millis() as u64);
        bar.set_message(format!("{rate:.0} deliveries/s"));
    }
    bar.finish_and_clear();
    let (elapsed, d1, s1, c1) = (
        t0.elapsed().as_secs_f64(),
        fleet.totals().delivered,
        server.cpu_secs(),
        client_cpu(),
    );
    *published += publisher.stop()?;
    let deliveries = d1 - d0;
    sample.deliveries_per_sec = deliveries as f64 / elapsed;
    sample.server_cpu_us_per_delivery = (s1 - s0) * 1e6 / deliveries.max(1) as f64;
    sample.client_cpu = (c1 - c0) / elapsed;
    drain(fleet, *published);
    Ok(())
}

/// Waits (up to 10 s) until the slowest subscriber has everything published.
pub(crate) fn drain(fleet: &Fleet, published: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while fleet.totals().slowest < published && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn latency(
    args: &Args,
    target: Target,
    addr: SocketAddr,
    fleet: &mut Fleet,
    published: &mut u64,
    rate: f64,
) -> Result<(f64, Percentiles), String> {
    let totals = fleet.totals_handle();
    let publisher = Publisher::start(
        spec(args, target, addr, Some(rate)),
        *published,
        move || totals().slowest,
    );
    std::thread::sleep(Duration::from_secs(1));
    fleet.send(crate::protocol::Command::Record)?;
    let sent0 = publisher.sent.load(std::sync::atomic::Ordering::Relaxed);
    let span = Duration::from_secs(args.latency_seconds);
    let bar = progress::phase_bar(&format!("{} latency at {rate}/s", target.name()), span);
    let t0 = Instant::now();
    while t0.elapsed() < span {
        std::thread::sleep(Duration::from_millis(100));
        bar.set_position(t0.elapsed().as_millis() as u64);
    }
    bar.finish_and_clear();
    let sent1 = publisher.sent.load(std::sync::atomic::Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    *published += publisher.stop()?;
    drain(fleet, *published);
    let (hist, _) = fleet.histograms()?;
    Ok(((sent1 - sent0) as f64 / elapsed, Percentiles::of(&hist)))
}

fn report(args: &Args, results: &[Vec<Vec<Sample>>], load: f64) -> Result<(), String> {
    let mut out = Output::new(args.common.out.as_deref())?;
    out.note(&crate::stats::load_note(load));
    out.note(&format!(
        "One publisher, S subscribers of one topic, {} B payloads; subscribers spread over worker processes ({} each); saturation: the publisher at most {} messages ahead of the slowest subscriber, {} s measured after {} s; latency: {} s recorded at each fixed rate; median of {} runs, servers alternating. Client CPU: share of the load generator's core used while saturated (near 100 % means the load generator may be the limit).",
        args.payload, args.per_worker, args.window, args.seconds, args.warmup, args.latency_seconds, args.runs
    ));
    let base_index = args.targets.iter().position(|t| *t == Target::Tidings);
    let mut table = Table::new(&[
        "subscribers",
        "server",
        "deliveries/s",
        "tidings is",
        "server CPU µs per delivery",
        "deliveries per server CPU-second",
        "tidings is (per CPU-second)",
        "client CPU",
    ]);
    let mut series: Vec<(String, Vec<f64>)> = args
        .targets
        .iter()
        .map(|t| (t.name().to_owned(), Vec::new()))
        .collect();
    for (si, &subs) in args.subscribers.iter().enumerate() {
        let rates: Vec<f64> = results[si]
            .iter()
            .map(|s| median(s.iter().map(|x| x.deliveries_per_sec)))
            .collect();
        let cpu_us: Vec<f64> = results[si]
            .iter()
            .map(|s| median(s.iter().map(|x| x.server_cpu_us_per_delivery)))
            .collect();
        for (ti, target) in args.targets.iter().enumerate() {
            let samples = &results[si][ti];
            let ratio = match base_index {
                Some(b) if b != ti && rates[ti] > 0.0 => format!("{:.1}x", rates[b] / rates[ti]),
                _ => String::new(),
            };
            let cpu_ratio = match base_index {
                Some(b) if b != ti && cpu_us[b] > 0.0 => format!("{:.1}x", cpu_us[ti] / cpu_us[b]),
                _ => String::new(),
            };
            table.row(vec![
                subs.to_string(),
                target.name().into(),
                format!("{:.0}", rates[ti]),
                ratio,
                format!("{:.2}", cpu_us[ti]),
                format!("{:.0}", 1e6 / cpu_us[ti].max(1e-9)),
                cpu_ratio,
                format!(
                    "{:.0} %",
                    median(samples.iter().map(|x| x.client_cpu)) * 100.0
                ),
            ]);
            series[ti].1.push(rates[ti]);
        }
    }
    out.table(&table);
    out.bar_chart(
        "deliveries",
        &BarChart {
            title: "Broadcast fan-out: deliveries per second at saturation".into(),
            y_label: "deliveries/s".into(),
            categories: args
                .subscribers
                .iter()
                .map(|s| format!("{s} subscribers"))
                .collect(),
            series,
        },
    )?;
    let mut lat = Table::new(&[
        "subscribers",
        "target rate",
        "server",
        "achieved/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
    ]);
    let mut categories = Vec::new();
    let mut p99: Vec<(String, Vec<f64>)> = args
        .targets
        .iter()
        .map(|t| (t.name().to_owned(), Vec::new()))
        .collect();
    for (ri, rate) in args.latency_rates.iter().enumerate() {
        for (si, &subs) in args.subscribers.iter().enumerate() {
            categories.push(format!("{subs} @ {rate}/s"));
            for (ti, target) in args.targets.iter().enumerate() {
                let samples = &results[si][ti];
                let m = |f: fn(&Percentiles) -> f64| {
                    median(
                        samples
                            .iter()
                            .filter_map(|s| s.latency.get(ri))
                            .map(|l| f(&l.1)),
                    )
                };
                let achieved = median(
                    samples
                        .iter()
                        .filter_map(|s| s.latency.get(ri))
                        .map(|l| l.0),
                );
                lat.row(vec![
                    subs.to_string(),
                    format!("{rate}/s"),
                    target.name().into(),
                    format!("{achieved:.0}"),
                    format!("{:.2}", m(|p| p.p50_ms)),
                    format!("{:.2}", m(|p| p.p99_ms)),
                    format!("{:.2}", m(|p| p.p999_ms)),
                    format!("{:.2}", m(|p| p.max_ms)),
                ]);
                p99[ti].1.push(m(|p| p.p99_ms));
            }
        }
    }
    out.table(&lat);
    out.bar_chart(
        "latency-p99",
        &BarChart {
            title: "Publish-to-receive latency, p99 (lower is better)".into(),
            y_label: "ms".into(),
            categories,
            series: p99,
        },
    )?;
    out.finish("Broadcast fan-out")
}
