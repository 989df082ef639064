//! `tidings-bench cluster` (issue 17): 1, 2 and 3 server nodes on one Redis, subscribers
//! spread evenly over the nodes, one publisher on the first node; deliveries per second at
//! saturation and publish-to-delivery latency (at saturation and at a fixed offered rate),
//! the CPU and memory of the nodes and of redis-server. tidings against the official Node
//! socket.io server on its two Redis adapters, with the same clients in the same run.
//!
//! The nodes and redis-server share the server CPU (`--server-cpu`); the load generator (the
//! fleet's workers and the publisher) has the other. One `redis-server` serves the whole run
//! and is emptied before each measurement.

mod nodes;
mod redis;
mod report;

use crate::fanout::drain;
use crate::fleet::{self, Fleet, Spread};
use crate::peer::{tidings_binary, Peer};
use crate::progress;
use crate::protocol::{Command, WorkerSpec};
use crate::publisher::{Publisher, PublisherSpec};
use crate::stats::{self, Percentiles};
use crate::target::Common;
use nodes::Node;
use redis::RedisServer;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const TOPIC: &str = "bench.cluster";

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) common: Common,
    /// Cluster kinds, in the order they run.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "tidings,tidings-ws,socketio-streams,socketio-redis"
    )]
    pub(crate) targets: Vec<Node>,
    /// Node counts measured for each kind.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub(crate) nodes: Vec<usize>,
    /// Subscribers in all, spread evenly over the nodes.
    #[arg(long, default_value_t = 1000)]
    pub(crate) subscribers: usize,
    /// Runs of everything; tables show medians.
    #[arg(long, default_value_t = 1)]
    pub(crate) runs: usize,
    /// Seconds measured at saturation (after `--warmup`).
    #[arg(long, default_value_t = 5)]
    pub(crate) seconds: u64,
    /// Seconds of publishing before measuring.
    #[arg(long, default_value_t = 2)]
    pub(crate) warmup: u64,
    /// The fixed offered rate (messages/s; each goes to every subscriber) at which latency
    /// is also measured.
    #[arg(long, default_value_t = 50.0)]
    pub(crate) rate: f64,
    /// Seconds of latency recording at the fixed rate (after one second at that rate).
    #[arg(long, default_value_t = 4)]
    pub(crate) rate_seconds: u64,
    /// Payload bytes (the send time, padded).
    #[arg(long, default_value_t = 64)]
    pub(crate) payload: usize,
    /// Messages the publisher may be ahead of the slowest subscriber.
    #[arg(long, default_value_t = 64)]
    pub(crate) window: u64,
    /// Print each node's PID and wait this many extra seconds at saturation (for
    /// `perf record -p PID`).
    #[arg(long, default_value_t = 0)]
    pub(crate) profile_seconds: u64,
}

/// One measurement of one cluster.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sample {
    pub(crate) deliveries_per_sec: f64,
    pub(crate) saturated: Percentiles,
    /// At the fixed rate: deliveries per second achieved and their latency.
    pub(crate) paced_deliveries_per_sec: f64,
    pub(crate) paced: Percentiles,
    /// Cores used while saturated: all nodes together, and redis-server.
    pub(crate) nodes_cpu: f64,
    pub(crate) redis_cpu: f64,
    /// Share of its core the load generator used while saturated.
    pub(crate) client_cpu: f64,
    /// Peak RSS while saturated, all nodes together, and redis-server's.
    pub(crate) nodes_rss_mib: f64,
    pub(crate) redis_rss_mib: f64,
    /// Messages a subscriber never got, got twice, and subscribers the servers closed.
    pub(crate) missed: u64,
    pub(crate) duplicates: u64,
    pub(crate) closed: usize,
}

pub(crate) fn run(args: Args) -> Result<(), String> {
    if args.nodes.contains(&0) || args.subscribers == 0 {
        return Err("--nodes and --subscribers must be at least 1".into());
    }
    args.common.pin_load_generator()?;
    let load = stats::load_average();
    let server_cpu = Some(args.common.server_cpu);
    let redis = RedisServer::start(server_cpu)?;
    eprintln!(
        "cluster: redis-server pid {} at {}",
        redis.process.pid(),
        redis.url()
    );
    // results[k][n] = samples of target k with node count n.
    let mut results: Vec<Vec<Vec<Sample>>> =
        vec![vec![Vec::new(); args.nodes.len()]; args.targets.len()];
    for run in 1..=args.runs {
        for (ni, &n) in args.nodes.iter().enumerate() {
            for (ti, &target) in args.targets.iter().enumerate() {
                redis.flush()?;
                let s = measure(&args, &redis, target, n)?;
                eprintln!(
                    "cluster run {run} {:34} x{n}: {:>9.0} deliveries/s p99 {:.1} ms | at {}/s p99 {:.1} ms | nodes {:.0} % redis {:.0} % client {:.0} % CPU | missed {} dup {} closed {}",
                    target.name(),
                    s.deliveries_per_sec,
                    s.saturated.p99_ms,
                    args.rate,
                    s.paced.p99_ms,
                    s.nodes_cpu * 100.0,
                    s.redis_cpu * 100.0,
                    s.client_cpu * 100.0,
                    s.missed,
                    s.duplicates,
                    s.closed
                );
                results[ti][ni].push(s);
            }
        }
    }
    report::write(&args, &results, load)
}

/// Starts `n` nodes of `target`, subscribes the fleet, measures, stops everything.
fn measure(args: &Args, redis: &RedisServer, target: Node, n: usize) -> Result<Sample, String> {
    let tidings = tidings_binary(args.common.tidings.as_deref())?;
    let nodes = target.start(
        n,
        &redis.url(),
        &tidings,
        &args.common.peers,
        Some(args.common.server_cpu),
    )?;
    let addrs = nodes
        .iter()
        .map(|p| p.addr.parse::<SocketAddr>().map_err(|e| format!("{e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut fleet = Fleet::spawn(&spread(target, &addrs, args.subscribers))?;
    fleet.wait_ready(
        &format!("{} x{n} subscribing", target.name()),
        args.subscribers,
        Duration::from_secs(120),
    )?;
    let mut published = 0u64;
    let mut sample = Sample::default();
    // The fixed rate first, on a cluster with nothing queued; saturation last, since a
    // cluster that cannot keep up leaves a backlog behind.
    paced(
        args,
        target,
        addrs[0],
        &mut fleet,
        &mut published,
        &mut sample,
    )?;
    saturate(
        args,
        target,
        addrs[0],
        (&nodes, redis),
        &mut fleet,
        &mut published,
        &mut sample,
    )?;
    let finals = fleet.stop()?;
    sample.missed = finals.iter().map(|f| f.missed).sum();
    sample.duplicates = finals.iter().map(|f| f.duplicates).sum();
    sample.closed = finals.iter().map(|f| f.closed).sum();
    Ok(sample)
}

/// Worker specs putting `subscribers` evenly on the nodes at `addrs` (the first nodes take
/// one more when it does not divide), with suite-wide connection numbers.
fn spread(target: Node, addrs: &[SocketAddr], subscribers: usize) -> Vec<WorkerSpec> {
    let mut specs = Vec::new();
    let mut first = 0;
    for (k, &addr) in addrs.iter().enumerate() {
        let share = subscribers / addrs.len() + usize::from(k < subscribers % addrs.len());
        for mut spec in fleet::plan(
            addr,
            target.dialect(),
            share,
            Some(TOPIC),
            Spread::default(),
        ) {
            spec.first_index += first;
            specs.push(spec);
        }
        first += share;
    }
    specs
}

fn publisher_spec(args: &Args, target: Node, addr: SocketAddr, rate: Option<f64>) -> PublisherSpec {
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

fn paced(
    args: &Args,
    target: Node,
    addr: SocketAddr,
    fleet: &mut Fleet,
    published: &mut u64,
    sample: &mut Sample,
) -> Result<(), String> {
    let totals = fleet.totals_handle();
    let publisher = Publisher::start(
        publisher_spec(args, target, addr, Some(args.rate)),
        *published,
        move || totals().slowest,
    );
    std::thread::sleep(Duration::from_secs(1));
    fleet.send(Command::Record)?;
    let (t0, d0) = (Instant::now(), fleet.totals().delivered);
    wait_with_bar(
        &format!("{} at {}/s", target.name(), args.rate),
        Duration::from_secs(args.rate_seconds),
        String::new,
    );
    let (elapsed, d1) = (t0.elapsed().as_secs_f64(), fleet.totals().delivered);
    *published += publisher.stop()?;
    drain(fleet, *published);
    sample.paced_deliveries_per_sec = (d1 - d0) as f64 / elapsed;
    sample.paced = Percentiles::of(&fleet.histograms()?.0);
    Ok(())
}

fn saturate(
    args: &Args,
    target: Node,
    addr: SocketAddr,
    (nodes, redis): (&[Peer], &RedisServer),
    fleet: &mut Fleet,
    published: &mut u64,
    sample: &mut Sample,
) -> Result<(), String> {
    let totals = fleet.totals_handle();
    let publisher = Publisher::start(
        publisher_spec(args, target, addr, None),
        *published,
        move || totals().slowest,
    );
    std::thread::sleep(Duration::from_secs(args.warmup));
    if args.profile_seconds > 0 {
        let pids: Vec<String> = nodes.iter().map(|p| p.pid().to_string()).collect();
        eprintln!(
            "cluster: profiling window of {} s: node pids {} (redis-server {})",
            args.profile_seconds,
            pids.join(","),
            redis.process.pid()
        );
        std::thread::sleep(Duration::from_secs(args.profile_seconds));
    }
    fleet.send(Command::Record)?;
    let nodes_cpu = || nodes.iter().map(Peer::cpu_secs).sum::<f64>();
    let client_cpu = || fleet.cpu_secs() + stats::cpu_secs(std::process::id()).unwrap_or(0.0);
    let (t0, d0, n0, r0, c0) = (
        Instant::now(),
        fleet.totals().delivered,
        nodes_cpu(),
        redis.process.cpu_secs(),
        client_cpu(),
    );
    let mut rss = (0.0f64, 0.0f64);
    wait_with_bar(
        &format!("{} x{} saturated", target.name(), nodes.len()),
        Duration::from_secs(args.seconds),
        || {
            rss.0 = rss.0.max(nodes.iter().map(Peer::rss_mib).sum());
            rss.1 = rss.1.max(redis.process.rss_mib());
            let rate = (fleet.totals().delivered - d0) as f64 / t0.elapsed().as_secs_f64();
            format!("{rate:.0} deliveries/s")
        },
    );
    let (elapsed, d1, n1, r1, c1) = (
        t0.elapsed().as_secs_f64(),
        fleet.totals().delivered,
        nodes_cpu(),
        redis.process.cpu_secs(),
        client_cpu(),
    );
    *published += publisher.stop()?;
    drain(fleet, *published);
    sample.deliveries_per_sec = (d1 - d0) as f64 / elapsed;
    sample.saturated = Percentiles::of(&fleet.histograms()?.0);
    sample.nodes_cpu = (n1 - n0) / elapsed;
    sample.redis_cpu = (r1 - r0) / elapsed;
    sample.client_cpu = (c1 - c0) / elapsed;
    (sample.nodes_rss_mib, sample.redis_rss_mib) = rss;
    Ok(())
}

/// Sleeps `span` in steps of 250 ms, showing a progress bar with `status()` as its message.
fn wait_with_bar(label: &str, span: Duration, mut status: impl FnMut() -> String) {
    let bar = progress::phase_bar(label, span);
    let t0 = Instant::now();
    while t0.elapsed() < span {
        std::thread::sleep(Duration::from_millis(250).min(span.saturating_sub(t0.elapsed())));
        bar.set_position(t0.elapsed().as_millis() as u64);
        bar.set_message(status());
    }
    bar.finish_and_clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_spread_evenly_over_the_nodes_with_distinct_numbers() {
        let addrs: Vec<SocketAddr> = ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let specs = spread(Node::Tidings, &addrs, 1000);
        let shares: Vec<(u16, usize, usize)> = specs
            .iter()
            .map(|s| (s.server.port(), s.first_index, s.connections))
            .collect();
        assert_eq!(shares, [(1, 0, 334), (2, 334, 333), (3, 667, 333)]);
    }
}
