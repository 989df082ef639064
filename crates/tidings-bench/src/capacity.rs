//! `tidings-bench capacity`: ramp to N idle WebSocket connections (spread over worker
//! processes and source addresses) and measure the connection rate and the server's RSS per
//! connection: (RSS with N connections - RSS before) / N, for tidings and the peers, runs
//! alternating, medians.

use crate::fleet::{self, Fleet, Spread};
use crate::report::{BarChart, Output, Table};
use crate::stats::median;
use crate::target::{Common, Target};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) common: Common,
    /// Idle connections to hold (a server process here can hold about 19,900: the open-file
    /// limit is 20,000 and cannot be raised).
    #[arg(long, default_value_t = 10_000)]
    pub(crate) connections: usize,
    /// Servers, in the order they run.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "tidings,node-ws,tidings-socketio,socketio"
    )]
    pub(crate) targets: Vec<Target>,
    /// Runs per server; tables show medians.
    #[arg(long, default_value_t = 3)]
    pub(crate) runs: usize,
    /// Seconds to let the server settle before reading its RSS.
    #[arg(long, default_value_t = 2)]
    pub(crate) settle: u64,
    /// Connections per worker process.
    #[arg(long, default_value_t = 5000)]
    pub(crate) per_worker: usize,
    /// Connections per source address (tidings admits 1000 per client address by default).
    #[arg(long, default_value_t = fleet::PER_SOURCE)]
    pub(crate) per_source: usize,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    connect_per_sec: f64,
    rss_before_kib: f64,
    rss_after_kib: f64,
    cpu_us_per_conn: f64,
}

impl Sample {
    fn kib_per_conn(&self, n: usize) -> f64 {
        (self.rss_after_kib - self.rss_before_kib) / n as f64
    }
}

pub(crate) fn run(args: Args) -> Result<(), String> {
    args.common.pin_load_generator()?;
    let load = crate::stats::load_average();
    let mut results: Vec<(Target, Vec<Sample>)> =
        args.targets.iter().map(|&t| (t, Vec::new())).collect();
    for run in 1..=args.runs {
        for (target, samples) in results.iter_mut() {
            let s = measure(&args, *target)?;
            eprintln!(
                "capacity run {run} {:18} {:>8.0} conn/s  {:>6.2} KiB/conn",
                target.name(),
                s.connect_per_sec,
                s.kib_per_conn(args.connections)
            );
            samples.push(s);
        }
    }
    report(&args, &results, load)
}

fn measure(args: &Args, target: Target) -> Result<Sample, String> {
    let server = target.start(&args.common)?;
    let addr: SocketAddr = server.addr.parse().map_err(|e| format!("{e}"))?;
    std::thread::sleep(Duration::from_millis(500));
    let (rss0, cpu0) = (server.rss_mib() * 1024.0, server.cpu_secs());
    let specs = fleet::plan(
        addr,
        target.dialect(),
        args.connections,
        None,
        Spread {
            per_worker: args.per_worker,
            per_source: args.per_source,
            ..Spread::default()
        },
    );
    let mut fleet = Fleet::spawn(&specs)?;
    let ramp = fleet.wait_ready(
        &format!("{} connecting", target.name()),
        args.connections,
        Duration::from_secs(180),
    )?;
    std::thread::sleep(Duration::from_secs(args.settle));
    let (rss1, cpu1) = (server.rss_mib() * 1024.0, server.cpu_secs());
    let closed = fleet.totals().closed;
    fleet.stop()?;
    if closed > 0 {
        return Err(format!(
            "{}: the server closed {closed} idle connections",
            target.name()
        ));
    }
    Ok(Sample {
        connect_per_sec: args.connections as f64 / ramp.as_secs_f64(),
        rss_before_kib: rss0,
        rss_after_kib: rss1,
        cpu_us_per_conn: (cpu1 - cpu0) * 1e6 / args.connections as f64,
    })
}

fn report(args: &Args, results: &[(Target, Vec<Sample>)], load: f64) -> Result<(), String> {
    let n = args.connections;
    let mut out = Output::new(args.common.out.as_deref())?;
    out.note(&crate::stats::load_note(load));
    out.note(&format!(
        "{n} idle WebSocket connections per server, opened by {} worker process(es) from source addresses 127.0.0.2.. ({} per address), 256 handshakes in flight per worker; RSS read {} s after the last connection; median of {} runs, servers alternating.",
        n.div_ceil(args.per_worker), args.per_source, args.settle, args.runs
    ));
    let mut table = Table::new(&[
        "server",
        "connections/s",
        "RSS before (MiB)",
        "RSS with connections (MiB)",
        "KiB per connection",
        "vs tidings /ws",
        "server CPU µs per connect",
    ]);
    let per_conn = |s: &[Sample]| median(s.iter().map(|x| x.kib_per_conn(n)));
    let base = results
        .iter()
        .find(|(t, _)| *t == Target::Tidings)
        .map(|(_, s)| per_conn(s));
    let mut kib = Vec::new();
    let mut rate = Vec::new();
    for (target, samples) in results {
        let k = per_conn(samples);
        let r = median(samples.iter().map(|s| s.connect_per_sec));
        table.row(vec![
            target.name().into(),
            format!("{r:.0}"),
            format!(
                "{:.1}",
                median(samples.iter().map(|s| s.rss_before_kib)) / 1024.0
            ),
            format!(
                "{:.1}",
                median(samples.iter().map(|s| s.rss_after_kib)) / 1024.0
            ),
            format!("{k:.2}"),
            base.map(|b| format!("{:.1}x", k / b)).unwrap_or_default(),
            format!("{:.0}", median(samples.iter().map(|s| s.cpu_us_per_conn))),
        ]);
        kib.push((target.name().to_owned(), vec![k]));
        rate.push((target.name().to_owned(), vec![r]));
    }
    out.table(&table);
    out.bar_chart(
        "memory-per-connection",
        &BarChart {
            title: format!("Server RSS per idle WebSocket connection ({n} connections)"),
            y_label: "KiB per connection (lower is better)".into(),
            categories: vec![format!("{n} idle connections")],
            series: kib,
        },
    )?;
    out.bar_chart(
        "connection-rate",
        &BarChart {
            title: format!("Connections opened per second (ramp to {n})"),
            y_label: "connections/s".into(),
            categories: vec![format!("{n} connections")],
            series: rate,
        },
    )?;
    out.finish("Capacity: idle WebSocket connections")
}
