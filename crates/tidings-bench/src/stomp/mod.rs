//! `tidings-bench stomp`: STOMP pub/sub throughput and latency, tidings against RabbitMQ's
//! STOMP plugin, side by side in the same run on the same machine.
//!
//! For each shape `PxS` (P publishers, S subscribers of one `/topic/...` destination) and each
//! run, both servers get the same load: every publisher keeps at most `--window` messages in
//! flight (sent but not yet received by every subscriber), so each server is driven as fast as
//! it delivers, without overrunning its subscribers. Each message carries its send time; a
//! subscriber records the latency of every message it gets during the measured seconds. The
//! table shows medians over the runs of delivered messages per second (summed over
//! subscribers) and of p50/p99 latency.
//!
//! - `peers`: starting tidings (the release binary) and RabbitMQ (`bench/peers/rabbitmq.sh`);
//! - `load`: the STOMP publishers and subscribers (a small client on tidings-proto's codec).

mod load;
mod peers;

use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The tidings binary (build it with `cargo build --release -p tidings-cli`).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/release/tidings"))]
    tidings: PathBuf,
    /// Measure RabbitMQ too (installs and starts it with bench/peers/rabbitmq.sh).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    rabbitmq: bool,
    /// Seconds measured per run, after one second of warm-up.
    #[arg(long, default_value_t = 5)]
    secs: u64,
    /// Runs per shape and server; the table shows medians.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Message body size in bytes (at least 16: send time and publisher).
    #[arg(long, default_value_t = 128)]
    size: usize,
    /// Messages in flight per publisher.
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// Shapes as PUBLISHERSxSUBSCRIBERS, comma-separated.
    #[arg(long, default_value = "1x1,4x4,1x16")]
    shapes: String,
}

/// One measured run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) msgs_per_sec: f64,
    pub(crate) p50_us: u64,
    pub(crate) p99_us: u64,
}

/// Publishers and subscribers of one scenario.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) publishers: usize,
    pub(crate) subscribers: usize,
}

fn parse_shapes(text: &str) -> Result<Vec<Shape>, String> {
    text.split(',')
        .map(|s| {
            let (p, c) = s
                .trim()
                .split_once('x')
                .ok_or_else(|| format!("shape {s:?} is not PxS"))?;
            let n = |v: &str| {
                v.parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("shape {s:?}: {v:?} is not a positive number"))
            };
            Ok(Shape {
                publishers: n(p)?,
                subscribers: n(c)?,
            })
        })
        .collect()
}

pub(crate) fn run(args: Args) -> Result<(), String> {
    let shapes = parse_shapes(&args.shapes)?;
    if args.size < 16 {
        return Err("--size must be at least 16".into());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let tidings = peers::Tidings::start(&args.tidings)?;
    let rabbit = match args.rabbitmq {
        true => Some(peers::RabbitMq::start()?),
        false => None,
    };
    let mut servers = vec![peers::Target {
        name: "tidings",
        addr: tidings.addr,
    }];
    if let Some(r) = &rabbit {
        servers.push(peers::Target {
            name: "RabbitMQ 3.10 (rabbitmq_stomp)",
            addr: r.addr,
        });
    }
    let load = load::Load {
        secs: Duration::from_secs(args.secs),
        size: args.size,
        window: args.window,
    };
    let mut rows = Vec::new();
    for shape in &shapes {
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); servers.len()];
        for run in 0..args.runs {
            for (i, server) in servers.iter().enumerate() {
                let topic = format!("bench.r{run}.p{}s{}", shape.publishers, shape.subscribers);
                let s = rt.block_on(load.measure(server.addr, &topic, *shape))?;
                eprintln!(
                    "{}x{} run {} {}: {:.0} msgs/s, p50 {:.2} ms, p99 {:.2} ms",
                    shape.publishers,
                    shape.subscribers,
                    run + 1,
                    server.name,
                    s.msgs_per_sec,
                    s.p50_us as f64 / 1000.0,
                    s.p99_us as f64 / 1000.0
                );
                samples[i].push(s);
            }
        }
        rows.push((
            *shape,
            samples.into_iter().map(|s| median(&s)).collect::<Vec<_>>(),
        ));
    }
    print_table(&args, &servers, &rows);
    drop(rabbit);
    drop(tidings);
    Ok(())
}

fn median(samples: &[Sample]) -> Sample {
    let pick = |f: fn(&Sample) -> f64| {
        let mut v: Vec<f64> = samples.iter().map(f).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    Sample {
        msgs_per_sec: pick(|s| s.msgs_per_sec),
        p50_us: pick(|s| s.p50_us as f64) as u64,
        p99_us: pick(|s| s.p99_us as f64) as u64,
    }
}

fn print_table(args: &Args, servers: &[peers::Target], rows: &[(Shape, Vec<Sample>)]) {
    println!(
        "STOMP pub/sub on one /topic destination, {} B bodies, {} in flight per publisher, median of {} runs of {} s:\n",
        args.size, args.window, args.runs, args.secs
    );
    println!("| publishers x subscribers | server | delivered msgs/s | p50 latency | p99 latency | msgs/s vs RabbitMQ |");
    println!("|---|---|---:|---:|---:|---:|");
    for (shape, medians) in rows {
        let base = medians.get(1).map(|s| s.msgs_per_sec);
        for (server, s) in servers.iter().zip(medians) {
            let ratio = match base {
                Some(b) if b > 0.0 => format!("{:.1}x", s.msgs_per_sec / b),
                _ => "–".into(),
            };
            println!(
                "| {}x{} | {} | {:.0} | {:.2} ms | {:.2} ms | {} |",
                shape.publishers,
                shape.subscribers,
                server.name,
                s.msgs_per_sec,
                s.p50_us as f64 / 1000.0,
                s.p99_us as f64 / 1000.0,
                ratio
            );
        }
    }
}
